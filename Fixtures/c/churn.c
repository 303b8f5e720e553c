/* Threads come and go: a spawner creates and joins a short-lived thread about
 * every millisecond. With argument "fork" it also forks a child that exits at
 * once every 5 ms; with "exec" the process re-executes itself once, 50 ms
 * after it is ready (the new image then only blocks on stdin); with "exit" it
 * exits 500 ms after it is ready (a debug build of swiftprof takes 60 ms to
 * parse its arguments: the exit must come during the sampling, not before it).
 * Answers "report" with "alive". Build: cc -O2 -g -pthread churn.c */
#include "fixture_ready.h"
#include <sys/wait.h>

static const char *mode = "";

__attribute__((noinline)) static void *short_life(void *arg) {
    volatile long sum = 0;
    for (long i = 0; i < 1000; i++) sum += i;
    return arg;
}

static void *spawner(void *arg) {
    (void)arg;
    struct timespec tick = {0, 1000000};
    announce(SYS_CLOCK_NANOSLEEP, SYS_NANOSLEEP, SYS_FUTEX);
    for (long n = 0;; n++) {
        pthread_t t;
        if (pthread_create(&t, NULL, short_life, NULL) == 0) pthread_join(t, NULL);
        if (strcmp(mode, "fork") == 0 && n % 5 == 0) {
            pid_t child = fork();
            if (child == 0) _exit(0);
            if (child > 0) waitpid(child, NULL, 0);
        }
        nanosleep(&tick, NULL);
    }
    return NULL;
}

static void *later(void *arg) {
    long ms = (long)arg;
    struct timespec wait = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&wait, NULL);
    if (strcmp(mode, "exec") == 0) {
        char *argv[] = {"/proc/self/exe", "done", NULL};
        execv("/proc/self/exe", argv);
    }
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc > 1) mode = argv[1];
    if (strcmp(mode, "done") == 0) {  /* after exec: just wait on stdin */
        char line[64];
        while (fgets(line, sizeof line, stdin)) { printf("alive\n"); fflush(stdout); }
        return 0;
    }
    start_thread(spawner, NULL, "spawner");
    wait_until_parked(1);
    if (strcmp(mode, "exec") == 0) start_thread(later, (void *)50, "later");
    if (strcmp(mode, "exit") == 0) start_thread(later, (void *)500, "later");
    char line[64];
    while (fgets(line, sizeof line, stdin)) { printf("alive\n"); fflush(stdout); }
    return 0;
}
