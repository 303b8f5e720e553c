/* A process tree for the many-process modes (--children, --name, --all):
 *   parent   main reads commands on stdin in parent_read_command(); a thread
 *            sleeps in parent_nap()
 *   child xN (argv[1], default 3) main waits for the parent's end in
 *            child_wait_parent(); a thread polls in child_poll(), argv[2]
 *            (default 1) sleep in child_nap(); its argv rewritten as ps shows
 *            it, "tree: child K"
 *            (as PostgreSQL's backends rewrite theirs)
 * Ready line: "ready PARENT CHILD1 CHILD2 ..." once every thread of every process
 * is parked. "fork" on stdin starts one more child and answers "forked PID" once
 * it is parked; "end" ends the last child started and answers "ended PID" once it
 * is reaped; "spin" starts a thread of the parent spinning in parent_spin()
 * and answers "spinning" (a busy thread among idle processes). stdin closed: the parent ends, and each child with it (EOF on a
 * pipe it holds the read end of).
 * Build: cc -O2 -g -pthread tree.c */
#include "fixture_ready.h"
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define SYS_POLL 7
#define SYS_PPOLL 271

static char *argv_start;
static size_t argv_length;
static int sleepers = 1;

__attribute__((noinline)) static void child_poll(void) {
    for (;;) poll(NULL, 0, -1);
}

static void *child_poller(void *arg) {
    (void)arg;
    announce(SYS_POLL, SYS_PPOLL, SYS_POLL);
    child_poll();
    return NULL;
}

__attribute__((noinline)) static void child_nap(void) {
    struct timespec long_time = {100000, 0};
    for (;;) nanosleep(&long_time, NULL);
}

static void *child_sleeper(void *arg) {
    (void)arg;
    announce(SYS_CLOCK_NANOSLEEP, SYS_NANOSLEEP, SYS_CLOCK_NANOSLEEP);
    child_nap();
    return NULL;
}

__attribute__((noinline)) static void child_wait_parent(int life) {
    char byte;
    while (read(life, &byte, 1) > 0) {}
    __asm__ volatile("" ::: "memory");
}

/* In the child: rename, park, report "PID\n" on `report`, wait for the parent's end. */
static void child(int number, int life, int report) {
    STORE(parked_count, 0);
    memset(parked_threads, 0, sizeof parked_threads);
    memset(argv_start, 0, argv_length);
    snprintf(argv_start, argv_length, "tree: child %d", number);
    start_thread(child_poller, NULL, "poller");
    for (int i = 0; i < sleepers; i++) start_thread(child_sleeper, NULL, "sleeper");
    /* The main thread only reads once it has reported: the others are waited for first. */
    wait_until_in_place(1 + sleepers);
    char line[32];
    int n = snprintf(line, sizeof line, "%d\n", (int)getpid());
    if (write(report, line, (size_t)n) != n) _exit(1);
    close(report);
    child_wait_parent(life);
    _exit(0);
}

static int life[2];

static pid_t start_child(int number) {
    int report[2];
    if (pipe(report) != 0) { perror("pipe"); exit(1); }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(1); }
    if (pid == 0) {
        close(life[1]);
        close(report[0]);
        child(number, life[0], report[1]);
    }
    close(report[1]);
    char line[32] = {0};
    ssize_t got = 0, n;
    while ((n = read(report[0], line + got, sizeof line - 1 - (size_t)got)) > 0) got += n;
    close(report[0]);
    /* Its report comes before its main thread reads: wait until it does. */
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
    struct timespec tick = {0, 200000};
    for (;;) {
        FILE *f = fopen(path, "r");
        int in = 0;
        if (f) {
            in = fgets(buf, sizeof buf, f) && strtol(buf, NULL, 10) == SYS_READ && strncmp(buf, "running", 7) != 0;
            fclose(f);
        }
        if (in) break;
        nanosleep(&tick, NULL);
    }
    return pid;
}

__attribute__((noinline)) static void parent_nap(void) {
    struct timespec long_time = {200000, 0}; /* not child_nap's: not folded into one */
    for (;;) nanosleep(&long_time, NULL);
}

static void *parent_sleeper(void *arg) {
    (void)arg;
    announce(SYS_CLOCK_NANOSLEEP, SYS_NANOSLEEP, SYS_CLOCK_NANOSLEEP);
    parent_nap();
    return NULL;
}

__attribute__((noinline)) static void parent_spin(void) {
    for (;;) __asm__ volatile("" ::: "memory");
}

static void *parent_spinner(void *arg) {
    (void)arg;
    parent_spin();
    return NULL;
}

__attribute__((noinline)) static char *parent_read_command(char *line, int size) {
    char *got = fgets(line, size, stdin);
    __asm__ volatile("" ::: "memory");
    return got;
}

int main(int argc, char **argv) {
    int children = argc > 1 ? atoi(argv[1]) : 3;
    if (argc > 2) sleepers = atoi(argv[2]);
    argv_start = argv[0];
    argv_length = (size_t)(argv[argc - 1] + strlen(argv[argc - 1]) - argv[0]);
    if (pipe(life) != 0) { perror("pipe"); return 1; }
    int number = 0;
    pid_t pids[256];
    for (; number < children && number < 256; number++) pids[number] = start_child(number + 1);
    start_thread(parent_sleeper, NULL, "napper");
    wait_until_in_place(1);
    printf("ready %d", (int)getpid());
    for (int i = 0; i < number; i++) printf(" %d", (int)pids[i]);
    printf("\n");
    fflush(stdout);
    char line[64];
    while (parent_read_command(line, sizeof line)) {
        if (strncmp(line, "fork", 4) == 0) {
            pid_t pid = start_child(++number);
            pids[number - 1 < 256 ? number - 1 : 255] = pid;
            printf("forked %d\n", (int)pid);
            fflush(stdout);
        } else if (strncmp(line, "spin", 4) == 0) {
            start_thread(parent_spinner, NULL, "spinner");
            printf("spinning\n");
            fflush(stdout);
        } else if (strncmp(line, "end", 3) == 0 && number > 0) {
            /* The last child started: ended and reaped before the answer. */
            pid_t pid = pids[number - 1 < 256 ? number - 1 : 255];
            kill(pid, SIGTERM);
            waitpid(pid, NULL, 0);
            number--;
            printf("ended %d\n", (int)pid);
            fflush(stdout);
        }
    }
    close(life[1]);
    while (wait(NULL) > 0) {}
    return 0;
}
