/* A thread that renames itself while it is sampled. "worker" starts named
 * "before", blocked in wait_before (a read of a pipe). On the stdin line
 * "rename" it is woken, renames itself "after" (prctl PR_SET_NAME) and blocks
 * in wait_after; main answers "renamed" once it is there. A sampler that kept
 * the first name it read would show wait_after under "before".
 * Build: cc -O2 -g -pthread renamed.c */
#include "fixture_ready.h"
#include <sys/prctl.h>

static int wake[2], never[2];

__attribute__((noinline)) static void wait_before(void) {
    char byte;
    (void)!read(wake[0], &byte, 1);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void wait_after(void) {
    char byte;
    for (;;) (void)!read(never[0], &byte, 1);
}

static void *worker(void *arg) {
    (void)arg;
    prctl(PR_SET_NAME, (unsigned long)"before", 0, 0, 0);
    announce(SYS_READ, SYS_READ, SYS_READ);
    wait_before();
    prctl(PR_SET_NAME, (unsigned long)"after", 0, 0, 0);
    announce(SYS_READ, SYS_READ, SYS_READ);
    wait_after();
    return NULL;
}

int main(void) {
    if (pipe(wake) != 0 || pipe(never) != 0) return 1;
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    wait_until_parked(1);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "rename", 6) == 0) {
            /* The worker's second announce takes slot 1; wait for both in place. */
            (void)!write(wake[1], "x", 1);
            struct timespec tick = {0, 200000};
            while (LOAD(parked_count) < 2 || !LOAD(parked_threads[1].tid) || !in_place(&parked_threads[1]))
                nanosleep(&tick, NULL);
            printf("renamed\n");
            fflush(stdout);
        }
    }
    return 0;
}
