//! `uniffi-bindgen`: generates foreign-language sources from the built `kinko_ffi` library.
//!
//! ```sh
//! cargo build -p kinko-ffi
//! cargo run -p uniffi-bindgen -- generate --library target/debug/libkinko_ffi.so \
//!     --language python --out-dir out/
//! ```
//!
//! A package of its own so that the library does not depend on the generator and its
//! command-line parser.

fn main() {
    uniffi::uniffi_bindgen_main()
}
