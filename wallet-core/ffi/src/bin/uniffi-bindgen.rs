//! Generates the Swift, Kotlin and Python bindings from the built library (library mode):
//! `cargo run -p lanyard-ffi --features bindgen --bin uniffi-bindgen -- generate --library
//! target/release/liblanyard_ffi.so --language kotlin --out-dir out`.
fn main() {
    uniffi::uniffi_bindgen_main()
}
