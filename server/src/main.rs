//! `kinko`: the Kinko command-line tool (`keygen`, `seal`, `open`, `inspect`) and the HTTP
//! sidecar (`serve`).
//!
//! Everything lives in [`cli`]; see `kinko --help` for the commands and exit codes.

mod cli;
mod serve;

fn main() -> std::process::ExitCode {
    cli::main()
}
