//! [`BlobStore`] on the local filesystem.
//!
//! Layout under the blob root: `<ab>/<file id hex>` for published blobs (fanned out by the
//! first byte so no directory grows huge) and `.tmp/<file id hex>.<random>` for blobs being
//! written. Publishing is: write, `fsync` the file, `rename` into place, `fsync` the
//! directory. A crash leaves either no blob under the final name or the complete one.
//!
//! All 256 fan-out directories are created (and made durable) when the store is opened, so
//! publishing never creates a directory: a writer that created `<ab>/` itself would have to
//! `fsync` the root before its blob is durable, and a second writer publishing into that
//! directory in between would return before the directory entry is.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use super::codec::{from_hex, to_hex};
use super::store::{BlobRead, BlobStore, BlobWriter, StoreError};
use super::types::{FileId, random_array};

const TMP_DIR: &str = ".tmp";

/// The embedded blob store.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

/// Asks the kernel to start writing back `len` bytes at `offset` without waiting for them.
/// On Linux, `POSIX_FADV_DONTNEED` starts asynchronous writeback of dirty pages in the range
/// (what PostgreSQL uses for its flush hints where `sync_file_range` is missing; that call
/// has no safe binding). Only a hint: errors are ignored, durability comes from the `fsync`
/// at commit.
#[cfg(target_os = "linux")]
fn writeback_hint(file: &File, offset: u64, len: u64) {
    if let Some(len) = std::num::NonZeroU64::new(len) {
        let _ = rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed);
    }
}

#[cfg(not(target_os = "linux"))]
fn writeback_hint(_file: &File, _offset: u64, _len: u64) {}

/// Turns direct I/O (`O_DIRECT`: writes go from our buffer to the device, not through the page
/// cache) on or off for `file`. Fails where the filesystem does not support it.
#[cfg(target_os = "linux")]
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
    let flags = fcntl_getfl(file)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    Ok(fcntl_setfl(file, flags)?)
}

#[cfg(not(target_os = "linux"))]
fn set_direct(_file: &File, on: bool) -> io::Result<()> {
    if on {
        Err(io::ErrorKind::Unsupported.into())
    } else {
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The fan-out directory of blobs whose id starts with `byte`.
fn fan_dir(root: &Path, byte: u8) -> PathBuf {
    root.join(to_hex(&[byte]))
}

/// Creates whichever of the 256 fan-out directories are missing (a new store, or a data
/// directory written before they were created up front) and, if any was, `fsync`s the root so
/// their entries are durable before any blob is published into them. Each directory's own
/// inode is made durable by the `fsync` of that directory when a blob is published.
///
/// Cost: one `mkdir` per directory (about 1 ms for all 256 when they exist) and, for a new
/// store, one `fsync` of the root (under 10 ms measured on ext4).
fn create_fan_dirs(root: &Path) -> io::Result<()> {
    let mut created = false;
    for byte in 0..=u8::MAX {
        let dir = fan_dir(root, byte);
        match fs::create_dir(&dir) {
            Ok(()) => created = true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    if created {
        sync_dir(root)?;
    }
    Ok(())
}

impl FsBlobStore {
    /// Opens (or creates) the blob store rooted at `root`.
    ///
    /// # Errors
    /// The directories cannot be created.
    pub fn open(root: &Path) -> Result<FsBlobStore, StoreError> {
        fs::create_dir_all(root.join(TMP_DIR))?;
        create_fan_dirs(root)?;
        Ok(FsBlobStore {
            root: root.to_path_buf(),
        })
    }

    fn fan_dir(&self, id: &FileId) -> PathBuf {
        fan_dir(&self.root, id.0[0])
    }

    fn path(&self, id: &FileId) -> PathBuf {
        self.fan_dir(id).join(id.to_string())
    }
}

/// A published blob open for reading. Blobs never change once published, so its length is
/// read once, its position kept here, and reads go to that position (`pread`): positioning a
/// download costs no system call, where a plain [`File`]'s seeks cost one each (three or four
/// per link download, about 2% of the server's CPU on 1 KiB downloads).
#[derive(Debug)]
struct BlobFile {
    file: File,
    len: u64,
    pos: u64,
}

impl BlobFile {
    fn open(path: &Path) -> io::Result<BlobFile> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(BlobFile { file, len, pos: 0 })
    }
}

impl Read for BlobFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for BlobFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        // As a file's seek: before the start is an error, past the end is allowed.
        self.pos = pos.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of a blob",
            )
        })?;
        Ok(self.pos)
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.pos)
    }
}

