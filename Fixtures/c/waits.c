/* Threads blocked on glibc primitives that record no owner: "consumer" waits on
 * the condition variable work_ready, "worker" on the semaphore jobs, "heaped" on
 * a condition variable allocated on the heap (named by where it lies), and two
 * "pooled" threads, one stack, each on a heap condition variable of its own, and
 * "stacked" on a condition variable on its own stack, "mapped" on one in an
 * anonymous mapping (no path to name it by); "flagged" sleeps in a bare
 * futex(2) on start_flag, a word of the program's own.
 * Ends at the end of stdin. Build: cc -O2 -g -pthread waits.c */
#include "fixture_ready.h"
#include <linux/futex.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/syscall.h>

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_ready = PTHREAD_COND_INITIALIZER;
static sem_t jobs;
static pthread_cond_t *heap_condition;

static void *consumer(void *arg) {
    (void)arg;
    pthread_mutex_lock(&queue_lock);
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    for (;;) pthread_cond_wait(&work_ready, &queue_lock);
    return NULL;
}

static void *heaped(void *arg) {
    static pthread_mutex_t own_lock = PTHREAD_MUTEX_INITIALIZER;
    (void)arg;
    pthread_mutex_lock(&own_lock);
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    for (;;) pthread_cond_wait(heap_condition, &own_lock);
    return NULL;
}

static void *pooled(void *arg) {
    pthread_cond_t *own = arg;
    pthread_mutex_t *lock = (pthread_mutex_t *)(own + 1);
    pthread_mutex_lock(lock);
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    for (;;) pthread_cond_wait(own, lock);
    return NULL;
}

static void *stacked(void *arg) {
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t local = PTHREAD_COND_INITIALIZER;
    (void)arg;
    pthread_mutex_lock(&lock);
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    for (;;) pthread_cond_wait(&local, &lock);
    return NULL;
}

/* pooled's body, as a function of its own: a stack of its own, so a record of its own. */
static void *mapped(void *arg) {
    pthread_cond_t *condition = arg;
    pthread_mutex_t *lock = (pthread_mutex_t *)(condition + 1);
    pthread_mutex_lock(lock);
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    for (;;) pthread_cond_wait(condition, lock);
    return NULL;
}

static int start_flag;

static void *flagged(void *arg) {
    (void)arg;
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    while (LOAD(start_flag) == 0) syscall(SYS_futex, &start_flag, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    return NULL;
}

static void *worker(void *arg) {
    (void)arg;
    announce(SYS_FUTEX, SYS_FUTEX, SYS_FUTEX);
    for (;;) sem_wait(&jobs);
    return NULL;
}

int main(void) {
    char byte;
    sem_init(&jobs, 0, 0);
    heap_condition = malloc(sizeof *heap_condition);
    pthread_cond_init(heap_condition, NULL);
    start_thread(consumer, NULL, "consumer");
    start_thread(worker, NULL, "worker");
    start_thread(heaped, NULL, "heaped");
    for (int i = 0; i < 2; i++) {
        /* A condition variable and its mutex, side by side. */
        pthread_cond_t *own = malloc(sizeof(pthread_cond_t) + sizeof(pthread_mutex_t));
        pthread_cond_init(own, NULL);
        pthread_mutex_init((pthread_mutex_t *)(own + 1), NULL);
        start_thread(pooled, own, "pooled");
    }
    start_thread(stacked, NULL, "stacked");
    pthread_cond_t *anonymous = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (anonymous == MAP_FAILED) { perror("mmap"); return 1; }
    pthread_cond_init(anonymous, NULL);
    pthread_mutex_init((pthread_mutex_t *)(anonymous + 1), NULL);
    start_thread(mapped, anonymous, "mapped");
    start_thread(flagged, NULL, "flagged");
    wait_until_parked(8);
    while (read(0, &byte, 1) > 0) {}
    return 0;
}
