//! Kinko core: per-file envelope encryption, age-compatible keys, and the vault.
//!
//! - [`envelope`]: seal and open files (format v1, docs/FORMAT.md).
//! - [`keys`]: X25519 identities (`AGE-SECRET-KEY-1…`) and recipients (`age1…`).
//! - [`format`](mod@format): the specification of the envelope bytes; [`threats`]: the
//!   threat model.
//! - [`vault`]: the server-side store: users and tokens, files, shares and the access
//!   decision, revocation, expiry, the signed audit chain, crash repair (docs/VAULT.md).

pub mod envelope;
pub mod keys;
pub mod vault;

/// The envelope format, byte for byte (docs/FORMAT.md, included here so the specification
/// and the code change in the same commits).
#[doc = include_str!("../../docs/FORMAT.md")]
pub mod format {}

/// What the envelope protects against and what it does not (docs/THREATS.md).
#[doc = include_str!("../../docs/THREATS.md")]
pub mod threats {}

#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
