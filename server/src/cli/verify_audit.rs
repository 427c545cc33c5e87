//! `kinko verify-audit`: checks an exported audit log offline, with nothing but the public
//! key that signs its checkpoints. For auditors and anyone the operator hands an export to:
//! no server, no token.

use std::io::BufReader;
use std::path::PathBuf;

use clap::{Args, ValueHint};
use kinko_core::vault::audit;

use super::error::CliError;
use super::human::printable;
use super::io::InputArg;

const AFTER_HELP: &str = "\
Checks a file written by `kinko admin audit export` (or the server's audit export API) with
nothing but the audit public key: every record's place in the hash chain from record 1, every
checkpoint's Ed25519 signature, and that the file ends with the checkpoint signed for it. Any
edited, deleted, reordered or appended line, or a signature by another key, fails (exit code
23). Get the key from the operator through a channel you trust (they print it with
`kinko admin audit key`), not from the same place as the export.

Examples:
  kinko verify-audit audit.ndjson --key \"$(cat audit.key)\"    audit.key: the 64 hex digits
  gunzip -c audit.ndjson.gz | kinko verify-audit - --key \"$KEY\"";

/// Raw arguments of `kinko verify-audit`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct VerifyAuditArgs {
    /// The exported audit log (JSON Lines; "-" for stdin).
    #[arg(value_name = "EXPORT", value_hint = ValueHint::FilePath)]
    export: PathBuf,

    /// The audit public key the checkpoints must be signed with (64 hex digits).
    #[arg(long, value_name = "HEX")]
    key: String,
}

/// A validated `kinko verify-audit`.
#[derive(Debug)]
pub(crate) struct VerifyAuditConfig {
    input: InputArg,
    key: audit::VerifyingKey,
}

impl VerifyAuditArgs {
    /// Checks the key.
    pub(crate) fn validate(self) -> Result<VerifyAuditConfig, CliError> {
        let key = audit::parse_public_key(&self.key).ok_or_else(|| {
            CliError::usage(
                "--key is not an audit public key (64 hex digits of an Ed25519 public key)",
                "Use the key the operator published (`kinko admin audit key` prints it).",
            )
        })?;
        Ok(VerifyAuditConfig {
            input: InputArg::from_arg(Some(self.export)),
            key,
        })
    }
}

/// Runs `kinko verify-audit`: prints what verified, or fails with what did not.
///
/// # Errors
///
/// The export cannot be read, or does not verify.
pub(crate) fn run(config: VerifyAuditConfig) -> Result<(), CliError> {
    let (reader, _) = config.input.open()?;
    let name = config.input.display_name();
    let report =
        audit::verify_export(&mut BufReader::new(reader), &config.key).map_err(|source| {
            CliError::AuditExport {
                input: name.clone(),
                source,
            }
        })?;
    println!(
        "ok: {} records, {} signed checkpoints (signed through record {}), head {}",
        report.records,
        report.checkpoints,
        report.signed_through,
        printable(&hex::encode(report.head))
    );
    Ok(())
}
