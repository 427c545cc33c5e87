//! Stanzas: wrapping the DEK for recipients, passphrases and symmetric keys, and unwrapping
//! it with a [`Keyring`].

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

use super::cipher::{Cipher, NONCE_BYTES};
use super::key::{KEY_BYTES, KEY_ID_BYTES};
use super::rng::{OsRandom, RandomSource};
use super::write::{HeaderParts, header_mac};
use super::{
    DataKey, Header, MAX_STANZAS, OpenError, SealError, Stanza, StanzaKind, Suite, SymmetricKey,
    kdf,
};
use crate::keys::{self, Identity, Recipient};

/// Length of a wrapped DEK: 32 bytes of key and a 16-byte tag.
const WRAPPED_BYTES: usize = KEY_BYTES + 16;
const SALT_BYTES: usize = 16;
pub(crate) const X25519_BODY_BYTES: usize = 32 + WRAPPED_BYTES;
pub(crate) const PASSPHRASE_BODY_BYTES: usize = SALT_BYTES + 12 + WRAPPED_BYTES;
pub(crate) const SYMMETRIC_BODY_BYTES: usize = KEY_ID_BYTES + SALT_BYTES + WRAPPED_BYTES;
/// Every wrap key is used exactly once (fresh ephemeral key or fresh salt), so the wrap
/// nonce is fixed.
const WRAP_NONCE: [u8; NONCE_BYTES] = [0; NONCE_BYTES];

/// Argon2id cost parameters of a passphrase stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Number of passes.
    pub t_cost: u32,
    /// Degree of parallelism.
    pub p_cost: u32,
}

impl Argon2Params {
    /// Largest memory cost an opener accepts: 256 MiB.
    pub const MAX_M_COST: u32 = 256 * 1024;
    /// Largest number of passes an opener accepts.
    pub const MAX_T_COST: u32 = 16;
    /// Largest parallelism an opener accepts.
    pub const MAX_P_COST: u32 = 8;

    /// Whether every opener will accept these parameters (docs/FORMAT.md, kind `02`).
    pub fn within_bounds(&self) -> bool {
        (1..=Self::MAX_P_COST).contains(&self.p_cost)
            && (1..=Self::MAX_T_COST).contains(&self.t_cost)
            && (8 * self.p_cost..=Self::MAX_M_COST).contains(&self.m_cost)
    }
}

