//! Sealing: the streaming [`Sealer`] and the [`seal`] helper.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rayon::prelude::*;

use super::cipher::{Cipher, chunk_nonce};
use super::pipeline::{self, BufPool, ChunkBuf, InFlight};
use super::rng::{OsRandom, RandomSource};
use super::write::HeaderParts;
use super::{
    DEFAULT_CHUNK_SIZE, DataKey, Header, MAX_CHUNK_EXPONENT, MIN_CHUNK_EXPONENT, Metadata,
    PAYLOAD_NONCE_BYTES, Recipients, SealError, Suite, TAG_BYTES, kdf,
};

/// How to seal: suite, chunk size, metadata.
#[derive(Debug, Clone)]
pub struct SealOptions {
    /// Payload suite. Default: [`Suite::preferred`].
    pub suite: Suite,
    /// Plaintext bytes per chunk: a power of two from 4 KiB to 4 MiB. Default 64 KiB.
    pub chunk_size: usize,
    /// Metadata to encrypt into the header. If `size` is set, sealing fails unless exactly
    /// that many bytes are written. [`Sealer::detached`] fills in the size itself.
    pub metadata: Metadata,
}

impl Default for SealOptions {
    fn default() -> Self {
        SealOptions {
            suite: Suite::preferred(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            metadata: Metadata::default(),
        }
    }
}

fn chunk_exponent(chunk_size: usize) -> Result<u8, SealError> {
    let exp = chunk_size.trailing_zeros();
    if chunk_size.is_power_of_two()
        && (u32::from(MIN_CHUNK_EXPONENT)..=u32::from(MAX_CHUNK_EXPONENT)).contains(&exp)
    {
        Ok(exp as u8)
    } else {
        Err(SealError::InvalidChunkSize(chunk_size))
    }
}

/// What `finish` still has to do.
enum Mode {
    /// The header went out first; `finish` checks the declared size.
    Attached { declared: Option<u64> },
    /// The header is made by `finish`, with the size filled in.
    Detached {
        parts: Box<HeaderParts>,
        metadata: Metadata,
        dek: DataKey,
        rng: OsRandom,
    },
}

/// Seals a stream: write plaintext into it, then call [`Sealer::finish`].
///
/// Implements [`Write`]. Memory stays bounded (a few batches of chunks) for any input
/// length; chunks are sealed in parallel on all cores once the input spans more than a
/// couple of chunks.
///
/// The final chunk is only sealed by `finish`, which **must** be called: a sealer dropped
/// without it leaves an envelope that fails to open as truncated (never one that opens
/// to a prefix of the input).
pub struct Sealer<W: Write> {
    out: W,
    cipher: Arc<Cipher>,
    chunk_size: usize,
    batch_chunks: usize,
    /// The chunk being filled. Sealed as "last" only by `finish`: a full chunk moves on
    /// once at least one more byte arrives.
    current: ChunkBuf,
    /// Full chunks waiting for a batch.
    pending: Vec<ChunkBuf>,
    /// Index of `pending[0]`.
    next_index: u64,
    in_flight: Option<InFlight<Vec<ChunkBuf>>>,
    bufs: BufPool,
    written: u64,
    mode: Mode,
}

impl<W: Write> std::fmt::Debug for Sealer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("chunk_size", &self.chunk_size)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Sealer<W> {
    /// Writes the header to `out` and returns a sealer for the payload.
    ///
    /// # Errors
    ///
    /// [`SealError`] for an empty or invalid recipient list, a bad chunk size, metadata
    /// too long, or a failed write of the header.
    pub fn new(out: W, recipients: &Recipients, options: SealOptions) -> Result<Self, SealError> {
        Self::with_rng(out, recipients, options, &mut OsRandom)
    }

    pub(crate) fn with_rng(
        mut out: W,
        recipients: &Recipients,
        options: SealOptions,
        rng: &mut dyn RandomSource,
    ) -> Result<Self, SealError> {
        let (parts, dek) = prepare(recipients, &options, rng)?;
        let mut parts = parts;
        parts.metadata = options
            .metadata
            .seal(options.suite, &dek, &parts.payload_nonce, rng)?;
        let cipher = payload_cipher(parts.suite, &dek, &parts.payload_nonce);
        let header = parts.seal(&dek);
        out.write_all(header.as_bytes())?;
        Ok(Self::start(
            out,
            cipher,
            options.chunk_size,
            Mode::Attached {
                declared: options.metadata.size,
            },
        ))
    }

