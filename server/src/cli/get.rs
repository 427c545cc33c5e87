//! `kinko get`: download a share from its link (what a partner runs).
//!
//! View (what the link leads to, not counted) → ticket (the password, if the share has one;
//! counts the download) → content, streamed into a temporary file that is renamed into place
//! only when everything arrived (and, for a recipient-bound share, verified while it was
//! opened with the partner's identity).

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use clap::{Args, ValueHint};
use kinko_client::{Client, ClientError, Download, Link, LinkInfo, Ticket};
use kinko_core::keys::{Identity, Recipient};
use secrecy::SecretString;
use zeroize::Zeroizing;

use super::error::CliError;
use super::human::{printable, size};
use super::interrupt;
use super::io::{Output, OutputArg};
use super::open::{OpenKeys, open_stream, read_identity_file};
use super::passphrase::{PassphraseSource, SHARE_PASSWORD};
use super::remote::{CaArgs, TransferBar, counted_download_err, link_err};

/// Longest default output name, in bytes (file systems allow 255).
const MAX_NAME: usize = 200;

const AFTER_HELP: &str = "\
The link is the whole https://…/s/…#… text the sender gave you; quote it in the shell, because
of the #. Its secret goes to the server only in a request header. With - for LINK the link is
read from standard input instead, so it shows neither in the process list nor in the shell's
history.

A link to plain http:// is refused unless its host is this machine (localhost, 127.0.0.1,
::1) or KINKO_ALLOW_HTTP=1 is set: its secret and the file would cross the network in clear.

The file is saved under the name the sender chose, in the current directory (made safe: no
directories, no leading dots), or in OUT with -o. An existing file is never replaced without
--force. -o OUT is checked before anything is downloaded or counted: its directory must
exist, and OUT must not be a directory. The download goes to a temporary file first and is
renamed only once complete, so a failure (or Ctrl-C, SIGTERM, SIGHUP) leaves nothing behind.
-o - writes to stdout. A saved file is created with mode 0600 (readable by you only, whatever
the umask: it holds a document someone shared with you); chmod it to share it further. If
the connection breaks, the download resumes where it stopped (up to three times; it still
counts as one download), a share bound to a key too (the server gives every request for it
the same envelope).

If the share has a password, kinko asks for it on the terminal (or reads KINKO_SHARE_PASSWORD
or --password-file FILE). Wrong attempts count toward locking the share.

A share bound to your key arrives still encrypted: pass your identity with -i and kinko opens
it while it downloads, verifying every chunk. kinko names your public key to the server
first, so a share sent to another key is refused without using up a download. --sealed saves
it unopened (NAME.kinko) to open later with kinko open -i KEY.

Examples:
  kinko get 'https://files.example.com/s/3f2a…#9be1…'
  kinko get 'https://…#…' -o plan.pdf
  kinko get 'https://…#…' -i my.key              a share bound to your key
  kinko get 'https://…#…' -o - | less
  kinko get - < link.txt";

/// Raw arguments of `kinko get`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct GetArgs {
    /// Open a download bound to your key with the identities in FILE. Repeatable.
    #[arg(short, long = "identity", value_name = "FILE", value_hint = ValueHint::FilePath)]
    identities: Vec<PathBuf>,

    /// Save to OUT ("-" for stdout). Default: the file's name, in the current directory.
    /// Created with mode 0600 (only you can read it, whatever the umask).
    #[arg(short, long, value_name = "OUT", value_hint = ValueHint::FilePath)]
    output: Option<PathBuf>,

    /// Ask for the share's password before anything else (by default kinko asks only when the
    /// share has one).
    #[arg(long)]
    password: bool,

    /// Read the share's password from the first line of FILE.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    password_file: Option<PathBuf>,

    /// Replace an existing output file.
    #[arg(short, long)]
    force: bool,

    /// Save a download bound to your key as it came (a Kinko envelope), without opening it.
    #[arg(long, conflicts_with = "identities")]
    sealed: bool,

    #[command(flatten)]
    ca: CaArgs,

    /// The share link, or - to read it from standard input (which keeps its secret out of
    /// the process list and the shell's history).
    #[arg(value_name = "LINK")]
    link: String,
}

/// Where `kinko get` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Destination {
    /// The sanitized name from the link, in the current directory.
    Default,
    /// `-o -`.
    Stdout,
    /// `-o OUT`.
    File(PathBuf),
}

/// A validated `kinko get`.
#[derive(Debug)]
pub(crate) struct GetConfig {
    link: Link,
    client: Client,
    identities: Vec<Identity>,
    destination: Destination,
    /// Given up front (`--password`, `--password-file`).
    password: Option<PassphraseSource>,
    force: bool,
    sealed: bool,
    quiet: bool,
}

