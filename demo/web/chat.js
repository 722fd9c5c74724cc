// Talks to the TCP chat server through websockify, using the "binary" subprotocol:
// every WebSocket message carries raw bytes of the TCP stream.
const log = document.getElementById("log");
const statusLine = document.getElementById("status");
const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const ws = new WebSocket(`${scheme}//${location.host}/websockify`, ["binary"]);
ws.binaryType = "arraybuffer";
const decoder = new TextDecoder();
const encoder = new TextEncoder();

ws.onopen = () => { statusLine.textContent = `connected (subprotocol: ${ws.protocol || "none"})`; };
ws.onmessage = (event) => {
  log.textContent += decoder.decode(new Uint8Array(event.data), { stream: true });
  log.scrollTop = log.scrollHeight;
};
ws.onclose = (event) => { statusLine.textContent = `closed: ${event.code} ${event.reason}`; };
document.getElementById("form").onsubmit = (event) => {
  event.preventDefault();
  const input = document.getElementById("line");
  ws.send(encoder.encode(input.value + "\n"));
  input.value = "";
};
