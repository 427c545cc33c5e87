//! `kinko admin …`: users and tokens, freeze, sweep, KEK rotation, retention and the audit
//! log, through the server's admin API (an admin token; the audit commands also take an
//! auditor's).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum, ValueHint};
use kinko_client::{ClientError, Retention};
use kinko_core::vault::{Role, TokenId, UserId};
use secrecy::ExposeSecret;

use super::error::CliError;
use super::human::{duration, parse_duration, printable, table, time};
use super::io::{Output, OutputArg};
use super::remote::{Remote, RemoteArgs, TransferBar};

const AFTER_HELP: &str = "\
Every admin command needs an admin's API token (kinko login with it, or KINKO_TOKEN); the
audit commands also work with an auditor's.

Examples:
  kinko admin users
  kinko admin add-user alice --role member        prints the new user's id
  kinko admin token USER_ID --label laptop --ttl 30d   prints the token, once
  kinko admin tokens USER_ID                      the user's tokens: id, label, expiry
  kinko admin revoke-token TOKEN_ID               a lost laptop's token, nothing else
  kinko admin disable USER_ID                     kills the user's tokens and shares at once
  kinko admin freeze                              refuse every share until unfreeze
  kinko admin audit verify
  kinko admin audit export -o audit.ndjson
  kinko admin retention --default 30d --max 52w";

/// Raw arguments of `kinko admin`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct AdminArgs {
    #[command(flatten)]
    remote: RemoteArgs,

    #[command(subcommand)]
    command: AdminCommand,
}

/// A role, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RoleArg {
    /// Uploads files, shares and revokes their own.
    Member,
    /// Manages users, tokens, retention, freezes and keys.
    Admin,
    /// Reads, verifies and exports the audit log.
    Auditor,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Member => Role::Member,
            RoleArg::Admin => Role::Admin,
            RoleArg::Auditor => Role::Auditor,
        }
    }
}

/// The admin commands.
#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// List the users.
    Users,
    /// Create a user; prints the new user's id on stdout.
    AddUser {
        /// The user's name (unique).
        name: String,
        /// The user's role.
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Issue an API token for a user; prints it on stdout (it is shown only once).
    Token {
        /// The user.
        #[arg(value_name = "USER_ID")]
        user: String,
        /// A label to recognize the token by (e.g. the machine it is for).
        #[arg(long, value_name = "LABEL", default_value = "kinko admin token")]
        label: String,
        /// How long the token works (default: the server's, 90 days; at most 366d).
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
    },
    /// List a user's API tokens: id, label, issue and expiry times (never the tokens).
    Tokens {
        /// The user.
        #[arg(value_name = "USER_ID")]
        user: String,
    },
    /// Revoke one API token (a lost laptop's, say), leaving the user and their other tokens
    /// and shares as they are.
    RevokeToken {
        /// The token's id: the first column of kinko admin tokens (not the token itself).
        #[arg(value_name = "TOKEN_ID")]
        token: String,
    },
    /// Disable a user: deletes their tokens and revokes every share of their files (also those
    /// an admin made) and every share they created.
    Disable {
        /// The user.
        #[arg(value_name = "USER_ID")]
        user: String,
    },
    /// Enable a disabled user again (their old tokens and shares stay dead).
    Enable {
        /// The user.
        #[arg(value_name = "USER_ID")]
        user: String,
    },
    /// Freeze every share of the deployment until `unfreeze` (emergency stop).
    Freeze {
        /// Only say whether shares are frozen.
        #[arg(long)]
        status: bool,
    },
    /// Lift the freeze.
    Unfreeze,
    /// Run the expiry sweeper now.
    Sweep,
    /// Re-wrap every file key under the primary master key (after starting the server with a
    /// new --kek-file and the old one as --kek-old-file).
    RotateKek,
    /// Show or set the retention policy (how long files are kept).
    Retention {
        /// Retention of files uploaded without one.
        #[arg(long, value_name = "DURATION")]
        default: Option<String>,
        /// The longest retention an uploader may ask for.
        #[arg(long, value_name = "DURATION")]
        max: Option<String>,
    },
    /// The audit log: verify, export, signing key.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `kinko admin audit …`.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Verify the audit chain and its signed checkpoints (exit code 23 if a record is broken).
    Verify,
    /// Export the audit log as JSON lines (records, then signed checkpoints).
    Export {
        /// Write to OUT (written completely, then renamed into place; mode 0600). Default:
        /// stdout.
        #[arg(short, long, value_name = "OUT", value_hint = ValueHint::FilePath)]
        output: Option<PathBuf>,
    },
    /// Print the Ed25519 public key that signs the audit checkpoints (hex).
    Key,
}