impl GetArgs {
    /// Parses the link and reads the identities before anything is fetched.
    ///
    /// # Errors
    ///
    /// A malformed link, unreadable or invalid identity files.
    pub(crate) fn validate(self, quiet: bool) -> Result<GetConfig, CliError> {
        let link = if self.link == "-" {
            Link::parse(&link_from_stdin()?)
        } else {
            Link::parse(&self.link)
        }
        .map_err(CliError::BadLink)?;
        // Link calls go to the link's own server, never with an API token.
        let client = self.ca.client(link.base_url().clone(), None)?;
        let mut identities = Vec::new();
        for path in &self.identities {
            identities.extend(read_identity_file(path)?);
        }
        let destination = match self.output {
            None => Destination::Default,
            Some(p) if p.as_os_str() == "-" => Destination::Stdout,
            Some(p) => {
                // Before any request: a download counts once its ticket is issued, and an
                // output that cannot be written would waste it.
                check_writable_output(&p)?;
                Destination::File(p)
            }
        };
        let password = (self.password || self.password_file.is_some())
            .then(|| PassphraseSource::choose_for(self.password_file, &SHARE_PASSWORD));
        Ok(GetConfig {
            link,
            client,
            identities,
            destination,
            password,
            force: self.force,
            sealed: self.sealed,
            quiet,
        })
    }
}

/// A file name from the server made safe to create in the current directory: path
/// separators, control characters and bidirectional overrides become `_`, leading dots and white space go (no hidden
/// files, no `.` or `..`), and long names are cut (keeping a short extension).
pub(crate) fn safe_file_name(name: &str) -> String {
    let replaced: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() || super::human::reorders_text(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = replaced.trim().trim_start_matches(['.', ' ']).trim_end();
    let mut out = if trimmed.is_empty() {
        "download".to_owned()
    } else {
        trimmed.to_owned()
    };
    if out.len() > MAX_NAME {
        let ext = match out.rfind('.') {
            Some(i) if out.len() - i <= 16 => out[i..].to_owned(),
            _ => String::new(),
        };
        let mut cut = MAX_NAME - ext.len();
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str(&ext);
    }
    out
}

/// Whether `path` names something that must not be replaced without `--force`: a file or a
/// symbolic link (devices such as /dev/null are written in place).
fn occupied(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_file() || m.file_type().is_symlink())
}

/// Refuses an output file kinko could not create, before any request counts a download: a
/// name that is (or ends like) a directory, a directory that does not exist or is not one, or
/// one where kinko may not create its temporary file. An existing device (`/dev/null`) is
/// written in place and passes.
///
/// # Errors
///
/// A usage error naming the problem.
pub(crate) fn check_writable_output(path: &Path) -> Result<(), CliError> {
    let shown = path.display();
    let dir_hint = "Give a file name to save to, e.g. -o DIR/NAME (the directory must exist).";
    let text = path.as_os_str().to_string_lossy();
    if text.ends_with('/')
        || text.ends_with(std::path::MAIN_SEPARATOR)
        || path.file_name().is_none()
    {
        return Err(CliError::usage(
            format!("{shown} names a directory, not a file"),
            dir_hint,
        ));
    }
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(CliError::usage(format!("{shown} is a directory"), dir_hint));
        }
        Ok(meta) if !meta.is_file() => return Ok(()),
        _ => {}
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(CliError::usage(
                format!(
                    "cannot save to {shown}: {} is not a directory",
                    dir.display()
                ),
                dir_hint,
            ));
        }
        Err(e) => {
            return Err(CliError::usage(
                format!("cannot save to {shown}: directory {}: {e}", dir.display()),
                dir_hint,
            ));
        }
    }
    // The download goes to a temporary file in that directory first: try making one.
    tempfile::Builder::new()
        .prefix(".kinko-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map(|probe| {
            let registration = interrupt::register(probe.path());
            drop(probe);
            drop(registration);
        })
        .map_err(|e| {
            CliError::usage(
                format!(
                    "cannot save to {shown}: cannot create a file in {}: {e}",
                    dir.display()
                ),
                "Choose a directory you may write to with -o DIR/NAME.",
            )
        })
}

