//! Kinko core: per-file envelope encryption, age-compatible keys, and the vault.
//!
//! - [`envelope`]: seal and open files (format v1, docs/FORMAT.md).
//! - [`keys`]: X25519 identities (`AGE-SECRET-KEY-1…`) and recipients (`age1…`).
//! - [`vault`]: the server-side store: users and tokens, files, shares and the access
//!   decision, revocation, expiry, the signed audit chain, crash repair (docs/VAULT.md).

pub mod envelope;
pub mod keys;
pub mod vault;
