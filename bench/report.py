"""The Markdown report: one table of results (absolute, and as a ratio to raw in the
same run), one of CPU use per test, and notes on how far to trust them."""
from __future__ import annotations

from typing import Any, Callable, Optional

Results = dict[str, dict[str, Any]]  # column -> test -> result
DASH = "–"


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}"


def _get(res: Results, col: str, test: str, key: str) -> Optional[float]:
    r = res.get(col, {}).get(test)
    if not r or r.get("error") or key not in r:
        return None
    return float(r[key])


def _value_row(res: Results, cols: list[str], label: str, test: str, key: str) -> str:
    raw = _get(res, "raw", test, key)
    cells = []
    for col in cols:
        r = res.get(col, {}).get(test)
        v = _get(res, col, test, key)
        if r and r.get("error"):
            cells.append("error")
        elif v is None:
            cells.append(DASH)
        elif col == "raw" or not raw:
            cells.append(_num(v))
        else:
            cells.append(f"{_num(v)} ({v / raw:.2f}×)")
    return f"| {label} | " + " | ".join(cells) + " |"


def _plain_row(res: Results, cols: list[str], label: str, test: str,
               cell: Callable[[dict[str, Any]], str]) -> str:
    cells = []
    for col in cols:
        r = res.get(col, {}).get(test)
        cells.append("error" if r and r.get("error") else cell(r) if r else DASH)
    return f"| {label} | " + " | ".join(cells) + " |"


def _memory(r: dict[str, Any]) -> str:
    m = r.get("memory")
    if not m:
        return DASH
    procs = m["processes"]
    return f"{m['rss_kb'] / 1024:.0f} / {m['pss_kb'] / 1024:.0f} ({procs} proc{'s' if procs > 1 else ''})"


def _failures(r: dict[str, Any], *keys: str) -> str:
    return " / ".join(str(r.get(k, 0)) for k in keys)


