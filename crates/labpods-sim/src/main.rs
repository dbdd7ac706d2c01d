//! `labpods-sim`: serve a fleet of simulated BMCs until Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use labpods_sim::labhosts::{self, Manifests};
use labpods_sim::{Sim, SimConfig, TlsCertificate};

/// A fleet of simulated Redfish BMCs (host i on 127.0.0.1:PORT_BASE+i).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Number of BMCs.
    #[arg(long, default_value_t = 8)]
    hosts: usize,
    /// Host i listens on PORT_BASE + i; 0: OS-assigned ports.
    #[arg(long, default_value_t = 9100)]
    port_base: u16,
    /// Admin endpoint port (faults, state, history); default: PORT_BASE (0 when PORT_BASE is 0).
    #[arg(long)]
    admin_port: Option<u16>,
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    boot_time: Duration,
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    power_delay: Duration,
    /// Added to every Redfish call.
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
    latency: Duration,
    /// Serve HTTPS; the CA is written next to --emit-labhosts (or printed).
    #[arg(long)]
    tls: bool,
    /// With --tls: serve one self-signed certificate that is its own CA (as many BMCs do)
    /// instead of a CA-issued one; that certificate is what clients pin.
    #[arg(long, requires = "tls")]
    tls_self_signed: bool,
    #[arg(long, env = "LABPODS_SIM_USERNAME", default_value = "admin")]
    username: String,
    #[arg(
        long,
        env = "LABPODS_SIM_PASSWORD",
        default_value = "labpods",
        hide_default_value = true
    )]
    password: String,
    #[arg(long, default_value_t = 16)]
    session_limit: usize,
    /// Actions answer 202 with a task monitor.
    #[arg(long)]
    async_actions: bool,
    /// Write LabHost manifests and the credentials Secret for the fleet to this file.
    #[arg(long)]
    emit_labhosts: Option<PathBuf>,
    /// Namespace of the emitted credentials Secret.
    #[arg(long, default_value = "labpods-system")]
    secret_namespace: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let config = SimConfig {
        hosts: args.hosts,
        port_base: args.port_base,
        admin_port: Some(args.admin_port.unwrap_or(args.port_base)),
        boot_time: args.boot_time,
        power_delay: args.power_delay,
        latency: args.latency,
        tls: args.tls,
        tls_certificate: if args.tls_self_signed {
            TlsCertificate::SelfSigned
        } else {
            TlsCertificate::CaSigned
        },
        username: args.username,
        password: args.password,
        session_limit: args.session_limit,
        async_actions: args.async_actions,
        ..SimConfig::default()
    };
    let sim = Sim::start(config).await.context("starting the fleet")?;
    let last = sim.hosts();
    println!(
        "labpods-sim: {last} BMCs, system id {} on each",
        sim.system_id(1)
    );
    println!("  host 1: {}", sim.endpoint(1));
    if last > 1 {
        println!("  host {last}: {}", sim.endpoint(last));
    }
    if let Some(admin) = sim.admin_url() {
        println!("  admin: {admin}admin/hosts/{{i}}");
    }
    if let Some(path) = &args.emit_labhosts {
        let manifests = Manifests {
            secret_namespace: args.secret_namespace,
            ..Manifests::default()
        };
        std::fs::write(path, labhosts::render(&sim, &manifests))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("  LabHosts: {}", path.display());
    }
    if let Some(ca) = sim.ca_pem() {
        match &args.emit_labhosts {
            Some(path) => {
                let ca_path = path.with_extension("ca.pem");
                std::fs::write(&ca_path, ca)
                    .with_context(|| format!("writing {}", ca_path.display()))?;
                println!("  CA: {}", ca_path.display());
            }
            None => println!("{ca}"),
        }
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sim.shutdown().await;
    Ok(())
}
