//! `kinko files`, `kinko shares`, `kinko revoke` and `kinko rm`: what the caller has shared,
//! and taking it back.

use std::collections::HashMap;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use kinko_core::vault::{FileId, ShareId};

use super::error::CliError;
use super::human::{printable, relative, size, table, time};
use super::remote::{Remote, RemoteArgs};

/// The current time, for "in 3d" next to expiry times (display only; the server decides).
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Prints text on stdout.
fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Write {
            path: "<stdout>".into(),
            source,
        })
}

/// Parses an id argument (a file, share or user id: 32 hex digits). The refusal never repeats
/// the text: what was pasted in place of an id may be a whole link (with its secret) or an API
/// token. It only says what the text looks like, so the user sees the mix-up.
///
/// `what` names the id ("file id"), `hint` says where to find one.
///
/// # Errors
///
/// A usage error.
pub(crate) fn parse_id<T: std::str::FromStr>(
    text: &str,
    what: &str,
    hint: &str,
) -> Result<T, CliError> {
    text.trim().parse().map_err(|_| {
        let t = text.trim();
        let looks_like = if t.starts_with("kinko_") {
            " (it looks like an API token: keep that one secret)"
        } else if t.contains("://") || t.contains('#') {
            " (it looks like a link: links carry a secret, so this one is not repeated here)"
        } else {
            ""
        };
        CliError::usage(format!("not a {what}{looks_like}"), hint)
    })
}

/// Parses a file id argument (see [`parse_id`]).
pub(crate) fn parse_file_id(text: &str) -> Result<FileId, CliError> {
    parse_id(
        text,
        "file id",
        "A file id is 32 hex digits: kinko files lists yours.",
    )
}

/// Parses a share id, or takes it from a whole link (`…/s/<id>#…`; the secret is not used).
pub(crate) fn parse_share_ref(text: &str) -> Result<ShareId, CliError> {
    let t = text.trim();
    let id = match t.rfind("/s/") {
        Some(at) => {
            let rest = &t[at + 3..];
            rest.split(['#', '?', '/']).next().unwrap_or_default()
        }
        None => t,
    };
    parse_id(
        id,
        "share id or link",
        "A share id is 32 hex digits (kinko shares lists yours); a link works too.",
    )
}

const FILES_AFTER_HELP: &str = "\
Lists the files you uploaded, newest first: id, name, size, upload time and the time retention
deletes it. Use the id with kinko rm or kinko revoke --file.

Example:
  kinko files";

/// Raw arguments of `kinko files`.
#[derive(Debug, Args)]
#[command(after_help = FILES_AFTER_HELP)]
pub(crate) struct FilesArgs {
    #[command(flatten)]
    remote: RemoteArgs,
}

/// A validated `kinko files` (or `kinko shares`).
#[derive(Debug)]
pub(crate) struct ListConfig {
    remote: Remote,
}

impl FilesArgs {
    /// Finds the server and token.
    ///
    /// # Errors
    ///
    /// Not logged in.
    pub(crate) fn validate(self) -> Result<ListConfig, CliError> {
        Ok(ListConfig {
            remote: self.remote.resolve()?,
        })
    }
}

/// Prints the caller's files.
///
/// # Errors
///
/// The server's refusals.
pub(crate) fn files(config: ListConfig) -> Result<(), CliError> {
    let remote = &config.remote;
    let files = remote.client.files().map_err(|e| remote.err(e))?;
    if files.is_empty() {
        eprintln!("No files. Share one with kinko share FILE.");
        return Ok(());
    }
    let mut rows = vec![vec![
        "ID".into(),
        "NAME".into(),
        "SIZE".into(),
        "UPLOADED".into(),
        "KEPT UNTIL".into(),
    ]];
    for f in &files {
        rows.push(vec![
            f.id.to_string(),
            printable(&f.name),
            size(f.size),
            time(f.created),
            f.retain_until.map(time).unwrap_or_else(|| "-".into()),
        ]);
    }
    print(&table(&rows))
}

const SHARES_AFTER_HELP: &str = "\
Lists your shares: id, file, expiry, downloads so far (of the limit), and state (active,
expired, revoked, exhausted, locked, or frozen while an admin has frozen every share). Links
are not shown: the server does not keep them.

Examples:
  kinko shares
  kinko revoke SHARE_ID                   take one back";

/// Raw arguments of `kinko shares`.
#[derive(Debug, Args)]
#[command(after_help = SHARES_AFTER_HELP)]
pub(crate) struct SharesArgs {
    #[command(flatten)]
    remote: RemoteArgs,
}

impl SharesArgs {
    /// Finds the server and token.
    ///
    /// # Errors
    ///
    /// Not logged in.
    pub(crate) fn validate(self) -> Result<ListConfig, CliError> {
        Ok(ListConfig {
            remote: self.remote.resolve()?,
        })
    }
}