impl Default for Argon2Params {
    /// 64 MiB, 3 passes, 1 lane (RFC 9106's second recommendation, one lane so it does
    /// not depend on the opener's core count).
    fn default() -> Self {
        Argon2Params {
            m_cost: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

enum Wrap {
    X25519(Recipient),
    Passphrase(SecretString, Argon2Params),
    Symmetric(SymmetricKey),
}

/// Who may open a new envelope: X25519 recipients, at most one passphrase, symmetric keys.
/// Each becomes one stanza.
#[derive(Default)]
pub struct Recipients {
    wraps: Vec<Wrap>,
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for w in &self.wraps {
            match w {
                Wrap::X25519(r) => list.entry(r),
                Wrap::Passphrase(_, p) => list.entry(&format_args!("Passphrase({p:?})")),
                Wrap::Symmetric(k) => list.entry(k),
            };
        }
        list.finish()
    }
}

impl Recipients {
    /// No recipients yet.
    pub fn new() -> Self {
        Recipients::default()
    }

    /// Adds an X25519 recipient (an `age1…` key).
    pub fn x25519(mut self, recipient: Recipient) -> Self {
        self.wraps.push(Wrap::X25519(recipient));
        self
    }

    /// Adds a passphrase with the default Argon2id parameters.
    pub fn passphrase(self, passphrase: SecretString) -> Self {
        self.passphrase_with_params(passphrase, Argon2Params::default())
    }

    /// Adds a passphrase with explicit Argon2id parameters.
    pub fn passphrase_with_params(
        mut self,
        passphrase: SecretString,
        params: Argon2Params,
    ) -> Self {
        self.wraps.push(Wrap::Passphrase(passphrase, params));
        self
    }

    /// Adds a symmetric key (a master key or a link secret).
    pub fn symmetric(mut self, key: &SymmetricKey) -> Self {
        self.wraps.push(Wrap::Symmetric(key.clone()));
        self
    }

    /// Number of stanzas these recipients make.
    pub fn len(&self) -> usize {
        self.wraps.len()
    }

    /// Whether nobody could open the envelope.
    pub fn is_empty(&self) -> bool {
        self.wraps.is_empty()
    }

    /// Checks the recipient list before any work is done.
    pub(crate) fn check(&self, already: usize) -> Result<(), SealError> {
        let total = already + self.wraps.len();
        if total == 0 {
            return Err(SealError::NoRecipients);
        }
        if total > MAX_STANZAS {
            return Err(SealError::TooManyStanzas(total));
        }
        let mut passphrases = 0;
        for w in &self.wraps {
            if let Wrap::Passphrase(_, p) = w {
                passphrases += 1;
                if !p.within_bounds() {
                    return Err(SealError::Argon2ParamsOutOfBounds {
                        m_cost: p.m_cost,
                        t_cost: p.t_cost,
                        p_cost: p.p_cost,
                    });
                }
            }
        }
        if passphrases > 1 {
            return Err(SealError::TooManyPassphrases);
        }
        Ok(())
    }

    /// Wraps `dek` once per recipient.
    pub(crate) fn wrap(
        &self,
        dek: &DataKey,
        rng: &mut dyn RandomSource,
    ) -> Result<Vec<Stanza>, SealError> {
        self.wraps.iter().map(|w| wrap_one(w, dek, rng)).collect()
    }
}

fn wrap_one(wrap: &Wrap, dek: &DataKey, rng: &mut dyn RandomSource) -> Result<Stanza, SealError> {
    match wrap {
        Wrap::X25519(recipient) => {
            let mut esk_bytes = [0; 32];
            rng.fill(&mut esk_bytes);
            let esk = StaticSecret::from(esk_bytes);
            esk_bytes.zeroize();
            let share = PublicKey::from(&esk);
            let shared = keys::x25519_agree(&esk, &recipient.public_key())
                .ok_or_else(|| SealError::InvalidRecipient(recipient.to_string()))?;
            let mut key = kdf::derive(
                kdf::X25519_WRAP_KEY,
                &[share.as_bytes(), recipient.as_bytes(), shared.as_bytes()],
            );
            let mut body = share.as_bytes().to_vec();
            body.extend_from_slice(&seal_dek(&key, b"", dek));
            key.zeroize();
            Ok(Stanza {
                kind: StanzaKind::X25519_BYTE,
                body,
            })
        }
        Wrap::Passphrase(passphrase, params) => {
            let mut salt = [0; SALT_BYTES];
            rng.fill(&mut salt);
            let mut key = argon2_key(passphrase, &salt, params);
            let mut body = salt.to_vec();
            for v in [params.m_cost, params.t_cost, params.p_cost] {
                body.extend_from_slice(&v.to_be_bytes());
            }
            body.extend_from_slice(&seal_dek(&key, b"", dek));
            key.zeroize();
            Ok(Stanza {
                kind: StanzaKind::PASSPHRASE_BYTE,
                body,
            })
        }
        Wrap::Symmetric(sym) => {
            let mut salt = [0; SALT_BYTES];
            rng.fill(&mut salt);
            let id = sym.key_id();
            let mut key = kdf::derive(kdf::SYMMETRIC_WRAP_KEY, &[sym.expose_secret(), &salt]);
            let mut body = id.0.to_vec();
            body.extend_from_slice(&salt);
            body.extend_from_slice(&seal_dek(&key, &id.0, dek));
            key.zeroize();
            Ok(Stanza {
                kind: StanzaKind::SYMMETRIC_BYTE,
                body,
            })
        }
    }
}

fn seal_dek(key: &[u8; 32], aad: &[u8], dek: &DataKey) -> Vec<u8> {
    let mut buf = Vec::with_capacity(WRAPPED_BYTES);
    buf.extend_from_slice(dek.expose_secret());
    Cipher::new(Suite::ChaCha20Poly1305, key).seal(&WRAP_NONCE, aad, &mut buf);
    buf
}

fn open_dek(key: &[u8; 32], aad: &[u8], wrapped: &[u8]) -> Option<DataKey> {
    let mut buf = [0u8; WRAPPED_BYTES];
    buf.copy_from_slice(wrapped);
    let ok = Cipher::new(Suite::ChaCha20Poly1305, key)
        .open(&WRAP_NONCE, aad, &mut buf)
        .is_ok();
    let dek = ok.then(|| {
        DataKey::from_bytes(
            buf[..KEY_BYTES]
                .try_into()
                .expect("wrapped DEKs are 32 bytes"),
        )
    });
    buf.zeroize();
    dek
}

fn argon2_key(passphrase: &SecretString, salt: &[u8], p: &Argon2Params) -> [u8; 32] {
    let params = argon2::Params::new(p.m_cost, p.t_cost, p.p_cost, Some(32))
        .expect("parameters were checked against the bounds");
    let mut key = [0; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase.expose_secret().as_bytes(), salt, &mut key)
        .expect("salt and output lengths are valid for Argon2");
    key
}

pub(crate) fn passphrase_params(body: &[u8]) -> Argon2Params {
    let word = |i: usize| {
        u32::from_be_bytes(
            body[SALT_BYTES + 4 * i..SALT_BYTES + 4 * i + 4]
                .try_into()
                .expect("passphrase stanza bodies are 76 bytes"),
        )
    };
    Argon2Params {
        m_cost: word(0),
        t_cost: word(1),
        p_cost: word(2),
    }
}

/// What the opener holds: X25519 identities, a passphrase, symmetric keys. An envelope opens
/// if any of them unwraps any stanza.
#[derive(Default)]
pub struct Keyring {
    identities: Vec<Identity>,
    passphrase: Option<SecretString>,
    symmetric: Vec<SymmetricKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("identities", &self.identities)
            .field("passphrase", &self.passphrase.as_ref().map(|_| ".."))
            .field("symmetric", &self.symmetric)
            .finish()
    }
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Keyring::default()
    }

