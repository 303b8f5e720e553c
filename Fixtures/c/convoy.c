/* A lock convoy: "holder" takes hot_lock and then blocks in a read of a pipe
 * (in hold_it), while three "waiter" threads block locking hot_lock. With
 * argv[1] = "pi", hot_lock is a priority-inheritance mutex (the waiters sleep in
 * FUTEX_LOCK_PI, the kernel's own owner tracking). Ends at the end of stdin.
 * Build: cc -O2 -g -pthread convoy.c */
#include "fixture_ready.h"

static pthread_mutex_t hot_lock;
static int never[2];
static volatile int held;

__attribute__((noinline)) static void hold_it(void) {
    char byte;
    for (;;) (void)!read(never[0], &byte, 1);
}

static void *holder(void *arg) {
    (void)arg;
    pthread_mutex_lock(&hot_lock);
    STORE(held, 1);
    announce(SYS_READ, SYS_READ, SYS_READ);
    hold_it();
    return NULL;
}

static void *waiter(void *arg) {
    (void)arg;
    while (!LOAD(held)) sched_yield();
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    pthread_mutex_lock(&hot_lock);
    return NULL;
}

int main(int argc, char **argv) {
    pthread_mutexattr_t attributes;
    pthread_mutexattr_init(&attributes);
    if (argc > 1 && strcmp(argv[1], "pi") == 0) pthread_mutexattr_setprotocol(&attributes, PTHREAD_PRIO_INHERIT);
    pthread_mutex_init(&hot_lock, &attributes);
    if (pipe(never) != 0) return 1;
    start_thread(holder, NULL, "holder");
    for (int i = 0; i < 3; i++) start_thread(waiter, NULL, "waiter");
    wait_until_parked(4);
    char byte;
    while (read(0, &byte, 1) > 0) {}
    return 0;
}
