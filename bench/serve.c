/* The target server: single-threaded epoll on 127.0.0.1, two ports.
 *
 * The raw port speaks plain TCP; the ws port speaks WebSocket itself (a real
 * handshake with Sec-WebSocket-Accept), so the load generator can measure its own
 * ceiling with no proxy in between. Either way a connection starts with one
 * command line in its byte stream, so it works through any transparent proxy:
 *   "ECHO\n"     echo every byte that follows
 *   "SINK\n"     swallow what follows, answer one byte 'k' per MiB swallowed
 *   "SEND N\n"   send N bytes (in 64 KiB messages on the ws port)
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
#include <sys/uio.h>
#include <unistd.h>

#define HEAD_MAX 4096
#define SEND_MSG 65536u
#define SEND_FRAMES 4u

enum { S_HTTP, S_CMD, S_ECHO, S_SINK, S_SEND };

struct sconn {
    int fd, ws, phase, closing;
    unsigned events;
    char *head;               /* request head or command line, while being read */
    unsigned head_len;
    struct ws_reader in;
    uint64_t sunk, acked;     /* SINK: bytes swallowed, MiB answered */
    uint64_t send_left, send_pos;
    unsigned char *pend;      /* output the socket did not take yet */
    size_t pend_len, pend_off;
};

static int ep;
static int raw_listener, ws_listener;
static unsigned char rbuf[READ_BUF];
static unsigned char raw_src[READ_BUF];                      /* SEND on the raw port */
static unsigned char *ws_src;                                /* SEND_FRAMES whole frames */
static size_t ws_frame_len;

static void s_close(struct sconn *c) {
    close(c->fd); /* also leaves the epoll set */
    free(c->head);
    free(c->pend);
    free(c);
}

static void s_events(struct sconn *c, unsigned ev) {
    if (c->events == ev) return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}

/* Reading waits while output is pending: the peer is throttled instead of
 * buffering without bound. */
static void s_update_events(struct sconn *c) {
    unsigned ev = EPOLLIN;
    if (c->pend) ev = EPOLLOUT;
    else if (c->phase == S_SEND && c->send_left) ev |= EPOLLOUT;
    s_events(c, ev);
}

