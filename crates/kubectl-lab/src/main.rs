//! `kubectl-lab`: run as `kubectl lab ...` once on the PATH.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = kubectl_lab::Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match kubectl_lab::run(cli, &mut stdout).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
