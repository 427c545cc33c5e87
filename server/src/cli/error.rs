//! The one error type of the `kinko` command line, its hints, and its exit codes.
//!
//! Every error prints as two lines: what happened (`Display`), then what to do about it
//! ([`CliError::hint`]), the way age pairs each `err-*` message with a `rec-*` line. Exit
//! codes are decided in one place, [`CliError::exit_code`], and documented in `kinko --help`
//! from the same table ([`EXIT_CODES`]), so the two cannot drift apart.
//!
//! No variant carries a passphrase, an identity or a recipient string as typed: key parsing
//! errors from `kinko-core` only say which check failed, and command-line keys are named by
//! their position.

use std::fmt;
use std::io;
use std::path::PathBuf;

use kinko_client::{ClientError, NetworkErrorKind, UrlError};
use kinko_core::envelope::{OpenError, SealError};
use kinko_core::keys::KeyError;

use super::interrupt::{EXIT_SIGHUP, EXIT_SIGINT, EXIT_SIGTERM};
use super::passphrase::{API_TOKEN, SecretKind};

/// Exit code: success (also a closed pipe on stdout, e.g. `kinko open … | head`).
pub(crate) const EXIT_OK: u8 = 0;
/// Exit code: bad or conflicting arguments, or a refused output (terminal, existing key file).
pub(crate) const EXIT_USAGE: u8 = 1;
/// Exit code: reading or writing a file failed.
pub(crate) const EXIT_IO: u8 = 2;
/// Exit code: a recipient, identity, key file or passphrase given is not valid.
pub(crate) const EXIT_BAD_KEY: u8 = 3;
/// Exit code: the input is not a Kinko envelope (bad magic bytes).
pub(crate) const EXIT_NOT_ENVELOPE: u8 = 4;
/// Exit code: the envelope has a format version this build does not read.
pub(crate) const EXIT_UNSUPPORTED_VERSION: u8 = 5;
/// Exit code: the envelope uses a payload suite this build does not know.
pub(crate) const EXIT_UNSUPPORTED_SUITE: u8 = 6;
/// Exit code: a header field is out of range or inconsistent.
pub(crate) const EXIT_MALFORMED_HEADER: u8 = 7;
/// Exit code: no identity or passphrase given opens the envelope.
pub(crate) const EXIT_NO_MATCH: u8 = 8;
/// Exit code: the header MAC does not verify (the header was modified).
pub(crate) const EXIT_HEADER_AUTH: u8 = 9;
/// Exit code: a payload chunk does not verify (the payload was damaged or modified).
pub(crate) const EXIT_CHUNK_AUTH: u8 = 10;
/// Exit code: the envelope is cut short (header or payload).
pub(crate) const EXIT_TRUNCATED: u8 = 11;
/// Exit code: bytes follow the final chunk.
pub(crate) const EXIT_TRAILING_DATA: u8 = 12;
/// Exit code: the passphrase stanza asks for more Argon2 work than allowed.
pub(crate) const EXIT_ARGON2_BOUNDS: u8 = 13;
/// Exit code: the payload's length differs from the size recorded in the encrypted metadata.
pub(crate) const EXIT_SIZE_MISMATCH: u8 = 14;

/// Exit code: the server cannot be reached (connection refused, DNS, TLS, connection lost).
pub(crate) const EXIT_UNREACHABLE: u8 = 15;
/// Exit code: not logged in, or the API token is malformed or refused.
pub(crate) const EXIT_UNAUTHENTICATED: u8 = 16;
/// Exit code: the account's role does not allow this.
pub(crate) const EXIT_FORBIDDEN: u8 = 17;
/// Exit code: no such file, share, user or token (or not the caller's).
pub(crate) const EXIT_NOT_FOUND: u8 = 18;
/// Exit code: the server refuses the link (wrong, expired, revoked, used up, locked, frozen,
/// or sent to another key than yours).
pub(crate) const EXIT_LINK_REFUSED: u8 = 19;
/// Exit code: the share needs a password, or the one given is wrong.
pub(crate) const EXIT_PASSWORD: u8 = 20;
/// Exit code: too many attempts from this address; retry later.
pub(crate) const EXIT_RATE_LIMITED: u8 = 21;
/// Exit code: the server refused a value (outside policy, too large, name taken…).
pub(crate) const EXIT_REFUSED: u8 = 22;
/// Exit code: audit verification found a broken record.
pub(crate) const EXIT_AUDIT_BROKEN: u8 = 23;
/// Exit code: the server failed, is unavailable, or answered something unexpected.
pub(crate) const EXIT_SERVER: u8 = 24;

