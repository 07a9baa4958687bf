/*
 * tcp_rr_flows.c: a plain epoll peer for connperf's loopback bench (benches/loopback.rs), doing
 * what neper's tcp_rr and tcp_crr do: the "any epoll program" floor. No io_uring, no busy
 * polling: non-blocking sockets, level-triggered epoll, one epoll per thread.
 *
 *   server PORT THREADS                           echo server (PORT 0: any); "listening port=N"
 *   rr  HOST PORT THREADS FLOWS SECONDS SIZE      FLOWS connections, 1 request in flight each
 *   crr HOST PORT THREADS INFLIGHT SECONDS SIZE   a connection per request, RST close
 *   paced HOST PORT THREADS FLOWS SECONDS SIZE RATE
 *                                     FLOWS connections, RATE requests/s each (tcpkali-style)
 *
 * Clients print "requests=N seconds=S errors=E cpu_user=U cpu_sys=S": N round trips (rr, paced)
 * or transactions (crr) completed inside each thread's SECONDS-long window, which starts once
 * every thread is ready (rr, paced: all its connections established). paced adds latency
 * percentiles: "p50_us= p99_us= p999_us= max_us=" from each request's send to its echo, and
 * "due_p99_us=" from the moment it was due.
 *
 * Build: cc -O2 -Wall -pthread -o tcp_rr_flows tcp_rr_flows.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXEV 256
#define SRV_BUF 65536

/* Per-descriptor state, indexed by fd: each fd belongs to one thread, so no locking. */
struct conn {
    int sent, got; /* client: bytes of the current request sent, of its echo received */
    int out;       /* client (rr): registered for EPOLLOUT instead of EPOLLIN */
    int flow;      /* client (paced): index of the flow in its thread */
    char *pend;    /* server: echo bytes the socket did not take yet */
    int plen, poff;
};

static struct conn *C;
static long NFD;
static int T, SIZE, SECS, COUNT, RATE; /* COUNT: FLOWS (rr, paced) or INFLIGHT (crr) */
static struct sockaddr_in ADDR;
static pthread_barrier_t BAR;

struct targ {
    pthread_t tid;
    int id, lfd;
    long n, errors;
    double *lat, *late; /* paced: send->echo and due->echo latencies, seconds */
    long nlat;
};

static void die(const char *what) { perror(what); exit(1); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void ep_ctl(int ep, int op, int fd, unsigned ev) {
    struct epoll_event e = { .events = ev, .data.fd = fd };
    if (epoll_ctl(ep, op, fd, &e)) die("epoll_ctl");
}

/* Milliseconds to wait for events before `end`, at least 1 (no spinning on the deadline). */
static int wait_ms(double end, double t) { return (int)((end - t) * 1000) + 1; }

/* ceil for x >= 0 (no libm). */
static long ceil_pos(double x) {
    long i = (long)x;
    return i + (x > i);
}

/* ---- server: read, write the same bytes back ---- */

static void drop(int fd) { free(C[fd].pend); C[fd].pend = NULL; close(fd); }

static void *server(void *arg) {
    struct targ *a = arg;
    int ep = epoll_create1(0);
    char *buf = malloc(SRV_BUF);
    struct epoll_event ev[MAXEV];
    if (ep < 0 || !buf) die("server setup");
    ep_ctl(ep, EPOLL_CTL_ADD, a->lfd, EPOLLIN);
    for (;;) {
        int n = epoll_wait(ep, ev, MAXEV, -1);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            if (fd == a->lfd) { /* one accept per event: level-triggered epoll reports the rest */
                int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK);
                if (c < 0) continue;
                if (c >= NFD) { close(c); continue; }
                C[c] = (struct conn){ 0 }; /* TCP_NODELAY: inherited from the listener */
                ep_ctl(ep, EPOLL_CTL_ADD, c, EPOLLIN);
                continue;
            }
            struct conn *k = &C[fd];
            if (k->pend) { /* writable again: flush what is pending, then read again */
                ssize_t w = write(fd, k->pend + k->poff, k->plen - k->poff);
                if (w < 0 && errno == EAGAIN) continue;
                if (w <= 0) { drop(fd); continue; }
                if ((k->poff += w) == k->plen) {
                    free(k->pend);
                    k->pend = NULL;
                    ep_ctl(ep, EPOLL_CTL_MOD, fd, EPOLLIN);
                }
                continue;
            }
            ssize_t r = read(fd, buf, SRV_BUF);
            if (r < 0 && errno == EAGAIN) continue;
            if (r <= 0) { drop(fd); continue; } /* end of stream, RST or error */
            ssize_t w = write(fd, buf, r);
            if (w == r) continue;
            if (w < 0 && errno != EAGAIN) { drop(fd); continue; }
            if (w < 0) w = 0;
            /* Partial write: keep the rest, stop reading until it is out. */
            k->plen = r - w;
            k->poff = 0;
            if (!(k->pend = malloc(k->plen))) die("malloc");
            memcpy(k->pend, buf + w, k->plen);
            ep_ctl(ep, EPOLL_CTL_MOD, fd, EPOLLOUT);
        }
    }
    return NULL;
}

