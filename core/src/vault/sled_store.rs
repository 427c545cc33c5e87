//! [`MetaStore`] on sled 0.34: one tree, keys prefixed by record kind.
//!
//! | prefix | key                      | value                |
//! |--------|--------------------------|----------------------|
//! | `u`    | user id                  | user record          |
//! | `n`    | user name                | user id              |
//! | `t`    | token id                 | token record         |
//! | `T`    | user id, token id        | (empty)              |
//! | `f`    | file id                  | file record          |
//! | `F`    | owner id, file id        | (empty)              |
//! | `s`    | share id                 | share record         |
//! | `S`    | file id, share id        | (empty)              |
//! | `O`    | owner id, share id       | (empty)              |
//! | `C`    | creator id, share id     | (empty); only for a share created by another user than its owner |
//! | `x`    | at (u64 BE), kind, id    | (empty)              |
//! | `c`    | setting name             | setting bytes        |
//! | `a`    | seq (u64 BE)             | audit record         |
//! | `k`    | seq (u64 BE)             | signed checkpoint    |
//!
//! A commit checks its guards and applies one `sled::Batch` while holding the store's commit
//! lock. sled keeps an exclusive lock on its directory, so this process is the only writer and
//! the lock makes commits serializable; a batch is applied atomically and recovered
//! atomically after a crash. The one exception is the link decision's commit (an audit record,
//! alone or with a share counter), written as single-key inserts, audit record first: see
//! [`audit_first`].
//!
//! Being the only writer also lets the store keep copies in memory, written through by the
//! commits under the commit lock: every setting, the highest audit sequence number, and the
//! user, file and share records read recently (a bounded cache: see `ReadCache`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use super::model::{ExpiryEntry, FileRecord, ShareRecord, TokenRecord, UserRecord};
use super::store::{Durability, ExpiredScan, Guard, MetaStore, Op, StoreError};
use super::types::{FileId, ShareId, Timestamp, TokenId, UserId};

/// sled's page cache size.
const CACHE_BYTES: u64 = 32 << 20;

/// How many user, file and share records the store's read cache holds before it starts over.
const READ_CACHE_ENTRIES: usize = 16_384;

/// The embedded metadata store.
pub struct SledMetaStore {
    db: sled::Db,
    tree: sled::Tree,
    commit_lock: Mutex<()>,
    /// Every setting (`c` records), read at open and updated by the commits that write them,
    /// under the commit lock. Every link decision reads and guards the freeze setting: from
    /// sled, those two reads took about 5% of the server's CPU under a stream of 1 KiB link
    /// downloads (the setting's leaf is the one the audit records are appended to, so the
    /// reads paid for its splits).
    settings: RwLock<HashMap<String, Vec<u8>>>,
    /// The highest audit sequence number stored (0: none), kept like `settings`: a guard
    /// that the next record's number is free needs no read.
    audit_max: AtomicU64,
    /// Recently read user, file and share records (see [`SledMetaStore::get`]).
    cache: RwLock<ReadCache>,
    /// Where the database lives (all its `Debug` shows).
    dir: PathBuf,
}

/// Copies of stored user, file and share records, by sled key. A link decision reads a share,
/// its file and its owner, then guards the share: from sled, those reads took about a tenth of
/// the server's CPU under a stream of small link downloads.
///
/// Kept true to sled by the commits, under the commit lock: a link decision's commit puts the
/// share it wrote; any other commit empties the cache and counts a new generation. A read that
/// missed fills the cache only if no commit emptied it meanwhile, and never over an entry a
/// commit put there in the meantime.
#[derive(Default)]
struct ReadCache {
    entries: HashMap<Vec<u8>, sled::IVec>,
    generation: u64,
}

impl ReadCache {
    /// Empties the cache; fills begun before this are dropped.
    fn clear(&mut self) {
        self.entries.clear();
        self.generation += 1;
    }
}

/// Only the directory: sled 0.34's own `Debug` for `Db` and `Tree` prints every key and
/// value (the wrapped seed, file headers, token and link hashes, the audit log), and a
/// `Vault` (which holds this store) is the kind of value that ends up in a log line.
impl fmt::Debug for SledMetaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledMetaStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The sled tree that holds every record of the store.
const TREE: &str = "kinko-meta-v1";

