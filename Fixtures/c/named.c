/* Threads whose names (prctl PR_SET_NAME: any bytes but NUL, 15 at most) try to
 * forge a profile: a newline and a record line, a comma that would split the
 * names list, quotes and a backslash, a tab, bytes that are not UTF-8. Each blocks in a read of stdin's
 * twin pipe; main waits on stdin and exits at end of file.
 * Build: cc -O2 -g -pthread named.c */
#include "fixture_ready.h"
#include <sys/prctl.h>

static const char *names[] = {"x\n1 @ 0x1\n#\t0", "a,b", "q\"\\ z", "tab\there",
                               "\xff\xferaw\x80\xc3"};  /* not UTF-8: kept as bytes */
static int never[2];

static void *named_thread(void *arg) {
    prctl(PR_SET_NAME, (unsigned long)arg, 0, 0, 0);
    announce(SYS_READ, SYS_READ, SYS_READ);
    char byte;
    for (;;) (void)!read(never[0], &byte, 1);
    return NULL;
}

int main(void) {
    if (pipe(never) != 0) return 1;
    int count = (int)(sizeof names / sizeof names[0]);
    for (int i = 0; i < count; i++) {
        pthread_t t;
        pthread_create(&t, NULL, named_thread, (void *)names[i]);
    }
    wait_until_parked(count);
    char byte;
    while (read(0, &byte, 1) > 0) {}
    return 0;
}
