// The classifier's rules, tables and formats on known inputs.
import Foundation
@testable import SwiftProf
import Testing

struct LayerRuleTests {
    @Test func patternsNameModulesOrFunctions() throws {
        #expect(try LayerRule(parsing: "runtime=libfoo.so*") == LayerRule(layer: .runtime, subject: .module, pattern: "libfoo.so*"))
        #expect(try LayerRule(parsing: "app=mylib::*") == LayerRule(layer: .app, subject: .function, pattern: "mylib::*"))
        #expect(try LayerRule(parsing: "syscall=function:my.so.wrapper") == LayerRule(layer: .syscall, subject: .function, pattern: "my.so.wrapper"))
        #expect(try LayerRule(parsing: "runtime=module:engine") == LayerRule(layer: .runtime, subject: .module, pattern: "engine"))
        #expect(throws: LayerRuleError(text: "runtime", reason: "expected LAYER=PATTERN")) { try LayerRule(parsing: "runtime") }
        #expect(throws: LayerRuleError(text: "kernel=x", reason: "the layer must be app, runtime or syscall")) { try LayerRule(parsing: "kernel=x") }
        #expect(throws: LayerRuleError(text: "app=", reason: "empty pattern")) { try LayerRule(parsing: "app=") }
    }

    @Test func builtInRulesKnowTheRuntimes() {
        let rules = LayerRules.standard()
        #expect(rules.layer(module: "/usr/lib/x86_64-linux-gnu/libc.so.6", function: "___pthread_cond_wait") == .runtime)
        #expect(rules.layer(module: "/opt/swift/usr/lib/swift/linux/libswiftCore.so", function: "x") == .runtime)
        #expect(rules.layer(module: "/srv/app", function: "runtime.gopark") == .runtime)
        #expect(rules.layer(module: "/srv/app", function: "std::thread::spawn") == .runtime)
        #expect(rules.layer(module: "/srv/app", function: "main.handler") == nil)
        let user = LayerRules.standard(adding: [try! LayerRule(parsing: "app=libc.so*")])
        #expect(user.layer(module: "/lib/libc.so.6", function: "read") == .app)
    }

    @Test func rulesFilesReportTheLine() throws {
        #expect(try LayerRules.parseFile("# comment\n\nruntime libfoo.so  # trailing\napp=x::*\n").count == 2)
        var expected = LayerRuleError(text: "bogus=x", reason: "the layer must be app, runtime or syscall")
        expected.line = 2
        #expect(throws: expected) { try LayerRules.parseFile("app=x\nbogus x\n") }
    }
}

struct SyscallNameTests {
    @Test(arguments: [
        ("__GI___libc_read", "read"), ("__GI___clock_nanosleep", "clock_nanosleep"), ("__GI___nanosleep", "nanosleep"),
        ("epoll_wait", "epoll_wait"), ("accept4", "accept4"), ("__futex_abstimed_wait_common64", "futex"),
        ("__libc_recv", "recvfrom"), ("runtime.futex", "futex"),
    ])
    func wrappersNameTheirCall(_ function: String, _ call: String) {
        // __libc_recv wraps recvfrom on x86_64, which the name cannot tell: it is not a match.
        if function == "__libc_recv" {
            #expect(SyscallWrappers.syscallName(ofWrapper: function) == nil)
        } else {
            #expect(SyscallWrappers.syscallName(ofWrapper: function) == call)
        }
    }

    @Test func ordinaryFunctionsAreNotWrappers() {
        for name in ["main", "___pthread_cond_wait", "__libc_start_call_main", "read_request", "_start", "poll_forever"] {
            #expect(!SyscallWrappers.isWrapper(name), "\(name)")
        }
        #expect(SyscallWrappers.isWrapper("syscall.Syscall6"))
    }