    /// Adds an X25519 identity.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identities.push(identity);
        self
    }

    /// Adds several X25519 identities.
    pub fn identities(mut self, identities: impl IntoIterator<Item = Identity>) -> Self {
        self.identities.extend(identities);
        self
    }

    /// Sets the passphrase to try on a passphrase stanza.
    pub fn passphrase(mut self, passphrase: SecretString) -> Self {
        self.passphrase = Some(passphrase);
        self
    }

    /// Adds a symmetric key.
    pub fn symmetric(mut self, key: SymmetricKey) -> Self {
        self.symmetric.push(key);
        self
    }

    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<DataKey> {
        let body = &stanza.body;
        match stanza.kind() {
            StanzaKind::X25519 => {
                let share_bytes: [u8; 32] = body[..32].try_into().expect("80-byte body");
                let share = PublicKey::from(share_bytes);
                self.identities.iter().find_map(|identity| {
                    let shared = keys::x25519_agree(identity.secret(), &share)?;
                    let recipient = identity.to_public();
                    let mut key = kdf::derive(
                        kdf::X25519_WRAP_KEY,
                        &[&share_bytes, recipient.as_bytes(), shared.as_bytes()],
                    );
                    let dek = open_dek(&key, b"", &body[32..]);
                    key.zeroize();
                    dek
                })
            }
            StanzaKind::Passphrase => {
                let passphrase = self.passphrase.as_ref()?;
                let params = passphrase_params(body);
                if !params.within_bounds() {
                    return None; // the parser refuses these; never run unbounded Argon2
                }
                let mut key = argon2_key(passphrase, &body[..SALT_BYTES], &params);
                let dek = open_dek(&key, b"", &body[SALT_BYTES + 12..]);
                key.zeroize();
                dek
            }
            StanzaKind::Symmetric => {
                let id = &body[..KEY_ID_BYTES];
                let salt = &body[KEY_ID_BYTES..KEY_ID_BYTES + SALT_BYTES];
                self.symmetric.iter().find_map(|sym| {
                    if !bool::from(sym.key_id().0.ct_eq(id)) {
                        return None;
                    }
                    let mut key =
                        kdf::derive(kdf::SYMMETRIC_WRAP_KEY, &[sym.expose_secret(), salt]);
                    let dek = open_dek(&key, id, &body[KEY_ID_BYTES + SALT_BYTES..]);
                    key.zeroize();
                    dek
                })
            }
            StanzaKind::Unknown(_) => None,
        }
    }
}

