//! An interrupted command leaves no temporary output behind, and no terminal with its echo
//! off.
//!
//! Outputs are written to a temporary file first ([`super::io::AtomicOutput`]), and a failed
//! command deletes it when it unwinds. A signal does not unwind: by default SIGINT, SIGTERM and
//! SIGHUP end the process at once, and a half-written `.kinko-XXXXXX.tmp` (a download's or an
//! opened envelope's plaintext) would stay next to the target forever.
//!
//! So every temporary output is [`register`]ed while it exists. The first registration starts
//! a watcher thread that waits for those signals (through tokio's handler, which only wakes
//! the thread: nothing but a write to a pipe runs in the signal handler itself). On a signal
//! the watcher takes the registry's lock, deletes every registered file, then puts the
//! signal's default action back and raises it again: the process ends *by the signal*, as it
//! would have without the clean-up, and shells show 130 for SIGINT, 143 for SIGTERM, 129 for
//! SIGHUP. An exit with those codes would not be the same: a shell that sees its child exit
//! normally after a Ctrl-C assumes the child handled it, and goes on with the rest of the
//! script (`for f in *.pdf; do kinko share "$f"; done` would only skip to the next file). The
//! watcher never releases the lock, so a commit racing with it either finished before (its
//! file is no longer registered) or never happens.
//!
//! A signal the process inherited as ignored (SIGHUP under `nohup`, SIGINT in a background
//! job of a script) stays ignored: the watcher does not listen for it.
//!
//! A prompt for a secret turns the terminal's echo off (and its line editing and signal keys:
//! rpassword reads key by key and raises SIGINT itself for Ctrl-C). Exiting from the watcher
//! skips rpassword's restoring drop, and the default action of SIGINT skips everything, so
//! either would leave the user's shell without echo. So a prompt runs under a
//! [`TerminalGuard`]: it starts the watcher, and saves the terminal's settings for the watcher
//! to put back before it exits. A Ctrl-C typed at the prompt reaches the prompting thread as
//! an error too, after the SIGINT; that thread ends the process the same way
//! ([`interrupted`]), so the process ends by SIGINT whichever thread gets there first (and
//! also when SIGINT is ignored: the key was typed at our own prompt).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, Once};

/// The temporary files being written.
static IN_PROGRESS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Starts the watcher once.
static WATCHER: Once = Once::new();
/// The terminal's settings before the current prompt changed them.
#[cfg(unix)]
static TERMINAL: Mutex<Option<SavedTerminal>> = Mutex::new(None);

/// The status shells show for a command ended by SIGHUP (128 + 1).
pub(crate) const EXIT_SIGHUP: u8 = 129;
/// The status shells show for a command ended by SIGINT (128 + 2), e.g. Ctrl-C.
pub(crate) const EXIT_SIGINT: u8 = 130;
/// The status shells show for a command ended by SIGTERM (128 + 15).
pub(crate) const EXIT_SIGTERM: u8 = 143;

fn registry() -> MutexGuard<'static, Vec<PathBuf>> {
    // A panic while holding the lock leaves a plain list behind: still usable.
    IN_PROGRESS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A temporary file that the signal watcher deletes if a signal ends the process, until this
/// is dropped or [`Registration::finish`]ed.
#[derive(Debug)]
pub(crate) struct Registration {
    path: Option<PathBuf>,
}

/// Registers `path` (see [`Registration`]).
pub(crate) fn register(path: &Path) -> Registration {
    WATCHER.call_once(start_watcher);
    registry().push(path.to_path_buf());
    Registration {
        path: Some(path.to_path_buf()),
    }
}

/// A terminal and its settings.
#[cfg(unix)]
struct SavedTerminal {
    tty: std::fs::File,
    settings: rustix::termios::Termios,
}

#[cfg(unix)]
fn saved_terminal() -> MutexGuard<'static, Option<SavedTerminal>> {
    TERMINAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// While this lives, a signal that ends the process first puts the controlling terminal's
/// settings back as they were when it was made. Made just before a prompt changes them; the
/// prompt restores them itself when it returns.
#[derive(Debug)]
pub(crate) struct TerminalGuard {
    _private: (),
}

