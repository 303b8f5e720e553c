/* Counts the EINTRs a profiler causes: a thread waits in epoll_wait on an
 * empty epoll set with no timeout, which only returns for a signal or a ptrace
 * stop (EINTR, even with no signal handler). On each stdin line "report" it
 * prints "eintr N" and resets the count. Build: cc -O2 -g -pthread eintr.c */
#include "fixture_ready.h"
#include <errno.h>
#include <sys/epoll.h>

static long interrupted;

__attribute__((noinline)) static void wait_for_events(int fd) {
    struct epoll_event events[1];
    for (;;) {
        if (epoll_wait(fd, events, 1, -1) < 0 && errno == EINTR) ADD(interrupted, 1);
    }
}

static void *waiter(void *arg) {
    (void)arg;
    int fd = epoll_create1(EPOLL_CLOEXEC);
    announce(SYS_EPOLL_WAIT, SYS_EPOLL_PWAIT, SYS_EPOLL_PWAIT2);
    wait_for_events(fd);
    return NULL;
}

int main(void) {
    start_thread(waiter, NULL, "waiter");
    wait_until_parked(1);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "report", 6) == 0) {
            printf("eintr %ld\n", EXCHANGE(interrupted, 0));
            fflush(stdout);
        }
    }
    return 0;
}
