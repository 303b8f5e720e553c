// swift-tools-version:6.2
// A Hummingbird 2 server for `dump --tasks`, built apart from swiftprof (its own
// scratch path under .build) so that swiftprof's build does not wait for SwiftNIO.
import PackageDescription

let package = Package(
    name: "SwiftServer",
    platforms: [.macOS(.v14)],
    dependencies: [
        // No default traits: swift-configuration and full Foundation are not needed here.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
    ],
    targets: [
        .executableTarget(name: "SwiftServer", dependencies: [.product(name: "Hummingbird", package: "hummingbird")]),
    ],
    swiftLanguageModes: [.v6]
)
