/* wsload: the benchmark's load generator and target server (see bench/README.md). */
#ifndef WSLOAD_H
#define WSLOAD_H

#include <stddef.h>
#include <stdint.h>

#define MIB (1024u * 1024u)
#define READ_BUF (256u * 1024u)

/* ---- wsproto.c: time, randomness, SHA-1/base64, WebSocket frames ---- */
double now_s(void);
double cpu_s(void);                 /* this process, user + system */
uint64_t rnd64(void);
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void set_nonblock(int fd);
void set_nodelay(int fd);
int raise_fd_limit(void);           /* soft limit up to the hard one; returns it */

/* Sec-WebSocket-Accept for a key (RFC 6455 4.2.2); out gets 28 chars + NUL. */
void ws_accept_for(const char *key, size_t key_len, char out[29]);
/* A fresh random Sec-WebSocket-Key; out gets 24 chars + NUL. */
void ws_new_key(char out[25]);

enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

/* Writes one complete frame (FIN set) into dst and returns its length.
 * masked != 0 masks it with a random key, as a client must. */
size_t ws_frame(unsigned char *dst, int opcode, const void *payload, size_t n, int masked);
/* Header only (for a payload sent separately, server side: unmasked). */
size_t ws_header(unsigned char *dst, int opcode, uint64_t n);
/* XOR with a 4-byte mask, starting at position phase of the mask. */
void ws_mask(unsigned char *p, size_t n, const unsigned char mask[4], unsigned phase);

/* Incremental frame reader: feed bytes, get payload pieces and whole control frames. */
struct ws_reader {
    unsigned char hdr[14];
    unsigned hdr_len, hdr_need;
    uint64_t left;          /* payload bytes left in the current frame */
    unsigned char mask[4];
    unsigned phase;         /* position in the mask */
    int masked, opcode, in_frame;
    unsigned char ctl[125];
    unsigned ctl_len;
};
enum { WS_NEED, WS_DATA, WS_CONTROL, WS_BAD };
/* Consumes from *p (up to end). WS_DATA: *data and *n give a payload piece, unmasked
 * in place. WS_CONTROL: r->opcode, r->ctl, r->ctl_len hold the whole frame. */
int ws_read(struct ws_reader *r, unsigned char **p, unsigned char *end,
            unsigned char **data, size_t *n);

/* ---- serve.c / client.c ---- */
int serve_main(int argc, char **argv);
int client_main(int argc, char **argv);

#endif
