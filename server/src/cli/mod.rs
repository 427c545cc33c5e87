//! The `kinko` command line: clap parses raw arguments ([`Cli`]), each command validates its
//! own into a config before any work starts (ripgrep's low-level/high-level split), then runs.
//! Errors become exit codes in one place ([`error::CliError::exit_code`]).
//!
//! One module per command: [`keygen`], [`seal`], [`open`], [`inspect`]. Shared pieces:
//! [`io`] (inputs, outputs, terminal checks, progress bar), [`passphrase`] (where passphrases
//! come from) and [`error`].

pub(crate) mod error;
pub(crate) mod inspect;
pub(crate) mod io;
pub(crate) mod keygen;
pub(crate) mod open;
pub(crate) mod passphrase;
pub(crate) mod seal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use error::{CliError, EXIT_OK, EXIT_USAGE, exit_codes_help};

/// The top-level help text after the command list: examples, then exit codes.
fn after_help() -> String {
    format!(
        "\
Kinko seals files so that only the chosen people can open them: X25519 keys in age's
format (age1… / AGE-SECRET-KEY-1…), passphrases, or both.

Examples:
  kinko keygen -o key.txt                      make an identity; prints its public key
  kinko seal -r age1… report.pdf -o report.pdf.kinko
  kinko open -i key.txt report.pdf.kinko -o report.pdf
  kinko seal -p notes.txt > notes.txt.kinko    seal with a passphrase
  kinko inspect report.pdf.kinko               header details, no key needed

Run kinko help COMMAND for each command's options and examples.

{}",
        exit_codes_help()
    )
}

/// Kinko: encrypted file sharing. Seal, open and inspect envelopes.
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
    /// Run the HTTP sidecar that shares files with partners (`kinko serve --dev` to try it).
    Serve(crate::serve::ServeArgs),
}

impl Cli {
    /// Validates this command's arguments, then runs it.
    fn run(self) -> Result<(), CliError> {
        match self.command {
            Command::Keygen(args) => keygen::run(args.validate()?),
            Command::Seal(args) => seal::run(args.validate(self.quiet)?),
            Command::Open(args) => open::run(args.validate(self.quiet)?),
            Command::Inspect(args) => inspect::run(args.validate()?),
            Command::Serve(args) => Ok(crate::serve::run(args)?),
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
