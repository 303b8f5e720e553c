// Code written at run time into anonymous memory (Fixtures/c/jit.c, the way a
// JVM or V8 leaves it): no unwind information, only frame pointers. The walk must
// go through it as far as eu-stack does, frame for frame.
import Foundation
import SwiftProf
import Testing

@Suite(.serialized)
struct JITTests {
    /// eu-stack -p: per thread name's TID, the frame addresses, leaf first (the leaf's
    /// pc as is, the others return addresses, as it prints them).
    static func euStackAddresses(_ pid: Int32) throws -> [Int32: [UInt64]] {
        let result = try run("eu-stack", ["-p", "\(pid)"])
        var threads: [Int32: [UInt64]] = [:]
        var current: Int32?
        for line in result.stdout.split(separator: "\n") {
            if line.hasPrefix("TID ") {
                current = Int32(line.dropFirst(4).prefix { $0.isNumber })
                threads[current!] = []
            } else if line.hasPrefix("#"), let tid = current {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                if fields.count > 1, let address = UInt64(fields[1].dropFirst(2), radix: 16) { threads[tid]!.append(address) }
            }
        }
        return threads
    }

    /// Ours in eu-stack's terms: the leaf's pc, then return addresses (our frame
    /// addresses are the call's, one byte before).
    static func addresses(_ record: Record) -> [UInt64] {
        let user = record.locations.filter { !$0.isKernel }.map(\.address)
        return user.enumerated().map { $0.offset == 0 ? $0.element : $0.element + 1 }
    }

    @Test func dumpWalksThroughJITFramesAsEuStackDoes() throws {
        let fixture = try Fixture.c("jit")
        defer { fixture.stop() }
        let result = try swiftprof("dump", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try parseProfile(result.stdout)
        let theirs = try Self.euStackAddresses(fixture.pid)
        let sleeper = try #require(profile.records.first { $0.threadNames == ["jitsleep"] })
        #expect(sleeper.truncation == nil)
        #expect(sleeper.functions.contains("c_sleep") && sleeper.functions.contains("enter_jit"))
        let sleeperTID = try #require(sleeper.threadIDs.first)
        #expect(Self.addresses(sleeper) == theirs[sleeperTID], "\(result.stdout)")
        // Two JIT frames between c_sleep and enter_jit.
        let spinner = try #require(profile.records.first { $0.threadNames == ["jitspin"] })
        #expect(spinner.truncation == nil)
        #expect(spinner.userFunctions.suffix(4) == ["enter_jit", "spinner", "start_thread", "__clone3"])
        // Spinning: its leaf pc moves between the two captures, its callers do not.
        let spinnerTID = try #require(spinner.threadIDs.first)
        let spinnerTheirs = try #require(theirs[spinnerTID])
        #expect(Array(Self.addresses(spinner).dropFirst()) == Array(spinnerTheirs.dropFirst()), "\(result.stdout)")
        #expect(Self.addresses(spinner).count == 6)
        fixture.expectRunning()
    }

    /// Sampled: the spinner in JIT code from the kernel's samples (registers of the
    /// moment, rbp included), the sleeper below JIT frames; every sample complete.
    @Test func attachWalksThroughJITFrames() throws {
        let fixture = try Fixture.c("jit")
        defer { fixture.stop() }
        let result = try swiftprof("attach", "--duration", "1s", "--format", "folded", "--thread-names", "\(fixture.pid)")
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        let jit = lines.filter { $0.hasPrefix("jitspin;") || $0.hasPrefix("jitsleep;") }
        #expect(jit.count >= 2, "\(result.stdout)")
        for line in jit {
            #expect(line.contains("start_thread;") && line.contains(";enter_jit;"), "\(line)")
        }
        fixture.expectRunning()
    }
}
