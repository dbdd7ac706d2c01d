//! Which requests changed since the last pass. A pass decides for every request without a
//! Lease (one request's hosts are another's wait), but follows a bound booking (its
//! children, its status) only when something it shows changed: its PodRequest, its Lease or
//! a host claimed for it. At 2,000 bookings, following every one on every pass cost more CPU
//! than planning. A full look now and then catches what no event reports (a calendar that
//! now admits a refused extension).

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
    time::Duration,
};

use kube::{Resource, ResourceExt, core::DeserializeGuard, runtime::watcher};
use labpods_api::v1alpha1::LabHost;
use tokio::time::Instant;

use super::inflight::Key;

/// What changed since the last pass.
#[derive(Debug)]
pub enum Changes {
    /// Everything may have (a relist, a lost event, the periodic full look).
    All,
    Requests(HashSet<Key>),
}

impl Changes {
    pub fn includes(&self, key: &Key) -> bool {
        match self {
            Changes::All => true,
            Changes::Requests(keys) => keys.contains(key),
        }
    }
}

#[derive(Debug)]
struct State {
    all: bool,
    keys: HashSet<Key>,
    last_full: Instant,
}

#[derive(Debug)]
pub struct Touched {
    state: Mutex<State>,
    /// A full look at least this often.
    every: Duration,
}

impl Touched {
    pub fn new(every: Duration) -> Self {
        Self {
            state: Mutex::new(State {
                all: true,
                keys: HashSet::new(),
                last_full: Instant::now(),
            }),
            every,
        }
    }

    pub fn request(&self, key: Key) {
        self.lock().keys.insert(key);
    }

    pub fn everything(&self) {
        self.lock().all = true;
    }

    /// What changed since the last call.
    pub fn take(&self, now: Instant) -> Changes {
        let mut state = self.lock();
        let keys = std::mem::take(&mut state.keys);
        if state.all || now.saturating_duration_since(state.last_full) >= self.every {
            state.all = false;
            state.last_full = now;
            Changes::All
        } else {
            Changes::Requests(keys)
        }
    }

    /// Notes a watch event of a PodRequest or a Lease (a Lease is named for its request).
    pub fn object<K>(&self, event: &Result<watcher::Event<DeserializeGuard<K>>, watcher::Error>)
    where
        DeserializeGuard<K>: Resource,
    {
        match event {
            Ok(
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o),
            ) => self.request((o.namespace().unwrap_or_default(), o.name_any())),
            // A relist or a broken watch: anything may have changed meanwhile.
            Ok(watcher::Event::Init | watcher::Event::InitDone) | Err(_) => self.everything(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Maps LabHost changes to the requests they show in: the booking a host is claimed for
/// now, and the one it was claimed for before (a release waits for its hosts to be
/// unclaimed).
#[derive(Debug, Default)]
pub struct HostClaims(HashMap<String, Key>);

impl HostClaims {
    pub fn note(
        &mut self,
        touched: &Touched,
        event: &Result<DeserializeGuard<LabHost>, watcher::Error>,
    ) {
        let Ok(guard) = event else {
            touched.everything();
            return;
        };
        let name = guard.name_any();
        // An unreadable host: whoever it was claimed for must look again.
        let claim = guard.0.as_ref().ok().and_then(|host| {
            let claim = host.spec.claim_ref.as_ref()?;
            Some((claim.namespace.clone(), claim.name.clone()))
        });
        let before = match claim.clone() {
            Some(key) => self.0.insert(name, key),
            None => self.0.remove(&name),
        };
        for key in before.into_iter().chain(claim) {
            touched.request(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use labpods_api::v1alpha1::{ClaimRef, LabHostSpec};

    use super::*;

    fn key(name: &str) -> Key {
        ("team".into(), name.into())
    }

    fn host(claimed_for: Option<&str>) -> Result<DeserializeGuard<LabHost>, watcher::Error> {
        let mut host = LabHost::new("h1", LabHostSpec::default());
        host.spec.claim_ref = claimed_for.map(|lease| ClaimRef {
            namespace: "team".into(),
            name: lease.into(),
            uid: "u".into(),
            lease: lease.into(),
        });
        Ok(DeserializeGuard(Ok(host)))
    }

    fn requests(changes: Changes) -> Vec<Key> {
        match changes {
            Changes::All => panic!("expected some requests, not all"),
            Changes::Requests(keys) => {
                let mut keys: Vec<Key> = keys.into_iter().collect();
                keys.sort();
                keys
            }
        }
    }

    #[test]
    fn the_first_look_and_every_periodic_one_is_full_the_rest_only_what_changed() {
        let touched = Touched::new(Duration::from_secs(60));
        let now = Instant::now();
        assert!(matches!(touched.take(now), Changes::All));
        touched.request(key("a"));
        assert_eq!(requests(touched.take(now)), [key("a")]);
        assert_eq!(requests(touched.take(now)), []);
        assert!(matches!(
            touched.take(now + Duration::from_secs(60)),
            Changes::All
        ));
        touched.everything();
        assert!(matches!(
            touched.take(now + Duration::from_secs(61)),
            Changes::All
        ));
    }

    #[test]
    fn a_host_event_touches_the_booking_it_is_claimed_for_and_the_one_it_was() {
        let touched = Touched::new(Duration::from_secs(60));
        let _ = touched.take(Instant::now());
        let mut claims = HostClaims::default();
        claims.note(&touched, &host(Some("a")));
        assert_eq!(requests(touched.take(Instant::now())), [key("a")]);
        claims.note(&touched, &host(None));
        assert_eq!(
            requests(touched.take(Instant::now())),
            [key("a")],
            "released: the booking waiting for its hosts looks again"
        );
        claims.note(&touched, &host(Some("b")));
        assert_eq!(requests(touched.take(Instant::now())), [key("b")]);
    }
}
