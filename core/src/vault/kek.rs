//! The master key (KEK) and the vault's own derived keys.
//!
//! The KEK is loaded from a key file or an environment variable and is never written into the
//! data directory ([`MasterKey::from_file`] refuses a file inside it). It wraps:
//!
//! * each file's data key: the file's envelope header carries a symmetric-key stanza under the
//!   KEK (see `sealing`), and
//! * one random 32-byte *vault seed* stored in the metadata store, from which the vault derives
//!   its keyed-hash keys (API tokens, link secrets, download tickets) and, unless one is given,
//!   the Ed25519 audit signing key.
//!
//! Rotation re-wraps both under a new KEK; payloads are never touched.

use std::fmt;
use std::path::Path;

use secrecy::{ExposeSecret, SecretBox};
use zeroize::Zeroize;

use super::codec::{self, Dec, Enc, from_hex, to_hex};
use super::types::random_array;
use crate::envelope::Suite;
use crate::envelope::cipher::Cipher;

/// BLAKE3 `derive_key` contexts used by the vault. FORMAT.md lists the envelope's; these are
/// the vault's, listed again in `docs/VAULT.md`.
pub(crate) mod context {
    /// Key id of a symmetric key (the same derivation as the envelope's, so ids agree).
    pub(crate) const KEY_ID: &str = "kinko.dev/v1 symmetric key id";
    /// Wraps the vault seed under the KEK.
    pub(crate) const SEED_WRAP: &str = "kinko.dev/v1 vault seed wrap key";
    /// Keyed hash of API tokens.
    pub(crate) const TOKEN_HASH: &str = "kinko.dev/v1 vault api token hash key";
    /// Keyed hash of link secrets.
    pub(crate) const LINK_HASH: &str = "kinko.dev/v1 vault link secret hash key";
    /// MAC of download tickets.
    pub(crate) const TICKET_MAC: &str = "kinko.dev/v1 vault download ticket key";
    /// Seed of the Ed25519 audit signing key.
    pub(crate) const AUDIT_SIGNING: &str = "kinko.dev/v1 vault audit signing key";
    /// Audit chain hash.
    pub(crate) const AUDIT_CHAIN: &str = "kinko.dev/v1 audit chain";
    /// Key of the tags of stored audit records.
    pub(crate) const AUDIT_TAG: &str = "kinko.dev/v1 vault audit record tag key";
    /// Audit checkpoint signature message prefix.
    pub(crate) const AUDIT_CHECKPOINT: &[u8] = b"kinko.dev/v1 audit checkpoint";
}

/// Identifies a master key without revealing it: the first 16 bytes of
/// `BLAKE3-derive("kinko.dev/v1 symmetric key id", key)`. Displayed as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KekId(pub [u8; 16]);

impl fmt::Display for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}
impl fmt::Debug for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KekId({self})")
    }
}

/// Why a master key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyLoadError {
    /// The key file could not be read.
    #[error("cannot read the master key file: {0}")]
    Io(#[from] std::io::Error),
    /// The environment variable is not set.
    #[error("the environment variable {0} is not set")]
    MissingEnv(String),
    /// The content is not 64 hex digits.
    #[error("a master key is 64 hex digits (32 bytes)")]
    Malformed,
    /// The key file lies inside the data directory, beside the data it protects.
    #[error("the master key file must not be inside the data directory")]
    InsideDataDir,
}

/// The server's master key (key-encryption key): 32 secret bytes.
///
/// Zeroized on drop; `Debug` prints only the key id.
pub struct MasterKey(SecretBox<[u8; 32]>);