impl Header {
    /// Unwraps the DEK with the first stanza the keyring opens, then verifies the header MAC
    /// (in constant time) with it.
    ///
    /// # Errors
    ///
    /// [`OpenError::NoMatchingStanza`] if nothing in the keyring opens any stanza;
    /// [`OpenError::HeaderAuthFailed`] if a stanza opens but the MAC does not verify.
    pub fn unwrap_key(&self, keyring: &Keyring) -> Result<DataKey, OpenError> {
        // Passphrase stanzas last: Argon2 is by far the most expensive check.
        let ordered = self
            .stanzas
            .iter()
            .filter(|s| s.kind() != StanzaKind::Passphrase)
            .chain(
                self.stanzas
                    .iter()
                    .filter(|s| s.kind() == StanzaKind::Passphrase),
            );
        for stanza in ordered {
            if let Some(dek) = keyring.unwrap_stanza(stanza) {
                self.verify_mac(&dek)?;
                return Ok(dek);
            }
        }
        Err(OpenError::NoMatchingStanza)
    }

    /// Verifies the header MAC with a DEK obtained elsewhere (for example a vault that keeps
    /// DEKs).
    ///
    /// # Errors
    ///
    /// [`OpenError::HeaderAuthFailed`] if the MAC does not verify under this DEK.
    pub fn verify_mac(&self, dek: &DataKey) -> Result<(), OpenError> {
        let (covered, mac) = self.bytes.split_at(self.bytes.len() - super::MAC_BYTES);
        let mac: [u8; 32] = mac.try_into().expect("split leaves exactly the MAC");
        // blake3::Hash's == is constant time.
        if header_mac(dek, covered) == blake3::Hash::from_bytes(mac) {
            Ok(())
        } else {
            Err(OpenError::HeaderAuthFailed)
        }
    }

    /// A new header for the same payload: keeps the stanzas `keep` accepts, adds one per
    /// entry of `add`, and signs the result with the same DEK. The payload bytes are
    /// unchanged, so they stream on as they are.
    ///
    /// # Errors
    ///
    /// [`RewrapError::Open`] with [`OpenError::HeaderAuthFailed`] if `dek` is not this
    /// header's DEK; [`RewrapError::Seal`] if the new stanza list is empty, too long, has
    /// more than one passphrase or an invalid recipient.
    pub fn rewrap(
        &self,
        dek: &DataKey,
        keep: impl Fn(&Stanza) -> bool,
        add: &Recipients,
    ) -> Result<Header, RewrapError> {
        self.rewrap_with(dek, keep, add, &mut OsRandom)
    }

    /// [`Header::rewrap`] drawing the new stanzas' randomness from `rng`.
    pub(crate) fn rewrap_with(
        &self,
        dek: &DataKey,
        keep: impl Fn(&Stanza) -> bool,
        add: &Recipients,
        rng: &mut dyn RandomSource,
    ) -> Result<Header, RewrapError> {
        self.verify_mac(dek)?;
        let mut stanzas: Vec<Stanza> = self.stanzas.iter().filter(|s| keep(s)).cloned().collect();
        add.check(stanzas.len())?;
        stanzas.extend(add.wrap(dek, rng)?);
        let passphrases = stanzas
            .iter()
            .filter(|s| s.kind() == StanzaKind::Passphrase)
            .count();
        if passphrases > 1 {
            return Err(SealError::TooManyPassphrases.into());
        }
        Ok(HeaderParts {
            suite: self.suite,
            chunk_exponent: self.chunk_exponent,
            payload_nonce: self.payload_nonce,
            stanzas,
            metadata: self.metadata.clone(),
        }
        .seal(dek))
    }
}

/// Why [`Header::rewrap`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RewrapError {
    /// The DEK does not belong to this header.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The new recipient list is not acceptable.
    #[error(transparent)]
    Seal(#[from] SealError),
}
