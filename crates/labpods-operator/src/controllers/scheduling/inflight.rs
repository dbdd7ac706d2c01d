//! Requests whose handling a pass handed to a task. A pass decides and returns; the writes
//! (bindings, statuses, children) run behind it, so a request decided now is bound while
//! the next pass plans, not after the slowest write of this one.
//!
//! Until its task ends a request is left alone (two writers of one status fence each other
//! out), and the Lease a binding is writing stays in the plan: first as the task's own copy,
//! then, once the binding landed, until the cache shows it sealed, so no pass gives its
//! hosts away in between.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use labpods_api::v1alpha1::Lease;
use tokio::time::Instant;

/// A request by namespace and name.
pub type Key = (String, String);

/// How long a landed binding stands in for the cache: far longer than a watch lags, short
/// enough that a Lease deleted at once does not hold its request for long.
const LANDED_FOR: Duration = Duration::from_secs(30);

/// What a pass may do with a request.
#[derive(Debug)]
pub enum Seen {
    /// Nothing of it in flight: classify and act.
    Free,
    /// Handled by a task (or its binding not yet in the cache): leave it, and plan around
    /// its Lease if it is binding one.
    Busy(Option<Arc<Lease>>),
}

#[derive(Debug)]
struct Entry {
    /// The Lease a binding is writing.
    lease: Option<Arc<Lease>>,
    /// When the binding landed; None while the task runs.
    landed: Option<Instant>,
    /// A pass left the request alone meanwhile: when the task ends, the next pass must
    /// look again (it saw a change it could not act on).
    skipped: bool,
}

#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashMap<Key, Entry>>);

impl InFlight {
    /// Hands `key` to a task (binding `lease`, if any).
    pub fn start(&self, key: Key, lease: Option<Arc<Lease>>) {
        self.lock().insert(
            key,
            Entry {
                lease,
                landed: None,
                skipped: false,
            },
        );
    }

    /// What a pass may do with `key`; `sealed` when the cache shows its Lease sealed.
    pub fn seen(&self, key: &Key, sealed: bool, now: Instant) -> Seen {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(key) else {
            return Seen::Free;
        };
        match entry.landed {
            Some(at) if sealed || now.saturating_duration_since(at) >= LANDED_FOR => {
                map.remove(key);
                Seen::Free
            }
            Some(_) => Seen::Busy(entry.lease.clone()),
            None => {
                entry.skipped = true;
                Seen::Busy(entry.lease.clone())
            }
        }
    }

    /// The task for `key` ended, its binding landed when `bound`. True when a pass left the
    /// request alone meanwhile: another pass is due.
    pub fn finish(&self, key: &Key, bound: bool, now: Instant) -> bool {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(key) else {
            return false;
        };
        let skipped = entry.skipped;
        if bound && entry.lease.is_some() {
            entry.landed = Some(now);
            entry.skipped = false;
        } else {
            map.remove(key);
        }
        skipped
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        // A panic while holding it leaves a map that is still consistent (single inserts
        // and removes).
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

    use super::*;
    use labpods_core::fixtures;

    fn key(name: &str) -> Key {
        ("team".into(), name.into())
    }

    fn lease() -> Option<Arc<Lease>> {
        let (start, end) = (Timestamp::UNIX_EPOCH, Timestamp::MAX);
        let lease = fixtures::lease("a", "uid-a", &["h1"], Time(start), Time(end));
        Some(Arc::new(lease))
    }

    fn busy_with_lease(seen: Seen) -> bool {
        matches!(seen, Seen::Busy(Some(_)))
    }

    #[test]
    fn a_request_in_flight_is_left_alone_and_looked_at_again_when_its_task_ends() {
        let flight = InFlight::default();
        let now = Instant::now();
        assert!(matches!(flight.seen(&key("a"), false, now), Seen::Free));
        flight.start(key("a"), None);
        assert!(matches!(
            flight.seen(&key("a"), false, now),
            Seen::Busy(None)
        ));
        assert!(
            flight.finish(&key("a"), false, now),
            "skipped by a pass: look again"
        );
        assert!(matches!(flight.seen(&key("a"), false, now), Seen::Free));

        flight.start(key("b"), None);
        assert!(!flight.finish(&key("b"), false, now), "no pass skipped it");
    }

    #[test]
    fn a_landed_binding_holds_its_hosts_until_the_cache_shows_the_lease_sealed() {
        let flight = InFlight::default();
        let now = Instant::now();
        flight.start(key("a"), lease());
        assert!(busy_with_lease(flight.seen(&key("a"), false, now)));
        flight.finish(&key("a"), true, now);
        assert!(busy_with_lease(flight.seen(&key("a"), false, now)));
        assert!(matches!(flight.seen(&key("a"), true, now), Seen::Free));
        assert!(matches!(flight.seen(&key("a"), false, now), Seen::Free));
    }

    #[test]
    fn a_landed_binding_the_cache_never_shows_is_let_go() {
        let flight = InFlight::default();
        let now = Instant::now();
        flight.start(key("a"), lease());
        flight.finish(&key("a"), true, now);
        assert!(busy_with_lease(flight.seen(
            &key("a"),
            false,
            now + LANDED_FOR / 2
        )));
        assert!(matches!(
            flight.seen(&key("a"), false, now + LANDED_FOR),
            Seen::Free
        ));
    }

    #[test]
    fn a_binding_that_did_not_land_frees_its_request_for_the_next_plan() {
        let flight = InFlight::default();
        let now = Instant::now();
        flight.start(key("a"), lease());
        flight.finish(&key("a"), false, now);
        assert!(matches!(flight.seen(&key("a"), false, now), Seen::Free));
    }
}
