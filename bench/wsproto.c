/* Shared by the load generator and the target server: time, randomness,
 * the Sec-WebSocket-Accept computation and WebSocket frames (RFC 6455). */
#define _GNU_SOURCE
#include "wsload.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

void fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("wsload: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* xorshift64*: masks and keys need to vary, not to be secret. */
uint64_t rnd64(void) {
    static uint64_t s;
    if (s == 0) {
        if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s || s == 0)
            s = (uint64_t)(now_s() * 1e9) | 1;
    }
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
}

void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur > 0x7fffffff ? 0x7fffffff : (int)rl.rlim_cur;
}

/* ---- SHA-1 (FIPS 180-4), only for the handshake: inputs are tens of bytes ---- */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const unsigned char *b) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
               (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) f = (bb & c) | (~bb & d), k = 0x5A827999;
        else if (i < 40) f = bb ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60) f = (bb & c) | (bb & d) | (c & d), k = 0x8F1BBCDC;
        else f = bb ^ c ^ d, k = 0xCA62C1D6;
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d, d = c, c = rol(bb, 30), bb = a, a = t;
    }
    h[0] += a, h[1] += bb, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1(const unsigned char *msg, size_t len, unsigned char out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t full = len / 64 * 64;
    for (size_t i = 0; i < full; i += 64) sha1_block(h, msg + i);
    unsigned char tail[128] = {0};
    size_t rest = len - full;
    memcpy(tail, msg + full, rest);
    tail[rest] = 0x80;
    size_t tail_len = rest + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) tail[tail_len - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t i = 0; i < tail_len; i += 64) sha1_block(h, tail + i);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++) out[4 * i + j] = (unsigned char)(h[i] >> (24 - 8 * j));
}

static void base64(const unsigned char *in, size_t n, char *out) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = A[(v >> 18) & 63];
        out[o++] = A[(v >> 12) & 63];
        out[o++] = i + 1 < n ? A[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? A[v & 63] : '=';
    }
    out[o] = 0;
}

void ws_accept_for(const char *key, size_t key_len, char out[29]) {
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char buf[128], digest[20];
    if (key_len > sizeof buf - sizeof guid) key_len = sizeof buf - sizeof guid;
    memcpy(buf, key, key_len);
    memcpy(buf + key_len, guid, sizeof guid - 1);
    sha1(buf, key_len + sizeof guid - 1, digest);
    base64(digest, 20, out);
}

void ws_new_key(char out[25]) {
    unsigned char raw[16];
    uint64_t a = rnd64(), b = rnd64();
    memcpy(raw, &a, 8);
    memcpy(raw + 8, &b, 8);
    base64(raw, 16, out);
}

/* ---- frames ---- */

void ws_mask(unsigned char *p, size_t n, const unsigned char mask[4], unsigned phase) {
    size_t i = 0;
    phase &= 3;
    while (i < n && phase != 0) p[i++] ^= mask[phase], phase = (phase + 1) & 3;
    /* phase is 0 here (or everything is done): XOR eight bytes at a time */
    uint64_t m8;
    unsigned char mm[8] = {mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]};
    memcpy(&m8, mm, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        v ^= m8;
        memcpy(p + i, &v, 8);
    }
    for (unsigned k = 0; i < n; i++, k++) p[i] ^= mask[k & 3];
}

static size_t put_header(unsigned char *h, int opcode, uint64_t n, int masked) {
    size_t o = 0;
    unsigned char m = masked ? 0x80 : 0;
    h[o++] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        h[o++] = m | (unsigned char)n;
    } else if (n <= 0xFFFF) {
        h[o++] = m | 126;
        h[o++] = (unsigned char)(n >> 8);
        h[o++] = (unsigned char)n;
    } else {
        h[o++] = m | 127;
        for (int i = 7; i >= 0; i--) h[o++] = (unsigned char)(n >> (8 * i));
    }
    return o;
}

size_t ws_header(unsigned char *dst, int opcode, uint64_t n) { return put_header(dst, opcode, n, 0); }

size_t ws_frame(unsigned char *dst, int opcode, const void *payload, size_t n, int masked) {
    size_t o = put_header(dst, opcode, n, masked);
    if (masked) {
        uint64_t r = rnd64();
        unsigned char *mask = dst + o;
        memcpy(mask, &r, 4);
        o += 4;
        memcpy(dst + o, payload, n);
        ws_mask(dst + o, n, mask, 0);
    } else {
        memcpy(dst + o, payload, n);
    }
    return o + n;
}

/* Header length once the first two bytes are known. */
static unsigned header_need(const unsigned char *h) {
    unsigned need = 2, len7 = h[1] & 0x7F;
    if (len7 == 126) need += 2;
    else if (len7 == 127) need += 8;
    if (h[1] & 0x80) need += 4;
    return need;
}

int ws_read(struct ws_reader *r, unsigned char **p, unsigned char *end,
            unsigned char **data, size_t *n) {
    while (*p < end) {
        if (!r->in_frame) {
            /* collect the header; a frame may arrive split anywhere */
            if (r->hdr_len < 2) {
                r->hdr[r->hdr_len++] = *(*p)++;
                if (r->hdr_len == 2) r->hdr_need = header_need(r->hdr);
                else continue;
            }
            while (r->hdr_len < r->hdr_need && *p < end) r->hdr[r->hdr_len++] = *(*p)++;
            if (r->hdr_len < r->hdr_need) return WS_NEED;
            unsigned len7 = r->hdr[1] & 0x7F, o = 2;
            uint64_t len = len7;
            if (len7 == 126) len = (uint64_t)r->hdr[2] << 8 | r->hdr[3], o = 4;
            else if (len7 == 127) {
                len = 0;
                for (int i = 0; i < 8; i++) len = len << 8 | r->hdr[2 + i];
                o = 10;
            }
            r->opcode = r->hdr[0] & 0x0F;
            r->masked = (r->hdr[1] & 0x80) != 0;
            if (r->masked) memcpy(r->mask, r->hdr + o, 4);
            if (r->hdr[0] & 0x70) return WS_BAD; /* no extensions were negotiated */
            if (r->opcode >= 8 && (len > 125 || !(r->hdr[0] & 0x80))) return WS_BAD;
            r->left = len;
            r->phase = 0;
            r->ctl_len = 0;
            r->in_frame = 1;
            r->hdr_len = 0;
        }
        size_t avail = (size_t)(end - *p);
        size_t take = r->left < avail ? (size_t)r->left : avail;
        if (r->opcode >= 8) {
            memcpy(r->ctl + r->ctl_len, *p, take);
            if (r->masked) ws_mask(r->ctl + r->ctl_len, take, r->mask, r->phase);
            r->ctl_len += (unsigned)take;
            r->phase = (r->phase + (unsigned)take) & 3;
            *p += take;
            r->left -= take;
            if (r->left == 0) {
                r->in_frame = 0;
                return WS_CONTROL;
            }
            continue;
        }
        if (r->left == 0) { /* an empty data frame */
            r->in_frame = 0;
            continue;
        }
        *data = *p;
        *n = take;
        if (r->masked) ws_mask(*p, take, r->mask, r->phase);
        r->phase = (r->phase + (unsigned)take) & 3;
        *p += take;
        r->left -= take;
        if (r->left == 0) r->in_frame = 0;
        return WS_DATA;
    }
    return WS_NEED;
}
