//! Operator configuration: a YAML file (every key optional, documented defaults), then
//! environment variables and command-line flags on top (see `cli::run`). Validation names the
//! offending field so a lab operator can fix the file without reading code.
//!
//! `examples/operator-config.yaml` lists every option with its default.

use std::{collections::BTreeMap, net::SocketAddr, path::Path, time::Duration};

use labpods_core::provisioning::{RetryPolicy, Timeouts};
use serde::Deserialize;
use url::Url;

/// A default of the state machines (`labpods-core`) as configuration: one source for both.
fn std_duration(d: chrono::TimeDelta) -> Duration {
    d.to_std().unwrap_or_default()
}

/// Errors while loading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The cause is part of the message and deliberately not a `source`, so that error
    // chains (`{:#}`) do not print it twice.
    #[error("cannot read config file {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("config file {path} is not valid: {error}")]
    Parse {
        path: String,
        error: serde_yaml::Error,
    },
    #[error("config field `{field}`: {message}")]
    Invalid { field: String, message: String },
}

impl ConfigError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Read { .. } => "config_read",
            Self::Parse { .. } => "config_parse",
            Self::Invalid { .. } => "config_invalid",
        }
    }
}

/// The whole configuration. Field docs state the default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    pub bmc: BmcConfig,
    pub polling: PollingConfig,
    pub provisioning: ProvisioningConfig,
    pub leases: LeaseConfig,
    pub policy: PolicyConfig,
    pub images: ImagesConfig,
    pub descriptor: DescriptorConfig,
    pub http: HttpConfig,
    pub phone_home: PhoneHomeConfig,
    pub leader_election: LeaderElectionConfig,
    pub logging: LoggingConfig,
}

/// Limits on Redfish traffic: BMCs are small computers with few sessions and slow CPUs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct BmcConfig {
    /// Redfish calls in flight across all BMCs (default 64).
    pub global_concurrency: usize,
    /// Redfish calls in flight against one BMC (default 2).
    pub per_bmc_concurrency: usize,
    /// Timeout of one Redfish call (default 30s).
    #[serde(with = "humantime_serde_compat")]
    pub request_timeout: Duration,
}