/// Every exit code with its meaning, in the order `--help` lists them.
pub(crate) const EXIT_CODES: &[(u8, &str)] = &[
    (EXIT_OK, "success (a closed pipe on stdout also exits 0)"),
    (
        EXIT_USAGE,
        "usage: bad or conflicting arguments, binary output to a terminal, existing key file",
    ),
    (EXIT_IO, "I/O error reading or writing a file"),
    (
        EXIT_BAD_KEY,
        "invalid recipient, identity, key file or passphrase input",
    ),
    (EXIT_NOT_ENVELOPE, "not a Kinko envelope"),
    (EXIT_UNSUPPORTED_VERSION, "unsupported envelope version"),
    (EXIT_UNSUPPORTED_SUITE, "unsupported payload suite"),
    (EXIT_MALFORMED_HEADER, "malformed header"),
    (
        EXIT_NO_MATCH,
        "no identity or passphrase given opens the file",
    ),
    (
        EXIT_HEADER_AUTH,
        "header authentication failed (the header was modified)",
    ),
    (
        EXIT_CHUNK_AUTH,
        "payload chunk authentication failed (damaged or modified)",
    ),
    (EXIT_TRUNCATED, "the envelope is truncated"),
    (EXIT_TRAILING_DATA, "trailing data after the final chunk"),
    (
        EXIT_ARGON2_BOUNDS,
        "passphrase stanza's Argon2 parameters out of bounds",
    ),
    (
        EXIT_SIZE_MISMATCH,
        "payload length differs from the size recorded at sealing",
    ),
    (
        EXIT_UNREACHABLE,
        "cannot reach the server (connection refused, DNS, TLS, connection lost)",
    ),
    (
        EXIT_UNAUTHENTICATED,
        "not logged in, or the API token is malformed or refused",
    ),
    (EXIT_FORBIDDEN, "the account's role does not allow this"),
    (
        EXIT_NOT_FOUND,
        "no such file, share, user or token (or not yours)",
    ),
    (
        EXIT_LINK_REFUSED,
        "the link is wrong, expired, revoked, used up, locked or frozen, or sent to another key",
    ),
    (
        EXIT_PASSWORD,
        "the share needs a password, or the password is wrong",
    ),
    (EXIT_RATE_LIMITED, "too many attempts; retry later"),
    (
        EXIT_REFUSED,
        "the server refused a value (outside policy, too large, name taken)",
    ),
    (
        EXIT_AUDIT_BROKEN,
        "audit verification found a broken record",
    ),
    (
        EXIT_SERVER,
        "the server failed, is unavailable, or answered unexpectedly",
    ),
    (
        EXIT_SIGHUP,
        "ended by SIGHUP, after deleting a temporary output file in progress",
    ),
    (
        EXIT_SIGINT,
        "ended by SIGINT, e.g. Ctrl-C, after deleting a temporary output file in progress",
    ),
    (
        EXIT_SIGTERM,
        "ended by SIGTERM, after deleting a temporary output file in progress",
    ),
];

/// The "Exit codes:" section of `kinko --help`, built from [`EXIT_CODES`].
pub(crate) fn exit_codes_help() -> String {
    let mut help = String::from("Exit codes:\n");
    for (code, meaning) in EXIT_CODES {
        help.push_str(&format!("  {code:>3}  {meaning}\n"));
    }
    help
}

/// Which of the user's key inputs an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeySource {
    /// The n-th `-r` argument (1-based). The argument itself is never repeated: someone may
    /// have pasted a secret key by mistake.
    RecipientArg(usize),
    /// The n-th `--to` argument of `kinko share` (1-based), never repeated either.
    ToArg(usize),
    /// A recipients file given with `-R`.
    RecipientsFile(PathBuf),
    /// An identity file given with `-i`.
    IdentityFile(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::RecipientArg(n) => write!(f, "recipient #{n} given with -r"),
            KeySource::ToArg(n) => write!(f, "recipient #{n} given with --to"),
            KeySource::RecipientsFile(p) => write!(f, "recipients file {}", p.display()),
            KeySource::IdentityFile(p) => write!(f, "identity file {}", p.display()),
        }
    }
}

