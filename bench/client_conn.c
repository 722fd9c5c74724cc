/* The load generator's connections: connect, the PROXY protocol v2 header (with
 * --proxy-v2), the WebSocket handshake (the Sec-WebSocket-Accept is checked),
 * sending prebuilt buffers, reading frames. What a connection does once open
 * belongs to the test (client_tests.c). */
#define _GNU_SOURCE
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define PP2_LEN 28 /* a PROXY v2 header for TCP over IPv4 */
#define REQ_MAX (PP2_LEN + 512)
#define RESP_MAX 1536

int ep;
unsigned long fails[E_COUNT];
char first_error[160];
const char *const reason_name[E_COUNT] = {"connect", "handshake", "accept", "eof",
                                          "reset", "timeout", "protocol", "closed"};
static unsigned char rbuf[READ_BUF];

void note_error(int reason, const char *detail) {
    fails[reason]++;
    if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s: %s", reason_name[reason], detail);
}

static void c_events(struct cconn *c, unsigned ev) {
    if (c->events == ev || c->state == C_FREE) return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}

void c_drop(struct cconn *c) {
    if (c->state == C_FREE) return;
    close(c->fd);
    c->fd = -1;
    c->state = C_FREE;
    c->out = NULL;
    free(c->head);
    c->head = NULL;
}

void c_fail(struct cconn *c, int reason, const char *detail) {
    note_error(reason, detail);
    c->bad = 1;
    c_drop(c);
    on_lost(c);
}

void c_flush(struct cconn *c) {
    if (c->in_flush) return; /* a callback queued more: the outer loop sends it */
    c->in_flush = 1;
    while (c->out && c->state != C_FREE) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN) break;
            c->in_flush = 0;
            c_fail(c, errno == ECONNRESET || errno == EPIPE ? E_RESET : E_PROTOCOL, strerror(errno));
            return;
        }
        c->out_off += (size_t)w;
        if (c->out_off == c->out_len) {
            int cb = c->out_cb;
            c->out = NULL;
            if (cb) on_sent(c);
        }
    }
    c->in_flush = 0;
    if (c->state == C_FREE) return;
    c_events(c, c->out || c->state == C_CONNECTING ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

/* Queues one buffer; on_sent follows when it is all out if cb is set. */
void c_send(struct cconn *c, const unsigned char *buf, size_t len, int cb) {
    c->out = buf, c->out_len = len, c->out_off = 0, c->out_cb = cb;
    c_flush(c);
}

void c_start(struct cconn *c) {
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->t_start = now_s();
    c->deadline = c->t_start + O.timeout;
    if (c->fd < 0) {
        c->state = C_FREE;
        note_error(E_CONNECT, strerror(errno));
        on_lost(c);
        return;
    }
    set_nodelay(c->fd);
    c->state = C_CONNECTING;
    c->events = EPOLLOUT;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
    if (connect(c->fd, (struct sockaddr *)&O.addr, sizeof O.addr) != 0 && errno != EINPROGRESS)
        c_fail(c, E_CONNECT, strerror(errno));
}

/* The PROXY protocol v2 header a load balancer sends first (haproxy.org's
 * proxy-protocol.txt, section 2.2): signature, 0x21 (v2, PROXY), 0x11 (TCP over
 * IPv4), 12 bytes of addresses, all in network byte order. The client it names is
 * 192.0.2.1 (TEST-NET-1, so the proxy's log shows the header was read), with this
 * connection's real local port; the destination is the address connected to.
 * Returns PP2_LEN, or 0 when the local port cannot be read (already failed). */
static size_t c_proxy_v2(struct cconn *c, unsigned char out[PP2_LEN]) {
    static const unsigned char head[16] = {'\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U', 'I', 'T', '\n',
                                           0x21, 0x11, 0, 12};
    struct sockaddr_in local;
    socklen_t l = sizeof local;
    if (getsockname(c->fd, (struct sockaddr *)&local, &l) != 0) {
        c_fail(c, E_CONNECT, strerror(errno));
        return 0;
    }
    uint32_t src = htonl(0xC0000201u); /* 192.0.2.1 */
    memcpy(out, head, sizeof head);
    memcpy(out + 16, &src, 4);
    memcpy(out + 20, &O.addr.sin_addr.s_addr, 4);
    memcpy(out + 24, &local.sin_port, 2);
    memcpy(out + 26, &O.addr.sin_port, 2);
    return PP2_LEN;
}

static void c_opened(struct cconn *c) {
    c->state = C_OPEN; /* the deadline stays until the connection proves itself */
    on_open(c);
}

void c_connected(struct cconn *c) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
        c_fail(c, E_CONNECT, strerror(err));
        return;
    }
    if (!O.ws) {
        if (O.proxy_v2) {
            /* a few bytes into a fresh socket's empty buffer: sent whole, or an error */
            unsigned char pp[PP2_LEN];
            if (!c_proxy_v2(c, pp)) return;
            ssize_t w = send(c->fd, pp, PP2_LEN, MSG_NOSIGNAL);
            if (w != PP2_LEN) {
                c_fail(c, w < 0 && (errno == ECONNRESET || errno == EPIPE) ? E_RESET : E_PROTOCOL,
                       w < 0 ? strerror(errno) : "PROXY header: short write");
                return;
            }
        }
        c_opened(c);
        return;
    }
    if (!(c->head = malloc(REQ_MAX + RESP_MAX))) fatal("out of memory");
    /* the header and the request head go out in one write, as one buffer */
    int n = 0;
    if (O.proxy_v2 && !(n = (int)c_proxy_v2(c, (unsigned char *)c->head))) return;
    char key[25];
    ws_new_key(key);
    ws_accept_for(key, 24, c->accept);
    n += snprintf(c->head + n, REQ_MAX - (size_t)n,
                  "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
                  O.path, O.hostport, key);
    if (O.subprotocol[0])
        n += snprintf(c->head + n, REQ_MAX - (size_t)n, "Sec-WebSocket-Protocol: %s\r\n", O.subprotocol);
    n += snprintf(c->head + n, REQ_MAX - (size_t)n, "\r\n");
    c->state = C_HANDSHAKE;
    c_send(c, (unsigned char *)c->head, (size_t)n, 0);
}

