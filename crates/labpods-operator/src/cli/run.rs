//! `labpods run`: the operator. Loads and checks the configuration, checks the cluster (CRDs,
//! permissions), serves /metrics, /healthz, /readyz and the phone-home endpoint, takes part in
//! leader election, and runs the controllers while leading. SIGTERM/SIGINT: the controllers
//! drain, BMC sessions are logged out, then the leader lease is released.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use kube::Client;
use labpods_redfish::{ClientPolicy, RedfishConnector};
use tokio::sync::watch;
use url::Url;

use crate::{
    config::{Config, ConfigError, LogFormat},
    context::{Clock, SystemClock},
    controllers::{
        self, Shared,
        labhost::{phone_home::StatusSink, seed::SeedServer},
    },
    http::{self, Health, HttpError, PhoneHomeTokens},
    leader::{LeaderElector, Leadership, default_identity},
    metrics::Metrics,
    signing::{self, LeaseSigner, key::KeyError},
    startup::{self, StartupError},
    telemetry,
};

/// Flags and environment variables; each overrides the same setting of the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// YAML configuration file (every key optional; see examples/operator-config.yaml).
    #[arg(long, env = "LABPODS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address of /metrics, /healthz, /readyz [config: http.metricsAddress].
    #[arg(long, env = "LABPODS_METRICS_ADDRESS")]
    pub metrics_address: Option<SocketAddr>,
    /// Listen address of the phone-home endpoint [config: phoneHome.listenAddress].
    #[arg(long, env = "LABPODS_PHONE_HOME_ADDRESS")]
    pub phone_home_address: Option<SocketAddr>,
    /// URL lab hosts use to reach the phone-home endpoint [config: phoneHome.externalBaseUrl].
    #[arg(long, env = "LABPODS_PHONE_HOME_URL")]
    pub phone_home_url: Option<Url>,
    /// File with the phone-home token secret [config: phoneHome.secretFile].
    #[arg(long, env = "LABPODS_PHONE_HOME_SECRET_FILE")]
    pub phone_home_secret_file: Option<String>,
    /// Take part in leader election (true) or act alone (false) [config: leaderElection.enabled].
    #[arg(long, env = "LABPODS_LEADER_ELECT")]
    pub leader_elect: Option<bool>,
    /// Namespace of the leader election Lease [config: leaderElection.leaseNamespace].
    #[arg(long, env = "LABPODS_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// This replica's identity [config: leaderElection.identity].
    #[arg(long, env = "LABPODS_IDENTITY")]
    pub identity: Option<String>,
    /// Log format [config: logging.format].
    #[arg(long, env = "LABPODS_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

/// Why `labpods run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Logging(String),
    #[error("cannot connect to Kubernetes (set KUBECONFIG or run in a cluster): {0}")]
    Kubeconfig(kube::Error),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("phone-home secret: {0}")]
    Secret(String),
    #[error(transparent)]
    SigningKey(#[from] KeyError),
    #[error("image verifier: {0}")]
    Images(String),
}

impl RunError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Config(e) => e.metric_label(),
            Self::Logging(_) => "logging",
            Self::Kubeconfig(_) => "kubeconfig",
            Self::Startup(e) => e.metric_label(),
            Self::Http(e) => e.metric_label(),
            Self::Secret(_) => "secret",
            Self::SigningKey(e) => e.metric_label(),
            Self::Images(_) => "images",
        }
    }
}

/// The file (or defaults) with flags and environment on top, validated.
pub fn load_config(args: &RunArgs) -> Result<Config, ConfigError> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(a) = args.metrics_address {
        config.http.metrics_address = a;
    }
    if let Some(a) = args.phone_home_address {
        config.phone_home.listen_address = a;
    }
    if let Some(u) = &args.phone_home_url {
        config.phone_home.external_base_url = Some(u.clone());
    }
    if let Some(f) = &args.phone_home_secret_file {
        config.phone_home.secret_file = Some(f.clone());
    }
    if let Some(e) = args.leader_elect {
        config.leader_election.enabled = e;
    }
    if let Some(ns) = &args.leader_election_namespace {
        config.leader_election.lease_namespace = ns.clone();
    }
    if let Some(id) = &args.identity {
        config.leader_election.identity = Some(id.clone());
    }
    if let Some(f) = args.log_format {
        config.logging.format = f;
    }
    config.validate()?;
    Ok(config)
}

/// The phone-home token key: from `phoneHome.secretFile` when set, else derived from the Lease
/// signing key, which every replica already shares.
fn phone_home_tokens(config: &Config, signer: &LeaseSigner) -> Result<PhoneHomeTokens, RunError> {
    let Some(path) = &config.phone_home.secret_file else {
        return Ok(PhoneHomeTokens::new(&signer.derive("phone-home")));
    };
    let secret =
        std::fs::read(path).map_err(|e| RunError::Secret(format!("cannot read {path}: {e}")))?;
    let secret = secret.trim_ascii();
    if secret.len() < 16 {
        return Err(RunError::Secret(format!(
            "{path} holds {} bytes; use at least 16 random bytes",
            secret.len()
        )));
    }
    Ok(PhoneHomeTokens::new(secret))
}

