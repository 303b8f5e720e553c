/* Holds another process under ptrace (PTRACE_SEIZE, no stop) until stdin
 * closes, so tests can check how swiftprof reports an already-traced target.
 * Usage: tracer PID. Build: cc -O2 -g tracer.c */
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) return 64;
    pid_t pid = atoi(argv[1]);
    if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0) { perror("PTRACE_SEIZE"); return 1; }
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char byte;
    while (read(0, &byte, 1) > 0) {}
    ptrace(PTRACE_DETACH, pid, 0, 0);
    return 0;
}
