//! Progress reports and cancellation for long operations.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::KinkoError;

/// Bytes between two progress reports.
pub const PROGRESS_INTERVAL: u64 = 1024 * 1024;

/// Receives progress reports of a long operation, implemented by the app.
///
/// [`on_progress`](ProgressListener::on_progress) is called on the thread that called the
/// operation: once before any data is read (`done` = 0), then every
/// [`PROGRESS_INTERVAL`] (1 MiB) of input read, and once more when all input is read. `done`
/// counts input bytes (the plaintext when sealing, the envelope when opening or
/// downloading); `total` is the input's size when it is known.
#[uniffi::export(foreign)]
pub trait ProgressListener: Send + Sync {
    /// Reports `done` of `total` input bytes. Return `true` to go on, `false` to cancel: the
    /// operation then fails with [`KinkoError::Cancelled`] and writes nothing. An exception
    /// thrown here stops the operation too, as [`KinkoError::CallbackFailed`].
    ///
    /// # Errors
    ///
    /// Any error stops the operation and is returned by it.
    fn on_progress(&self, done: u64, total: Option<u64>) -> Result<bool, KinkoError>;
}

/// Cancels an operation from any thread: pass it to the operation, call
/// [`cancel`](CancelToken::cancel) from elsewhere (a UI thread, a timer). The operation
/// stops at its next read (within one chunk) with [`KinkoError::Cancelled`] and leaves no
/// output behind. A token stays cancelled; use a new one for the next operation.
#[derive(Debug, Default, uniffi::Object)]
pub struct CancelToken {
    cancelled: AtomicBool,
}

#[uniffi::export]
impl CancelToken {
    /// A token that is not cancelled.
    #[uniffi::constructor]
    pub fn new() -> Arc<CancelToken> {
        Arc::new(CancelToken::default())
    }

    /// Cancels every operation this token was given to.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether [`cancel`](CancelToken::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// What an operation watches while it runs: the app's listener and token.
#[derive(Clone, Default)]
pub(crate) struct Watch {
    pub(crate) listener: Option<Arc<dyn ProgressListener>>,
    pub(crate) cancel: Option<Arc<CancelToken>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("listener", &self.listener.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

/// The error a [`Watched`] reader or [`MeteredWriter`] returns to stop the operation; the
/// reason is kept in its [`Meter`].
#[derive(Debug, thiserror::Error)]
#[error("operation stopped by the app")]
struct Stopped;

/// Counts the bytes of an operation, reports them to the app's listener every
/// [`PROGRESS_INTERVAL`] and checks its cancel token.
pub(crate) struct Meter {
    watch: Watch,
    total: Option<u64>,
    done: u64,
    /// `done` at the last report.
    reported: Option<u64>,
    /// Why the operation was stopped, once it was.
    stop: Option<KinkoError>,
}

impl Meter {
    pub(crate) fn new(watch: Watch, total: Option<u64>) -> Self {
        Meter {
            watch,
            total,
            done: 0,
            reported: None,
            stop: None,
        }
    }

    fn cancelled(&self) -> bool {
        self.watch.cancel.as_ref().is_some_and(|c| c.is_cancelled())
    }

    /// Checks the token and reports `done` to the listener (if it changed since the last
    /// report, or `force`).
    ///
    /// # Errors
    ///
    /// [`KinkoError::Cancelled`] if the token is cancelled or the listener says stop; the
    /// listener's own error if it failed; the reason of an earlier stop.
    pub(crate) fn check(&mut self, force: bool) -> Result<(), KinkoError> {
        if let Some(stop) = self.stop.take() {
            return Err(stop);
        }
        if self.cancelled() {
            return Err(KinkoError::Cancelled);
        }
        if let Some(listener) = &self.watch.listener
            && (force || self.reported != Some(self.done))
        {
            self.reported = Some(self.done);
            if !listener.on_progress(self.done, self.total)? {
                return Err(KinkoError::Cancelled);
            }
            // The listener may have cancelled the token itself.
            if self.cancelled() {
                return Err(KinkoError::Cancelled);
            }
        }
        Ok(())
    }

    /// Before a read or write: fails if the operation was stopped or the token cancelled.
    fn before(&mut self) -> io::Result<()> {
        if self.stop.is_some() {
            return Err(io::Error::other(Stopped));
        }
        if self.cancelled() {
            return Err(self.stop_with(KinkoError::Cancelled));
        }
        Ok(())
    }

    /// After `n` bytes moved (0: the end): reports when an interval was crossed, the total
    /// reached, or at the end.
    fn after(&mut self, n: usize) -> io::Result<()> {
        let before = self.done;
        self.done += n as u64;
        let crossed = before / PROGRESS_INTERVAL != self.done / PROGRESS_INTERVAL;
        // The end is reported as soon as it is reached: an upload of a known size is not
        // read again after its last byte.
        let complete = n > 0 && self.total == Some(self.done);
        if (crossed || complete || n == 0)
            && let Err(err) = self.check(false)
        {
            return Err(self.stop_with(err));
        }
        Ok(())
    }

    fn stop_with(&mut self, err: KinkoError) -> io::Error {
        self.stop = Some(err);
        io::Error::other(Stopped)
    }

    /// The reason the operation was stopped, if it was.
    pub(crate) fn take_stop(&mut self) -> Option<KinkoError> {
        self.stop.take()
    }
}

/// A reader that meters what it reads.
pub(crate) struct Watched<R> {
    inner: R,
    pub(crate) meter: Meter,
    /// Whether the inner reader failed.
    failed: bool,
}

impl<R: Read> Watched<R> {
    pub(crate) fn new(inner: R, watch: Watch, total: Option<u64>) -> Self {
        Watched {
            inner,
            meter: Meter::new(watch, total),
            failed: false,
        }
    }

    /// See [`Meter::check`].
    pub(crate) fn check(&mut self, force: bool) -> Result<(), KinkoError> {
        self.meter.check(force)
    }

    /// See [`Meter::take_stop`].
    pub(crate) fn take_stop(&mut self) -> Option<KinkoError> {
        self.meter.take_stop()
    }

    /// Whether a read of the inner reader failed (as opposed to a write of the output).
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.meter.before()?;
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failed = true;
                }
                return Err(e);
            }
        };
        self.meter.after(n)?;
        Ok(n)
    }
}

/// A writer that meters what it writes; its total is read from `total` (which a download
/// learns from the answer's length once it arrives).
pub(crate) struct MeteredWriter<'a, W> {
    inner: W,
    pub(crate) meter: Meter,
    total: &'a Cell<Option<u64>>,
    /// Whether the inner writer failed.
    failed: bool,
}

impl<'a, W: Write> MeteredWriter<'a, W> {
    pub(crate) fn new(inner: W, watch: Watch, total: &'a Cell<Option<u64>>) -> Self {
        MeteredWriter {
            inner,
            meter: Meter::new(watch, total.get()),
            total,
            failed: false,
        }
    }

    /// Reports the final count (if it changed) and checks the token once more.
    ///
    /// # Errors
    ///
    /// As [`Meter::check`].
    pub(crate) fn finish(&mut self) -> Result<(), KinkoError> {
        self.meter.total = self.total.get();
        self.meter.check(false)
    }

    /// Whether a write of the inner writer failed.
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// The inner writer.
    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for MeteredWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.meter.total = self.total.get();
        self.meter.before()?;
        let n = self.inner.write(buf).inspect_err(|_| self.failed = true)?;
        if n > 0 {
            self.meter.after(n)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|_| self.failed = true)
    }
}
