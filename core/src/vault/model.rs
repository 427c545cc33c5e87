//! The records the vault keeps, and their encodings.
//!
//! Every mutable record carries a `version` that increases on every write; the store's
//! guards compare it, which is how a read-decide-write (a download counting against a limit)
//! stays atomic on any backend.

use super::codec::{self, CodecError, Dec, Enc};
use super::kek::KekId;
use super::types::{FileId, Role, ShareId, Timestamp, TokenId, UserId};

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The user's id.
    pub id: UserId,
    /// Unique login name.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// A disabled user's tokens are gone and every share of theirs is refused.
    pub disabled: bool,
    /// When the account was created.
    pub created: Timestamp,
    /// Bumped on every write.
    pub version: u64,
}

/// An API token. Only the keyed hash of the token is stored; the token itself was shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Public id (the token string's first part).
    pub id: TokenId,
    /// Whose token it is.
    pub user: UserId,
    /// `BLAKE3-keyed(token hash key, token id || token secret)`.
    pub hash: [u8; 32],
    /// When it was issued.
    pub created: Timestamp,
    /// From this instant on the token is refused.
    pub expires: Timestamp,
    /// A free-form label chosen by the admin ("laptop", "ci").
    pub label: String,
}

/// Life-cycle state of a file record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Readable: the header (wrapped DEK) is present and the blob is published.
    Active,
    /// Crypto-shredded: the header is gone; the blob is being deleted. Only a tombstone is
    /// left until the blob deletion is confirmed (a restart finishes it).
    Shredded,
}

/// A stored file: the envelope header lives here, the payload in the blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// The file's id, also its blob's name.
    pub id: FileId,
    /// Who uploaded it.
    pub owner: UserId,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Payload (blob) size in bytes.
    pub blob_size: u64,
    /// The envelope header: the DEK wrapped under the KEK (a symmetric stanza with the KEK's
    /// key id) and the encrypted metadata (name, content type, size). Empty once shredded.
    pub header: Vec<u8>,
    /// Id of the master key the header is wrapped under (kept in step with the header).
    pub kek: KekId,
    /// Upload time.
    pub created: Timestamp,
    /// The file is deleted (crypto-shredded) at this instant.
    pub retain_until: Timestamp,
    /// Life-cycle state.
    pub state: FileState,
    /// Bumped on every write.
    pub version: u64,
}

/// Argon2id parameters and output protecting a share.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    /// Random salt.
    pub salt: [u8; 16],
    /// Memory cost in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
    /// Argon2id output.
    pub hash: [u8; 32],
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PasswordHash(argon2id m={} t={} p={}, ..)",
            self.m_cost, self.t_cost, self.p_cost
        )
    }
}

/// A share of one file.
///
/// A *link share* is opened with its id and link secret (and password, if one is set) and
/// downloads plaintext. A share with `recipients` is *recipient-bound*: the download is the
/// file re-encrypted to those X25519 keys, so a forwarded copy opens for nobody else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRecord {
    /// Public share id.
    pub id: ShareId,
    /// The shared file.
    pub file: FileId,
    /// The shared file's owner.
    pub owner: UserId,
    /// Who created the share: the owner, or an admin acting for them. Disabling either
    /// revokes it. (Records written before this field existed name the owner.)
    pub creator: UserId,
    /// Creation time.
    pub created: Timestamp,
    /// From this instant on the share is refused.
    pub expires: Timestamp,
    /// `BLAKE3-keyed(link hash key, share id || link secret)`; the secret itself is not kept.
    pub secret_hash: [u8; 32],
    /// Optional password.
    pub password: Option<PasswordHash>,
    /// Download limit (`None`: unlimited until expiry).
    pub max_downloads: Option<u32>,
    /// Downloads counted so far.
    pub downloads: u32,
    /// Wrong passwords so far.
    pub failed_attempts: u32,
    /// The share locks when `failed_attempts` reaches this.
    pub max_attempts: u32,
    /// X25519 public keys the download is bound to (empty: plaintext download).
    pub recipients: Vec<[u8; 32]>,
    /// When the share was revoked, if it was.
    pub revoked: Option<Timestamp>,
    /// Bumped on every write.
    pub version: u64,
}

impl ShareRecord {
    /// Whether the share is locked by wrong passwords.
    pub fn locked(&self) -> bool {
        self.failed_attempts >= self.max_attempts
    }
}

/// What an expiry entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExpiryKind {
    /// A share's expiry.
    Share,
    /// A file's retention end.
    File,
}

/// One entry of the expiry index, ordered by `(at, kind, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExpiryEntry {
    /// The instant the object expires.
    pub at: Timestamp,
    /// Share or file.
    pub kind: ExpiryKind,
    /// The share's or file's id bytes.
    pub id: [u8; 16],
}

