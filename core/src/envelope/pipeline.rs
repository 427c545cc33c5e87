//! The bounded parallel pipeline behind [`Sealer`](super::Sealer) and
//! [`Opener`](super::Opener).
//!
//! Chunks are grouped into batches. A batch is processed on Kinko's own thread pool (one
//! thread per core, so it never competes with a caller's rayon work) while the caller's
//! thread reads the next batch or writes the previous one. At most three batches exist at
//! once (being filled, being processed, being written), so memory is bounded by the batch
//! size whatever the file size. A file that fits in one or two chunks never touches the pool.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use super::TAG_BYTES;

/// Plaintext bytes per batch: large enough to amortise the hand-off to the pool (tens of
/// microseconds), small enough that three batches stay a few MiB.
const BATCH_BYTES: usize = 2 << 20;

/// Chunks per batch for a given chunk size: at least 2, at most 64.
pub(crate) fn batch_chunks(chunk_size: usize) -> usize {
    (BATCH_BYTES / chunk_size).clamp(2, 64)
}

/// Environment variable that caps the crypto threads (default: one per core, or what the
/// program chose with [`set_default_threads`]).
pub const THREADS_ENV: &str = "KINKO_CRYPTO_THREADS";

/// The pool's size when [`THREADS_ENV`] does not set it; 0: one thread per core.
static DEFAULT_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets how many crypto threads the pool starts with when [`THREADS_ENV`] does not say (`0`:
/// one per core, the default). Takes effect only before the first envelope is sealed or
/// opened with more than one chunk: the pool is started once.
///
/// A server is the case for fewer: its transfers run side by side, each already on a thread
/// of its own, and a pool thread per core competes with them and with the network stack.
pub fn set_default_threads(threads: usize) {
    DEFAULT_THREADS.store(threads, Ordering::Relaxed);
}

fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::env::var(THREADS_ENV)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .or(Some(DEFAULT_THREADS.load(Ordering::Relaxed)).filter(|&n| n > 0))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("kinko-crypto-{i}"))
            .build()
            .expect("spawning the crypto thread pool")
    })
}

/// Runs `f` on the pool and blocks until it returns.
pub(crate) fn run<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    pool().install(f)
}

/// A batch being processed on the pool.
pub(crate) struct InFlight<T>(mpsc::Receiver<T>);

impl<T> std::fmt::Debug for InFlight<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InFlight(..)")
    }
}

impl<T: Send + 'static> InFlight<T> {
    /// Starts `f` on the pool.
    pub(crate) fn spawn(f: impl FnOnce() -> T + Send + 'static) -> Self {
        let (tx, rx) = mpsc::sync_channel(1);
        pool().spawn(move || {
            // The receiver is gone if the sealer or opener was dropped or seeked meanwhile.
            let _ = tx.send(f());
        });
        InFlight(rx)
    }

    /// Waits for the result.
    pub(crate) fn wait(self) -> T {
        self.0
            .recv()
            .expect("a crypto worker panicked (this is a bug in Kinko)")
    }
}

/// One chunk's buffer: room for a full chunk and its tag, and how much of it is used.
#[derive(Debug)]
pub(crate) struct ChunkBuf {
    pub(crate) buf: Vec<u8>,
    pub(crate) len: usize,
}

impl ChunkBuf {
    pub(crate) fn new(chunk_size: usize) -> Self {
        ChunkBuf {
            buf: vec![0; chunk_size + TAG_BYTES],
            len: 0,
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A dropped buffer is wiped whole: one dropped with plaintext in it (an opener or sealer
/// dropped mid-stream, a batch abandoned after a seek or an error, a read that failed half
/// way) leaves none of it in freed memory. At most a batch of buffers per stream, once.
impl Drop for ChunkBuf {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.buf[..]);
    }
}

/// Recycles chunk buffers so a long stream allocates a bounded number of them once.
#[derive(Debug)]
pub(crate) struct BufPool {
    chunk_size: usize,
    free: Vec<ChunkBuf>,
}

impl BufPool {
    pub(crate) fn new(chunk_size: usize) -> Self {
        BufPool {
            chunk_size,
            free: Vec::new(),
        }
    }

    pub(crate) fn get(&mut self) -> ChunkBuf {
        self.free
            .pop()
            .unwrap_or_else(|| ChunkBuf::new(self.chunk_size))
    }

    /// A buffer of at least `len` bytes (at most a chunk and its tag).
    pub(crate) fn get_len(&mut self, len: usize) -> ChunkBuf {
        let mut chunk = self.free.pop().unwrap_or(ChunkBuf {
            buf: Vec::new(),
            len: 0,
        });
        if chunk.buf.len() < len {
            chunk.buf.resize(len, 0);
        }
        chunk
    }

    /// Returns a buffer; plaintext left in it is wiped first.
    pub(crate) fn put(&mut self, mut chunk: ChunkBuf) {
        zeroize::Zeroize::zeroize(&mut chunk.buf[..chunk.len]);
        chunk.len = 0;
        self.free.push(chunk);
    }
}
