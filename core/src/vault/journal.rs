//! The metadata store's journal of link decisions: files beside sled's own, written and
//! synced by the store's flushes, that let a link decision's commit skip sled until the store
//! moves a thousand or so of them into sled at once.
//!
//! Why: under a stream of small link downloads, sled's per-commit work (the inserts, the node
//! splits of the growing audit keys, and the IO-thread handoffs of every small flush of its
//! log buffer) took about a quarter of the server's CPU. Appending the same writes to a file
//! and syncing it with `fdatasync` costs a fraction of that; the store keeps them in memory
//! (its overlay) until it moves them into sled in one batch, the audit records in bundles of
//! about 16 KiB, which cost sled one insert each instead of one per record.
//!
//! # File format
//!
//! The journal is two files, `kinko-journal-0` and `kinko-journal-1`, in the store's
//! directory; records go to one of them at a time. Each is a sequence of records, one per
//! journaled commit, in commit order from the start of the file, followed by zeros up to the
//! file's end:
//!
//! | field   | size      | meaning                                              |
//! |---------|-----------|------------------------------------------------------|
//! | `len`   | 4, u32 LE | length of `body`                                     |
//! | `check` | 16        | the first 16 bytes of BLAKE3(`body`)                 |
//! | `body`  | `len`     | `count` (1 byte), then `count` writes                |
//!
//! A write is `klen` (u16 LE), the sled key, `vlen` (u32 LE), the value. Keys are the
//! store's: `a` with an audit sequence number, `k` with the number of a checkpoint, `s` with a
//! share id.
//!
//! A crash can leave a torn last record; reading stops at the first record that is short,
//! all zeros (the end) or fails its check. The check guards against torn writes, not against
//! an attacker: the audit records carry their own hash chain.
//!
//! A file is written in place: emptying the journal overwrites the records of the file it
//! leaves with zeros instead of cutting the file, so that the next records written there go
//! to blocks the file already has. Syncing an overwrite then writes only the data, where an
//! append also commits the file's new size to the file system's own journal: here that was
//! 132 against 187 µs per `fdatasync` (median of 3,000 syncs of 900-byte records), and less
//! CPU.
//!
//! # Ordering
//!
//! A journaled write may only reach the disk after everything it follows in commit order is
//! durable: otherwise a crash could keep an audit record and lose the one before it. So
//! [`Journal::flush`] flushes sled first whenever sled took a write outside the journal since
//! its last flush, and writes the journal's buffer after that. Between flushes, journaled
//! commits wait in memory (the buffer); a background thread flushes them within the store's
//! `flush_every_ms`, as sled does for its own writes.
//!
//! A record moved into sled needs no flush of sled: the journal still holds it. When the
//! overlay or the journal has grown past a bound (and on a clean close), the store empties the
//! journal: it moves everything into sled, switches to the other file, flushes sled and
//! overwrites the first file's records with zeros. Flushes go on into the other file
//! meanwhile.
//!
//! # Replay
//!
//! Both files are replayed into sled when the store opens, before anything reads it, then cut
//! to nothing: an audit record is inserted (under its own key) if its number is free, a
//! checkpoint if there is none for its number; a share record only over an older version of
//! the share (never over a newer one written later by a general commit, and never to recreate
//! a deleted share). The order of the records does not matter and replaying twice changes
//! nothing, so a file may keep records that sled already holds.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::model::ShareRecord;
use super::store::StoreError;

/// The journal's two files, inside the store's directory.
pub(crate) const FILE_NAMES: [&str; 2] = ["kinko-journal-0", "kinko-journal-1"];

/// The bytes before a record's body.
const HEAD: usize = 4 + 16;