/// Downloads the share.
///
/// # Errors
///
/// The server's refusals (link invalid, password), a recipient-bound share without an
/// identity, an existing output without `--force`, write errors, and envelope errors while
/// opening.
pub(crate) fn run(config: GetConfig) -> Result<(), CliError> {
    let link = &config.link;
    let client = &config.client;
    let info = client.link_info(link).map_err(|e| link_err(link, e))?;
    let open_here = info.recipient_bound && !config.sealed;
    if open_here && config.identities.is_empty() {
        return Err(CliError::usage(
            format!(
                "{} is bound to the recipient's key: it arrives encrypted",
                printable(&info.name)
            ),
            "Pass your identity file with -i FILE (the key the sender shared to), or --sealed \
             to save the encrypted file as it is.",
        ));
    }
    if !info.recipient_bound && !config.identities.is_empty() && !config.quiet {
        eprintln!("kinko: note: this share is not bound to a key; -i is not needed");
    }
    if !info.recipient_bound && config.sealed && !config.quiet {
        eprintln!(
            "kinko: note: this share is not bound to a key, so it arrives unencrypted; \
             --sealed changes nothing"
        );
    }

    let output = output_arg(&config, &info)?;

    // The password: asked up front, or now that the server says the share has one.
    let mut password = match &config.password {
        Some(source) => Some(source.read_secret(&SHARE_PASSWORD, false)?),
        None if info.password_required => Some(ask_password(link)?),
        None => None,
    };
    // Opening here: name our keys, so that a share sent to other keys refuses before it
    // counts a download we could not open.
    let keys: Vec<Recipient> = if open_here {
        config.identities.iter().map(Identity::to_public).collect()
    } else {
        Vec::new()
    };
    let ticket = match client.link_ticket_for(link, password.as_ref(), &keys) {
        Err(ClientError::PasswordRequired) if password.is_none() => {
            password = Some(ask_password(link)?);
            client.link_ticket_for(link, password.as_ref(), &keys)
        }
        other => other,
    }
    .map_err(|e| link_err(link, e))?;
    drop(password);

    let download = if open_here {
        download_and_open(
            client,
            link,
            &ticket,
            config.identities,
            &output,
            config.quiet,
        )?
    } else {
        download_as_is(
            client,
            link,
            &ticket,
            &output,
            info.recipient_bound,
            config.quiet,
        )?
    };
    if download.recipient_bound != info.recipient_bound {
        return Err(mismatch(link));
    }
    if !config.quiet && output != OutputArg::ExplicitStdout {
        let target = match &output {
            OutputArg::File(p) => p.display().to_string(),
            _ => "stdout".into(),
        };
        let how = if open_here {
            "opened with your key, every chunk verified"
        } else if info.recipient_bound {
            "still encrypted; open it with kinko open -i KEY"
        } else {
            "complete"
        };
        eprintln!(
            "Saved {} ({}) to {target}: {how}.",
            printable(&info.name),
            size(info.size)
        );
    }
    Ok(())
}

/// The first non-empty line of standard input (at most 64 KiB are read), trimmed. Read line
/// by line: a link pasted at a terminal is used once Enter is pressed, without Ctrl-D.
fn link_from_stdin() -> Result<Zeroizing<String>, CliError> {
    use std::io::{BufRead, Read};
    const MAX: u64 = 64 * 1024;
    let mut input = io::stdin().lock().take(MAX);
    // Sized up front so that reading never reallocates and leaves a copy of the secret behind.
    let mut line = Zeroizing::new(String::with_capacity(MAX as usize + 1));
    loop {
        line.clear();
        let read = input.read_line(&mut line).map_err(|e| {
            CliError::usage(
                format!("cannot read the link from standard input: {e}"),
                "Pipe the link in as text: kinko get - < link.txt",
            )
        })?;
        if read == 0 {
            return Err(CliError::usage(
                "no link on standard input",
                "Pipe the link in: kinko get - < link.txt",
            ));
        }
        let link = line.trim();
        if !link.is_empty() {
            return Ok(Zeroizing::new(link.to_owned()));
        }
    }
}

/// Decides the output, refusing to replace an existing file without `--force`.
fn output_arg(config: &GetConfig, info: &LinkInfo) -> Result<OutputArg, CliError> {
    let path = match &config.destination {
        Destination::Stdout => return Ok(OutputArg::ExplicitStdout),
        Destination::File(p) => p.clone(),
        Destination::Default => {
            let name = if info.recipient_bound && config.sealed {
                format!("{}.kinko", info.name)
            } else {
                info.name.clone()
            };
            let name = safe_file_name(&name);
            debug_assert!(matches!(
                Path::new(&name).components().collect::<Vec<_>>()[..],
                [Component::Normal(_)]
            ));
            PathBuf::from(name)
        }
    };
    if occupied(&path) && !config.force {
        return Err(CliError::usage(
            format!("{} already exists", path.display()),
            "Pass --force to replace it, or -o OTHER to save elsewhere.",
        ));
    }
    if config.destination == Destination::Default {
        // -o OUT was checked before the first request; the default name only now.
        check_writable_output(&path)?;
    }
    Ok(OutputArg::File(path))
}