/// Everything that can make a `kinko` command fail.
///
/// `Display` says what happened; [`CliError::hint`] says what to do; [`CliError::exit_code`]
/// gives the process exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Arguments that parse but make no sense together.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
        /// What to do instead.
        hint: String,
    },
    /// Binary output would go to a terminal.
    #[error("refusing to write binary output to a terminal")]
    TerminalOutput,
    /// `keygen -o` would overwrite a file.
    #[error("{} already exists; kinko never overwrites a key file", .0.display())]
    OutputExists(PathBuf),
    /// The input and the output are the same file.
    #[error("the input and the output are the same file ({})", .0.display())]
    SameInputAndOutput(PathBuf),
    /// Sealing without anyone who could open the result.
    #[error("no recipients: nobody could open the sealed file")]
    NoRecipients,
    /// Opening a file sealed only to keys, without any identity.
    #[error("no identity given, and the file is not sealed with a passphrase ({sealed_to})")]
    NoIdentity {
        /// Who the file is sealed to, e.g. "2 X25519 recipients".
        sealed_to: String,
    },
    /// Nothing given opens the file.
    #[error("none of the identities or passphrases given opens this file ({sealed_to})")]
    NoMatchingKey {
        /// Who the file is sealed to.
        sealed_to: String,
        /// Whether a passphrase was tried.
        passphrase_tried: bool,
        /// Whether identities were tried.
        identities_tried: bool,
        /// Whether the file has a passphrase stanza.
        passphrase_stanza: bool,
    },
    /// A key argument or key file is invalid.
    #[error("{source_of}: {source}")]
    Key {
        /// Which argument or file.
        source_of: KeySource,
        /// What is wrong with it (never its contents).
        source: KeyError,
    },
    /// A passphrase (or password, or token) is needed and nothing can provide one.
    #[error("a {} is needed but there is no terminal to ask for it", .0.name)]
    NoTerminal(SecretKind),
    /// The two passphrases (or passwords) typed differ.
    #[error("the {}s do not match", .0.name)]
    PassphraseMismatch(SecretKind),
    /// An empty passphrase (or password, or token).
    #[error("the {} is empty", .0.name)]
    EmptyPassphrase(SecretKind),
    /// A secret's file or environment variable is not UTF-8.
    #[error("the {} from {from} is not valid UTF-8", kind.name)]
    PassphraseNotUtf8 {
        /// Which secret.
        kind: SecretKind,
        /// The file or variable.
        from: String,
    },
    /// Reading a file given on the command line failed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Writing the output failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file, or `<stdout>`.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Reading a secret from the terminal failed.
    #[error("cannot read the {} from the terminal: {source}", kind.name)]
    Prompt {
        /// Which secret.
        kind: SecretKind,
        /// Why.
        source: io::Error,
    },
    /// The envelope could not be opened or inspected.
    #[error("{input}: {source}")]
    Open {
        /// The input file, or `<stdin>`.
        input: String,
        /// What the library found.
        source: OpenError,
    },
    /// The envelope could not be sealed.
    #[error("{source}")]
    Seal {
        /// What the library refused.
        source: SealError,
    },
    /// A client command has no server, or no token for it.
    #[error("{}", not_logged_in_text(server.as_deref()))]
    NotLoggedIn {
        /// The server the command would call, if one is known.
        server: Option<String>,
    },
    /// An API token given is not one (the text itself is never repeated).
    #[error("the API token from {from} is malformed")]
    BadToken {
        /// Where it came from: `KINKO_TOKEN`, a file, the terminal, the config file.
        from: String,
    },
    /// A server URL given is not one.
    #[error("invalid server URL: {0}")]
    BadServerUrl(UrlError),
    /// A share link given is not one.
    #[error("invalid link: {0}")]
    BadLink(UrlError),
    /// The client configuration file cannot be used.
    #[error("{}: {problem}", path.display())]
    ClientConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong (never a token).
        problem: String,
    },
    /// An exported audit log does not verify (or cannot be read).
    #[error("{input}: {source}")]
    AuditExport {
        /// The export file, or `<stdin>`.
        input: String,
        /// What verification found.
        source: kinko_core::vault::AuditError,
    },
    /// A call to the server failed.
    #[error("{}", remote_text(server, source, *call))]
    Remote {
        /// The server (no secrets: a base URL or a link without its secret).
        server: String,
        /// What the client reported.
        source: ClientError,
        /// Which kind of call failed (changes the advice).
        call: Call,
    },
}

