//! Progress reports and cancellation for long operations.

use std::io::{self, Read};
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

/// The error a [`Watched`] reader returns to stop the operation; the reason is kept in the
/// reader ([`Watched::take_stop`]).
#[derive(Debug, thiserror::Error)]
#[error("operation stopped by the app")]
struct Stopped;

/// A reader that counts bytes, reports progress and stops when asked to.
pub(crate) struct Watched<R> {
    inner: R,
    watch: Watch,
    total: Option<u64>,
    done: u64,
    /// `done` at the last report.
    reported: Option<u64>,
    /// Why the reader stopped the operation, if it did.
    stop: Option<KinkoError>,
    /// Whether the inner reader failed.
    failed: bool,
}

impl<R: Read> Watched<R> {
    pub(crate) fn new(inner: R, watch: Watch, total: Option<u64>) -> Self {
        Watched {
            inner,
            watch,
            total,
            done: 0,
            reported: None,
            stop: None,
            failed: false,
        }
    }

    /// Checks the token and reports `done` to the listener (if it changed since the last
    /// report, or `force`).
    ///
    /// # Errors
    ///
    /// [`KinkoError::Cancelled`] if the token is cancelled or the listener says stop; the
    /// listener's own error if it failed.
    pub(crate) fn check(&mut self, force: bool) -> Result<(), KinkoError> {
        if let Some(stop) = self.stop.take() {
            return Err(stop);
        }
        if self.watch.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
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
            if self.watch.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
                return Err(KinkoError::Cancelled);
            }
        }
        Ok(())
    }

    /// The reason the reader stopped the operation, if it did.
    pub(crate) fn take_stop(&mut self) -> Option<KinkoError> {
        self.stop.take()
    }

    /// Whether a read of the inner reader failed (as opposed to a write of the output).
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    fn stop_with(&mut self, err: KinkoError) -> io::Error {
        self.stop = Some(err);
        io::Error::other(Stopped)
    }
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop.is_some() {
            return Err(io::Error::other(Stopped));
        }
        if self.watch.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
            return Err(self.stop_with(KinkoError::Cancelled));
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failed = true;
                }
                return Err(e);
            }
        };
        let before = self.done;
        self.done += n as u64;
        let crossed = before / PROGRESS_INTERVAL != self.done / PROGRESS_INTERVAL;
        if (crossed || n == 0)
            && let Err(err) = self.check(false)
        {
            return Err(self.stop_with(err));
        }
        Ok(n)
    }
}