/// Bytes of a blob written through a buffer and the page cache, like any small file, before
/// its writes move to [`Blocks`].
const HEAD_BYTES: u64 = 4 << 20;

/// Bytes per block of [`Blocks`]: per write, and per staging buffer. Measured with
/// `dd oflag=direct` on the development machine's ext4: 1 MiB writes reach about 1.0 GB/s,
/// 2 MiB and more about 1.2 GB/s.
const BLOCK: usize = 2 << 20;

/// Full blocks a large blob may have with its I/O thread (written or waiting) while the next
/// one fills: `1 + IN_FLIGHT` blocks, 8 MiB, per large upload. The device's latency varies
/// from write to write; a queue rides out a slow write that a single spare block would wait
/// for. Measured on the development machine (1 GiB uploads, 15 each, medians): 772 MB/s with
/// one block in flight, 832 with two, 880 with three, 942 with five.
const IN_FLIGHT: usize = 3;

/// Blocks kept for the next large blob, at most [`SPARE_BLOCKS`] (one upload's set). Without
/// them each upload allocated its own, on whichever blocking thread ran it, and the
/// allocator's per-thread caches held on to them: peak RSS grew with every upload thread.
static SPARES: Mutex<Vec<Block>> = Mutex::new(Vec::new());
const SPARE_BLOCKS: usize = 1 + IN_FLIGHT;

/// Alignment of a direct write's buffer, file offset and length (the largest logical block
/// size in common use; 512-byte devices accept it too).
const ALIGN: usize = 4096;

/// A staging buffer whose bytes start at an [`ALIGN`]-aligned address.
struct Block {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Block {
    /// An empty block: a spare if there is one.
    fn take() -> Block {
        let spare = SPARES.lock().unwrap_or_else(|e| e.into_inner()).pop();
        spare.unwrap_or_else(|| {
            let buf = vec![0; BLOCK + ALIGN];
            let start = buf.as_ptr().align_offset(ALIGN);
            Block { buf, start, len: 0 }
        })
    }

