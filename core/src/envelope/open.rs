//! Opening: the streaming, seekable [`Opener`] and the [`open`] helper.

use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use rayon::prelude::*;

use super::cipher::{Cipher, chunk_nonce};
use super::pipeline::{self, BufPool, ChunkBuf, InFlight};
use super::seal::{payload_cipher, read_some};
use super::{DataKey, Header, Keyring, Metadata, OpenError, TAG_BYTES};

/// How a chunk failed. Cloneable, unlike `OpenError`, so the opener can keep reporting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    ChunkAuth(u64),
    Truncated,
    TrailingData,
    SizeMismatch { declared: u64, actual: u64 },
}

impl From<Failure> for OpenError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::ChunkAuth(index) => OpenError::ChunkAuthFailed { index },
            Failure::Truncated => OpenError::Truncated,
            Failure::TrailingData => OpenError::TrailingData,
            Failure::SizeMismatch { declared, actual } => {
                OpenError::SizeMismatch { declared, actual }
            }
        }
    }
}

/// A raw chunk read from the input, with the flag it must open under.
struct Job {
    index: u64,
    last: bool,
    /// A failure under `last` is worth a second try under `!last` (see [`open_job`]).
    retry: bool,
    chunk: ChunkBuf,
    /// After decryption: the outcome.
    result: Result<(), Failure>,
}

