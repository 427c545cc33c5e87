//! `kinko serve` configuration: a TOML file, overridden by environment variables and flags
//! (clap reads both), resolved into one [`Config`] before anything starts.
//!
//! `--dev` needs none of it: everything lives under one folder (`./kinko-dev` by default)
//! with a generated development KEK beside the data, never inside it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use kinko_core::vault::{AccessDurability, KeyRing, MasterKey};
use serde::Deserialize;

use super::ServeError;
use super::proxy::{Networks, TrustedProxies};

/// Start the HTTP sidecar.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  kinko serve --dev
      A development server on http://127.0.0.1:8750 with its data, a development master key
      and the admin token under ./kinko-dev. Prints the URL and the admin token.
  kinko serve --config /etc/kinko/kinko.toml
      Production: TLS certificate, master key file and data directory from the file.

Every option but --dev, --config and --recover-admin can also be set in the TOML file (same
name with '_' for '-', except the lists trusted_proxies and metrics_from; the limits, such as
max_upload_bytes, go in its [limits] table: docs/SERVER.md), and every option marked [env: …]
through that environment variable. Flags win over the environment, which wins over the file.
The master key is read from --kek-file (KINKO_KEK_FILE), else from KINKO_KEK (64 hex digits),
else from kek_file in the file; it is never stored in the data directory. Key files (master
keys, the TLS private key) that other users may read or write are refused: chmod 600 (or 640
with the server's group).

Logs go to stderr (level from KINKO_LOG: off, error, warn, info, debug, trace; default info;
other crates log warnings and errors only, whatever the level). No log line ever holds a
token, link secret, password, key or file content.")]
pub(crate) struct ServeArgs {
    /// Development mode: no configuration needed. Creates the data folder, a development master
    /// key and an admin, and prints the URL and the admin token. Plain HTTP on loopback only
    /// (--listen must be a 127.x.x.x or ::1 address).
    #[arg(long)]
    pub(crate) dev: bool,

    /// TOML configuration file (its keys: docs/SERVER.md).
    #[arg(long, short = 'c', env = "KINKO_SERVE_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Address to listen on (port 0 picks a free port) [default: 127.0.0.1:8750].
    #[arg(long, env = "KINKO_LISTEN", value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,

    /// Data directory (metadata and encrypted blobs) [default with --dev: ./kinko-dev/data].
    #[arg(long, env = "KINKO_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// File holding the master key (64 hex digits), outside the data directory.
    #[arg(long, env = "KINKO_KEK_FILE", value_name = "FILE")]
    pub(crate) kek_file: Option<PathBuf>,

    /// A previous master key still needed while files are re-wrapped (`kinko admin
    /// rotate-kek`).
    #[arg(long, env = "KINKO_KEK_OLD_FILE", value_name = "FILE")]
    pub(crate) kek_old_file: Option<PathBuf>,

    /// The public base URL of share links, e.g. `https://files.example.com` [default: the
    /// listen address].
    #[arg(long, env = "KINKO_PUBLIC_URL", value_name = "URL")]
    pub(crate) public_url: Option<String>,

    /// TLS certificate chain (PEM). With --tls-key, the server speaks HTTPS itself.
    #[arg(
        long,
        env = "KINKO_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub(crate) tls_cert: Option<PathBuf>,

    /// TLS private key (PEM).
    #[arg(
        long,
        env = "KINKO_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub(crate) tls_key: Option<PathBuf>,

    /// Serve plain HTTP outside --dev (only behind a TLS-terminating proxy on the same host).
    /// KINKO_PLAIN_HTTP takes 1, true, yes or on, and 0, false, no or off.
    #[arg(
        long,
        env = PLAIN_HTTP_ENV,
        num_args = 0,
        default_missing_value = "true",
        value_parser = env_bool(PLAIN_HTTP_ENV)
    )]
    pub(crate) plain_http: Option<bool>,

    /// A reverse proxy (address or network, e.g. 10.0.0.0/8) whose X-Forwarded-For header
    /// names the client, for the audit log and the per-address limits. Repeatable; none by
    /// default (the header is ignored).
    #[arg(
        long = "trusted-proxy",
        env = "KINKO_TRUSTED_PROXIES",
        value_name = "ADDR[/BITS]",
        value_delimiter = ','
    )]
    pub(crate) trusted_proxies: Vec<String>,

    /// A network (or address) allowed to read /metrics. Repeatable [default: 127.0.0.0/8 and
    /// ::1, this host only]. Behind a reverse proxy the client is the forwarded address
    /// (see --trusted-proxy).
    #[arg(
        long = "metrics-from",
        env = "KINKO_METRICS_FROM",
        value_name = "ADDR[/BITS]",
        value_delimiter = ','
    )]
    pub(crate) metrics_from: Vec<String>,

    /// Largest upload accepted, in bytes [default: 16 GiB].
    #[arg(long, env = "KINKO_MAX_UPLOAD", value_name = "BYTES")]
    pub(crate) max_upload: Option<u64>,

    /// Do not serve: give the admin NAME a new admin token, print it and exit. For an operator
    /// locked out (the token expired or was lost, the last admin was disabled). Creates the
    /// admin if no user has this name, re-enables it if disabled, and revokes its older
    /// tokens; a member's name is refused. Uses the same configuration as serving; stop the server first (it holds the data
    /// directory). Audited as `user.recover`.
    #[arg(long, value_name = "NAME")]
    pub(crate) recover_admin: Option<String>,

    /// Testing only: lets an admin move the server's clock forward
    /// (POST /api/v1/admin/clock). Refused with TLS.
    #[arg(long, hide = true)]
    pub(crate) test_clock: bool,
}

