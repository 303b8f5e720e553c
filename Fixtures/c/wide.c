/* The benchmark target: THREADS threads (argv[1], default 64), each DEPTH
 * (argv[2], default 30) frames deep in descend() and then blocked in
 * pthread_cond_wait; and a monitor thread that sleeps in 200 us periods and
 * records how late it wakes (the way cyclictest measures latency: real-time,
 * SCHED_FIFO 80, where allowed), so the pause a profiler inflicts is measured
 * from inside the target, and not the profiler merely using a core.
 * A thread waits in epoll_wait on an empty set with no timeout and counts the
 * EINTRs a profiler's ptrace stops cause.
 * On each stdin line "report", prints "late_max_us N late_total_us N wakeups N
 * eintr N realtime 0|1" since the last report and resets. Build: cc -O2 -g -pthread wide.c */
#include "fixture_ready.h"
#include <errno.h>
#include <sched.h>
#include <sys/epoll.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static long late_max_ns, late_total_ns, wakeups, interrupted, realtime;

static void *epoll_waiter(void *arg) {
    (void)arg;
    int fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event events[1];
    for (;;) {
        if (epoll_wait(fd, events, 1, -1) < 0 && errno == EINTR) ADD(interrupted, 1);
    }
    return NULL;
}

__attribute__((noinline)) static void block_forever(void) {
    pthread_mutex_lock(&lock);
    for (;;) pthread_cond_wait(&never, &lock);
}

__attribute__((noinline)) static int descend(int depth) {
    if (depth <= 1) block_forever();
    int below = descend(depth - 1);
    __asm__ volatile("" ::: "memory");
    return below + 1;
}

static int depth = 30;

static void *blocked(void *arg) {
    (void)arg;
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    descend(depth);
    return NULL;
}

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void *monitor(void *arg) {
    (void)arg;
    struct sched_param priority = {.sched_priority = 80};
    STORE(realtime, pthread_setschedparam(pthread_self(), SCHED_FIFO, &priority) == 0);
    const long period = 200000;
    long next = now_ns() + period;
    for (;;) {
        struct timespec at = {next / 1000000000L, next % 1000000000L};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL);
        long late = now_ns() - next;
        if (late > LOAD(late_max_ns)) STORE(late_max_ns, late);
        ADD(late_total_ns, late);
        ADD(wakeups, 1);
        next += period;
        long now = now_ns();
        if (next < now) next = now + period; /* after a long pause, do not count one pause many times */
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 64;
    if (argc > 2) depth = atoi(argv[2]);
    if (threads < 1 || threads > MAX_PARKED - 1) threads = 64;
    for (int i = 0; i < threads; i++) start_thread(blocked, NULL, "blocked");
    start_thread(monitor, NULL, "monitor");
    start_thread(epoll_waiter, NULL, "epoll");
    wait_until_parked(threads);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "report", 6) == 0) {
            printf("late_max_us %ld late_total_us %ld wakeups %ld eintr %ld realtime %ld\n", EXCHANGE(late_max_ns, 0) / 1000,
                   EXCHANGE(late_total_ns, 0) / 1000, EXCHANGE(wakeups, 0), EXCHANGE(interrupted, 0), LOAD(realtime));
            fflush(stdout);
        }
    }
    return 0;
}