impl Default for BmcConfig {
    fn default() -> Self {
        Self {
            global_concurrency: 64,
            per_bmc_concurrency: 2,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// How often LabHosts are looked at.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct PollingConfig {
    /// Health/power/inventory check of an idle host (default 60s).
    #[serde(with = "humantime_serde_compat")]
    pub idle_interval: Duration,
    /// Fraction of `idleInterval` added at random so 10,000 hosts do not poll in lockstep
    /// (default 0.2 = up to +20%).
    pub idle_jitter: f64,
    /// Re-check while a provisioning step waits on the hardware (default 5s).
    #[serde(with = "humantime_serde_compat")]
    pub busy_interval: Duration,
    /// First retry delay after a failed reconcile; doubles per consecutive failure (default 5s).
    #[serde(with = "humantime_serde_compat")]
    pub error_backoff_base: Duration,
    /// Upper bound of the error backoff (default 5m).
    #[serde(with = "humantime_serde_compat")]
    pub error_backoff_max: Duration,
}

impl Default for PollingConfig {
    fn default() -> Self {
        Self {
            idle_interval: Duration::from_secs(60),
            idle_jitter: 0.2,
            busy_interval: std_duration(Timeouts::default().poll),
            error_backoff_base: std_duration(RetryPolicy::default().backoff_base),
            error_backoff_max: std_duration(RetryPolicy::default().backoff_max),
        }
    }
}

/// The provisioning and release state machines.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ProvisioningConfig {
    /// Bound on a boot, from power-on to a running OS, whatever the completion signal; a
    /// boot that takes longer counts as a failed attempt (default 30m).
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Wait for a graceful shutdown before forcing power off (default 2m).
    #[serde(with = "humantime_serde_compat")]
    pub graceful_shutdown_timeout: Duration,
    /// After forcing the power off, give up the attempt this much later (default 2m).
    #[serde(with = "humantime_serde_compat")]
    pub forced_power_off_timeout: Duration,
    /// Bound on a wipe image's run, from power-on to its power-off (default 2h).
    #[serde(with = "humantime_serde_compat")]
    pub wipe_timeout: Duration,
    /// Failed attempts in a row (a step that timed out or a refused BMC call; each retried
    /// with backoff) before the host goes to Error (default 5).
    pub max_attempts: u32,
    /// Consecutive failed BMC checks before an idle host goes to Error (default 5).
    pub max_consecutive_failures: u32,
    /// Boot completion fallback when the BMC reports no BootProgress and no phone-home
    /// arrives: the boot counts as complete after this long (default 10m). Per profile below.
    #[serde(with = "humantime_serde_compat")]
    pub boot_fallback: Duration,
    /// Per-profile override of `bootFallback`, e.g. `x86-large: 15m` (default none).
    #[serde(with = "humantime_serde_compat::map")]
    pub boot_fallback_by_profile: BTreeMap<String, Duration>,
    /// Wipe image booted at release, per profile (default none: release only powers off).
    pub wipe_images: BTreeMap<String, Url>,
}

impl Default for ProvisioningConfig {
    fn default() -> Self {
        let timeouts = Timeouts::default();
        Self {
            timeout: std_duration(timeouts.boot),
            graceful_shutdown_timeout: std_duration(timeouts.graceful_off),
            forced_power_off_timeout: std_duration(timeouts.forced_off),
            wipe_timeout: std_duration(timeouts.wipe),
            max_attempts: RetryPolicy::default().max_failures,
            max_consecutive_failures: 5,
            boot_fallback: Duration::from_secs(600),
            boot_fallback_by_profile: BTreeMap::new(),
            wipe_images: BTreeMap::new(),
        }
    }
}

impl ProvisioningConfig {
    /// The boot completion fallback that applies to a profile.
    pub fn boot_fallback_for(&self, profile: &str) -> Duration {
        self.boot_fallback_by_profile
            .get(profile)
            .copied()
            .unwrap_or(self.boot_fallback)
    }
}

/// Lease lifecycle.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaseConfig {
    /// How long a Released Lease is kept before it is deleted (default 24h).
    #[serde(with = "humantime_serde_compat")]
    pub retention: Duration,
    /// Expiry notices (an Event and a condition) this long before a lease ends
    /// (default [24h, 1h]).
    #[serde(with = "humantime_serde_compat::list")]
    pub expiry_notices: Vec<Duration>,
    /// Time reserved after a lease ends for power-off and wipe before the host can start the
    /// next booking (default 10m).
    #[serde(with = "humantime_serde_compat")]
    pub release_allowance: Duration,
    /// Secret in the operator's namespace (`leaderElection.leaseNamespace`) holding the key
    /// the operator signs its Leases with; created with a random key on first start, shared
    /// by every replica. Losing it releases every booking (default labpods-lease-signing).
    pub signing_key_secret: String,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(24 * 3600),
            expiry_notices: vec![Duration::from_secs(24 * 3600), Duration::from_secs(3600)],
            release_allowance: Duration::from_secs(600),
            signing_key_secret: "labpods-lease-signing".into(),
        }
    }
}

/// Booking policy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyConfig {
    /// Longest booking, extensions included (default 720h = 30 days).
    #[serde(with = "humantime_serde_compat")]
    pub max_duration: Duration,
    /// Total extension a booking may receive (default 168h = 7 days).
    #[serde(with = "humantime_serde_compat")]
    pub extension_budget: Duration,
    /// Hosts a namespace may hold at once; absent = unlimited (default unlimited).
    pub namespace_host_quota: Option<u32>,
    /// Per-namespace override of `namespaceHostQuota`, e.g. `team-a: 10` (default none).
    pub namespace_host_quotas: BTreeMap<String, u32>,
    /// Open (unfinished) PodRequests one namespace may have; past it the newest wait
    /// unscheduled with a condition naming this limit (default 50).
    pub max_open_requests_per_namespace: u32,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            max_duration: Duration::from_secs(720 * 3600),
            extension_budget: Duration::from_secs(168 * 3600),
            namespace_host_quota: None,
            namespace_host_quotas: BTreeMap::new(),
            max_open_requests_per_namespace: 50,
        }
    }
}