/* The server's answer: 101 and the right Sec-WebSocket-Accept. Returns the
 * head's length, 0 while incomplete, -1 when refused (already failed). */
static int c_check_response(struct cconn *c) {
    char *resp = c->head + REQ_MAX;
    resp[c->resp_len] = 0;
    char *end = strstr(resp, "\r\n\r\n");
    if (!end) {
        if (c->resp_len >= RESP_MAX - 1) c_fail(c, E_HANDSHAKE, "response head too long");
        return c->state == C_FREE ? -1 : 0;
    }
    char status[64];
    snprintf(status, sizeof status, "%.*s", (int)strcspn(resp, "\r\n"), resp);
    if (strncmp(resp, "HTTP/1.1 101", 12) != 0) {
        c_fail(c, E_HANDSHAKE, status);
        return -1;
    }
    int good = 0;
    for (char *line = strstr(resp, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "Sec-WebSocket-Accept:", 21) != 0) continue;
        char *v = line + 23;
        while (*v == ' ') v++;
        good = strncmp(v, c->accept, 28) == 0 && (v[28] == '\r' || v[28] == ' ');
    }
    if (!good) {
        c_fail(c, E_ACCEPT, "missing or wrong Sec-WebSocket-Accept");
        return -1;
    }
    return (int)(end + 4 - resp);
}

/* Frames from the server: payload bytes are counted, control frames answered. */
static void c_frames(struct cconn *c, unsigned char *p, unsigned char *end) {
    size_t total = 0;
    while (p < end) {
        unsigned char *d;
        size_t n;
        int ev = ws_read(&c->in, &p, end, &d, &n);
        if (ev == WS_NEED) break;
        if (ev == WS_BAD) {
            c_fail(c, E_PROTOCOL, "bad frame from server");
            return;
        }
        if (ev == WS_DATA) {
            total += n;
        } else if (c->in.opcode == OP_CLOSE) {
            if (c->state == C_CLOSING) {
                c_drop(c);
                on_lost(c); /* in the closing state this is the expected end */
            } else {
                c_fail(c, E_CLOSED, "server sent a close frame");
            }
            return;
        } else if (c->in.opcode == OP_PING && !c->out) {
            /* rare (heartbeats); answered only between our own frames */
            size_t len = ws_frame(c->pong, OP_PONG, c->in.ctl, c->in.ctl_len, 1);
            c_send(c, c->pong, len, 0);
            if (c->state < C_OPEN) return; /* failed (and maybe restarted): these bytes are stale */
        }
    }
    if (total) on_data(c, total);
}

void c_readable(struct cconn *c) {
    ssize_t r;
    if (c->state == C_HANDSHAKE) {
        r = recv(c->fd, c->head + REQ_MAX + c->resp_len, RESP_MAX - 1 - c->resp_len, 0);
    } else {
        r = recv(c->fd, rbuf, sizeof rbuf, 0);
    }
    if (r == 0) {
        if (c->state == C_CLOSING) {
            c_drop(c);
            on_lost(c);
        } else {
            c_fail(c, E_EOF, c->state == C_HANDSHAKE ? "closed during the handshake" : "closed by server");
        }
        return;
    }
    if (r < 0) {
        if (errno != EAGAIN) c_fail(c, errno == ECONNRESET ? E_RESET : E_PROTOCOL, strerror(errno));
        return;
    }
    if (c->state == C_HANDSHAKE) {
        c->resp_len += (unsigned)r;
        int head_len = c_check_response(c);
        if (head_len <= 0) return;
        /* frames may follow the head in the same read */
        size_t extra = c->resp_len - (unsigned)head_len;
        memcpy(rbuf, c->head + REQ_MAX + head_len, extra);
        free(c->head);
        c->head = NULL;
        c_opened(c);
        if (extra && c->state == C_OPEN) c_frames(c, rbuf, rbuf + extra);
        return;
    }
    if (O.ws) c_frames(c, rbuf, rbuf + r);
    else on_data(c, (size_t)r);
}
