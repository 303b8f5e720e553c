/* Lock contention with a known cost: a holder thread takes `lock` and computes for
 * 20 ms under it (holder_compute), lets it go for 1 ms, and again; three waiter
 * threads take it in waiter_lock and let it go at once, then nap 2 ms. Each waiter
 * measures, on CLOCK_MONOTONIC, how long each pthread_mutex_lock took: on each
 * stdin line "report" the fixture prints "waited NS waits N at T" (the waiters'
 * time in pthread_mutex_lock so far, how many of their locks waited more than
 * 0.1 ms, and CLOCK_MONOTONIC now, ns). Ready once every thread has started.
 * Exits at end of stdin.
 * Build: cc -O2 -g -pthread contend.c */
#include "fixture_ready.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long waited_ns;
static long waits;
static int started;

__attribute__((noinline)) static void holder_compute(long until) {
    while (monotonic_ns() < until) __asm__ volatile("" ::: "memory");
}

static void *holder(void *arg) {
    (void)arg;
    ADD(started, 1);
    struct timespec pause = {0, 1000000};
    for (;;) {
        pthread_mutex_lock(&lock);
        holder_compute(monotonic_ns() + 20000000L);
        pthread_mutex_unlock(&lock);
        nanosleep(&pause, NULL);
    }
    return NULL;
}

__attribute__((noinline)) static void waiter_lock(void) {
    long before = monotonic_ns();
    pthread_mutex_lock(&lock);
    long took = monotonic_ns() - before;
    pthread_mutex_unlock(&lock);
    ADD(waited_ns, took);
    if (took > 100000) ADD(waits, 1);
}

static void *waiter(void *arg) {
    (void)arg;
    ADD(started, 1);
    struct timespec nap = {0, 2000000};
    for (;;) {
        waiter_lock();
        nanosleep(&nap, NULL);
    }
    return NULL;
}

int main(void) {
    start_thread(holder, NULL, "holder");
    for (int i = 0; i < 3; i++) start_thread(waiter, NULL, "waiter");
    while (LOAD(started) < 4) {
        struct timespec tick = {0, 1000000};
        nanosleep(&tick, NULL);
    }
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "report", 6) == 0) {
            printf("waited %ld waits %ld at %ld\n", LOAD(waited_ns), LOAD(waits), monotonic_ns());
            fflush(stdout);
        }
    }
    return 0;
}
