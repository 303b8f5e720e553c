// The scheduler's clock per CPU, against CLOCK_MONOTONIC: /proc's se.exec_start is
// on the run queue's clock, which a virtual machine's CPUs can keep seconds apart.
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cswiftprof.h"

// se.exec_start of the calling thread, in nanoseconds; 0 when unreadable.
static uint64_t own_exec_start(void) {
    FILE *file = fopen("/proc/thread-self/sched", "r");
    if (!file) return 0;
    char line[256];
    uint64_t value = 0;
    while (fgets(line, sizeof line, file)) {
        if (strncmp(line, "se.exec_start", 13) != 0) continue;
        char *colon = strchr(line, ':');
        if (!colon) break;
        char *end;
        unsigned long long millis = strtoull(colon + 1, &end, 10);
        // Milliseconds with six decimals: the fraction counts nanoseconds.
        unsigned long long nanos = 0;
        if (*end == '.') {
            char digits[7] = "000000";
            for (int i = 0; i < 6 && end[1 + i] >= '0' && end[1 + i] <= '9'; i++) digits[i] = end[1 + i];
            nanos = strtoull(digits, NULL, 10);
        }
        value = millis * 1000000ULL + nanos;
        break;
    }
    fclose(file);
    return value;
}

int sp_scheduler_clock_offsets(int64_t *offsets, int count) {
    cpu_set_t saved;
    if (sched_getaffinity(0, sizeof saved, &saved) != 0) return -1;
    int measured = 0;
    for (int cpu = 0; cpu < count && cpu < CPU_SETSIZE; cpu++) {
        offsets[cpu] = INT64_MIN;
        if (!CPU_ISSET(cpu, &saved)) continue;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        // Returns on that CPU: the kernel moves the thread before the call ends.
        if (sched_setaffinity(0, sizeof one, &one) != 0) continue;
        uint64_t scheduler = own_exec_start();
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (scheduler == 0) continue;
        offsets[cpu] = (int64_t)scheduler - ((int64_t)now.tv_sec * 1000000000LL + now.tv_nsec);
        measured++;
    }
    sched_setaffinity(0, sizeof saved, &saved);
    return measured;
}
