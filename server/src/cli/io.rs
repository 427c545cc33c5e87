//! Inputs, outputs and the progress bar shared by `seal` and `open`.
//!
//! - An [`InputArg`] is a file or stdin (`-` or absent).
//! - An [`OutputArg`] is a file, stdin by default, or stdout given explicitly with `-o -`.
//!   [`check_terminal_output`] decides whether binary output may go to stdout.
//! - A file output is an [`AtomicOutput`]: a temporary file in the target's directory,
//!   renamed over the target only once everything was written and verified, so a failure
//!   leaves neither partial output nor a clobbered target.
//! - [`Tracked`] wraps the input to count bytes for the progress bar and to remember whether
//!   an I/O error came from the input (the library reports read and write errors alike).

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::error::CliError;
use super::interrupt;

/// Inputs larger than this get a progress bar (when stderr is a terminal).
pub(crate) const PROGRESS_MIN_BYTES: u64 = 4 * 1024 * 1024;

/// Where a command reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InputArg {
    /// Standard input (no argument, or `-`).
    Stdin,
    /// A file.
    File(PathBuf),
}

impl InputArg {
    /// `None` and `-` are stdin.
    pub(crate) fn from_arg(arg: Option<PathBuf>) -> Self {
        match arg {
            Some(p) if p.as_os_str() != OsStr::new("-") => InputArg::File(p),
            _ => InputArg::Stdin,
        }
    }

    /// A name for messages: the path, or `<stdin>`.
    pub(crate) fn display_name(&self) -> String {
        match self {
            InputArg::Stdin => "<stdin>".into(),
            InputArg::File(p) => p.display().to_string(),
        }
    }

    /// Opens the input. Returns the reader and the file's metadata when it is a regular file.
    ///
    /// # Errors
    ///
    /// [`CliError::Read`] if the file cannot be opened, or is a directory (which opens, and
    /// fails only at the first read: commands open their input before they prompt).
    pub(crate) fn open(&self) -> Result<(Box<dyn Read>, Option<fs::Metadata>), CliError> {
        match self {
            InputArg::Stdin => Ok((Box::new(io::stdin().lock()), None)),
            InputArg::File(path) => {
                let read_err = |source| CliError::Read {
                    path: path.clone(),
                    source,
                };
                let file = File::open(path).map_err(read_err)?;
                let meta = file.metadata().map_err(read_err)?;
                if meta.is_dir() {
                    return Err(read_err(io::Error::new(
                        io::ErrorKind::IsADirectory,
                        "it is a directory",
                    )));
                }
                let meta = meta.is_file().then_some(meta);
                Ok((Box::new(file), meta))
            }
        }
    }
}

/// Where a command writes its binary output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OutputArg {
    /// No `-o`: stdout, unless stdout is a terminal.
    DefaultStdout,
    /// `-o -`: stdout, even a terminal.
    ExplicitStdout,
    /// `-o FILE`.
    File(PathBuf),
}

impl OutputArg {
    /// `None` is the default stdout, `-` the explicit one.
    pub(crate) fn from_arg(arg: Option<PathBuf>) -> Self {
        match arg {
            None => OutputArg::DefaultStdout,
            Some(p) if p.as_os_str() == OsStr::new("-") => OutputArg::ExplicitStdout,
            Some(p) => OutputArg::File(p),
        }
    }
}

/// Whether binary output may be written: not to a terminal unless the user asked with `-o -`.
///
/// # Errors
///
/// [`CliError::TerminalOutput`] for the default stdout when it is a terminal.
pub(crate) fn check_terminal_output(
    output: &OutputArg,
    stdout_is_terminal: bool,
) -> Result<(), CliError> {
    match output {
        OutputArg::DefaultStdout if stdout_is_terminal => Err(CliError::TerminalOutput),
        _ => Ok(()),
    }
}

/// Refuses an output file that is the input file (it would be replaced by the result), and a
/// standard output redirected into the input file (`kinko seal f >> f`: the output would be
/// appended to the input while it is read; `> f` has already emptied it).
///
/// # Errors
///
/// [`CliError::SameInputAndOutput`].
pub(crate) fn check_distinct(input: &InputArg, output: &OutputArg) -> Result<(), CliError> {
    match (input, output) {
        (InputArg::File(i), OutputArg::File(o)) => {
            if let (Ok(ci), Ok(co)) = (fs::canonicalize(i), fs::canonicalize(o))
                && ci == co
            {
                return Err(CliError::SameInputAndOutput(o.clone()));
            }
        }
        (_, OutputArg::DefaultStdout | OutputArg::ExplicitStdout) => {
            if stdout_is_input(input) {
                return Err(CliError::SameInputAndOutput(PathBuf::from(STDOUT_NAME)));
            }
        }
        (InputArg::Stdin, OutputArg::File(_)) => {}
    }
    Ok(())
}

