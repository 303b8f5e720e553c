// The rings the switch events write into: one a CPU (an event may only write into
// another's ring on its own CPU), shared by every thread's events of every
// process a run samples, as perf record -a keeps one a CPU for the whole host. A
// tick reads two rings however many processes there are (a pair of rings a
// process meant 200 rings of 512 KiB to set up and poll at 100 processes), and
// each process takes the records that are its own.
import CSwiftProf
import Glibc

final class SwitchRings {
    /// One ring a CPU, (cpu, its owner event); empty until a thread is tracked.
    private(set) var rings: [(cpu: Int32, event: PerfEvent)] = []
    /// Why no ring could be opened, once it was tried.
    private(set) var refusal: Int32?
    /// Records the kernel dropped (a ring filled between two ticks).
    private(set) var lost: UInt64 = 0
    private var tried = false
    /// Records read but not yet taken, by the process they are for.
    private var pending: [Int32: [sp_switch_record]] = [:]
    /// 512 KiB a CPU, as perf record's default: thousands of switches between two drains.
    private static let ringPages = 128

    init() {}

    /// The rings of every CPU that takes events (an offline one does not); refused
    /// when no CPU takes one.
    func open() {
        guard !tried else { return }
        tried = true
        let configured = max(1, Int32(sysconf(Int32(_SC_NPROCESSORS_CONF))))
        var why: Int32?
        for cpu in 0..<configured {
            if let event = PerfEvent.opened(sp_switch_ring_open(cpu), pages: Self.ringPages, refusal: &why) {
                rings.append((cpu, event))
            }
        }
        if rings.isEmpty { refusal = why ?? ENODEV }
    }

    /// A process's records from now on are kept for it until it takes them.
    func register(_ pid: Int32) {
        if pending[pid] == nil { pending[pid] = [] }
    }

    func unregister(_ pid: Int32) { pending[pid] = nil }

    /// Every record for `pid` since its last call, in time order (its threads' records
    /// are in the rings of the CPUs they ran on). A loss is every process's: nothing
    /// says whose records were dropped. A process started by one sampled is told to
    /// its parent (FORK), a thread's end and rename to its own process.
    func take(for pid: Int32, into records: inout [sp_switch_record]) {
        var record = sp_switch_record()
        for ring in rings {
            while sp_switch_next(ring.event.ring, &record) == 1 {
                if Int(record.kind) == SP_SWITCH_LOST {
                    lost += record.lost
                    for key in pending.keys { pending[key]!.append(record) }
                    continue
                }
                let owner = Int(record.kind) == SP_SWITCH_FORK ? record.ppid : record.pid
                pending[owner]?.append(record)
            }
        }
        records.removeAll(keepingCapacity: true)
        guard var mine = pending[pid], !mine.isEmpty else { return }
        pending[pid]!.removeAll(keepingCapacity: true)
        if zip(mine, mine.dropFirst()).contains(where: { $0.time > $1.time }) { mine.sort { $0.time < $1.time } }
        records = mine
    }
}
