/* The load generator: one measurement per run, single-threaded epoll.
 *
 * A run has three phases: setup (connections opened and proven), the measured
 * window, and teardown. It prints "ready" after setup and "done" after the
 * window; with --sync it waits for a line on stdin after each, so the driver can
 * read CPU counters exactly around the window and memory while everything is
 * still open. Everything it sends is prebuilt (frames pre-masked, with a fresh
 * mask per frame), so the client's own cost stays small.
 */
#define _GNU_SOURCE
#include "wsload.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { T_UP, T_DOWN, T_LAT, T_CONNS, T_RATE };
enum { C_FREE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSING };
enum { P_SETUP, P_WAIT_GO, P_RUN, P_WAIT_END, P_END };
enum { E_CONNECT, E_HANDSHAKE, E_ACCEPT, E_EOF, E_RESET, E_TIMEOUT, E_PROTOCOL, E_CLOSED, E_COUNT };
static const char *const reason_name[E_COUNT] = {"connect", "handshake", "accept", "eof",
                                                  "reset", "timeout", "protocol", "closed"};
#define REQ_MAX 512
#define RESP_MAX 1536
#define ECHO_VARIANTS 8

static struct {
    int ws, test, sync;
    struct sockaddr_in addr;
    char hostport[64];
    uint64_t bytes;
    double cap, secs, timeout, setup_cap;
    int count, warmup, conns, inflight, slots, max;
    size_t size;
    const char *path, *subprotocol;
} O = {.cap = 6, .secs = 3, .timeout = 10, .setup_cap = 60, .count = 2000, .warmup = 200,
       .conns = 100, .inflight = 64, .slots = 8, .max = 20000, .size = 100, .bytes = 256u * MIB,
       .path = "/", .subprotocol = "binary"};

struct cconn {
    int fd, state, ready, bad, in_flush, out_cb;
    unsigned events;
    char accept[29];
    char *head;                       /* request, then response head (handshake only) */
    unsigned resp_len;
    struct ws_reader in;
    const unsigned char *out;
    size_t out_len, out_off;
    uint64_t got;
    double t0, t_start, deadline;
    unsigned char pong[131];
};

static int ep, phase;
static struct cconn *cs;
static int ncs;
static unsigned char rbuf[READ_BUF];
static double t_setup, t_run, t_end, t_done, cpu_run0, cpu_run1;
static unsigned long fails[E_COUNT];
static char first_error[160];
static double *samples;
static size_t nsamples, samples_cap;

/* prebuilt output */
static unsigned char *start_echo, *start_rate, *echo_msg[ECHO_VARIANTS], *block, *sink_cmd,
    *send_cmd, close_frame[16];
static size_t start_echo_len, start_rate_len, echo_msg_len, block_len, sink_cmd_len,
    send_cmd_len, close_frame_len;

/* per-test counters */
static uint64_t blocks_sent, acks;    /* up */
static int stop_sending, upload_stage; /* up */
static uint64_t rounds;               /* lat, conns */
static int launched, established, setup_failed, lost, active; /* conns, rate */
static uint64_t ok, failed;           /* rate */
static int vary;

static void on_open(struct cconn *c);
static void on_data(struct cconn *c, size_t n);
static void on_sent(struct cconn *c);
static void on_lost(struct cconn *c);
static void finish_run(void);

static void record(double us) {
    if (nsamples == samples_cap) {
        samples_cap = samples_cap ? samples_cap * 2 : 65536;
        if (!(samples = realloc(samples, samples_cap * sizeof *samples))) fatal("out of memory");
    }
    samples[nsamples++] = us;
}

static void note_error(int reason, const char *detail) {
    fails[reason]++;
    if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s: %s", reason_name[reason], detail);
}

static void c_events(struct cconn *c, unsigned ev) {
    if (c->events == ev || c->state == C_FREE) return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}