thread_local! {
    /// A copy of the ciphertext of the chunk this thread is opening: a failed open zeroes the
    /// chunk, and the second try needs the ciphertext back. Never holds plaintext.
    static CIPHERTEXT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Opens one chunk in place. A chunk that fails under its expected flag is tried under the
/// other one only to name the failure: a non-final chunk that opens as final means bytes
/// were appended; a final chunk that opens as non-final means the stream was cut.
///
/// The second try needs the ciphertext, which the failed open zeroed, so a job that may be
/// retried is copied first. In a profile of 1 GiB downloads the copy took 7.5% of the
/// server's CPU, against 10.7% for AES-GCM itself, so jobs whose last flag is certain skip
/// both (see [`Opener::flags_are_certain`]).
fn open_job(cipher: &Cipher, job: &mut Job) {
    let len = job.chunk.len;
    if job.last && len < TAG_BYTES {
        job.result = Err(Failure::Truncated);
        return;
    }
    let buf = &mut job.chunk.buf[..len];
    if job.retry {
        CIPHERTEXT.with_borrow_mut(|copy| {
            copy.clear();
            copy.extend_from_slice(buf);
        });
    }
    match cipher.open(&chunk_nonce(job.index, job.last), b"", buf) {
        Ok(0) if job.last && job.index > 0 => {
            // Only an empty file has an empty final chunk; no encoder writes this.
            job.result = Err(Failure::ChunkAuth(job.index));
        }
        Ok(n) => {
            job.chunk.len = n;
            job.result = Ok(());
        }
        Err(_) if !job.retry => {
            job.result = Err(Failure::ChunkAuth(job.index));
            job.chunk.len = 0;
        }
        Err(_) => {
            CIPHERTEXT.with_borrow(|copy| buf.copy_from_slice(copy));
            let other = cipher.open(&chunk_nonce(job.index, !job.last), b"", buf);
            job.result = Err(match other {
                Ok(_) if job.last => Failure::Truncated,
                Ok(_) => Failure::TrailingData,
                Err(_) => Failure::ChunkAuth(job.index),
            });
            zeroize::Zeroize::zeroize(buf);
            job.chunk.len = 0;
        }
    }
}

fn open_batch(cipher: &Cipher, mut jobs: Vec<Job>) -> Vec<Job> {
    if jobs.len() <= 1 {
        jobs.iter_mut().for_each(|j| open_job(cipher, j));
    } else {
        jobs.par_iter_mut().for_each(|j| open_job(cipher, j));
    }
    jobs
}

/// Where the opener learns that a chunk is the last one.
#[derive(Debug)]
enum Layout {
    /// A stream: by reading one chunk ahead (a final chunk is followed by end of input).
    Stream,
    /// Seekable input of known length: from the length, checked against the metadata's
    /// size when it has one (see [`known_plaintext_len`]).
    Known {
        payload_start: u64,
        payload_len: u64,
        plaintext_len: u64,
    },
}

/// The plaintext length of a payload of `payload_len` bytes, for a seekable opener that
/// learns the length from the input instead of from the final chunk.
///
/// The length of a blob is not authenticated: only the final chunk's last flag is, and a
/// range read may never reach it. So when the (authenticated) metadata records a size, the
/// payload must be exactly as long as a payload of that size; otherwise a payload cut at a
/// chunk boundary, or replaced by 16 bytes, would serve its remaining prefix (or nothing)
/// without any error. Without a size, only lengths no payload can have are refused.
///
/// # Errors
///
/// [`OpenError::Truncated`] if the payload is shorter than the size needs (or the size is
/// too large for any payload, or the length is not one a payload can have),
/// [`OpenError::TrailingData`] if it is longer. The streaming opener, which does not know the
/// length up front, can name the same damage differently (a chunk failing authentication,
/// or a size mismatch after the final chunk): docs/FORMAT.md, "Random access".
fn known_plaintext_len(
    header: &Header,
    declared: Option<u64>,
    payload_len: u64,
) -> Result<u64, OpenError> {
    let Some(size) = declared else {
        return header
            .plaintext_len(payload_len)
            .ok_or(OpenError::Truncated);
    };
    match header.payload_len(size) {
        Some(expected) if payload_len == expected => Ok(size),
        Some(expected) if payload_len > expected => Err(OpenError::TrailingData),
        _ => Err(OpenError::Truncated),
    }
}

/// A header opened with its DEK: MAC verified, metadata decrypted, payload key derived. It
/// opens the same envelope's payload again ([`Opener::from_opened`]) without the DEK, so a
/// caller that serves one file many times can keep it instead of unwrapping the DEK for each
/// opening. It holds the payload key (expanded for the cipher): keep it no longer than the
/// file may be opened.
pub struct OpenedHeader {
    header: Header,
    metadata: Metadata,
    cipher: Cipher,
}

impl OpenedHeader {
    /// Verifies `header`'s MAC with `dek`, decrypts its metadata and derives its payload key.
    ///
    /// # Errors
    ///
    /// [`OpenError::HeaderAuthFailed`] if `dek` does not belong to `header`; metadata errors.
    pub fn new(header: Header, dek: &DataKey) -> Result<Self, OpenError> {
        header.verify_mac(dek)?;
        let metadata = header.metadata(dek)?;
        let cipher = payload_cipher(header.suite, dek, &header.payload_nonce);
        Ok(OpenedHeader {
            header,
            metadata,
            cipher,
        })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }
}

/// The header only: the rest is secret.
impl std::fmt::Debug for OpenedHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedHeader")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// Opens an envelope: a [`Read`] of the verified plaintext, and over seekable input
/// ([`Opener::new_seekable`]) a [`Seek`] that decrypts only the chunks a range covers.
///
/// No byte of a chunk is returned before the chunk's tag verifies. Errors come back from
/// `read` as `io::Error`s carrying an [`OpenError`] ([`OpenError::from_io`] recovers it); a
/// stream that was cut short fails with [`OpenError::Truncated`] before `read` returns 0.
/// Chunks are decrypted in parallel, a bounded number of batches ahead of the reader.
pub struct Opener<R> {
    inner: R,
    opened: Arc<OpenedHeader>,
    chunk_size: usize,
    batch_chunks: usize,
    layout: Layout,
    /// Next chunk to read from `inner`.
    next_raw: u64,
    /// Stream layout: the next raw chunk, already read.
    lookahead: Option<ChunkBuf>,
    /// The final chunk has been read, or the read limit reached: no more raw reads.
    raw_done: bool,
    in_flight: Option<InFlight<Vec<Job>>>,
    /// Decrypted chunks, in order, and the failure that ends them if any.
    ready: VecDeque<(u64, ChunkBuf)>,
    failure: Option<OpenError>,
    failed: bool,
    /// Offset into `ready.front()`.
    front_pos: usize,
    /// Bytes to drop from the first chunk after a seek.
    skip: usize,
    /// Chunks in the next batch: starts at 1 after a seek and doubles, so a short range
    /// read touches only the chunks it needs.
    ramp: usize,
    /// The final chunk was decrypted: after `ready` drains, the stream ends.
    done: bool,
    /// Plaintext offset of the next byte `read` returns.
    position: u64,
    /// Plaintext offset at which `read` stops (see [`Opener::set_end`]).
    end: Option<u64>,
    bufs: BufPool,
}

impl<R> std::fmt::Debug for Opener<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("header", &self.opened.header)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Opener<R> {
    /// Reads the header from `reader`, unwraps the DEK with `keyring`, verifies the header
    /// MAC and decrypts the metadata. The payload is read as a stream.
    ///
    /// # Errors
    ///
    /// Every header error of [`Header::read`] and [`Header::unwrap_key`].
    pub fn new(mut reader: R, keyring: &Keyring) -> Result<Self, OpenError> {
        let header = Header::read(&mut reader)?;
        let dek = header.unwrap_key(keyring)?;
        Self::from_parts(header, dek, reader)
    }

    /// Opens a payload whose header and DEK the caller already has (a vault stores the
    /// header apart from the payload). Verifies the MAC with `dek`.
    ///
    /// # Errors
    ///
    /// [`OpenError::HeaderAuthFailed`] if `dek` does not belong to `header`.
    pub fn from_parts(header: Header, dek: DataKey, payload: R) -> Result<Self, OpenError> {
        Ok(Self::from_opened(
            Arc::new(OpenedHeader::new(header, &dek)?),
            payload,
        ))
    }

    /// Opens a payload whose header was opened before (see [`OpenedHeader`]).
    pub fn from_opened(opened: Arc<OpenedHeader>, payload: R) -> Self {
        let chunk_size = opened.header.chunk_size();
        Opener {
            inner: payload,
            chunk_size,
            batch_chunks: pipeline::batch_chunks(chunk_size),
            layout: Layout::Stream,
            next_raw: 0,
            lookahead: None,
            raw_done: false,
            in_flight: None,
            ready: VecDeque::new(),
            failure: None,
            failed: false,
            front_pos: 0,
            skip: 0,
            ramp: 1,
            done: false,
            position: 0,
            end: None,
            bufs: BufPool::new(chunk_size),
            opened,
        }
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.opened.header
    }

    /// The decrypted metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.opened.metadata
    }

    /// Makes `read` stop at plaintext offset `end` (or not at all with `None`): chunks past
    /// it are never read. For serving a byte range: seek to its start, set its end.
    ///
    /// On seekable input an `end` at or past the plaintext length is the same as `None`: a
    /// read to the end then always decrypts the final chunk and checks its tag and last
    /// flag, instead of stopping before it (an empty file would otherwise read no chunk at
    /// all). A stream opener does not know the length; there, `Some(0)` reads no chunk.
    pub fn set_end(&mut self, end: Option<u64>) {
        self.end = match self.layout {
            Layout::Known { plaintext_len, .. } => end.filter(|&e| e < plaintext_len),
            Layout::Stream => end,
        };
        if !self.raw_done {
            // `done` can only have come from the old limit: the final chunk is not read yet.
            self.done = false;
        }
    }

    /// Whether every chunk's last flag is known for certain before it is opened: on seekable
    /// input whose length [`known_plaintext_len`] checked against the metadata's size. Then a
    /// chunk that fails under its flag cannot open under the other one (each index of a
    /// payload was sealed once, under one flag), and a second try would only cost time.
    fn flags_are_certain(&self) -> bool {
        matches!(self.layout, Layout::Known { .. }) && self.opened.metadata.size.is_some()
    }

    fn enc_chunk(&self) -> usize {
        self.chunk_size + TAG_BYTES
    }

    fn past_end(&self, index: u64) -> bool {
        self.end
            .is_some_and(|end| index.saturating_mul(self.chunk_size as u64) >= end)
    }

    /// Reads one raw chunk (chunk `next_raw`), as many bytes as the input has up to a full
    /// encrypted chunk, or up to the end of a payload of known length: a small file does not
    /// allocate and zero a whole chunk.
    fn read_raw(&mut self) -> io::Result<ChunkBuf> {
        let enc = self.enc_chunk();
        let want = match self.layout {
            Layout::Known { payload_len, .. } => {
                let left = payload_len.saturating_sub(self.next_raw.saturating_mul(enc as u64));
                usize::try_from(left).map_or(enc, |left| left.min(enc))
            }
            Layout::Stream => enc,
        };
        let mut chunk = self.bufs.get_len(want);
        while chunk.len < want {
            let n = read_some(&mut self.inner, &mut chunk.buf[chunk.len..want])?;
            if n == 0 {
                break;
            }
            chunk.len += n;
        }
        Ok(chunk)
    }

    /// Reads up to `k` raw chunks and decides each one's last flag.
    fn read_jobs(&mut self, k: usize) -> io::Result<Vec<Job>> {
        let mut jobs = Vec::with_capacity(k);
        while jobs.len() < k && !self.raw_done && !self.past_end(self.next_raw) {
            let index = self.next_raw;
            let (chunk, last) = match self.layout {
                Layout::Stream => {
                    let chunk = match self.lookahead.take() {
                        Some(c) => c,
                        None => self.read_raw()?,
                    };
                    let last = if chunk.len < self.enc_chunk() {
                        true
                    } else {
                        let next = self.read_raw()?;
                        if next.len == 0 {
                            self.bufs.put(next);
                            true
                        } else {
                            self.lookahead = Some(next);
                            false
                        }
                    };
                    (chunk, last)
                }
                Layout::Known { payload_len, .. } => {
                    let enc = self.enc_chunk() as u64;
                    let last_index = payload_len.div_ceil(enc).max(1) - 1;
                    (self.read_raw()?, index >= last_index)
                }
            };
            if last {
                self.raw_done = true;
            }
            self.next_raw += 1;
            jobs.push(Job {
                index,
                last,
                retry: !self.flags_are_certain(),
                chunk,
                result: Ok(()),
            });
        }
        Ok(jobs)
    }

    /// Makes sure `ready` holds a chunk, or the stream is done, or a failure is pending.
    fn fill(&mut self) -> Result<(), OpenError> {
        while self.ready.is_empty() && !self.done && self.failure.is_none() && !self.failed {
            let jobs = match self.in_flight.take() {
                Some(batch) => batch.wait(),
                None => {
                    let jobs = self.read_jobs(self.ramp)?;
                    if jobs.is_empty() {
                        // The read limit was reached.
                        self.done = true;
                        return Ok(());
                    }
                    let cipher = &self.opened.cipher;
                    if jobs.len() <= 1 {
                        open_batch(cipher, jobs)
                    } else {
                        pipeline::run(|| open_batch(cipher, jobs))
                    }
                }
            };
            self.ramp = (self.ramp * 2).min(self.batch_chunks);
            // Start on the next batch before handing this one out.
            let next = self.read_jobs(self.ramp);
            match next {
                Ok(next) if !next.is_empty() => {
                    let opened = Arc::clone(&self.opened);
                    self.in_flight =
                        Some(InFlight::spawn(move || open_batch(&opened.cipher, next)));
                }
                Ok(_) => {}
                Err(e) => self.failure = Some(OpenError::Io(e)),
            }
            for job in jobs {
                if let Err(f) = job.result {
                    self.bufs.put(job.chunk);
                    self.failure = Some(f.into());
                    self.in_flight = None;
                    break;
                }
                if job.last {
                    let actual = job.index * self.chunk_size as u64 + job.chunk.len as u64;
                    if let Some(declared) = self.opened.metadata.size
                        && declared != actual
                    {
                        self.bufs.put(job.chunk);
                        self.failure = Some(Failure::SizeMismatch { declared, actual }.into());
                        break;
                    }
                    self.done = true;
                }
                self.ready.push_back((job.index, job.chunk));
            }
        }
        Ok(())
    }

    /// The next run of verified plaintext, or an empty slice at the end.
    fn next_slice(&mut self) -> Result<&[u8], OpenError> {
        loop {
            if self.end.is_some_and(|limit| self.position >= limit) {
                return Ok(&[]);
            }
            self.fill()?;
            let Some((_, front)) = self.ready.front() else {
                if let Some(err) = self.failure.take() {
                    self.failed = true;
                    return Err(err);
                }
                if self.failed {
                    return Err(OpenError::Io(io::Error::other(
                        "the envelope failed to open earlier",
                    )));
                }
                return Ok(&[]);
            };
            if self.skip > 0 {
                self.front_pos = self.skip.min(front.len);
                self.skip = 0;
            }
            if self.front_pos < front.len {
                let mut stop = front.len;
                if let Some(limit) = self.end {
                    let room = limit.saturating_sub(self.position);
                    stop = stop.min(self.front_pos + usize::try_from(room).unwrap_or(usize::MAX));
                }
                let (_, front) = self.ready.front().expect("checked above");
                return Ok(&front.buf[self.front_pos..stop]);
            }
            let (_, used) = self.ready.pop_front().expect("checked above");
            self.bufs.put(used);
            self.front_pos = 0;
        }
    }

    fn consume(&mut self, n: usize) {
        self.front_pos += n;
        self.position += n as u64;
    }

    /// Writes all remaining plaintext to `out` straight from the decrypted chunks and
    /// returns the number of bytes written.
    ///
    /// # Errors
    ///
    /// Every payload error ([`OpenError::ChunkAuthFailed`], [`OpenError::Truncated`],
    /// [`OpenError::TrailingData`], [`OpenError::SizeMismatch`]) and I/O errors.
    pub fn copy_to<W: Write + ?Sized>(&mut self, out: &mut W) -> Result<u64, OpenError> {
        let mut total = 0;
        loop {
            let slice = self.next_slice()?;
            if slice.is_empty() {
                return Ok(total);
            }
            let n = slice.len();
            out.write_all(slice)?;
            self.consume(n);
            total += n as u64;
        }
    }
}

