//! `kinko keygen`: a new X25519 identity, written as `age-keygen` writes it.

use std::fs::OpenOptions;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, ValueHint};
use kinko_core::keys::Identity;
use secrecy::ExposeSecret;

use super::error::CliError;

const AFTER_HELP: &str = "\
The identity file has the format age-keygen writes, so Kinko keys work with age and rage:

  # created: 2025-01-01T12:00:00Z
  # public key: age1…
  AGE-SECRET-KEY-1…

Give the public key (age1…) to whoever seals files for you; keep the file secret.

Examples:
  kinko keygen -o ~/.kinko/key.txt      create a key file (mode 0600), print its public key
  kinko keygen > key.txt                write the identity to stdout
  kinko seal -r age1… report.pdf > report.pdf.kinko
  kinko open -i ~/.kinko/key.txt -o report.pdf report.pdf.kinko";

/// Raw arguments of `kinko keygen`, as clap parses them.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct KeygenArgs {
    /// Write the identity to FILE (created with mode 0600; never overwritten) and print the
    /// public key on stderr. Default: stdout.
    #[arg(short, long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    output: Option<PathBuf>,
}

/// Where the new identity goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeygenConfig {
    /// Standard output.
    Stdout,
    /// A new file.
    File(PathBuf),
}

impl KeygenArgs {
    /// Validates the arguments.
    pub(crate) fn validate(self) -> Result<KeygenConfig, CliError> {
        Ok(match self.output {
            Some(p) if p.as_os_str() != "-" => KeygenConfig::File(p),
            _ => KeygenConfig::Stdout,
        })
    }
}

/// Generates the identity and writes it.
///
/// # Errors
///
/// [`CliError::OutputExists`] if the file exists; [`CliError::Write`] on I/O errors.
pub(crate) fn run(config: KeygenConfig) -> Result<(), CliError> {
    let identity = Identity::generate();
    let public = identity.to_public();
    let contents = identity.identity_file_contents(&rfc3339_utc(SystemTime::now()));
    match config {
        KeygenConfig::File(path) => {
            let write_err = |source| CliError::Write {
                path: path.clone(),
                source,
            };
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = match options.open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(CliError::OutputExists(path));
                }
                Err(e) => return Err(write_err(e)),
            };
            file.write_all(contents.expose_secret().as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(write_err)?;
            eprintln!("Public key: {public}");
        }
        KeygenConfig::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(contents.expose_secret().as_bytes())
                .and_then(|()| out.flush())
                .map_err(|source| CliError::Write {
                    path: "<stdout>".into(),
                    source,
                })?;
            // As age-keygen: when the identity goes to a file or a pipe, show the public key.
            if !io::stdout().is_terminal() {
                eprintln!("Public key: {public}");
            }
        }
    }
    Ok(())
}

/// `time` as an RFC 3339 UTC timestamp with second precision: `2023-11-14T22:13:20Z`.
/// Times before 1970 (a badly set clock) print as the epoch.
pub(crate) fn rfc3339_utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_known_instants() {
        let at = |s| rfc3339_utc(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(at(4_102_444_800), "2100-01-01T00:00:00Z");
    }
}
