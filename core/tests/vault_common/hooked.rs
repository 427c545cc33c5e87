//! A [`MetaStore`] over a real sled store that lets a test fail flushes or act just before a
//! commit reaches the store (to stage a race deterministically, or to count attempts).

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use kinko_core::vault::model::{FileRecord, ShareRecord, TokenRecord, UserRecord};
use kinko_core::vault::store::{ExpiredScan, Guard, Op};
use kinko_core::vault::{
    Durability, FileId, MetaStore, ShareId, SledMetaStore, StoreError, Timestamp, TokenId, UserId,
};

/// Runs before a commit is handed to the real store, with that store and the commit's ops.
pub type BeforeCommit = Box<dyn Fn(&dyn MetaStore, &[Op]) + Send + Sync>;

/// What a test controls; shared between the test and the store the vault owns.
#[derive(Default)]
pub struct Hooks {
    /// How many of the next flushes fail (each failure uses one up).
    pub failing_flushes: AtomicU32,
    /// Flushes that failed so far.
    pub failed_flushes: AtomicU32,
    /// How many of the next commits fail without applying anything.
    pub failing_commits: AtomicU32,
    before_commit: Mutex<Option<BeforeCommit>>,
    after_checkpoints: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    after_file_read: Mutex<Option<AfterRead>>,
}

/// Runs once, right after a file record was read, with the store (see
/// [`Hooks::after_file_read`]).
type AfterRead = Box<dyn FnOnce(&dyn MetaStore) + Send>;

impl Hooks {
    /// Installs the hook run before every commit.
    pub fn before_commit(&self, hook: BeforeCommit) {
        *self.before_commit.lock().unwrap() = Some(hook);
    }

    /// Runs `stage` once, right before the first commit one of whose ops matches `trigger`:
    /// a concurrent writer landing between a vault operation's reads and its commit.
    pub fn stage_once(
        &self,
        trigger: fn(&Op) -> bool,
        stage: impl Fn(&dyn MetaStore) + Send + Sync + 'static,
    ) {
        let staged = std::sync::atomic::AtomicBool::new(false);
        self.before_commit(Box::new(move |store, ops| {
            if ops.iter().any(trigger) && !staged.swap(true, std::sync::atomic::Ordering::SeqCst) {
                stage(store);
            }
        }));
    }

    /// Runs `hook` once, right after the next listing of the checkpoints was read (to append
    /// to the log while it is being verified).
    pub fn after_checkpoints(&self, hook: Box<dyn FnOnce() + Send>) {
        *self.after_checkpoints.lock().unwrap() = Some(hook);
    }

    /// Runs `hook` once, right after the next read of a file record: a concurrent writer
    /// landing between a vault operation's read of a file and what it does with it.
    pub fn after_file_read(&self, hook: AfterRead) {
        *self.after_file_read.lock().unwrap() = Some(hook);
    }

    fn take_flush_failure(&self) -> bool {
        let failing = take_one(&self.failing_flushes);
        if failing {
            self.failed_flushes.fetch_add(1, Ordering::SeqCst);
        }
        failing
    }
}

/// Decrements `n` unless it is zero; whether it did.
fn take_one(n: &AtomicU32) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks").finish_non_exhaustive()
    }
}

/// The sled store with [`Hooks`].
#[derive(Debug)]
pub struct HookedStore {
    inner: SledMetaStore,
    hooks: Arc<Hooks>,
}

impl HookedStore {
    /// Opens sled in `dir`; returns the store and the test's handle on its hooks.
    pub fn open(dir: &Path) -> (HookedStore, Arc<Hooks>) {
        let hooks = Arc::new(Hooks::default());
        let inner = SledMetaStore::open(dir, Some(100)).unwrap();
        let store = HookedStore {
            inner,
            hooks: Arc::clone(&hooks),
        };
        (store, hooks)
    }
}

impl MetaStore for HookedStore {
    fn commit(&self, guards: &[Guard], ops: Vec<Op>, d: Durability) -> Result<(), StoreError> {
        if let Some(hook) = self.hooks.before_commit.lock().unwrap().as_ref() {
            hook(&self.inner, &ops);
        }
        if take_one(&self.hooks.failing_commits) {
            return Err(StoreError::Backend("injected commit failure".into()));
        }
        self.inner.commit(guards, ops, d)
    }
    fn flush(&self) -> Result<(), StoreError> {
        if self.hooks.take_flush_failure() {
            return Err(StoreError::Backend("injected flush failure".into()));
        }
        self.inner.flush()
    }
    fn user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        self.inner.user(id)
    }
    fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        self.inner.user_by_name(name)
    }
    fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.inner.users()
    }
    fn token(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        self.inner.token(id)
    }
    fn tokens_of(&self, user: &UserId) -> Result<Vec<TokenRecord>, StoreError> {
        self.inner.tokens_of(user)
    }
    fn file(&self, id: &FileId) -> Result<Option<FileRecord>, StoreError> {
        let read = self.inner.file(id);
        let hook = self.hooks.after_file_read.lock().unwrap().take();
        if let Some(hook) = hook {
            hook(&self.inner);
        }
        read
    }
    fn files_after(
        &self,
        after: Option<&FileId>,
        limit: usize,
    ) -> Result<Vec<FileRecord>, StoreError> {
        self.inner.files_after(after, limit)
    }
    fn files_of_user(&self, user: &UserId) -> Result<Vec<FileId>, StoreError> {
        self.inner.files_of_user(user)
    }
    fn share(&self, id: &ShareId) -> Result<Option<ShareRecord>, StoreError> {
        self.inner.share(id)
    }
    fn shares_of_file(&self, file: &FileId) -> Result<Vec<ShareId>, StoreError> {
        self.inner.shares_of_file(file)
    }
    fn shares_of_user(&self, user: &UserId) -> Result<Vec<ShareId>, StoreError> {
        self.inner.shares_of_user(user)
    }
    fn shares_created_for_others(&self, user: &UserId) -> Result<Vec<ShareId>, StoreError> {
        self.inner.shares_created_for_others(user)
    }
    fn expired(&self, now: Timestamp, limit: usize) -> Result<ExpiredScan, StoreError> {
        self.inner.expired(now, limit)
    }
    fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.setting(name)
    }
    fn audit_last(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.inner.audit_last()
    }
    fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.inner.audit_range(from, limit)
    }
    fn checkpoints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let listed = self.inner.checkpoints();
        let hook = self.hooks.after_checkpoints.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
        listed
    }
}

/// Whether `ops` are the commit that crypto-shreds a file (its tombstone).
pub fn is_shred(ops: &[Op]) -> bool {
    ops.iter()
        .any(|op| matches!(op, Op::PutFile(f) if f.state == kinko_core::vault::FileState::Shredded))
}
