//! Leader election on a coordination.k8s.io/v1 Lease, the protocol of client-go's
//! `leaderelection` package (kube-runtime 5 ships none): the holder renews every retry period
//! with a resourceVersion precondition (`replace`), a follower takes over when the record has
//! not changed for a lease duration *as measured by its own clock* (so clock skew between
//! replicas does not matter), and a leader that cannot renew within the renew deadline stops
//! acting before anyone else may take over. The lease is released on shutdown so the next
//! replica takes over at once.
//!
//! Fencing: every round (and so every apiserver call of the elector) is bounded in time, and
//! a term carries its own deadline: the start of the last successful renewal plus the renew
//! deadline. [`Leadership::is_leader`] is false from that instant on even if the elector task
//! is stuck on a black-holed connection, and [`Leadership::lost`] resolves at it, so in-flight
//! work is abandoned before a follower, which waits a whole lease duration from when it saw
//! the last renewal, can take over.
//!
//! Leadership is published on a `watch` channel: the runtime starts the controllers when it
//! is gained and drops them when it is lost, and every write path checks
//! [`Leadership::is_leader`] first.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{Api, Client, api::PostParams};
use tokio::{sync::watch, time::Instant};

use crate::config::LeaderElectionConfig;

/// Whether this replica leads, and until when at the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    No,
    /// Leading until this instant unless renewed.
    Until(Instant),
    /// Leader election disabled: one replica, leading forever.
    Always,
}

impl Held {
    fn leading_at(self, now: Instant) -> bool {
        match self {
            Held::No => false,
            Held::Until(deadline) => now < deadline,
            Held::Always => true,
        }
    }
}

/// Read side of the leadership flag, cloned into every controller context.
#[derive(Debug, Clone)]
pub struct Leadership(watch::Receiver<Held>);

impl Leadership {
    /// Leadership that is always held: leader election disabled, or tests.
    pub fn always() -> Self {
        // The sender is dropped: the value stays forever.
        let (_, rx) = watch::channel(Held::Always);
        Self(rx)
    }

    /// True while this replica leads and its term's deadline has not passed.
    pub fn is_leader(&self) -> bool {
        self.0.borrow().leading_at(Instant::now())
    }

    /// Waits until this replica leads; never returns if it cannot any more (the elector
    /// stopped), so callers select it against their shutdown signal.
    pub async fn gained(&mut self) {
        if self
            .0
            .wait_for(|held| held.leading_at(Instant::now()))
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves when leadership is lost: the elector says so, or the term's deadline passes
    /// without a renewal (whatever the elector's connection does).
    pub async fn lost(&mut self) {
        loop {
            let held = *self.0.borrow_and_update();
            let deadline = match held {
                Held::No => return,
                Held::Always => None,
                Held::Until(deadline) if Instant::now() >= deadline => return,
                Held::Until(deadline) => Some(deadline),
            };
            let expiry = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(expiry);
            tokio::select! {
                changed = self.0.changed() => {
                    if changed.is_err() {
                        // The elector is gone: the term ends at its deadline.
                        expiry.await;
                        return;
                    }
                }
                () = &mut expiry => return,
            }
        }
    }
}

/// What to do with the lease record seen this round (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No record: create it with us as holder.
    Create,
    /// We hold it: renew.
    Renew,
    /// Free (released or expired): take it over.
    Acquire,
    /// Someone else holds a live lease.
    Follow { holder: String },
}

/// Decides from the current holder, how long ago the record last changed (local clock), the
/// lease duration the holder advertised, and our identity.
pub fn decide(
    record: Option<(&Option<String>, Duration)>,
    since_change: Duration,
    identity: &str,
) -> Decision {
    let Some((holder, lease_duration)) = record else {
        return Decision::Create;
    };
    match holder.as_deref() {
        Some(h) if h == identity => Decision::Renew,
        None | Some("") => Decision::Acquire,
        Some(_) if since_change >= lease_duration => Decision::Acquire,
        Some(h) => Decision::Follow {
            holder: h.to_string(),
        },
    }
}