/// The environment variable of `--plain-http`.
const PLAIN_HTTP_ENV: &str = "KINKO_PLAIN_HTTP";

/// The value parser of a flag that a boolean environment variable, `var`, can also set: the
/// usual spellings in any case, `1`, `true`, `yes`, `on` and `0`, `false`, `no`, `off`.
/// Anything else is refused with the variable's name (the flag itself takes no value, so a
/// value to parse comes from the variable), never taken for either.
fn env_bool(var: &'static str) -> impl Fn(&str) -> Result<bool, String> + Clone + Send + Sync {
    move |text| match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "{var} takes 1, true, yes or on, or 0, false, no or off (in any case)"
        )),
    }
}

/// The configuration file. Every field is optional; see [`Config`] for the defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    kek_file: Option<PathBuf>,
    kek_old_file: Option<PathBuf>,
    public_url: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    plain_http: Option<bool>,
    trusted_proxies: Option<Vec<String>>,
    metrics_from: Option<Vec<String>>,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    vault: VaultFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    max_upload_bytes: Option<u64>,
    max_json_bytes: Option<usize>,
    max_connections: Option<usize>,
    max_in_flight: Option<usize>,
    max_uploads: Option<usize>,
    header_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    link_requests_per_minute: Option<u32>,
    auth_failures_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VaultFile {
    /// "sync" (default) or "buffered".
    access_durability: Option<String>,
    sweep_interval_secs: Option<u64>,
    max_password_attempts: Option<u32>,
    /// Start even when no active file has its blob (see `VaultConfig::allow_missing_blobs`).
    allow_missing_blobs: Option<bool>,
}

/// Limits that protect the server from its clients.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Largest upload body.
    pub(crate) max_upload_bytes: u64,
    /// Largest JSON or form body.
    pub(crate) max_json_bytes: usize,
    /// Open connections; further clients wait in the kernel's accept queue.
    pub(crate) max_connections: usize,
    /// Requests being handled at once; more get `503 unavailable`.
    pub(crate) max_in_flight: usize,
    /// Uploads streaming at once; more get `503 unavailable` before their body is read. Each
    /// holds about 16 MiB while it streams (pieces in the channel, the sealer's batches, the
    /// blob's direct-I/O blocks), so this bounds what uploads can take: 512 MiB by default.
    pub(crate) max_uploads: usize,
    /// Time allowed to send a request's head.
    pub(crate) header_timeout: Duration,
    /// Time a connection may make no progress (reading or writing) before it is closed; time
    /// spent computing a response head does not count (`net::Busy`).
    pub(crate) idle_timeout: Duration,
    /// How long shutdown waits for in-flight transfers.
    pub(crate) shutdown_grace: Duration,
    /// Link requests per minute and client address (burst: the same number); 0 disables.
    pub(crate) link_per_minute: u32,
    /// Failed logins or wrong passwords per minute and client address; 0 disables.
    pub(crate) auth_failures_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_upload_bytes: 16 << 30,
            max_json_bytes: 64 << 10,
            max_connections: 1024,
            max_in_flight: 512,
            max_uploads: 32,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            link_per_minute: 120,
            auth_failures_per_minute: 20,
        }
    }
}