/// Which kind of call to the server failed: the advice differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// An API call with a token.
    Api,
    /// An API call on a file or share that only its owner (or an admin) may act on: a
    /// refusal means "not yours" more than "wrong role".
    Owned,
    /// A partner's link call before the download was counted.
    Link,
    /// A link download after its ticket counted it: running `kinko get` again counts
    /// another.
    CountedDownload,
}

fn not_logged_in_text(server: Option<&str>) -> String {
    match server {
        Some(s) => format!("no API token for {s}"),
        None => "no server given, and not logged in".into(),
    }
}

fn remote_text(server: &str, err: &ClientError, call: Call) -> String {
    match err {
        ClientError::Network { .. } => format!("cannot reach {server}: {err}"),
        // The server answers a member's call on another user's file or share with its
        // generic "needs another role, or it is someone else's": here it is the second.
        ClientError::Forbidden { .. } if call == Call::Owned => {
            format!("{server}: not allowed: only its owner or an admin may do this")
        }
        _ => format!("{server}: {err}"),
    }
}

impl CliError {
    /// A usage error with its hint.
    pub(crate) fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        CliError::Usage {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// The process exit code for this error (see [`EXIT_CODES`]).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage { .. }
            | CliError::TerminalOutput
            | CliError::OutputExists(_)
            | CliError::SameInputAndOutput(_)
            | CliError::NoRecipients
            | CliError::NoIdentity { .. }
            | CliError::NoTerminal(_)
            | CliError::BadServerUrl(_)
            | CliError::BadLink(_)
            | CliError::ClientConfig { .. } => EXIT_USAGE,
            CliError::NotLoggedIn { .. } | CliError::BadToken { .. } => EXIT_UNAUTHENTICATED,
            // An empty API token is a malformed one, not a bad passphrase.
            CliError::EmptyPassphrase(kind) if *kind == API_TOKEN => EXIT_UNAUTHENTICATED,
            CliError::Remote { source, .. } => remote_exit_code(source),
            CliError::NoMatchingKey { .. } => EXIT_NO_MATCH,
            CliError::Key {
                source: KeyError::Io(_),
                ..
            } => EXIT_IO,
            CliError::Key { .. }
            | CliError::PassphraseMismatch(_)
            | CliError::EmptyPassphrase(_)
            | CliError::PassphraseNotUtf8 { .. } => EXIT_BAD_KEY,
            CliError::Read { .. } | CliError::Write { .. } | CliError::Prompt { .. } => EXIT_IO,
            CliError::Open { source, .. } => open_exit_code(source),
            CliError::AuditExport {
                source: kinko_core::vault::AuditError::Read(_),
                ..
            } => EXIT_IO,
            CliError::AuditExport { .. } => EXIT_AUDIT_BROKEN,
            CliError::Seal { source } => seal_exit_code(source),
        }
    }

    /// What to do about it: one line (or two) for the user.
    pub(crate) fn hint(&self) -> String {
        match self {
            CliError::Usage { hint, .. } => hint.clone(),
            CliError::TerminalOutput => "Use -o FILE or redirect the output (kinko … > FILE). \
                 To write to the terminal anyway, pass -o - explicitly."
                .into(),
            CliError::OutputExists(_) => {
                "Choose another file name, or move the existing file away first.".into()
            }
            CliError::SameInputAndOutput(path) if path.as_os_str() == super::io::STDOUT_NAME => {
                "Redirect the output to another file, or pass -o OTHER_FILE. A shell's > to the \
                 input empties it before kinko starts: check that the input is still whole."
                    .into()
            }
            CliError::SameInputAndOutput(_) => {
                "Write the output to another file (-o OTHER_FILE).".into()
            }
            CliError::NoRecipients => {
                "Pass a recipient with -r age1…, a recipients file with -R FILE, or -p for a \
                 passphrase."
                    .into()
            }
            CliError::NoIdentity { .. } => {
                "Pass the identity file the file was sealed to with -i FILE.".into()
            }
            CliError::NoMatchingKey {
                passphrase_tried,
                identities_tried,
                passphrase_stanza,
                ..
            } => match (identities_tried, passphrase_tried, passphrase_stanza) {
                (false, true, _) => "Check the passphrase. If the file was sealed to a key, pass \
                                     its identity file with -i."
                    .into(),
                (true, true, _) => "Check the passphrase, and did you pass the right identity \
                                    with -i?"
                    .into(),
                (_, false, true) => "Did you pass the right identity with -i? The file can \
                                     also be opened with its passphrase: run without -i to be \
                                     asked for it, or set KINKO_PASSPHRASE."
                    .into(),
                _ => "Did you pass the right identity with -i? The file was sealed to other \
                      keys."
                    .into(),
            },
            CliError::Key { source_of, source } => key_hint(source_of, source),
            CliError::NoTerminal(kind) => format!(
                "Set {} or pass {} FILE (in scripts), or run kinko from a terminal.",
                kind.env, kind.file_flag
            ),
            CliError::PassphraseMismatch(kind) => format!(
                "Run the command again and type the same {} twice.",
                kind.name
            ),
            CliError::EmptyPassphrase(kind) if *kind == API_TOKEN => {
                "Give the API token an admin issued you (kinko admin token USER_ID prints it: \
                 kinko_ followed by 96 hex digits)."
                    .into()
            }
            CliError::EmptyPassphrase(kind) => format!(
                "Choose a {}: a long one (several random words) resists guessing best.",
                kind.name
            ),
            CliError::PassphraseNotUtf8 { kind, .. } => {
                format!("{}s must be UTF-8 text.", capitalized(kind.name))
            }
            CliError::Read { .. } => "Check that the file exists and that you may read it.".into(),
            CliError::Write { .. } => {
                "Check that the directory exists, that you may write to it, and that the disk \
                 has space."
                    .into()
            }
            CliError::Prompt { kind, .. } => {
                format!("Set {} or pass {} FILE instead.", kind.env, kind.file_flag)
            }
            CliError::Open { source, .. } => open_hint(source),
            CliError::Seal { source } => seal_hint(source),
            CliError::AuditExport {
                source: kinko_core::vault::AuditError::Read(_),
                ..
            } => "Check the file name, and that it is the export itself.".into(),
            CliError::AuditExport { .. } => "The export was changed after it was signed, cut \
                 short, or signed by another key. Check the key with the operator, and ask for \
                 a fresh export."
                .into(),
            CliError::NotLoggedIn { server: Some(s) } => {
                format!("Run kinko login --server {s} (or set KINKO_TOKEN for scripts).")
            }
            CliError::NotLoggedIn { server: None } => "Run kinko login --server URL first \
                 (or set KINKO_SERVER and KINKO_TOKEN for scripts)."
                .into(),
            CliError::BadToken { .. } => "An API token is kinko_ followed by 96 hex digits, as \
                 an admin issued it (kinko admin token USER_ID). Ask your admin for one."
                .into(),
            CliError::BadServerUrl(_) => {
                "Give the server's address, e.g. https://files.example.com (or \
                 http://127.0.0.1:8750 for kinko serve --dev)."
                    .into()
            }
            CliError::BadLink(_) => "Paste the whole link the sender gave you, including the part \
                 after # (quote it in the shell: kinko get 'https://…#…')."
                .into(),
            CliError::ClientConfig { path, .. } => format!(
                "Fix or delete {}, then run kinko login again.",
                path.display()
            ),
            CliError::Remote {
                server,
                source,
                call,
            } => remote_hint(server, source, *call),
        }
    }

    /// Whether this error is only a closed pipe on the output (`kinko open … | head`): the
    /// reader went away, which is not a failure of ours.
    pub(crate) fn is_broken_pipe(&self) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<io::Error>()
                && io.kind() == io::ErrorKind::BrokenPipe
            {
                return true;
            }
            source = err.source();
        }
        false
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn remote_exit_code(err: &ClientError) -> u8 {
    match err {
        ClientError::Network { .. } => EXIT_UNREACHABLE,
        ClientError::Unauthenticated { .. } => EXIT_UNAUTHENTICATED,
        ClientError::Forbidden { .. } => EXIT_FORBIDDEN,
        ClientError::NotFound { .. } => EXIT_NOT_FOUND,
        ClientError::LinkInvalid | ClientError::NotRecipient => EXIT_LINK_REFUSED,
        ClientError::PasswordRequired | ClientError::WrongPassword => EXIT_PASSWORD,
        ClientError::RateLimited { .. } => EXIT_RATE_LIMITED,
        ClientError::TooLarge { .. }
        | ClientError::Invalid { .. }
        | ClientError::Exists { .. }
        | ClientError::Timeout
        | ClientError::RangeNotSatisfiable
        | ClientError::SecretInUrl
        | ClientError::InvalidArgument { .. } => EXIT_REFUSED,
        ClientError::AuditBroken { .. } => EXIT_AUDIT_BROKEN,
        ClientError::Io(_) => EXIT_IO,
        // Refused by the client before anything was sent (remote::check_transport refuses
        // it first, as a usage error).
        ClientError::InvalidUrl(_) | ClientError::PlainHttp { .. } => EXIT_USAGE,
        // Internal, Unavailable, UnexpectedResponse, and variants added later.
        _ => EXIT_SERVER,
    }
}

