//! The vault: the server-side store of files, shares, users and the audit log.
//!
//! Nothing here knows about HTTP. The server authenticates callers with
//! [`Vault::authenticate`], then calls one method per operation; partners' link requests go
//! through [`Vault::access`], whose decision is the pure function [`policy::decide`].
//!
//! * Storage sits behind two traits, [`MetaStore`] and [`BlobStore`], with sled and the local
//!   filesystem as the embedded defaults ([`Vault::open`] puts both under one data directory).
//! * Every change is one atomic store commit that also appends its audit record, so a change
//!   without its record (or the reverse) cannot exist, and a failed audit append fails the
//!   change (fail closed).
//! * The write order that makes every crash state safe, the data model and the audit format
//!   are described in `docs/VAULT.md`.

pub mod audit;
mod codec;
mod fs_blob;
mod journal;
pub mod kek;
pub mod model;
mod opened;
pub mod policy;
mod sealing;
mod sled_store;
pub mod store;
mod sweeper;
mod types;
pub mod users;

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

pub use crate::envelope::Metadata;
pub use audit::{Actor, AuditError, AuditRecord, AuditReport, Checkpoint, Outcome};
pub use fs_blob::FsBlobStore;
pub use kek::{KekId, KeyLoadError, KeyRing, MasterKey};
pub use model::{ExpiryEntry, ExpiryKind, FileRecord, FileState, ShareRecord, UserRecord};
pub use policy::{AccessKind, DownloadTicket, LinkSecret, Outward, PasswordCost, Refusal};
pub use sealing::{PlainRead, SealingError};
pub use sled_store::SledMetaStore;
pub use store::{BlobStore, Durability, MetaStore, StoreError};
pub use sweeper::{RepairReport, RotationReport, SweepReport};
pub use types::{FileId, ParseIdError, Role, ShareId, Timestamp, TokenId, UserId};
pub use users::{ApiToken, Permission, Principal};

use audit::{AuditLog, Entry, RecordTags};
use kek::{VaultKeys, WrappedSecret};
use policy::{Credentials, Decision, PasswordCheck, PolicyEnv};
use store::{BlobRead, Guard, Op};
use users::{TokenRefusal, authorize};

const SETTING_SEED: &str = "seed";
const SETTING_FREEZE: &str = "freeze";
const SETTING_RETENTION: &str = "retention";
/// The first admin's id, set once by [`Vault::bootstrap_admin`]: its guard makes two
/// concurrent bootstraps of an empty vault create one admin, not two.
const SETTING_BOOTSTRAP: &str = "bootstrap";
/// The associated data of the wrapped vault seed. It also fixes, for the vault's life, whether
/// its stored audit records carry tags: a vault created with tags wraps its seed under
/// `SEED_AAD`, one created before them under `SEED_AAD_UNTAGGED`. Without the master key
/// nobody can turn one into the other, so the tags cannot be switched off by editing the store.
const SEED_AAD: &[u8] = b"kinko vault seed v2 (tagged audit records)";
const SEED_AAD_UNTAGGED: &[u8] = b"kinko vault seed v1";

const DAY: u64 = 24 * 60 * 60;

/// How access decisions reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessDurability {
    /// A counted download (and a wrong-password attempt) is flushed to disk before the grant
    /// is returned, so no crash can give a download back. Views, range resumes and refusals
    /// are buffered.
    SyncCounted,
    /// Every decision is buffered and reaches the disk with the next flush (at most
    /// `flush_every_ms` later). After a crash, up to that window of counted downloads may be
    /// forgotten, so a limit can be exceeded by the downloads of that window.
    Buffered,
}

/// Settings of a vault.
#[derive(Debug)]
pub struct VaultConfig {
    /// The master keys.
    pub keys: KeyRing,
    /// Durability of access decisions.
    pub access_durability: AccessDurability,
    /// sled's background flush interval (bounds the loss window of buffered commits).
    pub flush_every_ms: Option<u64>,
    /// Argon2id cost of new share passwords.
    pub password_cost: PasswordCost,
    /// Wrong passwords before a share locks (at least 1: 0 is taken as 1, since a share
    /// locked from its creation would refuse even its right password).
    pub max_password_attempts: u32,
    /// How long a download ticket (the ranges of one counted download) stays valid, seconds.
    pub ticket_ttl: u64,
    /// A signed checkpoint is stored every this many audit records, and verification requires
    /// one at each multiple (a missing one was deleted). Fixed for the life of a vault:
    /// opening an existing vault with another value makes its verification fail.
    pub checkpoint_every: u64,
    /// The longest share lifetime, seconds.
    pub max_share_lifetime: u64,
    /// Open even when no active file has its blob ([`Damage::BlobsMissing`]). Off by default,
    /// because that is what an unmounted or wrong blob directory looks like, and a server
    /// running on it would publish new uploads where the real volume later hides them. Set it
    /// only after checking the blob directory (for example when the one stored file lost its
    /// blob): the files are then reported as missing, and can be deleted.
    pub allow_missing_blobs: bool,
}

impl VaultConfig {
    /// Defaults around the given keys.
    pub fn new(keys: KeyRing) -> VaultConfig {
        VaultConfig {
            keys,
            access_durability: AccessDurability::SyncCounted,
            flush_every_ms: Some(100),
            password_cost: PasswordCost::default(),
            max_password_attempts: 5,
            ticket_ttl: 60 * 60,
            checkpoint_every: 1000,
            max_share_lifetime: 90 * DAY,
            allow_missing_blobs: false,
        }
    }
}

/// Errors of the vault's operations (everything except link access, see [`AccessError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The token is unknown, wrong, expired or its user disabled (one opaque answer).
    #[error("authentication failed")]
    Unauthenticated,
    /// The caller's role does not allow this.
    #[error("not allowed")]
    Forbidden,
    /// No such object (or not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is malformed or outside policy (message says which).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The name is taken.
    #[error("{0} already exists")]
    Exists(&'static str),
    /// The metadata or blob store failed. The operation did not happen, except with
    /// [`StoreError::NotDurable`]: it happened but may not survive a crash (see
    /// [`VaultError::was_applied`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be unwrapped (for example the KEK it names is not loaded).
    #[error(transparent)]
    Key(#[from] kek::UnwrapError),
    /// Sealing or opening a file failed.
    #[error(transparent)]
    Sealing(#[from] SealingError),
    /// [`Vault::open`] found the stores in a state no crash produces, and refused to open
    /// rather than "repair" it by destroying data. Nothing was changed.
    #[error("refusing to open the vault: {0}")]
    Damaged(#[from] Damage),
}

/// Outside damage found when opening a vault: a volume not mounted, a restore that put one
/// store out of step with the other, a disk fault. Every crash state is repaired at startup
/// (docs/VAULT.md); these are not crash states, and the usual repair (new seed, orphan blob
/// removal) would make the loss permanent, so the vault refuses to open instead. Each message
/// says what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Damage {
    /// The metadata store holds data but no vault seed. A new seed would invalidate every
    /// API token, share link and download ticket, and no old audit checkpoint would verify.
    #[error(
        "the metadata store holds users, files or audit records but no vault seed: it is \
         damaged or partly restored; restore the metadata store (meta/) from a backup \
         (a new seed would invalidate every API token, share link and audit checkpoint)"
    )]
    SeedMissing,
    /// The metadata store is new (no seed, no data) but the blob store holds blobs, which
    /// repair would delete as orphans.
    #[error(
        "the metadata store is empty but the blob store holds {blobs} blobs: check that the \
         metadata store (meta/) is the right directory, mounted and restored; to start a new \
         vault, move the old blobs away"
    )]
    MetadataMissing {
        /// Blobs found.
        blobs: u64,
    },
    /// No active file has its blob. Repair would delete whatever blobs there are as orphans.
    #[error(
        "none of the {active} active files has its blob in the blob store (which holds \
         {blobs} other blobs): check that the blob directory (blobs/) is mounted, is this \
         vault's, and is restored completely"
    )]
    BlobsMissing {
        /// Active files, all without their blob.
        active: u64,
        /// Blobs found (none of them of an active file).
        blobs: u64,
    },
}

impl VaultError {
    /// Whether the failed operation took effect anyway: its commit was applied, only the
    /// flush to stable storage failed. Retrying it would do it twice; telling the caller
    /// "nothing changed" would be wrong.
    pub fn was_applied(&self) -> bool {
        matches!(self, VaultError::Store(e) if e.was_applied())
    }
}

/// What a link requester is told. Every refusal that is not about the password is
/// [`AccessError::Denied`]: unknown, expired, revoked, exhausted, locked, frozen, disabled
/// owner and wrong secret look identical (the audit log has the reason).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// Refused.
    #[error("this link is not valid")]
    Denied,
    /// The link is right; the share needs its password.
    #[error("a password is required")]
    PasswordRequired,
    /// The link is right; the password is wrong.
    #[error("wrong password")]
    WrongPassword,
    /// The link (and password) are right, but the share is bound to other keys than the
    /// download named; nothing was counted.
    #[error("the share is not bound to the named keys")]
    NotRecipient,
    /// The vault failed (including a failed audit append); nothing was granted.
    #[error("internal error")]
    Internal(#[source] VaultError),
}

impl From<Refusal> for AccessError {
    fn from(r: Refusal) -> Self {
        match r.outward() {
            Outward::Denied => AccessError::Denied,
            Outward::PasswordRequired => AccessError::PasswordRequired,
            Outward::WrongPassword => AccessError::WrongPassword,
            Outward::NotRecipient => AccessError::NotRecipient,
        }
    }
}

