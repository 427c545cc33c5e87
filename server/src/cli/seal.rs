//! `kinko seal`: encrypt a file to recipients and/or a passphrase.

use std::fs;
use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use clap::{Args, ValueEnum, ValueHint};
use kinko_core::envelope::{
    MAX_CHUNK_EXPONENT, MIN_CHUNK_EXPONENT, Metadata, Recipients, SealOptions, Sealer, Suite,
};
use kinko_core::keys::{Recipient, parse_recipients_file};

use super::error::{CliError, KeySource};
use super::io::{
    InputArg, Output, OutputArg, Tracked, check_distinct, check_terminal_output, progress_bar,
};
use super::passphrase::PassphraseSource;

const AFTER_HELP: &str = "\
The output is a Kinko envelope (docs/FORMAT.md): it opens with any one of the identities of
the recipients, or with the passphrase. The file name, size and modification time of IN are
encrypted into it. Sealing a regular file fails if the file changes size while it is read.

A passphrase is read from the terminal (asked twice), or, for scripts, from the environment
variable KINKO_PASSPHRASE or the first line of --passphrase-file FILE. It is never taken from
the command line, where other users could see it.

Binary output is not written to a terminal unless -o - is given explicitly. With -o FILE the
envelope is written to a temporary file beside FILE and renamed into place once complete (a
failure or Ctrl-C leaves nothing behind). FILE is created with mode 0600, whatever the umask.

Examples:
  kinko seal -r age1… report.pdf -o report.pdf.kinko
  kinko seal -R team.txt -r age1… < report.pdf > report.pdf.kinko
  kinko seal -p report.pdf > report.pdf.kinko                 ask for a passphrase
  KINKO_PASSPHRASE=… kinko seal -p --suite chacha report.pdf -o out.kinko
  tar c docs | kinko seal -r age1… --chunk-size 1M > docs.tar.kinko";

/// The payload suite, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SuiteArg {
    /// AES-256-GCM (fast where the CPU has AES instructions).
    Aes,
    /// ChaCha20-Poly1305 (fast and constant time in software).
    Chacha,
}

/// Raw arguments of `kinko seal`, as clap parses them.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct SealArgs {
    /// Seal to this X25519 recipient (an age1… public key). Repeatable.
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    recipients: Vec<String>,

    /// Seal to every recipient listed in FILE (one age1… a line, # comments). Repeatable.
    #[arg(
        short = 'R',
        long = "recipients-file",
        value_name = "FILE",
        value_hint = ValueHint::FilePath
    )]
    recipients_files: Vec<PathBuf>,

    /// Also let a passphrase open the file (asked on the terminal, or KINKO_PASSPHRASE, or
    /// --passphrase-file).
    #[arg(short, long)]
    passphrase: bool,

    /// Read the passphrase from the first line of FILE (with -p).
    #[arg(
        long,
        value_name = "FILE",
        requires = "passphrase",
        value_hint = ValueHint::FilePath
    )]
    passphrase_file: Option<PathBuf>,

    /// Payload cipher. Default: AES-256-GCM where the CPU accelerates AES, else ChaCha20.
    #[arg(long, value_enum, value_name = "SUITE")]
    suite: Option<SuiteArg>,

    /// Plaintext bytes per chunk: a power of two from 4K to 4M (suffixes K and M are KiB and
    /// MiB). Default 64K.
    #[arg(long, value_name = "BYTES")]
    chunk_size: Option<String>,

    /// Write the envelope to OUT ("-" for stdout, even a terminal), created with mode 0600
    /// (only you can read it). Default: stdout.
    #[arg(short, long, value_name = "OUT", value_hint = ValueHint::FilePath)]
    output: Option<PathBuf>,

    /// The file to seal ("-" or absent: stdin).
    #[arg(value_name = "IN", value_hint = ValueHint::FilePath)]
    input: Option<PathBuf>,
}

/// A validated `kinko seal`: every key parsed, every option checked.
#[derive(Debug)]
pub(crate) struct SealConfig {
    recipients: Vec<Recipient>,
    passphrase: Option<PassphraseSource>,
    suite: Suite,
    chunk_size: usize,
    input: InputArg,
    output: OutputArg,
    quiet: bool,
}

impl SealArgs {
    /// Parses keys and checks options before anything is read or written.
    ///
    /// # Errors
    ///
    /// Invalid recipients or recipients files, no recipient at all, a bad chunk size, binary
    /// output to a terminal, or the same file as input and output.
    pub(crate) fn validate(self, quiet: bool) -> Result<SealConfig, CliError> {
        let mut recipients = Vec::new();
        for (i, text) in self.recipients.iter().enumerate() {
            let r = text
                .trim()
                .parse::<Recipient>()
                .map_err(|source| CliError::Key {
                    source_of: KeySource::RecipientArg(i + 1),
                    source,
                })?;
            recipients.push(r);
        }
        for path in self.recipients_files {
            let key_err = |source| CliError::Key {
                source_of: KeySource::RecipientsFile(path.clone()),
                source,
            };
            let file = fs::File::open(&path).map_err(|e| key_err(e.into()))?;
            recipients.extend(parse_recipients_file(io::BufReader::new(file)).map_err(key_err)?);
        }
        let passphrase = self
            .passphrase
            .then(|| PassphraseSource::choose(self.passphrase_file));
        if recipients.is_empty() && passphrase.is_none() {
            return Err(CliError::NoRecipients);
        }
        let suite = match self.suite {
            None => Suite::preferred(),
            Some(SuiteArg::Aes) => Suite::Aes256Gcm,
            Some(SuiteArg::Chacha) => Suite::ChaCha20Poly1305,
        };
        let chunk_size = match self.chunk_size {
            None => kinko_core::envelope::DEFAULT_CHUNK_SIZE,
            Some(text) => parse_chunk_size(&text)?,
        };
        let input = InputArg::from_arg(self.input);
        let output = OutputArg::from_arg(self.output);
        check_terminal_output(&output, io::stdout().is_terminal())?;
        check_distinct(&input, &output)?;
        Ok(SealConfig {
            recipients,
            passphrase,
            suite,
            chunk_size,
            input,
            output,
            quiet,
        })
    }
}