static int run_server(int port) {
    struct targ *a = calloc(T, sizeof *a);
    int one = 1;
    if (!a) die("calloc");
    for (int i = 0; i < T; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd < 0) die("socket");
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one))
            die("setsockopt");
        ADDR.sin_port = htons(port);
        if (bind(fd, (struct sockaddr *)&ADDR, sizeof ADDR)) die("bind");
        if (listen(fd, 4096)) die("listen");
        if (port == 0) { /* the first listener picks the port; the others join it */
            socklen_t len = sizeof ADDR;
            if (getsockname(fd, (struct sockaddr *)&ADDR, &len)) die("getsockname");
            port = ntohs(ADDR.sin_port);
        }
        a[i].lfd = fd;
    }
    for (int i = 0; i < T; i++)
        if (pthread_create(&a[i].tid, NULL, server, &a[i])) die("pthread_create");
    printf("listening port=%d threads=%d\n", port, T);
    fflush(stdout);
    for (int i = 0; i < T; i++) pthread_join(a[i].tid, NULL);
    return 0;
}

/* ---- rr: persistent connections, closed loop (neper tcp_rr) ---- */

/* Send the rest of the current request; wait for writability while the socket takes only part. */
static int send_rest(int ep, int fd, const char *msg) {
    struct conn *k = &C[fd];
    ssize_t w = write(fd, msg + k->sent, SIZE - k->sent);
    if (w < 0 && errno != EAGAIN) return -1;
    if (w > 0) k->sent += w;
    int out = k->sent < SIZE;
    if (out != k->out) {
        k->out = out;
        ep_ctl(ep, EPOLL_CTL_MOD, fd, out ? EPOLLOUT : EPOLLIN);
    }
    return 0;
}

/* Read what has come of fd's echo: 1 when all SIZE bytes are in, 0 when more is to come,
 * -1 when the connection failed or closed. */
static int read_echo(int fd, char *buf) {
    struct conn *k = &C[fd];
    ssize_t r = read(fd, buf, SIZE - k->got);
    if (r < 0 && errno == EAGAIN) return 0;
    if (r <= 0) return -1;
    return (k->got += r) == SIZE;
}

/* A connected, non-blocking, TCP_NODELAY socket registered for EPOLLIN. */
static int dial(int ep) {
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (fd >= NFD) die("too many descriptors");
    if (connect(fd, (struct sockaddr *)&ADDR, sizeof ADDR)) die("connect");
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) ||
        fcntl(fd, F_SETFL, O_NONBLOCK))
        die("socket setup");
    C[fd] = (struct conn){ 0 };
    ep_ctl(ep, EPOLL_CTL_ADD, fd, EPOLLIN);
    return fd;
}

