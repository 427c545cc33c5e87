//! `kinko serve`: the HTTP sidecar (axum on hyper 1.x) that puts the vault on the network.
//!
//! - [`config`]: flags, environment and TOML file, resolved before anything starts.
//! - [`net`]: the accept loop (timeouts, connection limit, TLS, graceful shutdown).
//! - [`app`]: the router and the middleware every request passes (request id, log line,
//!   metrics, in-flight limit, security headers); [`files`], [`admin`] and [`links`] are the
//!   handlers; [`page`] the partner page and the small public endpoints.
//! - [`proxy`]: the client address behind trusted reverse proxies.
//! - [`stream`]: bounded bridges between the vault's blocking readers and hyper's bodies.
//! - [`workers`]: the threads that decide link requests and the group commit that makes the
//!   decisions durable.
//!
//! The HTTP contract is docs/API.md (and docs/openapi.json).

mod admin;
mod app;
pub(crate) mod config;
mod error;
mod files;
mod links;
mod metrics;
mod net;
mod page;
mod proxy;
mod ratelimit;
mod stream;
mod workers;

use std::io::Write;
use std::sync::Arc;

use kinko_core::vault::{Vault, VaultConfig};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing_subscriber::filter::{LevelFilter, Targets};

pub(crate) use config::ServeArgs;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    /// The configuration is incomplete or wrong.
    #[error("configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// `--dev` was asked to listen on an address other hosts can reach.
    #[error(
        "--dev listens on loopback only (127.0.0.0/8 or ::1), not {addr}: it keeps a development \
         master key beside the data, prints an admin token and serves plain HTTP"
    )]
    DevNotLoopback {
        /// The address asked for.
        addr: std::net::SocketAddr,
    },
    /// The vault could not be opened.
    #[error("cannot open the vault in {dir}: {source}")]
    Vault {
        /// The data directory.
        dir: std::path::PathBuf,
        /// The cause.
        source: kinko_core::vault::VaultError,
    },
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Starting the runtime failed.
    #[error("cannot start the server runtime: {0}")]
    Runtime(std::io::Error),
}

/// The levels `KINKO_LOG` accepts, quietest first.
const LOG_LEVELS: [(&str, LevelFilter); 6] = [
    ("off", LevelFilter::OFF),
    ("error", LevelFilter::ERROR),
    ("warn", LevelFilter::WARN),
    ("info", LevelFilter::INFO),
    ("debug", LevelFilter::DEBUG),
    ("trace", LevelFilter::TRACE),
];

/// The most other crates may log, whatever `KINKO_LOG` says. Below `warn`, the HTTP, TLS and
/// storage crates (hyper, h2, tower-http, rustls, sled, …) describe what passes through them:
/// header values (a bearer token, `Kinko-Link-Secret`, `Kinko-Password`), frames, body bytes,
/// stored records. Today none of the server's dependencies emits `tracing` events (axum's
/// `tracing` feature is off, and `log` records, from rustls and sled, are not bridged), so
/// this is what keeps it so when a dependency or a feature changes: no setting opens it.
const OTHER_CRATES_MAX: LevelFilter = LevelFilter::WARN;

/// `KINKO_LOG`'s level: one of [`LOG_LEVELS`] (any case, surrounding space ignored), `info`
/// when unset or empty, `None` for anything else.
fn log_level(setting: Option<&str>) -> Option<LevelFilter> {
    let setting = setting.map(str::trim).unwrap_or_default();
    if setting.is_empty() {
        return Some(LevelFilter::INFO);
    }
    LOG_LEVELS
        .iter()
        .find(|(name, _)| setting.eq_ignore_ascii_case(name))
        .map(|&(_, level)| level)
}

/// Kinko's own lines at `level`; every other crate's at no more than [`OTHER_CRATES_MAX`].
/// (The `kinko` target prefix also covers `kinko_core` and `kinko_client`, which are ours.)
fn log_filter(level: LevelFilter) -> Targets {
    Targets::new()
        .with_default(level.min(OTHER_CRATES_MAX))
        .with_target(env!("CARGO_CRATE_NAME"), level)
}

fn init_logging() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let setting = std::env::var("KINKO_LOG").ok();
    let level = log_level(setting.as_deref());
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_filter(log_filter(level.unwrap_or(LevelFilter::INFO)));
    let _ = tracing_subscriber::registry().with(output).try_init();
    if level.is_none() {
        // The value itself is not repeated: a log line holds nothing it was not meant to.
        tracing::warn!(
            "KINKO_LOG takes one of off, error, warn, info, debug, trace; logging at info"
        );
    }
}

