//! What a fleet looks like ([`SimConfig`]) and what is wrong with one BMC ([`Faults`]).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How to build a fleet. Host indices are 1-based everywhere in this crate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of simulated BMCs.
    pub hosts: usize,
    /// Host `i` listens on `port_base + i`; 0 lets the OS pick every port (what tests use).
    pub port_base: u16,
    /// Address every listener binds; loopback unless the demo needs otherwise.
    pub bind: IpAddr,
    pub username: String,
    pub password: String,
    /// Time from the end of power-on to BootProgress `OSRunning`.
    pub boot_time: Duration,
    /// Duration of PoweringOn / PoweringOff.
    pub power_delay: Duration,
    /// Added to every Redfish call, per host; change at run time with [`Faults::latency_ms`].
    pub latency: Duration,
    /// Serve HTTPS with a self-signed CA (see `SimHandle::ca_pem`).
    pub tls: bool,
    /// Which certificate the BMCs present when `tls` is on.
    pub tls_certificate: TlsCertificate,
    /// Open sessions allowed per BMC; one more gets 503, so leaks show.
    pub session_limit: usize,
    /// Idle sessions expire after this (SessionService.SessionTimeout, 30 s minimum).
    pub session_timeout: Duration,
    /// Actions answer 202 with a task monitor instead of 204.
    pub async_actions: bool,
    /// Admin HTTP endpoint port (`Some(0)`: OS-assigned); `None`: no admin endpoint.
    pub admin_port: Option<u16>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            hosts: 1,
            port_base: 0,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            username: "admin".to_owned(),
            password: "labpods".to_owned(),
            boot_time: Duration::from_secs(2),
            power_delay: Duration::from_millis(500),
            latency: Duration::ZERO,
            tls: false,
            tls_certificate: TlsCertificate::default(),
            session_limit: 16,
            session_timeout: Duration::from_secs(1800),
            async_actions: false,
            admin_port: None,
        }
    }
}

/// The certificate a TLS fleet serves; [`crate::SimHandle::ca_pem`] is what a client trusts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsCertificate {
    /// A server certificate for 127.0.0.1/localhost issued by a throwaway CA.
    #[default]
    CaSigned,
    /// One self-signed certificate that is its own issuer (CA:TRUE, named for no address of
    /// ours), as `openssl req -x509` makes and many BMCs ship; `ca_pem` is that certificate.
    SelfSigned,
}

/// Faults injected into one BMC; replaceable at run time. The default is a healthy BMC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Faults {
    /// Delay added to every Redfish call; starts at `SimConfig::latency`.
    pub latency_ms: u64,
    /// Probability (0..=1) that a call answers 500.
    pub error_rate: f64,
    /// Probability (0..=1) that a call is never answered (the client must time out).
    pub timeout_rate: f64,
    /// The BMC stops answering: every call hangs until this is cleared.
    pub unresponsive: bool,
    /// Reset actions are accepted (204) but the power state never changes.
    pub power_stuck: bool,
    /// Boots stop at OSBootStarted and never reach OSRunning.
    pub boot_hangs: bool,
    /// The booted OS runs no cloud-init: a seed on the USB stick is not read and nothing
    /// phones home (an image that cannot report, e.g. a wipe image that powers off silently).
    /// Cleared, a boot still running plays its seed then.
    pub no_cloud_init: bool,
    /// Every authenticated call answers 200 with a body that never ends (a broken BMC, or
    /// something that is not one); the client must cut it off.
    pub endless_body: bool,
}

impl Faults {
    pub(crate) fn healthy_with_latency(latency: Duration) -> Self {
        Self {
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            ..Self::default()
        }
    }
}
