/* Lock contention with a known cost: a holder thread takes `lock` and computes for
 * 20 ms under it (holder_compute), lets it go for 1 ms, and again; three waiter
 * threads take it in waiter_lock and let it go at once, then nap 2 ms. Each waiter
 * measures, on CLOCK_MONOTONIC, how long each pthread_mutex_lock took: on each
 * stdin line "report" the fixture prints "waited NS waits N at T" (the waiters'
 * time in pthread_mutex_lock so far, how many of their locks waited more than
 * 0.1 ms, and CLOCK_MONOTONIC now, ns). Ready once every thread has started.
 * Exits at end of stdin.
 * The lock is chosen by the first argument: "mutex" (the default), "rwlock" (the
 * holder takes it for writing, the waiters for reading) or "flock" (flock(2) on a
 * file each thread opens itself, so that the threads' locks conflict).
 * Build: cc -O2 -g -pthread contend.c */
#include <fcntl.h>
#include <sys/file.h>
#include "fixture_ready.h"

enum kind { MUTEX, RWLOCK, FLOCK };
static enum kind kind = MUTEX;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
static char lock_path[64];
static long waited_ns;
static long waits;
static int started;

__attribute__((noinline)) static void holder_compute(long until) {
    while (monotonic_ns() < until) __asm__ volatile("" ::: "memory");
}

/* A descriptor of the lock file of the thread's own (flock's locks belong to open files). */
static int own_file(void) {
    if (kind != FLOCK) return -1;
    int fd = open(lock_path, O_RDWR | O_CLOEXEC);
    if (fd < 0) { perror("open"); exit(1); }
    return fd;
}

static void take(int fd, int exclusive) {
    switch (kind) {
    case MUTEX: pthread_mutex_lock(&lock); break;
    case RWLOCK: exclusive ? pthread_rwlock_wrlock(&rwlock) : pthread_rwlock_rdlock(&rwlock); break;
    case FLOCK: flock(fd, LOCK_EX); break;
    }
}

static void release(int fd) {
    switch (kind) {
    case MUTEX: pthread_mutex_unlock(&lock); break;
    case RWLOCK: pthread_rwlock_unlock(&rwlock); break;
    case FLOCK: flock(fd, LOCK_UN); break;
    }
}

static void *holder(void *arg) {
    (void)arg;
    int fd = own_file();
    ADD(started, 1);
    struct timespec pause = {0, 1000000};
    for (;;) {
        take(fd, 1);
        holder_compute(monotonic_ns() + 20000000L);
        release(fd);
        nanosleep(&pause, NULL);
    }
    return NULL;
}

__attribute__((noinline)) static void waiter_lock(int fd) {
    long before = monotonic_ns();
    take(fd, 0);
    long took = monotonic_ns() - before;
    release(fd);
    ADD(waited_ns, took);
    if (took > 100000) ADD(waits, 1);
}

static void *waiter(void *arg) {
    (void)arg;
    int fd = own_file();
    ADD(started, 1);
    struct timespec nap = {0, 2000000};
    for (;;) {
        waiter_lock(fd);
        nanosleep(&nap, NULL);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "rwlock") == 0) kind = RWLOCK;
    if (argc > 1 && strcmp(argv[1], "flock") == 0) {
        kind = FLOCK;
        /* Named while it lives, so that /proc/PID/fd says which file; removed at exit. */
        snprintf(lock_path, sizeof lock_path, "/tmp/contend-%d.lock", (int)getpid());
        int fd = open(lock_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) { perror("open"); return 1; }
        close(fd);
    }
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
    if (kind == FLOCK) unlink(lock_path);
    return 0;
}