def results_table(res: Results, cols: list[str], tests: list[str], conns: list[int], idle: int) -> list[str]:
    lines = ["| metric | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    if "up" in tests:
        lines.append(_value_row(res, cols, "bulk upload MB/s (64 KiB messages)", "up", "mbps"))
    if "down" in tests:
        lines.append(_value_row(res, cols, "bulk download MB/s", "down", "mbps"))
    if "lat" in tests:
        lines.append(_value_row(res, cols, "latency p50 µs (100-byte echo)", "lat", "p50_us"))
        lines.append(_value_row(res, cols, "latency p99 µs", "lat", "p99_us"))
    for n in conns if "conns" in tests else []:
        t = f"c{n}"
        lines.append(_value_row(res, cols, f"round trips/s, {n} conns", t, "per_s"))
        lines.append(_value_row(res, cols, f"round-trip p99 µs, {n} conns", t, "p99_us"))
        lines.append(_plain_row(res, cols, f"failed / lost, {n} conns", t,
                                lambda r: _failures(r, "failed", "lost")))
        lines.append(_plain_row(res, cols, f"proxy RSS / PSS MB, {n} conns", t, _memory))
    if "rate" in tests:
        lines.append(_value_row(res, cols, "new conns/s (handshake, echo, close)", "rate", "per_s"))
        lines.append(_plain_row(res, cols, "failed new conns", "rate", lambda r: _failures(r, "failed")))
    lines.append(_plain_row(res, cols, "proxy RSS / PSS MB at start", "start", _memory))
    if idle:
        lines.append(_plain_row(res, cols, f"proxy RSS / PSS MB, {idle} idle conns", "idle", _memory))
        lines.append(_plain_row(res, cols, "PSS KB per idle conn", "idle", _per_conn))
        lines.append(_plain_row(res, cols, "failed idle conns", "idle", lambda r: _failures(r, "failed")))
    return lines


def _per_conn(r: dict[str, Any]) -> str:
    m, base = r.get("memory"), r.get("memory_at_start")
    if not m or not base or not r.get("established"):
        return DASH
    return f"{(m['pss_kb'] - base['pss_kb']) / r['established']:.1f}"


def cpu_table(res: Results, cols: list[str], tests: list[tuple[str, str]]) -> list[str]:
    lines = ["| CPU % (proxy / client / server / other) | " + " | ".join(cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for test, label in tests:
        def cell(r: dict[str, Any]) -> str:
            c = r.get("cpu_percent")
            if not c:
                return DASH
            return " / ".join(f"{c[k]:.0f}" for k in ("proxy", "client", "server", "other"))
        lines.append(_plain_row(res, cols, label, test, cell))
    return lines


# The lines a column is compared on with its baseline, by test ("c" for every c{n}):
# (key, label, higher is better).
_COMPARED: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "up": (("mbps", "upload MB/s", True),), "down": (("mbps", "download MB/s", True),),
    "lat": (("p50_us", "latency p50", False), ("p99_us", "latency p99", False)),
    "c": (("per_s", "round trips/s {n} conns", True), ("p99_us", "round-trip p99 {n} conns", False)),
    "rate": (("per_s", "new conns/s", True),)}


def comparison(res: Results, col: str, base: str, tests: list[tuple[str, str]], spread: str = "") -> str:
    """col against base, line by line, as ratios. With spread (base run a second time in
    the same run), its ratio to base follows each in brackets, and the lines where col
    costs more than that spread are named."""
    parts, beyond = [], []
    for test, _ in tests:
        is_conns = test[0] == "c" and test[1:].isdigit()
        for key, label, higher_better in _COMPARED.get("c" if is_conns else test, ()):
            label = label.format(n=test[1:])
            a, b = _get(res, col, test, key), _get(res, base, test, key)
            if a is None or not b:
                continue
            ratio, text = a / b, f"{label} {a / b:.2f}×"
            other = _get(res, spread, test, key) if spread else None
            if other:  # the cost must stay within the spread, whichever way the spread went
                s = other / b
                text += f" ({s:.2f}×)"
                if (ratio < min(s, 1 / s)) if higher_better else (ratio > max(s, 1 / s)):
                    beyond.append(label)
            parts.append(text)
    if not parts:
        return ""
    head = f"{col} ÷ {base}, same run"
    if spread:
        head += f" ({spread} ÷ {base}, the plain column's spread, in brackets)"
    line = f"{head}; per second and MB/s below 1 cost, µs above 1 cost: " + "; ".join(parts) + "."
    if spread:
        line += (f" Costs beyond the spread: {', '.join(beyond)}." if beyond else " Within the spread on every line.")
    return line


def notes(res: Results, cols: list[str], tests: list[tuple[str, str]], proxies: list[str],
          baselines: Optional[dict[str, str]] = None, repeats: Optional[dict[str, str]] = None) -> list[str]:
    """baselines: column -> the column it is compared with; repeats: a column -> the
    column it runs a second time (its spread)."""
    out = []
    spreads = {base: col for col, base in (repeats or {}).items() if col in proxies}
    for col, base in (baselines or {}).items():
        if col in proxies and base in proxies and (line := comparison(res, col, base, tests, spreads.get(base, ""))):
            out.append(line)
    for col, base in (repeats or {}).items():
        compared = any(b == base and c in proxies for c, b in (baselines or {}).items())
        if col in proxies and base in proxies and not compared and (line := comparison(res, col, base, tests)):
            out.append(line)  # nothing compared with base: the spread alone
    # is the load generator the limit? it should sit well below a core through a proxy
    hot = [f"{col} {label}" for col in proxies for test, label in tests
           if (res.get(col, {}).get(test) or {}).get("cpu_percent", {}).get("client", 0) >= 90]
    if hot:
        out.append("Load generator at ≥ 90% of a core (it may be the limit there): " + ", ".join(hot) + ".")
    headroom = []
    for test, key, label in (("up", "mbps", "upload"), ("down", "mbps", "download"),
                             ("c100", "per_s", "round trips"), ("rate", "per_s", "new conns")):
        ceiling = _get(res, "ws-direct", test, key)
        best = max((v for c in proxies if (v := _get(res, c, test, key)) is not None), default=None)
        if ceiling and best:
            headroom.append(f"{label} {ceiling / best:.1f}×")
    if headroom:
        out.append("Load generator headroom (ws-direct ÷ best proxy): " + ", ".join(headroom) + ".")
    for col in cols:
        for test, r in res.get(col, {}).items():
            if r.get("error"):
                out.append(f"{col} {test}: {r['error']}")
            elif r.get("first_error") and test not in ("start",):
                out.append(f"{col} {test}: first error: {r['first_error']} {r.get('errors', {})}")
    return out
