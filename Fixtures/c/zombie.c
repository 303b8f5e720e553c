/* Makes a zombie: forks a child that exits at once and never reaps it.
 * Prints "ready CHILDPID" once /proc shows the child as Z; exits on EOF.
 * Build: cc -O2 -g zombie.c */
#include "fixture_ready.h"

int main(void) {
    pid_t child = fork();
    if (child == 0) _exit(0);
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)child);
    struct timespec tick = {0, 200000};
    for (;;) {
        FILE *f = fopen(path, "r");
        char state = '?';
        if (f && fgets(buf, sizeof buf, f)) {
            char *close = strrchr(buf, ')');
            if (close && close[1]) state = close[2];
        }
        if (f) fclose(f);
        if (state == 'Z') break;
        nanosleep(&tick, NULL);
    }
    printf("ready %d\n", (int)child);
    fflush(stdout);
    char byte;
    while (read(0, &byte, 1) > 0) {}
    return 0;
}
