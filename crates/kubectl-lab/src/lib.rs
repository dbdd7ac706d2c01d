//! `kubectl lab`: the labpods kubectl plugin. The binary (`src/main.rs`) parses the command
//! line, builds a client from the kubeconfig and calls [`run`]; tests call [`run_with_client`]
//! with the exact arguments a user types.

pub mod cli;
pub mod commands;
pub mod error;
pub mod output;
pub mod session;

use std::ffi::OsString;
use std::io::Write;

use clap::{CommandFactory, Parser};

pub use cli::Cli;
pub use error::{Error, Result};
pub use session::Session;

/// What kubectl (1.26 and later) asks of `kubectl_complete-lab` when a user presses TAB
/// after `kubectl lab`: `args` are the words after `lab`, the last one the word being
/// completed (maybe empty). Answers in cobra's `__complete` protocol, as kubectl expects:
/// one candidate per line (a tab, then its help), then `:4` (no file completion).
pub fn complete_for_kubectl(mut args: Vec<OsString>, out: &mut dyn Write) -> std::io::Result<()> {
    if args.is_empty() {
        args.push(OsString::new());
    }
    args.insert(0, OsString::from("kubectl-lab"));
    let index = args.len() - 1;
    let candidates =
        clap_complete::engine::complete(&mut Cli::command(), args, index, None).unwrap_or_default();
    for candidate in candidates.iter().filter(|c| !c.is_hide_set()) {
        let value = candidate.get_value().to_string_lossy();
        match candidate.get_help() {
            Some(help) => {
                let help = help.to_string();
                writeln!(out, "{value}\t{}", help.lines().next().unwrap_or_default())?;
            }
            None => writeln!(out, "{value}")?,
        }
    }
    writeln!(out, ":4")
}

/// Runs a parsed command line: reads the kubeconfig, then the command.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    if let cli::Command::Completion { shell } = cli.command {
        let mut command = Cli::command();
        clap_complete::generate(shell, &mut command, "kubectl-lab", out);
        return Ok(());
    }
    let config = session::config(cli.kubeconfig.as_deref(), cli.context.as_deref()).await?;
    let server = config.cluster_url.to_string();
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config)
        .map_err(|e| Error::Kubeconfig(format!("building a client: {e}")))?;
    let mut session = Session::new(client, server, namespace, cli.output);
    session.colour = session::colour_wanted();
    commands::dispatch(&session, cli.command, out).await
}

/// Parses `args` (without the program name) as the binary does and runs them with `client`
/// (the namespace is `-n`, else `default`). Usage errors come back as [`Error::Usage`].
pub async fn run_with_client<I, S>(client: kube::Client, args: I, out: &mut dyn Write) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString> + Clone,
{
    let argv =
        std::iter::once(OsString::from("kubectl-lab")).chain(args.into_iter().map(Into::into));
    let cli = Cli::try_parse_from(argv).map_err(|e| Error::Usage(e.to_string()))?;
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let session = Session::new(
        client,
        "the test cluster".to_string(),
        namespace,
        cli.output,
    );
    commands::dispatch(&session, cli.command, out).await
}