/// A key-value write, as the store writes it to sled.
pub(crate) type KeyValue = (Vec<u8>, Vec<u8>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn check(body: &[u8]) -> [u8; 16] {
    let mut c = [0; 16];
    c.copy_from_slice(&blake3::hash(body).as_bytes()[..16]);
    c
}

/// Appends one record holding `writes` to `out`.
fn encode(writes: &[KeyValue], out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(
        1 + writes
            .iter()
            .map(|(k, v)| 6 + k.len() + v.len())
            .sum::<usize>(),
    );
    body.push(u8::try_from(writes.len()).expect("a journaled commit has few writes"));
    for (k, v) in writes {
        body.extend_from_slice(&u16::try_from(k.len()).expect("a short key").to_le_bytes());
        body.extend_from_slice(k);
        body.extend_from_slice(
            &u32::try_from(v.len())
                .expect("a record under 4 GiB")
                .to_le_bytes(),
        );
        body.extend_from_slice(v);
    }
    out.extend_from_slice(
        &u32::try_from(body.len())
            .expect("a record under 4 GiB")
            .to_le_bytes(),
    );
    out.extend_from_slice(&check(&body));
    out.extend_from_slice(&body);
}

/// The writes of one record's body (`None`: malformed).
fn decode(mut body: &[u8]) -> Option<Vec<KeyValue>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = b.split_at_checked(n)?;
        *b = rest;
        Some(head)
    }
    let count = take(&mut body, 1)?[0];
    let mut writes = Vec::with_capacity(count.into());
    for _ in 0..count {
        let klen = u16::from_le_bytes(take(&mut body, 2)?.try_into().ok()?);
        let k = take(&mut body, klen.into())?.to_vec();
        let vlen = u32::from_le_bytes(take(&mut body, 4)?.try_into().ok()?);
        let v = take(&mut body, usize::try_from(vlen).ok()?)?.to_vec();
        writes.push((k, v));
    }
    body.is_empty().then_some(writes)
}

/// Reads the next whole, intact record (`None`: the end, or a torn or damaged tail).
fn read_record(r: &mut impl Read) -> io::Result<Option<(Vec<KeyValue>, u64)>> {
    let mut head = [0; HEAD];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    if head == [0; HEAD] {
        return Ok(None); // the zeros after the last record
    }
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
    // Read through `take`, so a damaged length cannot allocate more than the file holds.
    let mut body = Vec::new();
    r.take(len.into()).read_to_end(&mut body)?;
    if body.len() != len as usize || check(&body)[..] != head[4..] {
        return Ok(None);
    }
    Ok(decode(&body).map(|w| (w, (HEAD + body.len()) as u64)))
}

/// Applies the intact records of the journal at `path` to `tree` (see the module doc), makes
/// them durable and empties the file. `audit_stored` says whether sled holds an audit number
/// (under its key or in a bundle). Returns how many records it read.
pub(crate) fn replay(
    path: &Path,
    db: &sled::Db,
    tree: &sled::Tree,
    audit_stored: impl Fn(u64) -> Result<bool, StoreError>,
) -> Result<u64, StoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut r = BufReader::new(file);
    let mut records = 0;
    while let Some((writes, _)) = read_record(&mut r)? {
        for (k, v) in writes {
            let apply = match k.first() {
                Some(b'a') => {
                    let seq = k[1..]
                        .try_into()
                        .map(u64::from_be_bytes)
                        .map_err(|_| StoreError::Corrupt("journal key"))?;
                    tree.get(&k).map_err(backend)?.is_none() && !audit_stored(seq)?
                }
                Some(b'k') => tree.get(&k).map_err(backend)?.is_none(),
                Some(b's') => match tree.get(&k).map_err(backend)? {
                    None => false, // deleted since
                    Some(old) => {
                        let version = |b: &[u8]| {
                            ShareRecord::decode(b)
                                .map(|s| s.version)
                                .map_err(|_| StoreError::Corrupt("share"))
                        };
                        version(&old)? < version(&v)?
                    }
                },
                _ => return Err(StoreError::Corrupt("journal key")),
            };
            if apply {
                tree.insert(k, v).map_err(backend)?;
            }
        }
        records += 1;
    }
    db.flush().map_err(backend)?;
    OpenOptions::new().write(true).open(path)?.set_len(0)?;
    Ok(records)
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The bytes of records (written or waiting) past which the store empties the journal.
const FULL_BYTES: u64 = 8 << 20;

