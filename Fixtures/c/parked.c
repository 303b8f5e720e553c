/* Threads parked in known places, for the end-to-end tests:
 *   sleeper   nanosleep under recurse() at depth 5     (parked.c: recurse, sleep_at_depth)
 *   poller    epoll_wait in poll_forever()
 *   worker x8 pthread_cond_wait in worker_wait()
 *   spinner   a busy loop in spin_forever()
 *   main      read() on stdin under the always-inlined read_byte(); exits on EOF
 * Build: cc -O2 -g -pthread parked.c */
#include "fixture_ready.h"
#include <sys/epoll.h>

#define WORKERS 8

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static volatile unsigned long spins;

__attribute__((noinline)) static void sleep_at_depth(void) {
    struct timespec long_time = {100000, 0};
    for (;;) nanosleep(&long_time, NULL);
}

__attribute__((noinline)) static int recurse(int depth) {
    if (depth == 0) sleep_at_depth();
    int below = recurse(depth - 1);
    __asm__ volatile("" ::: "memory"); /* no tail call: every level keeps its frame */
    return below + 1;
}

static void *sleeper(void *arg) {
    (void)arg;
    announce(SYS_CLOCK_NANOSLEEP, SYS_NANOSLEEP, SYS_CLOCK_NANOSLEEP);
    recurse(5);
    return NULL;
}

__attribute__((noinline)) static void poll_forever(int fd) {
    struct epoll_event events[4];
    for (;;) epoll_wait(fd, events, 4, -1);
}

static void *poller(void *arg) {
    int fd = (int)(long)arg;
    announce(SYS_EPOLL_WAIT, SYS_EPOLL_PWAIT, SYS_EPOLL_PWAIT2);
    poll_forever(fd);
    return NULL;
}

__attribute__((noinline)) static void worker_wait(void) {
    pthread_mutex_lock(&lock);
    for (;;) pthread_cond_wait(&never, &lock);
}

static void *worker(void *arg) {
    (void)arg;
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    worker_wait();
    return NULL;
}

__attribute__((noinline)) static void spin_forever(void) {
    for (;;) spins++;
}

static void *spinner(void *arg) {
    (void)arg;
    announce(RUNNING, RUNNING, RUNNING);
    spin_forever();
    return NULL;
}

static inline __attribute__((always_inline)) long read_byte(int fd, char *byte) {
    return read(fd, byte, 1);
}

__attribute__((noinline)) static void wait_for_eof(void) {
    char byte;
    while (read_byte(0, &byte) > 0) {}
}

int main(void) {
    /* Made here, before any thread runs: made by the poller it would race with main's
     * reads of /proc in wait_until_parked for the lowest free descriptor, and
     * epoll_wait(3, ...) in one run would be epoll_wait(4, ...) in the next. */
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    start_thread(sleeper, NULL, "sleeper");
    start_thread(poller, (void *)(long)epoll, "poller");
    for (int i = 0; i < WORKERS; i++) start_thread(worker, NULL, "worker");
    start_thread(spinner, NULL, "spinner");
    wait_until_parked(WORKERS + 3);
    wait_for_eof();
    return 0;
}
