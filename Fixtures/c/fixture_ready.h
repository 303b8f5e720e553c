/* Shared by the C fixtures: a thread registers its tid and the system calls it
 * will block in; main waits until /proc shows each thread inside one of them,
 * then prints the ready line. Tests read that line instead of sleeping. */
#ifndef FIXTURE_READY_H
#define FIXTURE_READY_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PARKED 4096
#define RUNNING -1 /* a thread that is expected to be on the CPU, not in a syscall */

/* Start like a process started from a shell: a test runner's threads may have
 * signals blocked, and a child inherits the mask. */
__attribute__((constructor)) static void unblock_all_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

struct parked { pid_t tid; long syscalls[3]; };
static struct parked parked_threads[MAX_PARKED];
static int parked_count;

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define ADD(x, v) __atomic_fetch_add(&(x), (v), __ATOMIC_SEQ_CST)
#define EXCHANGE(x, v) __atomic_exchange_n(&(x), (v), __ATOMIC_SEQ_CST)

/* CLOCK_MONOTONIC in nanoseconds: what a fixture measures its own time with. */
__attribute__((unused)) static long monotonic_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void announce(long sys1, long sys2, long sys3) {
    int slot = ADD(parked_count, 1);
    parked_threads[slot].syscalls[0] = sys1;
    parked_threads[slot].syscalls[1] = sys2;
    parked_threads[slot].syscalls[2] = sys3;
    STORE(parked_threads[slot].tid, gettid());
}

static int in_place(const struct parked *p) {
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)p->tid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int ok = 0;
    if (fgets(buf, sizeof buf, f)) {
        if (p->syscalls[0] == RUNNING) ok = strncmp(buf, "running", 7) == 0;
        else {
            long nr = strtol(buf, NULL, 10);
            ok = strncmp(buf, "running", 7) != 0 &&
                 (nr == p->syscalls[0] || nr == p->syscalls[1] || nr == p->syscalls[2]);
        }
    }
    fclose(f);
    return ok;
}

/* Waits for `expected` announced threads to be in place. */
static void wait_until_in_place(int expected) {
    struct timespec tick = {0, 200000};
    for (;;) {
        int ready = LOAD(parked_count) == expected;
        for (int i = 0; ready && i < expected; i++)
            ready = LOAD(parked_threads[i].tid) != 0 && in_place(&parked_threads[i]);
        if (ready) break;
        nanosleep(&tick, NULL);
    }
}

/* Waits for `expected` announced threads to be in place, then prints "ready PID". */
__attribute__((unused)) static void wait_until_parked(int expected) {
    wait_until_in_place(expected);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
}

static pthread_t start_thread(void *(*fn)(void *), void *arg, const char *name) {
    pthread_t t;
    if (pthread_create(&t, NULL, fn, arg) != 0) { perror("pthread_create"); exit(1); }
    pthread_setname_np(t, name);
    return t;
}

/* x86_64 system call numbers */
#define SYS_READ 0
#define SYS_NANOSLEEP 35
#define SYS_FUTEX 202
#define SYS_CLOCK_NANOSLEEP 230
#define SYS_EPOLL_WAIT 232
#define SYS_EPOLL_PWAIT 281
#define SYS_EPOLL_PWAIT2 441

#endif
