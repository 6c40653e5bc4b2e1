#!/usr/bin/env bash
# Generates the Swift, Kotlin and Python bindings of lanyard-ffi in library mode from a built
# library, into bindings/<language>/ (or $1). Usage: scripts/generate-bindings.sh [out-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bindings}"
cargo build --profile mobile -p lanyard-ffi
cargo build -p lanyard-ffi --features bindgen --bin uniffi-bindgen
case "$(uname -s)" in
  Darwin) library=target/mobile/liblanyard_ffi.dylib ;;
  *) library=target/mobile/liblanyard_ffi.so ;;
esac
for language in swift kotlin python; do
  target/debug/uniffi-bindgen generate --library "$library" --language "$language" \
    --config wallet-core/ffi/uniffi.toml --no-format --out-dir "$out/$language"
done
echo "bindings in $out/: swift (LanyardWallet.swift, LanyardWalletFFI.h, .modulemap), kotlin, python"
