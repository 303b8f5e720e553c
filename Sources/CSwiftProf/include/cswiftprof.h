// The few C entry points Swift cannot reach directly: variadic ptrace, the
// libunwind functions hidden behind macros, process_vm_readv and the demanglers.
// Every function returns 0 or a positive errno unless it says otherwise.
#ifndef CSWIFTPROF_H
#define CSWIFTPROF_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/user.h>
#include <libunwind.h>

// ptrace
int sp_ptrace_seize(pid_t tid, unsigned long options);
int sp_ptrace_interrupt(pid_t tid);
int sp_ptrace_detach(pid_t tid, int signal);
int sp_ptrace_getregs(pid_t tid, struct user_regs_struct *regs);

// waitpid(tid, __WALL [| WNOHANG]); returns the pid, 0 (nothing yet) or -errno.
int sp_wait_thread(pid_t tid, int *status, int nohang);
/* Waits at most timeout_ns for tid to stop or exit: 0 if it did not (yet), else as waitpid. */
int sp_wait_thread_until(pid_t tid, int *status, uint64_t timeout_ns);
int sp_status_stopped(int status);
int sp_status_stop_signal(int status);
int sp_status_event(int status);

// prctl(PR_SET_TIMERSLACK) for the calling thread: short sleeps stay short.
int sp_set_timer_slack(unsigned long nanoseconds);

// setpriority for the calling thread only (Linux: nice applies per thread).
/* The calling thread at the lowest SCHED_FIFO priority (on) or back to SCHED_OTHER; 0 or errno. */
int sp_set_thread_realtime(int on);
int sp_set_thread_nice(int nice);
// For each CPU below `count` the calling thread may run on, how far the scheduler's
// clock (se.exec_start in /proc/.../sched) is ahead of CLOCK_MONOTONIC, in ns,
// measured on that CPU (the thread is moved there and back); INT64_MIN for a CPU
// not measured. Returns how many were, or -1.
int sp_scheduler_clock_offsets(int64_t *offsets, int count);

// process_vm_readv of one range; returns the bytes read or -errno.
long sp_read_memory(pid_t pid, uint64_t address, void *buffer, size_t length);
// process_vm_readv of many ranges, 1024 a call, into `buffer` one after another
// (each range at the sum of the lengths before it); complete[i] says whether
// range i was read whole. Returns how many were.
size_t sp_read_ranges(pid_t pid, const uint64_t *addresses, const size_t *lengths, size_t count, void *buffer,
                      unsigned char *complete);
// A descriptor of the process (pidfd_open), or -errno; readable once every
// thread of it has exited.
int sp_pidfd_open(pid_t pid);
int sp_pidfd_exited(int fd);

// libunwind, remote address spaces only.
unw_addr_space_t sp_unw_create_addr_space(unw_accessors_t *accessors);
void sp_unw_destroy_addr_space(unw_addr_space_t space);
int sp_unw_enable_global_cache(unw_addr_space_t space);
int sp_unw_init_remote(unw_cursor_t *cursor, unw_addr_space_t space, void *arg);
int sp_unw_step(unw_cursor_t *cursor);
int sp_unw_get_reg(unw_cursor_t *cursor, int regnum, uint64_t *value);
int sp_unw_is_signal_frame(unw_cursor_t *cursor);
// Looks ip up in a binary-search table of an .eh_frame_hdr (datarel|sdata4 only:
// the caller validates the encoding, libunwind aborts on others).
int sp_unw_search_remote_table(unw_addr_space_t space, uint64_t ip,
                               uint64_t start_ip, uint64_t end_ip,
                               uint64_t eh_frame_hdr, uint64_t table,
                               uint64_t table_entries, unw_proc_info_t *info,
                               int need_unwind_info, void *arg);

// gzip through zlib (its init functions are macros). Both return a malloc'd buffer
// and its length in *out_length, or NULL: on bad input, or when inflating would
// pass max_output bytes.
unsigned char *sp_gzip(const unsigned char *input, size_t length, size_t *out_length);
unsigned char *sp_gunzip(const unsigned char *input, size_t length, size_t max_output, size_t *out_length);

// perf_event: a thread's user registers and stack, sampled by the kernel every
// period_ns of the thread's own CPU time, without stopping it.
typedef struct {
    uint64_t time;          // CLOCK_MONOTONIC, ns
    uint64_t registers[17]; // DWARF order: rax rdx rcx rbx rsi rdi rbp rsp r8..r15 rip
    uint64_t stack_length;  // valid bytes copied to the caller's stack buffer
    uint32_t tid;
} sp_perf_sample;

// Returns the event's descriptor, or -errno.
int sp_perf_open(pid_t tid, uint64_t period_ns, uint32_t stack_bytes);
// Maps the event's ring (a header page and data_pages pages, a power of two); NULL on failure.
void *sp_perf_map(int fd, size_t data_pages);
void sp_perf_unmap(void *ring, size_t data_pages);
// Consumes the ring's records up to and including the next sample: 1 if there was
// one (in *sample, its stack in stack[0..stack_capacity)), else 0 (the ring is
// empty). Lost records are added to *lost.
// Whether the ring holds records not read yet.
int sp_perf_pending(void *ring);
int sp_perf_drain(void *ring, sp_perf_sample *sample, uint8_t *stack, size_t stack_capacity, uint64_t *lost);