impl ExpiryEntry {
    /// The index key: `at (u64 BE) || kind (u8) || id (16)`; byte order is time order.
    pub fn key(&self) -> [u8; 25] {
        let mut k = [0u8; 25];
        k[..8].copy_from_slice(&self.at.0.to_be_bytes());
        k[8] = match self.kind {
            ExpiryKind::Share => 1,
            ExpiryKind::File => 2,
        };
        k[9..].copy_from_slice(&self.id);
        k
    }
    /// Parses [`ExpiryEntry::key`].
    pub fn from_key(k: &[u8]) -> Option<ExpiryEntry> {
        if k.len() != 25 {
            return None;
        }
        Some(ExpiryEntry {
            at: Timestamp(u64::from_be_bytes(k[..8].try_into().ok()?)),
            kind: match k[8] {
                1 => ExpiryKind::Share,
                2 => ExpiryKind::File,
                _ => return None,
            },
            id: k[9..].try_into().ok()?,
        })
    }
}

impl ShareRecord {
    /// The share's entry in the expiry index.
    pub fn expiry_entry(&self) -> ExpiryEntry {
        ExpiryEntry {
            at: self.expires,
            kind: ExpiryKind::Share,
            id: self.id.0,
        }
    }
}

impl UserRecord {
    /// A new, enabled user with a fresh random id.
    pub fn new(name: &str, role: Role, now: Timestamp) -> UserRecord {
        UserRecord {
            id: UserId::random(),
            name: name.to_owned(),
            role,
            disabled: false,
            created: now,
            version: 1,
        }
    }
}

impl FileRecord {
    /// Whether the file can be read and shared at `now`: not shredded, and its retention not
    /// over (the sweeper shreds it from `retain_until` on; until it has run, the file is
    /// already gone to readers).
    pub fn live_at(&self, now: Timestamp) -> bool {
        self.state == FileState::Active && now < self.retain_until
    }

    /// The file's entry in the expiry index.
    pub fn expiry_entry(&self) -> ExpiryEntry {
        ExpiryEntry {
            at: self.retain_until,
            kind: ExpiryKind::File,
            id: self.id.0,
        }
    }
}

const V1: u8 = 1;
/// The share record's layout since it names its creator.
const SHARE_V2: u8 = 2;

impl UserRecord {
    /// Encodes the record.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Enc::with_version(V1);
        e.fixed(&self.id.0)
            .str(&self.name)
            .u8(self.role.code())
            .bool(self.disabled)
            .u64(self.created.0)
            .u64(self.version);
        e.finish()
    }
    /// Decodes a record written by [`UserRecord::encode`].
    ///
    /// # Errors
    /// The bytes are not such a record.
    pub(crate) fn decode(buf: &[u8]) -> codec::Result<Self> {
        let mut d = Dec::new(buf, V1)?;
        let r = UserRecord {
            id: UserId(d.array()?),
            name: d.string()?,
            role: Role::from_code(d.u8()?).ok_or(CodecError)?,
            disabled: d.bool()?,
            created: Timestamp(d.u64()?),
            version: d.u64()?,
        };
        d.end()?;
        Ok(r)
    }
}

impl TokenRecord {
    /// Encodes the record.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Enc::with_version(V1);
        e.fixed(&self.id.0)
            .fixed(&self.user.0)
            .fixed(&self.hash)
            .u64(self.created.0)
            .u64(self.expires.0)
            .str(&self.label);
        e.finish()
    }
    /// Decodes a record written by [`TokenRecord::encode`].
    ///
    /// # Errors
    /// The bytes are not such a record.
    pub(crate) fn decode(buf: &[u8]) -> codec::Result<Self> {
        let mut d = Dec::new(buf, V1)?;
        let r = TokenRecord {
            id: TokenId(d.array()?),
            user: UserId(d.array()?),
            hash: d.array()?,
            created: Timestamp(d.u64()?),
            expires: Timestamp(d.u64()?),
            label: d.string()?,
        };
        d.end()?;
        Ok(r)
    }
}

impl FileRecord {
    /// Encodes the record.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Enc::with_version(V1);
        e.fixed(&self.id.0)
            .fixed(&self.owner.0)
            .u64(self.size)
            .u64(self.blob_size)
            .bytes(&self.header)
            .fixed(&self.kek.0)
            .u64(self.created.0)
            .u64(self.retain_until.0)
            .u8(match self.state {
                FileState::Active => 1,
                FileState::Shredded => 2,
            })
            .u64(self.version);
        e.finish()
    }
    /// Decodes a record written by [`FileRecord::encode`].
    ///
    /// # Errors
    /// The bytes are not such a record.
    pub(crate) fn decode(buf: &[u8]) -> codec::Result<Self> {
        let mut d = Dec::new(buf, V1)?;
        let r = FileRecord {
            id: FileId(d.array()?),
            owner: UserId(d.array()?),
            size: d.u64()?,
            blob_size: d.u64()?,
            header: d.bytes()?.to_vec(),
            kek: KekId(d.array()?),
            created: Timestamp(d.u64()?),
            retain_until: Timestamp(d.u64()?),
            state: match d.u8()? {
                1 => FileState::Active,
                2 => FileState::Shredded,
                _ => return Err(CodecError),
            },
            version: d.u64()?,
        };
        d.end()?;
        Ok(r)
    }
}

