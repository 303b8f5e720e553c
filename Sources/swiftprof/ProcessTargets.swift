// Which processes a command profiles: one PID as always, or several (PIDs, a
// process tree, a name, a cgroup, every process), as perf -p a,b / -a and
// py-spy --subprocesses choose theirs.
import ArgumentParser
import SwiftProf

struct ProcessTargets: ParsableArguments {
    @Argument(help: ArgumentHelp("The process to profile; several PIDs to profile them together.", valueName: "PID"))
    var pids: [Int32] = []

    @Option(name: .long, help: ArgumentHelp("The process PID and all its descendants.", valueName: "PID"))
    var children: Int32?

    @Option(name: .long, help: ArgumentHelp("Every process whose name (comm) or executable's base name matches GLOB, a shell pattern ('nginx', 'postgres*').", valueName: "GLOB"))
    var name: String?

    @Option(name: .long, help: ArgumentHelp("Every process of a cgroup v2 directory (a container, a systemd unit) and of the cgroups below it; PATH is absolute or under the cgroup2 mount ('system.slice/nginx.service').", valueName: "PATH"))
    var cgroup: String?

    @Flag(name: .long, help: "Every process swiftprof may trace (not its own); those it may not are counted and named on one line on stderr.")
    var all = false

    @Flag(name: .long, help: "With several processes: group identical stacks of different processes into one record (by default each process's threads are grouped apart).")
    var mergeProcesses = false

    /// What was asked for; nil when nothing was.
    var selector: ProcessSelector? {
        if let children { return .children(of: children) }
        if let name { return .name(name) }
        if let cgroup { return .cgroup(cgroup) }
        if all { return .all }
        return pids.isEmpty ? nil : .pids(pids)
    }

    /// The one process of the single-process path every command had before (one PID given).
    var singlePID: Int32? { pids.count == 1 && given.count == 1 ? pids[0] : nil }

    /// Whether anything names processes.
    var isGiven: Bool { !given.isEmpty }

    private var given: [String] {
        [(!pids.isEmpty, "PID"), (children != nil, "--children"), (name != nil, "--name"), (cgroup != nil, "--cgroup"),
         (all, "--all")].filter(\.0).map(\.1)
    }

    func validate() throws {
        for pid in pids { try validateProcessID(pid) }
        if let children { try validateProcessID(children) }
        if given.count > 1 { throw ValidationError("give one of PID..., --children, --name, --cgroup or --all, not \(given.joined(separator: " and "))") }
        if name?.isEmpty == true { throw ValidationError("--name needs a pattern") }
        if mergeProcesses && singlePID != nil { throw ValidationError("--merge-processes groups the stacks of several processes: give more than one") }
    }

    /// The processes selected now; a line on stderr for those we may not trace.
    func resolve() throws -> ProcessSelection {
        guard let selector else { return ProcessSelection(pids: [], notPermitted: []) }
        let selection: ProcessSelection
        do {
            selection = try ProcessSelection.resolve(selector)
        } catch {
            warn(error.description)
            throw ExitStatus.cannotProfile
        }
        if let line = selection.notPermittedLine { warn(line) }
        if selection.pids.isEmpty {
            warn("no process to profile: " + (name.map { "none is named \(NameQuoting.quoted($0))" } ?? "none found"))
            throw ExitStatus.cannotProfile
        }
        return selection
    }
}
