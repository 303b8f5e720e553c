// The unwinder's memo (WalkMemo) against walks without it, on real threads of a
// fixture: a remembered walk is answered only when everything it read is the same.
import Foundation
@testable import SwiftProf
import Testing

@Suite struct WalkMemoTests {
    /// Every thread of hot.c (one computing, three parked in pthread_cond_wait) unwound
    /// by one unwinder twice and by fresh ones: the second walk comes from the memo
    /// and equals the first; a copy whose first return address was swapped for its
    /// second (a word the walk reads) is walked again, as a fresh unwinder walks it.
    @Test func aWalkIsRememberedOnlyForTheSameReads() throws {
        let fixture = try Fixture.c("hot", arguments: ["1", "3"])
        defer { fixture.stop() }
        let threads = try TaskThreads.capture(pid: fixture.pid, options: CaptureOptions())
        #expect(threads.count == 5)
        let map = try MemoryMap.read(pid: fixture.pid)
        let fresh = { try #require(LibunwindUnwinder(image: TargetImage(pid: fixture.pid, memoryMap: map))) }
        let memoized = try fresh()
        var changedWalks = 0
        for thread in threads {
            let first = memoized.unwind(thread, options: UnwindOptions())
            #expect(first.truncation == nil, "thread \(thread.tid): \(first.truncation ?? "")")
            #expect(first.pcs.count >= 3)
            #expect(first == (try fresh()).unwind(thread, options: UnwindOptions()))

            let hits = memoized.memoHits
            #expect(memoized.unwind(thread, options: UnwindOptions()) == first)
            #expect(memoized.memoHits == hits + 1, "the same copy again is answered by the memo")

            let changed = Self.replacing(first.pcs[1], with: first.pcs[2], in: thread)
            let walked = memoized.unwind(changed, options: UnwindOptions())
            #expect(memoized.memoHits == hits + 1, "a copy with another return address is not answered by the memo")
            #expect(walked == (try fresh()).unwind(changed, options: UnwindOptions()))
            if walked != first { changedWalks += 1 }
        }
        // The swap changes every walk: a memo that did not check the word would answer wrongly.
        #expect(changedWalks == threads.count)
    }

    /// The thread's copy with every word equal to `old` set to `new`.
    static func replacing(_ old: UInt64, with new: UInt64, in thread: CapturedThread) -> CapturedThread {
        var bytes = thread.stack.bytes
        let start = Int((8 - thread.stack.start % 8) % 8)
        for offset in stride(from: start, to: bytes.count - 7, by: 8) where littleEndianWord(bytes, at: offset) == old {
            for index in 0..<8 { bytes[offset + index] = UInt8(truncatingIfNeeded: new >> (8 * UInt64(index))) }
        }
        return CapturedThread(tid: thread.tid, name: thread.name, registers: thread.registers,
                              stack: StackCopy(start: thread.stack.start, bytes: bytes), procInfo: thread.procInfo,
                              stoppedForCapture: thread.stoppedForCapture)
    }
}
