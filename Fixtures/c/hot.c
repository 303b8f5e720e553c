/* A CPU-bound target with known shares: HOT threads (argv[1], default 1) each
 * spend 3/4 of their time in hot_function and 1/4 in warm_function (the same
 * work per call, called 3:1); IDLE threads (argv[2], default 0) block in
 * pthread_cond_wait. On each stdin line "report" it prints the work done since
 * the last report, the wall time and its own CPU time ("work N seconds S cpu C"),
 * so a benchmark can measure how much a profiler slows it down and how much CPU
 * time it takes from it. With argv[3] = MS it runs that long and exits 0
 * instead (for `swiftprof run`). Build: cc -O2 -g -pthread hot.c */
#include "fixture_ready.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static long work_done;

__attribute__((noinline)) static void spin_work(int n) {
    for (volatile int i = 0; i < n; i++) {}
}

/* Bodies that differ (the constant), so the compiler cannot fold them into one. */
__attribute__((noinline)) static void hot_function(void) {
    spin_work(20000);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void warm_function(void) {
    spin_work(20001);
    __asm__ volatile("" ::: "memory");
}

static void *hot_thread(void *arg) {
    (void)arg;
    announce(RUNNING, RUNNING, RUNNING);
    for (;;) {
        hot_function();
        hot_function();
        hot_function();
        warm_function();
        ADD(work_done, 4);
    }
    return NULL;
}

static void *idle_thread(void *arg) {
    (void)arg;
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    pthread_mutex_lock(&lock);
    for (;;) pthread_cond_wait(&never, &lock);
    return NULL;
}

static double clock_seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int hot = argc > 1 ? atoi(argv[1]) : 1, idle = argc > 2 ? atoi(argv[2]) : 0;
    for (int i = 0; i < hot; i++) start_thread(hot_thread, NULL, "burner");
    for (int i = 0; i < idle; i++) start_thread(idle_thread, NULL, "idle");
    wait_until_parked(hot + idle);
    if (argc > 3) {
        long ms = atol(argv[3]);
        struct timespec lifetime = {ms / 1000, (ms % 1000) * 1000000};
        nanosleep(&lifetime, NULL);
        return 0;
    }
    char line[64];
    double since = clock_seconds(CLOCK_MONOTONIC), cpu_since = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "report", 6) == 0) {
            double now = clock_seconds(CLOCK_MONOTONIC), cpu = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
            printf("work %ld seconds %.6f cpu %.6f\n", EXCHANGE(work_done, 0), now - since, cpu - cpu_since);
            fflush(stdout);
            since = now;
            cpu_since = cpu;
        }
    }
    return 0;
}
