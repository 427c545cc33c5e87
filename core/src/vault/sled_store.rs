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
//! | `A`    | first seq (u64 BE)       | audit bundle: records `seq (u64 BE), len (u32 LE), record`, in order |
//! | `k`    | seq (u64 BE)             | signed checkpoint    |
//!
//! A commit checks its guards and applies one `sled::Batch` while holding the store's commit
//! lock. sled keeps an exclusive lock on its directory, so this process is the only writer and
//! the lock makes commits serializable; a batch is applied atomically and recovered
//! atomically after a crash. The one exception is the link decision's commit (an audit record,
//! alone or with a share counter): it goes to the store's journal and stays in memory (the
//! overlay) until about a thousand of them move into sled at once, their audit records in
//! bundles (see [`journal`]). sled holds every audit record once, under its own key or in one
//! bundle; bundles hold disjoint, ascending runs of numbers.
//!
//! Being the only writer also lets the store keep copies in memory, written through by the
//! commits under the commit lock: every setting, the highest audit sequence number, and the
//! user, file and share records read recently (a bounded cache: see `ReadCache`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak, mpsc};
use std::time::Duration;

use super::journal::{self, Journal, KeyValue};

use super::model::{ExpiryEntry, FileRecord, ShareRecord, TokenRecord, UserRecord};
use super::store::{Durability, ExpiredScan, Guard, MetaStore, Op, StoreError};
use super::types::{FileId, ShareId, Timestamp, TokenId, UserId};

/// sled's page cache size.
const CACHE_BYTES: u64 = 32 << 20;

/// How many user, file and share records the store's read cache holds before it starts over.
const READ_CACHE_ENTRIES: usize = 16_384;

/// How many journaled writes the overlay holds before the journal is emptied into sled (about
/// 300 KiB of audit records), on the emptier thread. Emptying takes a few milliseconds and
/// competes with the journal's flushes for the disk: while it still ran inline, under the
/// audit log's lock, emptying every 4096 writes raised the 99th percentile latency of 64
/// concurrent 1 KiB link downloads to 12-15 ms, and every 1024 to 6.5-8 ms. On its own thread,
/// every 1024, it stays where it was without the journal (4.5-5.6 ms).
const ABSORB_AT: usize = 1024;

/// The size past which an audit bundle is closed and the next one begun: small next to sled's
/// segments, so that sled keeps it in its log and pages like any record (it writes much larger
/// values to files of their own).
const BUNDLE_BYTES: usize = 4 << 10;

/// The embedded metadata store.
pub struct SledMetaStore {
    inner: Arc<Inner>,
    /// Asks the emptier thread to empty the journal (see [`spawn_emptier`]); dropping it ends
    /// the thread.
    empty_soon: mpsc::SyncSender<()>,
}

/// The store's state, shared with its background threads (nothing of it is public; a
/// `SledMetaStore` dereferences to it).
#[doc(hidden)]
pub struct Inner {
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
    /// The link decisions' writes (audit records `a…`, checkpoints `k…`, share records `s…`)
    /// that are in the journal and not yet in sled, by sled key; reads of those keys look here
    /// first. Every other commit first moves it all into sled (under the commit lock and the
    /// journal's emptying lock), so that sled holds every record such a commit reads or guards
    /// and its audit record follows the journaled ones.
    overlay: RwLock<Overlay>,
    /// The journal behind `overlay` (see [`journal`]).
    journal: Arc<Journal>,
    /// Where the database lives (all its `Debug` shows).
    dir: PathBuf,
}