/// How long the tokens of the first admin and of a recovered one are valid: a year.
const ADMIN_TOKEN_TTL: u64 = 365 * 86_400;

/// Runs the server until SIGTERM or Ctrl-C, or (`--recover-admin`) recovers an admin token.
pub(crate) fn run(args: ServeArgs) -> Result<(), ServeError> {
    let recover = args.recover_admin.clone();
    let (config, keys) = args.resolve()?;
    init_logging();
    if let Some(name) = recover {
        return recover_admin(&config, keys, &name);
    }
    kinko_core::envelope::set_default_threads(crypto_threads());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kinko-serve")
        // Every request in flight uses at most one blocking thread at a time (a streamed
        // download's reader, an upload's sealer, a vault call), plus a few for the sweeper
        // and shutdown: with this many, a request never queues for one behind the others.
        .max_blocking_threads(config.limits.max_in_flight + 16)
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(serve(config, keys))
}

async fn serve(config: config::Config, keys: kinko_core::vault::KeyRing) -> Result<(), ServeError> {
    let tls = match &config.tls {
        Some((cert, key)) => Some(net::tls_config(cert, key)?),
        None => None,
    };
    let opening = config.clone();
    let (vault, repair) = tokio::task::spawn_blocking(move || open_vault(&opening, keys))
        .await
        .expect("vault open task")?;
    if repair.needs_attention() {
        tracing::error!(
            missing = repair.missing_blobs.len(),
            files = ?repair.missing_blobs,
            blobs = %config.data_dir.join("blobs").display(),
            "files whose encrypted contents are missing from the blob directory: kept as they \
             are, their downloads fail until the blobs are restored (audited)"
        );
    } else if !repair.is_empty() {
        tracing::warn!(
            ?repair,
            "repaired what an earlier crash left behind (audited)"
        );
    }
    let vault = Arc::new(vault);

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: config.listen,
        source,
    })?;
    let url = net::base_url(local, tls.is_some());
    let public_url = config.public_url.clone().unwrap_or_else(|| url.clone());

    let admin_token = bootstrap(&vault, &config).await?;
    // Before the banner: whoever reads it may stop the server at once.
    let signals = net::Signals::install().map_err(ServeError::Runtime)?;
    print_banner(&config, &url, admin_token.as_deref());

    let metrics = Arc::new(metrics::Metrics::default());
    let state = app::AppState {
        inner: Arc::new(app::Shared {
            vault: vault.clone(),
            clock: app::Clock::new(config.test_clock),
            group_commit: workers::GroupCommit::start(&vault, &metrics)
                .map_err(ServeError::Runtime)?,
            metrics,
            link_limiter: ratelimit::RateLimiter::new(config.limits.link_per_minute),
            auth_limiter: ratelimit::RateLimiter::new(config.limits.auth_failures_per_minute),
            in_flight: Arc::new(Semaphore::new(config.limits.max_in_flight)),
            uploads: Semaphore::new(config.limits.max_uploads),
            argon2: Semaphore::new(vault_threads()),
            workers: workers::VaultWorkers::start(&vault, vault_threads())
                .map_err(ServeError::Runtime)?,
            limits: config.limits.clone(),
            proxies: config.trusted_proxies.clone(),
            metrics_from: config.metrics_from.clone(),
            public_url,
        }),
    };
    let sweeper = tokio::spawn(sweep_loop(state.clone(), config.sweep_interval));
    tracing::info!(%url, data = %config.data_dir.display(), "serving");
    let app = app::router(state);
    net::serve(listener, app, config.limits, tls, signals).await;
    sweeper.abort();
    let v = vault.clone();
    let _ = tokio::task::spawn_blocking(move || v.flush()).await;
    tracing::info!("stopped");
    Ok(())
}

/// Crypto pool threads for the server (unless `KINKO_CRYPTO_THREADS` says): half the cores.
/// A transfer already has a thread of its own that reads and hands over batches; the pool
/// adds parallelism within one transfer, which competes with the other transfers and the
/// network stack. Measured with 1 GiB downloads on 2 cores (curl beside it), one pool thread
/// instead of two: about 10% more MB/s at about 12% less server CPU per GiB.
fn crypto_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// Threads deciding link requests: one per core, at least two. One of them runs at a time
/// while it keeps up (the flushes are [`workers::GroupCommit`]'s); the others take over from
/// one stuck on a slow disk read, so that it does not stall the queue.
fn vault_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

