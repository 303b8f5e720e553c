/* A thread that cannot reach a ptrace stop: it vforks a child that blocks on
 * stdin, so the parent thread waits in the kernel (state D) until the child
 * exits. Closing stdin ends both. Main also reads stdin.
 * Build: cc -O2 -g -pthread vforker.c */
#include "fixture_ready.h"
#include <sys/syscall.h>

static pid_t vfork_tid;

__attribute__((noinline)) static void wait_for_child(void) {
    if (vfork() == 0) {
        char byte;
        while (syscall(SYS_read, 0, &byte, 1) > 0) {}
        _exit(0);
    }
}

static void *vforking(void *arg) {
    (void)arg;
    STORE(vfork_tid, gettid());
    wait_for_child();
    return NULL;
}

static char state_of(pid_t tid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f) return '?';
    char state = '?';
    if (fgets(buf, sizeof buf, f)) {
        char *close = strrchr(buf, ')');
        if (close && close[1]) state = close[2];
    }
    fclose(f);
    return state;
}

int main(void) {
    start_thread(vforking, NULL, "vforking");
    struct timespec tick = {0, 200000};
    while (LOAD(vfork_tid) == 0 || state_of(LOAD(vfork_tid)) != 'D') nanosleep(&tick, NULL);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char byte;
    while (read(0, &byte, 1) > 0) {}
    return 0;
}
