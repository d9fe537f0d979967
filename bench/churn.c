/*
 * churn.c — connection churn and idle clients against slotgated, with its
 * RSS and open files watched (bench/churn.sh runs it).
 *
 *   churn --gateway H:P --sg-pid PID [--cycles N] [--idle N] [--idle-secs S]
 *         [--rss-slack KB] [--upstream-max N]
 *
 * 1. warm-up: 2 000 cycles and one run of the idle clients, so that what is
 *    made once (the upstream connections, the allocator's arenas) is made;
 *    then the baseline.
 * 2. --cycles (default 100 000) connect/command/close cycles, in turns:
 *    PING and a graceful close; SET through to the cluster; GET and a close
 *    with RST (SO_LINGER 0); SET and a close before the reply comes (the
 *    session ends with a command in flight); half a request and a close.
 * 3. twice: --idle (default 1 000) clients connect, each says PING once,
 *    then stay idle --idle-secs (default 5) and close (half with RST).
 * After each part: RSS and open files once no client session is left and the
 * count is steady (waits up to 10 s), the files told apart from
 * /proc/PID/net/tcp: client sessions (TCP on the gateway's port), upstream
 * connections (other TCP: the pools to the nodes) and the rest. Pass: no
 * client session left, the rest exactly as at the baseline, the upstream
 * connections at most --upstream-max (default 64: a pool may keep the
 * connections it opened when commands overlapped, up to
 * optimisation_max_idle per node; a leak of one per cycle would be
 * thousands), the RSS within --rss-slack kB (default 2048) of the baseline,
 * and every reply right. Exit status 0 on a pass, 1 otherwise.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in gw;
static long sg_pid;
static long cycles = 100000, nidle = 1000, idle_secs = 5, rss_slack = 2048, upstream_max = 64;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long rss_kb(void) {
    char path[64], line[256];
    long kb = -1;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%ld/status", sg_pid);
    if ((f = fopen(path, "r")) == NULL) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
    fclose(f);
    return kb;
}

static int nfds(void) {
    char path[64];
    DIR *d;
    struct dirent *e;
    int n = 0;
    snprintf(path, sizeof path, "/proc/%ld/fd", sg_pid);
    if ((d = opendir(path)) == NULL) return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* The gateway's open files, by what they are. */
typedef struct files {
    int all;      /* every open file */
    int clients;  /* TCP connections on the gateway's port: client sessions */
    int upstream; /* other TCP connections: to the nodes (the pools) */
    int other;    /* the rest: listeners, pipes, event fds, epoll, logs */
} files;

/* Fills f; -1 when the gateway's /proc entries cannot be read. */
static int files_of(files *f) {
    char path[128], link[128], line[512];
    DIR *d;
    struct dirent *e;
    FILE *tcp;
    static unsigned long inode[65536];
    static unsigned char kind[65536]; /* 1 client, 2 upstream, 3 listening */
    size_t n = 0, i;
    memset(f, 0, sizeof *f);
    snprintf(path, sizeof path, "/proc/%ld/net/tcp", sg_pid);
    if ((tcp = fopen(path, "r")) == NULL) return -1;
    while (fgets(line, sizeof line, tcp) && n < 65536) {
        unsigned lport, rport, st;
        unsigned long ino;
        if (sscanf(line, " %*d: %*x:%x %*x:%x %x %*x:%*x %*x:%*x %*x %*d %*d %lu", &lport, &rport,
                   &st, &ino) != 4 || ino == 0)
            continue;
        inode[n] = ino;
        kind[n] = st == 0x0A ? 3 : lport == ntohs(gw.sin_port) ? 1 : 2;
        n++;
    }
    fclose(tcp);
    snprintf(path, sizeof path, "/proc/%ld/fd", sg_pid);
    if ((d = opendir(path)) == NULL) return -1;
    while ((e = readdir(d)) != NULL) {
        char fp[400];
        ssize_t l;
        unsigned long ino;
        int k = 0;
        if (e->d_name[0] == '.') continue;
        f->all++;
        snprintf(fp, sizeof fp, "%s/%s", path, e->d_name);
        if ((l = readlink(fp, link, sizeof link - 1)) < 0) continue;
        link[l] = '\0';
        if (sscanf(link, "socket:[%lu]", &ino) == 1)
            for (i = 0; i < n; i++)
                if (inode[i] == ino) k = kind[i];
        if (k == 1) f->clients++;
        else if (k == 2) f->upstream++;
        else f->other++;
    }
    closedir(d);
    return 0;
}

typedef struct snap {
    long rss;
    files f;
} snap;

/* Waits (up to 10 s) until no client session is open and the open files are
 * steady for 300 ms, then takes RSS and the files; prints them as name. */