/// The journaled writes not yet in sled, by sled key (see [`journal`]).
#[derive(Default)]
struct Overlay {
    /// Written by the link decisions' commits since the journal was last emptied.
    live: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Older ones, being moved into sled by whoever empties the journal (they may be in sled
    /// already): read after `live`, before sled. Shared with the mover, which reads them
    /// without this lock.
    moving: Arc<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Overlay {
    fn get(&self, k: &[u8]) -> Option<&Vec<u8>> {
        self.live.get(k).or_else(|| self.moving.get(k))
    }

    /// The records with keys in `from..to`, oldest first (`moving`'s numbers are below
    /// `live`'s). For audit records and checkpoints.
    fn numbered(&self, from: Vec<u8>, to: Vec<u8>) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        self.moving
            .range(from.clone()..to.clone())
            .chain(self.live.range(from..to))
    }
}

/// A batch that writes `records` (journaled writes) into sled: shares and checkpoints under
/// their keys, audit records in bundles of about [`BUNDLE_BYTES`]; and the shares in it, for
/// the read cache (they are newer than any copy there).
fn batch_of(records: BTreeMap<&Vec<u8>, &Vec<u8>>) -> (sled::Batch, Vec<(Vec<u8>, sled::IVec)>) {
    let mut batch = sled::Batch::default();
    let mut bundle = Vec::new();
    let mut first = None;
    let mut shares = Vec::new();
    for (k, v) in records {
        match audit_seq(k) {
            Some(seq) => {
                if bundle.len() >= BUNDLE_BYTES {
                    let first = first.take().expect("a bundle has a first record");
                    let full = std::mem::take(&mut bundle);
                    batch.insert(key(b'A', &[&u64::to_be_bytes(first)]), full);
                }
                first.get_or_insert(seq);
                bundle.extend_from_slice(&seq.to_be_bytes());
                let len = u32::try_from(v.len()).expect("an audit record under 4 GiB");
                bundle.extend_from_slice(&len.to_le_bytes());
                bundle.extend_from_slice(v);
            }
            None => {
                let v = sled::IVec::from(v.as_slice());
                batch.insert(k.as_slice(), v.clone());
                if k.first() == Some(&b's') {
                    shares.push((k.clone(), v));
                }
            }
        }
    }
    if let Some(first) = first {
        batch.insert(key(b'A', &[&first.to_be_bytes()]), bundle);
    }
    (batch, shares)
}

/// Copies of stored user, file and share records, by sled key. A link decision reads a share,
/// its file and its owner, then guards the share: from sled, those reads took about a tenth of
/// the server's CPU under a stream of small link downloads.
///
/// Kept true to sled by the commits: moving the journaled link decisions into sled puts the
/// shares they wrote; any other commit empties the cache and counts a new generation. A read
/// that missed fills the cache only if no commit emptied it meanwhile, and never over an entry
/// a commit put there in the meantime.
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
/// As [`SledMetaStore`]'s: only the directory.
impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledMetaStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for SledMetaStore {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl fmt::Debug for SledMetaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledMetaStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The sled tree that holds every record of the store.
const TREE: &str = "kinko-meta-v1";

/// Opens the sled database under `dir` and its tree as the store does, with the journal's
/// records replayed into it.
///
/// sled's background writer threads of a just-dropped instance (this process, or one being
/// restarted) can hold the directory lock for a moment after the drop: the lock is retried for
/// up to ~2 s before the directory is reported as busy.
fn open_db(dir: &Path, flush_every_ms: Option<u64>) -> Result<(sled::Db, sled::Tree), StoreError> {
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
            Ok(db) => {
                let tree = db.open_tree(TREE).map_err(backend)?;
                for name in journal::FILE_NAMES {
                    journal::replay(&dir.join(name), &db, &tree, |seq| audit_stored(&tree, seq))?;
                }
                return Ok((db, tree));
            }
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
        let (db, tree) = open_db(dir, flush_every_ms)?;
        let journal = Arc::new(Journal::open(dir, db.clone())?);
        if let Some(ms) = flush_every_ms {
            spawn_journal_flusher(Arc::downgrade(&journal), Duration::from_millis(ms))?;
        }
        let settings = tree
            .scan_prefix(b"c")
            .map(|kv| {
                let (k, v) = kv.map_err(backend)?;
                let name = String::from_utf8(k[1..].to_vec())
                    .map_err(|_| StoreError::Corrupt("setting name"))?;
                Ok((name, v.to_vec()))
            })
            .collect::<Result<_, StoreError>>()?;
        let inner = Arc::new(Inner {
            db,
            tree,
            commit_lock: Mutex::new(()),
            settings: RwLock::new(settings),
            audit_max: AtomicU64::new(0),
            cache: RwLock::new(ReadCache::default()),
            overlay: RwLock::new(Overlay::default()),
            journal,
            dir: dir.to_path_buf(),
        });
        let store = SledMetaStore {
            empty_soon: spawn_emptier(Arc::downgrade(&inner))?,
            inner,
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
        Ok(open_db(dir, None)?.1)
    }

    /// A record by key: shares and audit records from the overlay first; users, files and
    /// shares through the read cache.
    fn get(&self, k: &[u8]) -> Result<Option<sled::IVec>, StoreError> {
        if matches!(k.first(), Some(b'a' | b's')) {
            let overlay = self.overlay.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(v) = overlay.get(k) {
                return Ok(Some(v.as_slice().into()));
            }
            // Moving the overlay into sled puts its shares in the cache and applies the batch
            // before it empties the overlay, under its write lock: a key missed here is in
            // sled and the cache by now, or was never in the overlay.
        }
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
                    || (self.get(&key(b'a', &[&seq.to_be_bytes()]))?.is_none()
                        && !audit_stored(&self.tree, *seq)?)
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

/// Key-value writes, in order.
type Writes = Vec<KeyValue>;

/// The records of an audit bundle, in order (`None`: malformed).
fn bundle_records(mut b: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (seq, rest) = b.split_first_chunk::<8>()?;
        let (len, rest) = rest.split_first_chunk::<4>()?;
        let (rec, rest) = rest.split_at_checked(u32::from_le_bytes(*len) as usize)?;
        out.push((u64::from_be_bytes(*seq), rec));
        b = rest;
    }
    Some(out)
}

/// The bundle that would hold `seq`: the one with the greatest first number not above it.
fn bundle_at(tree: &sled::Tree, seq: u64) -> Result<Option<sled::IVec>, StoreError> {
    let kv = tree
        .range(vec![b'A']..=key(b'A', &[&seq.to_be_bytes()]))
        .next_back()
        .transpose()
        .map_err(backend)?;
    Ok(kv.map(|(_, v)| v))
}

/// Whether sled holds the audit record `seq` in a bundle.
fn audit_stored(tree: &sled::Tree, seq: u64) -> Result<bool, StoreError> {
    match bundle_at(tree, seq)? {
        None => Ok(false),
        Some(b) => Ok(bundle_records(&b)
            .ok_or(StoreError::Corrupt("audit bundle"))?
            .iter()
            .any(|(s, _)| *s == seq)),
    }
}

/// The sequence number of an audit record's key (`None`: not an audit key).
fn audit_seq(k: &[u8]) -> Option<u64> {
    match k {
        [b'a', seq @ ..] => Some(u64::from_be_bytes(seq.try_into().ok()?)),
        _ => None,
    }
}

/// The writes of a commit that is one audit record, alone or with one share counter update,
/// and with the checkpoint that falls on the record if one does (a link decision: the hot
/// path). They go to the journal and the overlay (see [`journal`]); one journal record holds
/// them all, so a crash keeps all or none.
fn journaled(ops: Vec<Op>) -> Result<Writes, Vec<Op>> {
    let count = |f: fn(&Op) -> bool| ops.iter().filter(|op| f(op)).count();
    let audits = count(|op| matches!(op, Op::AppendAudit(..)));
    let shares = count(|op| matches!(op, Op::UpdateShare(_)));
    let checkpoints = count(|op| matches!(op, Op::PutCheckpoint(..)));
    if audits != 1 || shares > 1 || checkpoints > 1 || ops.len() != 1 + shares + checkpoints {
        return Err(ops);
    }
    Ok(ops
        .into_iter()
        .map(|op| match op {
            Op::AppendAudit(seq, rec) => (key(b'a', &[&seq.to_be_bytes()]), rec),
            Op::UpdateShare(s) => (key(b's', &[&s.id.0]), s.encode()),
            Op::PutCheckpoint(seq, c) => (key(b'k', &[&seq.to_be_bytes()]), c),
            _ => unreachable!("the shape was checked above"),
        })
        .collect())
}

impl Inner {
    /// Moves the whole overlay into sled as one batch (see [`batch_of`]). Call under the
    /// commit lock and the journal's emptying lock (so that nobody else is moving records).
    fn absorb(&self) -> Result<(), StoreError> {
        let mut overlay = self.overlay.write().unwrap_or_else(PoisonError::into_inner);
        if overlay.live.is_empty() && overlay.moving.is_empty() {
            return Ok(());
        }
        // The live records are the newer: they win where both hold a key.
        let all = overlay
            .moving
            .iter()
            .chain(overlay.live.iter())
            .collect::<BTreeMap<_, _>>();
        let (batch, shares) = batch_of(all);
        // No flush of sled needed: until the journal is emptied, it holds these records too.
        self.tree.apply_batch(batch).map_err(backend)?;
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        cache.entries.extend(shares);
        overlay.live.clear();
        overlay.moving = Arc::default();
        Ok(())
    }

    /// Empties the journal into sled and cuts its files (see [`journal`]): switches the
    /// journal to its other file and the live overlay to the moving one under the locks, then
    /// moves those records into sled and flushes sled with no lock held. With `wait` false,
    /// returns at once if someone else is emptying the journal.
    fn empty_journal(&self, wait: bool) -> Result<(), StoreError> {
        let Some(_one) = self.journal.emptying(wait) else {
            return Ok(());
        };
        let old = {
            let mut w = self.journal.flushing();
            let serial = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
            if self.journal.needs_reset(&w) {
                self.absorb()?;
                let taken = self.journal.take();
                drop(serial);
                return self.journal.reset(&mut w, taken);
            }
            let taken = {
                let mut overlay = self.overlay.write().unwrap_or_else(PoisonError::into_inner);
                debug_assert!(overlay.moving.is_empty(), "moved by the last emptying");
                overlay.moving = Arc::new(std::mem::take(&mut overlay.live));
                self.journal.take()
            };
            drop(serial);
            // The moving records that still waited go to the current file, as a flush would
            // write them: commits waiting for a flush count on it.
            self.journal.write(&mut w, taken)?;
            self.journal.switch(&mut w)
        };
        let moving = Arc::clone(
            &self
                .overlay
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .moving,
        );
        let (batch, shares) = batch_of(moving.iter().collect());
        self.tree.apply_batch(batch).map_err(backend)?;
        {
            let mut overlay = self.overlay.write().unwrap_or_else(PoisonError::into_inner);
            let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
            cache.entries.extend(shares);
            overlay.moving = Arc::default();
        }
        self.journal.retire(old)
    }
}

/// Empties the journal whenever asked through the returned sender, on a thread of its own: the
/// link decision that fills the overlay holds the audit log's lock, which every other decision
/// waits for. Ends when the sender is dropped or the store is gone.
fn spawn_emptier(inner: Weak<Inner>) -> Result<mpsc::SyncSender<()>, StoreError> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("kinko-journal-empty".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                // A failure leaves the records in the journal and the overlay, for the next
                // attempt or a general commit to move.
                let _ = inner.empty_journal(false);
            }
        })?;
    Ok(tx)
}

