//! Where a passphrase comes from: a file (`--passphrase-file`), the `KINKO_PASSPHRASE`
//! environment variable, or the terminal. Never the command line, where other users can read
//! it in the process list and the shell keeps it in its history.
//!
//! Passphrases live in [`SecretString`]s, zeroized on drop. (The copy of `KINKO_PASSPHRASE`
//! in the process environment cannot be wiped without `unsafe`; it disappears with the
//! process.)

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::error::CliError;

/// The environment variable a passphrase can be given in, for scripts.
pub(crate) const PASSPHRASE_ENV: &str = "KINKO_PASSPHRASE";

/// Largest passphrase file read.
const MAX_PASSPHRASE_FILE: u64 = 64 * 1024;

/// Where to get the passphrase, decided from the arguments before any work starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PassphraseSource {
    /// The first line of this file.
    File(PathBuf),
    /// `KINKO_PASSPHRASE`.
    Env,
    /// Ask on the terminal.
    Terminal,
}

impl PassphraseSource {
    /// `--passphrase-file` wins, then `KINKO_PASSPHRASE`, then the terminal.
    pub(crate) fn choose(file: Option<PathBuf>) -> Self {
        match file {
            Some(path) => PassphraseSource::File(path),
            None if std::env::var_os(PASSPHRASE_ENV).is_some() => PassphraseSource::Env,
            None => PassphraseSource::Terminal,
        }
    }

    /// Reads the passphrase. On the terminal, `confirm` asks for it twice (sealing).
    ///
    /// # Errors
    ///
    /// Read failures, a non-UTF-8 passphrase, no terminal to ask on, or (with `confirm`) two
    /// different answers.
    pub(crate) fn read(&self, confirm: bool) -> Result<SecretString, CliError> {
        match self {
            PassphraseSource::File(path) => read_file(path),
            PassphraseSource::Env => match std::env::var(PASSPHRASE_ENV) {
                Ok(value) => Ok(SecretString::from(value)),
                Err(_) => Err(CliError::PassphraseNotUtf8(PASSPHRASE_ENV.into())),
            },
            PassphraseSource::Terminal => {
                let first = prompt("Passphrase: ")?;
                if confirm {
                    let second = prompt("Confirm passphrase: ")?;
                    if first.expose_secret() != second.expose_secret() {
                        return Err(CliError::PassphraseMismatch);
                    }
                }
                Ok(first)
            }
        }
    }
}

fn prompt(text: &str) -> Result<SecretString, CliError> {
    if !has_terminal() {
        return Err(CliError::NoTerminal);
    }
    rpassword::prompt_password(text)
        .map(SecretString::from)
        .map_err(CliError::Prompt)
}

/// Whether there is a terminal to ask on. rpassword reads from the controlling terminal
/// (`/dev/tty`), not stdin, so a piped stdin does not matter; a process without a
/// controlling terminal (cron, CI, `setsid`) has none.
#[cfg(unix)]
fn has_terminal() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_ok()
}

#[cfg(not(unix))]
fn has_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() || std::io::stderr().is_terminal()
}

/// The file's contents up to the first line break: a file written with `echo` works.
fn read_file(path: &PathBuf) -> Result<SecretString, CliError> {
    let read_err = |source| CliError::Read {
        path: path.clone(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    // Sized up front so the buffer never reallocates and leaves a copy behind.
    let mut buf = Zeroizing::new(Vec::with_capacity(
        usize::try_from(len.min(MAX_PASSPHRASE_FILE)).unwrap_or(0) + 1,
    ));
    file.take(MAX_PASSPHRASE_FILE)
        .read_to_end(&mut buf)
        .map_err(read_err)?;
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match std::str::from_utf8(line) {
        Ok(text) => Ok(SecretString::from(text)),
        Err(_) => Err(CliError::PassphraseNotUtf8(path.display().to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_file_is_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass");
        for (contents, expected) in [
            (&b"correct horse\n"[..], "correct horse"),
            (b"correct horse\r\nignored", "correct horse"),
            (b"no newline", "no newline"),
            (b"", ""),
        ] {
            std::fs::write(&path, contents).unwrap();
            let got = PassphraseSource::File(path.clone()).read(false).unwrap();
            assert_eq!(got.expose_secret(), expected);
        }
    }
}
