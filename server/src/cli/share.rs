//! `kinko share`: upload a file and create a share link for it.

use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use clap::{Args, ValueHint};
use kinko_client::{ClientError, FileInfo, ShareOptions, UploadOptions};
use kinko_core::keys::{Recipient, parse_recipients_file};
use kinko_core::vault::FileId;
use secrecy::ExposeSecret;

use super::error::{CliError, KeySource};
use super::human::{duration, parse_duration, printable, size, time};
use super::io::InputArg;
use super::manage::parse_file_id;
use super::passphrase::{PassphraseSource, SHARE_PASSWORD};
use super::remote::{Remote, RemoteArgs, TransferBar};

const AFTER_HELP: &str = "\
The file is uploaded (the server seals it as it arrives), then a share is created, and its
link is printed on stdout: one line, nothing else. Hand it to the partner; it is shown only
once (the server keeps just a hash of its secret). Progress and a summary go to stderr.

Durations: 30m, 12h, 7d, 2w, or plain seconds.

--password asks for a password on the terminal (twice), or for scripts reads
KINKO_SHARE_PASSWORD or the first line of --password-file FILE. The partner needs it to
download; wrong attempts lock the share.

--to binds the download to the partner's own key (age1…, from kinko keygen or age-keygen): it
arrives still encrypted and opens only with that key (kinko get -i KEY, or kinko open).

Examples:
  kinko share plan.pdf                                   7 days, no download limit
  kinko share plan.pdf --expires 2d --max-downloads 1
  kinko share plan.pdf --password --to age1…            password and partner's key
  kinko share report.pdf -R partners.txt --name 'Q3 report.pdf'
  kinko share --file-id 9c1e… --expires 1d           share an uploaded file again
  tar c docs | kinko share - --name docs.tar --expires 12h";

/// The longest share lifetime the server accepts, seconds (docs/API.md, `expires_in`: the
/// deployment's maximum share lifetime, 90 days).
const MAX_SHARE_LIFETIME: u64 = 90 * 24 * 60 * 60;

/// Raw arguments of `kinko share`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct ShareArgs {
    /// How long the link works (at most 90d, and never past the file's retention).
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    expires: String,

    /// Refuse downloads after N of them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_downloads: Option<u32>,

    /// Protect the link with a password (asked on the terminal, or KINKO_SHARE_PASSWORD, or
    /// --password-file).
    #[arg(long)]
    password: bool,

    /// Read the password from the first line of FILE (with --password).
    #[arg(
        long,
        value_name = "FILE",
        requires = "password",
        value_hint = ValueHint::FilePath
    )]
    password_file: Option<PathBuf>,

    /// Bind the download to this partner key (age1…): it arrives encrypted to it.
    /// Repeatable.
    #[arg(short = 't', long = "to", value_name = "RECIPIENT")]
    to: Vec<String>,

    /// Bind the download to every key in FILE (one age1… a line, # comments). Repeatable.
    #[arg(
        short = 'R',
        long = "recipients-file",
        value_name = "FILE",
        value_hint = ValueHint::FilePath
    )]
    recipients_files: Vec<PathBuf>,

    /// The file name the partner sees. Default: FILE's name.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,

    /// The content type to store with the file (e.g. application/pdf).
    #[arg(long, value_name = "TYPE")]
    content_type: Option<String>,

    /// Keep the file on the server this long (default: the server's policy).
    #[arg(long, value_name = "DURATION")]
    retention: Option<String>,

    #[command(flatten)]
    remote: RemoteArgs,

    /// Share a file uploaded before (an id from kinko files) instead of uploading one.
    #[arg(
        long,
        value_name = "FILE_ID",
        conflicts_with_all = ["file", "name", "content_type", "retention"]
    )]
    file_id: Option<String>,

    /// The file to share ("-": stdin, then --name is required).
    #[arg(
        value_name = "FILE",
        value_hint = ValueHint::FilePath,
        required_unless_present = "file_id"
    )]
    file: Option<PathBuf>,
}

/// What `kinko share` shares.
#[derive(Debug)]
enum Source {
    /// A file (or stdin) to upload under `name`.
    Upload { input: InputArg, name: String },
    /// A file already on the server.
    Existing(FileId),
}

