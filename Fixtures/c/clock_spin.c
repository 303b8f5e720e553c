/* A thread that calls clock_gettime in a loop: its pc is in the vDSO most of
 * the time, which has no file behind it. Exits on EOF on stdin.
 * Build: cc -O2 -g -pthread clock_spin.c */
#include "fixture_ready.h"

__attribute__((noinline)) static void read_clock_forever(void) {
    struct timespec now;
    for (;;) clock_gettime(CLOCK_MONOTONIC, &now);
}

static void *spinner(void *arg) {
    (void)arg;
    announce(RUNNING, RUNNING, RUNNING);
    read_clock_forever();
    return NULL;
}

int main(void) {
    start_thread(spinner, NULL, "clock");
    wait_until_parked(1);
    char byte;
    while (read(0, &byte, 1) > 0) {}
    return 0;
}
