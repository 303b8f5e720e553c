/* Two threads take two mutexes in opposite orders and deadlock: "transfer"
 * holds accounts_lock and waits for audit_lock, "auditor" holds audit_lock and
 * waits for accounts_lock (a barrier makes sure each has its first before
 * asking for its second). main joins them, forever; a third thread ends the
 * process at the end of stdin. The ready line comes once both are blocked in
 * futex(2).
 * Build: cc -O2 -g -pthread deadlock.c */
#include "fixture_ready.h"

static pthread_mutex_t accounts_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t audit_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both_hold_one;

static void *transfer(void *arg) {
    (void)arg;
    pthread_mutex_lock(&accounts_lock);
    pthread_barrier_wait(&both_hold_one);
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    pthread_mutex_lock(&audit_lock);
    return NULL;
}

static void *auditor(void *arg) {
    (void)arg;
    pthread_mutex_lock(&audit_lock);
    pthread_barrier_wait(&both_hold_one);
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    pthread_mutex_lock(&accounts_lock);
    return NULL;
}

static void *end_at_eof(void *arg) {
    (void)arg;
    char byte;
    while (read(0, &byte, 1) > 0) {}
    _exit(0);
}

int main(void) {
    pthread_barrier_init(&both_hold_one, NULL, 2);
    pthread_t first = start_thread(transfer, NULL, "transfer");
    pthread_t second = start_thread(auditor, NULL, "auditor");
    wait_until_parked(2);
    start_thread(end_at_eof, NULL, "stdin");
    pthread_join(first, NULL);
    pthread_join(second, NULL);
    return 0;
}
