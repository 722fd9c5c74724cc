/* The load generator's shared state: options, connections, the measured run. */
#ifndef CLIENT_H
#define CLIENT_H

#include "wsload.h"

#include <netinet/in.h>

enum { T_UP, T_DOWN, T_LAT, T_CONNS, T_RATE };
enum { C_FREE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSING }; /* in this order */
enum { P_SETUP, P_WAIT_GO, P_RUN, P_WAIT_END, P_END };
enum { E_CONNECT, E_HANDSHAKE, E_ACCEPT, E_EOF, E_RESET, E_TIMEOUT, E_PROTOCOL, E_CLOSED, E_COUNT };

struct options {
    int ws, test, sync, proxy_v2; /* proxy_v2: a PROXY protocol v2 header first */
    struct sockaddr_in addr;
    char hostport[64];
    uint64_t bytes;
    double cap, secs, timeout, setup_cap;
    int count, warmup, conns, inflight, slots, max;
    size_t size;
    const char *path, *subprotocol;
};
extern struct options O;

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

/* client_conn.c: connections, the handshake, frames */
extern int ep;
extern unsigned long fails[E_COUNT];
extern char first_error[160];
extern const char *const reason_name[E_COUNT];
void note_error(int reason, const char *detail);
void c_start(struct cconn *c);
void c_connected(struct cconn *c);
void c_send(struct cconn *c, const unsigned char *buf, size_t len, int cb);
void c_flush(struct cconn *c);
void c_readable(struct cconn *c);
void c_drop(struct cconn *c);
void c_fail(struct cconn *c, int reason, const char *detail); /* then on_lost */

/* client_tests.c: the tests, called back by the connections */
extern int phase, ncs;
extern struct cconn *cs;
extern double t_setup, t_done, cpu_run1;
void on_open(struct cconn *c);
void on_data(struct cconn *c, size_t n);
void on_sent(struct cconn *c);
void on_lost(struct cconn *c);
void prebuild(void);
void begin_setup(void);
void go(void);
void check_deadlines(double t);
void check_window(double t);
void print_result(void);

#endif