/// A validated `kinko share`.
#[derive(Debug)]
pub(crate) struct ShareConfig {
    remote: Remote,
    source: Source,
    expires_in: u64,
    max_downloads: Option<u32>,
    password: Option<PassphraseSource>,
    recipients: Vec<Recipient>,
    content_type: Option<String>,
    retention: Option<u64>,
    quiet: bool,
}

impl ShareArgs {
    /// Checks every option, reads the recipients, and finds the server and token.
    ///
    /// # Errors
    ///
    /// Bad durations, recipients or names, an unreadable FILE, not logged in.
    pub(crate) fn validate(self, quiet: bool) -> Result<ShareConfig, CliError> {
        let expires_in = parse_duration(&self.expires, "--expires")?;
        // Checked here so that a long upload is not wasted on a lifetime the server refuses.
        if expires_in > MAX_SHARE_LIFETIME {
            return Err(CliError::usage(
                format!(
                    "--expires {} is longer than a share may live ({})",
                    duration(expires_in),
                    duration(MAX_SHARE_LIFETIME)
                ),
                format!(
                    "Pass --expires {} or less; share again later for longer.",
                    duration(MAX_SHARE_LIFETIME)
                ),
            ));
        }
        let retention = self
            .retention
            .as_deref()
            .map(|r| parse_duration(r, "--retention"))
            .transpose()?;
        let recipients = read_recipients(&self.to, &self.recipients_files)?;
        let source = match (self.file_id, self.file) {
            (Some(id), _) => Source::Existing(parse_file_id(&id)?),
            (None, Some(file)) => upload_source(file, self.name)?,
            (None, None) => unreachable!("clap requires FILE or --file-id"),
        };
        let password = self
            .password
            .then(|| PassphraseSource::choose_for(self.password_file, &SHARE_PASSWORD));
        Ok(ShareConfig {
            remote: self.remote.resolve()?,
            source,
            expires_in,
            max_downloads: self.max_downloads,
            password,
            recipients,
            content_type: self.content_type,
            retention,
            quiet,
        })
    }
}

/// Checks FILE (a regular file, or stdin) and decides the name the partner sees.
fn upload_source(file: PathBuf, name: Option<String>) -> Result<Source, CliError> {
    let input = InputArg::from_arg(Some(file));
    // First: `.` or `/` has no name either, but --name would not help.
    if let InputArg::File(path) = &input {
        let meta = fs::metadata(path).map_err(|source| CliError::Read {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            return Err(CliError::usage(
                format!("{} is a directory", path.display()),
                "Share one file; for a directory, pipe an archive: tar c DIR | kinko share - \
                 --name DIR.tar",
            ));
        }
    }
    let name = match (name, &input) {
        (Some(n), _) => n,
        (None, InputArg::File(path)) => path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                CliError::usage(
                    format!("{} has no file name kinko can send", path.display()),
                    "Give the name the partner should see with --name NAME.",
                )
            })?,
        (None, InputArg::Stdin) => {
            return Err(CliError::usage(
                "sharing stdin needs a name",
                "Give the name the partner should see with --name NAME.",
            ));
        }
    };
    if name.is_empty() {
        return Err(CliError::usage(
            "the name is empty",
            "Give the name the partner should see with --name NAME.",
        ));
    }
    if name.len() > 4096 {
        return Err(CliError::usage(
            "the name must be 1 to 4096 bytes",
            "Pass a shorter --name.",
        ));
    }
    Ok(Source::Upload { input, name })
}

/// Parses `--to` keys and `-R` files.
pub(crate) fn read_recipients(
    args: &[String],
    files: &[PathBuf],
) -> Result<Vec<Recipient>, CliError> {
    let mut recipients = Vec::new();
    for (i, text) in args.iter().enumerate() {
        let r = text
            .trim()
            .parse::<Recipient>()
            .map_err(|source| CliError::Key {
                source_of: KeySource::ToArg(i + 1),
                source,
            })?;
        recipients.push(r);
    }
    for path in files {
        let key_err = |source| CliError::Key {
            source_of: KeySource::RecipientsFile(path.clone()),
            source,
        };
        let file = fs::File::open(path).map_err(|e| key_err(e.into()))?;
        recipients.extend(parse_recipients_file(io::BufReader::new(file)).map_err(key_err)?);
    }
    Ok(recipients)
}

