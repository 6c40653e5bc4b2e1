// swift-tools-version:5.9
// The Swift package over Lanyard's wallet core: the generated uniffi bindings
// (Sources/LanyardWallet/LanyardWallet.swift and wallet_core.swift, made by
// build-xcframework.sh), the static Rust
// library as an XCFramework, and a Keychain-backed KeyProtector.
import PackageDescription

let package = Package(
    name: "LanyardWallet",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "LanyardWallet", targets: ["LanyardWallet"]),
    ],
    targets: [
        .binaryTarget(name: "LanyardWalletFFI", path: "LanyardWalletFFI.xcframework"),
        .target(
            name: "LanyardWallet",
            dependencies: ["LanyardWalletFFI"],
            path: "Sources/LanyardWallet"
        ),
    ]
)
