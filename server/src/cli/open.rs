//! `kinko open`: decrypt an envelope with identities or a passphrase.

use std::io::{self, IsTerminal, Read};
use std::path::PathBuf;

use clap::{Args, ValueHint};
use kinko_core::envelope::{Header, Keyring, OpenError, Opener, StanzaKind};
use kinko_core::keys::{Identity, parse_identity_file};
use zeroize::Zeroizing;

use super::error::{CliError, KeySource};
use super::io::{
    InputArg, Output, OutputArg, Tracked, check_distinct, check_terminal_output, progress_bar,
};
use super::passphrase::{PASSPHRASE_ENV, PassphraseSource};

/// Largest identity file read (a key line is 74 bytes; this leaves room for many and for
/// comments, and keeps a wrong path such as a disk image from being read whole).
const MAX_IDENTITY_FILE: u64 = 1024 * 1024;

const AFTER_HELP: &str = "\
Every chunk is authenticated before any of its plaintext is released. With -o OUT the
plaintext goes to a temporary file beside OUT, renamed over OUT only once the whole envelope
has verified: a failed or interrupted (Ctrl-C, SIGTERM, SIGHUP) open leaves no partial
plaintext and an existing OUT untouched. OUT is created with mode 0600 (readable by you only,
whatever the umask); chmod it to share it further.

Written to stdout, the output is a stream: a failure in the middle of the file (a damaged or
truncated envelope) can leave the verified chunks before it on stdout. Check the exit code
before using the output, or use -o.

If the file has a passphrase stanza and no -i is given, the passphrase is read from
--passphrase-file, KINKO_PASSPHRASE or the terminal. --passphrase-file and KINKO_PASSPHRASE are
also tried alongside -i identities.

Binary output is not written to a terminal unless -o - is given explicitly.

Examples:
  kinko open -i key.txt -o report.pdf report.pdf.kinko
  kinko open -i key.txt < report.pdf.kinko > report.pdf
  kinko open report.pdf.kinko -o report.pdf             ask for the passphrase
  KINKO_PASSPHRASE=… kinko open -o report.pdf report.pdf.kinko
  kinko open -i key.txt notes.txt.kinko -o -             print to the terminal";

/// Raw arguments of `kinko open`, as clap parses them.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct OpenArgs {
    /// Open with the identities in FILE (AGE-SECRET-KEY-1… lines, as kinko keygen and
    /// age-keygen write them). Repeatable.
    #[arg(short, long = "identity", value_name = "FILE", value_hint = ValueHint::FilePath)]
    identities: Vec<PathBuf>,

    /// Read the passphrase from the first line of FILE.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    passphrase_file: Option<PathBuf>,

    /// Write the plaintext to OUT ("-" for stdout, even a terminal), created with mode 0600
    /// (only you can read it, whatever the umask). Default: stdout.
    #[arg(short, long, value_name = "OUT", value_hint = ValueHint::FilePath)]
    output: Option<PathBuf>,

    /// The envelope to open ("-" or absent: stdin).
    #[arg(value_name = "IN", value_hint = ValueHint::FilePath)]
    input: Option<PathBuf>,
}

/// The keys an envelope may be opened with.
#[derive(Debug, Default)]
pub(crate) struct OpenKeys {
    /// Identities from `-i` files.
    pub(crate) identities: Vec<Identity>,
    /// An explicitly given passphrase source (file or environment), tried with identities.
    pub(crate) explicit_passphrase: Option<PassphraseSource>,
}

/// A validated `kinko open`.
#[derive(Debug)]
pub(crate) struct OpenConfig {
    keys: OpenKeys,
    input: InputArg,
    output: OutputArg,
    quiet: bool,
}

impl OpenArgs {
    /// Reads the identity files and checks the outputs before the envelope is touched.
    ///
    /// # Errors
    ///
    /// Unreadable or invalid identity files, binary output to a terminal, the same file as
    /// input and output.
    pub(crate) fn validate(self, quiet: bool) -> Result<OpenConfig, CliError> {
        let mut identities = Vec::new();
        for path in self.identities {
            identities.extend(read_identity_file(&path)?);
        }
        let explicit_passphrase = match self.passphrase_file {
            Some(path) => Some(PassphraseSource::File(path)),
            None if std::env::var_os(PASSPHRASE_ENV).is_some() => Some(PassphraseSource::Env),
            None => None,
        };
        let input = InputArg::from_arg(self.input);
        let output = OutputArg::from_arg(self.output);
        check_terminal_output(&output, io::stdout().is_terminal())?;
        check_distinct(&input, &output)?;
        Ok(OpenConfig {
            keys: OpenKeys {
                identities,
                explicit_passphrase,
            },
            input,
            output,
            quiet,
        })
    }
}