    /// A sealer that writes only the payload to `out`; [`Sealer::finish_detached`] returns
    /// the header, with the number of bytes written recorded as the metadata's size.
    ///
    /// # Errors
    ///
    /// As [`Sealer::new`].
    pub fn detached(
        out: W,
        recipients: &Recipients,
        options: SealOptions,
    ) -> Result<Self, SealError> {
        let mut rng = OsRandom;
        let (parts, dek) = prepare(recipients, &options, &mut rng)?;
        let cipher = payload_cipher(parts.suite, &dek, &parts.payload_nonce);
        Ok(Self::start(
            out,
            cipher,
            options.chunk_size,
            Mode::Detached {
                parts: Box::new(parts),
                metadata: options.metadata,
                dek,
                rng,
            },
        ))
    }

    fn start(out: W, cipher: Cipher, chunk_size: usize, mode: Mode) -> Self {
        let mut bufs = BufPool::new(chunk_size);
        Sealer {
            out,
            cipher: Arc::new(cipher),
            chunk_size,
            batch_chunks: pipeline::batch_chunks(chunk_size),
            current: bufs.get(),
            pending: Vec::new(),
            next_index: 0,
            in_flight: None,
            bufs,
            written: 0,
            mode,
        }
    }

    /// Plaintext bytes accepted so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Reads `input` to its end straight into chunk buffers (one copy fewer than
    /// `io::copy`) and returns the number of bytes read.
    ///
    /// # Errors
    ///
    /// Any error reading `input` or writing the output.
    pub fn copy_from<R: Read + ?Sized>(&mut self, input: &mut R) -> io::Result<u64> {
        let start = self.written;
        loop {
            if self.current.len == self.chunk_size {
                // Only move the full chunk on once we know more data follows.
                let mut next = self.bufs.get();
                let n = read_some(input, &mut next.buf[..self.chunk_size])?;
                if n == 0 {
                    self.bufs.put(next);
                    break;
                }
                next.len = n;
                let full = std::mem::replace(&mut self.current, next);
                self.push_full(full)?;
                self.written += n as u64;
                continue;
            }
            let n = read_some(
                input,
                &mut self.current.buf[self.current.len..self.chunk_size],
            )?;
            if n == 0 {
                break;
            }
            self.current.len += n;
            self.written += n as u64;
        }
        Ok(self.written - start)
    }

    fn push_full(&mut self, full: ChunkBuf) -> io::Result<()> {
        self.pending.push(full);
        if self.pending.len() == self.batch_chunks {
            let batch = std::mem::take(&mut self.pending);
            let first = self.advance(batch.len());
            let cipher = Arc::clone(&self.cipher);
            let previous = self.in_flight.replace(InFlight::spawn(move || {
                seal_batch(&cipher, first, batch, false)
            }));
            if let Some(previous) = previous {
                let sealed = previous.wait();
                self.write_batch(sealed)?;
            }
        }
        Ok(())
    }

    /// Reserves `n` chunk indices and returns the first.
    ///
    /// # Panics
    ///
    /// After 2^64 chunks (far beyond any real stream: 2^80 bytes at the smallest chunk size).
    fn advance(&mut self, n: usize) -> u64 {
        let first = self.next_index;
        self.next_index = first
            .checked_add(n as u64)
            .expect("chunk counter overflow: more than 2^64 chunks");
        first
    }

    fn write_batch(&mut self, sealed: Vec<ChunkBuf>) -> io::Result<()> {
        for mut chunk in sealed {
            self.out.write_all(chunk.bytes())?;
            chunk.len = 0; // ciphertext: nothing to wipe
            self.bufs.put(chunk);
        }
        Ok(())
    }

    /// Seals the remaining chunks, the last one flagged as last, and flushes.
    fn finish_payload(&mut self) -> Result<(), SealError> {
        let last = std::mem::replace(
            &mut self.current,
            ChunkBuf {
                buf: Vec::new(),
                len: 0,
            },
        );
        let mut batch = std::mem::take(&mut self.pending);
        batch.push(last);
        let first = self.advance(batch.len());
        if let Some(previous) = self.in_flight.take() {
            let sealed = previous.wait();
            self.write_batch(sealed)?;
        }
        let cipher = &self.cipher;
        let sealed = if batch.len() <= 2 {
            // A small file does not pay for the hand-off to the pool.
            seal_batch(cipher, first, batch, true)
        } else {
            pipeline::run(|| seal_batch(cipher, first, batch, true))
        };
        self.write_batch(sealed)?;
        self.out.flush()?;
        Ok(())
    }

