/* JIT code, as a JVM or V8 leaves it: functions written at run time into
 * anonymous executable memory, with no unwind information anywhere, only the
 * frame-pointer prologue (push rbp; mov rbp, rsp) a JIT keeps for its own walks.
 * Thread "jitsleep": jit_outer -> jit_inner -> c_sleep, blocked in nanosleep
 * below two JIT frames. Thread "jitspin": jit_spin_outer -> jit_spin, spinning
 * inside JIT code itself. Both are entered from C (enter_jit), so a walk must
 * go through the JIT frames by their frame pointers and back into code with CFI.
 * Build: cc -O2 -g -pthread jit.c */
#include "fixture_ready.h"

#include <stdint.h>
#include <sys/mman.h>

typedef void (*jit_function)(void);

static uint8_t *code;
static size_t code_used;

/* push rbp; mov rbp, rsp; movabs rax, target; call rax; pop rbp; ret */
static jit_function emit_call(uint64_t target) {
    uint8_t *start = code + code_used;
    const uint8_t prologue[] = {0x55, 0x48, 0x89, 0xe5, 0x48, 0xb8};
    memcpy(start, prologue, sizeof prologue);
    memcpy(start + sizeof prologue, &target, 8);
    const uint8_t epilogue[] = {0xff, 0xd0, 0x5d, 0xc3};
    memcpy(start + sizeof prologue + 8, epilogue, sizeof epilogue);
    code_used += 32;
    return (jit_function)(void *)start;
}

/* push rbp; mov rbp, rsp; spin: pause; jmp spin */
static jit_function emit_spin(void) {
    uint8_t *start = code + code_used;
    const uint8_t body[] = {0x55, 0x48, 0x89, 0xe5, 0xf3, 0x90, 0xeb, 0xfc};
    memcpy(start, body, sizeof body);
    code_used += 32;
    return (jit_function)(void *)start;
}

__attribute__((noinline)) static void c_sleep(void) {
    struct timespec long_time = {100000, 0};
    for (;;) nanosleep(&long_time, NULL);
}

/* Kept out of line, with frame pointers, so the JIT code returns into known C. */
__attribute__((noinline, optimize("no-omit-frame-pointer"))) static void enter_jit(jit_function f) {
    f();
    __asm__ volatile("" ::: "memory");
}

static jit_function sleep_entry, spin_entry;

static void *sleeper(void *arg) {
    (void)arg;
    announce(SYS_NANOSLEEP, SYS_CLOCK_NANOSLEEP, SYS_CLOCK_NANOSLEEP);
    enter_jit(sleep_entry);
    return NULL;
}

static void *spinner(void *arg) {
    (void)arg;
    announce(RUNNING, RUNNING, RUNNING);
    enter_jit(spin_entry);
    return NULL;
}

int main(void) {
    code = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) { perror("mmap"); return 1; }
    jit_function inner = emit_call((uint64_t)(uintptr_t)c_sleep);
    sleep_entry = emit_call((uint64_t)(uintptr_t)inner);
    jit_function spin = emit_spin();
    spin_entry = emit_call((uint64_t)(uintptr_t)spin);
    if (mprotect(code, 4096, PROT_READ | PROT_EXEC) != 0) { perror("mprotect"); return 1; }
    start_thread(sleeper, NULL, "jitsleep");
    start_thread(spinner, NULL, "jitspin");
    wait_until_parked(2);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {}
    return 0;
}
