//! `kinko login` and `kinko logout`: keep (or forget) a server and its API token in the
//! client configuration file.

use std::path::PathBuf;

use clap::{Args, ValueHint};
use kinko_client::{BaseUrl, ClientError};
use kinko_core::vault::ApiToken;
use secrecy::ExposeSecret;

use super::error::{Call, CliError};
use super::passphrase::{API_TOKEN, PassphraseSource};
use super::remote::{CaArgs, ClientConfig, RemoteArgs, config_path};

const LOGIN_AFTER_HELP: &str = "\
The token is read from the terminal (it is not echoed), or for scripts from KINKO_TOKEN or the
first line of --token-file FILE; never from the command line. kinko login checks it with the
server (GET /api/v1/me) before saving it.

Server and token go to the client configuration file: $KINKO_CONFIG, else
$XDG_CONFIG_HOME/kinko/client.toml, else ~/.config/kinko/client.toml, created with mode 0600.
Every client command then uses them, unless --server / KINKO_SERVER or KINKO_TOKEN say
otherwise. The saved token is only ever sent to the saved server.

The token is never sent over plain http:// to another machine: http:// works only for this
machine (localhost, 127.0.0.1, ::1, e.g. kinko serve --dev), unless KINKO_ALLOW_HTTP=1 is
set for a network you trust.

Examples:
  kinko login --server https://files.example.com      asks for the token
  kinko login --server http://127.0.0.1:8750 --token-file admin.token
  KINKO_TOKEN=kinko_… kinko login --server https://files.example.com";

const LOGOUT_AFTER_HELP: &str = "\
Removes the token from the client configuration file (the server stays, so the next kinko
login needs no --server). With --revoke the token is first revoked on the server, so no copy
of it works anywhere.

Examples:
  kinko logout
  kinko logout --revoke";

/// Raw arguments of `kinko login`.
#[derive(Debug, Args)]
#[command(after_help = LOGIN_AFTER_HELP)]
pub(crate) struct LoginArgs {
    /// Read the API token from the first line of FILE.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    token_file: Option<PathBuf>,

    #[command(flatten)]
    remote: RemoteArgs,
}

/// A validated `kinko login`.
#[derive(Debug)]
pub(crate) struct LoginConfig {
    server: BaseUrl,
    ca: CaArgs,
    token: PassphraseSource,
    config: PathBuf,
}

impl LoginArgs {
    /// Decides the server and where the token comes from.
    ///
    /// # Errors
    ///
    /// A malformed server URL, no server at all, or an unusable configuration file.
    pub(crate) fn validate(self) -> Result<LoginConfig, CliError> {
        let config = config_path()?;
        let server = match self.remote.explicit_server()? {
            Some(s) => s,
            None => match ClientConfig::load(&config)?.and_then(|c| c.server) {
                Some(s) => s,
                None => {
                    return Err(CliError::usage(
                        "which server? No --server given and none saved",
                        "Run kinko login --server URL, e.g. https://files.example.com.",
                    ));
                }
            },
        };
        Ok(LoginConfig {
            server,
            ca: self.remote.ca,
            token: PassphraseSource::choose_for(self.token_file, &API_TOKEN),
            config,
        })
    }
}

/// Reads the token, checks it with the server, saves both.
///
/// # Errors
///
/// Token input errors, a malformed token, the server's refusal, and write errors.
pub(crate) fn login(config: LoginConfig) -> Result<(), CliError> {
    let from = match &config.token {
        PassphraseSource::File(p) => p.display().to_string(),
        PassphraseSource::Env => API_TOKEN.env.to_owned(),
        PassphraseSource::Terminal => "the terminal".to_owned(),
    };
    let text = config.token.read_secret(&API_TOKEN, false)?;
    if text.expose_secret().trim().is_empty() {
        return Err(CliError::EmptyPassphrase(API_TOKEN));
    }
    let token = ApiToken::parse(text.expose_secret()).ok_or(CliError::BadToken { from })?;
    let saved = token.expose_secret();
    drop(text);

    let client = config.ca.client(config.server.clone(), Some(token))?;
    let me = client.me().map_err(|source| CliError::Remote {
        server: config.server.to_string(),
        source: match source {
            // GET /api/v1/me names no id: a 404 means no Kinko API answers at this URL.
            ClientError::NotFound { .. } => ClientError::UnexpectedResponse {
                status: 404,
                detail: "no Kinko API at this address".into(),
            },
            other => other,
        },
        call: Call::Api,
    })?;
    ClientConfig::save(&config.config, &config.server, Some(&saved))?;
    eprintln!(
        "Logged in to {} as {} ({}). Saved in {}.",
        config.server,
        super::human::printable(&me.name),
        me.role,
        config.config.display()
    );
    Ok(())
}

/// Raw arguments of `kinko logout`.
#[derive(Debug, Args)]
#[command(after_help = LOGOUT_AFTER_HELP)]
pub(crate) struct LogoutArgs {
    /// Also revoke the token on the server.
    #[arg(long)]
    revoke: bool,

    #[command(flatten)]
    ca: CaArgs,
}

/// A validated `kinko logout`.
#[derive(Debug)]
pub(crate) struct LogoutConfig {
    revoke: bool,
    ca: CaArgs,
    config: PathBuf,
}

impl LogoutArgs {
    /// Finds the configuration file.
    ///
    /// # Errors
    ///
    /// No place for the configuration file.
    pub(crate) fn validate(self) -> Result<LogoutConfig, CliError> {
        Ok(LogoutConfig {
            revoke: self.revoke,
            ca: self.ca,
            config: config_path()?,
        })
    }
}

/// Forgets the saved token (after revoking it, with `--revoke`).
///
/// # Errors
///
/// An unreadable or unwritable configuration file; with `--revoke`, the server's refusal
/// (then nothing is forgotten, so the command can be retried).
pub(crate) fn logout(config: LogoutConfig) -> Result<(), CliError> {
    let saved = ClientConfig::load(&config.config)?.unwrap_or_default();
    let (Some(server), Some(token)) = (saved.server, saved.token) else {
        eprintln!("Not logged in; nothing to do.");
        return Ok(());
    };
    if config.revoke {
        let id = token.id();
        let client = config.ca.client(server.clone(), Some(token))?;
        match client.revoke_token(&id) {
            Ok(()) => {}
            // Already revoked or expired: nothing left to revoke.
            Err(kinko_client::ClientError::Unauthenticated { .. }) => {}
            Err(source) => {
                return Err(CliError::Remote {
                    server: server.to_string(),
                    source,
                    call: Call::Api,
                });
            }
        }
        eprintln!("Revoked token {id} on {server}.");
    }
    ClientConfig::save(&config.config, &server, None)?;
    eprintln!("Logged out of {server}.");
    Ok(())
}
