/* Receives a stream of real-time signals and checks them: one thread, kept
 * running (so a sampler has to stop it), takes SIGRTMIN with a handler that
 * records each signal's sequence number (sigqueue's value); the others block
 * it. On each stdin line "report" it prints "received N order ok|broken".
 * Build: cc -O2 -g -pthread signals.c */
#include "fixture_ready.h"
#include <signal.h>

static long received;
static long expected = 1;
static int broken;

static void on_signal(int signal, siginfo_t *info, void *context) {
    (void)signal; (void)context;
    if (info->si_value.sival_int != expected) broken = 1;
    expected = info->si_value.sival_int + 1;
    ADD(received, 1);
}

__attribute__((noinline)) static void keep_busy(void) {
    for (volatile unsigned long i = 0;; i++) {}
}

static void *receiver(void *arg) {
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    announce(RUNNING, RUNNING, RUNNING);
    keep_busy();
    return NULL;
}

int main(void) {
    struct sigaction action = {0};
    action.sa_sigaction = on_signal;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGRTMIN, &action, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN);
    pthread_sigmask(SIG_BLOCK, &set, NULL);  /* inherited: only the receiver unblocks it */
    start_thread(receiver, NULL, "receiver");
    wait_until_parked(1);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "report", 6) == 0) {
            printf("received %ld order %s\n", LOAD(received), LOAD(broken) ? "broken" : "ok");
            fflush(stdout);
        }
    }
    return 0;
}