/// Opens the sled database under `dir` as the store does.
///
/// sled's background writer threads of a just-dropped instance (this process, or one being
/// restarted) can hold the directory lock for a moment after the drop: the lock is retried for
/// up to ~2 s before the directory is reported as busy.
fn open_db(dir: &Path, flush_every_ms: Option<u64>) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(dir)
        .flush_every_ms(flush_every_ms)
        .mode(sled::Mode::HighThroughput)
        // sled's default page cache is 1 GiB, and every audit record passes through it: under
        // a stream of downloads the process grew by ~40 MiB per 100k records. Everything hot
        // (users, tokens, shares, the audit head) fits in far less.
        .cache_capacity(CACHE_BYTES);
    let mut attempts = 0;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if attempts < 100 && e.to_string().contains("could not acquire lock") =>
            {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(backend(e)),
        }
    }
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn expiry_key(e: &ExpiryEntry) -> Vec<u8> {
    key(b'x', &[&e.key()])
}

fn version_of<T>(
    raw: Option<sled::IVec>,
    decode: fn(&[u8]) -> super::codec::Result<T>,
    version: fn(&T) -> u64,
    what: &'static str,
) -> Result<Option<u64>, StoreError> {
    raw.map(|v| {
        decode(&v)
            .map(|r| version(&r))
            .map_err(|_| StoreError::Corrupt(what))
    })
    .transpose()
}

impl SledMetaStore {
    /// Opens (or creates) the store in `dir`. `flush_every_ms` bounds how long a
    /// [`Durability::Buffered`] commit may stay only in memory (sled's background flusher).
    ///
    /// # Errors
    /// sled could not open the directory (for example another process holds it).
    pub fn open(dir: &Path, flush_every_ms: Option<u64>) -> Result<SledMetaStore, StoreError> {
        let db = open_db(dir, flush_every_ms)?;
        let tree = db.open_tree(TREE).map_err(backend)?;
        let settings = tree
            .scan_prefix(b"c")
            .map(|kv| {
                let (k, v) = kv.map_err(backend)?;
                let name = String::from_utf8(k[1..].to_vec())
                    .map_err(|_| StoreError::Corrupt("setting name"))?;
                Ok((name, v.to_vec()))
            })
            .collect::<Result<_, StoreError>>()?;
        let store = SledMetaStore {
            db,
            tree,
            commit_lock: Mutex::new(()),
            settings: RwLock::new(settings),
            audit_max: AtomicU64::new(0),
            cache: RwLock::new(ReadCache::default()),
            dir: dir.to_path_buf(),
        };
        let max = store.audit_last()?.map_or(0, |(seq, _)| seq);
        store.audit_max.store(max, Ordering::Relaxed);
        Ok(store)
    }

    /// Notes that the audit record `seq` was stored. Call under the commit lock.
    fn stored_audit(&self, seq: u64) {
        self.audit_max.fetch_max(seq, Ordering::Relaxed);
    }

    /// The raw sled tree of the store in `dir`, opened as [`SledMetaStore::open`] opens it,
    /// for tests and repair tools that edit records below the store. Nothing written through it
    /// is checked; the database closes when the last clone of the tree is dropped.
    ///
    /// # Errors
    /// sled could not open the directory (for example another process holds it).
    #[doc(hidden)]
    pub fn open_raw_tree(dir: &Path) -> Result<sled::Tree, StoreError> {
        open_db(dir, None)?.open_tree(TREE).map_err(backend)
    }

    /// A record by key; users, files and shares through the read cache.
    fn get(&self, k: &[u8]) -> Result<Option<sled::IVec>, StoreError> {
        if !matches!(k.first(), Some(b'u' | b'f' | b's')) {
            return self.tree.get(k).map_err(backend);
        }
        let generation = {
            let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(v) = cache.entries.get(k) {
                return Ok(Some(v.clone()));
            }
            cache.generation
        };
        let v = self.tree.get(k).map_err(backend)?;
        if let Some(v) = &v {
            self.fill(k, v, generation);
        }
        Ok(v)
    }

    /// Caches `v`, read from sled under `k` while the cache was at `generation`.
    fn fill(&self, k: &[u8], v: &sled::IVec, generation: u64) {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.generation != generation {
            return; // a commit emptied the cache since the read: `v` may be older
        }
        if cache.entries.len() >= READ_CACHE_ENTRIES {
            // Starting over also drops entries that commits put: this read may be older than
            // those, so it does not fill the emptied cache either.
            cache.clear();
        } else {
            // An entry there now was put by a commit after the read: it is the newer.
            cache.entries.entry(k.to_vec()).or_insert_with(|| v.clone());
        }
    }

