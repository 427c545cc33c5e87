//! What every client command shares: which server and API token to use, the client
//! configuration file `kinko login` writes, and the transfer progress bar.
//!
//! Server and token are resolved in this order: `--server` / `KINKO_SERVER`, and
//! `KINKO_TOKEN`, first; then the configuration file (`$KINKO_CONFIG`, else
//! `$XDG_CONFIG_HOME/kinko/client.toml`, else `~/.config/kinko/client.toml`). The file's token is
//! only ever sent to the file's own server: `--server OTHER` without `KINKO_TOKEN` has no token.
//!
//! The file is TOML with two strings, written with mode 0600 in a 0700 directory:
//!
//! ```toml
//! server = "https://files.example.com"
//! token = "kinko_…"
//! ```

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::ProgressBar;
use kinko_client::{BaseUrl, Client, ClientError, Credential, Link, Progress};
use kinko_core::vault::ApiToken;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::{Zeroize, Zeroizing};

use super::error::{Call, CliError};
use super::io::progress_bar;
use super::passphrase::API_TOKEN;

/// The environment variable naming the server.
pub(crate) const SERVER_ENV: &str = "KINKO_SERVER";
/// The environment variable naming the client configuration file.
pub(crate) const CONFIG_ENV: &str = "KINKO_CONFIG";
/// Largest configuration file read.
const MAX_CONFIG_FILE: u64 = 64 * 1024;

/// The environment variable naming a file of trusted root certificates.
pub(crate) const CA_FILE_ENV: &str = "KINKO_CA_FILE";
/// Largest root certificate file read.
const MAX_CA_FILE: u64 = 1024 * 1024;

/// The `--server` option of every client command.
#[derive(Debug, Clone, Args)]
pub(crate) struct RemoteArgs {
    /// The Kinko server, e.g. `https://files.example.com`. Default: the one kinko login saved.
    /// Plain http:// only to this machine (localhost, 127.0.0.1, ::1), or with
    /// KINKO_ALLOW_HTTP=1.
    #[arg(long, value_name = "URL", env = SERVER_ENV, global = true)]
    pub(crate) server: Option<String>,

    #[command(flatten)]
    pub(crate) ca: CaArgs,
}

/// The `--ca-file` option of every command that talks to a server.
#[derive(Debug, Clone, Args)]
pub(crate) struct CaArgs {
    /// Trust only the root certificates in FILE (PEM) for the server's TLS certificate, e.g.
    /// a company CA's. Default: the usual public roots.
    #[arg(
        long,
        value_name = "FILE",
        env = CA_FILE_ENV,
        global = true,
        value_hint = clap::ValueHint::FilePath
    )]
    pub(crate) ca_file: Option<PathBuf>,
}

impl CaArgs {
    /// A client for `server` with `token`, trusting `--ca-file`'s roots if given. Every
    /// client command makes its client here, so this is also where plain `http://` to another
    /// machine is refused ([`check_transport`]), before anything is sent.
    ///
    /// # Errors
    ///
    /// Plain HTTP to a host that is not this machine (without `KINKO_ALLOW_HTTP=1`); an
    /// unreadable `--ca-file`, or one without a PEM certificate.
    pub(crate) fn client(
        &self,
        server: BaseUrl,
        token: Option<ApiToken>,
    ) -> Result<Client, CliError> {
        let sent = if token.is_some() {
            Credential::ApiToken
        } else {
            Credential::LinkSecret
        };
        let allow_http = allow_plain_http(std::env::var_os(ALLOW_HTTP_ENV).as_deref());
        check_transport(&server, sent, allow_http)?;
        let Some(path) = &self.ca_file else {
            return Ok(Client::with_base(server, token).allow_plain_http(allow_http));
        };
        let read_err = |source| CliError::Read {
            path: path.clone(),
            source,
        };
        let mut pem = Vec::new();
        fs::File::open(path)
            .and_then(|f| f.take(MAX_CA_FILE).read_to_end(&mut pem))
            .map_err(read_err)?;
        Client::with_root_certificates(server, token, &pem)
            .map(|client| client.allow_plain_http(allow_http))
            .map_err(|e| {
                CliError::usage(
                    format!("{}: {e}", path.display()),
                    "Pass a PEM file with the certificate of the CA that issued the server's \
                     certificate (-----BEGIN CERTIFICATE----- …).",
                )
            })
    }
}

/// The environment variable that allows plain `http://` to a host other than this machine.
pub(crate) const ALLOW_HTTP_ENV: &str = "KINKO_ALLOW_HTTP";

