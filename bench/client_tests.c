/* The load generator's tests: what each connection does once open, the phases of a
 * run (setup, measured window, teardown) and the result line. */
#define _GNU_SOURCE
#include "client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ECHO_VARIANTS 8

int phase, ncs;
struct cconn *cs;
double t_setup, t_done, cpu_run1;
static double t_run, t_end, cpu_run0;
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

static void finish_run(void);

static void record(double us) {
    if (nsamples == samples_cap) {
        samples_cap = samples_cap ? samples_cap * 2 : 65536;
        if (!(samples = realloc(samples, samples_cap * sizeof *samples))) fatal("out of memory");
    }
    samples[nsamples++] = us;
}

/* ---- phases ---- */

static void setup_done(void) {
    phase = P_WAIT_GO;
    printf("ready\n");
    fflush(stdout);
}

static void start_run(void);
static void launch_conns(void);

void begin_setup(void) {
    t_setup = now_s();
    phase = P_SETUP;
    if (O.test == T_CONNS) launch_conns();
    else if (O.test == T_RATE) setup_done(); /* each connection is part of the window */
    else c_start(&cs[0]);
}

void go(void) {
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

void on_open(struct cconn *c) {
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

void on_sent(struct cconn *c) {
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

void on_data(struct cconn *c, size_t n) {
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
void on_lost(struct cconn *c) {
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
void check_deadlines(double t) {
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

void check_window(double t) {
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

void prebuild(void) {
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

void print_result(void) {
    char out[2048];
    int n = 0;
    double secs = t_run > 0 && t_done > t_run ? t_done - t_run : 0;
    static const char *const names[] = {"up", "down", "lat", "conns", "rate"};
    n += snprintf(out + n, sizeof out - (size_t)n, "result {\"test\": \"%s\", \"proto\": \"%s\", "
                  "\"secs\": %.6f, \"cpu_secs\": %.4f", names[O.test], O.ws ? "ws" : "tcp", secs,
                  cpu_run1 - cpu_run0);
    if (nsamples) qsort(samples, nsamples, sizeof *samples, cmp_double);
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