    /// Keeps this block for the next large blob, if there are not enough spares already.
    fn give_back(mut self) {
        self.len = 0;
        let mut spares = SPARES.lock().unwrap_or_else(|e| e.into_inner());
        if spares.len() < SPARE_BLOCKS {
            spares.push(self);
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// Copies as much of `data` as fits; returns how much that was.
    fn fill(&mut self, data: &[u8]) -> usize {
        let n = (BLOCK - self.len).min(data.len());
        let at = self.start + self.len;
        self.buf[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }
}

/// Writes `block` at `offset`: directly while `direct` holds, falling back for good to the
/// page cache (with a writeback hint) if the filesystem refuses a direct write.
fn write_block(file: &File, block: &Block, offset: u64, direct: &mut bool) -> io::Result<()> {
    if *direct {
        match write_at(file, block.bytes(), offset) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                set_direct(file, false)?;
                *direct = false;
            }
            Err(e) => return Err(e),
        }
    }
    write_at(file, block.bytes(), offset)?;
    writeback_hint(file, offset, block.len as u64);
    Ok(())
}

/// Writes all of `bytes` at `offset` (only one thread writes a blob at a time).
fn write_at(mut file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

/// The rest of a large blob, past its head: the caller fills one aligned block while a thread
/// of the blob's own writes the previous ones (up to [`IN_FLIGHT`]), directly to the device
/// where the filesystem allows (`O_DIRECT`), at block-aligned offsets.
///
/// Why: a gigabyte copied through the page cache cost the upload thread about 0.6 CPU
/// seconds (page allocation, the copy, ext4's per-page bookkeeping), a quarter of the
/// server's CPU for an upload. A direct write costs next to nothing, the copy into the block
/// is one `memcpy`, and the device works while the next block fills. The blob is read once
/// per download at most, so skipping the cache loses nothing, and a large upload no longer
/// evicts the cache's hot pages. Where direct I/O is refused, the same blocks go through the
/// page cache with a writeback hint each, as before.
struct Blocks {
    file: Arc<File>,
    /// The block being filled, and its offset in the file.
    filling: Block,
    offset: u64,
    /// Blocks with the I/O thread.
    in_flight: usize,
    to_io: Option<mpsc::SyncSender<(Block, u64)>>,
    from_io: mpsc::Receiver<(Block, io::Result<()>)>,
    io: Option<thread::JoinHandle<()>>,
}

impl Blocks {
    fn start(file: File, offset: u64) -> io::Result<Blocks> {
        let file = Arc::new(file);
        let mut direct = set_direct(&file, true).is_ok();
        let (to_io, jobs) = mpsc::sync_channel::<(Block, u64)>(IN_FLIGHT);
        let (done, from_io) = mpsc::sync_channel(IN_FLIGHT);
        let io_file = Arc::clone(&file);
        let io = thread::Builder::new()
            .name("kinko-blob-io".into())
            .spawn(move || {
                for (block, offset) in jobs {
                    let result = write_block(&io_file, &block, offset, &mut direct);
                    if done.send((block, result)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Blocks {
            file,
            filling: Block::take(),
            offset,
            in_flight: 0,
            to_io: Some(to_io),
            from_io,
            io: Some(io),
        })
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.filling.fill(buf);
        if self.filling.len == BLOCK {
            let next = if self.in_flight == IN_FLIGHT {
                self.wait()?
            } else {
                Block::take()
            };
            let full = std::mem::replace(&mut self.filling, next);
            self.filling.len = 0;
            let to_io = self.to_io.as_ref().expect("open until finished");
            to_io
                .send((full, self.offset))
                .map_err(|_| io_thread_gone())?;
            self.in_flight += 1;
            self.offset += BLOCK as u64;
        }
        Ok(n)
    }

    /// Waits for the oldest block with the I/O thread and returns it.
    fn wait(&mut self) -> io::Result<Block> {
        let (block, result) = self.from_io.recv().map_err(|_| io_thread_gone())?;
        self.in_flight -= 1;
        result.map(|()| block)
    }

    /// Writes what is left (the tail, less than a block, through the page cache: a direct
    /// write must be whole aligned blocks) and returns the file, not yet synced.
    fn finish(mut self) -> io::Result<File> {
        while self.in_flight > 0 {
            self.wait()?.give_back();
        }
        drop(self.to_io.take());
        if let Some(io) = self.io.take() {
            io.join().map_err(|_| io_thread_gone())?;
        }
        set_direct(&self.file, false)?;
        write_at(&self.file, self.filling.bytes(), self.offset)?;
        let Blocks { file, filling, .. } = self;
        filling.give_back();
        Arc::into_inner(file).ok_or_else(io_thread_gone)
    }
}

impl std::fmt::Debug for Blocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blocks")
            .field("offset", &self.offset)
            .field("filled", &self.filling.len)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

fn io_thread_gone() -> io::Error {
    io::Error::other("the blob's I/O thread stopped")
}

/// Where a blob's next bytes go.
#[derive(Debug)]
enum Sink {
    /// Its first [`HEAD_BYTES`]: through a buffer and the page cache.
    Head(BufWriter<File>),
    /// The rest.
    Blocks(Blocks),
}

/// A blob being written under its temporary name.
#[derive(Debug)]
struct FsBlobWriter {
    /// `None` once committed, or after a failed switch to [`Blocks`].
    sink: Option<Sink>,
    tmp: PathBuf,
    dir: PathBuf,
    dest: PathBuf,
    written: u64,
    published: bool,
}

impl FsBlobWriter {
    fn sink(&mut self) -> io::Result<&mut Sink> {
        self.sink
            .as_mut()
            .ok_or_else(|| io::Error::other("this blob's writer failed earlier"))
    }

    /// Moves the writes past the head to [`Blocks`].
    fn start_blocks(&mut self) -> io::Result<()> {
        if let Some(Sink::Head(w)) = self.sink.take() {
            let file = w.into_inner().map_err(|e| e.into_error())?;
            // Start writing the head back while the rest arrives.
            writeback_hint(&file, 0, HEAD_BYTES);
            self.sink = Some(Sink::Blocks(Blocks::start(file, HEAD_BYTES)?));
        }
        Ok(())
    }
}

impl Write for FsBlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = HEAD_BYTES.saturating_sub(self.written) as usize;
        let n = match self.sink()? {
            Sink::Head(w) => w.write(&buf[..buf.len().min(room)])?,
            Sink::Blocks(b) => b.write(buf)?,
        };
        self.written += n as u64;
        if n > 0 && n == room {
            self.start_blocks()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.sink()? {
            Sink::Head(w) => w.flush(),
            // Blocks are written whole; the tail is written at commit.
            Sink::Blocks(_) => Ok(()),
        }
    }
}

impl BlobWriter for FsBlobWriter {
    fn commit(mut self: Box<Self>) -> Result<u64, StoreError> {
        let file = match self.sink.take() {
            Some(Sink::Head(w)) => w.into_inner().map_err(|e| e.into_error())?,
            Some(Sink::Blocks(b)) => b.finish()?,
            None => return Err(io::Error::other("this blob's writer failed earlier").into()),
        };
        file.sync_all()?;
        drop(file);
        // The fan-out directory exists and is durable since the store was opened.
        fs::rename(&self.tmp, &self.dest)?;
        self.published = true;
        sync_dir(&self.dir)?;
        Ok(self.written)
    }
}

impl Drop for FsBlobWriter {
    fn drop(&mut self) {
        if !self.published {
            // Abandoned or failed before commit: nothing was published; remove the temporary.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl BlobStore for FsBlobStore {
    fn create(&self, id: &FileId) -> Result<Box<dyn BlobWriter>, StoreError> {
        let tmp = self
            .root
            .join(TMP_DIR)
            .join(format!("{id}.{}", to_hex(&random_array::<8>())));
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        Ok(Box::new(FsBlobWriter {
            sink: Some(Sink::Head(BufWriter::with_capacity(64 * 1024, file))),
            tmp,
            dir: self.fan_dir(id),
            dest: self.path(id),
            written: 0,
            published: false,
        }))
    }

    fn open(&self, id: &FileId) -> Result<Box<dyn BlobRead>, StoreError> {
        Ok(Box::new(BlobFile::open(&self.path(id))?))
    }

    fn exists(&self, id: &FileId) -> Result<bool, StoreError> {
        Ok(self.path(id).try_exists()?)
    }

    fn delete(&self, id: &FileId) -> Result<(), StoreError> {
        match fs::remove_file(self.path(id)) {
            Ok(()) => Ok(sync_dir(&self.fan_dir(id))?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn list(&self) -> Result<Vec<FileId>, StoreError> {
        let mut out = Vec::new();
        for dir in fs::read_dir(&self.root)? {
            let dir = dir?;
            let name = dir.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.len() != 2 || from_hex::<1>(name).is_none() {
                continue;
            }
            for f in fs::read_dir(dir.path())? {
                let f = f?;
                if let Some(id) = f.file_name().to_str().and_then(from_hex::<16>) {
                    out.push(FileId(id));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn remove_temporaries(&self) -> Result<u64, StoreError> {
        let dir = self.root.join(TMP_DIR);
        let mut n = 0;
        for f in fs::read_dir(&dir)? {
            fs::remove_file(f?.path())?;
            n += 1;
        }
        if n > 0 {
            sync_dir(&dir)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn pattern(len: u64) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Writes `data` as a blob in odd-sized pieces (some through the head's buffer, some past
    /// it, some across a block's end) and returns what reads back once committed.
    fn round_trip(store: &FsBlobStore, data: &[u8]) -> Vec<u8> {
        let id = FileId(random_array());
        let mut w = store.create(&id).unwrap();
        for piece in data.chunks(65_552).flat_map(|c| {
            let (a, b) = c.split_at(c.len().min(777));
            [a, b]
        }) {
            w.write_all(piece).unwrap();
        }
        assert_eq!(w.commit().unwrap(), data.len() as u64);
        let mut back = Vec::new();
        store.open(&id).unwrap().read_to_end(&mut back).unwrap();
        back
    }

    /// Blobs of every size around the head's end and a block's end read back exactly.
    #[test]
    fn blobs_round_trip_across_head_and_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let block = BLOCK as u64;
        for len in [
            0,
            1,
            HEAD_BYTES - 1,
            HEAD_BYTES,
            HEAD_BYTES + 1,
            HEAD_BYTES + block - 1,
            HEAD_BYTES + block,
            HEAD_BYTES + (IN_FLIGHT as u64 + 3) * block + 12_345,
        ] {
            let data = pattern(len);
            assert!(
                round_trip(&store, &data) == data,
                "a {len}-byte blob differs"
            );
        }
        assert_eq!(store.remove_temporaries().unwrap(), 0);
    }

    /// An opened blob seeks and reads as the file itself would, step for step: from the
    /// start, the end and the current position, past the end, and (refused) before the start.
    #[test]
    fn an_opened_blob_seeks_and_reads_as_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let data = pattern(10_000);
        let id = FileId(random_array());
        let mut w = store.create(&id).unwrap();
        w.write_all(&data).unwrap();
        w.commit().unwrap();
        let mut blob = store.open(&id).unwrap();
        let mut file = File::open(store.path(&id)).unwrap();
        let steps = [
            SeekFrom::Current(0),
            SeekFrom::End(0),
            SeekFrom::Start(0),
            SeekFrom::Current(4_000),
            SeekFrom::Current(-1_234),
            SeekFrom::End(-7),
            SeekFrom::End(5),
            SeekFrom::Start(12_000),
            SeekFrom::Current(-20_000),
            SeekFrom::End(-10_001),
            SeekFrom::Start(9_999),
        ];
        for (i, to) in steps.into_iter().enumerate() {
            let (b, f) = (blob.seek(to), file.seek(to));
            assert_eq!(b.is_ok(), f.is_ok(), "step {i}: {to:?}");
            assert_eq!(b.ok(), f.ok(), "step {i}: {to:?}");
            let (mut bb, mut fb) = (vec![0; 3_000], vec![0; 3_000]);
            let (bn, fn_) = (blob.read(&mut bb).unwrap(), file.read(&mut fb).unwrap());
            assert_eq!(bb[..bn], fb[..fn_], "step {i}: {to:?}");
            assert_eq!(
                blob.stream_position().unwrap(),
                file.stream_position().unwrap()
            );
        }
    }

    /// A blob abandoned with a block being written leaves no temporary behind.
    #[test]
    fn an_abandoned_large_blob_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let id = FileId(random_array());
        let mut w = store.create(&id).unwrap();
        w.write_all(&pattern(HEAD_BYTES + BLOCK as u64 + 1))
            .unwrap();
        drop(w);
        assert!(!store.exists(&id).unwrap());
        assert_eq!(store.remove_temporaries().unwrap(), 0);
    }

    /// A block the filesystem refuses to write directly (here: a length that is not a whole
    /// number of sectors) is written through the page cache instead, and later blocks too.
    #[test]
    fn a_refused_direct_write_falls_back_to_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let file = File::create(&path).unwrap();
        if set_direct(&file, true).is_err() {
            eprintln!("skipped: this filesystem has no direct I/O");
            return;
        }
        let mut block = Block::take();
        assert_eq!(block.fill(&pattern(1000)), 1000);
        let mut direct = true;
        write_block(&file, &block, 0, &mut direct).unwrap();
        assert!(!direct, "a 1000-byte direct write was accepted");
        write_block(&file, &block, 1000, &mut direct).unwrap();
        drop(file);
        let mut expected = pattern(1000);
        expected.extend_from_slice(&pattern(1000));
        assert!(fs::read(&path).unwrap() == expected);
    }
}
