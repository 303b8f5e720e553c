/* A binary whose symbol names and source file names are the target's to choose:
 * the tests build it and then overwrite, in every place the file holds them (the
 * symbol table, DWARF's strings and line table), the placeholder names below with
 * bytes of the same length that try to forge output: a newline and a record, tabs
 * that split a frame line, quotes. The main thread blocks in read(2) inside the
 * renamed function; the ready line comes once it does.
 * Build: cc -O2 -g forged_symbols.c (from a copy named forgedfile_placeholder_0123456789.c) */
#include "fixture_ready.h"

__attribute__((noinline)) void forgedname_placeholder_0123456789(void) {
    char byte;
    while (read(0, &byte, 1) > 0) {}
    __asm__ volatile("" ::: "memory");  /* not a tail call: this frame stays */
}

int main(void) {
    announce(SYS_READ, SYS_READ, SYS_READ);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    forgedname_placeholder_0123456789();
    return 0;
}
