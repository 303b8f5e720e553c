// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "swiftprof",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "swiftprof", targets: ["swiftprof"]),
        .library(name: "SwiftProf", targets: ["SwiftProf"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `serve` and `attach --push`: HTTP/1 server and client codecs (no parser of our own).
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // Debian's libunwind: remote unwinding with our own accessors (no _UPT_*).
        .systemLibrary(name: "CLibunwind", pkgConfig: "libunwind-generic",
                       providers: [.apt(["libunwind-dev"])]),
        // elfutils: libdwfl for symbols, lines and inlines; libelf comes with it.
        .systemLibrary(name: "CLibdw", pkgConfig: "libdw",
                       providers: [.apt(["libdw-dev", "libelf-dev"])]),
        // What Swift cannot call directly: variadic ptrace, libunwind's macro names, demanglers.
        .target(name: "CSwiftProf", dependencies: ["CLibunwind", "CLibdw"],
                // libiberty (static, Debian's libiberty-dev): its Rust demangler.
                // zstd, xz, lz4: the compressed cores systemd-coredump writes (libzstd-dev, liblzma-dev, liblz4-dev).
                linkerSettings: [.linkedLibrary("stdc++"), .linkedLibrary("z"), .linkedLibrary("iberty"),
                                 .linkedLibrary("zstd"), .linkedLibrary("lzma"), .linkedLibrary("lz4")]),
        // Optimized even in debug builds: the tests run the real binary hundreds of times,
        // and unoptimized byte scanning and tab alignment made them four times slower.
        .target(name: "SwiftProf", dependencies: ["CSwiftProf"],
                swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        // What `serve` and `attach --push` say over HTTP (Go's /debug/pprof routes, Pyroscope's
        // ingest request), apart from how it is carried: no NIO here.
        .target(name: "SwiftProfHTTP"),
        // The carrying: SwiftNIO's HTTP/1 server and client codecs.
        .target(name: "SwiftProfServe", dependencies: [
            "SwiftProfHTTP",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        .executableTarget(name: "swiftprof", dependencies: [
            "SwiftProf", "SwiftProfHTTP", "SwiftProfServe",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // A Swift target program with known stacks, profiled by the tests.
        .executableTarget(name: "SwiftParked", path: "Fixtures/SwiftParked"),
        // Async tasks suspended in known functions, in known numbers (dump --tasks).
        .executableTarget(name: "SwiftTasks", path: "Fixtures/SwiftTasks"),
        // Async programs whose truth the fixture knows: task churn, request kinds, a starved pool.
        .executableTarget(name: "SwiftAsync", path: "Fixtures/SwiftAsync"),
        .testTarget(name: "SwiftProfTests", dependencies: ["SwiftProf", "SwiftProfHTTP", "swiftprof", "SwiftParked", "SwiftTasks", "SwiftAsync"]),
    ],
    swiftLanguageModes: [.v6]
)