/// How messages name standard output.
pub(crate) const STDOUT_NAME: &str = "<stdout>";

/// Whether standard output is a regular file that is also the input (by device and inode, as
/// `cat` checks).
#[cfg(unix)]
fn stdout_is_input(input: &InputArg) -> bool {
    use std::os::fd::{AsFd, BorrowedFd};
    use std::os::unix::fs::MetadataExt;

    let meta_of = |fd: BorrowedFd<'_>| {
        fd.try_clone_to_owned()
            .ok()
            .and_then(|fd| File::from(fd).metadata().ok())
    };
    let Some(out) = meta_of(io::stdout().as_fd()).filter(fs::Metadata::is_file) else {
        return false;
    };
    let input = match input {
        InputArg::File(path) => fs::metadata(path).ok(),
        InputArg::Stdin => meta_of(io::stdin().as_fd()),
    };
    input.is_some_and(|i| i.dev() == out.dev() && i.ino() == out.ino())
}

#[cfg(not(unix))]
fn stdout_is_input(_: &InputArg) -> bool {
    false
}

/// An output being written: stdout, or a temporary file published by [`Output::commit`].
#[derive(Debug)]
pub(crate) enum Output {
    /// Standard output.
    ///
    /// Held as a duplicate of file descriptor 1, not through `io::Stdout`: that one is
    /// line-buffered, and binary data full of newline bytes would be scanned and copied
    /// through its buffer. The sealer and opener already write whole chunks.
    Stdout(fs::File),
    /// A temporary file next to the target.
    File(AtomicOutput),
    /// An existing target that is not a regular file (`/dev/null`, a FIFO, a terminal
    /// given by name): written in place. Renaming a temporary file over it would replace
    /// the device node itself.
    Device(fs::File, PathBuf),
}

impl Output {
    /// Opens the output: locks stdout, or creates the temporary file beside the target.
    ///
    /// # Errors
    ///
    /// [`CliError::Write`] if the temporary file cannot be created.
    pub(crate) fn create(arg: &OutputArg) -> Result<Self, CliError> {
        match arg {
            OutputArg::DefaultStdout | OutputArg::ExplicitStdout => {
                use std::os::fd::AsFd;
                let fd = io::stdout()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|source| CliError::Write {
                        path: PathBuf::from("<stdout>"),
                        source,
                    })?;
                Ok(Output::Stdout(fs::File::from(fd)))
            }
            OutputArg::File(path) => match fs::metadata(path) {
                Ok(meta) if !meta.is_file() && !meta.is_dir() => fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map(|f| Output::Device(f, path.clone()))
                    .map_err(|source| CliError::Write {
                        path: path.clone(),
                        source,
                    }),
                _ => AtomicOutput::new(path).map(Output::File),
            },
        }
    }

    /// A name for messages.
    pub(crate) fn path(&self) -> PathBuf {
        match self {
            Output::Stdout(_) => PathBuf::from("<stdout>"),
            Output::File(f) => f.target.clone(),
            Output::Device(_, path) => path.clone(),
        }
    }

    /// Flushes stdout, or syncs the temporary file and renames it over the target.
    ///
    /// # Errors
    ///
    /// [`CliError::Write`] if flushing, syncing or renaming fails.
    pub(crate) fn commit(self) -> Result<(), CliError> {
        let path = self.path();
        let write_err = |source| CliError::Write {
            path: path.clone(),
            source,
        };
        match self {
            Output::Stdout(mut out) => out.flush().map_err(write_err),
            Output::File(f) => f.commit().map_err(write_err),
            Output::Device(mut f, _) => f.flush().map_err(write_err),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Stdout(out) => out.write(buf),
            Output::File(f) => f.temp.write(buf),
            Output::Device(f, _) => f.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Output::Stdout(out) => out.write_all(buf),
            Output::File(f) => f.temp.write_all(buf),
            Output::Device(f, _) => f.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(out) => out.flush(),
            Output::File(f) => f.temp.flush(),
            Output::Device(f, _) => f.flush(),
        }
    }
}

/// A temporary file in the target's directory (created with mode 0600), renamed over the
/// target by [`AtomicOutput::commit`]. Dropped without a commit, it is deleted: the target
/// is never touched by a failed command. A signal that ends the process deletes it too
/// ([`interrupt`]).
#[derive(Debug)]
pub(crate) struct AtomicOutput {
    /// Declared before `registration`: a failed command deletes the file, then unregisters it.
    temp: tempfile::NamedTempFile,
    target: PathBuf,
    registration: interrupt::Registration,
}