/// Prints the caller's shares.
///
/// # Errors
///
/// The server's refusals.
pub(crate) fn shares(config: ListConfig) -> Result<(), CliError> {
    let remote = &config.remote;
    let shares = remote.client.shares().map_err(|e| remote.err(e))?;
    if shares.is_empty() {
        eprintln!("No shares. Make one with kinko share FILE.");
        return Ok(());
    }
    // File names, for people; a share of a file that is not the caller's shows its id.
    let names: HashMap<FileId, String> = remote
        .client
        .files()
        .map(|fs| fs.into_iter().map(|f| (f.id, f.name)).collect())
        .unwrap_or_default();
    let now = now();
    let mut rows = vec![vec![
        "ID".into(),
        "FILE".into(),
        "EXPIRES".into(),
        "DOWNLOADS".into(),
        "STATE".into(),
    ]];
    for s in &shares {
        let file = names
            .get(&s.file)
            .map(|n| printable(n))
            .unwrap_or_else(|| s.file.to_string());
        let downloads = match s.max_downloads {
            Some(max) => format!("{}/{max}", s.downloads),
            None => s.downloads.to_string(),
        };
        let mut state = s.state.to_string();
        if s.password {
            state.push_str(", password");
        }
        if s.recipients > 0 {
            state.push_str(&format!(", bound to {}", s.recipients));
        }
        rows.push(vec![
            s.id.to_string(),
            file,
            format!("{} ({})", time(s.expires), relative(s.expires, now)),
            downloads,
            state,
        ]);
    }
    print(&table(&rows))
}

const REVOKE_AFTER_HELP: &str = "\
Revoking is immediate: a download already past its checks finishes, every later request is
refused. The link (or just its share id) identifies the share; --file revokes every share of a
file at once.

Examples:
  kinko revoke 3f2a…                         a share id from kinko shares
  kinko revoke 'https://files.example.com/s/3f2a…#…'
  kinko revoke --file 9c1e…                  every share of the file";

/// Raw arguments of `kinko revoke`.
#[derive(Debug, Args)]
#[command(after_help = REVOKE_AFTER_HELP)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["share", "file"]))]
pub(crate) struct RevokeArgs {
    /// The share to revoke: its id, or its whole link.
    #[arg(value_name = "SHARE_ID")]
    share: Option<String>,

    /// Revoke every share of this file instead.
    #[arg(long, value_name = "FILE_ID")]
    file: Option<String>,

    #[command(flatten)]
    remote: RemoteArgs,
}

/// What `kinko revoke` revokes.
#[derive(Debug)]
enum RevokeTarget {
    Share(ShareId),
    File(FileId),
}

/// A validated `kinko revoke`.
#[derive(Debug)]
pub(crate) struct RevokeConfig {
    remote: Remote,
    target: RevokeTarget,
}

impl RevokeArgs {
    /// Parses the id and finds the server and token.
    ///
    /// # Errors
    ///
    /// A malformed id; not logged in.
    pub(crate) fn validate(self) -> Result<RevokeConfig, CliError> {
        let target = match (self.share, self.file) {
            (Some(s), None) => RevokeTarget::Share(parse_share_ref(&s)?),
            (None, Some(f)) => RevokeTarget::File(parse_file_id(&f)?),
            _ => unreachable!("clap requires exactly one of SHARE_ID and --file"),
        };
        Ok(RevokeConfig {
            remote: self.remote.resolve()?,
            target,
        })
    }
}

/// Revokes.
///
/// # Errors
///
/// The server's refusals (not found, not yours).
pub(crate) fn revoke(config: RevokeConfig) -> Result<(), CliError> {
    let remote = &config.remote;
    match config.target {
        RevokeTarget::Share(id) => {
            remote
                .client
                .revoke_share(&id)
                .map_err(|e| remote.owned_err(e))?;
            eprintln!("Revoked share {id}.");
        }
        RevokeTarget::File(id) => {
            let n = remote
                .client
                .revoke_file_shares(&id)
                .map_err(|e| remote.owned_err(e))?;
            eprintln!(
                "Revoked {n} share{} of file {id}.",
                if n == 1 { "" } else { "s" }
            );
        }
    }
    Ok(())
}

const RM_AFTER_HELP: &str = "\
Deletes the file from the server: its key is destroyed first (crypto-shredding, so copies in
backups are unreadable too), then its shares and its encrypted bytes. This cannot be undone.

Example:
  kinko rm 9c1e…                             a file id from kinko files";

/// Raw arguments of `kinko rm`.
#[derive(Debug, Args)]
#[command(after_help = RM_AFTER_HELP)]
pub(crate) struct RmArgs {
    /// The file to delete.
    #[arg(value_name = "FILE_ID")]
    file: String,

    #[command(flatten)]
    remote: RemoteArgs,
}

/// A validated `kinko rm`.
#[derive(Debug)]
pub(crate) struct RmConfig {
    remote: Remote,
    file: FileId,
}

impl RmArgs {
    /// Parses the id and finds the server and token.
    ///
    /// # Errors
    ///
    /// A malformed id; not logged in.
    pub(crate) fn validate(self) -> Result<RmConfig, CliError> {
        Ok(RmConfig {
            file: parse_file_id(&self.file)?,
            remote: self.remote.resolve()?,
        })
    }
}

/// Deletes the file.
///
/// # Errors
///
/// The server's refusals (not found, not yours).
pub(crate) fn rm(config: RmConfig) -> Result<(), CliError> {
    let remote = &config.remote;
    remote
        .client
        .delete_file(&config.file)
        .map_err(|e| remote.owned_err(e))?;
    eprintln!(
        "Deleted file {}: its key is destroyed and its shares are gone.",
        config.file
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn share_refs_are_ids_or_links() {
        let id: ShareId = ID.parse().unwrap();
        for text in [
            ID.to_string(),
            format!(" {ID}\n"),
            format!("https://a.b/s/{ID}"),
            format!("https://a.b/x/s/{ID}#{}", "ab".repeat(32)),
        ] {
            assert_eq!(parse_share_ref(&text).unwrap(), id, "{text}");
        }
        for bad in ["", "xyz", "https://a.b/s/", &ID[..31]] {
            assert!(parse_share_ref(bad).is_err(), "{bad}");
        }
    }
}
