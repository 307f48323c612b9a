//! The `peerlab` binary: parses the command line ([`cli`]) and runs the command; prints an
//! error as one line. Nothing else lives here.

mod cli;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if cli.check_args {
        // clap has already rejected anything it would reject at start-up.
        println!("ok");
        return ExitCode::SUCCESS;
    }
    peerlab::logging::init(&cli.log);
    warn_about_secrets_on_the_command_line();
    match cli.command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", render_error(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: many errors already quote their
/// source in their own message, and printing the chain would repeat it.
fn render_error(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Says once that a secret given as an argument is visible to every user (`ps`, shell
/// history), and which option reads it from a file instead.
fn warn_about_secrets_on_the_command_line() {
    let arguments = peerlab::secret::command_line();
    for (given, instead) in peerlab::secret::secrets_on_command_line(&arguments) {
        tracing::warn!(
            "{given} given on the command line is visible to every user of this machine (ps, \
             /proc/<pid>/cmdline); use {instead} instead"
        );
    }
}