fn remote_hint(server: &str, err: &ClientError, call: Call) -> String {
    let link = matches!(call, Call::Link | Call::CountedDownload);
    match err {
        ClientError::Network { .. } | ClientError::Timeout if call == Call::CountedDownload => {
            format!(
                "{} The download was already counted: running kinko get again counts another \
                 one (and is refused if the share has no downloads left).",
                remote_hint(server, err, Call::Link)
            )
        }
        ClientError::Network { kind, detail } => match kind {
            NetworkErrorKind::ConnectionRefused if link => {
                "The server in the link is not answering: try again later, or ask the sender."
                    .into()
            }
            NetworkErrorKind::ConnectionRefused => format!(
                "Is `kinko serve` running at {server}? Check the URL (kinko login --server URL)."
            ),
            // The host name does not resolve: mistyped or cut short, or no DNS (offline).
            NetworkErrorKind::Dns if link => "Check the link: the host name in it may be \
                mistyped or cut short (copy the whole link again, or ask the sender). If it \
                is right, check this machine's network connection."
                .into(),
            NetworkErrorKind::Dns => format!(
                "Check the host name in {server} (kinko login --server URL), and the network \
                 connection."
            ),
            // rustls's error for a first answer that is not a TLS record at all: a server
            // speaking plain HTTP on that port.
            NetworkErrorKind::Tls if not_tls(detail) => format!(
                "The server did not answer in TLS: it may speak plain HTTP (kinko serve --dev \
                 does). Check the URL ({server}): a server on this machine may be reached with \
                 http://; for another machine, ask its admin for the https:// address."
            ),
            NetworkErrorKind::Tls => format!(
                "The server's certificate is not trusted for this name: check the URL \
                 ({server}). If a company CA issued the certificate, pass the CA's certificate \
                 with --ca-file FILE (or set KINKO_CA_FILE)."
            ),
            _ => format!("Check the network and that {server} is a Kinko server, then retry."),
        },
        ClientError::Unauthenticated { .. } => format!(
            "Run kinko login --server {server} with a valid token: this one may be wrong, \
             expired or revoked, or its user disabled."
        ),
        ClientError::Forbidden { .. } if call == Call::Owned => {
            "Check the id: it belongs to another user (kinko files and kinko shares list \
             yours). Ask them, or an admin, to do it."
                .into()
        }
        ClientError::Forbidden { .. } => {
            "This needs another role (admin, or auditor for the audit log): ask an admin.".into()
        }
        ClientError::NotFound { .. } => "Check the id: kinko files and kinko shares list yours \
             (and kinko admin users the users)."
            .into(),
        ClientError::LinkInvalid => "The link is wrong, expired, revoked or used up; ask the \
             sender for a new one."
            .into(),
        ClientError::PasswordRequired => "This share has a password: run again from a terminal \
             to be asked for it, or set KINKO_SHARE_PASSWORD or pass --password-file FILE."
            .into(),
        ClientError::WrongPassword => "Check the password with the sender. Wrong attempts count \
             toward locking the share."
            .into(),
        ClientError::NotRecipient => "The share was sent to another key than those given with \
             -i: pass the identity whose public key (kinko keygen prints it) you gave the \
             sender, or ask the sender to share to your key. No download was counted."
            .into(),
        ClientError::RateLimited {
            retry_after: Some(s),
        } => format!("Wait {s} seconds, then try again."),
        ClientError::RateLimited { retry_after: None } => "Wait a minute, then try again.".into(),
        ClientError::TooLarge { .. } => {
            "The server does not take bodies this large: ask its admin about the limit.".into()
        }
        ClientError::Invalid { .. } => {
            "Check the values given: the server's message says which one it refused.".into()
        }
        ClientError::Exists { .. } => "Choose another name.".into(),
        ClientError::Timeout => {
            "The transfer stalled for too long: check the network and try again.".into()
        }
        ClientError::AuditBroken { .. } => "The audit log was modified or damaged after it was \
             written: keep a copy (kinko admin audit export -o FILE) and investigate."
            .into(),
        ClientError::Internal { .. } => "The server failed and changed nothing: try again, or \
             give its admin the request id."
            .into(),
        ClientError::Unavailable { .. } => {
            "The server is busy or shutting down: try again in a moment.".into()
        }
        ClientError::Io(_) => "Check the file and the disk.".into(),
        ClientError::InvalidUrl(_) => CliError::BadServerUrl(UrlError::MissingHost).hint(),
        ClientError::PlainHttp { .. } => super::remote::plain_http_hint(),
        _ => format!(
            "Is {server} the address of a Kinko server, and are kinko and the server up to date?"
        ),
    }
}