/// Opens (or creates) the vault the configuration names. Blocking.
fn open_vault(
    config: &config::Config,
    keys: kinko_core::vault::KeyRing,
) -> Result<(Vault, kinko_core::vault::RepairReport), ServeError> {
    // A new data directory is private to the server's user (an existing one keeps its mode;
    // the vault makes its own meta/ and blobs/ private either way).
    let mut dir = std::fs::DirBuilder::new();
    dir.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
    dir.create(&config.data_dir)
        .map_err(|e| ServeError::Config {
            message: format!("cannot create {}: {e}", config.data_dir.display()),
        })?;
    let mut vc = VaultConfig::new(keys);
    vc.access_durability = config.access_durability;
    vc.max_password_attempts = config.max_password_attempts;
    vc.allow_missing_blobs = config.allow_missing_blobs;
    let now = kinko_core::vault::Timestamp::now();
    Vault::open(&config.data_dir, vc, now).map_err(|source| ServeError::Vault {
        dir: config.data_dir.clone(),
        source,
    })
}

/// `kinko serve --recover-admin NAME`: a new token for the admin `name` (created or
/// re-enabled), printed once; with `--dev` also kept where the dev server shows it.
fn recover_admin(
    config: &config::Config,
    keys: kinko_core::vault::KeyRing,
    name: &str,
) -> Result<(), ServeError> {
    // Recovery is for a vault that exists: a mistyped data directory must not become a new
    // vault with an admin nobody meant to create.
    let nothing = || ServeError::Config {
        message: format!(
            "no vault to recover in {}: the first start of the server creates the first admin",
            config.data_dir.display()
        ),
    };
    let (meta_dir, _) = kinko_core::vault::data_paths(&config.data_dir);
    if !meta_dir.exists() {
        return Err(nothing());
    }
    let (vault, _) = open_vault(config, keys)?;
    let vault_error = |source| match source {
        kinko_core::vault::VaultError::Invalid(message) => ServeError::Config { message },
        source => ServeError::Vault {
            dir: config.data_dir.clone(),
            source,
        },
    };
    if vault
        .meta()
        .users()
        .map_err(|e| vault_error(e.into()))?
        .is_empty()
    {
        return Err(nothing());
    }
    let now = kinko_core::vault::Timestamp::now();
    let recovered = vault
        .recover_admin(name, ADMIN_TOKEN_TTL, now)
        .map_err(vault_error)?;
    let token = recovered.token.expose_secret();
    if let Some(token_file) = &config.dev_token_file {
        let _ = std::fs::remove_file(token_file);
        config::write_private(token_file, token.expose_secret().as_bytes()).map_err(|e| {
            ServeError::Config {
                message: format!("cannot write {}: {e}", token_file.display()),
            }
        })?;
    }
    // stdout, not the logger: the token must never reach a log line.
    let what = match (recovered.created, recovered.revoked) {
        (true, _) => "created".to_owned(),
        (false, 0) => "recovered".to_owned(),
        (false, 1) => "recovered; its older token is revoked".to_owned(),
        (false, n) => format!("recovered; its {n} older tokens are revoked"),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "Admin {name:?} {what}. Admin token (valid for a year, shown once, store it now):\n  {}",
        token.expose_secret()
    );
    let _ = out.flush();
    Ok(())
}

/// Creates the first admin of an empty vault. Returns the token to show: new, or (in `--dev`
/// only) the one kept in the dev folder from an earlier start.
async fn bootstrap(
    vault: &Arc<Vault>,
    config: &config::Config,
) -> Result<Option<String>, ServeError> {
    let v = vault.clone();
    let now = kinko_core::vault::Timestamp::now();
    let created =
        tokio::task::spawn_blocking(move || -> Result<_, kinko_core::vault::VaultError> {
            if v.meta().users()?.is_empty() {
                let (_, token) = v.bootstrap_admin("admin", ADMIN_TOKEN_TTL, now)?;
                Ok(Some(token.expose_secret().expose_secret().to_owned()))
            } else {
                Ok(None)
            }
        })
        .await
        .expect("bootstrap task")
        .map_err(|source| ServeError::Vault {
            dir: config.data_dir.clone(),
            source,
        })?;
    let Some(token_file) = &config.dev_token_file else {
        return Ok(created);
    };
    match created {
        Some(t) => {
            let _ = std::fs::remove_file(token_file);
            config::write_private(token_file, t.as_bytes()).map_err(|e| ServeError::Config {
                message: format!("cannot write {}: {e}", token_file.display()),
            })?;
            Ok(Some(t))
        }
        None => Ok(std::fs::read_to_string(token_file)
            .ok()
            .map(|s| s.trim().to_owned())),
    }
}

