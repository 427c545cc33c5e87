//! The two storage seams: metadata ([`MetaStore`]) and blobs ([`BlobStore`]).
//!
//! Policy code (users, shares, audit, sweeper) talks only to these traits. The embedded
//! defaults are [`SledMetaStore`](super::SledMetaStore) and [`FsBlobStore`](super::FsBlobStore);
//! the traits are shaped so that a PostgreSQL metadata store and an S3-compatible blob store
//! fit without touching policy:
//!
//! * every change is one [`MetaStore::commit`] of typed [`Op`]s under [`Guard`]s (record
//!   versions, a free user name, the next audit sequence number). PostgreSQL runs it as one
//!   transaction (`UPDATE … WHERE version = $v`, `INSERT` on the audit table's primary key);
//!   sled checks the guards and applies one atomic batch.
//! * secondary indexes (shares by file and by owner, the expiry index, user names) are the
//!   store's business: `Op::PutShare` means "this share and its index entries".
//! * blobs are written through a [`BlobWriter`] that publishes atomically on
//!   [`BlobWriter::commit`] (a rename locally; completing a multipart upload on S3).

use std::fmt;
use std::io::{self, Read, Seek, Write};

use super::model::{ExpiryEntry, FileRecord, ShareRecord, TokenRecord, UserRecord};
use super::types::{FileId, ShareId, Timestamp, TokenId, UserId};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A guard did not hold: someone else changed the record first. Re-read and retry.
    #[error("concurrent update; retry")]
    Conflict,
    /// The backend failed (disk full, I/O error, connection lost).
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// The backend returned bytes that are not a record this code wrote.
    #[error("stored record is corrupt: {0}")]
    Corrupt(&'static str),
    /// Blob I/O failed.
    #[error("blob I/O failed: {0}")]
    Io(#[from] io::Error),
    /// The commit **was applied** (readers see it, the audit chain includes it) but flushing
    /// it to stable storage failed, so a crash may still lose it. Unlike every other error
    /// this one does not mean "nothing happened": a caller must not undo what it prepared for
    /// the commit (an upload's blob) as if the commit had not taken place.
    #[error("committed but not yet durable: {0}")]
    NotDurable(String),
}

impl StoreError {
    /// The error of a commit that was applied and then failed to flush.
    pub(crate) fn not_durable(flush_error: StoreError) -> StoreError {
        StoreError::NotDurable(flush_error.to_string())
    }

    /// Whether the failed operation's change was nevertheless applied
    /// ([`StoreError::NotDurable`]).
    pub fn was_applied(&self) -> bool {
        matches!(self, StoreError::NotDurable(_))
    }
}

/// A precondition of a [`MetaStore::commit`]; all must hold or nothing is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// The user exists with this version (`None`: does not exist).
    User(UserId, Option<u64>),
    /// The file exists with this version (`None`: does not exist).
    File(FileId, Option<u64>),
    /// The share exists with this version (`None`: does not exist).
    Share(ShareId, Option<u64>),
    /// The token exists (not revoked or deleted).
    Token(TokenId),
    /// No user has this name.
    UserNameFree(String),
    /// No audit record has this sequence number yet.
    AuditFree(u64),
    /// The named setting has exactly this value (`None`: unset).
    Setting(&'static str, Option<Vec<u8>>),
}

/// One write of a [`MetaStore::commit`].
#[derive(Debug, Clone)]
pub enum Op {
    /// Insert or replace a user (and its name index entry; names never change).
    PutUser(UserRecord),
    /// Insert or replace a token (and its by-user index entry).
    PutToken(TokenRecord),
    /// Delete a token and its index entry.
    DeleteToken(TokenRecord),
    /// Insert or replace a file, its by-owner index entry and its expiry entry (owner and
    /// retention end never change).
    PutFile(FileRecord),
    /// Delete a file record and its index and expiry entries.
    DeleteFile(FileRecord),
    /// Insert or replace a share and its index entries (by file, by owner, expiry).
    PutShare(ShareRecord),
    /// Replace an existing share whose file, owner and expiry are unchanged (a counter, a
    /// revocation): the index entries stay as they are, so only the record is written.
    UpdateShare(ShareRecord),
    /// Revoke a share as a read-modify-write inside the commit (no version guard needed, so a
    /// revocation never starves behind a stream of downloads): sets `revoked` to the time if
    /// unset and bumps the version, which makes every in-flight decision on the share retry.
    /// A missing share is skipped.
    RevokeShare(ShareId, Timestamp),
    /// Delete a share and its index entries.
    DeleteShare(ShareRecord),
    /// Delete every share the file has at the moment the commit applies, with their index
    /// entries: the set is read inside the commit, not guarded by share versions, so a stream
    /// of downloads (each bumping a share's version) cannot starve a file's deletion, and a
    /// share created after the caller listed them is deleted too. Every in-flight decision
    /// on a deleted share then fails its `Guard::Share(id, Some(v))` (the share is gone),
    /// re-reads and is refused.
    DeleteSharesOfFile(FileId),
    /// Revoke (as [`Op::RevokeShare`]) every share of the user's files and every share the
    /// user created of others' files, as they are at the moment the commit applies: the set is
    /// read inside the commit, so a share created after the caller listed them is revoked too.
    RevokeSharesOfUser(UserId, Timestamp),
    /// Revoke (as [`Op::RevokeShare`]) every share the file has at the moment the commit
    /// applies: the set is read inside the commit, so a share created after the caller listed
    /// them is revoked too.
    RevokeSharesOfFile(FileId, Timestamp),
    /// Remove one expiry index entry (a stale one: its record is already gone).
    DeleteExpiry(ExpiryEntry),
    /// Set a named setting.
    PutSetting(&'static str, Vec<u8>),
    /// Append one encoded audit record at `seq`.
    AppendAudit(u64, Vec<u8>),
    /// Store a signed checkpoint for the audit record `seq`.
    PutCheckpoint(u64, Vec<u8>),
}

/// Whether a commit must be on stable storage before `commit` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Flushed (fsync) before returning.
    Sync,
    /// Written to the store's log; reaches the disk with the next flush (sled: its periodic
    /// flush, at most `flush_every_ms` later, or any later `Sync` commit).
    Buffered,
}

/// The result of scanning the expiry index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredScan {
    /// Entries with `at <= now`, oldest first.
    pub entries: Vec<ExpiryEntry>,
    /// How many index entries the scan read (for the cost bound: equals `entries.len()`).
    pub visited: u64,
}