    fn check(&self, guard: &Guard) -> Result<bool, StoreError> {
        Ok(match guard {
            Guard::User(id, v) => {
                version_of(
                    self.get(&key(b'u', &[&id.0]))?,
                    UserRecord::decode,
                    |r| r.version,
                    "user",
                )? == *v
            }
            Guard::File(id, v) => {
                version_of(
                    self.get(&key(b'f', &[&id.0]))?,
                    FileRecord::decode,
                    |r| r.version,
                    "file",
                )? == *v
            }
            Guard::Share(id, v) => {
                version_of(
                    self.get(&key(b's', &[&id.0]))?,
                    ShareRecord::decode,
                    |r| r.version,
                    "share",
                )? == *v
            }
            Guard::Token(id) => self.get(&key(b't', &[&id.0]))?.is_some(),
            Guard::UserNameFree(name) => self.get(&key(b'n', &[name.as_bytes()]))?.is_none(),
            Guard::AuditFree(seq) => {
                *seq > self.audit_max.load(Ordering::Relaxed)
                    || self.get(&key(b'a', &[&seq.to_be_bytes()]))?.is_none()
            }
            Guard::Setting(name, v) => self.setting(name)?.as_deref() == v.as_deref(),
        })
    }

    /// [`StoreError::Conflict`] unless every guard holds. Call under the commit lock.
    fn check_all(&self, guards: &[Guard]) -> Result<(), StoreError> {
        for g in guards {
            if !self.check(g)? {
                return Err(StoreError::Conflict);
            }
        }
        Ok(())
    }

    fn decode_all<T>(
        &self,
        prefix: &[u8],
        decode: fn(&[u8]) -> super::codec::Result<T>,
        what: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        self.tree
            .scan_prefix(prefix)
            .map(|kv| {
                let (_, v) = kv.map_err(backend)?;
                decode(&v).map_err(|_| StoreError::Corrupt(what))
            })
            .collect()
    }

    /// Adds to `batch` the removal of every share `file` has now, with its index entries.
    /// Call under the commit lock, so the set cannot change before the batch applies.
    fn remove_shares_of_file(
        &self,
        batch: &mut sled::Batch,
        file: &FileId,
    ) -> Result<(), StoreError> {
        for id in self.shares_of_file(file)? {
            match self.share(&id)? {
                Some(s) => remove_share(batch, &s),
                // An index entry without its record (never written so): drop the entry.
                None => batch.remove(key(b'S', &[&file.0, &id.0])),
            }
        }
        Ok(())
    }

    fn index_ids<T>(&self, prefix: &[u8], make: fn([u8; 16]) -> T) -> Result<Vec<T>, StoreError> {
        self.tree
            .scan_prefix(prefix)
            .map(|kv| {
                let (k, _) = kv.map_err(backend)?;
                let id: [u8; 16] = k[prefix.len()..]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("index"))?;
                Ok(make(id))
            })
            .collect()
    }
}

/// Adds to `batch` the removal of a share and its index entries. The indexed fields (file,
/// owner, expiry) never change, so any version of the record names the same keys.
fn remove_share(batch: &mut sled::Batch, s: &ShareRecord) {
    batch.remove(key(b'S', &[&s.file.0, &s.id.0]));
    batch.remove(key(b'O', &[&s.owner.0, &s.id.0]));
    if s.creator != s.owner {
        batch.remove(key(b'C', &[&s.creator.0, &s.id.0]));
    }
    batch.remove(expiry_key(&s.expiry_entry()));
    batch.remove(key(b's', &[&s.id.0]));
}

/// The writes of a commit that is one audit record, alone or with one share counter update
/// (a link decision: the hot path), audit record first. They are applied as single-key
/// inserts instead of a `sled::Batch`: sled 0.34 writes out its log buffer twice for every
/// batch (`pin_log` rolls the buffer before and after the batch's manifest), which cost more
/// than the decision itself. sled recovers a prefix of its log, so after a crash such a
/// commit left nothing, the audit record alone, or both; never the counter without its
/// record.
/// Key-value writes, in order.
type Writes = Vec<(Vec<u8>, Vec<u8>)>;