/// The bytes of zeros written at once over a retired file's records.
const ZEROS_AT_ONCE: usize = 64 << 10;

/// Records taken from the buffer, with the count of sled's writes they follow.
#[derive(Debug)]
pub(crate) struct Taken {
    buf: Vec<u8>,
    sled_writes: u64,
}

#[derive(Debug, Default)]
struct Pending {
    /// Encoded records not yet written to a file.
    buf: Vec<u8>,
    /// Writes sled has taken outside the journal (the store counts each commit it applies to
    /// sled directly).
    sled_writes: u64,
}

/// The state of the files, known to whoever holds the flushing lock.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// sled's writes known durable.
    sled_durable: u64,
    /// The file records are written to (0 or 1).
    current: usize,
    /// Where each file's records end: zeros follow, up to the file's end.
    ends: [u64; 2],
    /// Whether the other file may hold records.
    other_used: bool,
    /// A write or sync of a file failed: what it held may be lost while later records would
    /// still reach the disk, so every later flush fails until the journal is emptied.
    failed: bool,
}

/// The journal's two files and the records waiting to be written. Records go to the current
/// file; emptying the journal switches to the other one, so that sled's flush, which makes the
/// first file redundant, runs while flushes go on.
pub(crate) struct Journal {
    files: [File; 2],
    pending: Mutex<Pending>,
    /// Held by whoever writes a file, so records reach the files in commit order.
    flushing: Mutex<Written>,
    /// Held by whoever empties the journal, and by every commit outside it: while the store
    /// moves records into sled without its commit lock, no other commit may write sled.
    emptying: Mutex<()>,
    /// Bytes appended since the journal was last emptied, written or waiting.
    bytes: AtomicU64,
    db: sled::Db,
}

