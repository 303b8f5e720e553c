/* A request handler's shape, with its own clock as the truth: thread "handler"
 * computes in burst_function for BURST_US (argv[1]), then sleeps until the next
 * cycle starts, one every CYCLE_US (argv[2]), and adds up by CLOCK_MONOTONIC the
 * time it spends in burst_function. A sampling profiler's share of that thread's
 * samples in burst_function must match the share of wall time measured here.
 *
 * Time the thread spends stopped by a tracer (a profiler's ptrace stop) is not the
 * program's: a stop that outlasts the rest of a burst lengthens it, and on a slow
 * machine the stops of `--no-perf` made a 5.1 ms burst read 0.37 of the time for
 * 0.26. So each burst also measures its CPU time (CLOCK_THREAD_CPUTIME_ID) and its
 * wait for a CPU (schedstat): in a burst that the thread left voluntarily (a stop is
 * a voluntary switch; a preemption is not, and a VM's stolen time is none), the rest
 * of its wall time was spent stopped, and is left out of both the burst's time and
 * the window's.
 *
 * Driven on stdin: "reset" starts a measurement window ("ok"), "report" prints
 * "share S bursts N" for the window since. With argv[3] = MS it runs that long
 * instead, prints the same line on stderr and exits 0 (for `swiftprof run`).
 * Build: cc -O2 -g -pthread bursty.c */
#include "fixture_ready.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <stdint.h>
#include <sys/prctl.h>

static uint64_t burst_ns, cycle_ns;
static uint64_t busy_total_ns; /* time spent in burst_function, all bursts */
static uint64_t stopped_total_ns; /* of that, neither running nor waiting for a CPU */
static uint64_t bursts_total;
static int schedstat_fd = -1;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint64_t cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Time this thread has waited for a CPU (schedstat's second field): accounted when
 * it gets the CPU back, so complete whenever the thread itself reads it. */
static uint64_t waited_ns(void) {
    char text[96];
    ssize_t n = pread(schedstat_fd, text, sizeof text - 1, 0);
    if (n <= 0) return 0;
    text[n] = 0;
    char *rest = strchr(text, ' ');
    return rest ? strtoull(rest + 1, NULL, 10) : 0;
}

/* Spins until its time is up, then adds that time (entry to exit) to the total,
 * and the part of it this thread was stopped (not running, not waiting for a CPU). */
static long voluntary_switches(void) {
    struct rusage usage;
    return getrusage(RUSAGE_THREAD, &usage) == 0 ? usage.ru_nvcsw : 0;
}

__attribute__((noinline)) static void burst_function(void) {
    long switches = voluntary_switches();
    uint64_t waited = waited_ns(), cpu = cpu_ns();
    uint64_t start = now_ns(), end;
    volatile uint64_t sink = 0;
    do {
        for (int i = 0; i < 200; i++) sink += (uint64_t)i;
        end = now_ns();
    } while (end - start < burst_ns);
    uint64_t present = (cpu_ns() - cpu) + (waited_ns() - waited);
    if (voluntary_switches() != switches && end - start > present) ADD(stopped_total_ns, end - start - present);
    ADD(busy_total_ns, end - start);
    ADD(bursts_total, 1);
}

static void *bursty_thread(void *arg) {
    (void)arg;
    /* Wake exactly on time: with the default 50 us of slack the kernel may hold this
     * thread's wake-up until another timer fires, the profiler's tick among them, and
     * the profiler would then find it waking at its ticks more often than chance. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    schedstat_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    announce(SYS_CLOCK_NANOSLEEP, SYS_CLOCK_NANOSLEEP, SYS_CLOCK_NANOSLEEP);
    uint64_t next = now_ns();
    for (;;) {
        burst_function();
        next += cycle_ns;
        uint64_t now = now_ns();
        if (next < now) next = now; /* late (preempted): start the next cycle now */
        struct timespec until = {(time_t)(next / 1000000000u), (long)(next % 1000000000u)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) != 0) {}
    }
    return NULL;
}

struct window { uint64_t start, busy, stopped, bursts; };

static struct window window_now(void) {
    struct window w = {now_ns(), LOAD(busy_total_ns), LOAD(stopped_total_ns), LOAD(bursts_total)};
    return w;
}

/* The share of the window's wall time in burst_function, the stopped time left out
 * of both; and the stopped time, for the reader. */
static void report(FILE *out, struct window since) {
    struct window now = window_now();
    uint64_t stopped = now.stopped - since.stopped;
    fprintf(out, "share %.4f bursts %llu stopped_us %llu\n",
            (double)(now.busy - since.busy - stopped) / (double)(now.start - since.start - stopped),
            (unsigned long long)(now.bursts - since.bursts), (unsigned long long)(stopped / 1000));
    fflush(out);
}

int main(int argc, char **argv) {
    burst_ns = (uint64_t)(argc > 1 ? atol(argv[1]) : 5000) * 1000u;
    cycle_ns = (uint64_t)(argc > 2 ? atol(argv[2]) : 19500) * 1000u;
    long run_ms = argc > 3 ? atol(argv[3]) : 0;
    if (burst_ns == 0 || cycle_ns <= burst_ns) {
        fprintf(stderr, "usage: bursty BURST_US CYCLE_US [RUN_MS] (burst shorter than cycle)\n");
        return 64;
    }
    start_thread(bursty_thread, NULL, "handler");
    if (run_ms > 0) {
        struct window since = window_now();
        struct timespec length = {run_ms / 1000, (run_ms % 1000) * 1000000};
        while (nanosleep(&length, &length) != 0) {}
        report(stderr, since);
        return 0;
    }
    wait_until_parked(1);
    struct window since = window_now();
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "reset", 5) == 0) {
            since = window_now();
            printf("ok\n");
            fflush(stdout);
        } else if (strncmp(line, "report", 6) == 0) {
            report(stdout, since);
        }
    }
    return 0;
}