impl MasterKey {
    /// A fresh random key (for `kinko admin keygen` and tests).
    pub fn generate() -> MasterKey {
        MasterKey::from_bytes(random_array())
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(mut bytes: [u8; 32]) -> MasterKey {
        let key = MasterKey(SecretBox::new(Box::new(bytes)));
        bytes.zeroize();
        key
    }

    /// Parses 64 hex digits (surrounding whitespace is ignored).
    ///
    /// # Errors
    /// [`KeyLoadError::Malformed`] if the text is not exactly 32 hex-encoded bytes.
    pub fn from_hex(text: &str) -> Result<MasterKey, KeyLoadError> {
        from_hex::<32>(text.trim())
            .map(MasterKey::from_bytes)
            .ok_or(KeyLoadError::Malformed)
    }

    /// Reads a key file holding 64 hex digits. `data_dir` is the vault's data directory: a key
    /// file inside it is refused, because a key stored beside the data protects nothing.
    ///
    /// # Errors
    /// I/O errors, a malformed key, or [`KeyLoadError::InsideDataDir`].
    pub fn from_file(path: &Path, data_dir: &Path) -> Result<MasterKey, KeyLoadError> {
        let key_path = path.canonicalize()?;
        if let Ok(dir) = data_dir.canonicalize()
            && key_path.starts_with(&dir)
        {
            return Err(KeyLoadError::InsideDataDir);
        }
        let mut text = std::fs::read_to_string(&key_path)?;
        let key = MasterKey::from_hex(&text);
        text.zeroize();
        key
    }

    /// Reads 64 hex digits from the environment variable `var` (e.g. `KINKO_MASTER_KEY`).
    ///
    /// # Errors
    /// [`KeyLoadError::MissingEnv`] or [`KeyLoadError::Malformed`].
    pub fn from_env(var: &str) -> Result<MasterKey, KeyLoadError> {
        let mut text = std::env::var(var).map_err(|_| KeyLoadError::MissingEnv(var.to_owned()))?;
        let key = MasterKey::from_hex(&text);
        text.zeroize();
        key
    }

    /// The key's hex encoding, for writing a fresh key to its file. Handle with care.
    pub fn to_hex(&self) -> secrecy::SecretString {
        to_hex(self.expose_secret()).into()
    }

    /// The key id.
    pub fn id(&self) -> KekId {
        let d = blake3::derive_key(context::KEY_ID, self.expose_secret());
        let mut id = [0u8; 16];
        id.copy_from_slice(&d[..16]);
        KekId(id)
    }

    /// The secret bytes. Every use is greppable.
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id())
    }
}

/// The master keys a vault may use: the primary (new wraps use it) and older keys kept only
/// until a rotation has re-wrapped everything under the primary.
#[derive(Debug)]
pub struct KeyRing {
    primary: MasterKey,
    old: Vec<MasterKey>,
}

impl KeyRing {
    /// A ring with one key.
    pub fn new(primary: MasterKey) -> KeyRing {
        KeyRing {
            primary,
            old: Vec::new(),
        }
    }
    /// Adds a retiring key, accepted for unwrapping only.
    pub fn with_old(mut self, old: MasterKey) -> KeyRing {
        self.old.push(old);
        self
    }
    /// The key new wraps use.
    pub fn primary(&self) -> &MasterKey {
        &self.primary
    }
    /// Every key, primary first.
    pub fn all(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&self.primary).chain(&self.old)
    }
    /// The key with this id, primary or old.
    pub fn get(&self, id: &KekId) -> Option<&MasterKey> {
        std::iter::once(&self.primary)
            .chain(&self.old)
            .find(|k| k.id() == *id)
    }
}

/// Why an unwrap failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnwrapError {
    /// No key in the ring has the id the wrap names.
    #[error("no master key with id {0} is loaded")]
    UnknownKek(KekId),
    /// The wrap did not authenticate under the key it names, or is malformed.
    #[error("wrapped key failed to authenticate")]
    Corrupt,
}

/// A 32-byte secret wrapped under a master key: `key id || salt || ChaCha20-Poly1305(...)`.
///
/// The wrap key is `BLAKE3-derive(SEED_WRAP, kek || salt)` with a fresh random salt, so the
/// all-zero nonce is never reused under one wrap key (the same construction as the envelope's
/// symmetric stanza).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct WrappedSecret {
    pub(crate) kek: KekId,
    salt: [u8; 16],
    ct: [u8; 32],
    tag: [u8; 16],
}

impl fmt::Debug for WrappedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WrappedSecret(kek {})", self.kek)
    }
}

/// Every wrap key is fresh (salted), so the nonce is fixed.
const WRAP_NONCE: [u8; 12] = [0; 12];

fn wrap_cipher(kek: &MasterKey, salt: &[u8; 16]) -> Cipher {
    let mut material = [0u8; 48];
    material[..32].copy_from_slice(kek.expose_secret());
    material[32..].copy_from_slice(salt);
    let mut key = blake3::derive_key(context::SEED_WRAP, &material);
    material.zeroize();
    let cipher = Cipher::new(Suite::ChaCha20Poly1305, &key);
    key.zeroize();
    cipher
}

impl WrappedSecret {
    pub(crate) fn wrap(kek: &MasterKey, secret: &[u8; 32], aad: &[u8]) -> WrappedSecret {
        let salt: [u8; 16] = random_array();
        let mut buf = *secret;
        let tag = wrap_cipher(kek, &salt).seal_detached(&WRAP_NONCE, aad, &mut buf);
        WrappedSecret {
            kek: kek.id(),
            salt,
            ct: buf,
            tag,
        }
    }