/// The sequence number of an audit record's key (`None`: not an audit key).
fn audit_seq(k: &[u8]) -> Option<u64> {
    match k {
        [b'a', seq @ ..] => Some(u64::from_be_bytes(seq.try_into().ok()?)),
        _ => None,
    }
}

fn audit_first(ops: Vec<Op>) -> Result<Writes, Vec<Op>> {
    if !matches!(
        ops.as_slice(),
        [Op::AppendAudit(..)]
            | [Op::UpdateShare(_), Op::AppendAudit(..)]
            | [Op::AppendAudit(..), Op::UpdateShare(_)]
    ) {
        return Err(ops);
    }
    let mut writes: Vec<_> = ops
        .into_iter()
        .map(|op| match op {
            Op::AppendAudit(seq, rec) => (key(b'a', &[&seq.to_be_bytes()]), rec),
            Op::UpdateShare(s) => (key(b's', &[&s.id.0]), s.encode()),
            _ => unreachable!("the shape was checked above"),
        })
        .collect();
    writes.sort_by_key(|(k, _)| k[0] != b'a'); // the audit record first
    Ok(writes)
}

impl Drop for SledMetaStore {
    fn drop(&mut self) {
        // A clean shutdown leaves nothing to recover (a failed flush is what a crash is).
        let _ = self.db.flush();
    }
}

impl MetaStore for SledMetaStore {
    fn commit(
        &self,
        guards: &[Guard],
        ops: Vec<Op>,
        durability: Durability,
    ) -> Result<(), StoreError> {
        let ops = match audit_first(ops) {
            Err(ops) => ops,
            Ok(writes) => {
                {
                    let _serial = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
                    self.check_all(guards)?;
                    for (k, v) in writes {
                        let seq = audit_seq(&k);
                        let v = sled::IVec::from(v);
                        self.tree.insert(k.as_slice(), v.clone()).map_err(backend)?;
                        match seq {
                            Some(seq) => self.stored_audit(seq),
                            None => {
                                let mut cache =
                                    self.cache.write().unwrap_or_else(PoisonError::into_inner);
                                cache.entries.insert(k, v);
                            }
                        }
                    }
                }
                if durability == Durability::Sync {
                    self.flush().map_err(StoreError::not_durable)?;
                }
                return Ok(());
            }
        };
        let mut batch = sled::Batch::default();
        let mut revokes = Vec::new();
        let mut emptied_files = Vec::new();
        let mut revoked_users = Vec::new();
        let mut revoked_files = Vec::new();
        let mut settings = Vec::new();
        let mut audit_max = None;
        for op in ops {
            match op {
                Op::RevokeShare(id, at) => revokes.push((id, at)),
                Op::DeleteSharesOfFile(file) => emptied_files.push(file),
                Op::RevokeSharesOfUser(user, at) => revoked_users.push((user, at)),
                Op::RevokeSharesOfFile(file, at) => revoked_files.push((file, at)),
                Op::PutUser(u) => {
                    batch.insert(key(b'n', &[u.name.as_bytes()]), &u.id.0[..]);
                    batch.insert(key(b'u', &[&u.id.0]), u.encode());
                }
                Op::PutToken(t) => {
                    batch.insert(key(b'T', &[&t.user.0, &t.id.0]), &[][..]);
                    batch.insert(key(b't', &[&t.id.0]), t.encode());
                }
                Op::DeleteToken(t) => {
                    batch.remove(key(b'T', &[&t.user.0, &t.id.0]));
                    batch.remove(key(b't', &[&t.id.0]));
                }
                Op::PutFile(f) => {
                    batch.insert(key(b'F', &[&f.owner.0, &f.id.0]), &[][..]);
                    batch.insert(expiry_key(&f.expiry_entry()), &[][..]);
                    batch.insert(key(b'f', &[&f.id.0]), f.encode());
                }
                Op::DeleteFile(f) => {
                    batch.remove(key(b'F', &[&f.owner.0, &f.id.0]));
                    batch.remove(expiry_key(&f.expiry_entry()));
                    batch.remove(key(b'f', &[&f.id.0]));
                }
                Op::PutShare(s) => {
                    batch.insert(key(b'S', &[&s.file.0, &s.id.0]), &[][..]);
                    batch.insert(key(b'O', &[&s.owner.0, &s.id.0]), &[][..]);
                    if s.creator != s.owner {
                        batch.insert(key(b'C', &[&s.creator.0, &s.id.0]), &[][..]);
                    }
                    batch.insert(expiry_key(&s.expiry_entry()), &[][..]);
                    batch.insert(key(b's', &[&s.id.0]), s.encode());
                }
                Op::UpdateShare(s) => batch.insert(key(b's', &[&s.id.0]), s.encode()),
                Op::DeleteShare(s) => remove_share(&mut batch, &s),
                Op::DeleteExpiry(e) => batch.remove(expiry_key(&e)),
                Op::PutSetting(name, v) => {
                    batch.insert(key(b'c', &[name.as_bytes()]), v.as_slice());
                    settings.push((name, v));
                }
                Op::AppendAudit(seq, rec) => {
                    batch.insert(key(b'a', &[&seq.to_be_bytes()]), rec);
                    audit_max = audit_max.max(Some(seq));
                }
                Op::PutCheckpoint(seq, c) => batch.insert(key(b'k', &[&seq.to_be_bytes()]), c),
            }
        }
        {
            let _serial = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
            self.check_all(guards)?;
            for (user, at) in revoked_users {
                let shares = [
                    self.shares_of_user(&user)?,
                    self.shares_created_for_others(&user)?,
                ];
                revokes.extend(shares.into_iter().flatten().map(|id| (id, at)));
            }
            for (file, at) in revoked_files {
                revokes.extend(self.shares_of_file(&file)?.into_iter().map(|id| (id, at)));
            }
            for (id, at) in revokes {
                if let Some(mut s) = self.share(&id)? {
                    if s.revoked.is_none() {
                        s.revoked = Some(at);
                    }
                    s.version += 1;
                    batch.insert(key(b's', &[&id.0]), s.encode());
                }
            }
            for file in emptied_files {
                self.remove_shares_of_file(&mut batch, &file)?;
            }
            let applied = self.tree.apply_batch(batch).map_err(backend);
            // Emptied even if sled failed part-way: what it holds now is unknown.
            self.cache
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            applied?;
            if !settings.is_empty() {
                let mut cached = self
                    .settings
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                for (name, v) in settings {
                    cached.insert(name.to_owned(), v);
                }
            }
            audit_max.inspect(|&seq| self.stored_audit(seq));
        }
        if durability == Durability::Sync {
            self.flush().map_err(StoreError::not_durable)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(backend)
    }

    fn user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        self.get(&key(b'u', &[&id.0]))?
            .map(|v| UserRecord::decode(&v).map_err(|_| StoreError::Corrupt("user")))
            .transpose()
    }

    fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        match self.get(&key(b'n', &[name.as_bytes()]))? {
            None => Ok(None),
            Some(id) => {
                let id: [u8; 16] = id
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("name"))?;
                self.user(&UserId(id))
            }
        }
    }

    fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.decode_all(b"u", UserRecord::decode, "user")
    }

    fn token(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        self.get(&key(b't', &[&id.0]))?
            .map(|v| TokenRecord::decode(&v).map_err(|_| StoreError::Corrupt("token")))
            .transpose()
    }

    fn tokens_of(&self, user: &UserId) -> Result<Vec<TokenRecord>, StoreError> {
        let ids = self.index_ids(&key(b'T', &[&user.0]), TokenId)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(t) = self.token(&id)? {
                out.push(t);
            }
        }
        Ok(out)
    }

    fn file(&self, id: &FileId) -> Result<Option<FileRecord>, StoreError> {
        self.get(&key(b'f', &[&id.0]))?
            .map(|v| FileRecord::decode(&v).map_err(|_| StoreError::Corrupt("file")))
            .transpose()
    }

    fn files_after(
        &self,
        after: Option<&FileId>,
        limit: usize,
    ) -> Result<Vec<FileRecord>, StoreError> {
        let start = match after {
            // The first key strictly after `f || id`.
            Some(id) => {
                let mut k = key(b'f', &[&id.0]);
                k.push(0);
                k
            }
            None => vec![b'f'],
        };
        self.tree
            .range(start..vec![b'f' + 1])
            .take(limit)
            .map(|kv| {
                let (_, v) = kv.map_err(backend)?;
                FileRecord::decode(&v).map_err(|_| StoreError::Corrupt("file"))
            })
            .collect()
    }

    fn files_of_user(&self, user: &UserId) -> Result<Vec<FileId>, StoreError> {
        self.index_ids(&key(b'F', &[&user.0]), FileId)
    }

    fn share(&self, id: &ShareId) -> Result<Option<ShareRecord>, StoreError> {
        self.get(&key(b's', &[&id.0]))?
            .map(|v| ShareRecord::decode(&v).map_err(|_| StoreError::Corrupt("share")))
            .transpose()
    }

    fn shares_of_file(&self, file: &FileId) -> Result<Vec<ShareId>, StoreError> {
        self.index_ids(&key(b'S', &[&file.0]), ShareId)
    }

    fn shares_of_user(&self, user: &UserId) -> Result<Vec<ShareId>, StoreError> {
        self.index_ids(&key(b'O', &[&user.0]), ShareId)
    }

    fn shares_created_for_others(&self, user: &UserId) -> Result<Vec<ShareId>, StoreError> {
        self.index_ids(&key(b'C', &[&user.0]), ShareId)
    }

    fn expired(&self, now: Timestamp, limit: usize) -> Result<ExpiredScan, StoreError> {
        // Keys `x || at || ...` with at <= now are exactly those below `x || (now + 1)`.
        let end = match now.0.checked_add(1) {
            Some(n) => key(b'x', &[&n.to_be_bytes()]),
            None => vec![b'x' + 1],
        };
        let mut entries = Vec::new();
        let mut visited = 0;
        for kv in self.tree.range(vec![b'x']..end).take(limit) {
            let (k, _) = kv.map_err(backend)?;
            visited += 1;
            entries.push(ExpiryEntry::from_key(&k[1..]).ok_or(StoreError::Corrupt("expiry"))?);
        }
        Ok(ExpiredScan { entries, visited })
    }

    fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let cached = self.settings.read().unwrap_or_else(PoisonError::into_inner);
        Ok(cached.get(name).cloned())
    }

    fn audit_last(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        match self.tree.scan_prefix(b"a").next_back() {
            None => Ok(None),
            Some(kv) => {
                let (k, v) = kv.map_err(backend)?;
                let seq = u64::from_be_bytes(
                    k[1..]
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("audit key"))?,
                );
                Ok(Some((seq, v.to_vec())))
            }
        }
    }

    fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.tree
            .range(key(b'a', &[&from.to_be_bytes()])..vec![b'a' + 1])
            .take(limit)
            .map(|kv| {
                let (k, v) = kv.map_err(backend)?;
                let seq = u64::from_be_bytes(
                    k[1..]
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("audit key"))?,
                );
                Ok((seq, v.to_vec()))
            })
            .collect()
    }

    fn checkpoints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.tree
            .scan_prefix(b"k")
            .map(|kv| {
                let (k, v) = kv.map_err(backend)?;
                let seq = u64::from_be_bytes(
                    k[1..]
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("checkpoint key"))?,
                );
                Ok((seq, v.to_vec()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(s: &SledMetaStore, guards: &[Guard], ops: Vec<Op>) -> Result<(), StoreError> {
        s.commit(guards, ops, Durability::Buffered)
    }

    fn conflicts(r: Result<(), StoreError>) -> bool {
        matches!(r, Err(StoreError::Conflict))
    }

    /// The settings and the highest audit number, which the store keeps in memory, follow
    /// every commit and survive a reopen; the guards on them hold and fail as on sled's
    /// records.
    #[test]
    fn settings_and_audit_numbers_follow_commits_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledMetaStore::open(dir.path(), None).unwrap();
            assert_eq!(s.setting("mode").unwrap(), None);
            commit(
                &s,
                &[Guard::Setting("mode", None), Guard::AuditFree(1)],
                vec![
                    Op::PutSetting("mode", vec![1]),
                    Op::AppendAudit(1, b"one".to_vec()),
                ],
            )
            .unwrap();
            assert_eq!(s.setting("mode").unwrap(), Some(vec![1]));
            // A guard on the old value fails, and nothing changes.
            let stale = commit(
                &s,
                &[Guard::Setting("mode", None)],
                vec![Op::PutSetting("mode", vec![2])],
            );
            assert!(conflicts(stale));
            assert_eq!(s.setting("mode").unwrap(), Some(vec![1]));
            // The link decision's path (single-key inserts).
            commit(
                &s,
                &[Guard::Setting("mode", Some(vec![1])), Guard::AuditFree(2)],
                vec![Op::AppendAudit(2, b"two".to_vec())],
            )
            .unwrap();
            for seq in [1, 2] {
                let again = commit(
                    &s,
                    &[Guard::AuditFree(seq)],
                    vec![Op::AppendAudit(seq, b"again".to_vec())],
                );
                assert!(conflicts(again), "{seq}");
            }
        }
        let s = SledMetaStore::open(dir.path(), None).unwrap();
        assert_eq!(s.setting("mode").unwrap(), Some(vec![1]));
        assert!(conflicts(commit(&s, &[Guard::AuditFree(2)], vec![])));
        assert!(conflicts(commit(
            &s,
            &[Guard::Setting("mode", None)],
            vec![]
        )));
        commit(
            &s,
            &[Guard::AuditFree(3), Guard::Setting("mode", Some(vec![1]))],
            vec![Op::AppendAudit(3, b"three".to_vec())],
        )
        .unwrap();
        assert_eq!(s.audit_last().unwrap().unwrap().0, 3);
    }

    fn share(version: u64) -> ShareRecord {
        ShareRecord {
            id: ShareId([1; 16]),
            file: FileId([2; 16]),
            owner: UserId([3; 16]),
            creator: UserId([3; 16]),
            created: Timestamp(1),
            expires: Timestamp(100),
            secret_hash: [4; 32],
            password: None,
            max_downloads: None,
            downloads: 0,
            failed_attempts: 0,
            max_attempts: 5,
            recipients: vec![],
            revoked: None,
            version,
        }
    }

    fn cached(s: &SledMetaStore, id: &ShareId) -> Option<u64> {
        let cache = s.cache.read().unwrap();
        let v = cache.entries.get(&key(b's', &[&id.0]))?;
        Some(ShareRecord::decode(v).unwrap().version)
    }

    /// Reads through the cache see every commit: a link decision's (which puts the share it
    /// wrote) and any other (which empties the cache).
    #[test]
    fn cached_records_follow_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledMetaStore::open(dir.path(), None).unwrap();
        let v1 = share(1);
        let id = v1.id;
        commit(&s, &[], vec![Op::PutShare(v1)]).unwrap();
        assert_eq!(s.share(&id).unwrap().unwrap().version, 1);
        assert_eq!(cached(&s, &id), Some(1));
        // The link decision's path.
        commit(
            &s,
            &[Guard::Share(id, Some(1))],
            vec![
                Op::UpdateShare(share(2)),
                Op::AppendAudit(1, b"one".to_vec()),
            ],
        )
        .unwrap();
        assert_eq!(cached(&s, &id), Some(2));
        assert_eq!(s.share(&id).unwrap().unwrap().version, 2);
        assert!(conflicts(commit(&s, &[Guard::Share(id, Some(1))], vec![])));
        // Any other commit.
        commit(&s, &[], vec![Op::RevokeShare(id, Timestamp(5))]).unwrap();
        assert_eq!(cached(&s, &id), None);
        let revoked = s.share(&id).unwrap().unwrap();
        assert_eq!((revoked.version, revoked.revoked), (3, Some(Timestamp(5))));
        commit(&s, &[Guard::Share(id, Some(3))], vec![]).unwrap();
    }

    /// A read that raced a commit does not put its older copy in the cache.
    #[test]
    fn a_read_older_than_a_commit_is_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledMetaStore::open(dir.path(), None).unwrap();
        let id = share(1).id;
        let k = key(b's', &[&id.0]);
        let old = sled::IVec::from(share(1).encode());
        commit(&s, &[], vec![Op::PutShare(share(1))]).unwrap();

        // Read at this generation; a general commit empties the cache before the fill.
        let generation = s.cache.read().unwrap().generation;
        commit(&s, &[], vec![Op::UpdateShare(share(2))]).unwrap();
        s.fill(&k, &old, generation);
        assert_eq!(cached(&s, &id), None);

        // Read; a link decision's commit puts its newer copy before the fill.
        let generation = s.cache.read().unwrap().generation;
        commit(
            &s,
            &[],
            vec![
                Op::UpdateShare(share(3)),
                Op::AppendAudit(1, b"one".to_vec()),
            ],
        )
        .unwrap();
        s.fill(&k, &old, generation);
        assert_eq!(cached(&s, &id), Some(3));
        assert_eq!(s.share(&id).unwrap().unwrap().version, 3);
    }
}