static void c_drop(struct cconn *c) {
    if (c->state == C_FREE) return;
    close(c->fd);
    c->fd = -1;
    c->state = C_FREE;
    c->out = NULL;
    free(c->head);
    c->head = NULL;
}

static void c_fail(struct cconn *c, int reason, const char *detail) {
    note_error(reason, detail);
    c->bad = 1;
    c_drop(c);
    on_lost(c);
}

static void c_flush(struct cconn *c) {
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
static void c_send(struct cconn *c, const unsigned char *buf, size_t len, int cb) {
    c->out = buf, c->out_len = len, c->out_off = 0, c->out_cb = cb;
    c_flush(c);
}

static void c_start(struct cconn *c) {
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

static void c_opened(struct cconn *c) {
    c->state = C_OPEN; /* the deadline stays until the connection proves itself */
    on_open(c);
}

static void c_connected(struct cconn *c) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
        c_fail(c, E_CONNECT, strerror(err));
        return;
    }
    if (!O.ws) {
        c_opened(c);
        return;
    }
    char key[25];
    ws_new_key(key);
    ws_accept_for(key, 24, c->accept);
    if (!(c->head = malloc(REQ_MAX + RESP_MAX))) fatal("out of memory");
    int n = snprintf(c->head, REQ_MAX,
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

static void c_readable(struct cconn *c) {
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

/* ---- phases ---- */

static void setup_done(void) {
    phase = P_WAIT_GO;
    printf("ready\n");
    fflush(stdout);
}

static void start_run(void);

static void go(void) {
    t_run = now_s();
    cpu_run0 = cpu_s();
    phase = P_RUN;
    start_run();
}

static void finish_run(void) {
    if (phase != P_RUN) return;
    t_done = now_s();
    cpu_run1 = cpu_s();
    phase = P_WAIT_END;
    printf("done\n");
    fflush(stdout);
    if (!O.sync) phase = P_END;
}

/* ---- the tests ---- */

static const unsigned char *next_echo(void) { return echo_msg[vary++ % ECHO_VARIANTS]; }

static void launch_conns(void) {
    while (launched < ncs && launched - established - setup_failed < O.inflight) c_start(&cs[launched++]);
    if (phase == P_SETUP && established + setup_failed == ncs) setup_done();
}

static void start_run(void) {
    struct cconn *c = &cs[0];
    t_end = t_run + (O.test == T_CONNS || O.test == T_RATE ? O.secs : O.cap);
    if ((O.test == T_UP || O.test == T_DOWN || O.test == T_LAT) && c->state != C_OPEN) {
        finish_run(); /* lost while waiting to start: the error is counted already */
        return;
    }
    switch (O.test) {
    case T_UP:
        upload_stage = 0;
        c_send(c, sink_cmd, sink_cmd_len, 1);
        break;
    case T_DOWN:
        c_send(c, send_cmd, send_cmd_len, 0);
        break;
    case T_LAT:
        c->t0 = now_s();
        c_send(c, next_echo(), echo_msg_len, 0);
        break;
    case T_CONNS:
        if (O.secs <= 0 || established == 0) {
            finish_run();
            break;
        }
        for (int i = 0; i < ncs; i++) {
            if (cs[i].state != C_OPEN || !cs[i].ready) continue;
            cs[i].t0 = now_s();
            c_send(&cs[i], next_echo(), echo_msg_len, 0);
        }
        break;
    case T_RATE:
        for (int i = 0; i < ncs; i++) {
            launched++, active++;
            c_start(&cs[i]);
        }
        break;
    }
}

static void on_open(struct cconn *c) {
    switch (O.test) {
    case T_UP:
    case T_DOWN:
        c->deadline = 0;
        setup_done();
        break;
    case T_LAT:
    case T_CONNS:
        c->t0 = now_s();
        c_send(c, start_echo, start_echo_len, 0);
        break;
    case T_RATE:
        c_send(c, start_rate, start_rate_len, 0);
        break;
    }
}

static void on_sent(struct cconn *c) {
    /* only the upload sends with a callback: the command, then 1 MiB blocks */
    if (upload_stage++ > 0) blocks_sent++;
    if (blocks_sent * MIB >= O.bytes || now_s() >= t_end) {
        stop_sending = 1;
        if (acks >= blocks_sent) finish_run();
        return;
    }
    c_send(c, block, block_len, 1);
}

static void echo_done(struct cconn *c, double t) {
    if (phase == P_SETUP) {
        c->ready = 1;
        c->deadline = 0;
        if (O.test == T_LAT) setup_done();
        else {
            established++;
            launch_conns();
        }
        return;
    }
    if (phase != P_RUN) return;
    if (O.test == T_LAT) {
        if (++rounds > (uint64_t)O.warmup) record((t - c->t0) * 1e6);
        if (rounds >= (uint64_t)(O.warmup + O.count) || t >= t_end) {
            finish_run();
            return;
        }
    } else {
        if (t > t_end) return; /* the window is over: this connection rests */
        rounds++;
        record((t - c->t0) * 1e6);
    }
    c->t0 = t;
    c_send(c, next_echo(), echo_msg_len, 0);
}

static void on_data(struct cconn *c, size_t n) {
    double t;
    switch (O.test) {
    case T_UP:
        if (phase != P_RUN) break; /* only what arrived inside the window counts */
        acks += n;
        if (stop_sending && acks >= blocks_sent) finish_run();
        break;
    case T_DOWN:
        if (phase != P_RUN) break;
        c->got += n;
        if (c->got >= O.bytes || now_s() >= t_end) finish_run();
        break;
    case T_LAT:
    case T_CONNS:
        c->got += n;
        if (c->got < O.size) break;
        c->got -= O.size;
        t = now_s();
        echo_done(c, t);
        break;
    case T_RATE:
        if (c->state != C_OPEN) break;
        c->ready = 1; /* the echo proves both legs */
        if (O.ws) {
            c->state = C_CLOSING;
            c->deadline = now_s() + 2.0;
            c_send(c, close_frame, close_frame_len, 0);
        } else {
            c_drop(c);
            on_lost(c); /* the end of a good one */
        }
        break;
    }
}

/* A connection ended: an error (counted already) or, for the connection rate,
 * possibly its regular end after the echo. */
static void on_lost(struct cconn *c) {
    double t = now_s();
    switch (O.test) {
    case T_UP:
    case T_DOWN:
    case T_LAT:
        if (phase == P_SETUP) fatal("cannot connect: %s", first_error);
        if (phase == P_RUN) finish_run();
        break;
    case T_CONNS:
        if (!c->ready) {
            setup_failed++;
            if (phase == P_SETUP) launch_conns();
        } else {
            lost++;
        }
        break;
    case T_RATE:
        /* good: the echo came back and the connection ended without an error */
        active--;
        if (c->ready && !c->bad) {
            if (t <= t_end) {
                ok++;
                record((t - c->t_start) * 1e6);
            }
        } else {
            failed++;
        }
        /* nothing answers at all: stop early rather than spin */
        if (phase == P_RUN && t < t_end && launched < O.max && (ok || failed < 200)) {
            launched++, active++;
            c_start(c);
        } else if (active == 0) {
            finish_run();
        }
        break;
    }
}

/* Connections that have not proven themselves by their deadline fail. */
static void check_deadlines(double t) {
    int upto = O.test == T_CONNS ? launched : ncs;
    for (int i = 0; i < upto; i++) {
        struct cconn *c = &cs[i];
        if (c->state != C_FREE && c->deadline && t > c->deadline) c_fail(c, E_TIMEOUT, "no answer in time");
    }
    if (phase == P_SETUP && O.test == T_CONNS && t - t_setup > O.setup_cap) {
        /* the ones never started first, so failing the rest starts nothing new */
        while (launched < ncs) launched++, setup_failed++, note_error(E_TIMEOUT, "setup took too long");
        for (int i = 0; i < ncs; i++)
            if (cs[i].state != C_FREE && !cs[i].ready) c_fail(&cs[i], E_TIMEOUT, "setup took too long");
    }
}

static void check_window(double t) {
    if (phase != P_RUN) return;
    if (O.test == T_CONNS && t >= t_end) finish_run();
    /* a stalled single-connection test, or a rate test whose last connections hang */
    if (phase == P_RUN && t >= t_end + O.timeout) {
        note_error(E_TIMEOUT, "the measurement stalled");
        finish_run();
    }
}

/* ---- setup, output ---- */

/* The command line (if any) and one message of msg bytes (if any), framed. */
static unsigned char *frames(const char *cmd, size_t msg, size_t *len) {
    unsigned char *payload = malloc(msg ? msg : 1), *buf = malloc(msg + (cmd ? strlen(cmd) : 0) + 32);
    if (!payload || !buf) fatal("out of memory");
    for (size_t i = 0; i < msg; i++) payload[i] = (unsigned char)('a' + i % 26);
    size_t n = 0;
    if (cmd) {
        if (O.ws) n += ws_frame(buf, OP_BINARY, cmd, strlen(cmd), 1);
        else memcpy(buf, cmd, strlen(cmd)), n += strlen(cmd);
    }
    if (msg) {
        if (O.ws) n += ws_frame(buf + n, OP_BINARY, payload, msg, 1);
        else memcpy(buf + n, payload, msg), n += msg;
    }
    free(payload);
    *len = n;
    return buf;
}

static void prebuild(void) {
    start_echo = frames("ECHO\n", O.size, &start_echo_len);
    start_rate = frames("ECHO\n", 1, &start_rate_len);
    for (int i = 0; i < ECHO_VARIANTS; i++) echo_msg[i] = frames(NULL, O.size, &echo_msg_len);
    sink_cmd = frames("SINK\n", 0, &sink_cmd_len);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "SEND %llu\n", (unsigned long long)O.bytes);
    send_cmd = frames(cmd, 0, &send_cmd_len);
    unsigned char code[2] = {0x03, 0xE8}; /* 1000, normal closure */
    close_frame_len = ws_frame(close_frame, OP_CLOSE, code, 2, 1);
    if (O.test == T_UP) {
        /* 1 MiB of O.size messages, each with its own mask */
        size_t per = MIB / O.size;
        if (!(block = malloc(per * (O.size + 14)))) fatal("out of memory");
        unsigned char *payload = malloc(O.size);
        if (!payload) fatal("out of memory");
        for (size_t i = 0; i < O.size; i++) payload[i] = (unsigned char)(i * 13 + 5);
        for (size_t m = 0; m < per; m++) {
            if (O.ws) block_len += ws_frame(block + block_len, OP_BINARY, payload, O.size, 1);
            else memcpy(block + block_len, payload, O.size), block_len += O.size;
        }
        free(payload);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double q) {
    if (!nsamples) return 0;
    size_t i = (size_t)(q * (double)nsamples);
    return samples[i >= nsamples ? nsamples - 1 : i];
}

static void print_result(void) {
    char out[2048];
    int n = 0;
    double secs = t_done > t_run ? t_done - t_run : 0;
    static const char *const names[] = {"up", "down", "lat", "conns", "rate"};
    n += snprintf(out + n, sizeof out - (size_t)n, "result {\"test\": \"%s\", \"proto\": \"%s\", "
                  "\"secs\": %.6f, \"cpu_secs\": %.4f", names[O.test], O.ws ? "ws" : "tcp", secs,
                  cpu_run1 - cpu_run0);
    qsort(samples, nsamples, sizeof *samples, cmp_double);
    switch (O.test) {
    case T_UP:
    case T_DOWN: {
        uint64_t moved = O.test == T_UP ? acks * MIB : cs[0].got;
        n += snprintf(out + n, sizeof out - (size_t)n, ", \"bytes\": %llu, \"mbps\": %.1f",
                      (unsigned long long)moved, secs > 0 ? (double)moved / secs / 1e6 : 0);
        break;
    }
    case T_LAT:
    case T_CONNS:
    case T_RATE:
        if (O.test == T_CONNS)
            n += snprintf(out + n, sizeof out - (size_t)n,
                          ", \"conns\": %d, \"established\": %d, \"failed\": %d, \"lost\": %d, "
                          "\"setup_secs\": %.3f, \"rounds\": %llu, \"per_s\": %.1f",
                          ncs, established, setup_failed, lost, t_run - t_setup,
                          (unsigned long long)rounds, secs > 0 ? (double)rounds / secs : 0);
        if (O.test == T_RATE) /* the window is shorter when --max ended it early */
            n += snprintf(out + n, sizeof out - (size_t)n,
                          ", \"ok\": %llu, \"failed\": %llu, \"per_s\": %.1f", (unsigned long long)ok,
                          (unsigned long long)failed, (double)ok / (secs < O.secs ? secs : O.secs));
        double sum = 0;
        for (size_t i = 0; i < nsamples; i++) sum += samples[i];
        n += snprintf(out + n, sizeof out - (size_t)n,
                      ", \"samples\": %zu, \"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, "
                      "\"max_us\": %.1f, \"mean_us\": %.1f",
                      nsamples, pct(0.5), pct(0.9), pct(0.99), nsamples ? samples[nsamples - 1] : 0,
                      nsamples ? sum / (double)nsamples : 0);
        break;
    }
    n += snprintf(out + n, sizeof out - (size_t)n, ", \"errors\": {");
    const char *sep = "";
    for (int i = 0; i < E_COUNT; i++) {
        if (!fails[i]) continue;
        n += snprintf(out + n, sizeof out - (size_t)n, "%s\"%s\": %lu", sep, reason_name[i], fails[i]);
        sep = ", ";
    }
    /* the first error's text, kept JSON-safe */
    for (char *q = first_error; *q; q++)
        if (*q == '"' || *q == '\\' || (unsigned char)*q < 32) *q = '\'';
    n += snprintf(out + n, sizeof out - (size_t)n, "}, \"first_error\": \"%s\"}\n", first_error);
    fputs(out, stdout);
    fflush(stdout);
}

static void parse_target(const char *s) {
    const char *colon = strrchr(s, ':');
    char host[48];
    if (!colon || (size_t)(colon - s) >= sizeof host) fatal("--connect wants 127.0.0.1:PORT");
    snprintf(host, sizeof host, "%.*s", (int)(colon - s), s);
    O.addr.sin_family = AF_INET;
    O.addr.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &O.addr.sin_addr) != 1) fatal("--connect: not an IPv4 address: %s", host);
    if ((ntohl(O.addr.sin_addr.s_addr) >> 24) != 127) fatal("--connect: only loopback (127.0.0.0/8) is allowed");
    snprintf(O.hostport, sizeof O.hostport, "%s", s);
}

static void parse_args(int argc, char **argv) {
    int have_target = 0, have_test = 0, size_set = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--sync") == 0) {
            O.sync = 1;
            continue;
        }
        if (!v) fatal("%s needs a value", a);
        i++;
        if (strcmp(a, "--connect") == 0) parse_target(v), have_target = 1;
        else if (strcmp(a, "--proto") == 0) {
            if (strcmp(v, "ws") && strcmp(v, "tcp")) fatal("--proto is tcp or ws");
            O.ws = strcmp(v, "ws") == 0;
        } else if (strcmp(a, "--test") == 0) {
            static const char *const t[] = {"up", "down", "lat", "conns", "rate", "idle"};
            O.test = -1;
            for (int k = 0; k < 6; k++)
                if (strcmp(v, t[k]) == 0) O.test = k == 5 ? T_CONNS : k;
            if (O.test < 0) fatal("unknown test %s", v);
            if (strcmp(v, "idle") == 0) O.secs = 0, O.size = 1;
            have_test = 1;
        } else if (strcmp(a, "--bytes") == 0) O.bytes = strtoull(v, NULL, 10);
        else if (strcmp(a, "--cap") == 0) O.cap = atof(v);
        else if (strcmp(a, "--secs") == 0) O.secs = atof(v);
        else if (strcmp(a, "--timeout") == 0) O.timeout = atof(v);
        else if (strcmp(a, "--setup-cap") == 0) O.setup_cap = atof(v);
        else if (strcmp(a, "--count") == 0) O.count = atoi(v);
        else if (strcmp(a, "--warmup") == 0) O.warmup = atoi(v);
        else if (strcmp(a, "--conns") == 0) O.conns = atoi(v);
        else if (strcmp(a, "--inflight") == 0) O.inflight = atoi(v);
        else if (strcmp(a, "--slots") == 0) O.slots = atoi(v);
        else if (strcmp(a, "--max") == 0) O.max = atoi(v);
        else if (strcmp(a, "--size") == 0) O.size = (size_t)atol(v), size_set = 1;
        else if (strcmp(a, "--path") == 0) O.path = v;
        else if (strcmp(a, "--subprotocol") == 0) O.subprotocol = v;
        else fatal("unknown option %s", a);
    }
    if (!have_target || !have_test) fatal("run needs --connect and --test");
    if (!size_set && (O.test == T_UP || O.test == T_DOWN)) O.size = 65536;
    if (O.size < 1 || O.size > MIB || (O.test == T_UP && MIB % O.size)) fatal("--size must divide 1 MiB");
    if (strlen(O.path) > 200 || strlen(O.subprotocol) > 100) fatal("--path or --subprotocol too long");
    if (O.conns < 1 || O.slots < 1 || O.inflight < 1) fatal("--conns, --slots, --inflight must be >= 1");
}