    pub(crate) fn unwrap(
        &self,
        ring: &KeyRing,
        aad: &[u8],
    ) -> Result<SecretBox<[u8; 32]>, UnwrapError> {
        let kek = ring
            .get(&self.kek)
            .ok_or(UnwrapError::UnknownKek(self.kek))?;
        let mut out = SecretBox::new(Box::new(self.ct));
        wrap_cipher(kek, &self.salt)
            .open_detached(
                &WRAP_NONCE,
                aad,
                &mut secrecy::ExposeSecretMut::expose_secret_mut(&mut out)[..],
                &self.tag,
            )
            .map_err(|_| UnwrapError::Corrupt)?;
        Ok(out)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Enc::with_version(1);
        e.fixed(&self.kek.0)
            .fixed(&self.salt)
            .fixed(&self.ct)
            .fixed(&self.tag);
        e.finish()
    }

    pub(crate) fn decode(buf: &[u8]) -> codec::Result<WrappedSecret> {
        let mut d = Dec::new(buf, 1)?;
        let w = WrappedSecret {
            kek: KekId(d.array()?),
            salt: d.array()?,
            ct: d.array()?,
            tag: d.array()?,
        };
        d.end()?;
        Ok(w)
    }
}

/// Keys the vault derives from its seed. None of them leaves the process.
pub(crate) struct VaultKeys {
    pub(crate) token_hash: [u8; 32],
    pub(crate) link_hash: [u8; 32],
    pub(crate) ticket_mac: [u8; 32],
    pub(crate) audit_signing: ed25519_dalek::SigningKey,
    pub(crate) audit_tag: [u8; 32],
}

impl VaultKeys {
    pub(crate) fn derive(seed: &[u8; 32]) -> VaultKeys {
        let mut audit_seed = blake3::derive_key(context::AUDIT_SIGNING, seed);
        let audit_signing = ed25519_dalek::SigningKey::from_bytes(&audit_seed);
        audit_seed.zeroize();
        VaultKeys {
            token_hash: blake3::derive_key(context::TOKEN_HASH, seed),
            link_hash: blake3::derive_key(context::LINK_HASH, seed),
            ticket_mac: blake3::derive_key(context::TICKET_MAC, seed),
            audit_signing,
            audit_tag: blake3::derive_key(context::AUDIT_TAG, seed),
        }
    }
}

impl Drop for VaultKeys {
    fn drop(&mut self) {
        self.token_hash.zeroize();
        self.link_hash.zeroize();
        self.ticket_mac.zeroize();
        self.audit_tag.zeroize();
    }
}

impl fmt::Debug for VaultKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultKeys").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_and_wrong_key() {
        let k1 = MasterKey::generate();
        let k2 = MasterKey::generate();
        let w = WrappedSecret::wrap(&k1, &[7u8; 32], b"aad");
        let w = WrappedSecret::decode(&w.encode()).unwrap();
        let ring = KeyRing::new(k2).with_old(k1);
        assert_eq!(*w.unwrap(&ring, b"aad").unwrap().expose_secret(), [7u8; 32]);
        assert_eq!(w.unwrap(&ring, b"other").unwrap_err(), UnwrapError::Corrupt);
        let lone = KeyRing::new(MasterKey::generate());
        assert!(matches!(
            w.unwrap(&lone, b"aad"),
            Err(UnwrapError::UnknownKek(_))
        ));
    }

    #[test]
    fn key_id_matches_the_envelope_symmetric_key_id() {
        let k = MasterKey::generate();
        let sym = crate::envelope::SymmetricKey::from_bytes(*k.expose_secret());
        assert_eq!(k.id().0, sym.key_id().0);
    }

    #[test]
    fn debug_prints_only_the_id() {
        let k = MasterKey::from_bytes([1u8; 32]);
        let dbg = format!("{k:?}");
        assert!(dbg.starts_with("MasterKey(") && !dbg.contains("0101"));
        assert_eq!(
            MasterKey::from_hex(k.to_hex().expose_secret())
                .unwrap()
                .id(),
            k.id()
        );
    }

    #[test]
    fn key_file_inside_data_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kek");
        std::fs::write(&p, MasterKey::generate().to_hex().expose_secret()).unwrap();
        assert!(matches!(
            MasterKey::from_file(&p, dir.path()),
            Err(KeyLoadError::InsideDataDir)
        ));
        let other = tempfile::tempdir().unwrap();
        assert!(MasterKey::from_file(&p, other.path()).is_ok());
    }
}
