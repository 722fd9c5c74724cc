/*
 * rebind.so - move a program's listening port to a private loopback port.
 *
 * websockify preloads this library (LD_PRELOAD) into a wrapped program so that
 * the program believes it listens on the public port while websockify itself
 * owns that port and relays WebSocket clients to the program.
 *
 * Moving: bind() is interposed. A bind of a TCP socket whose port is
 * REBIND_OLD_PORT, on any address of either family (0.0.0.0, a specific IPv4
 * address, ::, ::1, an IPv4-mapped address), is turned into a bind on loopback
 * of the same family (127.0.0.1, ::1, or ::ffff:127.0.0.1) at REBIND_NEW_PORT.
 * Every other bind passes through untouched, so nothing of the program can stay
 * reachable on the public port from outside.
 *
 * Race-free private port: with REBIND_NEW_PORT=0 the kernel chooses the port at
 * the first moved bind; later moved binds in the same process (the other address
 * family, say) and in its forked children reuse it.
 *
 * Readiness: listen() is interposed too. When a moved socket (bound on loopback
 * at the private port) starts listening, "HOST PORT" is sent as one datagram to
 * the Unix socket REBIND_NOTIFY_SOCKET, where websockify waits for it. Children
 * inherit LD_PRELOAD and these variables, so a daemonizing program's server is
 * moved and reported too.
 *
 * Child setup: websockify runs no code of its own between fork and exec; this
 * library's constructor does the setup instead, from variables it then removes,
 * so that they apply to the program itself and not to what the program starts:
 *   WEBSOCKIFY_NOFILE=SOFT:HARD  the open-file limit websockify was started with
 *                                (a number or "infinity" each)
 *   WEBSOCKIFY_PDEATHSIG=N       receive signal N when websockify dies
 *   WEBSOCKIFY_PARENT_PID=PID    websockify's pid: if our parent is already
 *                                another process, websockify died before we
 *                                could ask, so take signal N now
 *
 * Used by hand, upstream's way still works:
 *   REBIND_OLD_PORT=5901 REBIND_NEW_PORT=15901 LD_PRELOAD=./rebind.so vncserver :1
 * REBIND_DEBUG=1 prints each moved bind on standard error.
 *
 * Every interposed call leaves errno as the real call left it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * Old glibc symbol versions, so that a rebind.so built on a new glibc loads on old
 * ones (manylinux2014: glibc 2.17). On glibc 2.34 and later a plain link takes
 * dlsym@GLIBC_2.34 (dlsym moved from libdl into libc), and on x86_64
 * memcpy@GLIBC_2.14; every later glibc still exports the old versions named here,
 * each architecture's first (glibc's libc.abilist). Before 2.34 that dlsym lives
 * in libdl.so.2 only, so cflags.py links libdl.so.2 by name and keeps it needed.
 * A build on glibc 2.17 itself (a manylinux2014 container) gets these versions
 * anyway; other architectures are not pinned; musl has no symbol versions.
 */
#if defined(__GLIBC__) && !defined(__UCLIBC__)
#if defined(__x86_64__) && defined(__LP64__)
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
__asm__(".symver memcpy,memcpy@GLIBC_2.2.5");
#elif defined(__aarch64__)
__asm__(".symver dlsym,dlsym@GLIBC_2.17");
#elif defined(__i386__)
__asm__(".symver dlsym,dlsym@GLIBC_2.0");
#endif
#endif

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*listen_fn)(int, int);

/* Private port the kernel chose for this process; 0 until the first moved bind. */
static int chosen_port;

/* A decimal number from the environment within [low, high], or -1 when unset or invalid. */
static long env_number(const char *name, long low, long high)
{
    const char *text = getenv(name);
    char *end;
    long value;

    if (text == NULL || *text == '\0')
        return -1;
    errno = 0;
    value = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < low || value > high)
        return -1;
    return value;
}

static int env_port(const char *name)
{
    return (int)env_number(name, 0, 65535);
}

/* The next definition of `name` (libc's), looked up once; threads may race to store the same value. */
static void *next_symbol(const char *name, void **cache)
{
    void *fn = __atomic_load_n(cache, __ATOMIC_ACQUIRE);

    if (fn == NULL) {
        fn = dlsym(RTLD_NEXT, name);
        __atomic_store_n(cache, fn, __ATOMIC_RELEASE);
    }
    return fn;
}

static bind_fn real_bind(void)
{
    static void *cache;

    return (bind_fn)next_symbol("bind", &cache);
}

static listen_fn real_listen(void)
{
    static void *cache;

    return (listen_fn)next_symbol("listen", &cache);
}

/* The private port in use: REBIND_NEW_PORT, or the one the kernel chose; 0 if none yet. */
static int private_port(void)
{
    int port = env_port("REBIND_NEW_PORT");

    return port > 0 ? port : __atomic_load_n(&chosen_port, __ATOMIC_SEQ_CST);
}

static int is_stream_socket(int fd)
{
    int type = 0;
    socklen_t size = sizeof type;

    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) == 0 && type == SOCK_STREAM;
}

/*
 * Where `fd` is bound, if on loopback: returns "127.0.0.1" (also for IPv4-mapped
 * on an IPv6 socket) or "::1" and sets *port; NULL for any other address.
 */
static const char *moved_address(int fd, int *port)
{
    static const unsigned char ipv4_loopback[4] = {127, 0, 0, 1};
    struct sockaddr_storage bound;
    socklen_t size = sizeof bound;

    if (getsockname(fd, (struct sockaddr *)&bound, &size) != 0)
        return NULL;
    if (bound.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&bound;

        *port = ntohs(in->sin_port);
        return in->sin_addr.s_addr == htonl(INADDR_LOOPBACK) ? "127.0.0.1" : NULL;
    }
    if (bound.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&bound;

        *port = ntohs(in6->sin6_port);
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return "::1";
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && memcmp(&in6->sin6_addr.s6_addr[12], ipv4_loopback, 4) == 0)
            return "127.0.0.1";
    }
    return NULL;
}

