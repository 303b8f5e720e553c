/* Threads that take mutexes in opposite orders and deadlock. By default (or with
 * argv[1] = plain, recursive, errorcheck, adaptive, robust, pi: the mutexes'
 * kind) two: "transfer" holds accounts_lock and waits for audit_lock, "auditor"
 * holds audit_lock and waits for accounts_lock. With "three", a cycle of three:
 * "first" holds lock_a and waits for lock_b, "second" holds lock_b and waits for
 * lock_c, "third" holds lock_c and waits for lock_a. With "join": "joiner" holds
 * accounts_lock and joins "blocked", which waits for accounts_lock. With "rwlock":
 * "indexer" holds table_lock (a pthread_rwlock_t) for writing and waits for
 * accounts_lock, "reporter" holds accounts_lock and waits to read table_lock, and
 * outside the cycle "query" waits to read it and "compactor" to write it. A barrier makes sure each
 * has its first lock before asking for its second. main joins them, forever; a
 * thread ends the process at the end of stdin. The ready line comes once all are
 * blocked in futex(2). Build: cc -O2 -g -pthread deadlock.c */
#include "fixture_ready.h"

static pthread_mutex_t accounts_lock, audit_lock, lock_a, lock_b, lock_c;
static pthread_barrier_t all_hold_one;
static pthread_rwlock_t table_lock = PTHREAD_RWLOCK_INITIALIZER;

struct pair { pthread_mutex_t *first, *second; };

static void *take_two(void *arg) {
    struct pair *pair = arg;
    pthread_mutex_lock(pair->first);
    pthread_barrier_wait(&all_hold_one);
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    pthread_mutex_lock(pair->second);
    return NULL;
}

static void *blocked(void *arg) {
    (void)arg;
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    pthread_mutex_lock(&accounts_lock);
    return NULL;
}

static void *joiner(void *arg) {
    (void)arg;
    pthread_mutex_lock(&accounts_lock);
    pthread_t other = start_thread(blocked, NULL, "blocked");
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    pthread_join(other, NULL);
    return NULL;
}

static void *indexer(void *arg) {
    (void)arg;
    pthread_rwlock_wrlock(&table_lock);
    pthread_barrier_wait(&all_hold_one);
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    pthread_mutex_lock(&accounts_lock);
    return NULL;
}

static void *reporter(void *arg) {
    (void)arg;
    pthread_mutex_lock(&accounts_lock);
    pthread_barrier_wait(&all_hold_one);
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    pthread_rwlock_rdlock(&table_lock);
    return NULL;
}

/* After the barrier, where table_lock is held for writing: to read or to write it. */
static void *query(void *arg) {
    (void)arg;
    pthread_barrier_wait(&all_hold_one);
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    pthread_rwlock_rdlock(&table_lock);
    return NULL;
}

static void *compactor(void *arg) {
    (void)arg;
    pthread_barrier_wait(&all_hold_one);
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    pthread_rwlock_wrlock(&table_lock);
    return NULL;
}

static void *end_at_eof(void *arg) {
    (void)arg;
    char byte;
    while (read(0, &byte, 1) > 0) {}
    _exit(0);
}

static void init(pthread_mutex_t *mutex, const char *kind) {
    pthread_mutexattr_t attributes;
    pthread_mutexattr_init(&attributes);
    if (strcmp(kind, "recursive") == 0) pthread_mutexattr_settype(&attributes, PTHREAD_MUTEX_RECURSIVE);
    if (strcmp(kind, "errorcheck") == 0) pthread_mutexattr_settype(&attributes, PTHREAD_MUTEX_ERRORCHECK);
    if (strcmp(kind, "adaptive") == 0) pthread_mutexattr_settype(&attributes, PTHREAD_MUTEX_ADAPTIVE_NP);
    if (strcmp(kind, "robust") == 0) pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
    if (strcmp(kind, "pi") == 0) pthread_mutexattr_setprotocol(&attributes, PTHREAD_PRIO_INHERIT);
    pthread_mutex_init(mutex, &attributes);
}

int main(int argc, char **argv) {
    const char *kind = argc > 1 ? argv[1] : "plain";
    pthread_t threads[4];
    int count;
    if (strcmp(kind, "join") == 0) {
        init(&accounts_lock, "plain");
        count = 1;
        threads[0] = start_thread(joiner, NULL, "joiner");
        wait_until_parked(2);
        start_thread(end_at_eof, NULL, "stdin");
        pthread_join(threads[0], NULL);
        return 0;
    } else if (strcmp(kind, "rwlock") == 0) {
        init(&accounts_lock, "plain");
        count = 4;
        pthread_barrier_init(&all_hold_one, NULL, count);
        threads[0] = start_thread(indexer, NULL, "indexer");
        threads[1] = start_thread(reporter, NULL, "reporter");
        threads[2] = start_thread(query, NULL, "query");
        threads[3] = start_thread(compactor, NULL, "compactor");
    } else if (strcmp(kind, "three") == 0) {
        static struct pair pairs[3] = {{&lock_a, &lock_b}, {&lock_b, &lock_c}, {&lock_c, &lock_a}};
        static const char *names[3] = {"first", "second", "third"};
        init(&lock_a, "plain"), init(&lock_b, "plain"), init(&lock_c, "plain");
        count = 3;
        pthread_barrier_init(&all_hold_one, NULL, count);
        for (int i = 0; i < count; i++) threads[i] = start_thread(take_two, &pairs[i], names[i]);
    } else {
        static struct pair transfer = {&accounts_lock, &audit_lock}, auditor = {&audit_lock, &accounts_lock};
        init(&accounts_lock, kind), init(&audit_lock, kind);
        count = 2;
        pthread_barrier_init(&all_hold_one, NULL, count);
        threads[0] = start_thread(take_two, &transfer, "transfer");
        threads[1] = start_thread(take_two, &auditor, "auditor");
    }
    wait_until_parked(count);
    start_thread(end_at_eof, NULL, "stdin");
    for (int i = 0; i < count; i++) pthread_join(threads[i], NULL);
    return 0;
}
