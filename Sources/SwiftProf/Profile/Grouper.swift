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
    public static func records(_ threads: [ThreadStack], addresses: AddressMode = .absolute) -> [Record] {
        struct Key: Hashable {
            let addresses: [UInt64]
            let truncation: String?
        }
        var order: [Key] = []
        var groups: [Key: Record] = [:]
        for thread in threads {
            let key = Key(addresses: thread.locations.map(\.address), truncation: thread.truncation)
            if groups[key] == nil {
                order.append(key)
                groups[key] = Record(count: 0, locations: thread.locations, truncation: thread.truncation)
            }
            groups[key]!.count += 1
            groups[key]!.threadIDs.append(thread.tid)
        }
        let records = order.map { key in
            var record = groups[key]!
            record.threadIDs.sort()
            return record
        }
        return sorted(records, addresses: addresses)
    }

    public static func sorted(_ records: [Record], addresses: AddressMode) -> [Record] {
        let keyed = records.map { (record: $0, key: atKey($0, addresses: addresses)) }
        return keyed.sorted { lhs, rhs in
            if lhs.record.count != rhs.record.count { return lhs.record.count > rhs.record.count }
            if lhs.key != rhs.key { return lhs.key.utf8.lexicographicallyPrecedes(rhs.key.utf8) }
            return (lhs.record.truncation ?? "").utf8.lexicographicallyPrecedes((rhs.record.truncation ?? "").utf8)
        }.map(\.record)
    }

    /// "@ 0x.. 0x..": return addresses, i.e. each call site + 1 (the leaf's pc + 1 too).
    public static func atKey(_ record: Record, addresses: AddressMode) -> String {
        var key = "@"
        for location in record.locations {
            key += " " + hex(printedAddress(location, addresses) + 1)
        }
        return key
    }

    public static func printedAddress(_ location: Location, _ mode: AddressMode) -> UInt64 {
        mode == .relative ? location.address &- location.moduleBias : location.address
    }
}