    @Test func theTableIsComplete() {
        #expect(SyscallTable.name(0) == "read")
        #expect(SyscallTable.name(202) == "futex")
        #expect(SyscallTable.name(232) == "epoll_wait")
        #expect(SyscallTable.name(288) == "accept4")
        #expect(SyscallTable.name(435) == "clone3")
        #expect(SyscallTable.name(467) == "open_tree_attr")
        #expect(SyscallTable.name(9999) == "syscall_9999")
        #expect(SyscallTable.number("clock_nanosleep") == 230)
    }

    @Test func argumentsPrintAsAPersonReadsThem() {
        #expect(ThreadStates.formatArgument(3) == "3")
        #expect(ThreadStates.formatArgument(0xffff_ffff) == "-1")
        #expect(ThreadStates.formatArgument(UInt64.max) == "-1")
        #expect(ThreadStates.formatArgument(0x7f00_1234_5678) == "0x7f0012345678")
    }

    @Test func aStopInsideASyscallShowsInTheRegisters() {
        var registers = RegisterSet(pc: 1, sp: 2, fp: 3)
        registers.origRAX = 232
        registers.values[0] = UInt64(bitPattern: -514)  // -ERESTARTNOHAND
        #expect(registers.interruptedSyscall == 232)
        registers.values[0] = 4  // it returned 4 events: no longer in the call
        #expect(registers.interruptedSyscall == nil)
    }
}

struct KernelSubsystemTests {
    @Test(arguments: [
        (["inet_csk_accept", "inet_accept", "do_accept"], "TCP/IP", "NIC"),
        (["wait_woken", "sk_wait_data", "tcp_recvmsg_locked"], "TCP/IP", "NIC"),
        (["do_epoll_wait", "__x64_sys_epoll_wait"], "eventpoll", "none"),
        (["futex_do_wait", "__futex_wait"], "futex", "none"),
        (["hrtimer_nanosleep", "common_nsleep"], "hrtimer", "timer"),
        (["anon_pipe_read", "vfs_read"], "pipe", "none"),
        (["wait_woken", "n_tty_read", "tty_read"], "tty", "terminal"),
        (["unix_stream_read_generic"], "Unix sockets", "none"),
        (["do_syscall_64", "entry_SYSCALL_64_after_hwframe"], "—", "—"),
    ])
    func innermostKnownFrameDecides(_ frames: [String], _ subsystem: String, _ hardware: String) {
        #expect(KernelSubsystem.path(kernelFunctions: frames, wchan: "", syscall: nil) == KernelPath(subsystem: subsystem, hardware: hardware))
    }

    @Test func withoutKernelFramesWchanThenTheCallDecide() {
        #expect(KernelSubsystem.path(kernelFunctions: [], wchan: "do_epoll_wait", syscall: nil).subsystem == "eventpoll")
        #expect(KernelSubsystem.path(kernelFunctions: [], wchan: "", syscall: "clock_nanosleep").subsystem == "hrtimer")
        #expect(KernelSubsystem.path(kernelFunctions: [], wchan: "", syscall: "read") == .unknown)
    }
}

struct StateLineTests {
    static let state = ThreadState(code: "S", systemCall: SystemCall(name: "epoll_wait", arguments: ["3", "…", "4", "-1"]),
                                   wchan: "do_epoll_wait", blockedNanoseconds: 3_250_000_000)

    @Test func roundTrips() throws {
        let line = StateLine.format(Self.state, threadIDs: [12, 40], names: ["io", "poller"], showsBlockedTime: true)
        #expect(line == "# state: S (sleeping) syscall: epoll_wait(3, …, 4, -1) wchan: do_epoll_wait blocked: 3.250s threads: 12,40 names: io,poller")
        let (state, threads, names) = try #require(StateLine.parse(line))
        #expect(state == Self.state)
        #expect(threads == [12, 40])
        #expect(names == ["io", "poller"])
        #expect(StateLine.parse("# state: S (running)") == nil)
        #expect(StateLine.parse("# state: R (running) syscall: x") == nil)
    }

