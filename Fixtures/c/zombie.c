/* Makes a zombie: forks a child that exits at once and never reaps it.
 * Prints "ready CHILDPID" once /proc shows the child as Z; exits on EOF.
 * With argument "leader": no child; the main thread ends (pthread_exit) while a
 * worker lives on, parked in read(2) on stdin. The leader then shows as Z in
 * /proc though the process is alive. The worker prints "ready PID" once /proc
 * shows the leader as Z; exits on EOF.
 * Build: cc -O2 -g -pthread zombie.c */
#include "fixture_ready.h"
#include <sys/syscall.h>

static char state_of(const char *path) {
    char buf[512], state = '?';
    FILE *f = fopen(path, "r");
    if (f && fgets(buf, sizeof buf, f)) {
        char *close = strrchr(buf, ')');
        if (close && close[1]) state = close[2];
    }
    if (f) fclose(f);
    return state;
}

static void wait_for_zombie(const char *path) {
    struct timespec tick = {0, 200000};
    while (state_of(path) != 'Z') nanosleep(&tick, NULL);
}

__attribute__((noinline)) static void *outlive_main(void *arg) {
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)getpid(), (int)getpid());
    wait_for_zombie(path);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char byte;
    while (read(0, &byte, 1) > 0) {}
    exit(0);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "leader") == 0) {
        start_thread(outlive_main, NULL, "survivor");
        pthread_exit(NULL);
    }
    pid_t child = fork();
    if (child == 0) _exit(0);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)child);
    wait_for_zombie(path);
    printf("ready %d\n", (int)child);
    fflush(stdout);
    char byte;
    while (read(0, &byte, 1) > 0) {}
    return 0;
}