/// Parses `--chunk-size`: bytes, or a number with a K/KiB or M/MiB suffix (powers of 1024).
///
/// # Errors
///
/// A usage error unless the result is a power of two from 4 KiB to 4 MiB.
pub(crate) fn parse_chunk_size(text: &str) -> Result<usize, CliError> {
    let bad = || {
        CliError::usage(
            format!("invalid chunk size {text:?}: not a power of two from 4K to 4M"),
            "Pass e.g. --chunk-size 4096, 64K or 1M.",
        )
    };
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    let (digits, unit) = if let Some(d) = upper
        .strip_suffix("KIB")
        .or_else(|| upper.strip_suffix('K'))
    {
        (d, 1024)
    } else if let Some(d) = upper
        .strip_suffix("MIB")
        .or_else(|| upper.strip_suffix('M'))
    {
        (d, 1024 * 1024)
    } else {
        (upper.as_str(), 1)
    };
    let n: usize = digits.trim().parse().map_err(|_| bad())?;
    let size = n.checked_mul(unit).ok_or_else(bad)?;
    let min = 1usize << MIN_CHUNK_EXPONENT;
    let max = 1usize << MAX_CHUNK_EXPONENT;
    if size.is_power_of_two() && (min..=max).contains(&size) {
        Ok(size)
    } else {
        Err(bad())
    }
}

/// Seals the input into the output.
///
/// # Errors
///
/// Passphrase input errors, I/O errors on either side, and [`CliError::Seal`] for what the
/// library refuses (e.g. a file that changed size while read).
pub(crate) fn run(config: SealConfig) -> Result<(), CliError> {
    let mut recipients = Recipients::new();
    for r in config.recipients {
        recipients = recipients.x25519(r);
    }
    // The input first: a missing or unreadable one is named before the passphrase is asked
    // for (twice).
    let (reader, file_meta) = config.input.open()?;
    if let Some(source) = &config.passphrase {
        let passphrase = source.read(true)?;
        if secrecy::ExposeSecret::expose_secret(&passphrase).is_empty() {
            return Err(CliError::EmptyPassphrase(super::passphrase::PASSPHRASE));
        }
        recipients = recipients.passphrase(passphrase);
    }

    let mut metadata = Metadata::default();
    if let InputArg::File(path) = &config.input
        && let Some(name) = path.file_name()
    {
        metadata.name = name.to_string_lossy().into_owned();
    }
    if let Some(meta) = &file_meta {
        metadata.size = Some(meta.len());
        metadata.modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok());
    }
    let size = metadata.size;
    let output = Output::create(&config.output)?;
    let out_path = output.path();
    let options = SealOptions {
        suite: config.suite,
        chunk_size: config.chunk_size,
        metadata,
    };
    let io_err = |input: &Tracked<_>, source: io::Error| {
        if input.failed() {
            CliError::Read {
                path: config.input.display_name().into(),
                source,
            }
        } else {
            CliError::Write {
                path: out_path.clone(),
                source,
            }
        }
    };
    let mut sealer = Sealer::new(output, &recipients, options).map_err(|e| match e {
        kinko_core::envelope::SealError::Io(source) => CliError::Write {
            path: out_path.clone(),
            source,
        },
        other => other.into(),
    })?;
    // The recipients (and the passphrase in them) are no longer needed.
    drop(recipients);
    // The bar starts after Argon2 (in Sealer::new), so its rate is the payload's.
    let mut input = Tracked::new(reader, progress_bar(config.quiet, size, "sealing"));
    sealer
        .copy_from(&mut input)
        .map_err(|e| io_err(&input, e))?;
    input.finish();
    let output = sealer.finish().map_err(|e| match e {
        kinko_core::envelope::SealError::Io(source) => CliError::Write {
            path: out_path.clone(),
            source,
        },
        other => other.into(),
    })?;
    output.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size("4096").unwrap(), 4096);
        assert_eq!(parse_chunk_size("64K").unwrap(), 65536);
        assert_eq!(parse_chunk_size("64kib").unwrap(), 65536);
        assert_eq!(parse_chunk_size("1M").unwrap(), 1 << 20);
        assert_eq!(parse_chunk_size("4MiB").unwrap(), 4 << 20);
        for bad in [
            "",
            "2048",
            "5000",
            "8M",
            "K",
            "-4096",
            "1G",
            "99999999999999999999K",
        ] {
            assert!(parse_chunk_size(bad).is_err(), "{bad}");
        }
    }
}