/// Nothing of the contents: sled's own `Debug` prints every key and value of the store.
impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens the (replayed, empty) journal files in `dir`.
    pub(crate) fn open(dir: &Path, db: sled::Db) -> Result<Journal, StoreError> {
        let open = |name| {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(dir.join(name))?;
            // Replayed files are empty; one that is not is cut, so zeros follow its records.
            if file.metadata()?.len() > 0 {
                file.set_len(0)?;
            }
            Ok::<_, io::Error>(file)
        };
        Ok(Journal {
            files: [open(FILE_NAMES[0])?, open(FILE_NAMES[1])?],
            pending: Mutex::new(Pending::default()),
            flushing: Mutex::new(Written::default()),
            emptying: Mutex::new(()),
            bytes: AtomicU64::new(0),
            db,
        })
    }

    /// Journals one commit's writes. Call under the store's commit lock, in commit order.
    pub(crate) fn append(&self, writes: &[KeyValue]) {
        let mut p = lock(&self.pending);
        let before = p.buf.len();
        encode(writes, &mut p.buf);
        let added = (p.buf.len() - before) as u64;
        self.bytes.fetch_add(added, Ordering::Relaxed);
    }

    /// Whether the journal has grown past its bound and should be emptied.
    pub(crate) fn full(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) >= FULL_BYTES
    }

    /// Notes that sled took a write outside the journal. Call under the store's commit lock,
    /// after the write.
    pub(crate) fn sled_wrote(&self) {
        lock(&self.pending).sled_writes += 1;
    }

    /// Whether records wait to be written.
    pub(crate) fn has_pending(&self) -> bool {
        !lock(&self.pending).buf.is_empty()
    }

    /// Makes every commit so far durable: sled's writes first, if it took any outside the
    /// journal since its last flush, then the journal's waiting records.
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        let mut w = lock(&self.flushing);
        let taken = self.take();
        self.write(&mut w, taken)
    }

    /// The emptying lock: waits for it, or with `wait` false gives `None` if it is held.
    pub(crate) fn emptying(&self, wait: bool) -> Option<MutexGuard<'_, ()>> {
        if wait {
            return Some(lock(&self.emptying));
        }
        match self.emptying.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// The flushing lock.
    pub(crate) fn flushing(&self) -> MutexGuard<'_, Written> {
        lock(&self.flushing)
    }

    /// Takes the waiting records. Call under the store's commit lock to take exactly the
    /// records of the commits so far.
    pub(crate) fn take(&self) -> Taken {
        let mut p = lock(&self.pending);
        Taken {
            buf: std::mem::take(&mut p.buf),
            sled_writes: p.sled_writes,
        }
    }

    /// Writes `taken` to the current file and syncs it, after flushing sled if it took a
    /// write outside the journal that `taken` follows.
    pub(crate) fn write(&self, w: &mut Written, taken: Taken) -> Result<(), StoreError> {
        if w.failed {
            return Err(StoreError::Backend(
                "an earlier write of the journal failed".into(),
            ));
        }
        if taken.sled_writes > w.sled_durable {
            self.db.flush().map_err(backend)?;
            w.sled_durable = taken.sled_writes;
        }
        if !taken.buf.is_empty() {
            let file = &self.files[w.current];
            let end = w.ends[w.current];
            let written = file
                .write_all_at(&taken.buf, end)
                .and_then(|()| file.sync_data());
            if let Err(e) = written {
                w.failed = true;
                return Err(e.into());
            }
            w.ends[w.current] = end + taken.buf.len() as u64;
        }
        Ok(())
    }

    /// Whether the journal can only be emptied all at once ([`Journal::reset`]): after a
    /// failed write, or while the other file still holds records.
    pub(crate) fn needs_reset(&self, w: &Written) -> bool {
        w.failed || w.other_used
    }

    /// Empties both files once everything journaled is in sled (`taken`: the records that
    /// were still waiting): flushes sled, then cuts the files.
    pub(crate) fn reset(&self, w: &mut Written, taken: Taken) -> Result<(), StoreError> {
        drop(taken); // in sled, which the flush makes durable
        let sled_writes = lock(&self.pending).sled_writes;
        self.db.flush().map_err(backend)?;
        w.sled_durable = sled_writes;
        // Cut, not overwritten: a failed write may have left bytes past a file's end.
        for f in &self.files {
            f.set_len(0)?;
        }
        w.ends = [0, 0];
        self.bytes.store(0, Ordering::Relaxed);
        w.failed = false;
        w.other_used = false;
        Ok(())
    }

    /// Switches records to the other file (which must be unused) and returns the old one.
    pub(crate) fn switch(&self, w: &mut Written) -> usize {
        debug_assert!(!self.needs_reset(w));
        let old = w.current;
        w.current = 1 - old;
        w.other_used = true;
        self.bytes.store(0, Ordering::Relaxed);
        old
    }

    /// Overwrites the records of the file `old` with zeros once everything in it is in
    /// sled: flushes sled first. Call without the flushing lock.
    pub(crate) fn retire(&self, old: usize) -> Result<(), StoreError> {
        self.db.flush().map_err(backend)?;
        // Nobody writes `old` until this returns: it is not current, and the journal is not
        // switched back to it while `other_used` is set.
        let end = lock(&self.flushing).ends[old];
        let zeros = vec![0; ZEROS_AT_ONCE];
        let file = &self.files[old];
        let mut at = 0;
        while at < end {
            let n = (end - at).min(ZEROS_AT_ONCE as u64);
            file.write_all_at(&zeros[..n as usize], at)?;
            at += n;
        }
        // Not needed for safety (replaying records that sled holds changes nothing), but it
        // keeps these writes out of the next records' syncs.
        file.sync_data()?;
        let mut w = lock(&self.flushing);
        w.ends[old] = 0;
        w.other_used = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes(n: u8) -> Vec<KeyValue> {
        vec![
            (vec![b'a', n], vec![n; n as usize]),
            (vec![b's', n], vec![]),
        ]
    }

    #[test]
    fn records_read_back_and_every_damage_ends_the_journal() {
        let mut file = Vec::new();
        for n in 1..=3 {
            encode(&writes(n), &mut file);
        }
        let mut r = &file[..];
        for n in 1..=3 {
            assert_eq!(read_record(&mut r).unwrap().unwrap().0, writes(n));
        }
        assert!(read_record(&mut r).unwrap().is_none());

        // Every truncation keeps exactly the whole records before the cut.
        let ends: Vec<usize> = {
            let mut r = &file[..];
            let mut at = 0;
            let mut ends = vec![];
            while let Some((_, len)) = read_record(&mut r).unwrap() {
                at += len as usize;
                ends.push(at);
            }
            ends
        };
        for cut in 0..file.len() {
            let mut r = &file[..cut];
            let mut n = 0;
            while read_record(&mut r).unwrap().is_some() {
                n += 1;
            }
            assert_eq!(
                n,
                ends.iter().filter(|&&e| e <= cut).count(),
                "cut at {cut}"
            );
        }
        // Every flipped byte ends the journal at the record that holds it.
        for at in 0..file.len() {
            let mut damaged = file.clone();
            damaged[at] ^= 0x40;
            let mut r = &damaged[..];
            let mut n = 0;
            while read_record(&mut r).unwrap().is_some() {
                n += 1;
            }
            assert_eq!(n, ends.iter().filter(|&&e| e <= at).count(), "flip at {at}");
        }
    }

    /// The records in the file at `path`, and its length.
    fn records_in(path: &Path) -> (Vec<Vec<KeyValue>>, u64) {
        let mut r = BufReader::new(File::open(path).unwrap());
        let mut records = vec![];
        while let Some((w, _)) = read_record(&mut r).unwrap() {
            records.push(w);
        }
        (records, std::fs::metadata(path).unwrap().len())
    }

    /// A retired file is overwritten with zeros, not cut, and the next records written to it
    /// go over its old ones from the start: reading it gives exactly the new records.
    #[test]
    fn files_are_reused_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().temporary(true).open().unwrap();
        let j = Journal::open(dir.path(), db).unwrap();
        let path = |i: usize| dir.path().join(FILE_NAMES[i]);
        let flush_switch_retire = |records: &[Vec<KeyValue>]| {
            for r in records {
                j.append(r);
            }
            j.flush().unwrap();
            let mut w = j.flushing();
            let old = j.switch(&mut w);
            drop(w);
            let (read, len) = records_in(&path(old));
            assert_eq!(read, records);
            j.retire(old).unwrap();
            let after = std::fs::read(path(old)).unwrap();
            assert_eq!(after.len() as u64, len, "a retired file keeps its blocks");
            assert!(after.iter().all(|&b| b == 0), "a retired file is all zeros");
            len
        };
        let first = flush_switch_retire(&[writes(9), writes(8), writes(7)]);
        flush_switch_retire(&[writes(1)]);
        // Back in the first file: fewer, shorter records than it held.
        let again = [writes(2), writes(1)];
        for r in &again {
            j.append(r);
        }
        j.flush().unwrap();
        assert_eq!(records_in(&path(0)), (again.to_vec(), first));
    }

    #[test]
    fn a_body_that_does_not_parse_is_refused() {
        assert!(decode(&[]).is_none());
        assert!(decode(&[1, 1, 0]).is_none()); // a key longer than the body
        let mut body = vec![1, 1, 0, b'a', 0, 0, 0, 0];
        assert_eq!(decode(&body), Some(vec![(vec![b'a'], vec![])]));
        body.push(0); // trailing bytes
        assert!(decode(&body).is_none());
    }
}
