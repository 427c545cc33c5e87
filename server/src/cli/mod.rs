//! The `kinko` command line: clap parses raw arguments ([`Cli`]), each command validates its
//! own into a config before any work starts (ripgrep's low-level/high-level split), then runs.
//! Errors become exit codes in one place ([`error::CliError::exit_code`]).
//!
//! One module per command: [`keygen`], [`seal`], [`open`], [`inspect`], [`verify_audit`]; the
//! sidecar's client commands [`login`] (and logout), [`share`], [`manage`] (files, shares,
//! revoke, rm), [`get`] and [`admin`] (all over `kinko-client`). Shared pieces: [`io`] (inputs, outputs, terminal
//! checks, progress bar), [`interrupt`] (no temporary output nor echo-less terminal left behind by Ctrl-C),
//! [`passphrase`] (where passphrases, passwords and tokens come from),
//! [`remote`] (server, token and the client configuration file), [`human`] (durations, times,
//! tables) and [`error`].

pub(crate) mod admin;
pub(crate) mod error;
pub(crate) mod get;
pub(crate) mod human;
pub(crate) mod inspect;
pub(crate) mod interrupt;
pub(crate) mod io;
pub(crate) mod keygen;
pub(crate) mod login;
pub(crate) mod manage;
pub(crate) mod open;
pub(crate) mod passphrase;
pub(crate) mod remote;
pub(crate) mod seal;
pub(crate) mod share;
pub(crate) mod verify_audit;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use error::{CliError, EXIT_OK, EXIT_USAGE, exit_codes_help};

/// The top-level help text after the command list: examples, then exit codes.
fn after_help() -> String {
    format!(
        "\
Kinko seals files so that only the chosen people can open them: X25519 keys in age's
format (age1… / AGE-SECRET-KEY-1…), passphrases, or both.

With a Kinko server (kinko serve), the same tool shares files as expiring, revocable links.

Examples:
  kinko keygen -o key.txt                      make an identity; prints its public key
  kinko seal -r age1… report.pdf -o report.pdf.kinko
  kinko open -i key.txt report.pdf.kinko -o report.pdf
  kinko seal -p notes.txt > notes.txt.kinko    seal with a passphrase
  kinko inspect report.pdf.kinko               header details, no key needed

  kinko login --server https://files.example.com     asks for your API token
  kinko share report.pdf --expires 2d --max-downloads 3   prints the link
  kinko shares                                 your shares and their state
  kinko revoke SHARE_ID                        take a share back at once
  kinko get 'https://files.example.com/s/…#…' -i key.txt  what a partner runs

Run kinko help COMMAND for each command's options and examples.

{}",
        exit_codes_help()
    )
}

/// Kinko: encrypted file sharing. Seal, open and inspect envelopes; share files as expiring,
/// revocable links through a Kinko server.
#[derive(Debug, Parser)]
#[command(name = "kinko", version, after_help = after_help())]
pub(crate) struct Cli {
    /// No progress bar.
    #[arg(short, long, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a new X25519 identity (age format).
    Keygen(keygen::KeygenArgs),
    /// Encrypt a file to recipients and/or a passphrase.
    Seal(seal::SealArgs),
    /// Decrypt an envelope with identities or a passphrase.
    Open(open::OpenArgs),
    /// Show an envelope's header without decrypting anything.
    Inspect(inspect::InspectArgs),
    /// Check an exported audit log offline, with the public key that signs it.
    VerifyAudit(verify_audit::VerifyAuditArgs),
    /// Run the HTTP sidecar that shares files with partners (`kinko serve --dev` to try it).
    Serve(crate::serve::ServeArgs),
    /// Save a server and your API token for the commands below.
    Login(login::LoginArgs),
    /// Forget the saved API token (--revoke: revoke it on the server too).
    Logout(login::LogoutArgs),
    /// Upload a file and print a share link for it.
    Share(share::ShareArgs),
    /// List your uploaded files.
    Files(manage::FilesArgs),
    /// List your shares and their state.
    Shares(manage::SharesArgs),
    /// Revoke a share (or every share of a file) at once.
    Revoke(manage::RevokeArgs),
    /// Delete an uploaded file (its key is destroyed first).
    Rm(manage::RmArgs),
    /// Download a share from its link (and open it, if it is bound to your key).
    Get(get::GetArgs),
    /// Administer the server: users, tokens, freeze, retention, audit log.
    Admin(admin::AdminArgs),
}

impl Cli {
    /// Validates this command's arguments, then runs it.
    fn run(self) -> Result<(), CliError> {
        match self.command {
            Command::Keygen(args) => keygen::run(args.validate()?),
            Command::Seal(args) => seal::run(args.validate(self.quiet)?),
            Command::Open(args) => open::run(args.validate(self.quiet)?),
            Command::Inspect(args) => inspect::run(args.validate()?),
            Command::VerifyAudit(args) => verify_audit::run(args.validate()?),
            Command::Serve(args) => Ok(crate::serve::run(args)?),
            Command::Login(args) => login::login(args.validate()?),
            Command::Logout(args) => login::logout(args.validate()?),
            Command::Share(args) => share::run(args.validate(self.quiet)?),
            Command::Files(args) => manage::files(args.validate()?),
            Command::Shares(args) => manage::shares(args.validate()?),
            Command::Revoke(args) => manage::revoke(args.validate()?),
            Command::Rm(args) => manage::rm(args.validate()?),
            Command::Get(args) => get::run(args.validate(self.quiet)?),
            Command::Admin(args) => admin::run(args.validate(self.quiet)?),
        }
    }
}

/// Parses the command line, runs the command, and turns the outcome into an exit code.
pub(crate) fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version print to stdout and succeed; clap's own errors exit
            // with our usage code (clap would use 2, which is our I/O error code).
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() {
                EXIT_USAGE
            } else {
                EXIT_OK
            });
        }
    };
    match cli.run() {
        Ok(()) => ExitCode::from(EXIT_OK),
        // The reader of our stdout went away (`kinko open … | head`): not our failure.
        Err(err) if err.is_broken_pipe() => ExitCode::from(EXIT_OK),
        Err(err) => {
            error::report(&err);
            ExitCode::from(err.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn passphrase_is_never_an_argument_value() {
        // -p is a flag; a passphrase typed after it is taken as the input file name.
        let cli = Cli::try_parse_from(["kinko", "seal", "-p", "secret"]).unwrap();
        let Command::Seal(args) = cli.command else {
            panic!("not seal")
        };
        assert!(format!("{args:?}").contains("passphrase: true"));
    }
}