/// Reads one identity file through a buffer that is wiped afterwards.
///
/// # Errors
///
/// [`CliError::Key`] for an unreadable file or one that is not an identity file.
pub(crate) fn read_identity_file(path: &PathBuf) -> Result<Vec<Identity>, CliError> {
    let key_err = |source| CliError::Key {
        source_of: KeySource::IdentityFile(path.clone()),
        source,
    };
    let file = std::fs::File::open(path).map_err(|e| key_err(e.into()))?;
    let len = file.metadata().map_err(|e| key_err(e.into()))?.len();
    // Sized up front so that reading never reallocates and leaves a copy of the key behind.
    let mut buf = Zeroizing::new(Vec::with_capacity(
        usize::try_from(len.min(MAX_IDENTITY_FILE)).unwrap_or(0) + 1,
    ));
    file.take(MAX_IDENTITY_FILE)
        .read_to_end(&mut buf)
        .map_err(|e| key_err(e.into()))?;
    parse_identity_file(&buf[..]).map_err(key_err)
}

/// Who a header is sealed to, for messages: "2 X25519 recipients and a passphrase".
fn sealed_to(header: &Header) -> String {
    let count = |kind: StanzaKind| header.stanzas().iter().filter(|s| s.kind() == kind).count();
    let mut parts = Vec::new();
    let plural = |n: usize, one: &str, many: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    let x = count(StanzaKind::X25519);
    if x > 0 {
        parts.push(plural(x, "X25519 recipient", "X25519 recipients"));
    }
    let s = count(StanzaKind::Symmetric);
    if s > 0 {
        parts.push(plural(s, "symmetric key", "symmetric keys"));
    }
    let other = header
        .stanzas()
        .iter()
        .filter(|s| matches!(s.kind(), StanzaKind::Unknown(_)))
        .count();
    if other > 0 {
        parts.push(plural(
            other,
            "stanza of unknown kind",
            "stanzas of unknown kind",
        ));
    }
    let passphrase = count(StanzaKind::Passphrase) > 0;
    match (parts.is_empty(), passphrase) {
        (true, _) => "sealed with a passphrase".into(),
        (false, true) => format!("sealed to {} and a passphrase", parts.join(", ")),
        (false, false) => format!("sealed to {}", parts.join(", ")),
    }
}

/// Opens the envelope into the output.
///
/// # Errors
///
/// Every envelope error ([`CliError::Open`]), no matching key, passphrase input errors, and
/// I/O errors on either side.
pub(crate) fn run(config: OpenConfig) -> Result<(), CliError> {
    let (reader, file_meta) = config.input.open()?;
    let size = file_meta.as_ref().map(|m| m.len());
    open_stream(
        reader,
        &config.input.display_name(),
        size,
        config.keys,
        &config.output,
        config.quiet,
    )
}

/// Opens the envelope read from `reader` (named `input_name` in messages, `size` bytes when
/// known, for the progress bar) into `output`. A file output is written to a temporary file
/// and renamed over the target only once the whole envelope verified.
///
/// # Errors
///
/// As [`run`].
pub(crate) fn open_stream(
    reader: impl Read,
    input_name: &str,
    size: Option<u64>,
    keys: OpenKeys,
    output: &OutputArg,
    quiet: bool,
) -> Result<(), CliError> {
    let open_err = |source| CliError::Open {
        input: input_name.to_owned(),
        source,
    };
    let mut input = Tracked::new(reader, None);

    // The header first: a file that is not an envelope fails before anyone is asked for a
    // passphrase.
    let header = Header::read(&mut input).map_err(open_err)?;
    let has_passphrase_stanza = header
        .stanzas()
        .iter()
        .any(|s| s.kind() == StanzaKind::Passphrase);
    let identities_tried = !keys.identities.is_empty();
    let mut keyring = Keyring::new().identities(keys.identities);
    let mut passphrase_tried = false;
    if has_passphrase_stanza {
        let source = match keys.explicit_passphrase {
            Some(source) => Some(source),
            None if !identities_tried => Some(PassphraseSource::Terminal),
            None => None,
        };
        if let Some(source) = source {
            keyring = keyring.passphrase(source.read(false)?);
            passphrase_tried = true;
        }
    } else if !identities_tried {
        return Err(CliError::NoIdentity {
            sealed_to: sealed_to(&header),
        });
    }

    let dek = match header.unwrap_key(&keyring) {
        Ok(dek) => dek,
        Err(OpenError::NoMatchingStanza) => {
            return Err(CliError::NoMatchingKey {
                sealed_to: sealed_to(&header),
                passphrase_tried,
                identities_tried,
                passphrase_stanza: has_passphrase_stanza,
            });
        }
        Err(e) => return Err(open_err(e)),
    };
    drop(keyring);
    // The bar starts once any passphrase prompt is over.
    input.show_progress(progress_bar(quiet, size, "opening"));
    // The opener borrows the input, so that after a failure the reader can say whether the
    // I/O error was its own (Opener has no `into_inner`).
    let mut opener = Opener::from_parts(header, dek, &mut input).map_err(open_err)?;

    // Only now that the header verified is an output file created.
    let mut output = Output::create(output)?;
    let out_path = output.path();
    let result = opener.copy_to(&mut output);
    drop(opener);
    input.finish();
    match result {
        Ok(_) => output.commit(),
        // copy_to reports read and write errors alike.
        Err(OpenError::Io(source)) if !input.failed() => Err(CliError::Write {
            path: out_path,
            source,
        }),
        Err(e) => Err(open_err(e)),
    }
}
