#!/usr/bin/env bash
# Generates the Swift, Kotlin and Python bindings of lanyard-ffi in library mode from a built
# library, into bindings/<language>/ (or $1). Usage: scripts/generate-bindings.sh [out-dir]
#
# Two uniffi components are in the library: lanyard-ffi (the wallet's API) and wallet-core
# (its records that cross as they are: WalletEvent). Each crate's own uniffi.toml is used (found
# through cargo metadata; a --config override would apply one crate's settings to both).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bindings}"
cargo build --profile mobile -p lanyard-ffi
cargo build -p lanyard-ffi --features bindgen --bin uniffi-bindgen --bin uniffi-bindgen-swift
case "$(uname -s)" in
  Darwin) library=target/mobile/liblanyard_ffi.dylib ;;
  *) library=target/mobile/liblanyard_ffi.so ;;
esac
for language in kotlin python; do
  target/debug/uniffi-bindgen generate --library "$library" --language "$language" \
    --no-format --out-dir "$out/$language"
done
# Swift: both components in the one LanyardWallet module, their two C headers under one
# LanyardWalletFFI module map.
target/debug/uniffi-bindgen-swift --swift-sources --headers --modulemap \
  --module-name LanyardWalletFFI --modulemap-filename LanyardWalletFFI.modulemap \
  "$library" "$out/swift"
echo "bindings in $out/: swift (LanyardWallet.swift, wallet_core.swift, LanyardWalletFFI.h," \
  "wallet_coreFFI.h, LanyardWalletFFI.modulemap), kotlin (app.lanyard.wallet," \
  "app.lanyard.wallet.core), python (lanyard_ffi.py, wallet_core.py)"