/// Whether a TLS failure's description says the peer's first bytes were not a TLS record
/// (rustls: "received corrupt message of type InvalidContentType").
fn not_tls(detail: &str) -> bool {
    detail.contains("InvalidContentType")
}

fn open_exit_code(err: &OpenError) -> u8 {
    match err {
        OpenError::NotAnEnvelope => EXIT_NOT_ENVELOPE,
        OpenError::UnsupportedVersion(_) => EXIT_UNSUPPORTED_VERSION,
        OpenError::UnsupportedSuite(_) => EXIT_UNSUPPORTED_SUITE,
        OpenError::MalformedHeader(_) => EXIT_MALFORMED_HEADER,
        OpenError::TruncatedHeader | OpenError::Truncated => EXIT_TRUNCATED,
        OpenError::Argon2ParamsOutOfBounds { .. } => EXIT_ARGON2_BOUNDS,
        OpenError::NoMatchingStanza => EXIT_NO_MATCH,
        OpenError::HeaderAuthFailed => EXIT_HEADER_AUTH,
        OpenError::ChunkAuthFailed { .. } => EXIT_CHUNK_AUTH,
        OpenError::TrailingData => EXIT_TRAILING_DATA,
        OpenError::SizeMismatch { .. } => EXIT_SIZE_MISMATCH,
        OpenError::Io(_) => EXIT_IO,
        // A variant added to kinko-core after this table was written.
        _ => EXIT_IO,
    }
}

