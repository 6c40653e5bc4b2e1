#!/usr/bin/env bash
# Builds liblanyard_ffi.so for the four Android ABIs with cargo-ndk (size-tuned `mobile`
# profile) into lanyard-wallet/build/generated/jniLibs, and generates the Kotlin bindings into
# lanyard-wallet/build/generated/uniffi (packages app.lanyard.wallet and app.lanyard.wallet.core,
# each crate's own uniffi.toml). Needs the Android NDK ($ANDROID_NDK_HOME),
# `cargo install cargo-ndk`, and the rustup targets aarch64-linux-android
# armv7-linux-androideabi x86_64-linux-android i686-linux-android.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
cargo ndk --platform 26 \
  -t arm64-v8a -t armeabi-v7a -t x86_64 -t x86 \
  -o "$here/lanyard-wallet/build/generated/jniLibs" \
  build --profile mobile -p lanyard-ffi
cargo build -p lanyard-ffi --features bindgen --bin uniffi-bindgen
target/debug/uniffi-bindgen generate \
  --library target/aarch64-linux-android/mobile/liblanyard_ffi.so \
  --language kotlin --no-format \
  --out-dir "$here/lanyard-wallet/build/generated/uniffi"
