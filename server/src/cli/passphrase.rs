//! Where a secret typed by the user comes from: a file (`--passphrase-file`, `--password-file`,
//! `--token-file`), an environment variable (`KINKO_PASSPHRASE`, `KINKO_SHARE_PASSWORD`,
//! `KINKO_TOKEN`), or the terminal. Never the command line, where other users can read it in
//! the process list and the shell keeps it in its history.
//!
//! Secrets live in [`SecretString`]s, zeroized on drop. (The copy of an environment variable in
//! the process environment cannot be wiped without `unsafe`; it disappears with the process.)

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::error::CliError;
use super::interrupt;

/// Which secret is read: how prompts and messages name it, and where scripts put it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SecretKind {
    /// Its name in messages, lower case ("passphrase").
    pub(crate) name: &'static str,
    /// Its prompt on the terminal.
    pub(crate) prompt: &'static str,
    /// The environment variable scripts give it in.
    pub(crate) env: &'static str,
    /// The flag that reads it from a file.
    pub(crate) file_flag: &'static str,
}

/// An envelope's passphrase (`kinko seal -p`, `kinko open`).
pub(crate) const PASSPHRASE: SecretKind = SecretKind {
    name: "passphrase",
    prompt: "Passphrase: ",
    env: PASSPHRASE_ENV,
    file_flag: "--passphrase-file",
};

/// A share's password (`kinko share --password`, `kinko get`).
pub(crate) const SHARE_PASSWORD: SecretKind = SecretKind {
    name: "share password",
    prompt: "Share password: ",
    env: "KINKO_SHARE_PASSWORD",
    file_flag: "--password-file",
};

/// An API token (`kinko login`).
pub(crate) const API_TOKEN: SecretKind = SecretKind {
    name: "API token",
    prompt: "API token: ",
    env: "KINKO_TOKEN",
    file_flag: "--token-file",
};

/// The environment variable a passphrase can be given in, for scripts.
pub(crate) const PASSPHRASE_ENV: &str = "KINKO_PASSPHRASE";

/// Largest passphrase file read.
const MAX_PASSPHRASE_FILE: u64 = 64 * 1024;

/// Where to get a secret, decided from the arguments before any work starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PassphraseSource {
    /// The first line of this file.
    File(PathBuf),
    /// The secret's environment variable.
    Env,
    /// Ask on the terminal.
    Terminal,
}

impl PassphraseSource {
    /// `--passphrase-file` wins, then `KINKO_PASSPHRASE`, then the terminal.
    pub(crate) fn choose(file: Option<PathBuf>) -> Self {
        PassphraseSource::choose_for(file, &PASSPHRASE)
    }

    /// The file flag wins, then the secret's environment variable, then the terminal.
    pub(crate) fn choose_for(file: Option<PathBuf>, kind: &SecretKind) -> Self {
        match file {
            Some(path) => PassphraseSource::File(path),
            None if std::env::var_os(kind.env).is_some() => PassphraseSource::Env,
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
        self.read_secret(&PASSPHRASE, confirm)
    }

    /// Reads a secret of `kind`. On the terminal, `confirm` asks for it twice.
    ///
    /// # Errors
    ///
    /// As [`PassphraseSource::read`].
    pub(crate) fn read_secret(
        &self,
        kind: &SecretKind,
        confirm: bool,
    ) -> Result<SecretString, CliError> {
        match self {
            PassphraseSource::File(path) => read_file(path, kind),
            PassphraseSource::Env => match std::env::var(kind.env) {
                Ok(value) => Ok(SecretString::from(value)),
                Err(_) => Err(CliError::PassphraseNotUtf8 {
                    kind: *kind,
                    from: kind.env.into(),
                }),
            },
            PassphraseSource::Terminal => {
                let first = prompt(kind, kind.prompt)?;
                if confirm {
                    let again = format!("Confirm {}: ", kind.name);
                    let second = prompt(kind, &again)?;
                    if first.expose_secret() != second.expose_secret() {
                        return Err(CliError::PassphraseMismatch(*kind));
                    }
                }
                Ok(first)
            }
        }
    }
}

fn prompt(kind: &SecretKind, text: &str) -> Result<SecretString, CliError> {
    if !has_terminal() {
        return Err(CliError::NoTerminal(*kind));
    }
    // Saves the terminal's settings for the signal watcher: a signal that ends the process
    // during the prompt puts its echo back on (see `interrupt`).
    let _terminal = interrupt::TerminalGuard::new();
    match rpassword::prompt_password(text) {
        Ok(secret) => Ok(SecretString::from(secret)),
        // Ctrl-C: rpassword has raised SIGINT and restored the terminal.
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => interrupt::interrupted(),
        Err(source) => Err(CliError::Prompt {
            kind: *kind,
            source,
        }),
    }
}

/// Whether there is a terminal to ask on. rpassword reads from the controlling terminal
/// (`/dev/tty`), not stdin, so a piped stdin does not matter; a process without a
/// controlling terminal (cron, CI, `setsid`) has none.
#[cfg(unix)]
pub(crate) fn has_terminal() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_ok()
}

#[cfg(not(unix))]
pub(crate) fn has_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() || std::io::stderr().is_terminal()
}

/// The file's contents up to the first line break: a file written with `echo` works.
fn read_file(path: &PathBuf, kind: &SecretKind) -> Result<SecretString, CliError> {
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
        Err(_) => Err(CliError::PassphraseNotUtf8 {
            kind: *kind,
            from: path.display().to_string(),
        }),
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