fn seal_exit_code(err: &SealError) -> u8 {
    match err {
        SealError::NoRecipients
        | SealError::TooManyStanzas(_)
        | SealError::TooManyPassphrases
        | SealError::InvalidChunkSize(_)
        | SealError::MetadataTooLong(_) => EXIT_USAGE,
        SealError::InvalidRecipient(_) => EXIT_BAD_KEY,
        SealError::Argon2ParamsOutOfBounds { .. } => EXIT_ARGON2_BOUNDS,
        SealError::SizeMismatch { .. } | SealError::Io(_) => EXIT_IO,
        _ => EXIT_IO,
    }
}

fn open_hint(err: &OpenError) -> String {
    match err {
        OpenError::NotAnEnvelope => "Is this the sealed file? Kinko envelopes are made by \
                                     kinko seal (an age file needs age or rage)."
            .into(),
        OpenError::UnsupportedVersion(_) => {
            "The file was made by a newer Kinko: upgrade kinko to open it.".into()
        }
        OpenError::UnsupportedSuite(_) => {
            "The file was made by a newer Kinko, or it is damaged: try upgrading kinko.".into()
        }
        OpenError::MalformedHeader(_) => {
            "The file is damaged or was not made by Kinko: get a fresh copy from the sender.".into()
        }
        OpenError::TruncatedHeader | OpenError::Truncated => {
            "The file is cut short (an interrupted download or copy?): get the complete file \
             again."
                .into()
        }
        OpenError::Argon2ParamsOutOfBounds { .. } => {
            "The passphrase stanza demands more memory or time than kinko allows, so the file \
             may be hostile: ask the sender to seal it again with kinko's defaults."
                .into()
        }
        OpenError::NoMatchingStanza => {
            "Did you pass the right identity with -i? The file was sealed to other keys.".into()
        }
        OpenError::HeaderAuthFailed => {
            "The header was modified after sealing, so do not trust this file: get a fresh \
             copy from the sender."
                .into()
        }
        OpenError::ChunkAuthFailed { .. } => {
            "The file was damaged or modified after sealing: get a fresh copy from the sender. \
             Nothing from the failed chunk on was written."
                .into()
        }
        OpenError::TrailingData => {
            "Bytes were appended after the end of the envelope (two files concatenated, or a \
             modified file): get a fresh copy from the sender."
                .into()
        }
        OpenError::SizeMismatch { .. } => {
            "The envelope is inconsistent with its own metadata: get a fresh copy from the \
             sender."
                .into()
        }
        OpenError::Io(_) => "Check that the file exists and that you may read it.".into(),
        _ => "Get a fresh copy of the file, or upgrade kinko.".into(),
    }
}