impl Drop for SledMetaStore {
    fn drop(&mut self) {
        // A clean shutdown leaves nothing to recover (a failed flush is what a crash is):
        // every record in sled, flushed, and an empty journal.
        let _ = self.empty_journal(true);
        let _ = self.db.flush();
    }
}

/// Writes the journal's waiting records (those of [`Durability::Buffered`] commits) within
/// `every`, as sled's own flusher does for its writes. Ends with the store.
fn spawn_journal_flusher(journal: Weak<Journal>, every: Duration) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("kinko-journal".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                let Some(journal) = journal.upgrade() else {
                    return;
                };
                if journal.has_pending() {
                    // A failure is the next commit's to report: it fails its own flush.
                    let _ = journal.flush();
                }
            }
        })?;
    Ok(())
}

impl MetaStore for SledMetaStore {
    fn commit(
        &self,
        guards: &[Guard],
        ops: Vec<Op>,
        durability: Durability,
    ) -> Result<(), StoreError> {
        let ops = match journaled(ops) {
            Err(ops) => ops,
            Ok(writes) => {
                let full = {
                    let _serial = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
                    self.check_all(guards)?;
                    self.journal.append(&writes);
                    let mut overlay = self.overlay.write().unwrap_or_else(PoisonError::into_inner);
                    for (k, v) in writes {
                        if let Some(seq) = audit_seq(&k) {
                            self.stored_audit(seq);
                        }
                        overlay.live.insert(k, v);
                    }
                    overlay.live.len() >= ABSORB_AT || self.journal.full()
                };
                if durability == Durability::Sync {
                    self.flush().map_err(StoreError::not_durable)?;
                }
                if full {
                    // Already asked if the channel is full.
                    let _ = self.empty_soon.try_send(());
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
            // Nobody may be moving journaled records into sled meanwhile (see `empty_journal`).
            let _one = self.journal.emptying(true);
            let _serial = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
            // sled must hold every record this commit reads or guards, and the journaled audit
            // records must precede this commit's in sled's log.
            self.absorb()?;
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
            self.journal.sled_wrote();
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
        self.journal.flush()
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
        {
            let overlay = self.overlay.read().unwrap_or_else(PoisonError::into_inner);
            // The live records are the newest, then the moving ones.
            let last = overlay.live.range(vec![b'a']..vec![b'a' + 1]).next_back();
            let last =
                last.or_else(|| overlay.moving.range(vec![b'a']..vec![b'a' + 1]).next_back());
            if let Some((k, v)) = last {
                let seq = audit_seq(k).ok_or(StoreError::Corrupt("audit key"))?;
                return Ok(Some((seq, v.clone())));
            }
        }
        let keyed = match self.tree.scan_prefix(b"a").next_back() {
            None => None,
            Some(kv) => {
                let (k, v) = kv.map_err(backend)?;
                Some((
                    audit_seq(&k).ok_or(StoreError::Corrupt("audit key"))?,
                    v.to_vec(),
                ))
            }
        };
        let bundled = match self.tree.scan_prefix(b"A").next_back() {
            None => None,
            Some(kv) => {
                let (_, b) = kv.map_err(backend)?;
                let records = bundle_records(&b).ok_or(StoreError::Corrupt("audit bundle"))?;
                records.last().map(|(seq, rec)| (*seq, rec.to_vec()))
            }
        };
        Ok(keyed.into_iter().chain(bundled).max_by_key(|(seq, _)| *seq))
    }

    fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        if from > self.audit_max.load(Ordering::Relaxed) {
            return Ok(Vec::new()); // what the audit log asks after a conflict, in a hot path
        }
        // Held throughout, so that no record can leave the overlay between the reads: those
        // moving into sled may be read twice (removed below), never missed.
        let overlay = self.overlay.read().unwrap_or_else(PoisonError::into_inner);
        let start = key(b'a', &[&from.to_be_bytes()]);
        let mut keyed = Vec::new();
        for kv in self.tree.range(start.clone()..vec![b'a' + 1]).take(limit) {
            let (k, v) = kv.map_err(backend)?;
            keyed.push((
                audit_seq(&k).ok_or(StoreError::Corrupt("audit key"))?,
                v.to_vec(),
            ));
        }
        // The bundle that holds `from`, if one does, and every later one, until `limit`.
        let first = bundle_at(&self.tree, from)?
            .map(|b| {
                let records = bundle_records(&b).ok_or(StoreError::Corrupt("audit bundle"))?;
                Ok::<_, StoreError>(records.first().map_or(from, |(seq, _)| *seq))
            })
            .transpose()?
            .unwrap_or(from);
        let mut bundled = Vec::new();
        for kv in self
            .tree
            .range(key(b'A', &[&first.to_be_bytes()])..vec![b'A' + 1])
        {
            if bundled.len() >= limit {
                break;
            }
            let (_, b) = kv.map_err(backend)?;
            let records = bundle_records(&b).ok_or(StoreError::Corrupt("audit bundle"))?;
            bundled.extend(
                records
                    .into_iter()
                    .filter(|(seq, _)| *seq >= from)
                    .map(|(seq, rec)| (seq, rec.to_vec())),
            );
        }
        let mut out = keyed;
        out.extend(bundled);
        for (k, v) in overlay.numbered(start, vec![b'a' + 1]).take(limit) {
            out.push((
                audit_seq(k).ok_or(StoreError::Corrupt("audit key"))?,
                v.clone(),
            ));
        }
        // Records being moved into sled may be there already.
        out.sort_by_key(|(seq, _)| *seq);
        out.dedup_by_key(|(seq, _)| *seq);
        out.truncate(limit);
        Ok(out)
    }

    fn checkpoints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let seq = |k: &[u8]| {
            k[1..]
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("checkpoint key"))
        };
        // Held throughout, as in `audit_range`.
        let overlay = self.overlay.read().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(b"k") {
            let (k, v) = kv.map_err(backend)?;
            out.push((seq(&k)?, v.to_vec()));
        }
        for (k, v) in overlay.numbered(vec![b'k'], vec![b'k' + 1]) {
            out.push((seq(k)?, v.clone()));
        }
        // Checkpoints being moved into sled may be there already.
        out.sort_by_key(|(seq, _)| *seq);
        out.dedup_by_key(|(seq, _)| *seq);
        Ok(out)
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

    /// Moves the overlay into sled, as the commits do.
    fn absorb(s: &SledMetaStore) {
        let _serial = s.commit_lock.lock().unwrap();
        s.absorb().unwrap();
    }

    /// Reads through the cache see every commit: a link decision's (in the overlay, then put
    /// in the cache when it moves into sled) and any other (which empties the cache).
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
        assert_eq!(s.share(&id).unwrap().unwrap().version, 2);
        absorb(&s);
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

        // Read; a link decision's commit puts its newer copy (as it moves into sled) before
        // the fill.
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
        absorb(&s);
        s.fill(&k, &old, generation);
        assert_eq!(cached(&s, &id), Some(3));
        assert_eq!(s.share(&id).unwrap().unwrap().version, 3);
    }

