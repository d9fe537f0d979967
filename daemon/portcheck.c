/*
 * portcheck.c — the start-up check that no one else serves slotgated's
 * addresses. Its TCP listeners set SO_REUSEPORT (one per worker, the kernel
 * spreads connections), so a second slotgated on the same port would bind
 * without a word and take a share of the clients; and a Unix socket path is
 * unlinked before binding (a file left by an earlier run), which would steal
 * it. So before binding: each TCP address is bound once without
 * SO_REUSEPORT (that fails while anyone listens there), and each Unix
 * socket is connected to (that succeeds while anyone serves it).
 *
 * What is left: a process that starts between the check and the bind.
 */
#include <errno.h>
#include <event2/util.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "server.h"

static int tcp_free(const char *spec, char *err, size_t errlen) {
    struct sockaddr_storage ss;
    int sslen = sizeof ss, fd, one = 1, rc = 0;
    if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) != 0) return 0;
    if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) return 0;
    /* SO_REUSEADDR: connections of an earlier run in TIME_WAIT are no reason
     * to refuse; a listener is */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, (socklen_t)sslen) != 0 && errno == EADDRINUSE) {
        snprintf(err, errlen,
                 "listen %s: the address is in use (another slotgated, or another program, "
                 "listens on it; slotgated's workers share their port with SO_REUSEPORT, so a "
                 "second one would take a share of the clients)",
                 spec);
        rc = -1;
    }
    close(fd);
    return rc;
}

static int unix_free(const char *path, char *err, size_t errlen) {
    struct sockaddr_un un;
    int fd, rc = 0;
    if (strlen(path) >= sizeof un.sun_path) return 0; /* listen_on says so */
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    memcpy(un.sun_path, path, strlen(path));
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) return 0;
    if (connect(fd, (struct sockaddr *)&un, sizeof un) == 0) {
        snprintf(err, errlen,
                 "listen unix:%s: a process serves this socket already (another slotgated?); "
                 "stop it, or listen on another path",
                 path);
        rc = -1;
    }
    close(fd);
    return rc;
}

int sg_listen_check(const sg_serve_opts *o, char *err, size_t errlen) {
    int i;
    for (i = 0; i < o->nlisten; i++) {
        const char *spec = o->listen[i];
        int rc = strncmp(spec, "unix:", 5) == 0 ? unix_free(spec + 5, err, errlen)
                                                : tcp_free(spec, err, errlen);
        if (rc != 0) return -1;
    }
    return 0;
}