/* Writes iov; keeps what the socket does not take. Returns -1 when the peer is gone. */
static int s_write(struct sconn *c, struct iovec *iov, int cnt) {
    size_t total = 0;
    for (int i = 0; i < cnt; i++) total += iov[i].iov_len;
    ssize_t w = 0;
    if (!c->pend) {
        w = writev(c->fd, iov, cnt);
        if (w < 0) {
            if (errno != EAGAIN) return -1;
            w = 0;
        }
    }
    if ((size_t)w == total) return 0;
    size_t keep = total - (size_t)w, have = c->pend ? c->pend_len - c->pend_off : 0;
    unsigned char *buf = malloc(have + keep);
    if (!buf) fatal("out of memory");
    if (have) memcpy(buf, c->pend + c->pend_off, have);
    size_t o = have, skip = (size_t)w;
    for (int i = 0; i < cnt; i++) {
        size_t l = iov[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        memcpy(buf + o, (char *)iov[i].iov_base + skip, l - skip);
        o += l - skip;
        skip = 0;
    }
    free(c->pend);
    c->pend = buf, c->pend_len = o, c->pend_off = 0;
    s_update_events(c);
    return 0;
}

/* Sends payload bytes: as one binary frame on the ws port. */
static int s_send(struct sconn *c, int opcode, const void *p, size_t n) {
    unsigned char hdr[14];
    struct iovec iov[2];
    int cnt = 0;
    if (c->ws) iov[cnt++] = (struct iovec){hdr, ws_header(hdr, opcode, n)};
    if (n) iov[cnt++] = (struct iovec){(void *)p, n};
    return s_write(c, iov, cnt);
}

static int s_send_more(struct sconn *c) {
    while (c->send_left && !c->pend) {
        const unsigned char *src = c->ws ? ws_src : raw_src;
        size_t cycle = c->ws ? ws_frame_len * SEND_FRAMES : sizeof raw_src;
        size_t pos = (size_t)(c->send_pos % cycle), n = cycle - pos;
        if (n > c->send_left) n = (size_t)c->send_left;
        ssize_t w = write(c->fd, src + pos, n);
        if (w < 0) {
            if (errno == EAGAIN) break;
            return -1;
        }
        c->send_pos += (uint64_t)w;
        c->send_left -= (uint64_t)w;
    }
    s_update_events(c);
    return 0;
}

static int s_command(struct sconn *c) {
    char *line = c->head;
    unsigned long long n;
    if (strcmp(line, "ECHO") == 0) c->phase = S_ECHO;
    else if (strcmp(line, "SINK") == 0) c->phase = S_SINK;
    else if (sscanf(line, "SEND %llu", &n) == 1) {
        c->phase = S_SEND;
        /* whole 64 KiB messages on the ws port: round up */
        c->send_left = c->ws ? (n + SEND_MSG - 1) / SEND_MSG * ws_frame_len : n;
    } else {
        fprintf(stderr, "wsload serve: unknown command %.40s\n", line);
        return -1;
    }
    free(c->head);
    c->head = NULL;
    return c->phase == S_SEND ? s_send_more(c) : 0;
}

/* Payload bytes from the peer (unframed already on the ws port). */
static int s_data(struct sconn *c, unsigned char *p, size_t n) {
    while (c->phase == S_CMD && n) {
        if (!c->head && !(c->head = malloc(HEAD_MAX))) fatal("out of memory");
        unsigned char ch = *p++;
        n--;
        if (ch == '\n') {
            c->head[c->head_len] = 0;
            if (s_command(c) < 0) return -1;
        } else if (c->head_len < 63) {
            c->head[c->head_len++] = (char)ch;
        } else {
            return -1;
        }
    }
    if (!n) return 0;
    if (c->phase == S_ECHO) return s_send(c, OP_BINARY, p, n);
    if (c->phase == S_SINK) {
        c->sunk += n;
        uint64_t due = c->sunk / MIB - c->acked;
        if (due) {
            unsigned char acks[256];
            if (due > sizeof acks) due = sizeof acks;
            memset(acks, 'k', (size_t)due);
            c->acked += due;
            return s_send(c, OP_BINARY, acks, (size_t)due);
        }
    }
    return 0;
}

static int s_handshake(struct sconn *c, unsigned char **p, unsigned char *end) {
    if (!c->head && !(c->head = malloc(HEAD_MAX))) fatal("out of memory");
    while (*p < end) {
        if (c->head_len >= HEAD_MAX - 1) return -1;
        c->head[c->head_len++] = (char)*(*p)++;
        if (c->head_len >= 4 && memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4) == 0) break;
    }
    if (c->head_len < 4 || memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4) != 0) return 0;
    c->head[c->head_len] = 0;
    const char *key = NULL, *proto = NULL;
    size_t key_len = 0, proto_len = 0;
    for (char *line = strstr(c->head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        char *h = line + 2, *colon = strchr(h, ':'), *eol = strstr(h, "\r\n");
        if (!colon || !eol || colon > eol) continue;
        char *v = colon + 1;
        while (*v == ' ') v++;
        size_t vl = (size_t)(eol - v);
        while (vl && v[vl - 1] == ' ') vl--;
        if (strncasecmp(h, "Sec-WebSocket-Key:", 18) == 0) key = v, key_len = vl;
        if (strncasecmp(h, "Sec-WebSocket-Protocol:", 23) == 0) {
            proto = v, proto_len = vl; /* answer with the first one offered */
            for (size_t i = 0; i < vl; i++)
                if (v[i] == ',' || v[i] == ' ') { proto_len = i; break; }
        }
    }
    if (!key || strncmp(c->head, "GET ", 4) != 0) return -1;
    char accept[29], resp[512];
    ws_accept_for(key, key_len, accept);
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n", accept);
    if (proto) n += snprintf(resp + n, sizeof resp - (size_t)n, "Sec-WebSocket-Protocol: %.*s\r\n",
                             (int)proto_len, proto);
    n += snprintf(resp + n, sizeof resp - (size_t)n, "\r\n");
    c->head_len = 0;
    c->phase = S_CMD;
    struct iovec iov = {resp, (size_t)n};
    return s_write(c, &iov, 1);
}

static int s_control(struct sconn *c) {
    if (c->in.opcode == OP_PING) return s_send(c, OP_PONG, c->in.ctl, c->in.ctl_len);
    if (c->in.opcode == OP_CLOSE) {
        /* answer the close, then close the TCP connection once it is out */
        c->closing = 1;
        return s_send(c, OP_CLOSE, c->in.ctl, c->in.ctl_len >= 2 ? 2 : 0);
    }
    return 0;
}