/// A decision committed to the store, and whether it must reach stable storage before its
/// outcome is acted on (see [`Vault::decide_access`]).
#[derive(Debug)]
#[must_use]
pub struct Decided<T> {
    /// What was decided.
    pub outcome: T,
    /// A [`Vault::flush`] that starts after the decision must finish before the outcome is
    /// given out (a counted download or a wrong password under
    /// [`AccessDurability::SyncCounted`]).
    pub must_flush: bool,
}

/// The caller of an operation: who, from where, and when.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The authenticated caller.
    pub principal: Principal,
    /// Client address, as the server saw it.
    pub client: String,
    /// The time of the request.
    pub now: Timestamp,
}

impl Ctx {
    fn actor(&self) -> Actor {
        match self.principal.token {
            Some(t) => Actor::Token(self.principal.user, t),
            None => Actor::User(self.principal.user),
        }
    }
    fn entry(&self, action: &'static str, object: String, outcome: Outcome) -> Entry {
        Entry {
            time: self.now,
            actor: self.actor(),
            action,
            object,
            client: self.client.clone(),
            outcome,
            detail: String::new(),
        }
    }
}

/// Options of a new share.
#[derive(Debug, Default)]
pub struct ShareOptions {
    /// Lifetime in seconds from now (capped by the configured maximum; required).
    pub expires_in: u64,
    /// Download limit.
    pub max_downloads: Option<u32>,
    /// Optional password.
    pub password: Option<SecretString>,
    /// X25519 public keys the download is bound to (empty: plaintext download).
    pub recipients: Vec<[u8; 32]>,
}

/// A new share: the id and the secret that together make the link. Shown once.
#[derive(Debug)]
pub struct NewShare {
    /// The share id.
    pub id: ShareId,
    /// The link secret.
    pub secret: LinkSecret,
    /// When it expires.
    pub expires: Timestamp,
}

/// See [`Vault::access_reads`].
struct AccessReads {
    share: Option<ShareRecord>,
    freeze: Option<Vec<u8>>,
    env: PolicyEnv,
    creds: Credentials,
    file: Option<FileRecord>,
}

/// What [`Vault::recover_admin`] did.
#[derive(Debug)]
pub struct Recovered {
    /// The admin.
    pub user: UserId,
    /// The new token. Shown once.
    pub token: ApiToken,
    /// Whether the admin was created (no user had the name).
    pub created: bool,
    /// How many older tokens of the admin were revoked.
    pub revoked: usize,
}

/// Permission, granted by [`Vault::access`], to serve one share's file.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The share.
    pub share: ShareId,
    /// The file.
    pub file: FileId,
    /// Plaintext size.
    pub size: u64,
    /// When the share expires.
    pub expires: Timestamp,
    /// Downloads left after this one (`None`: unlimited).
    pub downloads_left: Option<u32>,
    /// For downloads: the ticket that makes the further ranges of this download uncounted.
    pub ticket: Option<DownloadTicket>,
    /// Whether the share has a password (a download will need it).
    pub password_required: bool,
    recipients: Vec<[u8; 32]>,
    kind: GrantKind,
    /// Whether this grant counted a download (see [`Vault::give_back`]).
    counted: bool,
}

impl Grant {
    /// Whether downloads come still encrypted to the share's recipients
    /// ([`Download::Bound`]).
    pub fn recipient_bound(&self) -> bool {
        !self.recipients.is_empty()
    }
}

/// A file as its owner sees it.
#[derive(Debug, Clone)]
pub struct FileInfo {
    /// The file.
    pub id: FileId,
    /// Its owner.
    pub owner: UserId,
    /// The decrypted metadata (name, content type, size).
    pub meta: Metadata,
    /// Plaintext size.
    pub size: u64,
    /// Upload time.
    pub created: Timestamp,
    /// When retention ends and the file is shredded.
    pub retain_until: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrantKind {
    View,
    Download,
}

/// A file's bytes as a download delivers them.
#[derive(Debug)]
pub enum Download {
    /// Plaintext (a link share without recipients).
    Plaintext(Box<dyn PlainRead>),
    /// The file still encrypted, to the share's recipients: `header` then `payload`.
    Bound {
        /// A header that opens only for the recipients.
        header: Vec<u8>,
        /// The unchanged payload.
        payload: Box<dyn BlobRead>,
    },
}

/// Retention policy: files are kept `default` seconds unless the uploader asks for less or
/// more, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Default retention, seconds.
    pub default: u64,
    /// Maximum retention an uploader may ask for, seconds.
    pub max: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            default: 30 * DAY,
            max: 365 * DAY,
        }
    }
}

/// The vault.
pub struct Vault {
    meta: Box<dyn MetaStore>,
    blobs: Box<dyn BlobStore>,
    config: VaultConfig,
    keys: VaultKeys,
    audit: AuditLog,
    /// The opened headers of recently served files (see [`opened`]).
    opened: opened::OpenedCache,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("meta", &self.meta)
            .field("blobs", &self.blobs)
            .field("kek", &self.config.keys.primary().id())
            .finish_non_exhaustive()
    }
}

fn share_obj(s: &ShareId) -> String {
    format!("share:{s}")
}
fn file_obj(f: &FileId) -> String {
    format!("file:{f}")
}
fn user_obj(u: &UserId) -> String {
    format!("user:{u}")
}

/// A user name is 1 to 256 bytes of printable text, without control characters (a newline
/// or an escape would forge lines in a terminal or a log viewer) or surrounding spaces (two
/// names that look the same must be the same name).
fn check_user_name(name: &str) -> Result<(), VaultError> {
    if name.is_empty() || name.len() > 256 {
        return Err(VaultError::Invalid("a user name is 1 to 256 bytes".into()));
    }
    if name.chars().any(char::is_control) || name.trim() != name {
        return Err(VaultError::Invalid(
            "a user name has no control characters and no leading or trailing spaces".into(),
        ));
    }
    Ok(())
}

/// A name for a new user: a valid [`check_user_name`] that also has no invisible
/// formatting character ([`is_invisible_format`]), so an admin cannot make a name that
/// reads like another user's in listings and audit exports ("alice\u{200B}", or a name
/// whose end a U+202E shows reversed). Only new names are checked: a stored user whose name
/// predates the rule still decodes, lists and signs in.
fn check_new_user_name(name: &str) -> Result<(), VaultError> {
    check_user_name(name)?;
    if let Some(c) = name.chars().find(|&c| is_invisible_format(c)) {
        return Err(VaultError::Invalid(format!(
            "a user name has no invisible formatting characters (zero-width, text-direction \
             or line-separator characters): it holds U+{:04X}",
            u32::from(c)
        )));
    }
    Ok(())
}

