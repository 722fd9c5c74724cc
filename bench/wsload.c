/* wsload: the benchmark's load generator and its target server, one binary.
 *
 *   wsload serve [--raw-port P] [--ws-port P]
 *       the target server on 127.0.0.1; prints "listening RAWPORT WSPORT"
 *   wsload run --connect 127.0.0.1:PORT --proto tcp|ws --test TEST [options]
 *       one measurement; prints "result {json}" as its last line
 *
 * Single-threaded epoll, no libraries: it must cost far less CPU than the proxy
 * it measures. Only loopback addresses are accepted.
 */
#include "wsload.h"

#include <stdio.h>
#include <string.h>

static void usage(void) {
    fputs("usage: wsload serve [--raw-port P] [--ws-port P]\n"
          "       wsload run --connect 127.0.0.1:PORT --proto tcp|ws --test TEST [options]\n"
          "TEST: up | down | lat | conns | idle | rate (see bench/README.md)\n",
          stderr);
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "serve") == 0) return serve_main(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "run") == 0) return client_main(argc - 2, argv + 2);
    usage();
    return 2;
}
