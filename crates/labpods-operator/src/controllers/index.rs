//! Objects of a watch by keys each object names (a host by the Lease its claim names, a Lease
//! by the hosts it lists), kept by the [`Watch`](super::watches::Watch) as it updates its
//! cache. The mappers and the Lease reconcile used to scan the other kind's whole cache for
//! every event; at 10,000 hosts that is 10,000 objects looked at per Lease change.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, PoisonError, RwLock},
};

use kube::{
    core::DeserializeGuard,
    runtime::{reflector::ObjectRef, watcher},
};
use labpods_api::v1alpha1::{LabHost, Lease};

/// `namespace/name` of a Lease: the key of [`by_claimed_lease`].
pub fn lease_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// A host by the Lease its claim names.
pub fn by_claimed_lease(host: &DeserializeGuard<LabHost>) -> Vec<String> {
    host.0
        .as_ref()
        .ok()
        .and_then(|h| h.spec.claim_ref.as_ref())
        .map(|c| lease_key(&c.namespace, &c.lease))
        .into_iter()
        .collect()
}

/// A Lease by the hosts it lists (sealed or not: the reader decides what counts).
pub fn by_listed_host(lease: &DeserializeGuard<Lease>) -> Vec<String> {
    lease
        .0
        .as_ref()
        .map(|l| l.spec.hosts.iter().map(|h| h.host.clone()).collect())
        .unwrap_or_default()
}

/// The keys an object is found by.
pub type Keys<K> = Box<dyn Fn(&K) -> Vec<String> + Send + Sync>;

/// A shared, read-only view of one index.
pub struct Index<K: kube::Resource<DynamicType = ()>>(Arc<RwLock<State<K>>>);

impl<K: kube::Resource<DynamicType = ()>> Clone for Index<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K: kube::Resource<DynamicType = ()>> std::fmt::Debug for Index<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").finish_non_exhaustive()
    }
}

struct State<K: kube::Resource<DynamicType = ()>> {
    by_key: HashMap<String, HashSet<ObjectRef<K>>>,
    keys_of: HashMap<ObjectRef<K>, Vec<String>>,
    /// During a relist, the objects listed so far: they replace everything at its end, as
    /// the cache's own contents do.
    relisting: Option<Vec<(ObjectRef<K>, Vec<String>)>>,
}

impl<K: kube::Resource<DynamicType = ()>> Index<K> {
    pub fn new() -> Self {
        Self(Arc::new(RwLock::new(State {
            by_key: HashMap::new(),
            keys_of: HashMap::new(),
            relisting: None,
        })))
    }

    /// The objects found by `key`.
    pub fn get(&self, key: &str) -> Vec<ObjectRef<K>> {
        let state = self.0.read().unwrap_or_else(PoisonError::into_inner);
        state
            .by_key
            .get(key)
            .map(|refs| refs.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Follows one event of the watch, after its cache has.
    pub fn apply(&self, event: &watcher::Event<K>, keys: &Keys<K>) {
        let mut state = self.0.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Apply(object) => state.set(ObjectRef::from_obj(object), keys(object)),
            watcher::Event::Delete(object) => state.set(ObjectRef::from_obj(object), Vec::new()),
            watcher::Event::Init => state.relisting = Some(Vec::new()),
            watcher::Event::InitApply(object) => {
                let entry = (ObjectRef::from_obj(object), keys(object));
                state.relisting.get_or_insert_with(Vec::new).push(entry);
            }
            watcher::Event::InitDone => {
                let listed = state.relisting.take().unwrap_or_default();
                state.by_key.clear();
                state.keys_of.clear();
                for (object, keys) in listed {
                    state.set(object, keys);
                }
            }
        }
    }
}

impl<K: kube::Resource<DynamicType = ()>> Default for Index<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: kube::Resource<DynamicType = ()>> State<K> {
    fn set(&mut self, object: ObjectRef<K>, keys: Vec<String>) {
        for old in self.keys_of.remove(&object).unwrap_or_default() {
            if let Some(refs) = self.by_key.get_mut(&old) {
                refs.remove(&object);
                if refs.is_empty() {
                    self.by_key.remove(&old);
                }
            }
        }
        if keys.is_empty() {
            return;
        }
        for key in &keys {
            self.by_key
                .entry(key.clone())
                .or_default()
                .insert(object.clone());
        }
        self.keys_of.insert(object, keys);
    }
}

#[cfg(test)]
mod tests {
    use labpods_api::v1alpha1::{ClaimRef, LabHost, LabHostSpec};

    use super::*;

    fn host(name: &str, lease: Option<&str>) -> LabHost {
        let mut host = LabHost::new(name, LabHostSpec::default());
        host.spec.claim_ref = lease.map(|l| ClaimRef {
            namespace: "team".into(),
            name: l.into(),
            uid: "u".into(),
            lease: l.into(),
        });
        host
    }

    fn names(refs: Vec<ObjectRef<LabHost>>) -> Vec<String> {
        let mut names: Vec<String> = refs.into_iter().map(|r| r.name).collect();
        names.sort();
        names
    }

    #[test]
    fn an_object_moves_between_keys_and_a_relist_replaces_everything() {
        let keys: Keys<LabHost> = Box::new(|h: &LabHost| {
            h.spec
                .claim_ref
                .iter()
                .map(|c| format!("{}/{}", c.namespace, c.lease))
                .collect()
        });
        let index = Index::new();
        index.apply(&watcher::Event::Apply(host("h1", Some("a"))), &keys);
        index.apply(&watcher::Event::Apply(host("h2", Some("a"))), &keys);
        assert_eq!(names(index.get("team/a")), ["h1", "h2"]);
        index.apply(&watcher::Event::Apply(host("h1", Some("b"))), &keys);
        assert_eq!(names(index.get("team/a")), ["h2"]);
        assert_eq!(names(index.get("team/b")), ["h1"]);
        index.apply(&watcher::Event::Delete(host("h2", Some("a"))), &keys);
        assert!(index.get("team/a").is_empty());
        // A relist keeps the old view until it is done, then drops what it did not list.
        index.apply(&watcher::Event::Init, &keys);
        index.apply(&watcher::Event::InitApply(host("h3", Some("c"))), &keys);
        assert_eq!(names(index.get("team/b")), ["h1"]);
        index.apply(&watcher::Event::InitDone, &keys);
        assert!(index.get("team/b").is_empty());
        assert_eq!(names(index.get("team/c")), ["h3"]);
    }
}
