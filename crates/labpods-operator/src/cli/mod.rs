//! Subcommands of the `labpods` binary.

pub mod bmc;
pub mod run;

use clap::{Parser, Subcommand};

/// labpods: a Kubernetes operator that runs a shared bare-metal lab as a service.
#[derive(Debug, Parser)]
#[command(name = "labpods", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Talk to one server's BMC over Redfish (check a new host, power, boot, media).
    Bmc(bmc::BmcArgs),
    /// Run the operator: controllers, leader election, /metrics, /healthz, /readyz, phone-home.
    Run(run::RunArgs),
}
