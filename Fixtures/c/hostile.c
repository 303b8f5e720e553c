/* Stacks an unwinder must survive, each on a thread of its own:
 *   deep     100,000 frames of recursion, then blocked
 *   jit      spinning in anonymous executable memory with no ELF behind it
 *   altstack blocked inside a signal handler running on a tiny sigaltstack
 *   smashed  blocked with its frame pointer and the return addresses above it overwritten
 * Build: cc -O1 -g -fno-omit-frame-pointer -pthread hostile.c */
#include "fixture_ready.h"
#include <signal.h>
#include <sys/mman.h>

__attribute__((noinline)) static int deep(int depth) {
    if (depth == 0) {
        struct timespec forever = {100000, 0};
        for (;;) nanosleep(&forever, NULL);
    }
    int below = deep(depth - 1);
    __asm__ volatile("" ::: "memory");
    return below + 1;
}

static void *deep_thread(void *arg) {
    (void)arg;
    announce(SYS_CLOCK_NANOSLEEP, SYS_NANOSLEEP, SYS_CLOCK_NANOSLEEP);
    deep(100000);
    return NULL;
}

static void *jit_thread(void *arg) {
    (void)arg;
    unsigned char *code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    code[0] = 0xeb; code[1] = 0xfe;  /* jmp . */
    announce(RUNNING, RUNNING, RUNNING);
    ((void (*)(void))code)();
    return NULL;
}

static void in_handler(int signal) {
    (void)signal;
    struct timespec forever = {100000, 0};
    for (;;) nanosleep(&forever, NULL);
}

static void *altstack_thread(void *arg) {
    (void)arg;
    stack_t stack = {.ss_sp = malloc(16384), .ss_size = 16384, .ss_flags = 0};
    sigaltstack(&stack, NULL);
    struct sigaction action = {0};
    action.sa_handler = in_handler;
    action.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &action, NULL);
    sigset_t usr1;  /* a parent may have started us with it blocked */
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
    announce(SYS_CLOCK_NANOSLEEP, SYS_NANOSLEEP, SYS_CLOCK_NANOSLEEP);
    pthread_kill(pthread_self(), SIGUSR1);
    return NULL;
}

static struct timespec forever_timespec = {100000, 0};

__attribute__((noinline)) static void smashed(void) {
    /* Overwrite the saved frame pointer chain and the return addresses above us,
     * then sleep with a garbage frame pointer; nothing below touches the stack. */
    unsigned long *frame = __builtin_frame_address(0);
    for (int i = 0; i < 16; i++) frame[i] = 0x4141414141414141UL + i;
    __asm__ volatile(
        "mov %0, %%rbp\n"
        "1: mov $230, %%eax\n"   /* clock_nanosleep(CLOCK_MONOTONIC, 0, &forever, NULL) */
        "mov $1, %%edi\n"
        "xor %%esi, %%esi\n"
        "mov %1, %%rdx\n"
        "xor %%r10d, %%r10d\n"
        "syscall\n"
        "jmp 1b\n"
        :: "r"(0x4242424242424242UL), "r"(&forever_timespec) : "rax", "rdi", "rsi", "rdx", "r10", "rcx", "r11", "memory");
}

static void *smashed_thread(void *arg) {
    (void)arg;
    announce(SYS_CLOCK_NANOSLEEP, SYS_NANOSLEEP, SYS_CLOCK_NANOSLEEP);
    smashed();
    return NULL;
}

int main(void) {
    pthread_attr_t big;
    pthread_attr_init(&big);
    pthread_attr_setstacksize(&big, 64 << 20);
    pthread_t t;
    pthread_create(&t, &big, deep_thread, NULL);
    start_thread(jit_thread, NULL, "jit");
    start_thread(altstack_thread, NULL, "altstack");
    start_thread(smashed_thread, NULL, "smashed");
    wait_until_parked(4);
    char line[64];
    while (fgets(line, sizeof line, stdin)) { printf("alive\n"); fflush(stdout); }
    return 0;
}