int client_main(int argc, char **argv) {
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    int limit = raise_fd_limit();
    ncs = O.test == T_CONNS ? O.conns : O.test == T_RATE ? O.slots : 1;
    if (ncs + 16 > limit) fatal("%d connections need more open files than the limit (%d): raise ulimit -n", ncs, limit);
    if (!(cs = calloc((size_t)ncs, sizeof *cs))) fatal("out of memory");
    for (int i = 0; i < ncs; i++) cs[i].fd = -1;
    prebuild();
    ep = epoll_create1(EPOLL_CLOEXEC);
    static int stdin_tag;
    if (O.sync) {
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &stdin_tag};
        epoll_ctl(ep, EPOLL_CTL_ADD, 0, &e);
    }
    t_setup = now_s();
    phase = P_SETUP;
    if (O.test == T_CONNS) launch_conns();
    else if (O.test == T_RATE) setup_done();
    else c_start(&cs[0]);

    struct epoll_event evs[512];
    double last_tick = now_s();
    while (phase != P_END) {
        if (phase == P_WAIT_GO && !O.sync) go();
        int n = epoll_wait(ep, evs, 512, 20);
        if (n < 0 && errno != EINTR) fatal("epoll_wait: %m");
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &stdin_tag) {
                char line[64];
                ssize_t r = read(0, line, sizeof line);
                if (r <= 0) phase = P_END; /* the driver is gone */
                else if (phase == P_WAIT_GO) go();
                else if (phase == P_WAIT_END) phase = P_END;
                continue;
            }
            struct cconn *c = evs[i].data.ptr;
            if (c->state == C_FREE) continue;
            if (c->state == C_CONNECTING) {
                if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) c_connected(c);
                continue;
            }
            if (evs[i].events & EPOLLOUT) c_flush(c);
            if (c->state != C_FREE && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) c_readable(c);
        }
        double t = now_s();
        check_window(t);
        if (t - last_tick >= 0.02) {
            check_deadlines(t);
            last_tick = t;
        }
    }
    if (phase == P_END && !t_done) t_done = now_s(), cpu_run1 = cpu_s();
    for (int i = 0; i < ncs; i++) c_drop(&cs[i]);
    print_result();
    return 0;
}
