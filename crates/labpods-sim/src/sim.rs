//! Starting a fleet (binding its listeners, serving the Redfish and admin routers over the
//! shared `state`) and the handles tests use to steer and observe it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use url::Url;

use crate::listener::{HostConn, PlainListener, TlsListener};
use crate::model::{Call, Event, HostState, Timing};
use crate::state::{Fleet, Host};
use crate::{Faults, SimConfig, SimError, admin, redfish, tls};

/// Starts fleets.
#[derive(Debug)]
pub struct Sim;

impl Sim {
    /// Binds every listener (and the admin endpoint, if configured) and starts serving.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        if config.hosts == 0 {
            return Err(SimError::NoHosts);
        }
        crate::limits::check_fds(config.hosts)?;
        if config.port_base != 0
            && usize::from(config.port_base) + config.hosts > usize::from(u16::MAX)
        {
            return Err(SimError::PortRange {
                port_base: config.port_base,
                hosts: config.hosts,
            });
        }
        let tls = if config.tls {
            Some(tls::generate(config.tls_certificate)?)
        } else {
            None
        };
        let timing = Timing {
            power_delay: config.power_delay,
            boot_time: config.boot_time,
            session_timeout: config.session_timeout,
            session_limit: config.session_limit,
        };
        let mut listeners = Vec::with_capacity(config.hosts);
        let mut hosts = Vec::with_capacity(config.hosts);
        for index in 1..=config.hosts {
            let port = if config.port_base == 0 {
                0
            } else {
                config.port_base + u16::try_from(index).unwrap_or(0)
            };
            let (tcp, addr) = bind(SocketAddr::new(config.bind, port)).await?;
            listeners.push(tcp);
            hosts.push(Host::new(
                index,
                addr,
                timing,
                Faults::healthy_with_latency(config.latency),
            ));
        }
        let admin = match config.admin_port {
            Some(port) => Some(bind(SocketAddr::new(config.bind, port)).await?),
            None => None,
        };
        let (stop, shutdown) = watch::channel(false);
        let fleet = Arc::new(Fleet::new(config, hosts, shutdown));

        let mut tasks = JoinSet::new();
        let app = redfish::router(fleet.clone()).into_make_service_with_connect_info::<HostConn>();
        for (i, tcp) in listeners.into_iter().enumerate() {
            let index = i + 1;
            let stopped = wait_stop(fleet.shutdown.clone());
            match &tls {
                Some(t) => {
                    let listener = TlsListener {
                        tcp,
                        index,
                        acceptor: t.server.clone().into(),
                    };
                    tasks.spawn(
                        axum::serve(listener, app.clone())
                            .with_graceful_shutdown(stopped)
                            .into_future(),
                    );
                }
                None => {
                    let listener = PlainListener { tcp, index };
                    tasks.spawn(
                        axum::serve(listener, app.clone())
                            .with_graceful_shutdown(stopped)
                            .into_future(),
                    );
                }
            }
        }
        tasks.spawn(crate::cloud_init::run(fleet.clone()));
        let admin_addr = admin.map(|(tcp, addr)| {
            let router = admin::router(fleet.clone());
            tasks.spawn(
                axum::serve(tcp, router)
                    .with_graceful_shutdown(wait_stop(fleet.shutdown.clone()))
                    .into_future(),
            );
            addr
        });
        Ok(SimHandle {
            fleet,
            ca_pem: tls.map(|t| t.ca_pem),
            admin_addr,
            stop,
            tasks,
        })
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), SimError> {
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })?;
    let bound = tcp
        .local_addr()
        .map_err(|source| SimError::Bind { addr, source })?;
    Ok((tcp, bound))
}