// perf_event: a thread's context switches, as the kernel records them. A software
// event sampled at every switch out of the thread keeps the user registers it
// left the CPU with; context-switch records say when it came back.
typedef struct {
    uint64_t registers[17];  // user registers at the last switch out, DWARF order (see above)
    uint64_t switch_out_time; // CLOCK_MONOTONIC ns of that switch
    uint64_t switch_ins;     // switches onto a CPU recorded so far
    uint64_t lost;           // records the kernel dropped (a ring full) so far
    uint64_t last_time;      // time of the latest record applied
    uint64_t generation;     // records applied so far
    int32_t on_cpu;          // the last switch recorded: 1 in, 0 out, -1 none yet
    int32_t has_registers;   // registers holds a switch out
    int32_t preempted;       // the last switch out was a preemption: the thread stayed runnable
    int32_t exited;          // the thread has ended
} sp_switch_state;

enum {
    SP_SWITCH_IN = 1,
    SP_SWITCH_OUT = 2,
    SP_SWITCH_OUT_REGISTERS = 3, // the sample taken at a switch out: its user registers
    SP_SWITCH_FORK = 4,          // pid, ppid, tid: a thread or process started
    SP_SWITCH_EXIT = 5,          // tid ended
    SP_SWITCH_LOST = 6,          // records dropped, of any thread of the ring's CPU
    SP_SWITCH_COMM = 7,          // tid renamed (or exec'd)
};

// One record of a CPU's ring, decoded.
typedef struct {
    uint64_t registers[17];
    uint64_t time;   // CLOCK_MONOTONIC ns
    uint64_t lost;
    int32_t kind;    // SP_SWITCH_*
    int32_t tid;     // whose record (FORK: the new thread)
    int32_t pid;     // FORK, EXIT, COMM: the thread's process; others: the writer's process
    int32_t ppid;    // FORK, EXIT
    int32_t preempted;
    int32_t has_registers;
} sp_switch_record;

// The event that owns one CPU's ring (a dummy event of the caller, on that CPU):
// a descriptor, or -errno. Map it with sp_perf_map.
int sp_switch_ring_open(int cpu);
// A thread's switches on one CPU, written into the ring of ring_fd (same CPU):
// a descriptor, or -errno.
int sp_switch_open(pid_t tid, int cpu, int ring_fd);
// The next record of the ring, consumed: 1, or 0 when the ring is empty.
int sp_switch_next(void *ring, sp_switch_record *record);
// Applies a record (SWITCH_IN, SWITCH_OUT, SWITCH_OUT_REGISTERS, EXIT, LOST) to a thread's state.
void sp_switch_apply(const sp_switch_record *record, sp_switch_state *state);

// Demanglers; return a malloc'd string or NULL when the name is not theirs.
char *sp_demangle_swift(const char *name);
char *sp_demangle_cxx(const char *name);
/* zlib-format data (an ELF SHF_COMPRESSED section) inflated to exactly output_length bytes: 0, or -1. */
char *sp_demangle_swift_simplified(const char *name);
char *sp_demangle_rust(const char *name);

// Swift's remote reflection library (libswiftRemoteMirror.so, the one LLDB and
// swift-inspect use), loaded at run time from the toolchain's runtime directory.
// sp_task_info repeats the library's swift_async_task_info_t of Swift 6.2 and
// later (include/swift/SwiftRemoteMirror/SwiftRemoteMirrorTypes.h): its header
// is not installed. The arrays are copied out before the next call.
typedef struct sp_task_info {
    const char *error;
    unsigned kind;
    unsigned enqueue_priority;
    _Bool is_child_task;
    _Bool is_future;
    _Bool is_group_child_task;
    _Bool is_async_let_task;
    _Bool is_synchronous_start_task;
    unsigned max_priority;
    _Bool is_cancelled;
    _Bool is_status_record_locked;
    _Bool is_escalated;
    _Bool has_is_running;
    _Bool is_running;
    _Bool is_enqueued;
    _Bool has_thread_port;
    uint32_t thread_port;
    uint64_t id;
    uint64_t run_job;
    uint64_t allocator_slab;
    unsigned child_task_count;
    uint64_t *child_tasks;
    unsigned async_backtrace_count;
    uint64_t *async_backtrace;
} sp_task_info;

// Where a symbol of the target is (0: unknown), asked by the library.
typedef uint64_t (*sp_symbol_lookup)(void *context, const char *name, uint64_t length);
// The library at `path` with a context reading process `pid`; NULL with *error set.
// Reads `length` bytes at `address` of a target that is not a live process (a core):
// the count read, or a negative errno.
typedef long (*sp_memory_reader)(void *context, uint64_t address, void *buffer, size_t length);
// The library on process `pid`, or, with a `reader`, on the memory it reads.
void *sp_mirror_open(const char *path, pid_t pid, sp_memory_reader reader, void *reader_context, sp_symbol_lookup lookup,
                     void *lookup_context, const char **error);