/// Asks for the share's password (KINKO_SHARE_PASSWORD, else the terminal). Without a
/// terminal to ask on, the error is the server's "needs a password" (exit code 20), whose
/// hint says how to give it without one.
fn ask_password(link: &Link) -> Result<SecretString, CliError> {
    PassphraseSource::choose_for(None, &SHARE_PASSWORD)
        .read_secret(&SHARE_PASSWORD, false)
        .map_err(|e| match e {
            CliError::NoTerminal(_) => link_err(link, ClientError::PasswordRequired),
            other => other,
        })
}

/// The answer is not what the link's details announced (an envelope where plaintext was
/// promised, or the other way round).
fn mismatch(link: &Link) -> CliError {
    link_err(
        link,
        ClientError::UnexpectedResponse {
            status: 200,
            detail: "the download does not match the share's details (recipient-bound or not)"
                .into(),
        },
    )
}

/// Streams the bytes as they come into the output, committed only once complete and only if
/// they are what the link's details announced (`bound`: an envelope). A download whose
/// connection breaks is resumed with `Range` (up to three times).
fn download_as_is(
    client: &Client,
    link: &Link,
    ticket: &Ticket,
    output: &OutputArg,
    bound: bool,
    quiet: bool,
) -> Result<Download, CliError> {
    let mut out = Output::create(output)?;
    let path = out.path();
    let mut bar = TransferBar::new(quiet, "downloading");
    // A broken connection resumes where it broke (the ticket covers it).
    let result = client.link_download_resuming(link, ticket, &mut out, |p| bar.update(p));
    bar.finish();
    let download = result.map_err(|e| match e {
        ClientError::Io(source) => CliError::Write { path, source },
        other => counted_download_err(link, other),
    })?;
    if download.recipient_bound != bound {
        // Dropped without a commit: the temporary file goes, the target is untouched.
        return Err(mismatch(link));
    }
    out.commit()?;
    Ok(download)
}

/// Streams the envelope through a pipe into `kinko open`'s code while it downloads: every
/// chunk is verified before its plaintext is written, and the output is committed only once
/// the whole envelope verified. A broken connection resumes into the same pipe, so the opener
/// sees one stream (and would refuse it if the pieces did not fit together).
fn download_and_open(
    client: &Client,
    link: &Link,
    ticket: &Ticket,
    identities: Vec<Identity>,
    output: &OutputArg,
    quiet: bool,
) -> Result<Download, CliError> {
    let (reader, writer) = io::pipe().map_err(|source| CliError::Write {
        path: "<pipe>".into(),
        source,
    })?;
    let keys = OpenKeys {
        identities,
        explicit_passphrase: None,
    };
    let (downloaded, opened) = std::thread::scope(|s| {
        let fetch = s.spawn(move || {
            let mut bar = TransferBar::new(quiet, "downloading");
            let result = client.link_download_resuming(link, ticket, writer, |p| bar.update(p));
            bar.finish();
            result
        });
        // The opener's own bar stays off: the download's shows the progress.
        let opened = open_stream(reader, "the download", None, keys, output, true);
        (fetch.join(), opened)
    });
    let downloaded = downloaded.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    match (downloaded, opened) {
        (Ok(d), Ok(())) => Ok(d),
        // The opener stopped reading (a wrong key, a damaged envelope): its error says why.
        (Err(ClientError::Io(e)), Err(open_err)) if e.kind() == io::ErrorKind::BrokenPipe => {
            Err(open_err)
        }
        // A broken download explains a truncated envelope better than "truncated" does.
        (Err(e), _) => Err(counted_download_err(link, e)),
        (Ok(_), Err(open_err)) => Err(open_err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_the_server_are_made_safe() {
        for (name, safe) in [
            ("plan.pdf", "plan.pdf"),
            ("Q3 report (final).pdf", "Q3 report (final).pdf"),
            ("../../etc/passwd", "_.._etc_passwd"),
            ("/etc/passwd", "_etc_passwd"),
            ("..", "download"),
            (".", "download"),
            ("", "download"),
            ("  ", "download"),
            (".bashrc", "bashrc"),
            ("a\\b", "a_b"),
            ("new\nline\u{1b}[2J", "new_line_[2J"),
            ("résumé.txt", "résumé.txt"),
            ("invoice\u{202E}fdp.exe", "invoice_fdp.exe"),
        ] {
            let got = safe_file_name(name);
            assert_eq!(got, safe, "{name:?}");
            let components: Vec<_> = Path::new(&got).components().collect();
            assert!(matches!(components[..], [Component::Normal(_)]), "{got:?}");
        }
        let long = format!("{}.pdf", "é".repeat(300));
        let got = safe_file_name(&long);
        assert!(got.len() <= MAX_NAME && got.ends_with(".pdf"), "{got}");
    }
}