impl<R: Read + Seek> Opener<R> {
    /// Like [`Opener::new`] over seekable input: learns the payload length up front, so the
    /// opener can [`Seek`] and reads only the chunks a range covers.
    ///
    /// # Errors
    ///
    /// As [`Opener::new`], and I/O errors while seeking.
    pub fn new_seekable(mut reader: R, keyring: &Keyring) -> Result<Self, OpenError> {
        let header = Header::read(&mut reader)?;
        let dek = header.unwrap_key(keyring)?;
        Self::from_parts_seekable(header, dek, reader)
    }

    /// Like [`Opener::from_parts`] over seekable input positioned at the payload's start.
    ///
    /// The payload's length is checked before any chunk is read: it must be exactly the
    /// length of a payload holding the metadata's size, if the metadata has one, and one a
    /// payload can have otherwise.
    ///
    /// # Errors
    ///
    /// As [`Opener::from_parts`]; [`OpenError::Truncated`] or [`OpenError::TrailingData`]
    /// if the payload is shorter or longer than that; I/O errors while seeking.
    pub fn from_parts_seekable(
        header: Header,
        dek: DataKey,
        payload: R,
    ) -> Result<Self, OpenError> {
        Self::from_opened_seekable(Arc::new(OpenedHeader::new(header, &dek)?), payload)
    }