/// Whether `KINKO_ALLOW_HTTP`'s value (`allow`) allows plain HTTP to another machine: only
/// `1` does.
pub(crate) fn allow_plain_http(allow: Option<&std::ffi::OsStr>) -> bool {
    allow.is_some_and(|v| v == "1")
}

/// Refuses plain `http://` to `server` unless its host is this machine (`localhost`,
/// 127.0.0.0/8, `::1`) or `allow_http` (`KINKO_ALLOW_HTTP=1`): over plain HTTP, `sent` (an
/// API token, a link's secret and the file itself) crosses the network readable by anyone on
/// the path. The rule is kinko-client's ([`kinko_client::check_transport`]), which every
/// call of the client enforces too; checked here first, before any prompt or connection, to
/// say how to opt in on the command line.
///
/// # Errors
///
/// A usage error that says why and how to opt in.
pub(crate) fn check_transport(
    server: &BaseUrl,
    sent: Credential,
    allow_http: bool,
) -> Result<(), CliError> {
    kinko_client::check_transport(server, sent, allow_http)
        .map_err(|_| plain_http_refused(server, sent))
}

/// The refusal of plain HTTP to `server`, with the command line's way to allow it.
fn plain_http_refused(server: &BaseUrl, sent: Credential) -> CliError {
    CliError::usage(
        format!(
            "refusing to send {sent} to {server} over plain http://: anyone on the network \
             between here and there could read it (and the file)"
        ),
        plain_http_hint(),
    )
}

/// How to get past a refusal of plain HTTP.
pub(crate) fn plain_http_hint() -> String {
    format!(
        "Use the server's https:// address. If the network is trusted (or a test machine), \
         set {ALLOW_HTTP_ENV}=1 to allow plain HTTP; it is always allowed to this machine \
         (localhost, 127.0.0.1, ::1)."
    )
}

/// A server to call, with the client that calls it.
#[derive(Debug)]
pub(crate) struct Remote {
    /// The client, with its token.
    pub(crate) client: Client,
}

impl Remote {
    /// Wraps an error of a call to this server.
    pub(crate) fn err(&self, source: ClientError) -> CliError {
        CliError::Remote {
            server: self.client.base_url().to_string(),
            source,
            call: Call::Api,
        }
    }

    /// Wraps an error of a call on a file or share that only its owner (or an admin) may
    /// make: a refusal is about whose it is.
    pub(crate) fn owned_err(&self, source: ClientError) -> CliError {
        CliError::Remote {
            server: self.client.base_url().to_string(),
            source,
            call: Call::Owned,
        }
    }
}

/// Wraps an error of a link call (the server is the link's; its secret is not shown).
pub(crate) fn link_err(link: &Link, source: ClientError) -> CliError {
    CliError::Remote {
        server: link.base_url().to_string(),
        source,
        call: Call::Link,
    }
}

/// Wraps an error of a link download that its ticket already counted.
pub(crate) fn counted_download_err(link: &Link, source: ClientError) -> CliError {
    CliError::Remote {
        server: link.base_url().to_string(),
        source,
        call: Call::CountedDownload,
    }
}

impl RemoteArgs {
    /// The server given with `--server` / `KINKO_SERVER`, if any.
    ///
    /// # Errors
    ///
    /// [`CliError::BadServerUrl`].
    pub(crate) fn explicit_server(&self) -> Result<Option<BaseUrl>, CliError> {
        self.server
            .as_deref()
            .map(|s| BaseUrl::parse(s).map_err(CliError::BadServerUrl))
            .transpose()
    }

    /// Resolves server and token (see the module docs) and makes the client.
    ///
    /// # Errors
    ///
    /// [`CliError::NotLoggedIn`] without a server or a token for it; a malformed
    /// `KINKO_TOKEN`, server URL or configuration file.
    pub(crate) fn resolve(&self) -> Result<Remote, CliError> {
        let explicit = self.explicit_server()?;
        let env_token = token_from_env()?;
        let config = if explicit.is_none() || env_token.is_none() {
            ClientConfig::load(&config_path()?)?
        } else {
            None
        };
        let (config_server, config_token) = match config {
            Some(c) => (c.server, c.token),
            None => (None, None),
        };
        let server = match explicit.or_else(|| config_server.clone()) {
            Some(s) => s,
            None => return Err(CliError::NotLoggedIn { server: None }),
        };
        let token = match env_token {
            Some(t) => t,
            // The file's token belongs to the file's server only.
            None => match config_token {
                Some(t) if config_server.as_ref() == Some(&server) => t,
                _ => {
                    return Err(CliError::NotLoggedIn {
                        server: Some(server.to_string()),
                    });
                }
            },
        };
        Ok(Remote {
            client: self.ca.client(server, Some(token))?,
        })
    }
}

