// swift-tools-version:6.0
// counter-fcgi: a FastCGI counter responder on libfcgi and hiredis, fronted by nginx.
import PackageDescription

// Linux only: the workers wait on epoll, and the C libraries come from Debian's packages.
let package = Package(
    name: "counter-fcgi",
    products: [
        .executable(name: "counter-fcgi", targets: ["counter-fcgi"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // The two C libraries, found by pkg-config; Debian package names for the error message.
        .systemLibrary(
            name: "CFastCGI",
            pkgConfig: "fcgi",
            providers: [.apt(["libfcgi-dev"])]
        ),
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // Linux's epoll and eventfd (headers only): the workers' wait for connections.
        .systemLibrary(name: "CEpoll"),
        // Pure Swift: routing, configuration, error mapping and response encoding. No C, so the
        // unit tests drive it with an in-memory store.
        .target(
            name: "CounterCore",
            dependencies: [
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The Redis layer: the hiredis connection's owner, a worker's session (reconnects and
        // backoff), where the next connection goes (a fixed address, Sentinel's primary, a
        // cluster's slot map and its nodes) and the CounterStore over it. The pure decisions it
        // acts on (the wire format, replies, slots, redirects, discovery) live in CounterCore.
        .target(
            name: "CounterRedis",
            dependencies: [
                "CounterCore", "CHiredis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The process: FastCGI workers, signals, the metrics endpoint.
        .executableTarget(
            name: "counter-fcgi",
            dependencies: [
                "CounterCore", "CounterRedis", "CFastCGI", "CEpoll",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .testTarget(
            name: "CounterCoreTests",
            dependencies: ["CounterCore"]
        ),
    ]
)
