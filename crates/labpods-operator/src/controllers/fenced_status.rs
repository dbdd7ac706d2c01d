//! Status writes that a deposed leader cannot land late. A status is computed from a status
//! read during this replica's term; the write carries the resourceVersion of that read, so
//! the apiserver refuses it (409) once anyone wrote the object since, and a replica whose
//! write sat in a black-holed connection while another took over cannot overwrite the new
//! leader's status when the network delivers it.
//!
//! A 409 caused by a change elsewhere in the object (this reconcile's own claim clearing,
//! a phone-home annotation, a cache a little behind) is not a reason to give up: the object
//! is read again and the write retried on it if its status is still the one this one was
//! computed from. A status someone else changed is never overwritten.

use std::time::Duration;

use kube::{
    Api, Resource,
    api::{Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::metrics::Metrics;

/// A status write (with its one re-read) taking longer than this failed: a write stuck in a
/// dead connection must not hold its reconcile (and its object) until the client's timeout.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// [`apply`], bounded by [`WRITE_TIMEOUT`], its outcome counted by kind
/// (`labpods_status_writes_total`): the one way the controllers write a status.
pub async fn write<K, S>(
    metrics: &Metrics,
    api: &Api<K>,
    manager: &str,
    based_on: &K,
    status: impl Fn(&K) -> Option<&S>,
    patch: &Value,
) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    S: PartialEq,
{
    let written = tokio::time::timeout(WRITE_TIMEOUT, apply(api, manager, based_on, status, patch))
        .await
        .unwrap_or_else(|_| {
            let timed_out = std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("status write not answered within {WRITE_TIMEOUT:?}"),
            );
            Err(kube::Error::Service(Box::new(timed_out)))
        });
    let outcome = match &written {
        Ok(_) => "written",
        Err(kube::Error::Api(s)) if s.code == 409 => "refused",
        Err(kube::Error::Api(s)) if s.code == 404 => "gone",
        Err(kube::Error::Service(_)) => "timeout",
        Err(_) => "error",
    };
    metrics.status_written(&K::kind(&()), outcome);
    written
}

/// Server-side applies `patch` (apiVersion, kind and status) to the status of `based_on`'s
/// object, on `based_on`'s resourceVersion. `status` reads the status out of an object.
/// Returns the object as written.
async fn apply<K, S>(
    api: &Api<K>,
    manager: &str,
    based_on: &K,
    status: impl Fn(&K) -> Option<&S>,
    patch: &Value,
) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    S: PartialEq,
{
    let name = based_on.meta().name.clone().unwrap_or_default();
    // Forced: the status belongs to this controller alone, and a conflict with a stale owner
    // (e.g. a previous operator version's manager) must not wedge the object.
    let params = PatchParams::apply(manager).force();
    let mut resource_version = based_on.meta().resource_version.clone();
    let mut reread = false;
    loop {
        let mut body = patch.clone();
        body["metadata"] = serde_json::json!({ "resourceVersion": resource_version });
        match api.patch_status(&name, &params, &Patch::Apply(&body)).await {
            Ok(written) => return Ok(written),
            Err(kube::Error::Api(s)) if s.code == 409 && !reread => {
                reread = true;
                let fresh = api.get(&name).await?;
                if status(&fresh) != status(based_on) {
                    tracing::debug!(%name, "status changed since read: not overwriting it");
                    return Err(kube::Error::Api(s));
                }
                resource_version = fresh.meta().resource_version.clone();
            }
            Err(e) => return Err(e),
        }
    }
}