    fn record(seq: u64) -> Vec<u8> {
        format!("record {seq}").into_bytes()
    }

    /// A link decision's commit: a download counted on the share, and its audit record.
    fn decide(s: &SledMetaStore, seq: u64, version: &mut u64, durability: Durability) {
        s.commit(
            &[
                Guard::Share(share(1).id, Some(*version)),
                Guard::AuditFree(seq),
            ],
            vec![
                Op::UpdateShare(share(*version + 1)),
                Op::AppendAudit(seq, record(seq)),
            ],
            durability,
        )
        .unwrap();
        *version += 1;
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    /// The bytes other than zeros in both journal files of the store in `dir` (an emptied
    /// file is all zeros).
    fn journal_bytes(dir: &Path) -> usize {
        journal::FILE_NAMES
            .iter()
            .map(|name| {
                let bytes = std::fs::read(dir.join(name)).unwrap();
                bytes.iter().filter(|&&b| b != 0).count()
            })
            .sum()
    }

    fn numbers(records: &[(u64, Vec<u8>)]) -> Vec<u64> {
        records.iter().map(|(seq, _)| *seq).collect()
    }

    /// What a durable link decision wrote survives a crash, wherever it was at the time: in
    /// sled in a bundle, in the journal only, or in both; and a share the journal holds an
    /// older copy of keeps its newer state.
    #[test]
    fn journaled_commits_survive_a_crash_image() {
        let dir = tempfile::tempdir().unwrap();
        let image = tempfile::tempdir().unwrap();
        let s = SledMetaStore::open(dir.path(), None).unwrap();
        let id = share(1).id;
        commit(&s, &[], vec![Op::PutShare(share(1))]).unwrap();
        let mut version = 1;
        // Enough to empty the journal into sled twice on the way.
        let n = 2 * ABSORB_AT as u64 + 10;
        for seq in 1..=n {
            decide(&s, seq, &mut version, Durability::Sync);
        }
        // A general commit (it moves the overlay into sled first), then more decisions that
        // are only in the journal.
        s.commit(
            &[Guard::AuditFree(n + 1)],
            vec![
                Op::RevokeShare(id, Timestamp(9)),
                Op::AppendAudit(n + 1, record(n + 1)),
            ],
            Durability::Sync,
        )
        .unwrap();
        version += 1;
        assert_eq!(s.share(&id).unwrap().unwrap().revoked, Some(Timestamp(9)));
        // Refused requests on the revoked share: audit records alone.
        for seq in n + 2..=n + 5 {
            s.commit(
                &[Guard::AuditFree(seq)],
                vec![Op::AppendAudit(seq, record(seq))],
                Durability::Sync,
            )
            .unwrap();
        }
        // The files as a crash would leave them (sled's unflushed memory lost), copied while
        // the emptier thread is not moving records.
        {
            let _quiet = s.journal.emptying(true);
            copy_dir(dir.path(), image.path());
        }
        drop(s);

        let c = SledMetaStore::open(image.path(), None).unwrap();
        let all = c.audit_range(1, usize::MAX).unwrap();
        assert_eq!(numbers(&all), (1..=n + 5).collect::<Vec<_>>());
        assert!(all.iter().all(|(seq, r)| *r == record(*seq)));
        assert_eq!(c.audit_last().unwrap().unwrap().0, n + 5);
        let after = c.share(&id).unwrap().unwrap();
        assert_eq!(
            (after.version, after.revoked),
            (version, Some(Timestamp(9)))
        );
    }

    /// Audit records and checkpoints read alike under their own keys (general commits), in
    /// bundles (link decisions moved into sled) and in the overlay, before and after a reopen.
    #[test]
    fn audit_records_read_alike_wherever_they_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        // Records 1 to 3 by general commits, 4 to `bundled` by link decisions moved into sled,
        // the rest by link decisions in the overlay (too few to have the journal emptied).
        let bundled = ABSORB_AT as u64 / 2;
        let last = bundled + 40;
        let check = |s: &SledMetaStore| {
            assert_eq!(s.audit_last().unwrap().unwrap(), (last, record(last)));
            for (from, limit) in [(1, 5), (2, 1000), (3, 300), (250, 7), (last - 3, 9)] {
                let got = s.audit_range(from, limit).unwrap();
                let want: Vec<u64> = (from..=last).take(limit).collect();
                assert_eq!(numbers(&got), want, "from {from}, limit {limit}");
                assert!(got.iter().all(|(seq, r)| *r == record(*seq)));
            }
            assert!(s.audit_range(last + 1, 10).unwrap().is_empty());
            for seq in [1, 3, 4, 100, bundled, bundled + 1, last] {
                let taken = commit(s, &[Guard::AuditFree(seq)], vec![]);
                assert!(conflicts(taken), "{seq} is taken");
            }
            commit(s, &[Guard::AuditFree(last + 1)], vec![]).unwrap();
            let checkpoints: Vec<u64> = s.checkpoints().unwrap().iter().map(|c| c.0).collect();
            assert_eq!(checkpoints, [2, 300, last - 1]);
        };
        {
            let s = SledMetaStore::open(dir.path(), None).unwrap();
            commit(&s, &[], vec![Op::PutShare(share(1))]).unwrap();
            // Records 1 to 3 under their own keys, with a checkpoint at 2.
            for seq in 1..=3 {
                let mut ops = vec![
                    Op::PutSetting("n", vec![seq as u8]),
                    Op::AppendAudit(seq, record(seq)),
                ];
                if seq == 2 {
                    ops.push(Op::PutCheckpoint(2, b"c2".to_vec()));
                }
                commit(&s, &[], ops).unwrap();
            }
            // Then link decisions, two of them with a checkpoint.
            for seq in 4..=last {
                let version = seq - 3; // the share's, from 1
                let mut ops = vec![
                    Op::UpdateShare(share(version + 1)),
                    Op::AppendAudit(seq, record(seq)),
                ];
                if seq == 300 || seq == last - 1 {
                    ops.push(Op::PutCheckpoint(seq, format!("c{seq}").into_bytes()));
                }
                commit(&s, &[Guard::Share(share(1).id, Some(version))], ops).unwrap();
                if seq == bundled {
                    s.empty_journal(true).unwrap();
                }
            }
            assert!(s.tree.scan_prefix(b"A").count() > 1, "bundles in sled");
            assert!(
                !s.overlay.read().unwrap().live.is_empty(),
                "records in the overlay"
            );
            check(&s);
            s.flush().unwrap();
            assert!(
                journal_bytes(dir.path()) > 0,
                "the overlay's records are journaled"
            );
        }
        // A clean close moves everything into sled and leaves the journal empty (checked on
        // disk before the reopen, which would replay and empty it anyway).
        assert_eq!(journal_bytes(dir.path()), 0);
        let s = SledMetaStore::open(dir.path(), None).unwrap();
        check(&s);
    }
}