/// The lab's image policy and the operator's verification of `spec.image.checksum`
/// (see `images`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ImagesConfig {
    /// Refuse PodRequests without `spec.image.checksum` (default false).
    pub require_checksum: bool,
    /// Servers image URLs may name, each a host name or `*.domain`; empty = any (default
    /// empty). Redirects are held to it too.
    pub allowed_hosts: Vec<String>,
    /// Bound on one image download, start to end (default 30m).
    #[serde(with = "humantime_serde_compat")]
    pub download_timeout: Duration,
    /// Largest image downloaded, in bytes (default 68719476736 = 64 GiB).
    pub max_size: u64,
    /// How long a download's result serves other bookings of the image (default 1h).
    #[serde(with = "humantime_serde_compat")]
    pub cache_ttl: Duration,
    /// Downloads tried while the image server cannot be reached (connection failures, HTTP
    /// 5xx/408/429), with backoff from `polling.errorBackoffBase`, before the booking fails
    /// (default 3).
    pub attempts: u32,
    /// Image downloads at once (default 4).
    pub concurrent_downloads: usize,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        Self {
            require_checksum: false,
            allowed_hosts: Vec::new(),
            download_timeout: Duration::from_secs(30 * 60),
            max_size: 64 << 30,
            cache_ttl: Duration::from_secs(3600),
            attempts: 3,
            concurrent_downloads: 4,
        }
    }
}

/// The lab as each booking's pod descriptor names it (the PDF's `details`, see
/// docs/access.md "Pod descriptor"). Every field defaults to empty: the PDF schema requires
/// them, and an empty one says the lab did not say, rather than a made-up value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct DescriptorConfig {
    /// The lab's name, e.g. `Example Lab` (default empty).
    pub lab: String,
    /// Where the lab is, e.g. `Portland, Oregon, USA` (default empty).
    pub location: String,
    /// A page about the lab (default empty).
    pub link: String,
    /// E-mail address(es) of the lab's admins, e.g. `lab-admins@example.org` (default empty;
    /// the PDF schema requires an address: installers that validate the PDF refuse it empty).
    pub contact: String,
}

/// The operator's own HTTP server (/metrics, /healthz, /readyz).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address of /metrics, /healthz, /readyz (default 0.0.0.0:8080).
    pub metrics_address: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            metrics_address: SocketAddr::from(([0, 0, 0, 0], 8080)),
        }
    }
}

/// The boot completion callback that reimaged hosts call (cloud-init `phone_home`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct PhoneHomeConfig {
    /// Listen address of `POST /phone-home/{host}?token=...`; a separate listener because the
    /// lab network reaches it while /metrics stays internal (default 0.0.0.0:8081).
    pub listen_address: SocketAddr,
    /// The URL lab hosts use to reach the listener, e.g. `http://10.0.0.5:8081`; absent = no
    /// phone-home URL is published and completion relies on BootProgress or the fallback
    /// (default absent).
    pub external_base_url: Option<Url>,
    /// File holding the secret the per-run tokens are derived from (HMAC-SHA256); all
    /// replicas must share it, so mount the same Secret. Absent = a key derived from the
    /// Lease signing key Secret, which the replicas share already (default absent).
    pub secret_file: Option<String>,
}

impl Default for PhoneHomeConfig {
    fn default() -> Self {
        Self {
            listen_address: SocketAddr::from(([0, 0, 0, 0], 8081)),
            external_base_url: None,
            secret_file: None,
        }
    }
}

