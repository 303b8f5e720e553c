/* The demo target, after the reference document's key-value server: the same
 * mix of threads, each parked where a real server parks them.
 *   acceptor    serve_http → accept_connection → accept4 on a TCP listener (127.0.0.1)
 *   conn        handle_connection → read_request → read on the accepted socket
 *   event-loop  run_event_loop → epoll_wait (stdin and a client socket)
 *   ttl-gc      store_ttl_gc → sleep_until_next_sweep → clock_nanosleep (a 60 s period)
 *   worker      store_worker → pthread_cond_wait (futex)
 *   main        pthread_join on the acceptor (futex)
 * A client socket connected to the listener sends nothing, so the connection
 * thread waits for a request. EOF on stdin ends the process.
 * Build: cc -O2 -g -pthread kvserver.c */
#include "fixture_ready.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define SYS_ACCEPT 43
#define SYS_ACCEPT4 288

static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t store_changed = PTHREAD_COND_INITIALIZER;
static int listener, client;

/* Each helper keeps its own frame: no inlining, no tail call. */
__attribute__((noinline)) static long read_request(int fd, char *buffer, size_t size) {
    long n = read(fd, buffer, size);
    __asm__ volatile("" ::: "memory");
    return n;
}

static void *handle_connection(void *arg) {
    int fd = (int)(long)arg;
    char buffer[512];
    announce(SYS_READ, SYS_READ, SYS_READ);
    while (read_request(fd, buffer, sizeof buffer) > 0) {}
    close(fd);
    return NULL;
}

__attribute__((noinline)) static int accept_connection(int fd) {
    int connection = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    __asm__ volatile("" ::: "memory");
    return connection;
}

static void *serve_http(void *arg) {
    int first = (int)(long)arg;  /* accepted by main: see there */
    start_thread(handle_connection, (void *)(long)first, "conn");
    announce(SYS_ACCEPT4, SYS_ACCEPT, SYS_ACCEPT4);
    for (;;) {
        int fd = accept_connection(listener);
        if (fd >= 0) start_thread(handle_connection, (void *)(long)fd, "conn");
    }
    return NULL;
}

/* Made by main before any thread starts (see main). */
static int epoll;

static void *run_event_loop(void *arg) {
    (void)arg;
    struct epoll_event in = {.events = EPOLLIN, .data.fd = 0};
    epoll_ctl(epoll, EPOLL_CTL_ADD, 0, &in);
    struct epoll_event peer = {.events = EPOLLIN, .data.fd = client};
    epoll_ctl(epoll, EPOLL_CTL_ADD, client, &peer);
    announce(SYS_EPOLL_WAIT, SYS_EPOLL_PWAIT, SYS_EPOLL_PWAIT2);
    for (;;) {
        struct epoll_event ready[4];
        int n = epoll_wait(epoll, ready, 4, -1);
        for (int i = 0; i < n; i++) {
            char byte;
            if (ready[i].data.fd == 0 && read(0, &byte, 1) <= 0) _exit(0); /* stdin closed: stop */
        }
    }
    return NULL;
}

__attribute__((noinline)) static void sleep_until_next_sweep(void) {
    struct timespec period = {60, 0};
    clock_nanosleep(CLOCK_MONOTONIC, 0, &period, NULL);
    __asm__ volatile("" ::: "memory");
}

static void *store_ttl_gc(void *arg) {
    (void)arg;
    announce(SYS_CLOCK_NANOSLEEP, SYS_NANOSLEEP, SYS_CLOCK_NANOSLEEP);
    for (;;) sleep_until_next_sweep();
    return NULL;
}

static void *store_worker(void *arg) {
    (void)arg;
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    pthread_mutex_lock(&store_lock);
    for (;;) pthread_cond_wait(&store_changed, &store_lock);
    return NULL;
}

int main(void) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 ||
        listen(listener, 16) != 0 || getsockname(listener, (struct sockaddr *)&address, &length) != 0) {
        perror("listen");
        return 1;
    }
    client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(client, (struct sockaddr *)&address, sizeof address) != 0) {
        perror("connect");
        return 1;
    }
    /* Every descriptor made before any thread starts, in one order: made by the threads,
     * their numbers raced with each other and with main's /proc reads in
     * wait_until_parked, and two runs differed (read(6, ...) vs read(7, ...)). */
    int first = accept_connection(listener);  /* the client above, already queued */
    epoll = epoll_create1(EPOLL_CLOEXEC);
    pthread_t acceptor = start_thread(serve_http, (void *)(long)first, "acceptor");
    start_thread(run_event_loop, NULL, "event-loop");
    start_thread(store_ttl_gc, NULL, "ttl-gc");
    start_thread(store_worker, NULL, "worker");
    wait_until_parked(5);
    pthread_join(acceptor, NULL);
    return 0;
}