impl TerminalGuard {
    /// Starts the signal watcher and saves the terminal's settings. Without a terminal (or
    /// off Unix) there is nothing to save, and the guard only starts the watcher.
    pub(crate) fn new() -> TerminalGuard {
        WATCHER.call_once(start_watcher);
        #[cfg(unix)]
        {
            let saved = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/tty")
                .ok()
                .and_then(|tty| {
                    let settings = rustix::termios::tcgetattr(&tty).ok()?;
                    Some(SavedTerminal { tty, settings })
                });
            *saved_terminal() = saved;
        }
        TerminalGuard { _private: () }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        #[cfg(unix)]
        saved_terminal().take();
    }
}

/// Ends the process after a Ctrl-C at a prompt, as the watcher does for SIGINT (see the module
/// docs): whichever of the two gets the registry's lock first ends it, the other waits
/// on the lock until the process is gone.
pub(crate) fn interrupted() -> ! {
    exit_for_signal(EXIT_SIGINT)
}

/// Deletes every registered temporary file, puts the terminal back, and ends the process by the
/// signal whose shell status is `code` (see the module docs), or where that cannot be done,
/// exits with `code`.
fn exit_for_signal(code: u8) -> ! {
    let paths = registry();
    for path in paths.iter() {
        let _ = std::fs::remove_file(path);
    }
    #[cfg(unix)]
    if let Some(saved) = saved_terminal().as_ref() {
        let _ = rustix::termios::tcsetattr(
            &saved.tty,
            rustix::termios::OptionalActions::Now,
            &saved.settings,
        );
    }
    // The lock stays held until the process is gone: nothing is published after this.
    #[cfg(unix)]
    {
        use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};
        let signal = match code {
            EXIT_SIGHUP => Some(SIGHUP),
            EXIT_SIGINT => Some(SIGINT),
            EXIT_SIGTERM => Some(SIGTERM),
            _ => None,
        };
        if let Some(signal) = signal {
            // Does not return for these three (it aborts if raising fails).
            let _ = signal_hook::low_level::emulate_default_handler(signal);
        }
    }
    std::process::exit(i32::from(code));
}

fn forget(paths: &mut Vec<PathBuf>, path: &Path) {
    if let Some(i) = paths.iter().rposition(|p| p == path) {
        paths.swap_remove(i);
    }
}

impl Registration {
    /// Runs `publish` (which renames the file) with the registry locked, then forgets the
    /// file: a signal handled meanwhile waits, so the file is either published and forgotten,
    /// or deleted before it could be published.
    pub(crate) fn finish<T>(mut self, publish: impl FnOnce() -> T) -> T {
        let mut paths = registry();
        let result = publish();
        if let Some(path) = self.path.take() {
            forget(&mut paths, &path);
        }
        result
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            forget(&mut registry(), &path);
        }
    }
}

#[cfg(unix)]
fn start_watcher() {
    use tokio::signal::unix::{Signal, SignalKind, signal};

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!(
                "kinko: warning: cannot watch for signals ({e}): an interrupted command may \
                 leave a .kinko-*.tmp file behind"
            );
            return;
        }
    };
    let ignored = ignored_signals();
    // Registered now, before the first temporary file exists, so that no signal can arrive
    // between its creation and the handler's.
    let listen = |kind: SignalKind, number: u32| -> Option<Signal> {
        let _context = runtime.enter();
        (ignored & (1 << (number - 1)) == 0)
            .then(|| signal(kind).ok())
            .flatten()
    };
    let interrupt = listen(SignalKind::interrupt(), 2);
    let terminate = listen(SignalKind::terminate(), 15);
    let hangup = listen(SignalKind::hangup(), 1);
    std::thread::spawn(move || {
        async fn received(signal: Option<Signal>) {
            match signal {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        let code = runtime.block_on(async move {
            tokio::select! {
                () = received(interrupt) => EXIT_SIGINT,
                () = received(terminate) => EXIT_SIGTERM,
                () = received(hangup) => EXIT_SIGHUP,
            }
        });
        exit_for_signal(code);
    });
}

#[cfg(not(unix))]
fn start_watcher() {}

/// The signals this process inherited as ignored, as the kernel's bit mask (bit n-1 for
/// signal n), from `/proc/self/status`. Where that cannot be read, SIGHUP counts as ignored
/// (it is under `nohup`, and must stay so), SIGINT and SIGTERM as not.
#[cfg(unix)]
fn ignored_signals() -> u64 {
    const SIGHUP_BIT: u64 = 1;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("SigIgn:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(SIGHUP_BIT)
}
