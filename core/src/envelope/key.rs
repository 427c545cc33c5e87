//! Symmetric key material: the per-file data key and long-lived symmetric keys.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::kdf;
use super::rng::{OsRandom, RandomSource};

/// Length in bytes of a data key and of a symmetric key.
pub const KEY_BYTES: usize = 32;
/// Length in bytes of a [`KeyId`].
pub const KEY_ID_BYTES: usize = 16;

/// The per-file data key (DEK): 32 random bytes, never reused, zeroized on drop.
///
/// Whoever holds it can open the file's metadata and payload; stanzas wrap it for whoever
/// may. Prints as `DataKey(..)`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; KEY_BYTES]);

impl DataKey {
    pub(crate) fn generate(rng: &mut dyn RandomSource) -> Self {
        let mut key = DataKey([0; KEY_BYTES]);
        rng.fill(&mut key.0);
        key
    }

    pub(crate) fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        DataKey(bytes)
    }

    /// The key bytes. Every use is a place where the DEK leaves this type: keep them few.
    pub fn expose_secret(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// A long-lived 32-byte symmetric key that can open envelopes: the server's master key
/// (KEK) or a link secret.
///
/// Each wrap under it uses a fresh random salt, so the key is never used twice with one
/// nonce. Prints as `SymmetricKey(<key id>)`; compares in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SymmetricKey([u8; KEY_BYTES]);

impl SymmetricKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut key = SymmetricKey([0; KEY_BYTES]);
        OsRandom.fill(&mut key.0);
        key
    }

    /// Wraps existing key bytes (for example read from a key file).
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        SymmetricKey(bytes)
    }

    /// The key bytes.
    pub fn expose_secret(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }

    /// The public identifier of this key, stored in the stanzas it wraps.
    pub fn key_id(&self) -> KeyId {
        let full = kdf::derive(kdf::SYMMETRIC_KEY_ID, &[&self.0]);
        let mut id = [0; KEY_ID_BYTES];
        id.copy_from_slice(&full[..KEY_ID_BYTES]);
        KeyId(id)
    }
}

impl PartialEq for SymmetricKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SymmetricKey {}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SymmetricKey({})", self.key_id())
    }
}

/// The identifier of a [`SymmetricKey`]: the first 16 bytes of a BLAKE3 derivation of the
/// key. Public; printed as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; KEY_ID_BYTES]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = SymmetricKey::from_bytes([0xab; 32]);
        let shown = format!("{key:?}");
        assert!(shown.starts_with("SymmetricKey("));
        assert!(!shown.contains("abababab"));
        assert_eq!(
            format!("{:?}", DataKey::from_bytes([0xab; 32])),
            "DataKey(..)"
        );
    }

    #[test]
    fn key_ids_differ_per_key() {
        let a = SymmetricKey::from_bytes([1; 32]);
        let b = SymmetricKey::from_bytes([2; 32]);
        assert_ne!(a.key_id(), b.key_id());
        assert_eq!(a.key_id(), a.clone().key_id());
        assert_eq!(a.key_id().to_string().len(), 32);
    }
}
