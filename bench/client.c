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
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

struct options O = {.cap = 6, .secs = 3, .timeout = 10, .setup_cap = 60, .count = 2000, .warmup = 200,
                    .conns = 100, .inflight = 64, .slots = 8, .max = 20000, .size = 100,
                    .bytes = 256u * MIB, .path = "/", .subprotocol = "binary"};

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
        if (strcmp(a, "--proxy-v2") == 0) {
            O.proxy_v2 = 1;
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
        if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &e) != 0) O.sync = 0; /* not a pipe: nothing to wait for */
    }
    begin_setup();

    struct epoll_event evs[512];
    double last_tick = now_s();
    int lines = 0; /* from the driver, not used yet: a line may come early */
    while (phase != P_END) {
        int n = epoll_wait(ep, evs, 512, 20);
        if (n < 0 && errno != EINTR) fatal("epoll_wait: %m");
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &stdin_tag) {
                char buf[64];
                ssize_t r = read(0, buf, sizeof buf);
                if (r <= 0) { /* no more lines: carry on without waiting */
                    O.sync = 0;
                    epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
                }
                for (ssize_t k = 0; k < r; k++) lines += buf[k] == '\n';
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
        /* right after the read: the driver's clock runs from its line */
        if (phase == P_WAIT_GO && (!O.sync || lines)) lines -= O.sync, go();
        if (phase == P_WAIT_END && (!O.sync || lines)) lines -= O.sync, phase = P_END;
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