    /// Seals the final chunk, flushes, and returns the output.
    ///
    /// # Errors
    ///
    /// [`SealError::SizeMismatch`] if the metadata declared a size and a different number
    /// of bytes was written; [`SealError::Io`] if a write failed, or (`InvalidInput`) if this
    /// sealer was made with [`Sealer::detached`]: its header is only returned by
    /// [`Sealer::finish_detached`], and a payload without its header opens for nobody.
    pub fn finish(mut self) -> Result<W, SealError> {
        let declared = match &self.mode {
            Mode::Attached { declared } => *declared,
            Mode::Detached { .. } => {
                return Err(SealError::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "finish called on a detached sealer: use finish_detached, which returns \
                     the header",
                )));
            }
        };
        self.finish_payload()?;
        match declared {
            Some(declared) if declared != self.written => Err(SealError::SizeMismatch {
                declared,
                actual: self.written,
            }),
            _ => Ok(self.out),
        }
    }

    /// For a [`Sealer::detached`] sealer: seals the final chunk and returns the header
    /// (with the byte count as the metadata's size) and the payload output.
    ///
    /// # Errors
    ///
    /// As [`Sealer::finish`]; and [`SealError::Io`] with `InvalidInput` on a sealer made
    /// by [`Sealer::new`], whose header was already written.
    pub fn finish_detached(mut self) -> Result<(Header, W), SealError> {
        self.finish_payload()?;
        self.finish_header()
    }

    fn finish_header(self) -> Result<(Header, W), SealError> {
        match self.mode {
            Mode::Detached {
                mut parts,
                mut metadata,
                dek,
                mut rng,
            } => {
                if let Some(declared) = metadata.size
                    && declared != self.written
                {
                    return Err(SealError::SizeMismatch {
                        declared,
                        actual: self.written,
                    });
                }
                metadata.size = Some(self.written);
                parts.metadata =
                    metadata.seal(parts.suite, &dek, &parts.payload_nonce, &mut rng)?;
                Ok((parts.seal(&dek), self.out))
            }
            Mode::Attached { .. } => Err(SealError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "finish_detached called on a sealer made with Sealer::new",
            ))),
        }
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let total = buf.len();
        while !buf.is_empty() {
            if self.current.len == self.chunk_size {
                let next = self.bufs.get();
                let full = std::mem::replace(&mut self.current, next);
                self.push_full(full)?;
            }
            let n = buf.len().min(self.chunk_size - self.current.len);
            self.current.buf[self.current.len..self.current.len + n].copy_from_slice(&buf[..n]);
            self.current.len += n;
            buf = &buf[n..];
        }
        self.written += total as u64;
        Ok(total)
    }

    /// Flushes the underlying writer. Buffered plaintext stays buffered: a chunk can only
    /// be sealed once it is known whether it is the last one.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn prepare(
    recipients: &Recipients,
    options: &SealOptions,
    rng: &mut dyn RandomSource,
) -> Result<(HeaderParts, DataKey), SealError> {
    recipients.check(0)?;
    let chunk_exponent = chunk_exponent(options.chunk_size)?;
    let dek = DataKey::generate(rng);
    let mut payload_nonce = [0; PAYLOAD_NONCE_BYTES];
    rng.fill(&mut payload_nonce);
    let stanzas = recipients.wrap(&dek, rng)?;
    Ok((
        HeaderParts {
            suite: options.suite,
            chunk_exponent,
            payload_nonce,
            stanzas,
            metadata: Vec::new(),
        },
        dek,
    ))
}

pub(crate) fn payload_cipher(suite: Suite, dek: &DataKey, payload_nonce: &[u8]) -> Cipher {
    let mut key = kdf::derive(kdf::PAYLOAD_KEY, &[dek.expose_secret(), payload_nonce]);
    let cipher = Cipher::new(suite, &key);
    zeroize::Zeroize::zeroize(&mut key);
    cipher
}

/// Seals chunks `first..first + batch.len()` in place; with `ends_stream`, the final one
/// carries the last flag.
fn seal_batch(
    cipher: &Cipher,
    first: u64,
    mut batch: Vec<ChunkBuf>,
    ends_stream: bool,
) -> Vec<ChunkBuf> {
    let last_pos = batch.len() - 1;
    let seal_one = |(k, chunk): (usize, &mut ChunkBuf)| {
        let nonce = chunk_nonce(first + k as u64, ends_stream && k == last_pos);
        let len = chunk.len;
        let tag = cipher.seal_detached(&nonce, b"", &mut chunk.buf[..len]);
        chunk.buf[len..len + TAG_BYTES].copy_from_slice(&tag);
        chunk.len += TAG_BYTES;
    };
    if batch.len() <= 2 {
        batch.iter_mut().enumerate().for_each(seal_one);
    } else {
        batch.par_iter_mut().enumerate().for_each(seal_one);
    }
    batch
}

/// Reads once, retrying on `Interrupted`.
pub(crate) fn read_some<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Seals everything `input` yields into `output` and returns `output`.
///
/// # Errors
///
/// As [`Sealer::new`] and [`Sealer::finish`], plus read errors as [`SealError::Io`].
pub fn seal<R: Read, W: Write>(
    mut input: R,
    output: W,
    recipients: &Recipients,
    options: SealOptions,
) -> Result<W, SealError> {
    let mut sealer = Sealer::new(output, recipients, options)?;
    sealer.copy_from(&mut input)?;
    sealer.finish()
}