    /// Like [`Opener::from_opened`] over seekable input positioned at the payload's start,
    /// with the checks of [`Opener::from_parts_seekable`].
    ///
    /// # Errors
    ///
    /// [`OpenError::Truncated`] or [`OpenError::TrailingData`] if the payload is shorter or
    /// longer than its header and metadata say; I/O errors while seeking.
    pub fn from_opened_seekable(
        opened: Arc<OpenedHeader>,
        mut payload: R,
    ) -> Result<Self, OpenError> {
        let payload_start = payload.stream_position()?;
        let payload_end = payload.seek(SeekFrom::End(0))?;
        payload.seek(SeekFrom::Start(payload_start))?;
        let payload_len = payload_end.saturating_sub(payload_start);
        let mut opener = Self::from_opened(opened, payload);
        let plaintext_len = known_plaintext_len(
            &opener.opened.header,
            opener.opened.metadata.size,
            payload_len,
        )?;
        opener.layout = Layout::Known {
            payload_start,
            payload_len,
            plaintext_len,
        };
        Ok(opener)
    }

    /// Plaintext length (seekable input only): the metadata's size, which the payload's
    /// length was checked against, or else the length the payload's length implies.
    ///
    /// # Errors
    ///
    /// `InvalidInput` I/O error on a stream opener.
    pub fn plaintext_len(&self) -> Result<u64, OpenError> {
        match self.layout {
            Layout::Known { plaintext_len, .. } => Ok(plaintext_len),
            Layout::Stream => Err(OpenError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "plaintext length needs an opener made with new_seekable",
            ))),
        }
    }
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let slice = self.next_slice().map_err(OpenError::into_io)?;
        let n = slice.len().min(buf.len());
        buf[..n].copy_from_slice(&slice[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for Opener<R> {
    /// Seeks in the plaintext. Only available on openers made with
    /// [`Opener::new_seekable`] or [`Opener::from_parts_seekable`]. Seeking at or past the
    /// end still verifies the final chunk when read.
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let Layout::Known {
            payload_start,
            payload_len,
            plaintext_len,
        } = self.layout
        else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "seeking needs an opener made with new_seekable",
            ));
        };
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.position.checked_add_signed(d),
            SeekFrom::End(d) => plaintext_len.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        if self.failed || self.failure.is_some() {
            return Err(io::Error::other("the envelope failed to open earlier"));
        }
        if target == self.position {
            return Ok(target);
        }
        let enc = self.enc_chunk() as u64;
        let last_index = payload_len.div_ceil(enc).max(1) - 1;
        let index = (target / self.chunk_size as u64).min(last_index);
        self.inner
            .seek(SeekFrom::Start(payload_start + index * enc))?;
        self.in_flight = None;
        while let Some((_, c)) = self.ready.pop_front() {
            self.bufs.put(c);
        }
        if let Some(c) = self.lookahead.take() {
            self.bufs.put(c);
        }
        self.next_raw = index;
        self.raw_done = false;
        self.done = false;
        self.front_pos = 0;
        self.skip = usize::try_from(target - index * self.chunk_size as u64).unwrap_or(usize::MAX);
        self.ramp = 1;
        self.position = target;
        Ok(target)
    }
}

/// Opens the envelope `input` with `keyring` and writes the plaintext to `output`.
/// Returns the metadata and the number of plaintext bytes.
///
/// `output` receives only verified chunks, but a failure can come after some of them: to
/// leave nothing behind on failure, write to a temporary file and rename it on success (as
/// `kinko open -o` does).
///
/// # Errors
///
/// Every error of [`Opener::new`] and [`Opener::copy_to`].
pub fn open<R: Read, W: Write>(
    input: R,
    mut output: W,
    keyring: &Keyring,
) -> Result<(Metadata, u64), OpenError> {
    let mut opener = Opener::new(input, keyring)?;
    let n = opener.copy_to(&mut output)?;
    output.flush()?;
    Ok((opener.opened.metadata.clone(), n))
}