    @Test func recordsGroupByStateAndMergeArguments() throws {
        func thread(_ tid: Int32, _ fd: String, _ code: Character = "S") -> ThreadStack {
            ThreadStack(tid: tid, name: "t", locations: [Location(address: 0x10, lines: [FrameLine(function: "f", offset: 0, file: "", line: 0)])],
                        truncation: nil, state: ThreadState(code: code, systemCall: SystemCall(name: "read", arguments: [fd, "1"])))
        }
        let records = Grouper.records([thread(1, "3"), thread(2, "4"), thread(3, "3", "D")])
        #expect(records.map(\.count) == [2, 1])
        #expect(records[0].state?.systemCall?.arguments == ["…", "1"])
        #expect(records[1].state?.code == "D")
        let text = PprofTextWriter().write(records)
        #expect(try PprofTextReader.read(text).records.map(\.state) == records.map(\.state))
    }
}

struct InteractionMatrixTests {
    static func line(_ function: String) -> FrameLine { FrameLine(function: function, offset: 0, file: "", line: 0) }

    @Test func rowsNameTheComponentTheEntryAndThePath() {
        let libc = "/usr/lib/x86_64-linux-gnu/libc.so.6"
        let record = Record(count: 3, locations: [
            Location(address: 0xffff_ffff_8100_0000, module: Location.kernelModule, lines: [Self.line("do_epoll_wait")]),
            Location(address: 0x7f00, module: libc, lines: [Self.line("epoll_wait")]),
            Location(address: 0x5500, module: "/srv/kv", lines: [Self.line("poll_loop")]),
            Location(address: 0x5600, module: "/srv/kv", lines: [Self.line("serve")]),
            Location(address: 0x7f10, module: libc, lines: [Self.line("start_thread")]),
        ], truncation: nil, state: ThreadState(code: "S", systemCall: SystemCall(name: "epoll_wait", arguments: [])))
        let rows = InteractionMatrix.rows([record, record], classifier: Classifier())
        #expect(rows == [InteractionRow(component: "serve → poll_loop", runtimeEntry: "epoll_wait", systemCall: "epoll_wait",
                                        subsystem: "eventpoll", hardware: "none", threads: 6)])
        let markdown = LayersTableWriter(markdown: true).write(rows)
        #expect(markdown.hasSuffix("| serve → poll_loop | epoll_wait | epoll_wait | eventpoll | none | 6 |\n"))
        let chart = MermaidChartWriter().write(rows)
        #expect(chart.contains("    app0 -->|\"6 threads\"| rt0\n"))
        #expect(!chart.contains("hw0"))  // "none" is no hardware node
    }

    @Test func mermaidLabelsEscapeWhatMermaidParses() {
        #expect(MermaidChartWriter.escape("Parker<int>::park(\"x\") #1") == "Parker#60;int#62;::park(#34;x#34;) #35;1")
    }
}

struct KallsymsCacheTests {
    /// The cache gives the addresses the kernel gives, and keeps them private.
    @Test func cachedAddressesAreTheKernels() throws {
        guard KallsymsCache.kernelShowsAddresses() else {
            Issue.record("this test needs /proc/kallsyms addresses (root)")
            return
        }
        let names: Set<String> = ["do_epoll_wait", "futex_wait", "hrtimer_nanosleep"]
        let direct = try #require(Kallsyms.load(names))
        let first = try #require(KallsymsCache.load(names)), second = try #require(KallsymsCache.load(names))
        for name in names {
            #expect(first.address(of: name) == direct.address(of: name))
            #expect(second.address(of: name) == direct.address(of: name))
        }
        // Where the library keeps it: $XDG_CACHE_HOME, else $HOME/.cache; with neither, nowhere.
        let environment = ProcessInfo.processInfo.environment
        guard let cache = environment["XDG_CACHE_HOME"] ?? environment["HOME"].map({ $0 + "/.cache" }) else { return }
        let boot = try String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let attributes = try FileManager.default.attributesOfItem(atPath: "\(cache)/swiftprof/kallsyms-\(boot)")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
    }
}
