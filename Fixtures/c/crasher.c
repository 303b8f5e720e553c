/* A process that crashes in a known place while its other threads are parked,
 * for the core file tests:
 *   worker x4  pthread_cond_wait in worker_wait()
 *   faulter    writes to address 0x10 in store_through() once every worker is parked:
 *              SIGSEGV at 0x10 (SEGV_MAPERR)
 *   main       pthread_join of the faulter
 * With the argument "kernel-core" it lifts RLIMIT_CORE first, so that the kernel
 * writes a core where /proc/sys/kernel/core_pattern says.
 * Build: cc -O2 -g -pthread crasher.c */
#include "fixture_ready.h"
#include <sys/resource.h>

#define WORKERS 4

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t go_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER;
static int parked_all;

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

__attribute__((noinline)) static void store_through(volatile int *pointer) {
    *pointer = 42;
    __asm__ volatile("" ::: "memory");
}

static void *faulter(void *arg) {
    (void)arg;
    pthread_mutex_lock(&go_lock);
    while (!parked_all) pthread_cond_wait(&go, &go_lock);
    pthread_mutex_unlock(&go_lock);
    store_through((volatile int *)0x10);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "kernel-core") == 0) {
        struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
        setrlimit(RLIMIT_CORE, &unlimited);
    }
    for (int i = 0; i < WORKERS; i++) start_thread(worker, NULL, "worker");
    pthread_t crashing = start_thread(faulter, NULL, "faulter");
    wait_until_parked(WORKERS);
    pthread_mutex_lock(&go_lock);
    parked_all = 1;
    pthread_cond_signal(&go);
    pthread_mutex_unlock(&go_lock);
    pthread_join(crashing, NULL);
    return 0;
}