static snap settle(const char *name) {
    uint64_t deadline = now_ms() + 10000, since = now_ms();
    snap s;
    int last = -1;
    for (;;) {
        files_of(&s.f);
        if (s.f.all != last) {
            last = s.f.all;
            since = now_ms();
        }
        if (s.f.clients == 0 && now_ms() - since >= 300) break;
        if (now_ms() >= deadline) break;
        sleep_ms(20);
    }
    s.rss = rss_kb();
    printf("%s: RSS %ld kB; open files %d: %d client sessions, %d upstream connections, %d "
           "other\n",
           name, s.rss, s.f.all, s.f.clients, s.f.upstream, s.f.other);
    return s;
}

static void die(const char *what) {
    fprintf(stderr, "churn: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int connect_gw(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0) die("socket");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&gw, sizeof gw) != 0) die("connect to the gateway");
    return fd;
}

static void send_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die("write to the gateway");
        s += w;
        n -= (size_t)w;
    }
}

/* Reads one reply line ending in \r\n (and a bulk's body); 0, or -1. */
static int read_reply(int fd, char *buf, size_t len) {
    size_t got = 0;
    struct pollfd p = {fd, POLLIN, 0};
    while (got + 1 < len) {
        ssize_t r;
        if (poll(&p, 1, 10000) != 1) return -1;
        r = read(fd, buf + got, len - 1 - got);
        if (r <= 0) return -1;
        got += (size_t)r;
        buf[got] = '\0';
        if (buf[0] == '$' && got > 2) { /* a bulk: its header and body */
            long n = atol(buf + 1);
            char *body = strstr(buf, "\r\n");
            if (n < 0 && body) return 0;
            if (body && (size_t)(body + 2 + n + 2 - buf) <= got) return 0;
        } else if (got >= 2 && buf[got - 2] == '\r' && buf[got - 1] == '\n') {
            return 0;
        }
    }
    return -1;
}