/// A validated admin command.
#[derive(Debug)]
enum Action {
    Users,
    AddUser {
        name: String,
        role: Role,
    },
    Token {
        user: UserId,
        label: String,
        ttl: Option<u64>,
    },
    Tokens(UserId),
    RevokeToken(TokenId),
    Disable(UserId),
    Enable(UserId),
    Freeze {
        status: bool,
    },
    Unfreeze,
    Sweep,
    RotateKek,
    Retention {
        default: Option<u64>,
        max: Option<u64>,
    },
    AuditVerify,
    AuditExport(OutputArg),
    AuditKey,
}

/// A validated `kinko admin …`.
#[derive(Debug)]
pub(crate) struct AdminConfig {
    remote: Remote,
    action: Action,
    quiet: bool,
}

fn parse_user(text: &str) -> Result<UserId, CliError> {
    super::manage::parse_id(
        text,
        "user id",
        "A user id is 32 hex digits: kinko admin users lists them.",
    )
}

impl AdminArgs {
    /// Parses ids and durations and finds the server and token.
    ///
    /// # Errors
    ///
    /// Malformed ids or durations; not logged in.
    pub(crate) fn validate(self, quiet: bool) -> Result<AdminConfig, CliError> {
        let action = match self.command {
            AdminCommand::Users => Action::Users,
            AdminCommand::AddUser { name, role } => {
                if name.trim().is_empty() {
                    return Err(CliError::usage("the user name is empty", "Give a name."));
                }
                Action::AddUser {
                    name,
                    role: role.into(),
                }
            }
            AdminCommand::Token { user, label, ttl } => Action::Token {
                user: parse_user(&user)?,
                label,
                ttl: ttl.map(|t| parse_duration(&t, "--ttl")).transpose()?,
            },
            AdminCommand::Tokens { user } => Action::Tokens(parse_user(&user)?),
            AdminCommand::RevokeToken { token } => Action::RevokeToken(super::manage::parse_id(
                &token,
                "token id",
                "A token id is 32 hex digits: kinko admin tokens USER_ID lists them.",
            )?),
            AdminCommand::Disable { user } => Action::Disable(parse_user(&user)?),
            AdminCommand::Enable { user } => Action::Enable(parse_user(&user)?),
            AdminCommand::Freeze { status } => Action::Freeze { status },
            AdminCommand::Unfreeze => Action::Unfreeze,
            AdminCommand::Sweep => Action::Sweep,
            AdminCommand::RotateKek => Action::RotateKek,
            AdminCommand::Retention { default, max } => Action::Retention {
                default: default
                    .map(|d| parse_duration(&d, "--default"))
                    .transpose()?,
                max: max.map(|m| parse_duration(&m, "--max")).transpose()?,
            },
            AdminCommand::Audit(AuditCommand::Verify) => Action::AuditVerify,
            AdminCommand::Audit(AuditCommand::Export { output }) => {
                Action::AuditExport(OutputArg::from_arg(output))
            }
            AdminCommand::Audit(AuditCommand::Key) => Action::AuditKey,
        };
        Ok(AdminConfig {
            remote: self.remote.resolve()?,
            action,
            quiet,
        })
    }
}

fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Write {
            path: "<stdout>".into(),
            source,
        })
}

