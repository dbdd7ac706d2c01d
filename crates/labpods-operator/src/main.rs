//! `labpods`: the operator binary. Subcommands are implemented in the library's `cli` module.

use std::process::ExitCode;

use clap::Parser;
use labpods_operator::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Bmc(args) => labpods_operator::cli::bmc::run(args, &mut std::io::stdout()).await,
        Command::Run(args) => labpods_operator::cli::run::run(args)
            .await
            .map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
