//! The objects a bound request hands its user, beside it in its namespace and owned by it
//! (an ownerReference, so the garbage collector removes them with the request): the access
//! Secret ([`access`](super::access)) and the descriptor ConfigMap
//! ([`descriptor`](super::descriptor)). Written by server-side apply under their own field
//! manager.
//!
//! A pass runs on every change in the lab, so a child is written only when its content
//! changed since this replica last wrote it (or a while ago: a child someone deleted comes
//! back within [`REFRESH`]); no read per pass.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use labpods_api::v1alpha1::PodRequest;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{context::Context, error::Result};

/// Field manager of the children.
pub const FIELD_MANAGER: &str = "labpods-access";
/// A child unchanged for this long is applied again (recreated if someone deleted it).
pub const REFRESH: Duration = Duration::from_secs(600);

/// What this replica last applied, by child: a digest of the body and when.
#[derive(Debug, Default)]
pub struct Applied(Mutex<HashMap<String, (u64, Instant)>>);

impl Applied {
    fn is_fresh(&self, key: &str, digest: u64) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(key).copied())
            .is_some_and(|(d, at)| d == digest && at.elapsed() < REFRESH)
    }

    fn record(&self, key: String, digest: u64) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key, (digest, Instant::now()));
        }
    }
}

/// The ownerReference that ties a child to its request.
fn owner(pr: &PodRequest) -> Value {
    json!({
        "apiVersion": "labpods.dev/v1alpha1",
        "kind": "PodRequest",
        "name": pr.name_any(),
        "uid": pr.uid().unwrap_or_default(),
        "controller": true,
    })
}

/// The metadata of child `name` of `pr`.
fn metadata(pr: &PodRequest, name: &str) -> Value {
    json!({
        "name": name,
        "namespace": pr.namespace().unwrap_or_default(),
        "labels": {
            "app.kubernetes.io/managed-by": "labpods",
            "labpods.dev/podrequest": pr.name_any(),
        },
        "ownerReferences": [owner(pr)],
    })
}

/// The access Secret `name` of `pr` holding `files` (an Opaque Secret, the files base64 as
/// Secrets store them).
pub fn secret_body(pr: &PodRequest, name: &str, files: &BTreeMap<String, String>) -> Value {
    let data: BTreeMap<&str, String> = files
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                base64::engine::general_purpose::STANDARD.encode(v),
            )
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(pr, name),
        "type": "Opaque",
        "data": data,
    })
}

/// The ConfigMap `name` of `pr` holding `files` (nothing in them is secret).
pub fn config_map_body(pr: &PodRequest, name: &str, files: &BTreeMap<String, String>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(pr, name),
        "data": files,
    })
}

/// Applies the child `body` (of kind `K`) unless this replica applied the same body
/// recently.
pub async fn apply<K>(ctx: &Context, applied: &Applied, body: &Value) -> Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let namespace = body["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = body["metadata"]["name"].as_str().unwrap_or_default();
    let key = format!("{}/{namespace}/{name}", K::kind(&()));
    let mut hasher = DefaultHasher::new();
    body.to_string().hash(&mut hasher);
    let digest = hasher.finish();
    if applied.is_fresh(&key, digest) {
        return Ok(());
    }
    ctx.ensure_leader()?;
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Apply(body),
    )
    .await?;
    applied.record(key, digest);
    Ok(())
}
