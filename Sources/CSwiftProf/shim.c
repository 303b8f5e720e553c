#define _GNU_SOURCE
#include "cswiftprof.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>

// Not in libunwind's public headers; exported by libunwind-x86_64.so (perf uses it too).
extern int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t, unw_word_t, unw_dyn_info_t *,
                                              unw_proc_info_t *, int, void *);
// Exported by libswiftCore; flags must be 0.
extern char *swift_demangle(const char *mangled, size_t length, char *output,
                            size_t *output_size, uint32_t flags);
extern char *__cxa_demangle(const char *mangled, char *output, size_t *length, int *status);

static int result(long rc) { return rc == -1 ? errno : 0; }

int sp_ptrace_seize(pid_t tid, unsigned long options) {
    return result(ptrace(PTRACE_SEIZE, tid, 0, (void *)options));
}
int sp_ptrace_interrupt(pid_t tid) { return result(ptrace(PTRACE_INTERRUPT, tid, 0, 0)); }
int sp_ptrace_detach(pid_t tid, int signal) {
    return result(ptrace(PTRACE_DETACH, tid, 0, (void *)(long)signal));
}
int sp_ptrace_cont(pid_t tid, int signal) {
    return result(ptrace(PTRACE_CONT, tid, 0, (void *)(long)signal));
}
int sp_ptrace_getregs(pid_t tid, struct user_regs_struct *regs) {
    return result(ptrace(PTRACE_GETREGS, tid, 0, regs));
}

int sp_wait_thread(pid_t tid, int *status, int nohang) {
    pid_t rc;
    do {
        rc = waitpid(tid, status, __WALL | (nohang ? WNOHANG : 0));
    } while (rc == -1 && errno == EINTR);
    return rc == -1 ? -errno : rc;
}
int sp_status_stopped(int status) { return WIFSTOPPED(status); }
int sp_status_stop_signal(int status) { return WSTOPSIG(status); }
int sp_status_event(int status) { return (unsigned)status >> 16; }
int sp_status_exited(int status) { return WIFEXITED(status) || WIFSIGNALED(status); }

long sp_read_memory(pid_t pid, uint64_t address, void *buffer, size_t length) {
    struct iovec local = {buffer, length};
    struct iovec remote = {(void *)(uintptr_t)address, length};
    ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    return n < 0 ? -errno : n;
}

unw_addr_space_t sp_unw_create_addr_space(unw_accessors_t *accessors) {
    return unw_create_addr_space(accessors, 0);
}
void sp_unw_destroy_addr_space(unw_addr_space_t space) { unw_destroy_addr_space(space); }
int sp_unw_enable_global_cache(unw_addr_space_t space) {
    return unw_set_caching_policy(space, UNW_CACHE_GLOBAL);
}
void sp_unw_flush_cache(unw_addr_space_t space) { unw_flush_cache(space, 0, 0); }
int sp_unw_init_remote(unw_cursor_t *cursor, unw_addr_space_t space, void *arg) {
    return unw_init_remote(cursor, space, arg);
}
int sp_unw_step(unw_cursor_t *cursor) { return unw_step(cursor); }
int sp_unw_get_reg(unw_cursor_t *cursor, int regnum, uint64_t *value) {
    unw_word_t word = 0;
    int rc = unw_get_reg(cursor, regnum, &word);
    *value = word;
    return rc;
}
int sp_unw_is_signal_frame(unw_cursor_t *cursor) { return unw_is_signal_frame(cursor); }

int sp_unw_search_remote_table(unw_addr_space_t space, uint64_t ip, uint64_t start_ip,
                               uint64_t end_ip, uint64_t eh_frame_hdr, uint64_t table,
                               uint64_t table_entries, unw_proc_info_t *info,
                               int need_unwind_info, void *arg) {
    unw_dyn_info_t di;
    memset(&di, 0, sizeof di);
    di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
    di.start_ip = start_ip;
    di.end_ip = end_ip;
    di.u.rti.segbase = eh_frame_hdr;
    di.u.rti.table_data = table;
    // table_len counts words; an entry is two sdata4 values, i.e. 8 bytes.
    di.u.rti.table_len = table_entries * 8 / sizeof(unw_word_t);
    return _Ux86_64_dwarf_search_unwind_table(space, ip, &di, info, need_unwind_info, arg);
}

char *sp_demangle_swift(const char *name) {
    return swift_demangle(name, strlen(name), NULL, NULL, 0);
}
char *sp_demangle_cxx(const char *name) {
    int status = 0;
    char *out = __cxa_demangle(name, NULL, NULL, &status);
    if (status != 0) { free(out); return NULL; }
    return out;
}
