//! Command implementations behind the binary's subcommands: the edge where library errors
//! become `anyhow` errors with context for the person at the terminal.

pub mod extract;
pub mod logger;
pub mod record;
pub mod rehearse;
pub mod run;
pub mod setup;