/// `KINKO_TOKEN`, parsed, if set.
fn token_from_env() -> Result<Option<ApiToken>, CliError> {
    let Some(value) = std::env::var_os(API_TOKEN.env) else {
        return Ok(None);
    };
    let bad = || CliError::BadToken {
        from: API_TOKEN.env.into(),
    };
    let mut text = value.into_string().map_err(|_| bad())?;
    let token = ApiToken::parse(&text);
    text.zeroize();
    token.map(Some).ok_or_else(bad)
}

/// Where the client configuration lives.
///
/// # Errors
///
/// A usage error when neither `KINKO_CONFIG`, `XDG_CONFIG_HOME` nor `HOME` is set.
pub(crate) fn config_path() -> Result<PathBuf, CliError> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(p) = var(CONFIG_ENV) {
        return Ok(PathBuf::from(p));
    }
    if let Some(xdg) = var("XDG_CONFIG_HOME").map(PathBuf::from)
        && xdg.is_absolute()
    {
        return Ok(xdg.join("kinko").join("client.toml"));
    }
    if let Some(home) = var("HOME") {
        return Ok(PathBuf::from(home).join(".config/kinko/client.toml"));
    }
    Err(CliError::usage(
        "cannot tell where the client configuration goes (no HOME)",
        format!("Set {CONFIG_ENV}=FILE, or KINKO_SERVER and KINKO_TOKEN."),
    ))
}

/// The client configuration file's contents.
#[derive(Debug, Default)]
pub(crate) struct ClientConfig {
    /// The server logged in to.
    pub(crate) server: Option<BaseUrl>,
    /// Its token.
    pub(crate) token: Option<ApiToken>,
}

#[derive(Deserialize)]
struct ConfigFile {
    server: Option<String>,
    token: Option<String>,
}

