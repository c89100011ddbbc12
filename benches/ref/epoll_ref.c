/* A minimal epoll TCP client and server: the reference for benches/conn.sh, showing what the
 * kernel does with no tool overhead. Loopback only; every loop is bounded by its count.
 *   epoll_ref server PORT            accept, read, close on EOF (runs until killed)
 *   epoll_ref churn PORT N CONC      connect, send 12 bytes, close; N times, CONC in flight
 *   epoll_ref hold PORT N CONC       open N connections, keep them, print the ramp rate
 * Prints "rate <connections per second>" for churn and hold. */
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

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static struct sockaddr_in addr(int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static void raise_nofile(void) {
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
}

static int server(int port) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = addr(port);
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4096)) { perror("listen"); return 1; }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l}, evs[1024];
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    char buf[4096];
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        int n = epoll_wait(ep, evs, 1024, 1000);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l) {
                for (int c; (c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0;) {
                    struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
                }
            } else {
                ssize_t r;
                while ((r = read(fd, buf, sizeof buf)) > 0) {}
                if (r == 0 || (r < 0 && errno != EAGAIN)) close(fd);
            }
        }
    }
}

static int client(int port, long total, int conc, int hold) {
    int ep = epoll_create1(0);
    struct epoll_event evs[1024];
    struct sockaddr_in a = addr(port);
    long started = 0, done = 0, failed = 0;
    int inflight = 0;
    double t0 = now(), ramp = 0;
    while (done + failed < total) {
        while (inflight < conc && started < total) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            started++;
            if (fd < 0) { failed++; continue; }
            if (connect(fd, (struct sockaddr *)&a, sizeof a) && errno != EINPROGRESS) {
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
    ramp = now() - t0;
    printf("rate %.0f established %ld failed %ld\n", done / ramp, done, failed);
    fflush(stdout);
    if (hold) sleep(1);
    return 0;
}

int main(int argc, char **argv) {
    raise_nofile();
    if (argc == 3 && !strcmp(argv[1], "server")) return server(atoi(argv[2]));
    if (argc == 5 && !strcmp(argv[1], "churn")) return client(atoi(argv[2]), atol(argv[3]), atoi(argv[4]), 0);
    if (argc == 5 && !strcmp(argv[1], "hold")) return client(atoi(argv[2]), atol(argv[3]), atoi(argv[4]), 1);
    fprintf(stderr, "usage: epoll_ref server PORT | churn PORT N CONC | hold PORT N CONC\n");
    return 2;
}
