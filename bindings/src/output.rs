//! Output files that appear only when complete.
//!
//! As `kinko seal -o` and `kinko open -o` do: the output is written to a temporary file in
//! the target's directory (mode 0600) and renamed over the target once everything was
//! written and verified. A failed or cancelled operation drops the temporary file, so the
//! target is never left partial, and an existing target is left untouched.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::KinkoError;

/// A temporary file beside the target, renamed over it by [`AtomicOutput::commit`] and
/// deleted if dropped without a commit.
#[derive(Debug)]
pub(crate) struct AtomicOutput {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
    /// Bytes written through [`Write`].
    written: u64,
}

impl AtomicOutput {
    /// Creates `.kinko-XXXXXX.tmp` in the directory of `target`.
    ///
    /// # Errors
    ///
    /// [`KinkoError::InvalidArgument`] if `target` names a directory (see [`check_target`]);
    /// [`KinkoError::Io`] if the directory does not exist or is not writable.
    pub(crate) fn new(target: &str) -> Result<Self, KinkoError> {
        let dir = check_target(target)?;
        let target = PathBuf::from(target);
        let temp = tempfile::Builder::new()
            .prefix(".kinko-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| KinkoError::io("create a file beside", &target.to_string_lossy(), &e))?;
        Ok(AtomicOutput {
            temp,
            target,
            written: 0,
        })
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Flushes, syncs and renames the temporary file over the target.
    ///
    /// # Errors
    ///
    /// [`KinkoError::Io`] if syncing or renaming fails (the temporary file is removed).
    pub(crate) fn commit(self) -> Result<(), KinkoError> {
        self.publish(false)
    }

    /// As [`AtomicOutput::commit`], but fails if the target exists (it is left as it is).
    ///
    /// # Errors
    ///
    /// [`KinkoError::Io`] with "File exists" if the target exists; as `commit`.
    pub(crate) fn commit_new(self) -> Result<(), KinkoError> {
        self.publish(true)
    }

    fn publish(mut self, no_clobber: bool) -> Result<(), KinkoError> {
        let name = self.target.to_string_lossy().into_owned();
        let io_err = |e: &std::io::Error| KinkoError::io("write", &name, e);
        self.temp.flush().map_err(|e| io_err(&e))?;
        self.temp.as_file().sync_all().map_err(|e| io_err(&e))?;
        let published = if no_clobber {
            self.temp.persist_noclobber(&self.target)
        } else {
            self.temp.persist(&self.target)
        };
        published.map_err(|e| io_err(&e.error))?;
        Ok(())
    }
}

/// Checks that `target` can be an output file, before any work (or a counted download) is
/// spent on it: a directory, or a path ending in a separator, would only fail at the final
/// rename. Returns the directory the temporary file goes in.
///
/// # Errors
///
/// [`KinkoError::InvalidArgument`] naming the directory.
pub(crate) fn check_target(target: &str) -> Result<&Path, KinkoError> {
    let path = Path::new(target);
    let names_dir = target.ends_with(std::path::MAIN_SEPARATOR)
        || target.ends_with('/')
        || path.file_name().is_none()
        || path.is_dir();
    if names_dir {
        return Err(KinkoError::invalid_argument(format!(
            "the output {target} is a directory: give a file name to write to"
        )));
    }
    Ok(match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    })
}

impl Write for AtomicOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.temp.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.temp.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.temp.flush()
    }
}