impl ClientConfig {
    /// Reads the file; `None` if it does not exist.
    ///
    /// # Errors
    ///
    /// [`CliError::Read`], or [`CliError::ClientConfig`] for contents that do not parse
    /// (the message gives a line number, never the text).
    pub(crate) fn load(path: &Path) -> Result<Option<ClientConfig>, CliError> {
        let read_err = |source| CliError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = match fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(read_err(e)),
        };
        let meta = file.metadata().map_err(read_err)?;
        warn_if_shared(path, &meta);
        let len = meta.len().min(MAX_CONFIG_FILE);
        // Sized up front so that reading never reallocates and leaves a token copy behind.
        let mut buf = Zeroizing::new(Vec::with_capacity(usize::try_from(len).unwrap_or(0) + 1));
        file.take(MAX_CONFIG_FILE)
            .read_to_end(&mut buf)
            .map_err(read_err)?;
        let problem = |problem: String| CliError::ClientConfig {
            path: path.to_path_buf(),
            problem,
        };
        let text = std::str::from_utf8(&buf).map_err(|_| problem("not UTF-8 text".into()))?;
        let parsed: ConfigFile = toml::from_str(text).map_err(|e| {
            // toml's message quotes the offending line, which may be the token's.
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            problem(match line {
                Some(n) => {
                    format!("line {n} is not valid (expected server = \"…\" and token = \"…\")")
                }
                None => "not valid TOML (expected server = \"…\" and token = \"…\")".into(),
            })
        })?;
        let server = parsed
            .server
            .map(|s| {
                BaseUrl::parse(&s).map_err(|e| problem(format!("the server URL is invalid: {e}")))
            })
            .transpose()?;
        let token = match parsed.token {
            Some(mut t) => {
                let token = ApiToken::parse(&t);
                t.zeroize();
                Some(token.ok_or_else(|| CliError::BadToken {
                    from: path.display().to_string(),
                })?)
            }
            None => None,
        };
        Ok(Some(ClientConfig { server, token }))
    }

    /// Writes the file (mode 0600, its directory 0700), replacing any earlier one atomically.
    ///
    /// # Errors
    ///
    /// [`CliError::Write`].
    pub(crate) fn save(
        path: &Path,
        server: &BaseUrl,
        token: Option<&SecretString>,
    ) -> Result<(), CliError> {
        let write_err = |source| CliError::Write {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        create_private_dir(dir).map_err(write_err)?;
        let server_line = format!("server = \"{}\"\n", toml_escape(server.as_str()));
        let header = "# Written by kinko login. It holds an API token: keep it private.\n";
        let token_len = token.map_or(0, |t| t.expose_secret().len() + 11);
        let mut text = Zeroizing::new(String::with_capacity(
            header.len() + server_line.len() + token_len,
        ));
        text.push_str(header);
        text.push_str(&server_line);
        if let Some(t) = token {
            // A token is `kinko_` and hex digits: nothing to escape.
            text.push_str("token = \"");
            text.push_str(t.expose_secret());
            text.push_str("\"\n");
        }
        // tempfile creates the file with mode 0600.
        let mut temp = tempfile::Builder::new()
            .prefix(".kinko-client-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(write_err)?;
        // It holds the token: a signal must not leave it behind.
        let registration = super::interrupt::register(temp.path());
        temp.write_all(text.as_bytes()).map_err(write_err)?;
        temp.as_file().sync_all().map_err(write_err)?;
        registration
            .finish(|| temp.persist(path))
            .map_err(|e| write_err(e.error))?;
        Ok(())
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

/// Warns when others may read the file that holds the token.
#[cfg(unix)]
fn warn_if_shared(path: &Path, meta: &fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        eprintln!(
            "kinko: warning: {} can be read by other users (mode {:o}); run chmod 600 on it",
            path.display(),
            mode & 0o777
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_: &Path, _: &fs::Metadata) {}

fn toml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A progress bar for a transfer, drawn once the total is known (see
/// [`progress_bar`] for when it is drawn at all).
#[derive(Debug)]
pub(crate) struct TransferBar {
    quiet: bool,
    verb: &'static str,
    bar: Option<ProgressBar>,
    started: bool,
}

impl TransferBar {
    /// A bar that will say `verb` ("uploading", "downloading").
    pub(crate) fn new(quiet: bool, verb: &'static str) -> Self {
        TransferBar {
            quiet,
            verb,
            bar: None,
            started: false,
        }
    }

    /// Moves the bar to `p`; the first call decides whether there is a bar.
    pub(crate) fn update(&mut self, p: Progress) {
        if !self.started {
            self.started = true;
            self.bar = progress_bar(self.quiet, p.total, self.verb);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(p.done);
        }
    }

    /// Clears the bar.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_text() -> String {
        format!("kinko_{}{}", "ab".repeat(16), "cd".repeat(32))
    }

    #[test]
    fn config_round_trip_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/client.toml");
        let server = BaseUrl::parse("https://files.example.com").unwrap();
        let token = SecretString::from(token_text());
        ClientConfig::save(&path, &server, Some(&token)).unwrap();
        let loaded = ClientConfig::load(&path).unwrap().unwrap();
        assert_eq!(loaded.server, Some(server.clone()));
        assert_eq!(
            loaded.token.unwrap().expose_secret().expose_secret(),
            token_text()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        // Without a token (after logout) the server stays.
        ClientConfig::save(&path, &server, None).unwrap();
        let loaded = ClientConfig::load(&path).unwrap().unwrap();
        assert_eq!(loaded.server, Some(server));
        assert!(loaded.token.is_none());
    }

    #[test]
    fn config_errors_never_quote_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.toml");
        assert!(ClientConfig::load(&path).unwrap().is_none());
        fs::write(
            &path,
            format!("server = \"https://a.b\"\ntoken = {}\n", token_text()),
        )
        .unwrap();
        let err = ClientConfig::load(&path).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(text.contains("line 2"), "{text}");
        assert!(!text.contains("abab"), "{text}");
        fs::write(&path, "token = \"kinko_short\"\n").unwrap();
        let err = ClientConfig::load(&path).unwrap_err();
        assert!(matches!(err, CliError::BadToken { .. }));
        assert!(!format!("{err:?}").contains("short"));
    }

    /// Which hosts count as this machine is kinko-client's rule, tested there; what the CLI
    /// adds is `KINKO_ALLOW_HTTP`: only `1` opens plain HTTP to another host.
    #[test]
    fn kinko_allow_http_1_and_nothing_else_allows_plain_http_to_another_host() {
        let check = |url: &str, allow: Option<&str>| {
            let url = BaseUrl::parse(url).unwrap();
            let allow = allow_plain_http(allow.map(std::ffi::OsStr::new));
            check_transport(&url, Credential::ApiToken, allow).is_ok()
        };
        for setting in [None, Some("1"), Some("0"), Some("")] {
            assert!(check("http://127.0.0.1:8750", setting), "{setting:?}");
            assert!(check("https://files.example.com", setting), "{setting:?}");
        }
        for refusing in [
            None,
            Some("0"),
            Some(""),
            Some("true"),
            Some("yes"),
            Some(" 1"),
        ] {
            assert!(!check("http://files.example.com", refusing), "{refusing:?}");
        }
        assert!(check("http://files.example.com", Some("1")));
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(toml_escape("a\nb"), "a\\u000Ab");
    }
}
