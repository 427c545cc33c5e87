//! The opened headers of recently served files, so that serving a file again skips
//! unwrapping its key.
//!
//! Opening a stored file's header unwraps its DEK with the master key, verifies the header's
//! MAC, decrypts its metadata and derives its payload key: about a tenth of the server's CPU
//! per 1 KiB link download, repeated for every download of the same file. The vault keeps
//! the result ([`OpenedHeader`]) for the files it served recently, the way an encryption SDK
//! caches data keys:
//!
//! - An entry is used only for the exact header bytes it was opened from, and only after the
//!   vault has found the file active: a header rewrapped (KEK rotation) or replaced misses,
//!   so nothing is ever served that a fresh opening would refuse.
//! - Shredding a file forgets its entry, so its payload key leaves memory with its wrapped
//!   DEK. An opening that raced the shred cannot put the entry back: every forget bumps a
//!   generation, and an entry is kept only if none happened since its opening began.
//! - The process holds the master keys, which unwrap every DEK, for as long as it runs; the
//!   entries, bounded in number, add no key that the process could not derive anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::envelope::OpenedHeader;

use super::types::FileId;

/// How many files' opened headers are kept; past that, all are dropped and the cache refills.
const ENTRIES: usize = 1024;

/// See the module documentation. `T` is what an opening gives: [`OpenedHeader`] in the vault.
pub(crate) struct OpenedCache<T = OpenedHeader> {
    inner: Mutex<Inner<T>>,
}

struct Inner<T> {
    /// By file: the stored header bytes the entry was opened from, and the result.
    entries: HashMap<FileId, (Vec<u8>, Arc<T>)>,
    /// Bumped by every forget.
    generation: u64,
}

impl<T> Default for OpenedCache<T> {
    fn default() -> Self {
        OpenedCache {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                generation: 0,
            }),
        }
    }
}

/// The number of entries only: the rest is secret.
impl<T> std::fmt::Debug for OpenedCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedCache")
            .field("entries", &self.lock().entries.len())
            .finish_non_exhaustive()
    }
}

impl<T> OpenedCache<T> {
    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The opened header of `file`, stored as `header`, from the cache or from `open`.
    pub(crate) fn get_or_open<E>(
        &self,
        file: &FileId,
        header: &[u8],
        open: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        let generation = {
            let inner = self.lock();
            if let Some((bytes, opened)) = inner.entries.get(file)
                && bytes.as_slice() == header
            {
                return Ok(opened.clone());
            }
            inner.generation
        };
        let opened = Arc::new(open()?);
        let mut inner = self.lock();
        if inner.generation == generation {
            if inner.entries.len() >= ENTRIES && !inner.entries.contains_key(file) {
                inner.entries.clear();
            }
            inner
                .entries
                .insert(*file, (header.to_vec(), opened.clone()));
        }
        Ok(opened)
    }

    /// Drops `file`'s entry, and keeps an opening in progress from putting one back.
    pub(crate) fn forget(&self, file: &FileId) {
        let mut inner = self.lock();
        inner.entries.remove(file);
        inner.generation += 1;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::convert::Infallible;

    use super::*;

    /// Gets `file` as stored with `header` and says whether that opened it.
    fn get(cache: &OpenedCache<u64>, file: u8, header: &[u8], value: u64) -> (u64, bool) {
        let opened = Cell::new(false);
        let got = cache
            .get_or_open(&FileId([file; 16]), header, || {
                opened.set(true);
                Ok::<_, Infallible>(value)
            })
            .unwrap();
        (*got, opened.get())
    }

    /// An entry serves the same header bytes only; a forget or a failed opening leaves
    /// nothing behind.
    #[test]
    fn an_entry_serves_its_header_bytes_until_forgotten() {
        let cache = OpenedCache::<u64>::default();
        assert_eq!(get(&cache, 1, b"header", 7), (7, true));
        assert_eq!(get(&cache, 1, b"header", 8), (7, false));
        // Another file, or the same file under other header bytes (rewrapped), opens anew.
        assert_eq!(get(&cache, 2, b"header", 9), (9, true));
        assert_eq!(get(&cache, 1, b"rewrapped", 10), (10, true));
        assert_eq!(get(&cache, 1, b"rewrapped", 11), (10, false));
        cache.forget(&FileId([1; 16]));
        assert_eq!(get(&cache, 1, b"rewrapped", 12), (12, true));
        let failed = cache.get_or_open(&FileId([3; 16]), b"h", || Err::<u64, _>("no key"));
        assert_eq!(failed.unwrap_err(), "no key");
        assert_eq!(cache.len(), 2);
    }

    /// A forget while an opening is in progress (a shred racing a download) keeps that
    /// opening out of the cache: the shredded file's key does not come back.
    #[test]
    fn an_opening_that_raced_a_forget_is_not_kept() {
        let cache = OpenedCache::<u64>::default();
        let file = FileId([1; 16]);
        let got = cache
            .get_or_open(&file, b"header", || {
                cache.forget(&file);
                Ok::<_, Infallible>(5)
            })
            .unwrap();
        assert_eq!(*got, 5, "the opening in progress still gets its answer");
        assert_eq!(cache.len(), 0);
        assert_eq!(get(&cache, 1, b"header", 6), (6, true));
    }

    /// The cache never holds more than its bound.
    #[test]
    fn the_cache_is_bounded() {
        let cache = OpenedCache::<u64>::default();
        for i in 0..(ENTRIES as u64 + 10) {
            let mut id = [0; 16];
            id[..8].copy_from_slice(&i.to_le_bytes());
            cache
                .get_or_open(&FileId(id), b"h", || Ok::<_, Infallible>(i))
                .unwrap();
            assert!(cache.len() <= ENTRIES);
        }
    }
}
