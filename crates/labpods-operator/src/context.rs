//! What every controller needs, built once per controller set (STYLE.md 5): the client, one
//! event Recorder per controller, metrics, configuration, the clock, the BMC connector, the
//! leadership flag and per-object error backoff.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::{api::core::v1::ObjectReference, jiff::Timestamp};
use kube::{
    Client,
    runtime::events::{Recorder, Reporter},
};

use crate::{
    config::{Config, PollingConfig},
    error::{Error, Result},
    http::PhoneHomeTokens,
    leader::Leadership,
    metrics::Metrics,
    signing::LeaseSigner,
};

/// Source of "now", injected so that tests control time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Consecutive failures per object, for exponential backoff that survives between
/// reconciles (a BMC down for hours is retried every few minutes, not every few seconds).
#[derive(Debug, Default)]
pub struct Backoffs(Mutex<HashMap<String, u32>>);

impl Backoffs {
    /// Records a failure of `key` and returns the delay before the next attempt:
    /// base * 2^(failures-1), capped, plus up to 10% jitter.
    pub fn failed(&self, key: &str, base: Duration, max: Duration) -> Duration {
        let failures = self
            .0
            .lock()
            .map(|mut m| {
                let n = m.entry(key.to_string()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            })
            .unwrap_or(1);
        let delay = backoff_delay(failures, base, max);
        delay + delay.mul_f64(rand::random::<f64>() * 0.1)
    }

    /// When to retry `key` after `error` (None: only a change to the object can help). A
    /// transient error backs off per object, so one object failing for hours delays no other.
    pub fn retry_after(
        &self,
        key: &str,
        error: &Error,
        polling: &PollingConfig,
    ) -> Option<Duration> {
        match error {
            Error::InvalidObject(_) | Error::NotLeader => None,
            e if e.is_transient() => {
                Some(self.failed(key, polling.error_backoff_base, polling.error_backoff_max))
            }
            // Someone must fix a Secret, a URL or credentials (the status says which): look
            // again rarely rather than hammer a BMC or the apiserver with the same mistake.
            _ => Some(polling.error_backoff_max),
        }
    }

    /// Forgets the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(key);
        }
    }
}

/// base * 2^(failures-1), capped at `max` (pure, for tests).
pub fn backoff_delay(failures: u32, base: Duration, max: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    base.saturating_mul(1u32 << exp).min(max)
}

/// The event recorders, one per controller, created once.
#[derive(Clone)]
pub struct Recorders {
    pub labhost: Sharded,
    pub podrequest: Sharded,
    pub lease: Sharded,
}

/// Recorders of one controller, an object's Events always through the same one. kube's
/// Recorder keeps the Events of the last minutes (to count repeats into a series) in one map
/// behind one lock, and every publish scans the whole map to drop the old ones: at 10,000
/// hosts, with thousands of Events a minute, publishing took 7% of the operator's CPU and
/// serialized every reconcile that published. A shard holds a [`SHARDS`]th of them.
#[derive(Clone)]
pub struct Sharded(Vec<Recorder>);

/// Shards per controller.
const SHARDS: usize = 64;

impl std::fmt::Debug for Sharded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Sharded").field(&self.0.len()).finish()
    }
}

impl Sharded {
    fn new(client: &Client, reporter: &Reporter) -> Self {
        Self(
            (0..SHARDS)
                .map(|_| Recorder::new(client.clone(), reporter.clone()))
                .collect(),
        )
    }

    /// [`Recorder::publish`] on the shard of `regarding`.
    pub async fn publish(
        &self,
        event: &kube::runtime::events::Event,
        regarding: &ObjectReference,
    ) -> std::result::Result<(), kube::Error> {
        let mut hasher = DefaultHasher::new();
        (&regarding.namespace, &regarding.name, &regarding.uid).hash(&mut hasher);
        let shard = usize::try_from(hasher.finish() % SHARDS as u64).unwrap_or(0);
        self.0[shard].publish(event, regarding).await
    }
}

impl std::fmt::Debug for Recorders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorders")
    }
}

impl Recorders {
    pub fn new(client: &Client, instance: &str) -> Self {
        let recorder = |controller: &str| {
            Sharded::new(
                client,
                &Reporter {
                    controller: controller.into(),
                    instance: Some(instance.into()),
                },
            )
        };
        Self {
            labhost: recorder("labpods-labhost"),
            podrequest: recorder("labpods-podrequest"),
            lease: recorder("labpods-lease"),
        }
    }
}

/// Shared by the controllers of one leadership term.
pub struct Context {
    pub client: Client,
    pub recorders: Recorders,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    pub bmc: Arc<dyn labpods_redfish::BmcConnector>,
    /// Redfish calls in flight across all BMCs (`bmc.globalConcurrency`); the per-BMC limit
    /// is the client's.
    pub bmc_limit: tokio::sync::Semaphore,
    pub leadership: Leadership,
    /// No power action before this instant of the term (see `labhost::bmc::reset`).
    pub power_actions_from: tokio::time::Instant,
    pub backoffs: Backoffs,
    pub phone_home: PhoneHomeTokens,
    /// Signs the Leases this operator writes and tells them from everyone else's.
    pub signer: LeaseSigner,
    /// Verifies `spec.image.checksum` before a request is planned (`images`).
    pub images: crate::images::Verifier,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl Context {
    /// Call before every write (Kubernetes or BMC): a replica that lost the lease must not
    /// act on what it decided while it was leading.
    pub fn ensure_leader(&self) -> Result<()> {
        if self.leadership.is_leader() {
            Ok(())
        } else {
            Err(Error::NotLeader)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(5);
        let max = Duration::from_secs(300);
        let delays: Vec<_> = (1..=8)
            .map(|n| backoff_delay(n, base, max).as_secs())
            .collect();
        assert_eq!(delays, vec![5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff_delay(1000, base, max), max);
    }

    #[test]
    fn success_resets_the_backoff() {
        let b = Backoffs::default();
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        b.failed("h", base, max);
        let second = b.failed("h", base, max);
        assert!(second >= Duration::from_secs(2));
        b.succeeded("h");
        assert!(b.failed("h", base, max) < Duration::from_secs(2));
    }

    #[test]
    fn retries_back_off_per_object_and_only_when_retrying_can_help() {
        let b = Backoffs::default();
        let polling = PollingConfig {
            error_backoff_base: Duration::from_secs(1),
            error_backoff_max: Duration::from_secs(60),
            ..PollingConfig::default()
        };
        let transient = Error::Kube(kube::Error::Api(Box::new(
            kube::core::Status::failure("etcd timeout", "InternalError").with_code(500),
        )));
        let first = b.retry_after("a", &transient, &polling).unwrap();
        let second = b.retry_after("a", &transient, &polling).unwrap();
        assert!(second > first, "{second:?} after {first:?}");
        // Another object's failures do not lengthen this one's wait.
        assert!(b.retry_after("b", &transient, &polling).unwrap() < Duration::from_secs(2));
        let secret = Error::Secret {
            namespace: "ns".into(),
            name: "bmc".into(),
            message: "missing".into(),
        };
        assert_eq!(
            b.retry_after("c", &secret, &polling),
            Some(polling.error_backoff_max)
        );
        let invalid = Error::InvalidObject("bad".into());
        assert_eq!(b.retry_after("d", &invalid, &polling), None);
        assert_eq!(b.retry_after("d", &Error::NotLeader, &polling), None);
    }
}
