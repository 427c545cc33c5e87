//! Every BLAKE3 `derive_key` context string of the format, in one place.
//!
//! docs/FORMAT.md ("Key derivation contexts") lists the same strings; a new purpose gets a new
//! string here and a new row there.

/// Payload key: material is DEK || payload nonce.
pub(crate) const PAYLOAD_KEY: &str = "kinko.dev/v1 payload key";
/// Metadata key: material is DEK || payload nonce.
pub(crate) const METADATA_KEY: &str = "kinko.dev/v1 metadata key";
/// Header MAC key: material is DEK.
pub(crate) const HEADER_MAC_KEY: &str = "kinko.dev/v1 header mac key";
/// X25519 wrap key: material is ephemeral share || recipient public key || shared secret.
pub(crate) const X25519_WRAP_KEY: &str = "kinko.dev/v1 x25519 wrap key";
/// Symmetric wrap key: material is symmetric key || salt.
pub(crate) const SYMMETRIC_WRAP_KEY: &str = "kinko.dev/v1 symmetric wrap key";
/// Symmetric key id: material is the symmetric key; the id is the first 16 bytes.
pub(crate) const SYMMETRIC_KEY_ID: &str = "kinko.dev/v1 symmetric key id";
/// Bound header stream: material is DEK || share id || recipient public keys. Not needed to
/// read or write envelopes: it is where the vault draws the ephemeral secrets of the headers it
/// binds to a share's recipients (see `rng::DerivedRandom`).
pub(crate) const BOUND_HEADER_STREAM: &str = "kinko.dev/v1 bound header stream";

/// BLAKE3 `derive_key` over the concatenation of `parts`, without leaving a copy of the
/// material behind (the hasher's state is zeroized when it is dropped).
pub(crate) fn derive(context: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(context);
    for part in parts {
        hasher.update(part);
    }
    let out = *hasher.finalize().as_bytes();
    zeroize::Zeroize::zeroize(&mut hasher);
    out
}