/// Runs the admin command.
///
/// # Errors
///
/// The server's refusals (forbidden without the role, not found, exists, invalid), write
/// errors, and a broken audit chain.
pub(crate) fn run(config: AdminConfig) -> Result<(), CliError> {
    let remote = &config.remote;
    let client = &remote.client;
    let err = |e| remote.err(e);
    match config.action {
        Action::Users => {
            let users = client.users().map_err(err)?;
            let mut rows = vec![vec![
                "ID".into(),
                "NAME".into(),
                "ROLE".into(),
                "STATE".into(),
                "CREATED".into(),
            ]];
            for u in &users {
                rows.push(vec![
                    u.id.to_string(),
                    printable(&u.name),
                    u.role.to_string(),
                    if u.disabled { "disabled" } else { "active" }.into(),
                    time(u.created),
                ]);
            }
            print(&table(&rows))
        }
        Action::AddUser { name, role } => {
            let user = client.create_user(&name, role).map_err(err)?;
            if !config.quiet {
                eprintln!(
                    "Created {} {} ({}). Issue a token with kinko admin token {}.",
                    user.role,
                    printable(&user.name),
                    user.id,
                    user.id
                );
            }
            print(&format!("{}\n", user.id))
        }
        Action::Token { user, label, ttl } => {
            let issued = client.issue_token(&user, &label, ttl).map_err(err)?;
            if !config.quiet {
                eprintln!(
                    "Token {} expires {}. It is shown only this once: hand it over now (kinko \
                     login reads it).",
                    issued.id,
                    time(issued.expires)
                );
            }
            let secret = issued.token.expose_secret();
            let mut line =
                zeroize::Zeroizing::new(String::with_capacity(secret.expose_secret().len() + 1));
            line.push_str(secret.expose_secret());
            line.push('\n');
            print(&line)
        }
        Action::Tokens(user) => {
            let tokens = client.tokens(&user).map_err(err)?;
            let mut rows = vec![vec![
                "ID".into(),
                "LABEL".into(),
                "ISSUED".into(),
                "EXPIRES".into(),
            ]];
            for t in &tokens {
                let expires = if t.expired {
                    format!("{} (expired)", time(t.expires))
                } else {
                    time(t.expires)
                };
                rows.push(vec![
                    t.id.to_string(),
                    printable(&t.label),
                    time(t.created),
                    expires,
                ]);
            }
            print(&table(&rows))
        }
        Action::RevokeToken(token) => {
            client.revoke_token(&token).map_err(err)?;
            eprintln!("Revoked token {token}: it is refused from now on.");
            Ok(())
        }
        Action::Disable(user) => {
            client.disable_user(&user).map_err(err)?;
            eprintln!("Disabled user {user}: their tokens are deleted and their shares revoked.");
            Ok(())
        }
        Action::Enable(user) => {
            // "The old tokens stay dead" is only true of a user who was disabled: say so
            // when there was nothing to enable (the list is an admin call, as enabling is).
            let listed = client.users().map_err(err)?;
            if listed.iter().any(|u| u.id == user && !u.disabled) {
                eprintln!(
                    "User {user} is not disabled: nothing changed (their tokens and shares work \
                     as before)."
                );
                return Ok(());
            }
            client.enable_user(&user).map_err(err)?;
            eprintln!("Enabled user {user}. Issue a new token: the old ones stay dead.");
            Ok(())
        }
        Action::Freeze { status: true } => {
            let frozen = client.frozen().map_err(err)?;
            print(if frozen {
                "frozen: every share is refused\n"
            } else {
                "not frozen\n"
            })
        }
        Action::Freeze { status: false } => {
            client.freeze().map_err(err)?;
            eprintln!("Frozen: every share is refused until kinko admin unfreeze.");
            Ok(())
        }
        Action::Unfreeze => {
            client.unfreeze().map_err(err)?;
            eprintln!("Unfrozen: shares work again (revoked and expired ones stay dead).");
            Ok(())
        }
        Action::Sweep => {
            let r = client.sweep().map_err(err)?;
            print(&format!(
                "visited {}, shares removed {}, files removed {}\n",
                r.visited, r.shares_removed, r.files_removed
            ))
        }
        Action::RotateKek => {
            let r = client.rotate_kek().map_err(err)?;
            print(&format!(
                "re-wrapped {}, already current {}\n",
                r.rewrapped, r.already_current
            ))
        }
        Action::Retention { default, max } => {
            let policy = if default.is_none() && max.is_none() {
                client.retention().map_err(err)?
            } else {
                let current = match (default, max) {
                    (Some(d), Some(m)) => Retention { default: d, max: m },
                    _ => client.retention().map_err(err)?,
                };
                let wanted = Retention {
                    default: default.unwrap_or(current.default),
                    max: max.unwrap_or(current.max),
                };
                client.set_retention(wanted).map_err(err)?
            };
            print(&format!(
                "default {} ({} s), max {} ({} s)\n",
                duration(policy.default),
                policy.default,
                duration(policy.max),
                policy.max
            ))
        }
        Action::AuditVerify => {
            let r = client.verify_audit().map_err(err)?;
            print(&format!(
                "ok: {} records, {} signed checkpoints (signed through record {}), head {}\n",
                r.records,
                r.checkpoints,
                r.signed_through,
                printable(&r.head)
            ))
        }
        Action::AuditExport(output) => {
            let mut out = Output::create(&output)?;
            let path = out.path();
            let mut bar = TransferBar::new(config.quiet, "exporting");
            let result = client.export_audit(&mut out, |p| bar.update(p));
            bar.finish();
            let bytes = result.map_err(|e| match e {
                ClientError::Io(source) => CliError::Write { path, source },
                other => remote.err(other),
            })?;
            out.commit()?;
            if !config.quiet && output != OutputArg::DefaultStdout {
                eprintln!("Exported {} of audit log.", super::human::size(bytes));
            }
            Ok(())
        }
        Action::AuditKey => {
            let key = client.audit_key().map_err(err)?;
            print(&format!("{}\n", printable(&key)))
        }
    }
}