/* Tell websockify, if it is waiting, that HOST PORT accepts connections now. */
static void notify_listening(const char *host, int port)
{
    const char *path = getenv("REBIND_NOTIFY_SOCKET");
    struct sockaddr_un to;
    char message[64];
    int fd, len;

    if (path == NULL || strlen(path) >= sizeof to.sun_path)
        return;
    memset(&to, 0, sizeof to);
    to.sun_family = AF_UNIX;
    memcpy(to.sun_path, path, strlen(path) + 1);
    len = snprintf(message, sizeof message, "%s %d", host, port);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    /* Never block the program. websockify reads at once; if its queue were full anyway,
     * the report is lost and websockify's slow-start warning tells the user. */
    sendto(fd, message, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&to, sizeof to);
    close(fd);
}

int bind(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    int saved_errno = errno;
    int old_port = env_port("REBIND_OLD_PORT");
    int new_port = env_port("REBIND_NEW_PORT");
    struct sockaddr_storage moved;
    const char *host;
    int port, rc;

    if (real_bind() == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (old_port <= 0 || new_port < 0 || addr == NULL || !is_stream_socket(fd)) {
        errno = saved_errno;
        return real_bind()(fd, addr, addrlen);
    }
    port = private_port();
    errno = saved_errno;

    memset(&moved, 0, sizeof moved);
    if (addr->sa_family == AF_INET && addrlen >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in *in = (struct sockaddr_in *)&moved;

        memcpy(in, addr, sizeof *in);
        if (ntohs(in->sin_port) != old_port)
            return real_bind()(fd, addr, addrlen);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        in->sin_port = htons((unsigned short)port);
        host = "127.0.0.1";
        addrlen = sizeof *in;
    } else if (addr->sa_family == AF_INET6 && addrlen >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&moved;

        memcpy(in6, addr, sizeof *in6);
        if (ntohs(in6->sin6_port) != old_port)
            return real_bind()(fd, addr, addrlen);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            /* An IPv4 client address in IPv6 form: keep it IPv4, on loopback. */
            inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6->sin6_addr);
            host = "127.0.0.1";
        } else {
            in6->sin6_addr = in6addr_loopback;
            host = "::1";
        }
        in6->sin6_port = htons((unsigned short)port);
        in6->sin6_scope_id = 0;
        addrlen = sizeof *in6;
    } else {
        return real_bind()(fd, addr, addrlen);
    }

    errno = saved_errno;
    rc = real_bind()(fd, (struct sockaddr *)&moved, addrlen);
    if (rc != 0)
        return rc;
    saved_errno = errno;
    if (port == 0 && moved_address(fd, &port) != NULL)
        __atomic_store_n(&chosen_port, port, __ATOMIC_SEQ_CST);
    if (getenv("REBIND_DEBUG") != NULL)
        fprintf(stderr, "rebind: port %d moved to %s:%d\n", old_port, host, port);
    errno = saved_errno;
    return rc;
}

int listen(int fd, int backlog)
{
    const char *host;
    int rc, saved_errno, port = 0, private;

    if (real_listen() == NULL) {
        errno = ENOSYS;
        return -1;
    }
    rc = real_listen()(fd, backlog);
    if (rc != 0)
        return rc;
    saved_errno = errno;
    private = private_port();
    if (env_port("REBIND_OLD_PORT") > 0 && private > 0 && (host = moved_address(fd, &port)) != NULL &&
        port == private)
        notify_listening(host, port);
    errno = saved_errno;
    return rc;
}

/* "123", or "infinity" for no limit; 0 when the text is neither. */
static int parse_limit(const char *text, size_t len, rlim_t *limit)
{
    char digits[32];
    char *end;

    if (len == 8 && strncmp(text, "infinity", 8) == 0) {
        *limit = RLIM_INFINITY;
        return 1;
    }
    if (len == 0 || len >= sizeof digits || text[0] < '0' || text[0] > '9')
        return 0;
    memcpy(digits, text, len);
    digits[len] = '\0';
    errno = 0;
    *limit = (rlim_t)strtoull(digits, &end, 10);
    return errno == 0 && *end == '\0';
}

__attribute__((constructor)) static void websockify_child_setup(void)
{
    int saved_errno = errno;
    const char *nofile = getenv("WEBSOCKIFY_NOFILE");
    long signal_number = env_number("WEBSOCKIFY_PDEATHSIG", 1, SIGRTMAX);
    long parent = env_number("WEBSOCKIFY_PARENT_PID", 1, 0x7fffffffL);

    if (nofile != NULL) {
        const char *colon = strchr(nofile, ':');
        struct rlimit limit;

        if (colon != NULL && parse_limit(nofile, (size_t)(colon - nofile), &limit.rlim_cur) &&
            parse_limit(colon + 1, strlen(colon + 1), &limit.rlim_max))
            setrlimit(RLIMIT_NOFILE, &limit);
    }
    if (signal_number > 0 && prctl(PR_SET_PDEATHSIG, (unsigned long)signal_number, 0, 0, 0) == 0 &&
        parent > 0 && getppid() != (pid_t)parent)
        raise((int)signal_number);
    /* The program's own children are not websockify's concern: a daemon it starts must not die with it. */
    unsetenv("WEBSOCKIFY_NOFILE");
    unsetenv("WEBSOCKIFY_PDEATHSIG");
    unsetenv("WEBSOCKIFY_PARENT_PID");
    errno = saved_errno;
}