/// Everything `kinko serve` needs, resolved and checked.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) dev: bool,
    pub(crate) listen: SocketAddr,
    pub(crate) data_dir: PathBuf,
    /// Where `--dev` keeps the admin token so that a restart can show it again.
    pub(crate) dev_token_file: Option<PathBuf>,
    /// `None`: derived from the bound address once listening.
    pub(crate) public_url: Option<String>,
    pub(crate) tls: Option<(PathBuf, PathBuf)>,
    pub(crate) limits: Limits,
    pub(crate) trusted_proxies: TrustedProxies,
    /// Who may read /metrics.
    pub(crate) metrics_from: Networks,
    pub(crate) access_durability: AccessDurability,
    pub(crate) sweep_interval: Duration,
    pub(crate) max_password_attempts: u32,
    pub(crate) allow_missing_blobs: bool,
    pub(crate) test_clock: bool,
}

/// Who may read /metrics unless configured: this host.
pub(crate) const DEFAULT_METRICS_FROM: [&str; 2] = ["127.0.0.0/8", "::1"];

/// The default listen address.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8750";
/// The folder `--dev` uses when no data directory is given.
pub(crate) const DEV_ROOT: &str = "kinko-dev";

fn read_file_config(path: &Path) -> Result<FileConfig, ServeError> {
    let text = std::fs::read_to_string(path).map_err(|e| ServeError::Config {
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    toml::from_str(&text).map_err(|e| ServeError::Config {
        message: format!("{}: {e}", path.display()),
    })
}

impl ServeArgs {
    /// Merges flags, environment and file into a [`Config`], and loads the master keys.
    pub(crate) fn resolve(self) -> Result<(Config, KeyRing), ServeError> {
        let file = match &self.config {
            Some(p) => read_file_config(p)?,
            None => FileConfig::default(),
        };
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
        // Before anything is written: --dev creates its master key and admin token on start.
        if self.dev {
            dev_listen_check(listen)?;
        }
        let tls = match (
            self.tls_cert.or(file.tls_cert),
            self.tls_key.or(file.tls_key),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(ServeError::Config {
                    message: "tls_cert and tls_key go together".into(),
                });
            }
        };
        // The environment's `0` beats the file's `true`, as every setting's does.
        let plain_http = self.plain_http.or(file.plain_http).unwrap_or(false);
        let proxies = if self.trusted_proxies.is_empty() {
            file.trusted_proxies.unwrap_or_default()
        } else {
            self.trusted_proxies
        };
        let trusted_proxies =
            TrustedProxies::parse(&proxies).map_err(|message| ServeError::Config { message })?;
        let metrics_from = if self.metrics_from.is_empty() {
            file.metrics_from
                .unwrap_or_else(|| DEFAULT_METRICS_FROM.map(String::from).to_vec())
        } else {
            self.metrics_from
        };
        let metrics_from = Networks::parse(&metrics_from, "metrics_from entry")
            .map_err(|message| ServeError::Config { message })?;
        let mut limits = Limits::default();
        let l = &file.limits;
        if let Some(v) = self.max_upload.or(l.max_upload_bytes) {
            limits.max_upload_bytes = v;
        }
        if let Some(v) = l.max_json_bytes {
            limits.max_json_bytes = v.max(1024);
        }
        if let Some(v) = l.max_connections {
            limits.max_connections = v.max(1);
        }
        if let Some(v) = l.max_in_flight {
            limits.max_in_flight = v.max(1);
        }
        if let Some(v) = l.max_uploads {
            limits.max_uploads = v.max(1);
        }
        if let Some(v) = l.header_timeout_secs {
            limits.header_timeout = Duration::from_secs(v.max(1));
        }
        if let Some(v) = l.idle_timeout_secs {
            limits.idle_timeout = Duration::from_secs(v.max(1));
        }
        if let Some(v) = l.shutdown_grace_secs {
            limits.shutdown_grace = Duration::from_secs(v);
        }
        if let Some(v) = l.link_requests_per_minute {
            limits.link_per_minute = v;
        }
        if let Some(v) = l.auth_failures_per_minute {
            limits.auth_failures_per_minute = v;
        }
        let access_durability = match file.vault.access_durability.as_deref() {
            None | Some("sync") => AccessDurability::SyncCounted,
            Some("buffered") => AccessDurability::Buffered,
            Some(other) => {
                return Err(ServeError::Config {
                    message: format!(
                        "vault.access_durability must be \"sync\" or \"buffered\", not {other:?}"
                    ),
                });
            }
        };
        let sweep_interval =
            Duration::from_secs(file.vault.sweep_interval_secs.unwrap_or(60).max(1));
        let max_password_attempts = file.vault.max_password_attempts.unwrap_or(5).max(1);
        let public_url = self
            .public_url
            .or(file.public_url)
            .map(|u| u.trim_end_matches('/').to_owned());
        if let Some(u) = &public_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(ServeError::Config {
                message: format!("public_url must start with https:// or http://, not {u:?}"),
            });
        }
        if self.test_clock && tls.is_some() {
            return Err(ServeError::Config {
                message: "--test-clock is for tests only and is refused together with TLS".into(),
            });
        }
        // Flags, then the environment, then the file: KINKO_KEK (the environment's key) loses
        // to --kek-file and KINKO_KEK_FILE and wins over the file's kek_file. (--dev keeps its
        // own key unless a key file is named.)
        let env_kek = !self.dev && std::env::var("KINKO_KEK").is_ok_and(|v| !v.trim().is_empty());
        let kek_file = match self.kek_file {
            Some(p) => Some(p),
            None if env_kek => None,
            None => file.kek_file,
        };
        let kek_old_file = self.kek_old_file.or(file.kek_old_file);

        let (data_dir, keys, dev_token_file) = if self.dev {
            let data_dir = self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEV_ROOT).join("data"));
            let root = data_dir
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            let keys = match kek_file {
                Some(p) => load_keys(&p, kek_old_file.as_deref(), &data_dir)?,
                None => KeyRing::new(dev_kek(&root.join("dev.kek"), &data_dir)?),
            };
            (data_dir, keys, Some(root.join("admin.token")))
        } else {
            let data_dir = self.data_dir.or(file.data_dir).ok_or(ServeError::Config {
                message: "no data directory: set data_dir in the config file, --data-dir or \
                          KINKO_DATA_DIR (or run `kinko serve --dev`)"
                    .into(),
            })?;
            // Recovery never serves: it needs the vault, not TLS.
            if tls.is_none() && !plain_http && self.recover_admin.is_none() {
                return Err(ServeError::Config {
                    message: "outside --dev the server speaks TLS: set tls_cert and tls_key, or \
                              --plain-http when a TLS proxy on this host terminates HTTPS"
                        .into(),
                });
            }
            let keys = match kek_file {
                Some(p) => load_keys(&p, kek_old_file.as_deref(), &data_dir)?,
                None => {
                    let primary =
                        MasterKey::from_env("KINKO_KEK").map_err(|e| ServeError::Config {
                            message: format!(
                                "no master key: set kek_file, --kek-file or KINKO_KEK ({e})"
                            ),
                        })?;
                    with_old(KeyRing::new(primary), kek_old_file.as_deref(), &data_dir)?
                }
            };
            (data_dir, keys, None)
        };
        let config = Config {
            dev: self.dev,
            listen,
            data_dir,
            dev_token_file,
            public_url,
            tls,
            limits,
            trusted_proxies,
            metrics_from,
            access_durability,
            sweep_interval,
            max_password_attempts,
            allow_missing_blobs: file.vault.allow_missing_blobs.unwrap_or(false),
            test_clock: self.test_clock,
        };
        Ok((config, keys))
    }
}