/// Uploads, shares, prints the link.
///
/// # Errors
///
/// Password input errors, read errors, and the server's refusals. A file uploaded whose
/// share is then refused is deleted again.
pub(crate) fn run(config: ShareConfig) -> Result<(), CliError> {
    // The file first: one that cannot be read is named before the password is asked for.
    let opened = match &config.source {
        Source::Upload { input, .. } => Some(input.open()?),
        Source::Existing(_) => None,
    };
    // The password before the upload: a mistyped confirmation must not cost an upload.
    let password = match &config.password {
        Some(source) => {
            let pw = source.read_secret(&SHARE_PASSWORD, true)?;
            if pw.expose_secret().is_empty() {
                return Err(CliError::EmptyPassphrase(SHARE_PASSWORD));
            }
            Some(pw)
        }
        None => None,
    };
    let remote = &config.remote;
    let (file, uploaded) = match (&config.source, opened) {
        (Source::Upload { input, name }, Some(opened)) => {
            (upload(&config, input, opened, name)?, true)
        }
        (Source::Upload { .. }, None) => unreachable!("an upload's input was opened above"),
        (Source::Existing(id), _) => (
            remote.client.file(id).map_err(|e| remote.owned_err(e))?,
            false,
        ),
    };

    let mut options = ShareOptions::new(config.expires_in);
    options.max_downloads = config.max_downloads;
    options.password = password;
    options.recipients = config.recipients.clone();
    let share = match remote.client.create_share(&file.id, &options) {
        Ok(s) => s,
        Err(e) => {
            // Nobody can reach a file just uploaded without its share: do not leave it behind.
            if uploaded {
                let _ = remote.client.delete_file(&file.id);
            }
            return Err(remote.owned_err(e));
        }
    };
    drop(options);

    let link = share.link.expose_secret();
    let mut out = io::stdout().lock();
    writeln!(out, "{}", link.expose_secret())
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Write {
            path: "<stdout>".into(),
            source,
        })?;
    if !config.quiet {
        // The server ends a share with its file: --expires past the file's retention gives a
        // shorter link than asked.
        let cut_short = match file.retain_until {
            Some(end) if end == share.expires => remote
                .client
                .file_shares(&file.id)
                .ok()
                .and_then(|shares| shares.into_iter().find(|s| s.id == share.id))
                .map(|s| share.expires.saturating_sub(s.created))
                .filter(|lifetime| *lifetime < config.expires_in),
            _ => None,
        };
        let mut terms = vec![format!(
            "until {} ({})",
            time(share.expires),
            duration(cut_short.unwrap_or(config.expires_in))
        )];
        if let Some(n) = config.max_downloads {
            terms.push(format!("{n} download{}", if n == 1 { "" } else { "s" }));
        }
        if config.password.is_some() {
            terms.push("password".into());
        }
        if !config.recipients.is_empty() {
            terms.push(format!("bound to {} key(s)", config.recipients.len()));
        }
        eprintln!(
            "Shared {} ({}): {}. Share id {}.",
            printable(&file.name),
            size(file.size),
            terms.join(", "),
            share.id
        );
        if share.frozen {
            eprintln!(
                "kinko: note: the deployment is frozen: the link is refused until an admin \
                 unfreezes it (kinko admin unfreeze)."
            );
        }
        if cut_short.is_some() {
            eprintln!(
                "kinko: note: the link ends before the {} asked: the file is kept only until {} \
                 (its retention), and no share outlives its file.",
                duration(config.expires_in),
                time(share.expires)
            );
        }
    }
    Ok(())
}

/// Uploads `input` (`opened`: its reader and metadata) as `name`, with a progress bar.
fn upload(
    config: &ShareConfig,
    input: &InputArg,
    (reader, meta): (Box<dyn Read>, Option<fs::Metadata>),
    name: &str,
) -> Result<FileInfo, CliError> {
    let remote = &config.remote;
    let mut upload = UploadOptions::default();
    upload.size = meta.as_ref().map(|m| m.len());
    upload.content_type = config.content_type.clone();
    upload.retention = config.retention;
    let mut bar = TransferBar::new(config.quiet, "uploading");
    let uploaded = remote
        .client
        .upload(name, reader, &upload, |p| bar.update(p));
    bar.finish();
    uploaded.map_err(|e| match e {
        ClientError::Io(source) => CliError::Read {
            path: input.display_name().into(),
            source,
        },
        other => remote.err(other),
    })
}