static int s_readable(struct sconn *c) {
    ssize_t r = read(c->fd, rbuf, sizeof rbuf);
    if (r == 0) return -1;
    if (r < 0) return errno == EAGAIN ? 0 : -1;
    unsigned char *p = rbuf, *end = rbuf + r;
    if (!c->ws) return s_data(c, p, (size_t)r);
    if (c->phase == S_HTTP && (s_handshake(c, &p, end) < 0)) return -1;
    while (p < end && !c->closing) {
        unsigned char *d;
        size_t n;
        int ev = ws_read(&c->in, &p, end, &d, &n);
        if (ev == WS_NEED) break;
        if (ev == WS_BAD) return -1;
        if ((ev == WS_DATA ? s_data(c, d, n) : s_control(c)) < 0) return -1;
    }
    if (c->closing && !c->pend) return -1; /* the close answer is out */
    return 0;
}

static int s_writable(struct sconn *c) {
    while (c->pend) {
        ssize_t w = write(c->fd, c->pend + c->pend_off, c->pend_len - c->pend_off);
        if (w < 0) {
            if (errno == EAGAIN) return 0;
            return -1;
        }
        c->pend_off += (size_t)w;
        if (c->pend_off == c->pend_len) {
            free(c->pend);
            c->pend = NULL;
        }
    }
    if (c->closing) return -1;
    if (c->phase == S_SEND) return s_send_more(c);
    s_update_events(c);
    return 0;
}

static int listen_on(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) fatal("bind 127.0.0.1:%d: %m", port);
    if (listen(fd, 4096) != 0) fatal("listen: %m");
    return fd;
}

static int port_of(int fd) {
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    return ntohs(a.sin_port);
}

static void s_accept(int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) fprintf(stderr, "wsload serve: accept: %m\n");
            return;
        }
        set_nodelay(fd);
        struct sconn *c = calloc(1, sizeof *c);
        if (!c) fatal("out of memory");
        c->fd = fd;
        c->ws = lfd == ws_listener;
        c->phase = c->ws ? S_HTTP : S_CMD;
        c->events = EPOLLIN;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    }
}

int serve_main(int argc, char **argv) {
    int raw_port = 0, ws_port = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--raw-port") == 0 && i + 1 < argc) raw_port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--ws-port") == 0 && i + 1 < argc) ws_port = atoi(argv[++i]);
        else fatal("serve: unknown argument %s", argv[i]);
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    for (size_t i = 0; i < sizeof raw_src; i++) raw_src[i] = (unsigned char)(i * 7 + 1);
    ws_frame_len = ws_header(rbuf, OP_BINARY, SEND_MSG) + SEND_MSG;
    if (!(ws_src = malloc(ws_frame_len * SEND_FRAMES))) fatal("out of memory");
    for (unsigned f = 0; f < SEND_FRAMES; f++)
        ws_frame(ws_src + f * ws_frame_len, OP_BINARY, raw_src, SEND_MSG, 0);

    ep = epoll_create1(EPOLL_CLOEXEC);
    raw_listener = listen_on(raw_port);
    ws_listener = listen_on(ws_port);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &raw_listener};
    epoll_ctl(ep, EPOLL_CTL_ADD, raw_listener, &e);
    e.data.ptr = &ws_listener;
    epoll_ctl(ep, EPOLL_CTL_ADD, ws_listener, &e);
    printf("listening %d %d\n", port_of(raw_listener), port_of(ws_listener));
    fflush(stdout);

    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno != EINTR) fatal("epoll_wait: %m");
        for (int i = 0; i < n; i++) {
            void *ptr = evs[i].data.ptr;
            if (ptr == &raw_listener || ptr == &ws_listener) {
                s_accept(*(int *)ptr);
                continue;
            }
            struct sconn *c = ptr;
            int bad = 0;
            if (evs[i].events & (EPOLLERR | EPOLLHUP)) bad = !(evs[i].events & EPOLLIN);
            if (!bad && (evs[i].events & EPOLLOUT)) bad = s_writable(c) < 0;
            if (!bad && (evs[i].events & EPOLLIN) && !c->pend) bad = s_readable(c) < 0;
            if (bad) s_close(c);
        }
    }
}