fn key_error(path: &Path, e: impl std::fmt::Display) -> ServeError {
    ServeError::Config {
        message: format!("master key {}: {e}", path.display()),
    }
}

fn load_keys(primary: &Path, old: Option<&Path>, data_dir: &Path) -> Result<KeyRing, ServeError> {
    check_private(primary, "master key")?;
    let key = MasterKey::from_file(primary, data_dir).map_err(|e| key_error(primary, e))?;
    with_old(KeyRing::new(key), old, data_dir)
}

fn with_old(ring: KeyRing, old: Option<&Path>, data_dir: &Path) -> Result<KeyRing, ServeError> {
    Ok(match old {
        Some(p) => {
            check_private(p, "master key")?;
            ring.with_old(MasterKey::from_file(p, data_dir).map_err(|e| key_error(p, e))?)
        }
        None => ring,
    })
}

/// Refuses a secret file (a master key, the TLS private key) that users outside the file's
/// owner and group may read or write: on a shared machine such a key protects nothing.
/// A file that cannot be inspected is left to the read that follows, which says why.
pub(crate) fn check_private(path: &Path, what: &str) -> Result<(), ServeError> {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o006 != 0 {
            return Err(ServeError::Config {
                message: format!(
                    "{what} {} can be read or written by other users (mode {mode:o}): run \
                     `chmod 600` on it (or 640 with the server's group) and start again",
                    path.display()
                ),
            });
        }
    }
    Ok(())
}

