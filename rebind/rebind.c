/*
 * rebind.so - move a program's listening port to a private loopback port.
 *
 * websockify preloads this library (LD_PRELOAD) into a wrapped program so that
 * the program believes it listens on the public port while websockify itself
 * owns that port and relays WebSocket clients to the program.
 *
 * How it works: bind() is interposed. A bind of a TCP socket whose port is
 * REBIND_OLD_PORT, on any address of either family (0.0.0.0, a specific IPv4
 * address, ::, ::1, an IPv4-mapped address), is turned into a bind on loopback
 * of the same family (127.0.0.1, ::1, or ::ffff:127.0.0.1) at REBIND_NEW_PORT.
 * Every other bind passes through untouched, so nothing of the program can stay
 * reachable on the public port from outside.
 *
 * Race-free private port: with REBIND_NEW_PORT=0 the kernel chooses the port at
 * the first moved bind; later moved binds in the same process (the other address
 * family, say) reuse it. If REBIND_PORT_FILE is set, the address and port are
 * written there ("HOST PORT\n", written to a temporary file and renamed, so the
 * reader never sees half a line) for websockify to connect to. Children inherit
 * LD_PRELOAD and the variables, so a daemonizing program's server is moved too.
 *
 * Used by hand, upstream's way still works:
 *   REBIND_OLD_PORT=5901 REBIND_NEW_PORT=15901 LD_PRELOAD=./rebind.so vncserver :1
 * REBIND_DEBUG=1 prints each moved bind on standard error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

/* Private port the kernel chose for this process; 0 until the first moved bind. */
static int chosen_port;

/* A port from the environment: 0..65535, or -1 when unset or not a number. */
static int env_port(const char *name)
{
    const char *text = getenv(name);
    char *end;
    long value;

    if (text == NULL || *text == '\0')
        return -1;
    errno = 0;
    value = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < 0 || value > 65535)
        return -1;
    return (int)value;
}

static bind_fn real_bind(void)
{
    static bind_fn fn;

    if (fn == NULL)
        fn = (bind_fn)dlsym(RTLD_NEXT, "bind");
    return fn;
}

static void report(const char *host, int port)
{
    const char *path = getenv("REBIND_PORT_FILE");
    char tmp[4096], line[80];
    int fd, len, saved_errno = errno;

    if (path == NULL || *path == '\0')
        return;
    if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
        return;
    len = snprintf(line, sizeof line, "%s %d\n", host, port);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (write(fd, line, (size_t)len) == len && close(fd) == 0)
            rename(tmp, path);
        else
            unlink(tmp);
    }
    errno = saved_errno;
}

static int is_stream_socket(int fd)
{
    int type = 0;
    socklen_t size = sizeof type;

    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) == 0 && type == SOCK_STREAM;
}

int bind(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    int old_port = env_port("REBIND_OLD_PORT");
    int new_port = env_port("REBIND_NEW_PORT");
    struct sockaddr_storage moved;
    const char *host;
    int port, rc;

    if (real_bind() == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (old_port <= 0 || new_port < 0 || addr == NULL || !is_stream_socket(fd))
        return real_bind()(fd, addr, addrlen);

    port = new_port ? new_port : __atomic_load_n(&chosen_port, __ATOMIC_SEQ_CST);
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

    rc = real_bind()(fd, (struct sockaddr *)&moved, addrlen);
    if (rc != 0)
        return rc;
    if (port == 0) {
        struct sockaddr_storage bound;
        socklen_t size = sizeof bound;

        if (getsockname(fd, (struct sockaddr *)&bound, &size) == 0) {
            port = bound.ss_family == AF_INET
                ? ntohs(((struct sockaddr_in *)&bound)->sin_port)
                : ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
            __atomic_store_n(&chosen_port, port, __ATOMIC_SEQ_CST);
        }
    }
    if (getenv("REBIND_DEBUG") != NULL)
        fprintf(stderr, "rebind: port %d moved to %s:%d\n", old_port, host, port);
    report(host, port);
    return rc;
}
