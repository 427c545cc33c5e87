//! Kinko for apps: [uniffi] bindings of `kinko-core` for Kotlin, Swift and Python.
//!
//! The foreign API is generated from this crate's built library (`cargo run -p
//! uniffi-bindgen -- generate --library …`, see docs/BINDINGS.md). What it offers:
//!
//! - keys: [`Identity`] (`AGE-SECRET-KEY-1…`: generate, parse, write an identity file, its
//!   public key) and [`Recipient`] (`age1…`), compatible with age; [`parse_identities`],
//!   [`read_identity_file`], [`parse_recipients`]; [`Secret`] for passphrases, passwords and
//!   tokens, zeroized on the Rust side;
//! - files by path, streamed in constant memory, written only once complete:
//!   [`seal_file`], [`open_file`], with a [`ProgressListener`] and a [`CancelToken`];
//! - small data in memory: [`seal_bytes`], [`open_bytes`];
//! - the public part of an envelope: [`inspect_file`], [`inspect_bytes`];
//! - the sidecar (`kinko serve`): [`KinkoClient`] (upload, share with expiry, download limit,
//!   password and recipients, list, revoke, download) and share [`Link`]s (download to a
//!   path, or download and open a recipient-bound share in one step);
//! - every failure as one [`KinkoError`] variant per cause.
//!
//! Everything here blocks the calling thread: call it from a worker thread in a UI app.
//!
//! [uniffi]: https://mozilla.github.io/uniffi-rs

mod client;
mod envelope;
mod error;
mod keys;
mod output;
mod progress;

pub use client::{
    CreatedShare, Downloaded, KinkoClient, Link, LinkInfo, Me, NetworkKind, Role, ServerFile,
    ShareInfo, ShareOptions, ShareState, UploadOptions,
};
pub use envelope::{
    Argon2Params, EnvelopeInfo, FileInfo, OpenWith, Opened, SealOptions, SealTo, Sealed,
    StanzaInfo, StanzaKind, Suite, inspect_bytes, inspect_file, open_bytes, open_file, seal_bytes,
    seal_file,
};
pub use error::KinkoError;
pub use keys::{
    Identity, Recipient, Secret, parse_identities, parse_recipients, read_identity_file,
};
pub use progress::{CancelToken, PROGRESS_INTERVAL, ProgressListener};

uniffi::setup_scaffolding!("kinko");