/// Sets the flag on SIGTERM or SIGINT.
fn watch_signals(tx: watch::Sender<bool>) {
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            () = term => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        }
        let _ = tx.send(true);
    });
}

pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let config = load_config(&args)?;
    telemetry::init(&config.logging).map_err(RunError::Logging)?;
    let client = Client::try_default().await.map_err(RunError::Kubeconfig)?;
    let election = &config.leader_election;
    startup::check(&client, &election.lease_namespace, election.enabled).await?;
    let signer = signing::key::load_or_create(
        &client,
        &election.lease_namespace,
        &config.leases.signing_key_secret,
    )
    .await?;

    let ops_listener = http::bind(config.http.metrics_address).await?;
    let phone_listener = http::bind(config.phone_home.listen_address).await?;
    let tokens = phone_home_tokens(&config, &signer)?;
    let identity = election.identity.clone().unwrap_or_else(default_identity);
    tracing::info!(
        %identity,
        metrics = %config.http.metrics_address,
        phone_home = %config.phone_home.listen_address,
        "labpods operator starting"
    );

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    watch_signals(shutdown_tx);

    let metrics = Arc::new(Metrics::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let health = Arc::new(Health::default());
    let ops = tokio::spawn(http::serve(
        ops_listener,
        http::ops_router(metrics.clone(), health.clone()),
        controllers::shutting_down(shutdown_rx.clone()),
    ));
    let phone = tokio::spawn(http::serve(
        phone_listener,
        http::phone_home_router(Arc::new(StatusSink::new(
            client.clone(),
            tokens.clone(),
            clock.clone(),
        )))
        .merge(http::seeds::router(Arc::new(SeedServer::new(
            client.clone(),
            tokens.clone(),
            config.phone_home.external_base_url.clone(),
            signer.clone(),
        )))),
        controllers::shutting_down(shutdown_rx.clone()),
    ));

    // The elector stops only after the controllers drained, so nobody takes over while this
    // replica still acts.
    let (drained_tx, drained_rx) = watch::channel(false);
    let (elector, leadership) = if election.enabled {
        let (elector, leadership) =
            LeaderElector::new(client.clone(), election.clone(), identity.clone());
        let handle = tokio::spawn(elector.run(controllers::shutting_down(drained_rx)));
        (Some(handle), leadership)
    } else {
        (None, Leadership::always())
    };

    let policy = ClientPolicy {
        request_timeout: config.bmc.request_timeout,
        max_concurrent_per_bmc: config.bmc.per_bmc_concurrency,
        // The replica in every BMC's log: which replica acted, across failovers.
        user_agent: format!("labpods/{} (replica {identity})", env!("CARGO_PKG_VERSION")),
        ..ClientPolicy::default()
    };
    let connector = Arc::new(RedfishConnector::new(policy.clone()));
    let images = crate::images::Verifier::new(
        &config.images,
        config.polling.error_backoff_base,
        metrics.clone(),
    )
    .map_err(RunError::Images)?;
    let shared = Shared {
        client,
        images,
        config: Arc::new(config),
        metrics,
        health,
        clock,
        bmc: connector.clone(),
        phone_home: tokens,
        signer,
        identity,
        min_power_interval: policy.min_power_action_interval,
    };
    controllers::run(shared, leadership, shutdown_rx).await;

    let failed = connector.logout_all().await;
    tracing::info!(failed, "logged out of BMC sessions");
    let _ = drained_tx.send(true);
    if let Some(handle) = elector {
        let _ = handle.await;
    }
    for server in [ops, phone] {
        match server.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server"),
            Err(e) => tracing::warn!(error = %e, "HTTP server task"),
            Ok(Ok(())) => {}
        }
    }
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_are_validated() {
        let args = RunArgs {
            metrics_address: Some("127.0.0.1:18080".parse().unwrap()),
            leader_elect: Some(false),
            ..RunArgs::default()
        };
        let config = load_config(&args).unwrap();
        assert_eq!(config.http.metrics_address.port(), 18080);
        assert!(!config.leader_election.enabled);

        let bad = RunArgs {
            phone_home_url: Some(Url::parse("ftp://x").unwrap()),
            ..RunArgs::default()
        };
        let err = load_config(&bad).unwrap_err();
        assert!(
            err.to_string().contains("phoneHome.externalBaseUrl"),
            "{err}"
        );
    }

    #[test]
    fn missing_config_file_is_named() {
        let args = RunArgs {
            config: Some("/nonexistent/labpods.yaml".into()),
            ..RunArgs::default()
        };
        let err = load_config(&args).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/labpods.yaml"),
            "{err}"
        );
    }
}