/// Leader election on a coordination.k8s.io/v1 Lease.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderElectionConfig {
    /// Turn off only when exactly one replica runs (default true).
    pub enabled: bool,
    /// Name of the coordination Lease (default labpods-operator).
    pub lease_name: String,
    /// Namespace of the coordination Lease (default labpods-system).
    pub lease_namespace: String,
    /// This replica's identity; absent = $POD_NAME, else the host name, plus a random suffix
    /// (default absent).
    pub identity: Option<String>,
    /// How long a lease is valid without renewal (default 15s).
    #[serde(with = "humantime_serde_compat")]
    pub lease_duration: Duration,
    /// A leader that could not renew for this long stops acting (default 10s).
    #[serde(with = "humantime_serde_compat")]
    pub renew_deadline: Duration,
    /// Interval of acquire/renew attempts (default 5s).
    #[serde(with = "humantime_serde_compat")]
    pub retry_period: Duration,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            lease_name: "labpods-operator".into(),
            lease_namespace: "labpods-system".into(),
            identity: None,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(5),
        }
    }
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct LoggingConfig {
    /// `tracing` env-filter directives; RUST_LOG wins when set (default "info").
    pub filter: String,
    /// `text` or `json` (default text).
    pub format: LogFormat,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// A Kubernetes object name (DNS subdomain, RFC 1123).
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// Parses YAML text; an empty document is the default configuration.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(text).map_err(|error| ConfigError::Parse {
            path: origin.to_string(),
            error,
        })
    }

    /// Reads a YAML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: origin.clone(),
            error,
        })?;
        Self::from_yaml(&text, &origin)
    }

    /// Checks what the types cannot: ranges and relations between fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("bmc.requestTimeout", self.bmc.request_timeout),
            ("polling.idleInterval", self.polling.idle_interval),
            ("polling.busyInterval", self.polling.busy_interval),
            ("polling.errorBackoffBase", self.polling.error_backoff_base),
            ("provisioning.timeout", self.provisioning.timeout),
            (
                "provisioning.gracefulShutdownTimeout",
                self.provisioning.graceful_shutdown_timeout,
            ),
            (
                "provisioning.forcedPowerOffTimeout",
                self.provisioning.forced_power_off_timeout,
            ),
            ("provisioning.wipeTimeout", self.provisioning.wipe_timeout),
            ("provisioning.bootFallback", self.provisioning.boot_fallback),
            ("policy.maxDuration", self.policy.max_duration),
            ("images.downloadTimeout", self.images.download_timeout),
            ("images.cacheTtl", self.images.cache_ttl),
            (
                "leaderElection.leaseDuration",
                self.leader_election.lease_duration,
            ),
            (
                "leaderElection.renewDeadline",
                self.leader_election.renew_deadline,
            ),
            (
                "leaderElection.retryPeriod",
                self.leader_election.retry_period,
            ),
        ];
        for (field, value) in positive {
            if value.is_zero() {
                return Err(ConfigError::invalid(field, "must be longer than 0s"));
            }
        }
        if !is_dns_subdomain(&self.leases.signing_key_secret) {
            return Err(ConfigError::invalid(
                "leases.signingKeySecret",
                format!(
                    "{:?} is not a Secret name (lowercase letters, digits, '-' and '.')",
                    self.leases.signing_key_secret
                ),
            ));
        }
        if self.bmc.global_concurrency == 0 {
            return Err(ConfigError::invalid(
                "bmc.globalConcurrency",
                "must be at least 1",
            ));
        }
        if self.bmc.per_bmc_concurrency == 0 {
            return Err(ConfigError::invalid(
                "bmc.perBmcConcurrency",
                "must be at least 1",
            ));
        }
        if self.bmc.per_bmc_concurrency > self.bmc.global_concurrency {
            return Err(ConfigError::invalid(
                "bmc.perBmcConcurrency",
                format!(
                    "{} exceeds bmc.globalConcurrency {}; lower it or raise the global limit",
                    self.bmc.per_bmc_concurrency, self.bmc.global_concurrency
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.polling.idle_jitter) {
            return Err(ConfigError::invalid(
                "polling.idleJitter",
                format!(
                    "{} is not a fraction between 0 and 1",
                    self.polling.idle_jitter
                ),
            ));
        }
        if self.polling.busy_interval > self.polling.idle_interval {
            return Err(ConfigError::invalid(
                "polling.busyInterval",
                "must not be longer than polling.idleInterval",
            ));
        }
        if self.polling.error_backoff_max < self.polling.error_backoff_base {
            return Err(ConfigError::invalid(
                "polling.errorBackoffMax",
                "must not be shorter than polling.errorBackoffBase",
            ));
        }
        if self.policy.max_open_requests_per_namespace == 0 {
            return Err(ConfigError::invalid(
                "policy.maxOpenRequestsPerNamespace",
                "must be at least 1",
            ));
        }
        if self.provisioning.max_attempts == 0 {
            return Err(ConfigError::invalid(
                "provisioning.maxAttempts",
                "must be at least 1",
            ));
        }
        if self.provisioning.max_consecutive_failures == 0 {
            return Err(ConfigError::invalid(
                "provisioning.maxConsecutiveFailures",
                "must be at least 1",
            ));
        }
        for (profile, fallback) in &self.provisioning.boot_fallback_by_profile {
            if fallback.is_zero() {
                return Err(ConfigError::invalid(
                    format!("provisioning.bootFallbackByProfile.{profile}"),
                    "must be longer than 0s",
                ));
            }
        }
        for (profile, image) in &self.provisioning.wipe_images {
            if !matches!(image.scheme(), "http" | "https") {
                return Err(ConfigError::invalid(
                    format!("provisioning.wipeImages.{profile}"),
                    format!("{image} must be an http or https URL the BMC can download"),
                ));
            }
            // A wipe counts only when the image reports through phone-home.
            if self.phone_home.external_base_url.is_none() {
                return Err(ConfigError::invalid(
                    format!("provisioning.wipeImages.{profile}"),
                    "a wipe counts as done only when the wipe image reports completion \
                     through phone-home: set phoneHome.externalBaseUrl to the URL the hosts \
                     reach the operator at",
                ));
            }
        }
        self.validate_images()?;
        self.validate_descriptor()?;
        for (i, notice) in self.leases.expiry_notices.iter().enumerate() {
            if notice.is_zero() {
                return Err(ConfigError::invalid(
                    format!("leases.expiryNotices[{i}]"),
                    "must be longer than 0s",
                ));
            }
        }
        if let Some(url) = &self.phone_home.external_base_url
            && !matches!(url.scheme(), "http" | "https")
        {
            return Err(ConfigError::invalid(
                "phoneHome.externalBaseUrl",
                format!("{url} must be an http or https URL"),
            ));
        }
        let le = &self.leader_election;
        if le.lease_name.is_empty() || le.lease_namespace.is_empty() {
            return Err(ConfigError::invalid(
                "leaderElection.leaseName",
                "lease name and namespace must not be empty",
            ));
        }
        // client-go's rule: the leader must give up before anyone else may take over, and
        // retry often enough to renew within the deadline.
        if le.renew_deadline >= le.lease_duration {
            return Err(ConfigError::invalid(
                "leaderElection.renewDeadline",
                "must be shorter than leaderElection.leaseDuration",
            ));
        }
        if le.retry_period >= le.renew_deadline {
            return Err(ConfigError::invalid(
                "leaderElection.retryPeriod",
                "must be shorter than leaderElection.renewDeadline",
            ));
        }
        Ok(())
    }
}

impl Config {
    fn validate_descriptor(&self) -> Result<(), ConfigError> {
        let contact = &self.descriptor.contact;
        if !contact.is_empty() && !crate::controllers::scheduling::descriptor::is_contact(contact) {
            return Err(ConfigError::invalid(
                "descriptor.contact",
                format!(
                    "{contact:?} is not e-mail addresses (e.g. lab-admins@example.org, separated by ',' ';' or ' ')"
                ),
            ));
        }
        Ok(())
    }

    fn validate_images(&self) -> Result<(), ConfigError> {
        let images = &self.images;
        for (i, host) in images.allowed_hosts.iter().enumerate() {
            if !crate::images::policy::is_host_pattern(host) {
                return Err(ConfigError::invalid(
                    format!("images.allowedHosts[{i}]"),
                    format!(
                        "{host:?} is not a host name or *.domain (e.g. images.lab.example, *.example.org)"
                    ),
                ));
            }
        }
        let at_least_one = [
            ("images.maxSize", images.max_size == 0),
            ("images.attempts", images.attempts == 0),
            (
                "images.concurrentDownloads",
                images.concurrent_downloads == 0,
            ),
        ];
        for (field, zero) in at_least_one {
            if zero {
                return Err(ConfigError::invalid(field, "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// Durations written as humantime strings (`90s`, `10m`, `24h`).
mod humantime_serde_compat {
    use std::{collections::BTreeMap, time::Duration};

    use serde::{Deserialize, Deserializer, de::Error};

    fn parse<E: Error>(text: &str) -> Result<Duration, E> {
        humantime::parse_duration(text).map_err(|e| {
            E::custom(format!(
                "`{text}` is not a duration like 90s, 10m or 24h: {e}"
            ))
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        parse(&String::deserialize(d)?)
    }

    pub mod list {
        use super::*;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
            Vec::<String>::deserialize(d)?
                .iter()
                .map(|s| parse(s))
                .collect()
        }
    }

    pub mod map {
        use super::*;

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<BTreeMap<String, Duration>, D::Error> {
            BTreeMap::<String, String>::deserialize(d)?
                .into_iter()
                .map(|(k, v)| parse(&v).map(|d| (k, d)))
                .collect()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn invalid_field(yaml: &str) -> String {
        let config = Config::from_yaml(yaml, "test").unwrap();
        match config.validate() {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let config = Config::from_yaml("", "test").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.polling.idle_interval, Duration::from_secs(60));
        assert_eq!(config.leases.retention, Duration::from_secs(86400));
        assert_eq!(
            config.leases.expiry_notices,
            vec![Duration::from_secs(86400), Duration::from_secs(3600)]
        );
        assert_eq!(
            config.leader_election.lease_duration,
            Duration::from_secs(15)
        );
        config.validate().unwrap();
    }

    #[test]
    fn example_file_parses_validates_and_equals_defaults() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/operator-config.yaml");
        let config = Config::from_file(&path).unwrap();
        config.validate().unwrap();
        // The example documents the defaults: keep them in sync.
        assert_eq!(config, Config::default());
    }

    #[test]
    fn durations_and_maps_parse() {
        let config = Config::from_yaml(
            "provisioning:\n  bootFallbackByProfile:\n    x86-large: 15m\n  wipeImages:\n    x86-large: http://images.lab/wipe.iso\nphoneHome:\n  externalBaseUrl: http://10.0.0.5:8081/\npolicy:\n  namespaceHostQuota: 4\n  namespaceHostQuotas:\n    team-a: 10\n",
            "test",
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(
            config.provisioning.boot_fallback_for("x86-large"),
            Duration::from_secs(900)
        );
        assert_eq!(
            config.provisioning.boot_fallback_for("x86-small"),
            Duration::from_secs(600)
        );
        // The quotas as the scheduler applies them.
        let policy = crate::controllers::snapshot::policy(&config);
        assert_eq!(policy.quota("team-a"), Some(10));
        assert_eq!(policy.quota("team-b"), Some(4));
    }

    #[test]
    fn signing_key_secret_must_be_a_secret_name() {
        let config =
            Config::from_yaml("leases:\n  signingKeySecret: Not_A_Name\n", "cfg.yaml").unwrap();
        let text = config.validate().unwrap_err().to_string();
        assert!(text.contains("leases.signingKeySecret"), "{text}");
        let config =
            Config::from_yaml("leases:\n  signingKeySecret: lab-key.v2\n", "cfg.yaml").unwrap();
        config.validate().unwrap();
    }

    #[test]
    fn unknown_field_is_rejected_with_its_name() {
        let err = Config::from_yaml("polling:\n  idleIntervall: 30s\n", "cfg.yaml").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("cfg.yaml") && text.contains("idleIntervall"),
            "{text}"
        );
    }

    #[test]
    fn bad_duration_names_the_value() {
        let err = Config::from_yaml("leases:\n  retention: soon\n", "cfg.yaml").unwrap_err();
        assert!(
            err.to_string().contains("`soon` is not a duration"),
            "{err}"
        );
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            ("bmc:\n  globalConcurrency: 0\n", "bmc.globalConcurrency"),
            ("bmc:\n  perBmcConcurrency: 100\n", "bmc.perBmcConcurrency"),
            ("polling:\n  idleJitter: 1.5\n", "polling.idleJitter"),
            ("polling:\n  busyInterval: 2m\n", "polling.busyInterval"),
            ("polling:\n  idleInterval: 0s\n", "polling.idleInterval"),
            (
                "provisioning:\n  maxAttempts: 0\n",
                "provisioning.maxAttempts",
            ),
            (
                "provisioning:\n  wipeImages:\n    x86-small: ftp://x/wipe.iso\n",
                "provisioning.wipeImages.x86-small",
            ),
            (
                "provisioning:\n  wipeImages:\n    x86-small: http://x/wipe.iso\n",
                "provisioning.wipeImages.x86-small",
            ),
            (
                "leases:\n  expiryNotices: [1h, 0s]\n",
                "leases.expiryNotices[1]",
            ),
            (
                "images:\n  allowedHosts: [images.lab, 'http://x']\n",
                "images.allowedHosts[1]",
            ),
            ("images:\n  attempts: 0\n", "images.attempts"),
            ("images:\n  cacheTtl: 0s\n", "images.cacheTtl"),
            (
                "phoneHome:\n  externalBaseUrl: ftp://x\n",
                "phoneHome.externalBaseUrl",
            ),
            (
                "leaderElection:\n  renewDeadline: 20s\n",
                "leaderElection.renewDeadline",
            ),
            (
                "leaderElection:\n  retryPeriod: 10s\n",
                "leaderElection.retryPeriod",
            ),
        ];
        for (yaml, field) in cases {
            assert_eq!(invalid_field(yaml), field, "for {yaml:?}");
        }
    }
}