async fn wait_stop(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A running fleet. Host indices are 1-based: `1..=hosts()`.
#[derive(Debug)]
pub struct SimHandle {
    fleet: Arc<Fleet>,
    ca_pem: Option<String>,
    admin_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<std::io::Result<()>>,
}

impl SimHandle {
    pub fn hosts(&self) -> usize {
        self.fleet.hosts.len()
    }

    /// The Redfish base URL of host `i` (1-based), e.g. `http://127.0.0.1:9101/`.
    ///
    /// # Panics
    /// If `i` is not in `1..=hosts()`, like slice indexing.
    pub fn endpoint(&self, i: usize) -> Url {
        self.fleet.endpoint(self.raw_host(i))
    }

    /// The ComputerSystem id of host `i`: always "1" (`/redfish/v1/Systems/1`).
    pub fn system_id(&self, _i: usize) -> &'static str {
        crate::redfish::SYSTEM_ID
    }

    pub fn username(&self) -> &str {
        &self.fleet.config.username
    }

    /// The password the fleet started with.
    pub fn password(&self) -> &str {
        &self.fleet.config.password
    }

    /// An admin changes the account's password on every BMC: logins with the old one are
    /// refused from now on, while sessions opened before stay valid (as on many BMCs) until
    /// logged out or expired.
    pub fn rotate_password(&self, password: &str) {
        self.fleet.rotate_password(password);
    }

    /// The CA certificate that signed every BMC's certificate, when TLS is on.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// The admin HTTP endpoint, when configured.
    pub fn admin_url(&self) -> Option<Url> {
        self.admin_addr
            .and_then(|a| Url::parse(&format!("http://{a}/")).ok())
    }

    fn raw_host(&self, i: usize) -> &Host {
        match self.fleet.host(i) {
            Some(h) => h,
            None => panic!("host index {i} is outside 1..={}", self.hosts()),
        }
    }

    /// Steer and observe host `i` (1-based).
    ///
    /// # Panics
    /// If `i` is not in `1..=hosts()`.
    pub fn host(&self, i: usize) -> HostHandle {
        let _ = self.raw_host(i);
        HostHandle {
            fleet: self.fleet.clone(),
            index: i,
        }
    }

    /// Applies `faults` to every host.
    pub fn set_faults_all(&self, faults: &Faults) {
        for host in &self.fleet.hosts {
            host.faults.send_replace(faults.clone());
        }
    }

    /// Stops every listener; hanging calls are released. Waits for the servers to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// One BMC of a running fleet.
#[derive(Clone, Debug)]
pub struct HostHandle {
    fleet: Arc<Fleet>,
    index: usize,
}

impl HostHandle {
    fn host(&self) -> &Host {
        // The index was checked when the handle was made and hosts never go away.
        &self.fleet.hosts[self.index - 1]
    }

    pub fn index(&self) -> usize {
        self.index
    }

    pub fn endpoint(&self) -> Url {
        self.fleet.endpoint(self.host())
    }

    pub fn faults(&self) -> Faults {
        self.host().faults.borrow().clone()
    }

    /// Replaces all faults of this host.
    pub fn set_faults(&self, faults: Faults) {
        self.host().faults.send_replace(faults);
    }

    fn update(&self, f: impl FnOnce(&mut Faults)) {
        self.host().faults.send_modify(f);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.update(|f| f.latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX));
    }

    pub fn set_error_rate(&self, rate: f64) {
        self.update(|f| f.error_rate = rate);
    }

    pub fn set_timeout_rate(&self, rate: f64) {
        self.update(|f| f.timeout_rate = rate);
    }

    pub fn set_unresponsive(&self, unresponsive: bool) {
        self.update(|f| f.unresponsive = unresponsive);
    }

    pub fn set_power_stuck(&self, stuck: bool) {
        self.update(|f| f.power_stuck = stuck);
    }

    /// While set the booted OS reads no seed and reports nothing (see `Faults`).
    pub fn set_no_cloud_init(&self, off: bool) {
        self.update(|f| f.no_cloud_init = off);
    }

    pub fn set_endless_body(&self, endless: bool) {
        self.update(|f| f.endless_body = endless);
    }

    pub fn set_boot_hangs(&self, hangs: bool) {
        self.update(|f| f.boot_hangs = hangs);
    }

    pub fn state(&self) -> HostState {
        self.host().bmc().state(self.fleet.now())
    }

    /// Everything this BMC saw, oldest first.
    pub fn history(&self) -> Vec<Event> {
        self.host().bmc().history().to_vec()
    }

    /// Every Redfish request this BMC received, oldest first, with its caller.
    pub fn calls(&self) -> Vec<Call> {
        self.host().bmc().calls().to_vec()
    }

    pub fn clear_history(&self) {
        self.host().bmc().clear_history();
    }

    /// The boots this BMC saw, as (source, image).
    pub fn boots(&self) -> Vec<(String, Option<String>)> {
        self.history()
            .into_iter()
            .filter_map(|e| match e {
                Event::Boot { source, image, .. } => Some((source, image)),
                _ => None,
            })
            .collect()
    }
}