/// The metadata store.
pub trait MetaStore: Send + Sync + fmt::Debug {
    /// Checks every guard, then applies every op, atomically: either all ops are written or
    /// none is. One relaxation is allowed, for the link decision's hot path: a commit of
    /// exactly one [`Op::AppendAudit`] and one [`Op::UpdateShare`] may, after a crash, have
    /// left the audit record without the share update (never the update without its record).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when a guard fails; [`StoreError::NotDurable`] when the ops
    /// were applied but a [`Durability::Sync`] flush failed; backend errors otherwise.
    fn commit(
        &self,
        guards: &[Guard],
        ops: Vec<Op>,
        durability: Durability,
    ) -> Result<(), StoreError>;

    /// Forces everything committed so far onto stable storage.
    ///
    /// # Errors
    /// Backend errors.
    fn flush(&self) -> Result<(), StoreError>;

    /// A user by id.
    ///
    /// # Errors
    /// Backend errors.
    fn user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError>;
    /// A user by name.
    ///
    /// # Errors
    /// Backend errors.
    fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Every user.
    ///
    /// # Errors
    /// Backend errors.
    fn users(&self) -> Result<Vec<UserRecord>, StoreError>;
    /// A token by id.
    ///
    /// # Errors
    /// Backend errors.
    fn token(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError>;
    /// The tokens of a user.
    ///
    /// # Errors
    /// Backend errors.
    fn tokens_of(&self, user: &UserId) -> Result<Vec<TokenRecord>, StoreError>;
    /// A file by id.
    ///
    /// # Errors
    /// Backend errors.
    fn file(&self, id: &FileId) -> Result<Option<FileRecord>, StoreError>;
    /// Up to `limit` files with ids greater than `after`, in id order (for paging through
    /// everything: KEK rotation, orphan checks).
    ///
    /// # Errors
    /// Backend errors.
    fn files_after(
        &self,
        after: Option<&FileId>,
        limit: usize,
    ) -> Result<Vec<FileRecord>, StoreError>;
    /// Ids of the files a user owns (including shredded tombstones not yet purged).
    ///
    /// # Errors
    /// Backend errors.
    fn files_of_user(&self, user: &UserId) -> Result<Vec<FileId>, StoreError>;
    /// A share by id.
    ///
    /// # Errors
    /// Backend errors.
    fn share(&self, id: &ShareId) -> Result<Option<ShareRecord>, StoreError>;
    /// Ids of the shares of a file.
    ///
    /// # Errors
    /// Backend errors.
    fn shares_of_file(&self, file: &FileId) -> Result<Vec<ShareId>, StoreError>;
    /// Ids of the shares of a user's files.
    ///
    /// # Errors
    /// Backend errors.
    fn shares_of_user(&self, user: &UserId) -> Result<Vec<ShareId>, StoreError>;
    /// Ids of the shares a user created of other users' files (an admin acting for them).
    ///
    /// # Errors
    /// Backend errors.
    fn shares_created_for_others(&self, user: &UserId) -> Result<Vec<ShareId>, StoreError>;
    /// Up to `limit` expiry entries with `at <= now`, oldest first. The cost is proportional
    /// to the entries returned, never to the size of the index.
    ///
    /// # Errors
    /// Backend errors.
    fn expired(&self, now: Timestamp, limit: usize) -> Result<ExpiredScan, StoreError>;
    /// A named setting.
    ///
    /// # Errors
    /// Backend errors.
    fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The audit record with the highest sequence number.
    ///
    /// # Errors
    /// Backend errors.
    fn audit_last(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError>;
    /// Up to `limit` audit records with sequence numbers `>= from`, in order.
    ///
    /// # Errors
    /// Backend errors.
    fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// Every stored checkpoint, in sequence order.
    ///
    /// # Errors
    /// Backend errors.
    fn checkpoints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
}

/// A readable, seekable stored blob.
pub trait BlobRead: Read + Seek + Send + fmt::Debug {}
impl<T: Read + Seek + Send + fmt::Debug> BlobRead for T {}

/// A blob being written. Nothing is visible under the blob's name until
/// [`BlobWriter::commit`] returns; dropping the writer without committing discards it.
pub trait BlobWriter: Write + Send + fmt::Debug {
    /// Makes the written bytes durable and publishes them under the blob's name, atomically.
    ///
    /// # Errors
    /// I/O errors; the blob is then not published.
    fn commit(self: Box<Self>) -> Result<u64, StoreError>;
}

/// The blob store (envelope payloads).
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Starts writing the blob `id` under a temporary name.
    ///
    /// # Errors
    /// I/O errors.
    fn create(&self, id: &FileId) -> Result<Box<dyn BlobWriter>, StoreError>;
    /// Opens a published blob.
    ///
    /// # Errors
    /// I/O errors, including not found.
    fn open(&self, id: &FileId) -> Result<Box<dyn BlobRead>, StoreError>;
    /// Whether a published blob exists.
    ///
    /// # Errors
    /// I/O errors.
    fn exists(&self, id: &FileId) -> Result<bool, StoreError>;
    /// Deletes a blob durably. Deleting a missing blob is not an error (deletes are retried
    /// after a crash).
    ///
    /// # Errors
    /// I/O errors.
    fn delete(&self, id: &FileId) -> Result<(), StoreError>;
    /// Every published blob (for orphan repair at startup).
    ///
    /// # Errors
    /// I/O errors.
    fn list(&self) -> Result<Vec<FileId>, StoreError>;
    /// Removes temporaries left by interrupted writes; returns how many. Called at startup,
    /// before any writer exists.
    ///
    /// # Errors
    /// I/O errors.
    fn remove_temporaries(&self) -> Result<u64, StoreError>;
}