/// `--dev` listens on this host only (127.0.0.0/8 or ::1, also as `::ffff:127.x.y.z`): it
/// keeps its master key beside the data, prints an admin token and speaks plain HTTP, none of
/// which may face a network.
///
/// # Errors
///
/// [`ServeError::DevNotLoopback`] for any other address, the unspecified ones included.
fn dev_listen_check(listen: SocketAddr) -> Result<(), ServeError> {
    if listen.ip().to_canonical().is_loopback() {
        Ok(())
    } else {
        Err(ServeError::DevNotLoopback { addr: listen })
    }
}

/// The development master key: read from `path`, or generated there (mode 0600) on first use.
fn dev_kek(path: &Path, data_dir: &Path) -> Result<MasterKey, ServeError> {
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| key_error(path, e))?;
        }
        let key = MasterKey::generate();
        write_private(
            path,
            secrecy::ExposeSecret::expose_secret(&key.to_hex()).as_bytes(),
        )
        .map_err(|e| key_error(path, e))?;
    }
    MasterKey::from_file(path, data_dir).map_err(|e| key_error(path, e))
}

/// Writes a new file readable only by its owner.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boolean_variables_take_the_usual_spellings_and_name_themselves_otherwise() {
        let parse = env_bool("KINKO_X");
        for yes in ["1", "true", "TRUE", "True", "yes", "Yes", "on", "ON"] {
            assert_eq!(parse(yes), Ok(true), "{yes}");
        }
        for no in ["0", "false", "FALSE", "no", "No", "off", "Off"] {
            assert_eq!(parse(no), Ok(false), "{no}");
        }
        for bad in ["", " 1", "2", "maybe", "y", "enable"] {
            let err = parse(bad).unwrap_err();
            assert!(err.starts_with("KINKO_X takes 1, true"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn file_config_rejects_unknown_keys() {
        assert!(toml::from_str::<FileConfig>("listn = \"127.0.0.1:1\"").is_err());
        let c: FileConfig = toml::from_str(
            "listen = \"127.0.0.1:9\"\n[limits]\nlink_requests_per_minute = 0\n[vault]\naccess_durability = \"buffered\"\n",
        )
        .unwrap();
        assert_eq!(c.limits.link_requests_per_minute, Some(0));
        assert_eq!(c.vault.allow_missing_blobs, None);
        let c: FileConfig = toml::from_str("[vault]\nallow_missing_blobs = true\n").unwrap();
        assert_eq!(c.vault.allow_missing_blobs, Some(true));
    }

    #[test]
    fn dev_listens_on_loopback_only() {
        for ok in [
            "127.0.0.1:8750",
            "127.0.0.1:0",
            "127.1.2.3:8750",
            "[::1]:8750",
            "[::ffff:127.0.0.1]:8750",
        ] {
            assert!(dev_listen_check(ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for refused in [
            "0.0.0.0:8750",
            "[::]:8750",
            "192.168.1.10:8750",
            "10.0.0.1:0",
            "[2001:db8::1]:8750",
            "[::ffff:10.0.0.1]:8750",
            "128.0.0.1:8750",
        ] {
            let err = dev_listen_check(refused.parse().unwrap()).unwrap_err();
            assert!(
                matches!(err, ServeError::DevNotLoopback { addr } if addr == refused.parse().unwrap()),
                "{refused}: {err}"
            );
        }
    }
}