fn print_banner(config: &config::Config, url: &str, token: Option<&str>) {
    // The banner goes to stdout, not through the logger: it is for the person who started
    // the server, and the admin token must never reach a log line.
    let mut out = std::io::stdout().lock();
    if config.dev {
        let _ = writeln!(
            out,
            "Kinko development server (data in {}; not for production)",
            config.data_dir.display()
        );
        let _ = writeln!(out, "  URL:          {url}");
        if let Some(t) = token {
            let _ = writeln!(out, "  Admin token:  {t}");
            let _ = writeln!(out, "Try it in another terminal:");
            let _ = writeln!(out, "  export KINKO_SERVER={url} KINKO_TOKEN={t}");
            let _ = writeln!(out, "  kinko share README.md --expires 1d");
        }
        if config.test_clock {
            let _ = writeln!(out, "  Test clock:   on (POST /api/v1/admin/clock)");
        }
    } else {
        let _ = writeln!(out, "Kinko is serving on {url}");
        if let Some(t) = token {
            let _ = writeln!(
                out,
                "The vault was empty: created the admin user \"admin\".\n  Admin token (shown once, store it now): {t}"
            );
        }
    }
    let _ = out.flush();
}

/// Runs the expiry sweeper every `interval` (also on demand: `POST /api/v1/admin/sweep`).
async fn sweep_loop(state: app::AppState, interval: std::time::Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match admin::run_sweep(&state).await {
            Ok(r) if r.visited > 0 => tracing::info!(
                shares_removed = r.shares_removed,
                files_removed = r.files_removed,
                "sweep"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(code = e.code, "sweep failed"),
        }
    }
}

impl From<ServeError> for crate::cli::error::CliError {
    fn from(e: ServeError) -> Self {
        let hint = match &e {
            ServeError::Config { .. } => {
                "see `kinko serve --help`; `kinko serve --dev` needs no configuration"
            }
            ServeError::DevNotLoopback { .. } => {
                "for a development server, use --listen 127.0.0.1:PORT; to serve other hosts, \
                 run without --dev with a config file (--config) that names the master key \
                 (kek_file, or KINKO_KEK) and TLS: docs/SERVER.md"
            }
            ServeError::Vault {
                source: kinko_core::vault::VaultError::Damaged(_),
                ..
            } => {
                "nothing was changed: fix what the message names, then start again (if every \
                 blob is really lost, [vault] allow_missing_blobs = true starts anyway)"
            }
            ServeError::Vault { .. } => {
                "check the master key (a vault opens only with the key it was created with) and \
                 that no other kinko server uses this data directory"
            }
            ServeError::Listen { .. } => {
                "pick another address with --listen (port 0 picks a free port)"
            }
            ServeError::Runtime(_) => "check the system's thread and file limits",
        };
        crate::cli::error::CliError::Usage {
            message: e.to_string(),
            hint: hint.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    /// Targets of the crates that log what passes through them when asked for debug or trace.
    const OTHERS: [&str; 8] = [
        "hyper::proto::h1::io",
        "h2::codec::framed_read",
        "tower_http::trace::on_request",
        "axum::rejection",
        "rustls::server::hs",
        "sled::pagecache",
        "reqwest::connect",
        "tokio::task",
    ];
    const LEVELS: [Level; 5] = [
        Level::ERROR,
        Level::WARN,
        Level::INFO,
        Level::DEBUG,
        Level::TRACE,
    ];

    #[test]
    fn kinko_log_takes_the_six_levels_and_defaults_to_info() {
        for (name, level) in LOG_LEVELS {
            assert_eq!(log_level(Some(name)), Some(level));
            assert_eq!(
                log_level(Some(&format!(" {} ", name.to_uppercase()))),
                Some(level)
            );
        }
        assert_eq!(log_level(None), Some(LevelFilter::INFO));
        assert_eq!(log_level(Some("")), Some(LevelFilter::INFO));
        for bad in ["verbose", "hyper=trace", "kinko=debug,info", "5"] {
            assert_eq!(log_level(Some(bad)), None, "{bad}");
        }
    }

    /// Whatever `KINKO_LOG` says, no other crate logs below `warn` (its debug and trace lines
    /// would carry header values and body bytes), while Kinko's own lines follow the setting.
    #[test]
    fn no_kinko_log_setting_lets_other_crates_log_below_warn() {
        let own = module_path!();
        assert!(own.starts_with("kinko::"), "{own}");
        for (name, level) in LOG_LEVELS {
            let filter = log_filter(level);
            for l in LEVELS {
                assert_eq!(
                    filter.would_enable(own, &l),
                    l <= level,
                    "{name}: {own} at {l}"
                );
                for other in OTHERS {
                    let expected = l <= level && l <= Level::WARN;
                    assert_eq!(
                        filter.would_enable(other, &l),
                        expected,
                        "KINKO_LOG={name}: {other} at {l}"
                    );
                }
            }
        }
    }
}
