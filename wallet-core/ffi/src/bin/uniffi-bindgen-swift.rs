//! Generates the Swift bindings of lanyard-ffi and of the wallet-core records it exports, with
//! one C module map over both headers (uniffi's Swift-specific generator, library mode):
//! `uniffi-bindgen-swift --swift-sources --headers --modulemap --module-name
//! LanyardWalletFFI --modulemap-filename LanyardWalletFFI.modulemap <library> <out>`.
fn main() {
    uniffi::uniffi_bindgen_swift()
}
