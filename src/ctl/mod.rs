//! warren-ctl: rabbitmqctl's everyday subcommands over the management HTTP API, so it
//! operates Warren and RabbitMQ alike. See docs/CTL.md.
//!
//! - [`args`]: the command line (clap);
//! - [`client`]: the HTTP client (ureq) and how HTTP failures become errors;
//! - [`commands`]: what each subcommand requests and prints;
//! - [`columns`]: the `list_*` subcommands' columns;
//! - [`table`]: aligned table output;
//! - [`error`]: errors and their sysexits-style exit codes.

pub mod args;
pub mod client;
pub mod columns;
pub mod commands;
pub mod error;
pub mod table;

use clap::Parser;
use std::process::ExitCode;

/// Parses the command line, runs the subcommand, prints any error, and gives the exit
/// code.
pub fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { error::USAGE } else { 0 });
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("Error: {e}");
            }
            ExitCode::from(e.code)
        }
    }
}

pub fn run(cli: &args::Cli) -> error::Result<()> {
    let client = client::Client::new(&cli.global)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    commands::Ctl::new(&client, &cli.global, &mut out).run(&cli.command)
}
