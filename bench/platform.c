/*
 * platform.c — what this machine charges for the two things a Redis gateway
 * does most: a system call, and a message over loopback TCP to a process
 * that sleeps until it comes (the send, the receiver's wake-up, its read).
 *
 * Straight to the cluster a request at pipeline 1 is two such messages
 * (request, reply); through any proxy it is four, plus the proxy's own
 * reads and writes. Where a message costs several microseconds (a virtual
 * machine whose every system call and wake-up leaves the guest), that, not
 * the gateway's code, bounds the ratios bench/daemon.sh prints. Run by
 * bench/platform.sh, which takes the medians; prints
 *   RESULT platform syscall_us=S message_us=M
 *
 *   platform [ROUNDS]     (default 200000)
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* A connected loopback TCP pair: *a the client, *b the accepted end. */
static void tcp_pair(int *a, int *b) {
    struct sockaddr_in sa = {0};
    socklen_t len = sizeof sa;
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (l < 0) die("socket");
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&sa, &len) != 0)
        die("listen");
    if ((*a = socket(AF_INET, SOCK_STREAM, 0)) < 0) die("socket");
    if (connect(*a, (struct sockaddr *)&sa, sizeof sa) != 0) die("connect");
    if ((*b = accept(l, NULL, NULL)) < 0) die("accept");
    setsockopt(*a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(*b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    close(l);
}

/* One byte back and forth n times between this process and a child. */
static double ping_pong_us(long n) {
    int a, b;
    char c = 'x';
    long i;
    double t0, t1;
    pid_t pid;
    tcp_pair(&a, &b);
    if ((pid = fork()) < 0) die("fork");
    if (pid == 0) {
        close(a);
        for (;;) {
            if (recv(b, &c, 1, 0) != 1) _exit(0);
            if (send(b, &c, 1, 0) != 1) _exit(1);
        }
    }
    close(b);
    t0 = now_us();
    for (i = 0; i < n; i++) {
        if (send(a, &c, 1, 0) != 1 || recv(a, &c, 1, 0) != 1) die("ping-pong");
    }
    t1 = now_us();
    close(a);
    waitpid(pid, NULL, 0);
    return (t1 - t0) / (double)n;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 200000, i;
    double t0, sys_us, rt_us;
    if (n <= 0) {
        fprintf(stderr, "usage: platform [ROUNDS]\n");
        return 2;
    }
    t0 = now_us();
    for (i = 0; i < n * 5; i++) syscall(SYS_getppid);
    sys_us = (now_us() - t0) / (double)(n * 5);
    rt_us = ping_pong_us(n);
    printf("RESULT platform syscall_us=%.3f message_us=%.3f\n", sys_us, rt_us / 2);
    return 0;
}