static void close_rst(int fd) {
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static long errors;

static void expect(int fd, const char *want, const char *what) {
    char buf[512];
    if (read_reply(fd, buf, sizeof buf) != 0) {
        if (errors++ < 10) fprintf(stderr, "churn: %s: no reply\n", what);
    } else if (want && strncmp(buf, want, strlen(want)) != 0) {
        if (errors++ < 10) fprintf(stderr, "churn: %s: %.200s\n", what, buf);
    }
}

static void cycle(long i) {
    char cmd[128];
    int fd = connect_gw(), n;
    long k = i % 1000;
    switch (i % 5) {
    case 0: /* PING, graceful close */
        send_all(fd, "*1\r\n$4\r\nPING\r\n", 14);
        expect(fd, "+PONG", "PING");
        close(fd);
        break;
    case 1: /* SET through to the cluster */
        n = snprintf(cmd, sizeof cmd, "*3\r\n$3\r\nSET\r\n$%d\r\nchurn:%ld\r\n$2\r\nv1\r\n",
                     (int)snprintf(NULL, 0, "churn:%ld", k), k);
        send_all(fd, cmd, (size_t)n);
        expect(fd, "+OK", "SET");
        close(fd);
        break;
    case 2: /* GET, then a close with RST */
        n = snprintf(cmd, sizeof cmd, "*2\r\n$3\r\nGET\r\n$%d\r\nchurn:%ld\r\n",
                     (int)snprintf(NULL, 0, "churn:%ld", k), k);
        send_all(fd, cmd, (size_t)n);
        expect(fd, NULL, "GET");
        close_rst(fd);
        break;
    case 3: /* SET and gone before the reply */
        n = snprintf(cmd, sizeof cmd, "*3\r\n$3\r\nSET\r\n$%d\r\nchurn:%ld\r\n$2\r\nv2\r\n",
                     (int)snprintf(NULL, 0, "churn:%ld", k), k);
        send_all(fd, cmd, (size_t)n);
        if (i % 10 == 3) close_rst(fd);
        else close(fd);
        break;
    default: /* half a request */
        send_all(fd, "*3\r\n$3\r\nSET\r\n$5\r\nchu", 22);
        close(fd);
        break;
    }
}

static void idle_run(const char *name) {
    int *fds = calloc((size_t)nidle, sizeof *fds);
    long i;
    uint64_t t0 = now_ms();
    if (fds == NULL) die("calloc");
    for (i = 0; i < nidle; i++) {
        fds[i] = connect_gw();
        send_all(fds[i], "*1\r\n$4\r\nPING\r\n", 14);
    }
    for (i = 0; i < nidle; i++) expect(fds[i], "+PONG", "idle PING");
    printf("%s: %ld idle clients connected in %llu ms: RSS %ld kB, %d open files\n", name, nidle,
           (unsigned long long)(now_ms() - t0), rss_kb(), nfds());
    fflush(stdout);
    sleep_ms((int)(idle_secs * 1000));
    printf("%s: after %ld s idle: RSS %ld kB, %d open files\n", name, idle_secs, rss_kb(), nfds());
    for (i = 0; i < nidle; i++) {
        if (i % 2) close_rst(fds[i]);
        else close(fds[i]);
    }
    free(fds);
}

static void usage(void) {
    fprintf(stderr, "usage: churn --gateway HOST:PORT --sg-pid PID [--cycles N] [--idle N] "
                    "[--idle-secs S] [--rss-slack KB] [--upstream-max N]\n(see the top of "
                    "bench/churn.c)\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *addr = NULL;
    char host[64];
    long i;
    snap s0, base, after_cycles, after_idle1, end;
    int ok;
    uint64_t t0;
    struct rlimit rl;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) usage();
        if (strcmp(a, "--gateway") == 0) addr = v;
        else if (strcmp(a, "--sg-pid") == 0) sg_pid = atol(v);
        else if (strcmp(a, "--cycles") == 0) cycles = atol(v);
        else if (strcmp(a, "--idle") == 0) nidle = atol(v);
        else if (strcmp(a, "--idle-secs") == 0) idle_secs = atol(v);
        else if (strcmp(a, "--rss-slack") == 0) rss_slack = atol(v);
        else if (strcmp(a, "--upstream-max") == 0) upstream_max = atol(v);
        else usage();
        i++;
    }
    if (addr == NULL || sg_pid <= 0 || cycles < 0 || nidle < 0 || idle_secs < 0) usage();
    {
        const char *colon = strrchr(addr, ':');
        if (colon == NULL || (size_t)(colon - addr) >= sizeof host) usage();
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
        memset(&gw, 0, sizeof gw);
        gw.sin_family = AF_INET;
        gw.sin_port = htons((uint16_t)atoi(colon + 1));
        if (inet_pton(AF_INET, host, &gw.sin_addr) != 1) usage();
    }
    /* the idle clients need a file each */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nidle + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)nidle + 64 ? rl.rlim_max : (rlim_t)nidle + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    printf("slotgated pid %ld\n", sg_pid);
    s0 = settle("start");
    for (i = 0; i < 2000; i++) cycle(i);
    idle_run("warm-up");
    base = settle("baseline, after the warm-up");

    t0 = now_ms();
    for (i = 0; i < cycles; i++) {
        cycle(i);
        if ((i + 1) % 20000 == 0)
            printf("  %ld cycles, %.0f/s: RSS %ld kB, %d open files\n", i + 1,
                   (i + 1) * 1000.0 / (double)(now_ms() - t0 + 1), rss_kb(), nfds());
    }
    printf("%ld connect/command/close cycles in %llu ms\n", cycles,
           (unsigned long long)(now_ms() - t0));
    after_cycles = settle("after the cycles");
    idle_run("idle run 1");
    after_idle1 = settle("idle run 1 closed");
    idle_run("idle run 2");
    end = settle("idle run 2 closed");

    /* the pools may keep more idle connections than at the baseline (they
     * grow to the concurrency they met); everything else must come back */
    ok = end.rss >= 0 && end.f.clients == 0 && after_cycles.f.clients == 0 &&
         end.f.other == base.f.other && after_cycles.f.other == base.f.other &&
         end.f.upstream <= upstream_max && after_cycles.f.upstream <= upstream_max &&
         end.rss - base.rss <= rss_slack && after_cycles.rss - base.rss <= rss_slack &&
         errors == 0;
    printf("\n==== churn: %ld cycles, %ld idle clients (twice)\n", cycles, nidle);
    printf("open files (all = client sessions + upstream + other):\n");
    printf("  start %d = %d + %d + %d; baseline %d = %d + %d + %d; after the cycles %d = %d + %d + "
           "%d; after the idle runs %d = %d + %d + %d\n",
           s0.f.all, s0.f.clients, s0.f.upstream, s0.f.other, base.f.all, base.f.clients,
           base.f.upstream, base.f.other, after_cycles.f.all, after_cycles.f.clients,
           after_cycles.f.upstream, after_cycles.f.other, end.f.all, end.f.clients,
           end.f.upstream, end.f.other);
    printf("  (wanted: no client session, \"other\" as at the baseline, upstream at most %ld)\n",
           upstream_max);
    printf("RSS: %ld kB at the start, %ld kB baseline, %ld kB after the cycles, %ld / %ld kB after "
           "idle runs 1 / 2 (wanted: at most baseline + %ld kB)\n",
           s0.rss, base.rss, after_cycles.rss, after_idle1.rss, end.rss, rss_slack);
    printf("wrong or missing replies: %ld\n", errors);
    printf("RESULT churn cycles=%ld idle=%ld fds0=%d fds_base=%d fds_cycles=%d fds_end=%d "
           "upstream_base=%d upstream_end=%d rss0_kb=%ld rss_base_kb=%ld rss_cycles_kb=%ld "
           "rss_end_kb=%ld errors=%ld verdict=%s\n",
           cycles, nidle, s0.f.all, base.f.all, after_cycles.f.all, end.f.all, base.f.upstream,
           end.f.upstream, s0.rss, base.rss, after_cycles.rss, end.rss, errors,
           ok ? "pass" : "FAIL");
    return ok ? 0 : 1;
}
