//! `kinko`: the Kinko command-line tool (`keygen`, `seal`, `open`, `inspect`).
//!
//! Everything lives in [`cli`]; see `kinko --help` for the commands and exit codes.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
