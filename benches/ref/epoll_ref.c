/* A minimal epoll TCP client and server: the reference for benches/conn.sh and
 * benches/conn_million.sh, showing what the kernel does with no tool overhead. Loopback only;
 * every loop is bounded by its count and the server by its lifetime.
 *   epoll_ref server PORT [NADDR [SECONDS]]
 *       listen on 127.0.0.1..127.0.0.NADDR (SO_REUSEPORT, so several processes share the
 *       port), accept, read, close on EOF; exits after SECONDS (default 600)
 *   epoll_ref churn PORT N CONC [NADDR [NSRC [0]]]   connect, send 12 bytes, close; N times
 *   epoll_ref hold PORT N CONC [NADDR [NSRC [SECONDS]]]
 *       open N connections, keep them for SECONDS (default 1) after the ramp
 * Clients spread over NADDR destinations (127.0.0.1..) and, with NSRC > 0, bind sources
 * 127.0.1.1..127.0.1.NSRC with IP_BIND_ADDRESS_NO_PORT (the port is still chosen per
 * destination at connect), round robin, as netprofile's client does. They print
 *   rate R established E failed F start T0 end T1
 * with T0 (first connect) and T1 (last connect settled) in CLOCK_MONOTONIC seconds, so a script
 * can merge several processes: total established / (latest end - earliest start). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXADDR 250

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* 127.0.HI.LO */
static struct sockaddr_in addr(int hi, int lo, int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl((127u << 24) | ((unsigned)hi << 8) | (unsigned)lo);
    return a;
}

static void raise_nofile(void) {
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
}

static int server(int port, int naddr, int seconds) {
    int ep = epoll_create1(0), one = 1;
    struct epoll_event evs[1024];
    for (int i = 1; i <= naddr; i++) {
        int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        struct sockaddr_in a = addr(0, i, port);
        if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4096)) { perror("listen"); return 1; }
        /* data.u64: listener marked by the high bit. */
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (1ull << 32) | (unsigned)l};
        epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    }
    char buf[4096];
    printf("ready\n");
    fflush(stdout);
    double stop = now() + seconds;
    while (now() < stop) {
        int n = epoll_wait(ep, evs, 1024, 1000);
        for (int i = 0; i < n; i++) {
            int fd = (int)(evs[i].data.u64 & 0xffffffffu);
            if (evs[i].data.u64 >> 32) {
                for (int c; (c = accept4(fd, NULL, NULL, SOCK_NONBLOCK)) >= 0;) {
                    struct epoll_event e = {.events = EPOLLIN, .data.u64 = (unsigned)c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
                }
            } else {
                ssize_t r;
                while ((r = read(fd, buf, sizeof buf)) > 0) {}
                if (r == 0 || (r < 0 && errno != EAGAIN)) close(fd);
            }
        }
    }
    return 0;
}

static int client(int port, long total, int conc, int hold, int naddr, int nsrc, int seconds) {
    int ep = epoll_create1(0), one = 1;
    struct epoll_event evs[1024];
    struct sockaddr_in dst[MAXADDR], src[MAXADDR];
    for (int i = 0; i < naddr; i++) dst[i] = addr(0, i + 1, port);
    for (int i = 0; i < nsrc; i++) src[i] = addr(1, i + 1, 0);
    long started = 0, done = 0, failed = 0;
    int inflight = 0;
    double t0 = now();
    while (done + failed < total) {
        while (inflight < conc && started < total) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            started++;
            if (fd < 0) { failed++; continue; }
            if (nsrc > 0) {
                setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
                if (bind(fd, (struct sockaddr *)&src[started % nsrc], sizeof src[0])) {
                    close(fd); failed++; continue;
                }
            }
            if (connect(fd, (struct sockaddr *)&dst[started % naddr], sizeof dst[0]) && errno != EINPROGRESS) {
                close(fd); failed++; continue;
            }
            struct epoll_event e = {.events = EPOLLOUT, .data.fd = fd};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
            inflight++;
        }
        int n = epoll_wait(ep, evs, 1024, 1000);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd, err = 0;
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            inflight--;
            if (err) { failed++; close(fd); continue; }
            done++;
            if (write(fd, "hello world\n", 12) < 0) {}
            if (hold) epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            else close(fd);
        }
    }
    double t1 = now();
    printf("rate %.0f established %ld failed %ld start %.6f end %.6f\n", done / (t1 - t0), done, failed, t0, t1);
    fflush(stdout);
    if (hold) sleep(seconds);
    return 0;
}

int main(int argc, char **argv) {
    raise_nofile();
    int naddr = argc > 5 ? atoi(argv[5]) : 1, nsrc = argc > 6 ? atoi(argv[6]) : 0;
    if (naddr < 1 || naddr > MAXADDR || nsrc < 0 || nsrc > MAXADDR) {
        fprintf(stderr, "epoll_ref: NADDR must be 1..%d and NSRC 0..%d\n", MAXADDR, MAXADDR);
        return 2;
    }
    if (argc >= 3 && argc <= 5 && !strcmp(argv[1], "server")) {
        int n = argc > 3 ? atoi(argv[3]) : 1;
        if (n < 1 || n > MAXADDR) n = 1;
        return server(atoi(argv[2]), n, argc > 4 ? atoi(argv[4]) : 600);
    }
    if (argc >= 5 && argc <= 8 && !strcmp(argv[1], "churn"))
        return client(atoi(argv[2]), atol(argv[3]), atoi(argv[4]), 0, naddr, nsrc, 0);
    if (argc >= 5 && argc <= 8 && !strcmp(argv[1], "hold"))
        return client(atoi(argv[2]), atol(argv[3]), atoi(argv[4]), 1, naddr, nsrc, argc > 7 ? atoi(argv[7]) : 1);
    fprintf(stderr, "usage: epoll_ref server PORT [NADDR [SECONDS]] | churn PORT N CONC [NADDR [NSRC]]"
                    " | hold PORT N CONC [NADDR [NSRC [SECONDS]]]\n");
    return 2;
}
