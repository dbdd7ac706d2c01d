//! Read-your-writes without a read per reconcile. A controller's cache can lag its own last
//! write to an object; planning from the older copy restarted finished provisioning runs
//! (LabHost) and wrote statuses the apiserver refused as conflicts (Lease: one failed
//! reconcile in seven at 1,000 hosts, each retried after a backoff). A GET per reconcile
//! avoided that at the price of one read per object per pass. [`Written`] keeps the
//! resourceVersion of this term's last write (or read) of each object instead: the cached
//! copy is used when it holds that version, or when nothing was written yet (every change
//! the cache lacks is then someone else's, and its watch event brings a reconcile of its
//! own); only otherwise is the object read.

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// The last resourceVersion written or read of each object, by namespace/name; None: a
/// write whose outcome is unknown (a timeout), so the next reconcile reads the object.
#[derive(Default)]
pub struct Written(Mutex<HashMap<String, Option<String>>>);

impl std::fmt::Debug for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Written")
            .field("objects", &self.map().len())
            .finish()
    }
}

fn key<K: Resource>(object: &K) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

impl Written {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Option<String>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `cached` is at least as new as what this term wrote or read of it.
    pub fn current<K: Resource>(&self, cached: &K) -> bool {
        self.map().get(&key(cached)).is_none_or(|known| {
            known.is_some() && known.as_ref() == cached.meta().resource_version.as_ref()
        })
    }

    /// `cached` when [`Written::current`], else the object as `api` reads it now (None: it
    /// is gone, and forgotten).
    pub async fn latest<'a, K>(
        &self,
        api: &Api<K>,
        cached: &'a K,
    ) -> kube::Result<Option<Cow<'a, K>>>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        if self.current(cached) {
            return Ok(Some(Cow::Borrowed(cached)));
        }
        let Some(read) = api.get_opt(&cached.name_any()).await? else {
            self.forget(cached);
            return Ok(None);
        };
        self.record(cached, Some(&read));
        Ok(Some(Cow::Owned(read)))
    }

    /// The outcome of a write to `object`: the object as written, or None when unknown.
    pub fn record<K: Resource>(&self, object: &K, written: Option<&K>) {
        let version = written.and_then(|w| w.meta().resource_version.clone());
        self.map().insert(key(object), version);
    }

    pub fn forget<K: Resource>(&self, object: &K) {
        self.map().remove(&key(object));
    }
}

#[cfg(test)]
mod tests {
    use labpods_api::v1alpha1::{LabHost, LabHostSpec};

    use super::*;

    fn host(version: &str) -> LabHost {
        let mut host = LabHost::new("h1", LabHostSpec::default());
        host.metadata.resource_version = Some(version.into());
        host
    }

    #[test]
    fn the_cache_counts_until_a_write_then_only_at_that_write() {
        let written = Written::default();
        assert!(
            written.current(&host("5")),
            "nothing written: trust the cache"
        );
        written.record(&host("5"), Some(&host("7")));
        assert!(!written.current(&host("5")), "the cache lags our write");
        assert!(written.current(&host("7")));
        written.record(&host("7"), None);
        assert!(
            !written.current(&host("7")),
            "an unknown outcome is read anew"
        );
        written.forget(&host("7"));
        assert!(written.current(&host("3")));
    }
}
