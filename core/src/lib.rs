//! Kinko core: per-file envelope encryption, age-compatible keys, and (later) the vault.
//!
//! - [`envelope`]: seal and open files (format v1, docs/FORMAT.md).
//! - [`keys`]: X25519 identities (`AGE-SECRET-KEY-1…`) and recipients (`age1…`).

pub mod envelope;
pub mod keys;

#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
