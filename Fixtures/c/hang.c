/* A program that works, then hangs: "transfer" and "auditor" compute in
 * transfer_work and audit_work, each taking accounts_lock then audit_lock around
 * a short step, until the line "deadlock" on stdin; then transfer takes
 * accounts_lock and auditor audit_lock, a barrier makes sure each holds its
 * first, and each asks for the other's: a deadlock. Once both are blocked in
 * futex(2) it prints "deadlocked at T" (CLOCK_MONOTONIC ns). Ready ("ready PID")
 * once both work. Exits at the end of stdin. Build: cc -O2 -g -pthread hang.c */
#include "fixture_ready.h"

static pthread_mutex_t accounts_lock = PTHREAD_MUTEX_INITIALIZER, audit_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both_hold_one;
static int hang;
static int working;

__attribute__((noinline)) static void compute(long nanoseconds) {
    long until = monotonic_ns() + nanoseconds;
    while (monotonic_ns() < until) __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void transfer_work(void) {
    pthread_mutex_lock(&accounts_lock);
    pthread_mutex_lock(&audit_lock);
    compute(2000000);
    pthread_mutex_unlock(&audit_lock);
    pthread_mutex_unlock(&accounts_lock);
    compute(3000000);
}

__attribute__((noinline)) static void audit_work(void) {
    pthread_mutex_lock(&accounts_lock);
    pthread_mutex_lock(&audit_lock);
    compute(1000000);
    pthread_mutex_unlock(&audit_lock);
    pthread_mutex_unlock(&accounts_lock);
    struct timespec nap = {0, 4000000};
    nanosleep(&nap, NULL);
}

static void *transfer(void *arg) {
    (void)arg;
    ADD(working, 1);
    while (!LOAD(hang)) transfer_work();
    pthread_mutex_lock(&accounts_lock);
    pthread_barrier_wait(&both_hold_one);
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    pthread_mutex_lock(&audit_lock);
    return NULL;
}

static void *auditor(void *arg) {
    (void)arg;
    ADD(working, 1);
    while (!LOAD(hang)) audit_work();
    pthread_mutex_lock(&audit_lock);
    pthread_barrier_wait(&both_hold_one);
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    pthread_mutex_lock(&accounts_lock);
    return NULL;
}

int main(void) {
    pthread_barrier_init(&both_hold_one, NULL, 2);
    start_thread(transfer, NULL, "transfer");
    start_thread(auditor, NULL, "auditor");
    while (LOAD(working) < 2) {
        struct timespec tick = {0, 1000000};
        nanosleep(&tick, NULL);
    }
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "deadlock", 8) == 0) {
            STORE(hang, 1);
            wait_until_in_place(2);
            printf("deadlocked at %ld\n", monotonic_ns());
            fflush(stdout);
        }
    }
    return 0;
}