impl ShareRecord {
    /// Encodes the record.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Enc::with_version(SHARE_V2);
        e.fixed(&self.id.0)
            .fixed(&self.file.0)
            .fixed(&self.owner.0)
            .fixed(&self.creator.0)
            .u64(self.created.0)
            .u64(self.expires.0)
            .fixed(&self.secret_hash);
        match &self.password {
            None => e.u8(0),
            Some(p) => e
                .u8(1)
                .fixed(&p.salt)
                .u32(p.m_cost)
                .u32(p.t_cost)
                .u32(p.p_cost)
                .fixed(&p.hash),
        };
        e.opt_u64(self.max_downloads.map(u64::from))
            .u32(self.downloads)
            .u32(self.failed_attempts)
            .u32(self.max_attempts)
            .u32(u32::try_from(self.recipients.len()).expect("few recipients"));
        for r in &self.recipients {
            e.fixed(r);
        }
        e.opt_u64(self.revoked.map(|t| t.0)).u64(self.version);
        e.finish()
    }
    /// Decodes a record written by [`ShareRecord::encode`], or by the version before it
    /// (no creator: the owner made it).
    ///
    /// # Errors
    /// The bytes are not such a record.
    pub(crate) fn decode(buf: &[u8]) -> codec::Result<Self> {
        let (mut d, version) = Dec::any_of(buf, &[V1, SHARE_V2])?;
        let id = ShareId(d.array()?);
        let file = FileId(d.array()?);
        let owner = UserId(d.array()?);
        let creator = if version == V1 {
            owner
        } else {
            UserId(d.array()?)
        };
        let created = Timestamp(d.u64()?);
        let expires = Timestamp(d.u64()?);
        let secret_hash = d.array()?;
        let password = match d.u8()? {
            0 => None,
            1 => Some(PasswordHash {
                salt: d.array()?,
                m_cost: d.u32()?,
                t_cost: d.u32()?,
                p_cost: d.u32()?,
                hash: d.array()?,
            }),
            _ => return Err(CodecError),
        };
        let max_downloads = d
            .opt_u64()?
            .map(u32::try_from)
            .transpose()
            .map_err(|_| CodecError)?;
        let downloads = d.u32()?;
        let failed_attempts = d.u32()?;
        let max_attempts = d.u32()?;
        let n = d.u32()? as usize;
        if n > 1024 {
            return Err(CodecError);
        }
        let mut recipients = Vec::with_capacity(n);
        for _ in 0..n {
            recipients.push(d.array()?);
        }
        let revoked = d.opt_u64()?.map(Timestamp);
        let version = d.u64()?;
        d.end()?;
        Ok(ShareRecord {
            id,
            file,
            owner,
            creator,
            created,
            expires,
            secret_hash,
            password,
            max_downloads,
            downloads,
            failed_attempts,
            max_attempts,
            recipients,
            revoked,
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(creator: UserId) -> ShareRecord {
        ShareRecord {
            id: ShareId([1; 16]),
            file: FileId([2; 16]),
            owner: UserId([3; 16]),
            creator,
            created: Timestamp(10),
            expires: Timestamp(20),
            secret_hash: [4; 32],
            password: None,
            max_downloads: Some(3),
            downloads: 1,
            failed_attempts: 0,
            max_attempts: 5,
            recipients: vec![[5; 32]],
            revoked: Some(Timestamp(15)),
            version: 7,
        }
    }

    #[test]
    fn a_share_record_round_trips_with_its_creator() {
        let s = share(UserId([9; 16]));
        let bytes = s.encode();
        assert_eq!(bytes[0], SHARE_V2);
        assert_eq!(ShareRecord::decode(&bytes).unwrap(), s);
    }

    /// A record stored before shares named their creator (version 1: no creator after the
    /// owner) still decodes, with the owner as its creator.
    #[test]
    fn a_version_1_share_record_names_its_owner_as_creator() {
        let s = share(UserId([3; 16]));
        let mut v1 = s.encode();
        v1[0] = V1;
        // Version byte, id, file, owner: the creator followed.
        v1.drain(1 + 3 * 16..1 + 4 * 16);
        assert_eq!(ShareRecord::decode(&v1).unwrap(), s);
        // Any other version is refused.
        v1[0] = 3;
        assert!(ShareRecord::decode(&v1).is_err());
    }
}