/// Whether `c` is a Unicode format character (general category Cf: zero-width spaces and
/// joiners, text-direction marks, embeddings, overrides and isolates, the BOM, tags...) or
/// a line or paragraph separator (Zl, Zp). None of them shows as a glyph of its own.
/// `char::is_control` covers only Cc. The Cf ranges are those of Unicode 15.1
/// (`DerivedGeneralCategory.txt`); std has no general-category lookup.
fn is_invisible_format(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x2029
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// Creates `dir` (and its parents) if missing, and makes it accessible to its owner only.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

impl Vault {
    /// Opens the embedded vault under `data_dir` (`meta/` for sled, `blobs/` for payloads),
    /// creating it if needed, and repairs what a crash left behind (reported in the audit log
    /// and returned). `meta/` and `blobs/` are made private to the process's user (mode 0700
    /// on Unix), existing ones included: the audit log names users and client addresses, and
    /// nothing in either is anyone else's business.
    ///
    /// # Errors
    /// The stores cannot be opened, the vault seed is wrapped under a KEK not in the ring, or
    /// the stores are damaged ([`VaultError::Damaged`]).
    pub fn open(
        data_dir: &Path,
        config: VaultConfig,
        now: Timestamp,
    ) -> Result<(Vault, RepairReport), VaultError> {
        let (meta_dir, blob_dir) = data_paths(data_dir);
        for dir in [&meta_dir, &blob_dir] {
            private_dir(dir).map_err(StoreError::from)?;
        }
        let meta = SledMetaStore::open(&meta_dir, config.flush_every_ms)?;
        let blobs = FsBlobStore::open(&blob_dir)?;
        Vault::with_stores(Box::new(meta), Box::new(blobs), config, now)
    }

    /// Opens a vault over any stores.
    ///
    /// # Errors
    /// As [`Vault::open`].
    pub fn with_stores(
        meta: Box<dyn MetaStore>,
        blobs: Box<dyn BlobStore>,
        config: VaultConfig,
        now: Timestamp,
    ) -> Result<(Vault, RepairReport), VaultError> {
        let (seed, tagged) = load_or_create_seed(meta.as_ref(), blobs.as_ref(), &config.keys)?;
        let keys = VaultKeys::derive(seed.expose_secret());
        let tags = if tagged {
            RecordTags::keyed(&keys.audit_tag)
        } else {
            RecordTags::none()
        };
        let audit = AuditLog::open(
            meta.as_ref(),
            keys.audit_signing.clone(),
            config.checkpoint_every,
            tags,
        )?;
        let vault = Vault {
            meta,
            blobs,
            config,
            keys,
            audit,
            opened: opened::OpenedCache::default(),
        };
        let report = vault.repair(now)?;
        Ok((vault, report))
    }

    /// The public half of the audit signing key: publish it, and anyone can verify an export.
    pub fn audit_public_key(&self) -> ed25519_dalek::VerifyingKey {
        self.audit.public_key()
    }

    /// What verifying the stored audit log takes, usable after the vault is closed (tools
    /// and tests that inspect a data directory). It holds the record tag key: keep it in the
    /// process.
    pub fn audit_verifier(&self) -> audit::StoreVerifier {
        self.audit.verifier()
    }

    /// The associated data the vault seed is wrapped with (see [`SEED_AAD`]).
    fn seed_aad(&self) -> &'static [u8] {
        if self.audit.tags().tagged() {
            SEED_AAD
        } else {
            SEED_AAD_UNTAGGED
        }
    }

    /// The metadata store (read access for tools and tests).
    pub fn meta(&self) -> &dyn MetaStore {
        self.meta.as_ref()
    }

    /// The blob store (read access for tools and tests).
    pub fn blobs(&self) -> &dyn BlobStore {
        self.blobs.as_ref()
    }

    /// Forces everything committed so far to disk.
    ///
    /// # Errors
    /// Store errors.
    pub fn flush(&self) -> Result<(), VaultError> {
        Ok(self.meta.flush()?)
    }

    fn commit(
        &self,
        guards: Vec<Guard>,
        ops: Vec<Op>,
        entry: Entry,
        durability: Durability,
    ) -> Result<u64, StoreError> {
        self.audit
            .commit(self.meta.as_ref(), guards, ops, entry, durability)
    }

    /// Records a refusal of `ctx`'s action and returns `err`. If even the audit append fails,
    /// the store error is returned instead.
    fn refuse<T>(
        &self,
        ctx: &Ctx,
        action: &'static str,
        object: String,
        err: VaultError,
    ) -> Result<T, VaultError> {
        let entry = ctx.entry(action, object, Outcome::Refused(err.to_string()));
        self.commit(vec![], vec![], entry, Durability::Buffered)?;
        Err(err)
    }

    fn require(
        &self,
        ctx: &Ctx,
        what: Permission,
        action: &'static str,
        object: &str,
    ) -> Result<(), VaultError> {
        if authorize(&ctx.principal, what) {
            Ok(())
        } else {
            self.refuse(ctx, action, object.to_owned(), VaultError::Forbidden)
        }
    }

    // ---------------------------------------------------------------- users and tokens

    /// Creates the first admin of an empty vault and issues their token (shown once).
    ///
    /// # Errors
    /// [`VaultError::Exists`] if the vault already has users.
    pub fn bootstrap_admin(
        &self,
        name: &str,
        token_ttl: u64,
        now: Timestamp,
    ) -> Result<(UserId, ApiToken), VaultError> {
        check_new_user_name(name)?;
        if !self.meta.users()?.is_empty() {
            return Err(VaultError::Exists("an admin"));
        }
        let user = UserRecord::new(name, Role::Admin, now);
        let (token, trec) = self.new_token(user.id, "bootstrap", now, token_ttl);
        let entry = Entry::system(
            now,
            "user.bootstrap",
            user_obj(&user.id),
            format!("name={name:?} role=admin token={}", token.id()),
        );
        let committed = self.commit(
            vec![
                Guard::Setting(SETTING_BOOTSTRAP, None),
                Guard::UserNameFree(name.to_owned()),
                Guard::User(user.id, None),
            ],
            vec![
                Op::PutSetting(SETTING_BOOTSTRAP, user.id.0.to_vec()),
                Op::PutUser(user.clone()),
                Op::PutToken(trec),
            ],
            entry,
            Durability::Sync,
        );
        match committed {
            Ok(_) => Ok((user.id, token)),
            Err(StoreError::Conflict) => Err(VaultError::Exists("an admin")),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives an operator back an admin token when none works any more (expired, lost, the
    /// last admin disabled): for an offline tool with access to the data directory and the
    /// KEK, never for a network endpoint. The admin `name` is created if no user has that
    /// name, re-enabled if disabled; either way it gets a new token, and every older token
    /// of an existing admin is revoked in the same commit (a lost token may be in someone
    /// else's hands). Audited as `user.recover` by the system.
    ///
    /// # Errors
    /// [`VaultError::Invalid`] if `name` belongs to a user who is not an admin (an operator
    /// mistake that would otherwise hand a member admin rights), or store errors.
    pub fn recover_admin(
        &self,
        name: &str,
        token_ttl: u64,
        now: Timestamp,
    ) -> Result<Recovered, VaultError> {
        check_user_name(name)?;
        loop {
            let existing = self.meta.user_by_name(name)?;
            let mut ops = Vec::new();
            let (user, guard, created) = match existing {
                Some(u) if u.role != Role::Admin => {
                    return Err(VaultError::Invalid(format!(
                        "the user {name:?} is a {}, not an admin: name another user (a new \
                         name creates a new admin)",
                        u.role
                    )));
                }
                Some(u) => {
                    let guard = Guard::User(u.id, Some(u.version));
                    ops.extend(self.meta.tokens_of(&u.id)?.into_iter().map(Op::DeleteToken));
                    let mut u2 = u;
                    u2.disabled = false;
                    u2.version += 1;
                    (u2, guard, false)
                }
                None => {
                    check_new_user_name(name)?;
                    let u = UserRecord::new(name, Role::Admin, now);
                    (u, Guard::UserNameFree(name.to_owned()), true)
                }
            };
            let revoked = ops.len();
            let (token, trec) = self.new_token(user.id, "recovery", now, token_ttl);
            let entry = Entry::system(
                now,
                "user.recover",
                user_obj(&user.id),
                format!(
                    "name={name:?} created={created} token={} tokens_deleted={revoked}",
                    token.id()
                ),
            );
            let user_id = user.id;
            ops.extend([Op::PutUser(user), Op::PutToken(trec)]);
            match self.commit(vec![guard], ops, entry, Durability::Sync) {
                Ok(_) => {
                    return Ok(Recovered {
                        user: user_id,
                        token,
                        created,
                        revoked,
                    });
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn new_token(
        &self,
        user: UserId,
        label: &str,
        now: Timestamp,
        ttl: u64,
    ) -> (ApiToken, model::TokenRecord) {
        let token = ApiToken::generate();
        let rec = model::TokenRecord {
            id: token.id(),
            user,
            hash: token.hash(&self.keys.token_hash),
            created: now,
            expires: now.plus(ttl),
            label: label.to_owned(),
        };
        (token, rec)
    }

    /// Checks an API token. Refusals are audited; the caller learns only
    /// [`VaultError::Unauthenticated`].
    ///
    /// # Errors
    /// [`VaultError::Unauthenticated`], or a store error.
    pub fn authenticate(
        &self,
        token: &ApiToken,
        client: &str,
        now: Timestamp,
    ) -> Result<Principal, VaultError> {
        let stored = self.meta.token(&token.id())?;
        let user = match &stored {
            Some(t) => self.meta.user(&t.user)?,
            None => None,
        };
        match users::check_token(
            stored.as_ref(),
            user.as_ref(),
            token,
            &self.keys.token_hash,
            now,
        ) {
            Ok(p) => Ok(p),
            Err(why) => {
                let actor = match (&stored, why) {
                    (Some(t), TokenRefusal::Expired | TokenRefusal::UserDisabled) => {
                        Actor::Token(t.user, t.id)
                    }
                    _ => Actor::Anonymous,
                };
                let entry = Entry {
                    time: now,
                    actor,
                    action: "token.authenticate",
                    object: format!("token:{}", token.id()),
                    client: client.to_owned(),
                    outcome: Outcome::Refused(why.as_str().to_owned()),
                    detail: String::new(),
                };
                self.commit(vec![], vec![], entry, Durability::Buffered)?;
                Err(VaultError::Unauthenticated)
            }
        }
    }

    /// Creates a user (admin only).
    ///
    /// # Errors
    /// Forbidden, a taken name, or store errors.
    pub fn create_user(&self, ctx: &Ctx, name: &str, role: Role) -> Result<UserId, VaultError> {
        self.require(
            ctx,
            Permission::Administer,
            "user.create",
            &format!("{name:?}"),
        )?;
        check_new_user_name(name)?;
        let user = UserRecord::new(name, role, ctx.now);
        let mut entry = ctx.entry("user.create", user_obj(&user.id), Outcome::Allowed);
        entry.detail = format!("name={name:?} role={role}");
        let mut guards = vec![
            Guard::UserNameFree(name.to_owned()),
            Guard::User(user.id, None),
        ];
        // An admin whose token was revoked while this was in flight creates nobody.
        guards.extend(self.caller_guards(ctx, "user.create", name.to_owned())?);
        match self.commit(
            guards,
            vec![Op::PutUser(user.clone())],
            entry,
            Durability::Sync,
        ) {
            Ok(_) => Ok(user.id),
            Err(StoreError::Conflict) => {
                self.caller_guards(ctx, "user.create", name.to_owned())?;
                self.refuse(
                    ctx,
                    "user.create",
                    name.to_owned(),
                    VaultError::Exists("user"),
                )
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Issues an API token for `user` (admin only). The token is returned once; only its keyed
    /// hash is stored.
    ///
    /// # Errors
    /// Forbidden, unknown or disabled user, or store errors.
    pub fn issue_token(
        &self,
        ctx: &Ctx,
        user: &UserId,
        label: &str,
        ttl: u64,
    ) -> Result<ApiToken, VaultError> {
        self.require(ctx, Permission::Administer, "token.issue", &user_obj(user))?;
        let u = self.meta.user(user)?.ok_or(VaultError::NotFound("user"))?;
        if u.disabled {
            return Err(VaultError::Invalid("the user is disabled".into()));
        }
        let (token, rec) = self.new_token(u.id, label, ctx.now, ttl);
        let mut entry = ctx.entry(
            "token.issue",
            format!("token:{}", token.id()),
            Outcome::Allowed,
        );
        entry.detail = format!("user={} expires={}", u.id, rec.expires);
        // Guarded by the caller's token and user too: a token revoked (or an admin disabled)
        // while this request was in flight must not mint a new credential afterwards.
        let guards = vec![Guard::User(u.id, Some(u.version))];
        self.commit_as_caller(ctx, user_obj(user), guards, vec![Op::PutToken(rec)], entry)?;
        Ok(token)
    }

    /// Revokes one API token (admin, or the token's own user whatever their role).
    ///
    /// # Errors
    /// Forbidden, not found, or store errors.
    pub fn revoke_token(&self, ctx: &Ctx, token: &TokenId) -> Result<(), VaultError> {
        let t = self
            .meta
            .token(token)?
            .ok_or(VaultError::NotFound("token"))?;
        // Anyone may revoke their own token (an auditor too); an admin may revoke any.
        if t.user != ctx.principal.user {
            self.require(
                ctx,
                Permission::ManageOwned { owner: t.user },
                "token.revoke",
                &format!("token:{token}"),
            )?;
        }
        let entry = ctx.entry("token.revoke", format!("token:{token}"), Outcome::Allowed);
        self.commit(vec![], vec![Op::DeleteToken(t)], entry, Durability::Sync)?;
        Ok(())
    }

    /// Disables a user: the user's tokens are deleted, and every share of the user's files and
    /// every share the user created of others' files (as an admin) is revoked, in one atomic
    /// commit (admin only). The last enabled admin cannot be disabled.
    ///
    /// # Errors
    /// Forbidden, not found, [`VaultError::Invalid`] for the last enabled admin, or store
    /// errors.
    pub fn disable_user(&self, ctx: &Ctx, user: &UserId) -> Result<(), VaultError> {
        self.require(ctx, Permission::Administer, "user.disable", &user_obj(user))?;
        loop {
            let u = self.meta.user(user)?.ok_or(VaultError::NotFound("user"))?;
            let mut guards = vec![Guard::User(u.id, Some(u.version))];
            // A conflict loops back here: an admin whose token was revoked meanwhile stops.
            guards.extend(self.caller_guards(ctx, "user.disable", user_obj(user))?);
            if u.role == Role::Admin && !u.disabled {
                // Never the last enabled admin: nobody could administer the vault any more
                // (not even to enable it again). Guarded by the other admins' versions, so
                // two admins disabling each other at once cannot both succeed.
                let others: Vec<Guard> = self
                    .meta
                    .users()?
                    .into_iter()
                    .filter(|o| o.role == Role::Admin && !o.disabled && o.id != u.id)
                    .map(|o| Guard::User(o.id, Some(o.version)))
                    .collect();
                if others.is_empty() {
                    return Err(VaultError::Invalid(
                        "this is the last enabled admin: enable or create another admin first"
                            .into(),
                    ));
                }
                guards.extend(others);
            }
            let mut ops = Vec::new();
            let tokens = self.meta.tokens_of(user)?;
            let n_tokens = tokens.len();
            ops.extend(tokens.into_iter().map(Op::DeleteToken));
            // Revocations are read-modify-writes inside the commit, of the shares the user has
            // then: no share guard, so a stream of downloads cannot starve the disable, and a
            // share created after this listing is revoked too. (The count is of this listing.)
            let n_shares = self.meta.shares_of_user(user)?.len()
                + self.meta.shares_created_for_others(user)?.len();
            ops.push(Op::RevokeSharesOfUser(*user, ctx.now));
            let mut u2 = u.clone();
            u2.disabled = true;
            u2.version += 1;
            ops.push(Op::PutUser(u2));
            let mut entry = ctx.entry("user.disable", user_obj(user), Outcome::Allowed);
            entry.detail = format!("tokens_deleted={n_tokens} shares_revoked={n_shares}");
            match self.commit(guards, ops, entry, Durability::Sync) {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Re-enables a user. Their old tokens and shares stay gone (admin only).
    ///
    /// # Errors
    /// Forbidden, not found, or store errors.
    pub fn enable_user(&self, ctx: &Ctx, user: &UserId) -> Result<(), VaultError> {
        self.require(ctx, Permission::Administer, "user.enable", &user_obj(user))?;
        let u = self.meta.user(user)?.ok_or(VaultError::NotFound("user"))?;
        let mut u2 = u.clone();
        u2.disabled = false;
        u2.version += 1;
        let entry = ctx.entry("user.enable", user_obj(user), Outcome::Allowed);
        let guards = vec![Guard::User(u.id, Some(u.version))];
        self.commit_as_caller(ctx, user_obj(user), guards, vec![Op::PutUser(u2)], entry)
    }

    // ---------------------------------------------------------------- settings

    /// The retention policy.
    ///
    /// # Errors
    /// Store errors.
    pub fn retention(&self) -> Result<Retention, VaultError> {
        Ok(match self.meta.setting(SETTING_RETENTION)? {
            Some(b) if b.len() == 16 => Retention {
                default: u64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
                max: u64::from_be_bytes(b[8..].try_into().expect("8 bytes")),
            },
            _ => Retention::default(),
        })
    }

    /// Sets the retention policy (admin only).
    ///
    /// # Errors
    /// Forbidden, `default > max`, or store errors.
    pub fn set_retention(&self, ctx: &Ctx, r: Retention) -> Result<(), VaultError> {
        self.require(ctx, Permission::Administer, "retention.set", "retention")?;
        if r.default > r.max || r.default == 0 {
            return Err(VaultError::Invalid("retention: 0 < default <= max".into()));
        }
        let mut b = r.default.to_be_bytes().to_vec();
        b.extend_from_slice(&r.max.to_be_bytes());
        let mut entry = ctx.entry("retention.set", "retention".into(), Outcome::Allowed);
        entry.detail = format!("default={} max={}", r.default, r.max);
        let ops = vec![Op::PutSetting(SETTING_RETENTION, b)];
        self.commit_as_caller(ctx, "retention".into(), vec![], ops, entry)
    }

    fn freeze_value(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.meta.setting(SETTING_FREEZE)
    }

    /// Whether an emergency freeze is in force.
    ///
    /// # Errors
    /// Store errors.
    pub fn frozen(&self) -> Result<bool, VaultError> {
        Ok(is_frozen(&self.freeze_value()?))
    }

    /// Emergency freeze: every share of the deployment is refused until [`Vault::unfreeze`]
    /// (admin only). Shares are not modified, so lifting the freeze restores them.
    ///
    /// # Errors
    /// Forbidden or store errors.
    pub fn freeze(&self, ctx: &Ctx) -> Result<(), VaultError> {
        self.set_freeze(ctx, true)
    }

    /// Lifts the emergency freeze (admin only).
    ///
    /// # Errors
    /// Forbidden or store errors.
    pub fn unfreeze(&self, ctx: &Ctx) -> Result<(), VaultError> {
        self.set_freeze(ctx, false)
    }

    fn set_freeze(&self, ctx: &Ctx, on: bool) -> Result<(), VaultError> {
        let action = if on {
            "deployment.freeze"
        } else {
            "deployment.unfreeze"
        };
        self.require(ctx, Permission::Administer, action, "deployment")?;
        let mut v = vec![u8::from(on)];
        v.extend_from_slice(&ctx.now.0.to_be_bytes());
        let entry = ctx.entry(action, "deployment".into(), Outcome::Allowed);
        let ops = vec![Op::PutSetting(SETTING_FREEZE, v)];
        self.commit_as_caller(ctx, "deployment".into(), vec![], ops, entry)
    }

    // ---------------------------------------------------------------- files

    /// Uploads a file: seals it to the KEK while streaming the payload into a temporary blob,
    /// publishes the blob, then commits the file record. `retention` (seconds) defaults to the
    /// policy's and may not exceed its maximum.
    ///
    /// # Errors
    /// Forbidden, retention over the maximum, I/O or store errors. On error no file exists
    /// (a published blob without a record is removed, or at the latest at the next startup),
    /// except after [`StoreError::NotDurable`]: the record was committed, only its flush
    /// failed, so the file exists (with its blob) and may or may not survive a crash.
    pub fn upload(
        &self,
        ctx: &Ctx,
        meta: &Metadata,
        retention: Option<u64>,
        input: &mut dyn Read,
    ) -> Result<FileId, VaultError> {
        self.require(ctx, Permission::Upload, "file.upload", "file")?;
        let policy = self.retention()?;
        let keep = retention.unwrap_or(policy.default);
        if keep == 0 || keep > policy.max {
            return self.refuse(
                ctx,
                "file.upload",
                "file".into(),
                VaultError::Invalid(format!("retention must be 1..={} seconds", policy.max)),
            );
        }
        let id = FileId::random();
        let kek = self.config.keys.primary();
        let mut writer = self.blobs.create(&id)?;
        let (header, size) = sealing::seal(kek, meta, input, &mut writer)?;
        let blob_size = writer.commit()?;
        let rec = FileRecord {
            id,
            owner: ctx.principal.user,
            size,
            blob_size,
            header,
            kek: kek.id(),
            created: ctx.now,
            retain_until: ctx.now.plus(keep),
            state: FileState::Active,
            version: 1,
        };
        let mut entry = ctx.entry("file.upload", file_obj(&id), Outcome::Allowed);
        entry.detail = format!("size={size} retain_until={}", rec.retain_until);
        // The upload streamed for as long as the client sent: the uploader may have been
        // disabled, or its token revoked, meanwhile. Checked again here and guarded in the
        // commit, so neither stores a file after the fact.
        loop {
            let Some(mut guards) = self.writer_guards(&ctx.principal)? else {
                let _ = self.blobs.delete(&id);
                let gone = VaultError::Unauthenticated;
                return self.refuse(ctx, "file.upload", file_obj(&id), gone);
            };
            guards.push(Guard::File(id, None));
            match self.commit(
                guards,
                vec![Op::PutFile(rec.clone())],
                entry.clone(),
                Durability::Sync,
            ) {
                Ok(_) => return Ok(id),
                Err(StoreError::Conflict) => continue,
                Err(e) => {
                    self.discard_unrecorded_blob(&id, &e);
                    return Err(e.into());
                }
            }
        }
    }

    /// The guards that keep a principal allowed to write up to a commit: its user exists and
    /// is enabled, and its token (if it used one) still exists. `None` if that is no longer
    /// so (disabled, deleted, token revoked since it authenticated).
    fn writer_guards(&self, p: &Principal) -> Result<Option<Vec<Guard>>, StoreError> {
        let token_ok = match &p.token {
            Some(t) => self.meta.token(t)?.is_some(),
            None => true,
        };
        let user = self.meta.user(&p.user)?;
        Ok(user.filter(|u| !u.disabled && token_ok).map(|u| {
            let mut guards = vec![Guard::User(u.id, Some(u.version))];
            guards.extend(p.token.map(Guard::Token));
            guards
        }))
    }

    /// The caller's own guards ([`Vault::writer_guards`]) for a write on their behalf: a token
    /// revoked, or a user disabled, while the request was in flight must not have the write
    /// applied after that. A caller already gone is refused (and audited).
    fn caller_guards(
        &self,
        ctx: &Ctx,
        action: &'static str,
        object: String,
    ) -> Result<Vec<Guard>, VaultError> {
        match self.writer_guards(&ctx.principal)? {
            Some(guards) => Ok(guards),
            None => self.refuse(ctx, action, object, VaultError::Unauthenticated),
        }
    }

    /// Commits an admin write guarded by `guards` and by the caller's own guards. A conflict
    /// because the caller went away meanwhile is refused as [`VaultError::Unauthenticated`].
    fn commit_as_caller(
        &self,
        ctx: &Ctx,
        object: String,
        mut guards: Vec<Guard>,
        ops: Vec<Op>,
        entry: Entry,
    ) -> Result<(), VaultError> {
        let action = entry.action;
        guards.extend(self.caller_guards(ctx, action, object.clone())?);
        match self.commit(guards, ops, entry, Durability::Sync) {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict) => {
                self.caller_guards(ctx, action, object)?;
                Err(StoreError::Conflict.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// After an upload's failed commit: deletes the blob unless the record was committed
    /// anyway ([`StoreError::NotDurable`]). That record is live (and, if a later flush or
    /// the background flusher writes it out, durable); deleting its blob would leave an
    /// active file without its payload. If the record is lost in a crash instead, startup
    /// repair removes the blob as an orphan.
    fn discard_unrecorded_blob(&self, id: &FileId, commit_error: &StoreError) {
        if !commit_error.was_applied() {
            let _ = self.blobs.delete(id);
        }
    }

    /// The file's decrypted metadata (owner, admin).
    ///
    /// # Errors
    /// Forbidden, not found, key or store errors.
    pub fn file_meta(&self, ctx: &Ctx, file: &FileId) -> Result<Metadata, VaultError> {
        let f = self.live_file(file, ctx.now)?;
        if !authorize(&ctx.principal, Permission::ManageOwned { owner: f.owner }) {
            return Err(VaultError::NotFound("file"));
        }
        Ok(sealing::metadata(&f.header, &self.config.keys)?)
    }

    /// A file's record and decrypted metadata (owner, admin).
    ///
    /// # Errors
    /// Not found (also when not the caller's), key or store errors.
    pub fn file_info(&self, ctx: &Ctx, file: &FileId) -> Result<FileInfo, VaultError> {
        let f = self.live_file(file, ctx.now)?;
        if !authorize(&ctx.principal, Permission::ManageOwned { owner: f.owner }) {
            return Err(VaultError::NotFound("file"));
        }
        self.info_of(f)
    }

    fn info_of(&self, f: FileRecord) -> Result<FileInfo, VaultError> {
        Ok(FileInfo {
            meta: sealing::metadata(&f.header, &self.config.keys)?,
            id: f.id,
            owner: f.owner,
            size: f.size,
            created: f.created,
            retain_until: f.retain_until,
        })
    }

    /// The caller's active files, newest first (`kinko files`). The cost is proportional to
    /// the caller's files (an owner index), not to the vault's.
    ///
    /// # Errors
    /// Key or store errors.
    pub fn my_files(&self, ctx: &Ctx) -> Result<Vec<FileInfo>, VaultError> {
        let mut out = Vec::new();
        for id in self.meta.files_of_user(&ctx.principal.user)? {
            match self.meta.file(&id)? {
                Some(f) if f.live_at(ctx.now) => out.push(self.info_of(f)?),
                _ => {}
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Opens a file's plaintext for its owner (or an admin).
    ///
    /// # Errors
    /// Forbidden, not found, key or store errors.
    pub fn open_file(&self, ctx: &Ctx, file: &FileId) -> Result<Box<dyn PlainRead>, VaultError> {
        loop {
            let f = self.live_file(file, ctx.now)?;
            if !authorize(&ctx.principal, Permission::ManageOwned { owner: f.owner }) {
                return Err(VaultError::NotFound("file"));
            }
            let entry = ctx.entry("file.read", file_obj(file), Outcome::Allowed);
            match self.commit(
                vec![Guard::File(f.id, Some(f.version))],
                vec![],
                entry,
                Durability::Buffered,
            ) {
                Ok(_) => {}
                // Deleted or re-wrapped since the read: read it again.
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
            let payload = self.open_blob(&f)?;
            return self.open_plaintext(&f, payload);
        }
    }

    /// Opens `payload`, the blob of `f` (a record read as active just before), for reading
    /// plaintext, with `f`'s opened header from the cache if it holds it (see [`opened`]).
    fn open_plaintext(
        &self,
        f: &FileRecord,
        payload: Box<dyn BlobRead>,
    ) -> Result<Box<dyn PlainRead>, VaultError> {
        let opened = self.opened.get_or_open(&f.id, &f.header, || {
            sealing::open_header(&f.header, &self.config.keys)
        })?;
        Ok(sealing::open_with(opened, payload)?)
    }

    /// Opens the blob of `f`, a record read as active just before. A delete may have shredded
    /// the file and removed its blob since that read: the file is then gone
    /// ([`VaultError::NotFound`]), as it would be to a read after the delete, not a store
    /// failure. A blob missing from a file still active is one (outside damage).
    fn open_blob(&self, f: &FileRecord) -> Result<Box<dyn BlobRead>, VaultError> {
        match self.blobs.open(&f.id) {
            Ok(payload) => Ok(payload),
            Err(e) => match self.meta.file(&f.id)? {
                Some(now) if now.state == FileState::Active => Err(e.into()),
                _ => Err(VaultError::NotFound("file")),
            },
        }
    }

    /// The file if it is not shredded, for managing it (delete, revoke its shares) and for
    /// serving a grant already decided.
    fn active_file(&self, file: &FileId) -> Result<FileRecord, VaultError> {
        match self.meta.file(file)? {
            Some(f) if f.state == FileState::Active => Ok(f),
            _ => Err(VaultError::NotFound("file")),
        }
    }

    /// The file if it can be read and shared at `now` ([`FileRecord::live_at`]).
    fn live_file(&self, file: &FileId, now: Timestamp) -> Result<FileRecord, VaultError> {
        match self.meta.file(file)? {
            Some(f) if f.live_at(now) => Ok(f),
            _ => Err(VaultError::NotFound("file")),
        }
    }

    /// Deletes a file by crypto-shredding: one commit destroys the header (the wrapped DEK)
    /// and deletes every share of the file; then the blob is deleted; then the tombstone. A
    /// crash in between is finished by the next startup.
    ///
    /// # Errors
    /// Forbidden, not found, or store errors.
    pub fn delete_file(&self, ctx: &Ctx, file: &FileId) -> Result<(), VaultError> {
        let f = self.active_file(file)?;
        self.require(
            ctx,
            Permission::ManageOwned { owner: f.owner },
            "file.delete",
            &file_obj(file),
        )?;
        self.shred(ctx.actor(), &ctx.client, "file.delete", file, ctx.now)
    }

    /// The shred sequence, shared by delete, retention sweep and repair.
    fn shred(
        &self,
        actor: Actor,
        client: &str,
        action: &'static str,
        file: &FileId,
        now: Timestamp,
    ) -> Result<(), VaultError> {
        loop {
            let Some(f) = self.meta.file(file)? else {
                return Ok(());
            };
            if f.state == FileState::Active {
                // Guarded by the file's version only. The shares are deleted by the store
                // inside the commit (whatever their versions then), so downloads bumping a
                // share's version cannot starve the delete; each download decided before it
                // guards on its share's version, finds the share gone, re-reads and is
                // refused. The count is of the shares listed now, for the audit record.
                let guards = vec![Guard::File(f.id, Some(f.version))];
                let n_shares = self.meta.shares_of_file(file)?.len();
                let mut tomb = f.clone();
                tomb.header = Vec::new();
                tomb.state = FileState::Shredded;
                tomb.version += 1;
                let ops = vec![Op::DeleteSharesOfFile(f.id), Op::PutFile(tomb)];
                let entry = Entry {
                    time: now,
                    actor,
                    action,
                    object: file_obj(file),
                    client: client.to_owned(),
                    outcome: Outcome::Allowed,
                    detail: format!("key shredded; shares_deleted={n_shares}"),
                };
                match self.commit(guards, ops, entry, Durability::Sync) {
                    Ok(_) => {
                        // The wrapped DEK is gone from the store: its payload key goes too.
                        self.opened.forget(file);
                        continue;
                    }
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            // Shredded: the key is gone; remove the blob, then the tombstone. The blob may be
            // gone already (an interrupted delete, or a blob lost to outside damage, which
            // repair reports and its owner may delete): deleting a missing blob succeeds.
            self.blobs.delete(file)?;
            let entry = Entry {
                time: now,
                actor,
                action: "file.purge",
                object: file_obj(file),
                client: client.to_owned(),
                outcome: Outcome::Allowed,
                detail: "blob deleted".into(),
            };
            match self.commit(
                vec![Guard::File(f.id, Some(f.version))],
                vec![Op::DeleteFile(f)],
                entry,
                Durability::Sync,
            ) {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    // ---------------------------------------------------------------- shares

    /// Creates a share of `file`. The share is on disk before this returns.
    ///
    /// # Errors
    /// Forbidden, not found, lifetime outside policy, or store errors.
    pub fn create_share(
        &self,
        ctx: &Ctx,
        file: &FileId,
        opts: ShareOptions,
    ) -> Result<NewShare, VaultError> {
        let f = self.live_file(file, ctx.now)?;
        self.require(
            ctx,
            Permission::ManageOwned { owner: f.owner },
            "share.create",
            &file_obj(file),
        )?;
        if opts.expires_in == 0 || opts.expires_in > self.config.max_share_lifetime {
            return Err(VaultError::Invalid(format!(
                "share lifetime must be 1..={} seconds",
                self.config.max_share_lifetime
            )));
        }
        if opts.max_downloads == Some(0) {
            return Err(VaultError::Invalid("a download limit is at least 1".into()));
        }
        let id = ShareId::random();
        if !opts.recipients.is_empty() {
            // Fail now rather than at download time if bound downloads are unavailable.
            sealing::bind(&f.header, &self.config.keys, &id, &opts.recipients)?;
        }
        let secret = LinkSecret::generate();
        // The share never outlives its file.
        let expires = ctx.now.plus(opts.expires_in).min(f.retain_until);
        let rec = ShareRecord {
            id,
            file: f.id,
            owner: f.owner,
            creator: ctx.principal.user,
            created: ctx.now,
            expires,
            secret_hash: secret.hash(&self.keys.link_hash, &id),
            password: opts
                .password
                .as_ref()
                .map(|p| policy::hash_password(p, self.config.password_cost)),
            max_downloads: opts.max_downloads,
            downloads: 0,
            failed_attempts: 0,
            max_attempts: self.config.max_password_attempts.max(1),
            recipients: opts.recipients,
            revoked: None,
            version: 1,
        };
        let mut entry = ctx.entry("share.create", share_obj(&id), Outcome::Allowed);
        entry.detail = format!(
            "file={} expires={} max_downloads={} password={} recipients={}",
            f.id,
            expires,
            rec.max_downloads
                .map_or("none".to_owned(), |m| m.to_string()),
            rec.password.is_some(),
            rec.recipients.len()
        );
        // Guarded by the owner's version too: a share committed after the owner was disabled
        // would survive the disable that was meant to revoke it (and come back on enable).
        // The same for the creator, when an admin shares another user's file.
        let owner = self.meta.user(&f.owner)?;
        if owner.as_ref().is_none_or(|u| u.disabled) {
            return Err(VaultError::Invalid("the file's owner is disabled".into()));
        }
        let mut guards = vec![
            Guard::File(f.id, Some(f.version)),
            Guard::User(f.owner, owner.map(|u| u.version)),
            Guard::Share(id, None),
        ];
        if rec.creator != rec.owner {
            let creator = self.meta.user(&rec.creator)?;
            if creator.as_ref().is_none_or(|u| u.disabled) {
                return Err(VaultError::Forbidden);
            }
            guards.push(Guard::User(rec.creator, creator.map(|u| u.version)));
        }
        // And by the caller's token, as an upload is: a link created through a token after
        // that token was revoked would hand a capability to whoever holds the lost token.
        self.commit_as_caller(ctx, file_obj(file), guards, vec![Op::PutShare(rec)], entry)?;
        Ok(NewShare {
            id,
            secret,
            expires,
        })
    }

    /// Revokes one share (its owner or an admin).
    ///
    /// # Errors
    /// Forbidden, not found, or store errors.
    pub fn revoke_share(&self, ctx: &Ctx, share: &ShareId) -> Result<(), VaultError> {
        loop {
            let s = self
                .meta
                .share(share)?
                .ok_or(VaultError::NotFound("share"))?;
            self.require(
                ctx,
                Permission::ManageOwned { owner: s.owner },
                "share.revoke",
                &share_obj(share),
            )?;
            let entry = ctx.entry("share.revoke", share_obj(share), Outcome::Allowed);
            // A read-modify-write inside the commit: no version guard, so downloads racing
            // the revocation cannot starve it; their own guarded commits retry and see it.
            match self.commit(
                vec![],
                vec![Op::RevokeShare(s.id, ctx.now)],
                entry,
                Durability::Sync,
            ) {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Revokes every share of a file in one commit (its owner or an admin). Returns how many.
    ///
    /// # Errors
    /// Forbidden, not found, or store errors.
    pub fn revoke_file_shares(&self, ctx: &Ctx, file: &FileId) -> Result<usize, VaultError> {
        loop {
            let f = self.active_file(file)?;
            self.require(
                ctx,
                Permission::ManageOwned { owner: f.owner },
                "file.revoke_shares",
                &file_obj(file),
            )?;
            let guards = vec![Guard::File(f.id, Some(f.version))];
            // The revocations are read-modify-writes of the shares the file has when the commit
            // applies, so a share created after this listing is revoked too (`create_share`
            // does not change the file's version). The count is of this listing.
            let mut n = 0;
            for sid in self.meta.shares_of_file(file)? {
                if let Some(s) = self.meta.share(&sid)? {
                    n += usize::from(s.revoked.is_none());
                }
            }
            let ops = vec![Op::RevokeSharesOfFile(f.id, ctx.now)];
            let mut entry = ctx.entry("file.revoke_shares", file_obj(file), Outcome::Allowed);
            entry.detail = format!("shares_revoked={n}");
            match self.commit(guards, ops, entry, Durability::Sync) {
                Ok(_) => return Ok(n),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The shares the caller created (`kinko shares`).
    ///
    /// # Errors
    /// Store errors.
    pub fn my_shares(&self, ctx: &Ctx) -> Result<Vec<ShareRecord>, VaultError> {
        let mut out = Vec::new();
        for sid in self.meta.shares_of_user(&ctx.principal.user)? {
            out.extend(self.meta.share(&sid)?);
        }
        Ok(out)
    }

    /// Every user (admin only).
    ///
    /// # Errors
    /// Forbidden or store errors.
    pub fn users(&self, ctx: &Ctx) -> Result<Vec<UserRecord>, VaultError> {
        self.require(ctx, Permission::Administer, "user.list", "users")?;
        Ok(self.meta.users()?)
    }

    /// A user's API tokens, oldest first (admin only): to find the one to revoke when a
    /// device is lost, without disabling the user. The records hold the tokens' keyed
    /// hashes, never the tokens.
    ///
    /// # Errors
    /// Forbidden, not found, or store errors.
    pub fn tokens(&self, ctx: &Ctx, user: &UserId) -> Result<Vec<model::TokenRecord>, VaultError> {
        self.require(ctx, Permission::Administer, "token.list", &user_obj(user))?;
        self.meta.user(user)?.ok_or(VaultError::NotFound("user"))?;
        let mut tokens = self.meta.tokens_of(user)?;
        tokens.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(tokens)
    }

    /// The shares of a file (owner or admin).
    ///
    /// # Errors
    /// Forbidden, not found, or store errors.
    pub fn shares_of_file(&self, ctx: &Ctx, file: &FileId) -> Result<Vec<ShareRecord>, VaultError> {
        let f = self.live_file(file, ctx.now)?;
        if !authorize(&ctx.principal, Permission::ManageOwned { owner: f.owner }) {
            return Err(VaultError::NotFound("file"));
        }
        let mut out = Vec::new();
        for sid in self.meta.shares_of_file(file)? {
            out.extend(self.meta.share(&sid)?);
        }
        Ok(out)
    }

    /// A link request: decides with [`policy::decide`], counts, audits, all in one atomic
    /// commit guarded by the share's version (a concurrent change makes it re-read and decide
    /// again). Returns a [`Grant`] to pass to [`Vault::download`]. With
    /// [`AccessDurability::SyncCounted`] a counted decision is on disk before this returns.
    ///
    /// # Errors
    /// One opaque [`AccessError::Denied`] for every refusal not about the password;
    /// [`AccessError::Internal`] if the vault fails (nothing is granted then).
    pub fn access(
        &self,
        share_id: &ShareId,
        secret: &LinkSecret,
        password: Option<&SecretString>,
        kind: AccessKind,
        client: &str,
        now: Timestamp,
    ) -> Result<Grant, AccessError> {
        let decided = self.decide_access(share_id, secret, password, kind, client, now);
        if decided.must_flush {
            self.flush().map_err(AccessError::Internal)?;
        }
        decided.outcome
    }

    /// What one link decision reads: the share, the freeze setting, the facts around the
    /// share and the credentials checked against it (all but the password).
    fn access_reads(
        &self,
        share_id: &ShareId,
        secret: &LinkSecret,
        kind: &AccessKind,
        now: Timestamp,
    ) -> Result<AccessReads, StoreError> {
        let share = self.meta.share(share_id)?;
        let freeze = self.freeze_value()?;
        let mut env = PolicyEnv {
            frozen: is_frozen(&freeze),
            owner_enabled: false,
            file_active: false,
        };
        let mut creds = Credentials {
            secret_ok: false,
            // Set by `decide_lazily`.
            password: PasswordCheck::Missing,
            ticket_ok: false,
        };
        let mut file = None;
        if let Some(s) = &share {
            env.owner_enabled = self.meta.user(&s.owner)?.is_some_and(|u| !u.disabled);
            file = self.meta.file(&s.file)?.filter(|f| f.live_at(now));
            env.file_active = file.is_some();
            creds.secret_ok = policy::secret_matches(s, secret, &self.keys.link_hash);
            if let AccessKind::Resume(t) = kind {
                creds.ticket_ok = t.valid(&self.keys.ticket_mac, &s.id, now);
            }
        }
        Ok(AccessReads {
            share,
            freeze,
            env,
            creds,
            file,
        })
    }

    /// Whether the answer to a link request would depend on its password now: false when
    /// the share is refused (or needs no password) whatever password is presented: locked,
    /// expired, revoked, used up, a wrong secret... Reads only, and runs no Argon2.
    ///
    /// For callers that ration Argon2 runs: a request whose password does not matter can be
    /// decided by [`Vault::decide_access`] without it, with the same answer, instead of
    /// waiting for a turn. Should the share change in between so that the password matters
    /// after all, that decision asks for the password and counts nothing.
    ///
    /// # Errors
    /// [`AccessError::Internal`] if the store fails.
    pub fn password_decides(
        &self,
        share_id: &ShareId,
        secret: &LinkSecret,
        kind: &AccessKind,
        now: Timestamp,
    ) -> Result<bool, AccessError> {
        let r = self
            .access_reads(share_id, secret, kind, now)
            .map_err(|e| AccessError::Internal(e.into()))?;
        let mut asked = false;
        policy::decide_lazily(r.share.as_ref(), &r.env, &r.creds, kind, now, || {
            asked = true;
            PasswordCheck::Wrong
        });
        Ok(asked)
    }

    /// [`Vault::access`] without its flush, for callers that group the flushes of many
    /// decisions into one (group commit): the decision is committed to the store, and when
    /// [`Decided::must_flush`] is set its answer may be given only after a [`Vault::flush`]
    /// that *started* after this call returned.
    pub fn decide_access(
        &self,
        share_id: &ShareId,
        secret: &LinkSecret,
        password: Option<&SecretString>,
        kind: AccessKind,
        client: &str,
        now: Timestamp,
    ) -> Decided<Result<Grant, AccessError>> {
        // Set when the decision committed a change that must reach the disk before its
        // answer is given.
        let mut must_flush = false;
        let outcome = (|| -> Result<Grant, AccessError> {
            let internal = |e: StoreError| AccessError::Internal(e.into());
            let mut password_check: Option<PasswordCheck> = None;
            loop {
                let AccessReads {
                    share,
                    freeze,
                    env,
                    creds,
                    file,
                } = self
                    .access_reads(share_id, secret, &kind, now)
                    .map_err(internal)?;
                // Argon2 only when every other check has passed, and once per request.
                let decision =
                    policy::decide_lazily(share.as_ref(), &env, &creds, &kind, now, || {
                        let s = share.as_ref().expect("asked only about a share");
                        *password_check.get_or_insert_with(|| policy::check_password(s, password))
                    });
                let next = share
                    .as_ref()
                    .and_then(|s| policy::next_state(s, &decision));
                let mut guards = vec![Guard::Setting(SETTING_FREEZE, freeze)];
                if let Some(s) = &share {
                    guards.push(Guard::Share(s.id, Some(s.version)));
                } else {
                    guards.push(Guard::Share(*share_id, None));
                }
                let action = match kind {
                    AccessKind::View => "share.view",
                    AccessKind::Download | AccessKind::DownloadFor(_) => "share.download",
                    AccessKind::Resume(_) => "share.download.range",
                };
                let outcome = match decision {
                    Decision::Allow { .. } => Outcome::Allowed,
                    Decision::Refuse(r) => Outcome::Refused(r.as_str().to_owned()),
                };
                let detail = match (&next, &share) {
                    (Some(n), _) => format!(
                        "downloads={}/{} failed_passwords={}/{}",
                        n.downloads,
                        n.max_downloads.map_or("-".to_owned(), |m| m.to_string()),
                        n.failed_attempts,
                        n.max_attempts
                    ),
                    (None, Some(s)) => format!("file={}", s.file),
                    (None, None) => String::new(),
                };
                let durability = match (self.config.access_durability, &next) {
                    (AccessDurability::SyncCounted, Some(_)) => Durability::Sync,
                    _ => Durability::Buffered,
                };
                let entry = Entry {
                    time: now,
                    actor: Actor::Share(*share_id),
                    action,
                    object: share.as_ref().map_or_else(
                        || share_obj(share_id),
                        |s| format!("{} {}", share_obj(&s.id), file_obj(&s.file)),
                    ),
                    client: client.to_owned(),
                    outcome,
                    detail,
                };
                match self.commit(
                    guards,
                    next.clone().map(Op::UpdateShare).into_iter().collect(),
                    entry,
                    Durability::Buffered,
                ) {
                    Ok(_) => must_flush = durability == Durability::Sync,
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(internal(e)),
                }
                return match decision {
                    Decision::Refuse(r) => Err(r.into()),
                    Decision::Allow { counted } => {
                        let s = next
                            .as_ref()
                            .or(share.as_ref())
                            .expect("allowed implies a share");
                        let f = file.expect("allowed implies an active file");
                        let ticket = match kind {
                            AccessKind::View => None,
                            AccessKind::Resume(t) => Some(t),
                            AccessKind::Download | AccessKind::DownloadFor(_) => {
                                debug_assert!(counted);
                                Some(DownloadTicket::issue(
                                    &self.keys.ticket_mac,
                                    &s.id,
                                    now.plus(self.config.ticket_ttl).min(s.expires),
                                ))
                            }
                        };
                        Ok(Grant {
                            share: s.id,
                            file: s.file,
                            size: f.size,
                            expires: s.expires,
                            downloads_left: s.max_downloads.map(|m| m.saturating_sub(s.downloads)),
                            kind: if ticket.is_some() {
                                GrantKind::Download
                            } else {
                                GrantKind::View
                            },
                            ticket,
                            password_required: s.password.is_some(),
                            recipients: s.recipients.clone(),
                            counted,
                        })
                    }
                };
            }
        })();
        Decided {
            outcome,
            must_flush,
        }
    }

    /// Gives back the download `grant` counted, when serving it failed before any of its
    /// bytes left (the file's blob missing or unreadable, say): the partner got nothing, and
    /// a limited share must not lose a download to the server's failure. Nothing to do for a
    /// grant that counted nothing (a view, a further range of a download). Audited as
    /// `share.download.undone`; buffered (a crash before the next flush keeps the count).
    /// Call it at most once per grant, and only when its ticket never reached the client
    /// (the ticket would still fetch the bytes, uncounted).
    ///
    /// # Errors
    /// Store errors.
    pub fn give_back(&self, grant: &Grant, client: &str, now: Timestamp) -> Result<(), VaultError> {
        if !grant.counted {
            return Ok(());
        }
        loop {
            let Some(s) = self.meta.share(&grant.share)? else {
                return Ok(());
            };
            if s.downloads == 0 {
                return Ok(());
            }
            let mut back = s.clone();
            back.downloads -= 1;
            back.version += 1;
            let entry = Entry {
                time: now,
                actor: Actor::Share(s.id),
                action: "share.download.undone",
                object: format!("{} {}", share_obj(&s.id), file_obj(&s.file)),
                client: client.to_owned(),
                outcome: Outcome::Allowed,
                detail: format!(
                    "downloads={}/{}",
                    back.downloads,
                    back.max_downloads.map_or("-".to_owned(), |m| m.to_string()),
                ),
            };
            match self.commit(
                vec![Guard::Share(s.id, Some(s.version))],
                vec![Op::UpdateShare(back)],
                entry,
                Durability::Buffered,
            ) {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The decrypted metadata for a share's landing page.
    ///
    /// # Errors
    /// The file is gone (deleted since the grant), key or store errors.
    pub fn grant_meta(&self, grant: &Grant) -> Result<Metadata, VaultError> {
        let f = self.active_file(&grant.file)?;
        Ok(sealing::metadata(&f.header, &self.config.keys)?)
    }

    /// The bytes of a granted download: plaintext, or for a recipient-bound share the file
    /// still encrypted to the recipients (a fresh header, the unchanged payload).
    ///
    /// # Errors
    /// A view grant, the file gone since the grant, key, sealing or store errors.
    pub fn download(&self, grant: &Grant) -> Result<Download, VaultError> {
        if grant.kind != GrantKind::Download {
            return Err(VaultError::Invalid(
                "a view grant does not allow a download".into(),
            ));
        }
        let f = self.active_file(&grant.file)?;
        let payload = self.open_blob(&f)?;
        if grant.recipients.is_empty() {
            Ok(Download::Plaintext(self.open_plaintext(&f, payload)?))
        } else {
            let header = sealing::bind(
                &f.header,
                &self.config.keys,
                &grant.share,
                &grant.recipients,
            )?;
            Ok(Download::Bound { header, payload })
        }
    }

    // ---------------------------------------------------------------- audit

    /// Verifies the whole audit chain and every stored checkpoint (admin, auditor).
    ///
    /// # Errors
    /// Forbidden, or the first problem found.
    pub fn verify_audit(&self, ctx: &Ctx) -> Result<AuditReport, VaultError> {
        self.require(ctx, Permission::ReadAudit, "audit.verify", "audit")?;
        let r = self.audit.verifier().verify(self.meta.as_ref());
        let outcome = match &r {
            Ok(_) => Outcome::Allowed,
            Err(e) => Outcome::Refused(format!("verification failed: {e}")),
        };
        self.commit(
            vec![],
            vec![],
            ctx.entry("audit.verify", "audit".into(), outcome),
            Durability::Buffered,
        )?;
        r.map_err(|e| VaultError::Invalid(e.to_string()))
    }

    /// Signs the current chain head now (admin, auditor), and exports the log as JSON Lines
    /// through that checkpoint, which is its last line: records appended meanwhile wait for
    /// the next export. Returns the number of lines written.
    ///
    /// # Errors
    /// Forbidden, store or write errors.
    pub fn export_audit(&self, ctx: &Ctx, out: &mut dyn std::io::Write) -> Result<u64, VaultError> {
        self.require(ctx, Permission::ReadAudit, "audit.export", "audit")?;
        self.commit(
            vec![],
            vec![],
            ctx.entry("audit.export", "audit".into(), Outcome::Allowed),
            Durability::Buffered,
        )?;
        let signed = self.audit.checkpoint(self.meta.as_ref(), ctx.now)?;
        let through = signed.map_or(0, |c| c.seq);
        audit::export(self.meta.as_ref(), self.audit.tags(), out, Some(through))
            .map_err(|e| VaultError::Invalid(e.to_string()))
    }

    /// Signs the current chain head and stores the checkpoint.
    ///
    /// # Errors
    /// Store errors.
    pub fn checkpoint(&self, now: Timestamp) -> Result<Option<Checkpoint>, VaultError> {
        Ok(self.audit.checkpoint(self.meta.as_ref(), now)?)
    }
}

/// The vault seed: unwrapped from the store, or, in a new vault, created and stored.
///
/// A seed is created only when both stores are empty. The seed commit is flushed before
/// anything else is written, so no crash leaves data without a seed; a missing seed beside
/// data means the store was damaged or partly restored, and a fresh seed would silently
/// invalidate every token, link and checkpoint.
/// The vault seed, and whether the vault tags its audit records (see [`SEED_AAD`]).
fn load_or_create_seed(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    keys: &KeyRing,
) -> Result<(secrecy::SecretBox<[u8; 32]>, bool), VaultError> {
    if let Some(bytes) = meta.setting(SETTING_SEED)? {
        let w = WrappedSecret::decode(&bytes).map_err(|_| StoreError::Corrupt("seed"))?;
        return match w.unwrap(keys, SEED_AAD) {
            Ok(seed) => Ok((seed, true)),
            Err(kek::UnwrapError::Corrupt) => Ok((w.unwrap(keys, SEED_AAD_UNTAGGED)?, false)),
            Err(e) => Err(e.into()),
        };
    }
    ensure_new_vault(meta, blobs)?;
    let seed: [u8; 32] = types::random_array();
    let w = WrappedSecret::wrap(keys.primary(), &seed, SEED_AAD);
    meta.commit(
        &[Guard::Setting(SETTING_SEED, None)],
        vec![Op::PutSetting(SETTING_SEED, w.encode())],
        Durability::Sync,
    )?;
    Ok((secrecy::SecretBox::new(Box::new(seed)), true))
}

/// Checks that stores without a seed are really new: no user, file or audit record in the
/// metadata store, and no blob (which startup repair would otherwise delete as an orphan).
fn ensure_new_vault(meta: &dyn MetaStore, blobs: &dyn BlobStore) -> Result<(), VaultError> {
    let holds_data = !meta.users()?.is_empty()
        || !meta.files_after(None, 1)?.is_empty()
        || meta.audit_last()?.is_some()
        || !meta.checkpoints()?.is_empty();
    if holds_data {
        return Err(Damage::SeedMissing.into());
    }
    let n = blobs.list()?.len();
    if n > 0 {
        return Err(Damage::MetadataMissing { blobs: n as u64 }.into());
    }
    Ok(())
}

fn is_frozen(v: &Option<Vec<u8>>) -> bool {
    v.as_deref().and_then(|b| b.first()) == Some(&1)
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Vault>();
}

/// The default layout of a data directory.
pub fn data_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    (data_dir.join("meta"), data_dir.join("blobs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(user: UserId, now: Timestamp) -> Ctx {
        Ctx {
            principal: Principal {
                user,
                role: Role::Admin,
                token: None,
            },
            client: String::new(),
            now,
        }
    }

    /// The ranges that make a name look like another (bidirectional controls, zero-width
    /// characters, word joiner and invisible operators, isolates, the BOM, separators, tags)
    /// are refused at both ends; letters of any script, and characters next to the ranges,
    /// are not.
    #[test]
    fn new_user_names_refuse_invisible_formatting_characters() {
        for (lo, hi) in [
            (0x200B, 0x200F),
            (0x202A, 0x202E),
            (0x2060, 0x2064),
            (0x2066, 0x2069),
            (0xFEFF, 0xFEFF),
            (0x2028, 0x2029),
            (0xE0020, 0xE007F),
        ] {
            for cp in [lo, hi] {
                let c = char::from_u32(cp).unwrap();
                let err = check_new_user_name(&format!("al{c}ice")).unwrap_err();
                assert!(err.to_string().contains(&format!("U+{cp:04X}")), "{err}");
                // Names already stored are not re-checked by the lookup rule.
                check_user_name(&format!("al{c}ice")).unwrap();
            }
        }
        for good in [
            "Jürgen",
            "山田",
            "محمد",
            "a\u{200A}b",
            "x\u{2070}",
            "\u{1F600}",
        ] {
            check_new_user_name(good).unwrap();
        }
    }

    /// A file read keeps its opened header for the next read, which serves the same bytes
    /// without it; deleting the file forgets it.
    #[test]
    fn deleting_a_file_forgets_its_opened_header() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp(1_000);
        let keys = KeyRing::new(MasterKey::generate());
        let (v, _) = Vault::open(dir.path(), VaultConfig::new(keys), now).unwrap();
        let (admin, _) = v.bootstrap_admin("root", 3600, now).unwrap();
        let c = ctx(admin, now);
        let meta = Metadata {
            name: "plan.txt".into(),
            ..Metadata::default()
        };
        let [a, b] = [b"the plan", b"the rest"].map(|data| {
            let file = v.upload(&c, &meta, None, &mut &data[..]).unwrap();
            (file, data)
        });
        for _ in 0..2 {
            for (file, data) in [a, b] {
                let mut back = Vec::new();
                v.open_file(&c, &file)
                    .unwrap()
                    .read_to_end(&mut back)
                    .unwrap();
                assert_eq!(back, data);
            }
        }
        assert_eq!(v.opened.len(), 2);
        v.delete_file(&c, &a.0).unwrap();
        assert_eq!(v.opened.len(), 1, "the deleted file's opened header stayed");
        assert!(matches!(
            v.open_file(&c, &a.0),
            Err(VaultError::NotFound(_))
        ));
    }

    /// A vault created before audit record tags (its seed wrapped under the old associated
    /// data) keeps working untagged, through a KEK rotation (which keeps the old associated
    /// data) and a restart; a new vault tags every record. Neither can be taken for the other.
    #[test]
    fn a_vault_from_before_record_tags_stays_untagged() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = ([5u8; 32], [6u8; 32]);
        {
            let meta = SledMetaStore::open(&dir.path().join("meta"), None).unwrap();
            let w = WrappedSecret::wrap(&MasterKey::from_bytes(old), &[7; 32], SEED_AAD_UNTAGGED);
            meta.commit(
                &[],
                vec![Op::PutSetting(SETTING_SEED, w.encode())],
                Durability::Sync,
            )
            .unwrap();
        }
        let now = Timestamp(1_000);
        let open = |ring| {
            Vault::open(dir.path(), VaultConfig::new(ring), now)
                .unwrap()
                .0
        };
        let v = open(KeyRing::new(MasterKey::from_bytes(old)));
        assert!(!v.audit.tags().tagged());
        let (admin, _) = v.bootstrap_admin("root", 3600, now).unwrap();
        // Stored as before tags: the body, then its chain hash.
        let (seq, bytes) = v.meta().audit_last().unwrap().unwrap();
        let body = v.audit_verifier().record(seq, &bytes).unwrap().body();
        assert_eq!(bytes.len(), body.len() + 32);
        drop(v);
        let ring = KeyRing::new(MasterKey::from_bytes(new)).with_old(MasterKey::from_bytes(old));
        let v = open(ring);
        assert!(v.rotate_kek(&ctx(admin, now)).unwrap().seed_rewrapped);
        drop(v);
        let v = open(KeyRing::new(MasterKey::from_bytes(new)));
        assert!(
            !v.audit.tags().tagged(),
            "the rotation kept the vault untagged"
        );
        v.audit_verifier().verify(v.meta()).unwrap();

        // A new vault tags its records.
        let fresh = tempfile::tempdir().unwrap();
        let (v, _) = Vault::open(
            fresh.path(),
            VaultConfig::new(KeyRing::new(MasterKey::from_bytes(old))),
            now,
        )
        .unwrap();
        assert!(v.audit.tags().tagged());
        let (seq, bytes) = v.meta().audit_last().unwrap().unwrap();
        let body = v.audit_verifier().record(seq, &bytes).unwrap().body();
        assert_eq!(bytes.len(), body.len() + 64);
    }
}