impl AtomicOutput {
    /// Creates `.kinko-XXXXXX.tmp` beside `target`.
    ///
    /// # Errors
    ///
    /// [`CliError::Write`] if the directory does not exist or is not writable.
    pub(crate) fn new(target: &Path) -> Result<Self, CliError> {
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".kinko-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|source| CliError::Write {
                path: target.to_path_buf(),
                source,
            })?;
        // Deleted by the signal watcher if Ctrl-C (or SIGTERM, SIGHUP) ends the process.
        let registration = interrupt::register(temp.path());
        Ok(AtomicOutput {
            temp,
            target: target.to_path_buf(),
            registration,
        })
    }

    fn commit(self) -> io::Result<()> {
        let AtomicOutput {
            mut temp,
            target,
            registration,
        } = self;
        temp.flush()?;
        temp.as_file().sync_all()?;
        registration
            .finish(|| temp.persist(&target))
            .map(drop)
            .map_err(|e| e.error)
    }
}

/// A reader that counts bytes for the progress bar and remembers whether it failed.
#[derive(Debug)]
pub(crate) struct Tracked<R> {
    inner: R,
    progress: Option<ProgressBar>,
    /// Bytes read so far.
    count: u64,
    failed: bool,
}

impl<R: Read> Tracked<R> {
    /// Wraps `inner`, advancing `progress` (if any) by each read.
    pub(crate) fn new(inner: R, progress: Option<ProgressBar>) -> Self {
        Tracked {
            inner,
            progress,
            count: 0,
            failed: false,
        }
    }

    /// Starts showing `progress` from here on (e.g. once a passphrase prompt is done), with
    /// the bytes already read counted.
    pub(crate) fn show_progress(&mut self, progress: Option<ProgressBar>) {
        if let Some(p) = &progress {
            p.set_position(self.count);
        }
        self.progress = progress;
    }

    /// Whether a read returned an error (other than `Interrupted`).
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// Clears the progress bar.
    pub(crate) fn finish(&self) {
        if let Some(p) = &self.progress {
            p.finish_and_clear();
        }
    }
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count += n as u64;
                if let Some(p) = &self.progress {
                    p.inc(n as u64);
                }
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failed = true;
                }
                Err(e)
            }
        }
    }
}

/// Whether to draw a progress bar: not asked to be quiet, stderr is a terminal, and the input
/// size is known and large enough for a bar to help.
pub(crate) fn wants_progress(quiet: bool, stderr_is_terminal: bool, size: Option<u64>) -> bool {
    !quiet && stderr_is_terminal && size.is_some_and(|s| s >= PROGRESS_MIN_BYTES)
}

/// A progress bar on stderr for `size` bytes, if [`wants_progress`] says so.
pub(crate) fn progress_bar(quiet: bool, size: Option<u64>, verb: &str) -> Option<ProgressBar> {
    let size = size.filter(|_| wants_progress(quiet, io::stderr().is_terminal(), size))?;
    let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{msg} [{wide_bar}] {bytes}/{total_bytes} eta {eta}")
        .expect("the progress template is valid")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(verb.to_owned());
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_output_to_a_terminal_needs_an_explicit_dash() {
        assert!(matches!(
            check_terminal_output(&OutputArg::DefaultStdout, true),
            Err(CliError::TerminalOutput)
        ));
        assert!(check_terminal_output(&OutputArg::DefaultStdout, false).is_ok());
        assert!(check_terminal_output(&OutputArg::ExplicitStdout, true).is_ok());
        assert!(check_terminal_output(&OutputArg::File("x".into()), true).is_ok());
    }

    #[test]
    fn dash_means_stdin_and_stdout() {
        assert_eq!(InputArg::from_arg(None), InputArg::Stdin);
        assert_eq!(InputArg::from_arg(Some("-".into())), InputArg::Stdin);
        assert_eq!(
            InputArg::from_arg(Some("a".into())),
            InputArg::File("a".into())
        );
        assert_eq!(OutputArg::from_arg(None), OutputArg::DefaultStdout);
        assert_eq!(
            OutputArg::from_arg(Some("-".into())),
            OutputArg::ExplicitStdout
        );
    }

    #[test]
    fn progress_only_for_big_known_inputs_on_a_terminal() {
        let big = Some(PROGRESS_MIN_BYTES);
        assert!(wants_progress(false, true, big));
        assert!(!wants_progress(true, true, big));
        assert!(!wants_progress(false, false, big));
        assert!(!wants_progress(false, true, None));
        assert!(!wants_progress(false, true, Some(1024)));
    }
}