static void *rr(void *arg) {
    struct targ *a = arg;
    int nf = COUNT / T + (a->id < COUNT % T);
    int ep = epoll_create1(0), *fds = calloc(nf, sizeof *fds);
    char *msg = malloc(SIZE), *buf = malloc(SIZE);
    struct epoll_event ev[MAXEV];
    if (ep < 0 || !fds || !msg || !buf) die("rr setup");
    memset(msg, 'x', SIZE);
    for (int i = 0; i < nf; i++) fds[i] = dial(ep);
    pthread_barrier_wait(&BAR);
    double end = now_s() + SECS;
    for (int i = 0; i < nf; i++)
        if (send_rest(ep, fds[i], msg)) { a->errors++; close(fds[i]); }
    for (;;) {
        double t = now_s();
        if (t >= end) break;
        int n = epoll_wait(ep, ev, MAXEV, wait_ms(end, t));
        if (n < 0 && errno != EINTR) die("epoll_wait");
        if (now_s() >= end) break; /* count only what completed inside the window */
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            struct conn *k = &C[fd];
            if (k->sent < SIZE) { /* writable: the rest of the request */
                if (send_rest(ep, fd, msg)) goto fail;
                continue;
            }
            int got = read_echo(fd, buf);
            if (got < 0) goto fail;
            if (got == 0) continue;
            a->n++;
            k->got = k->sent = 0;
            if (send_rest(ep, fd, msg) == 0) continue;
        fail:
            a->errors++; /* a failed flow is not replaced */
            close(fd);
        }
    }
    return NULL;
}

/* ---- crr: a connection per request, closed loop, RST close (neper tcp_crr) ---- */

static int start_conn(int ep) {
    static const struct linger rst = { 1, 0 };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    if (fd >= NFD || setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof rst) ||
        (connect(fd, (struct sockaddr *)&ADDR, sizeof ADDR) && errno != EINPROGRESS)) {
        close(fd);
        return -1;
    }
    C[fd] = (struct conn){ 0 };
    ep_ctl(ep, EPOLL_CTL_ADD, fd, EPOLLOUT);
    return 0;
}

static void *crr(void *arg) {
    struct targ *a = arg;
    int want = COUNT / T + (a->id < COUNT % T), inflight = 0, ep = epoll_create1(0);
    char *msg = malloc(SIZE), *buf = malloc(SIZE);
    struct epoll_event ev[MAXEV];
    if (ep < 0 || !msg || !buf) die("crr setup");
    memset(msg, 'x', SIZE);
    pthread_barrier_wait(&BAR);
    double end = now_s() + SECS;
    for (;;) {
        for (; inflight < want; inflight++)
            if (start_conn(ep)) { a->errors++; break; } /* retried within 10 ms */
        double t = now_s();
        if (t >= end) break;
        int ms = wait_ms(end, t);
        int n = epoll_wait(ep, ev, MAXEV, inflight < want && ms > 10 ? 10 : ms);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        if (now_s() >= end) break;
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            struct conn *k = &C[fd];
            if (k->sent < SIZE) { /* connected (or failed): send the request */
                if (ev[i].events & (EPOLLERR | EPOLLHUP)) goto fail;
                ssize_t w = write(fd, msg + k->sent, SIZE - k->sent);
                if (w < 0 && errno == EAGAIN) continue;
                if (w <= 0) goto fail;
                if ((k->sent += w) == SIZE) ep_ctl(ep, EPOLL_CTL_MOD, fd, EPOLLIN);
                continue;
            }
            int got = read_echo(fd, buf);
            if (got < 0) goto fail;
            if (got == 0) continue;
            a->n++;
            close(fd); /* SO_LINGER {1, 0}: RST, no TIME_WAIT */
            inflight--;
            continue;
        fail:
            a->errors++;
            close(fd);
            inflight--;
        }
    }
    return NULL;
}

