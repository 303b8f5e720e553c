/* Threads blocked on advisory file locks held by another process. A child
 * ("holder") takes an exclusive flock and a POSIX write lock (fcntl F_SETLK) on
 * the file argv[1] (created, and removed at the end), then waits; in the parent "flocker" blocks in
 * flock(LOCK_EX) and "fcntler" in fcntl(F_SETLKW) on the same file. The ready
 * line comes once both are blocked; the child is the parent's only child
 * (/proc/PID/task/PID/children). Both end at the end of stdin, the file removed.
 * Build: cc -O2 -g -pthread filelock.c */
#include "fixture_ready.h"
#include <fcntl.h>
#include <sys/file.h>
#include <sys/prctl.h>

#define SYS_FCNTL 72
#define SYS_FLOCK 73

static const char *path;

static void *flocker(void *arg) {
    int fd = open(path, O_RDWR);
    (void)arg;
    announce(SYS_FLOCK, SYS_FLOCK, SYS_FLOCK);
    flock(fd, LOCK_EX);
    return NULL;
}

static void *fcntler(void *arg) {
    int fd = open(path, O_RDWR);
    struct flock whole = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    (void)arg;
    announce(SYS_FCNTL, SYS_FCNTL, SYS_FCNTL);
    fcntl(fd, F_SETLKW, &whole);
    return NULL;
}

int main(int argc, char **argv) {
    int fd, ready[2];
    char byte;
    if (argc < 2) return 2;
    path = argv[1];
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || pipe(ready) != 0) return 1;
    pid_t child = fork();
    if (child == 0) {
        struct flock whole = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        prctl(PR_SET_NAME, "holder");
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (flock(fd, LOCK_EX) != 0 || fcntl(fd, F_SETLK, &whole) != 0) _exit(1);
        (void)!write(ready[1], "x", 1);
        while (read(0, &byte, 1) > 0) {}
        _exit(0);
    }
    close(fd);  /* the parent's own descriptor would share the child's flock */
    if (child < 0 || read(ready[0], &byte, 1) != 1) return 1;
    start_thread(flocker, NULL, "flocker");
    start_thread(fcntler, NULL, "fcntler");
    wait_until_parked(2);
    while (read(0, &byte, 1) > 0) {}
    unlink(path);
    return 0;
}
