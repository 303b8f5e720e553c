// Identical stacks collapse into one record with a count, as Go's
// printCountProfile does; records sort by count descending, then by their
// "@ ..." key so that the same state always prints the same bytes.

public enum AddressMode: String, Sendable, CaseIterable {
    /// Addresses as they are in the target.
    case absolute
    /// Address minus the load bias of its object (link-time addresses), stable across runs.
    case relative
}

public enum Grouper {
    /// `mergingProcesses`: identical stacks of different processes make one record
    /// (by default each process's threads are grouped apart).
    public static func records(_ threads: [ThreadStack], addresses: AddressMode = .absolute,
                               mergingProcesses: Bool = false) -> [Record] {
        struct Key: Hashable {
            let process: Int32?
            let addresses: [UInt64]
            let truncation: String?
            let state: String?
            let kernel: [String]
            let labels: [String: String]
        }
        // One lookup a thread (at 100,000 goroutines each lookup hashes a stack).
        var indexOf: [Key: Int] = [:]
        var records: [Record] = []
        for thread in threads {
            // Kernel frames whose addresses are hidden (0) still differ by name.
            let key = Key(process: mergingProcesses ? nil : thread.process?.pid, addresses: thread.locations.map(\.address), truncation: thread.truncation,
                          state: thread.state?.groupKey,
                          kernel: thread.locations.filter { $0.isKernel && $0.address == 0 }.flatMap { $0.lines.map(\.function) },
                          labels: thread.labels)
            let index: Int
            if let known = indexOf[key] {
                index = known
                // The key holds the state's group key: both have a state or neither.
                if let state = records[index].state, let other = thread.state { records[index].state = merge(state, other) }
            } else {
                index = records.count
                indexOf[key] = index
                var record = Record(count: 0, locations: thread.locations, truncation: thread.truncation, state: thread.state)
                record.labels = thread.labels
                records.append(record)
            }
            records[index].count += 1
            records[index].threadIDs.append(thread.tid)
            if let process = thread.process, records[index].processes.last != process { records[index].processes.append(process) }
            // Names repeat (a pool's workers, a goroutine's state): kept once in a row, made distinct below.
            if !thread.name.isEmpty, records[index].threadNames.last != thread.name { records[index].threadNames.append(thread.name) }
        }
        for index in records.indices {
            records[index].threadIDs.sort()
            records[index].threadNames = Array(Set(records[index].threadNames)).sorted()
            records[index].processes = Array(Set(records[index].processes)).sorted()
        }
        return sorted(records, addresses: addresses)
    }

    /// Records of different processes with the same stack, state and labels made one
    /// (`--merge-processes` for sampled records, which are grouped per process first).
    public static func mergingProcesses(_ records: [Record], addresses: AddressMode = .absolute) -> [Record] {
        struct Key: Hashable {
            let stack: String
            let truncation: String?
            let state: String?
            let labels: [String: String]
        }
        var indexOf: [Key: Int] = [:]
        var merged: [Record] = []
        for record in records {
            let key = Key(stack: atKey(record, addresses: .absolute) + record.locations.flatMap { $0.lines.map(\.function) }.joined(separator: ";"),
                          truncation: record.truncation, state: record.state?.groupKey, labels: record.labels)
            guard let index = indexOf[key] else {
                indexOf[key] = merged.count
                merged.append(record)
                continue
            }
            merged[index].count += record.count
            merged[index].threadIDs = (merged[index].threadIDs + record.threadIDs).sorted()
            merged[index].threadNames = Array(Set(merged[index].threadNames + record.threadNames)).sorted()
            merged[index].processes = Array(Set(merged[index].processes + record.processes)).sorted()
            if let state = merged[index].state, let other = record.state { merged[index].state = merge(state, other) }
        }
        return sorted(merged, addresses: addresses)
    }

    /// One state for threads that share a group key: arguments that differ become "…",
    /// the blocked time is the longest.
    static func merge(_ a: ThreadState, _ b: ThreadState) -> ThreadState {
        var merged = a
        if var call = a.systemCall, let other = b.systemCall {
            call.arguments = zip(call.arguments, other.arguments).map { $0 == $1 ? $0 : "…" }
            merged.systemCall = call
        }
        if let other = b.blockedNanoseconds { merged.blockedNanoseconds = max(a.blockedNanoseconds ?? 0, other) }
        if a.wait != b.wait { merged.wait = "…" }
        merged.swiftTasks = Array(Set(a.swiftTasks + b.swiftTasks)).sorted()
        return merged
    }

    public static func sorted(_ records: [Record], addresses: AddressMode) -> [Record] {
        let keyed = records.map { (record: $0, key: atKey($0, addresses: addresses)) }
        return keyed.sorted { lhs, rhs in
            if lhs.record.count != rhs.record.count { return lhs.record.count > rhs.record.count }
            if lhs.key != rhs.key { return lhs.key.utf8.lexicographicallyPrecedes(rhs.key.utf8) }
            let left = (lhs.record.state?.groupKey ?? "") + (lhs.record.truncation ?? "") + GoLabels.format(lhs.record.labels)
            let right = (rhs.record.state?.groupKey ?? "") + (rhs.record.truncation ?? "") + GoLabels.format(rhs.record.labels)
            if left != right { return left.utf8.lexicographicallyPrecedes(right.utf8) }
            return lhs.record.processes.map(\.pid).lexicographicallyPrecedes(rhs.record.processes.map(\.pid))
        }.map(\.record)
    }

    /// "@ 0x.. 0x..": return addresses, i.e. each call site + 1 (the leaf's pc + 1 too).
    public static func atKey(_ record: Record, addresses: AddressMode) -> String {
        var key = "@"
        for location in record.locations {
            key += " " + hex(printedAddress(location, addresses) &+ 1)
        }
        return key
    }

    public static func printedAddress(_ location: Location, _ mode: AddressMode) -> UInt64 {
        mode == .relative ? location.address &- location.moduleBias : location.address
    }
}
