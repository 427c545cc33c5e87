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
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

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

/// Bytes between two writeback hints.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// A blob being written under its temporary name.
#[derive(Debug)]
struct FsBlobWriter {
    file: Option<BufWriter<File>>,
    tmp: PathBuf,
    dir: PathBuf,
    dest: PathBuf,
    written: u64,
    /// Where the next writeback hint starts.
    hinted: u64,
}

impl Write for FsBlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self.file.as_mut().expect("not yet committed");
        let n = file.write(buf)?;
        self.written += n as u64;
        if self.written - self.hinted >= WRITEBACK_EVERY {
            // Start writing back what the kernel has so far, while the upload goes on: the
            // fsync at commit then finds little left to write, and dirty pages stay bounded.
            let end = self.written - file.buffer().len() as u64;
            writeback_hint(file.get_ref(), self.hinted, end - self.hinted);
            self.hinted = end;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("not yet committed").flush()
    }
}

impl BlobWriter for FsBlobWriter {
    fn commit(mut self: Box<Self>) -> Result<u64, StoreError> {
        let file = self.file.take().expect("commit is called once");
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        // The fan-out directory exists and is durable since the store was opened.
        fs::rename(&self.tmp, &self.dest)?;
        sync_dir(&self.dir)?;
        Ok(self.written)
    }
}

impl Drop for FsBlobWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Abandoned before commit: nothing was published; remove the temporary.
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
            file: Some(BufWriter::with_capacity(64 * 1024, file)),
            tmp,
            dir: self.fan_dir(id),
            dest: self.path(id),
            written: 0,
            hinted: 0,
        }))
    }

    fn open(&self, id: &FileId) -> Result<Box<dyn BlobRead>, StoreError> {
        Ok(Box::new(File::open(self.path(id))?))
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

    /// A blob of several writeback windows, written in odd-sized pieces (some through the
    /// buffer, some past it), reads back exactly once committed; an abandoned one leaves no
    /// temporary.
    #[test]
    fn large_blob_round_trips_across_writeback_hints() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let id = FileId(random_array());
        let data: Vec<u8> = (0..(2 * WRITEBACK_EVERY + 12_345))
            .map(|i| (i % 251) as u8)
            .collect();
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
        assert!(back == data, "the blob differs from what was written");

        let other = FileId(random_array());
        let mut w = store.create(&other).unwrap();
        w.write_all(&data[..(WRITEBACK_EVERY as usize + 1)])
            .unwrap();
        drop(w);
        assert!(!store.exists(&other).unwrap());
        assert_eq!(store.remove_temporaries().unwrap(), 0);
    }
}