fn seal_hint(err: &SealError) -> String {
    match err {
        SealError::NoRecipients => CliError::NoRecipients.hint(),
        SealError::TooManyStanzas(_) => {
            "Split the recipients over several files, or share one recipient key.".into()
        }
        SealError::TooManyPassphrases => "Pass -p only once.".into(),
        SealError::InvalidRecipient(_) => {
            "That key cannot be sealed to safely: ask its owner for their real public key \
             (kinko keygen prints it)."
                .into()
        }
        SealError::InvalidChunkSize(_) => {
            "Pick a power of two between 4096 and 4194304, e.g. --chunk-size 64K.".into()
        }
        SealError::Argon2ParamsOutOfBounds { .. } => {
            "Use the default passphrase parameters.".into()
        }
        SealError::MetadataTooLong(_) => {
            "Rename the input file to a shorter name, or pipe it through stdin.".into()
        }
        SealError::SizeMismatch { .. } => {
            "The input changed while it was read: seal it again once nothing writes to it.".into()
        }
        SealError::Io(_) => {
            "Check that you may write the output and that the disk has space.".into()
        }
        _ => "Try again, or upgrade kinko.".into(),
    }
}

fn key_hint(source_of: &KeySource, err: &KeyError) -> String {
    match (source_of, err) {
        (_, KeyError::Io(_)) => "Check that the file exists and that you may read it.".into(),
        (KeySource::RecipientArg(_) | KeySource::ToArg(_), _) => {
            "A recipient is a public key, age1… (kinko keygen and age-keygen print it).".into()
        }
        (KeySource::RecipientsFile(_), _) => {
            "A recipients file holds one age1… public key a line; blank lines and lines \
             starting with # are ignored."
                .into()
        }
        (KeySource::IdentityFile(_), _) => {
            "Pass an identity file made by kinko keygen or age-keygen (one \
             AGE-SECRET-KEY-1… line; # comments are ignored)."
                .into()
        }
    }
}

impl From<SealError> for CliError {
    fn from(source: SealError) -> Self {
        CliError::Seal { source }
    }
}

/// Prints `err` on stderr as two lines: `error: …` and `hint: …`.
pub(crate) fn report(err: &CliError) {
    eprintln!("kinko: error: {err}");
    eprintln!("kinko: hint: {}", err.hint());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_all_documented() {
        let mut seen = std::collections::BTreeSet::new();
        for (code, _) in EXIT_CODES {
            assert!(seen.insert(*code), "exit code {code} listed twice");
        }
        let help = exit_codes_help();
        for (code, meaning) in EXIT_CODES {
            assert!(help.contains(&format!("{code:>3}  {meaning}")));
        }
    }

    #[test]
    fn each_tampering_case_has_its_own_exit_code() {
        let errors = [
            OpenError::NotAnEnvelope,
            OpenError::UnsupportedVersion(2),
            OpenError::UnsupportedSuite(9),
            OpenError::MalformedHeader("x"),
            OpenError::NoMatchingStanza,
            OpenError::HeaderAuthFailed,
            OpenError::ChunkAuthFailed { index: 1 },
            OpenError::Truncated,
            OpenError::TrailingData,
            OpenError::Argon2ParamsOutOfBounds {
                m_cost: 1 << 30,
                t_cost: 1,
                p_cost: 1,
            },
            OpenError::SizeMismatch {
                declared: 1,
                actual: 2,
            },
            OpenError::Io(io::Error::other("x")),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for source in errors {
            let code = open_exit_code(&source);
            assert!(seen.insert(code), "{source} shares exit code {code}");
            assert!(EXIT_CODES.iter().any(|(c, _)| *c == code));
        }
    }

    #[test]
    fn broken_pipe_is_found_in_the_chain() {
        let err = CliError::Open {
            input: "x".into(),
            source: OpenError::Io(io::Error::from(io::ErrorKind::BrokenPipe)),
        };
        assert!(err.is_broken_pipe());
        let err = CliError::Write {
            path: "<stdout>".into(),
            source: io::Error::from(io::ErrorKind::BrokenPipe),
        };
        assert!(err.is_broken_pipe());
        assert!(!CliError::TerminalOutput.is_broken_pipe());
    }
}