/* ---- paced: persistent connections on a schedule (tcpkali --message-rate) ---- */

/* Each flow sends RATE requests/s whatever the replies (open loop, as tcpkali does), the flows'
 * schedules spread evenly over the first period. The thread wakes on an epoll_wait timeout in
 * whole milliseconds, rounded up, as libev (tcpkali's event loop) does; a flow that fell behind
 * sends everything due at once, as tcpkali's token bucket does. */

#define RING 256 /* requests in flight per flow */

struct flow {
    int fd;
    double due;
    double sent[RING], slot[RING]; /* send time and due time of the requests in flight */
    unsigned head, tail;
};

static void *paced(void *arg) {
    struct targ *a = arg;
    int nf = COUNT / T + (a->id < COUNT % T), ep = epoll_create1(0);
    /* This thread's flows are flows first, first + T, ... of all COUNT. */
    struct flow *f = calloc(nf, sizeof *f);
    char *msg = malloc(SIZE), *buf = malloc(SRV_BUF);
    long cap = (long)RATE * nf * (SECS + 1) + 1024;
    a->lat = malloc(cap * sizeof *a->lat);
    a->late = malloc(cap * sizeof *a->late);
    struct epoll_event ev[MAXEV];
    if (ep < 0 || !f || !msg || !buf || !a->lat || !a->late) die("paced setup");
    memset(msg, 'x', SIZE);
    for (int i = 0; i < nf; i++) {
        f[i].fd = dial(ep);
        C[f[i].fd].flow = i;
    }
    double period = 1.0 / RATE;
    pthread_barrier_wait(&BAR);
    double start = now_s(), end = start + SECS;
    for (int i = 0; i < nf; i++) f[i].due = start + period * (a->id + (double)i * T) / COUNT;
    for (;;) {
        double t = now_s(), next = end;
        if (t >= end) break;
        for (int i = 0; i < nf; i++) {
            struct flow *g = &f[i];
            for (; g->fd >= 0 && g->due <= t; g->due += period) {
                if (g->tail - g->head == RING) {
                    a->errors++; /* a full pipeline: the slot is lost */
                    continue;
                }
                double sent = now_s(); /* before the write, as connperf stamps its sends */
                ssize_t w = write(g->fd, msg, SIZE);
                if (w < 0 && errno == EAGAIN) {
                    a->errors++; /* a full socket: the slot is lost */
                    continue;
                }
                if (w != SIZE) { /* failed, or sent in part: the echo stream would be off */
                    a->errors++;
                    close(g->fd);
                    g->fd = -1;
                    break;
                }
                g->sent[g->tail % RING] = sent;
                g->slot[g->tail % RING] = g->due;
                g->tail++;
            }
            if (g->fd >= 0 && g->due < next) next = g->due;
        }
        int n = epoll_wait(ep, ev, MAXEV, (int)ceil_pos((next - t) * 1000));
        if (n < 0 && errno != EINTR) die("epoll_wait");
        t = now_s();
        if (t >= end) break;
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            struct flow *g = &f[C[fd].flow];
            ssize_t r = read(fd, buf, SRV_BUF);
            if (r < 0 && errno == EAGAIN) continue;
            if (r <= 0) { /* a failed flow is not replaced */
                a->errors++;
                close(fd);
                g->fd = -1;
                continue;
            }
            for (C[fd].got += r; C[fd].got >= SIZE && g->head != g->tail; C[fd].got -= SIZE) {
                unsigned k = g->head++ % RING;
                a->n++;
                if (a->nlat < cap) {
                    a->lat[a->nlat] = t - g->sent[k];
                    a->late[a->nlat++] = t - g->slot[k];
                }
            }
        }
    }
    return NULL;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The q-quantile of n sorted values, microseconds. */