// The library's view of the task object at `task`; out->error set when it is not one.
void sp_mirror_task_info(void *mirror, uint64_t task, sp_task_info *out);
void sp_mirror_close(void *mirror);
// Addresses in [start, start+length) of process `pid`, at multiples of 16, whose
// 8-byte word equals `value`, in one pass: a malloc'd array of *count of them (the
// caller frees it), or NULL when out of memory. Unreadable chunks are skipped;
// *scanned says how many bytes were read.
uint64_t *sp_scan_words(pid_t pid, uint64_t start, uint64_t length, uint64_t value, size_t *count, uint64_t *scanned);
// The task layout version of the concurrency runtime this program runs with
// (_swift_concurrency_debug_internal_layout_version); -1 when it does not say.
long sp_own_task_layout_version(void);

// An ELF file's program and section headers, read by libelf (which checks every
// offset and count against the file): from descriptor `fd` when it is >= 0, else
// from the `size` bytes at `data` (copied first: libelf may write to a memory image).
typedef struct sp_elf_segment {
    uint32_t type, flags;
    uint64_t offset, vaddr, file_size, memory_size;
} sp_elf_segment;
typedef struct sp_elf_section {
    char name[48];  // cut to 47 bytes: longer names match none the profiler looks for
    uint32_t type;
    uint64_t address, offset, size;
} sp_elf_section;
typedef struct sp_elf_headers {
    sp_elf_segment *segments;
    size_t segment_count;
    sp_elf_section *sections;
    size_t section_count;
} sp_elf_headers;
// 0 when `out` holds them (free with sp_elf_headers_free); -1 when it is not a
// 64-bit little-endian ELF file libelf can read.
int sp_elf_read_headers(int fd, const void *data, size_t size, sp_elf_headers *out);
void sp_elf_headers_free(sp_elf_headers *headers);

// Writes to `out` a copy of the ELF file at `in` whose compressed sections
// (SHF_COMPRESSED) are inflated: the file unchanged, then each inflated section,
// then a new section header table pointing at them (program headers and notes stay
// where they were). libelf reads and inflates (elf_compress). 1 when written, 0 when
// no section is compressed, -1 on error.
int sp_elf_write_inflated(int in, int out);

// Core files (core.c). What went wrong with one: the statuses below, 0 for none.
enum {
    SP_CORE_NOT_ELF = 1,             // not an ELF file (nor a compressed one)
    SP_CORE_NOT_CORE = 2,            // ELF, but not a core (an executable, a library)
    SP_CORE_OTHER_ARCHITECTURE = 3,  // a core of another machine than x86_64
    SP_CORE_TRUNCATED = 4,           // its headers or compressed stream end early
    SP_CORE_CORRUPT = 5,             // its compressed stream does not decode
    SP_CORE_TOO_LARGE = 6,           // inflated, it would pass the limit given
};
enum { SP_CORE_ZSTD = 1, SP_CORE_XZ = 2, SP_CORE_LZ4 = 3 };
typedef struct sp_core_segment {
    uint32_t type, flags;
    uint64_t offset, vaddr, file_size, memory_size;
} sp_core_segment;
typedef struct sp_core_note {
    uint32_t type;
    char name[8];  // "CORE", "LINUX", "GNU": longer names are none of ours
    uint64_t desc_offset, desc_size;  // in the file, checked against it by libelf
} sp_core_note;
typedef struct sp_core_headers {
    uint16_t type, machine;
    sp_core_segment *segments;
    size_t segment_count;
    sp_core_note *notes;
    size_t note_count;
} sp_core_headers;
// The program headers and every note of the core in `data` (free with
// sp_core_headers_free); a SP_CORE_* status when it is not an x86_64 core.
int sp_core_read_headers(const void *data, size_t size, sp_core_headers *out);
void sp_core_headers_free(sp_core_headers *headers);
// SP_CORE_ZSTD, _XZ or _LZ4 when `data` starts as such a stream, else 0.
int sp_core_compression(const void *data, size_t size);
// Inflates a compressed core into a read-only anonymous mapping of at most `limit`
// bytes (free with sp_core_inflated_free): 0, or a SP_CORE_* status.
int sp_core_inflate(const void *data, size_t size, size_t limit, void **bytes, size_t *inflated_size);
void sp_core_inflated_free(void *bytes, size_t size);
// A descriptor of an anonymous file holding `bytes` (a core's vDSO, for libdwfl), or -1.
int sp_memory_file(const void *bytes, size_t size);

// libelf's version handshake, once for the process (every libelf user here calls it first).
void sp_elf_library_ready(void);

// The DWARF of the ELF file open at `fd` for its type and variable entries alone:
// the debug sections those never point into stay compressed (see type_dwarf.c).
// `dwarf` is a libdw Dwarf *. 0, or -1 when the file has no DWARF libdw can open.
typedef struct sp_type_dwarf {
    void *image;
    size_t size;
    void *elf;
    void *dwarf;
} sp_type_dwarf;
int sp_type_dwarf_open(int fd, sp_type_dwarf *out);
void sp_type_dwarf_close(sp_type_dwarf *handle);

#endif
