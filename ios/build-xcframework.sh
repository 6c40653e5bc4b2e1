#!/usr/bin/env bash
# Builds LanyardWalletFFI.xcframework (device and simulator) and copies the generated Swift
# into the package. Runs on macOS with Xcode and the rustup targets
#   aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios
# Usage: ios/build-xcframework.sh
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios)
for target in "${targets[@]}"; do
  cargo rustc --profile mobile -p lanyard-ffi --target "$target" --crate-type staticlib
done
scripts/generate-bindings.sh target/bindings
gen=target/bindings/swift
headers=target/ios/headers
rm -rf "$headers" target/ios/sim ios/LanyardWalletFFI.xcframework
mkdir -p "$headers" target/ios/sim
cp "$gen/LanyardWalletFFI.h" "$gen/wallet_coreFFI.h" "$headers/"
cp "$gen/LanyardWalletFFI.modulemap" "$headers/module.modulemap"
# One simulator library for both simulator architectures.
lipo -create \
  target/aarch64-apple-ios-sim/mobile/liblanyard_ffi.a \
  target/x86_64-apple-ios/mobile/liblanyard_ffi.a \
  -output target/ios/sim/liblanyard_ffi.a
xcodebuild -create-xcframework \
  -library target/aarch64-apple-ios/mobile/liblanyard_ffi.a -headers "$headers" \
  -library target/ios/sim/liblanyard_ffi.a -headers "$headers" \
  -output ios/LanyardWalletFFI.xcframework
# The wallet's API and the wallet-core records it uses (WalletEvent), one Swift module.
cp "$gen/LanyardWallet.swift" "$gen/wallet_core.swift" ios/Sources/LanyardWallet/
echo "ios/LanyardWalletFFI.xcframework and ios/Sources/LanyardWallet/{LanyardWallet,wallet_core}.swift are ready"