static double pct_us(const double *v, long n, double q) {
    if (n == 0) return NAN;
    long i = ceil_pos(q * n) - 1;
    return v[i < 0 ? 0 : i] * 1e6;
}

/* All threads' latencies of `which` (0: from the send, 1: from the due time), sorted. */
static double *gather(struct targ *a, int which, long *n) {
    *n = 0;
    for (int i = 0; i < T; i++) *n += a[i].nlat;
    double *v = malloc((*n + 1) * sizeof *v);
    if (!v) die("malloc");
    long k = 0;
    for (int i = 0; i < T; i++) {
        memcpy(v + k, which ? a[i].late : a[i].lat, a[i].nlat * sizeof *v);
        k += a[i].nlat;
    }
    qsort(v, *n, sizeof *v, cmp_double);
    return v;
}

/* ---- main ---- */

static int num(const char *s, int min) {
    char *e;
    long v = strtol(s, &e, 10);
    if (*s == '\0' || *e != '\0' || v < min || v > 1 << 24) {
        fprintf(stderr, "bad number %s (want >= %d)\n", s, min);
        exit(2);
    }
    return (int)v;
}

static void usage(void) {
    fprintf(stderr, "usage: tcp_rr_flows server PORT THREADS\n"
                    "       tcp_rr_flows rr HOST PORT THREADS FLOWS SECONDS SIZE\n"
                    "       tcp_rr_flows crr HOST PORT THREADS INFLIGHT SECONDS SIZE\n"
                    "       tcp_rr_flows paced HOST PORT THREADS FLOWS SECONDS SIZE RATE\n");
    exit(2);
}

int main(int argc, char **argv) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl)) die("getrlimit");
    NFD = rl.rlim_cur > (1 << 20) ? (1 << 20) : (long)rl.rlim_cur;
    if (!(C = calloc(NFD, sizeof *C))) die("calloc");
    signal(SIGPIPE, SIG_IGN);
    ADDR.sin_family = AF_INET;
    if (argc == 4 && strcmp(argv[1], "server") == 0) {
        ADDR.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        T = num(argv[3], 1);
        return run_server(num(argv[2], 0));
    }
    void *(*body)(void *) = NULL;
    if (argc == 8 && strcmp(argv[1], "rr") == 0) body = rr;
    if (argc == 8 && strcmp(argv[1], "crr") == 0) body = crr;
    if (argc == 9 && strcmp(argv[1], "paced") == 0) body = paced;
    if (!body) usage();
    if (body == paced) RATE = num(argv[8], 1);
    if (inet_pton(AF_INET, argv[2], &ADDR.sin_addr) != 1) usage();
    ADDR.sin_port = htons(num(argv[3], 1));
    T = num(argv[4], 1);
    COUNT = num(argv[5], 1);
    SECS = num(argv[6], 1);
    SIZE = num(argv[7], 1);
    if (COUNT < T) T = COUNT;
    struct targ *a = calloc(T, sizeof *a);
    if (!a || pthread_barrier_init(&BAR, NULL, T)) die("setup");
    for (int i = 0; i < T; i++) {
        a[i].id = i;
        if (pthread_create(&a[i].tid, NULL, body, &a[i])) die("pthread_create");
    }
    long n = 0, errors = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(a[i].tid, NULL);
        n += a[i].n;
        errors += a[i].errors;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("requests=%ld seconds=%d errors=%ld cpu_user=%.3f cpu_sys=%.3f", n, SECS, errors,
           ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
           ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    if (body == paced) {
        long nl;
        double *v = gather(a, 0, &nl);
        printf(" p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f", pct_us(v, nl, 0.5),
               pct_us(v, nl, 0.99), pct_us(v, nl, 0.999), pct_us(v, nl, 1.0));
        free(v);
        v = gather(a, 1, &nl);
        printf(" due_p99_us=%.1f", pct_us(v, nl, 0.99));
        free(v);
    }
    printf("\n");
    return 0;
}