/// The default identity: $POD_NAME or the host name, plus a random suffix so that two
/// processes on one machine never share an identity.
pub fn default_identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "labpods".to_string());
    format!("{base}_{:08x}", rand::random::<u32>())
}

/// The election loop's state.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    identity: String,
    tx: watch::Sender<Held>,
    /// The last record seen (holder, renewTime) and when we saw it change.
    observed: Option<(Option<String>, Option<MicroTime>, Instant)>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl LeaderElector {
    pub fn new(
        client: Client,
        config: LeaderElectionConfig,
        identity: String,
    ) -> (Self, Leadership) {
        let (tx, rx) = watch::channel(Held::No);
        let api = Api::namespaced(client, &config.lease_namespace);
        let elector = Self {
            api,
            config,
            identity,
            tx,
            observed: None,
        };
        (elector, Leadership(rx))
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn set_held(&self, held: Held) {
        self.tx.send_if_modified(|current| {
            let (was, is) = (*current != Held::No, held != Held::No);
            if is && !was {
                tracing::info!(identity = %self.identity, "became leader");
            } else if was && !is {
                tracing::warn!(identity = %self.identity, "stopped leading");
            }
            let changed = *current != held;
            *current = held;
            changed
        });
    }

    fn leading(&self) -> Option<Instant> {
        match *self.tx.borrow() {
            Held::Until(deadline) => Some(deadline),
            Held::No | Held::Always => None,
        }
    }

    /// Runs until `shutdown` resolves, then releases the lease if held.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut this = self;
        loop {
            let started = Instant::now();
            // A leader's round may last until its term's deadline, a follower's a renew
            // deadline: a black-holed connection must not hold the elector beyond that.
            let bound = this
                .leading()
                .unwrap_or(started + this.config.renew_deadline);
            match tokio::time::timeout_at(bound, this.try_acquire_or_renew()).await {
                // The term is measured from before the write: the renewTime we sent is no
                // earlier than `started`, and followers count from when they saw it.
                Ok(Ok(true)) => this.set_held(Held::Until(started + this.config.renew_deadline)),
                Ok(Ok(false)) => this.set_held(Held::No),
                Ok(Err(error)) => tracing::warn!(%error, "leader election round failed"),
                Err(_elapsed) => tracing::warn!(
                    timeout = ?(bound - started),
                    "leader election round timed out (apiserver unreachable?)"
                ),
            }
            if this.leading().is_some_and(|d| Instant::now() >= d) {
                tracing::warn!("could not renew within the renew deadline");
                this.set_held(Held::No);
            }
            // Wake at the deadline too, so the flag drops on time.
            let next = match this.leading() {
                Some(deadline) => (started + this.config.retry_period).min(deadline),
                None => started + this.config.retry_period,
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep_until(next) => {}
            }
        }
        if this.leading().is_some() {
            this.set_held(Held::No);
            match tokio::time::timeout(this.config.renew_deadline, this.release()).await {
                Ok(Ok(())) => tracing::info!("released the leader lease"),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "could not release the leader lease; it expires by itself")
                }
                Err(_elapsed) => {
                    tracing::warn!("releasing the leader lease timed out; it expires by itself")
                }
            }
        }
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// One round. Ok(true) = we hold the lease now. Conflicts (someone else wrote first) are
    /// Ok(false): the next round re-reads.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let current = self.api.get_opt(&self.config.lease_name).await?;
        let spec = current
            .as_ref()
            .and_then(|l| l.spec.clone())
            .unwrap_or_default();
        let key = (spec.holder_identity.clone(), spec.renew_time.clone());
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|(h, r, _)| (h, r) != (&key.0, &key.1));
        if changed {
            self.observed = Some((key.0, key.1, Instant::now()));
        }
        let since_change = self
            .observed
            .as_ref()
            .map(|o| o.2.elapsed())
            .unwrap_or_default();
        let advertised = Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
        );
        let decision = decide(
            current
                .as_ref()
                .map(|_| (&spec.holder_identity, advertised)),
            since_change,
            &self.identity,
        );
        let result = match (decision, current) {
            (Decision::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.lease_name.clone()),
                        namespace: Some(self.config.lease_namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(self.lease_seconds()),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.api
                    .create(&PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
            (Decision::Follow { holder }, _) => {
                tracing::debug!(%holder, "following");
                return Ok(false);
            }
            (Decision::Renew, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.renew_time = Some(now);
                spec.lease_duration_seconds = Some(self.lease_seconds());
                self.replace(&lease).await
            }
            (Decision::Acquire, Some(mut lease)) => {
                let lease_seconds = self.lease_seconds();
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.holder_identity = Some(self.identity.clone());
                spec.lease_duration_seconds = Some(lease_seconds);
                spec.acquire_time = Some(now.clone());
                spec.renew_time = Some(now);
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                self.replace(&lease).await
            }
        };
        match result {
            Ok(()) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `replace` sends the object's resourceVersion: the apiserver refuses it (409) if anyone
    /// wrote the lease since we read it.
    async fn replace(&self, lease: &Lease) -> Result<(), kube::Error> {
        self.api
            .replace(&self.config.lease_name, &PostParams::default(), lease)
            .await
            .map(|_| ())
    }

    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.lease_name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        // client-go's release: no holder and a 1 s duration, so followers take over on their
        // next round.
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.replace(&lease).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(15);

    #[test]
    fn no_record_means_create() {
        assert_eq!(decide(None, Duration::ZERO, "a"), Decision::Create);
    }

    #[test]
    fn holder_renews_its_own_lease() {
        let holder = Some("a".to_string());
        assert_eq!(
            decide(Some((&holder, D)), Duration::from_secs(100), "a"),
            Decision::Renew
        );
    }

    #[test]
    fn live_lease_of_another_is_followed() {
        let holder = Some("b".to_string());
        assert_eq!(
            decide(Some((&holder, D)), Duration::from_secs(14), "a"),
            Decision::Follow { holder: "b".into() }
        );
    }

    #[test]
    fn expired_or_released_lease_is_acquired() {
        let holder = Some("b".to_string());
        assert_eq!(decide(Some((&holder, D)), D, "a"), Decision::Acquire);
        assert_eq!(
            decide(Some((&None, D)), Duration::ZERO, "a"),
            Decision::Acquire
        );
        let empty = Some(String::new());
        assert_eq!(
            decide(Some((&empty, D)), Duration::ZERO, "a"),
            Decision::Acquire
        );
    }

    #[test]
    fn always_leadership_holds() {
        assert!(Leadership::always().is_leader());
    }

    #[tokio::test]
    async fn a_term_ends_at_its_deadline_even_if_the_elector_says_nothing() {
        // The elector is alive but stuck (its sender held, never sending again).
        let (_tx, rx) = watch::channel(Held::Until(Instant::now() + Duration::from_millis(50)));
        let mut leadership = Leadership(rx);
        assert!(leadership.is_leader());
        tokio::time::timeout(Duration::from_secs(10), leadership.lost())
            .await
            .expect("lost() never resolved");
        assert!(!leadership.is_leader());
    }

    #[tokio::test]
    async fn a_renewal_extends_the_term_and_a_release_ends_it() {
        let (tx, rx) = watch::channel(Held::Until(Instant::now() + Duration::from_secs(60)));
        let mut leadership = Leadership(rx);
        tx.send_replace(Held::Until(Instant::now() + Duration::from_secs(120)));
        assert!(leadership.is_leader());
        tx.send_replace(Held::No);
        tokio::time::timeout(Duration::from_secs(10), leadership.lost())
            .await
            .expect("lost() never resolved");
        assert!(!leadership.is_leader());
    }

    #[test]
    fn identities_differ_between_processes_on_one_host() {
        assert_ne!(default_identity(), default_identity());
    }
}
