//! Changing a sealed Lease (an extension, a spare swapped in): the new spec and its new
//! signature go in one write, so the Lease is never seen changed but unsealed.
//!
//! The signature covers `metadata.generation`, which the apiserver increments on the spec
//! change: the write is signed for the generation it will have (the current one plus one),
//! on the resourceVersion read (a stale copy gets a 409 and the caller looks again). Only the
//! fields that change are sent, and nothing is written when nothing changes, so the
//! generation moves exactly once. Should the written Lease not verify all the same, it is
//! re-sealed at once from what the apiserver returned (our own write).

use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
};
use labpods_api::v1alpha1::{Lease, LeaseSpec};
use serde_json::{Map, Value, json};

use crate::{
    context::Context,
    error::{Error, Result},
    signing::{LeaseSigner, SIGNATURE},
};

/// The outcome of a change.
#[derive(Debug)]
pub enum Changed {
    /// Written and sealed.
    Written(Box<Lease>),
    /// The spec already is what was asked: nothing written.
    Unchanged,
    /// The copy was stale (409): look again.
    Conflict,
}

/// Deletes this very Lease: by uid, so a newer Lease of the same name is never touched.
/// False when it was gone or replaced already.
pub async fn delete(ctx: &Context, lease: &Lease) -> Result<bool> {
    ctx.ensure_leader()?;
    let api: Api<Lease> =
        Api::namespaced(ctx.client.clone(), &lease.namespace().unwrap_or_default());
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: lease.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&lease.name_any(), &params).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(false),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// The JSON merge patch (RFC 7386) that turns `old` into `new`: changed keys, removed keys as
/// null, objects diffed key by key, lists and scalars replaced. None when they are equal.
pub fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for (key, value) in new {
                let diff = match old.get(key) {
                    Some(before) => merge_diff(before, value),
                    None => Some(value.clone()),
                };
                if let Some(diff) = diff {
                    patch.insert(key.clone(), diff);
                }
            }
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            Some(Value::Object(patch))
        }
        _ => Some(new.clone()),
    }
}

/// The patch that gives `lease` the spec `spec`, signed for the generation that write
/// produces, on the resourceVersion read (pure). None when the spec would not change.
pub fn spec_patch(signer: &LeaseSigner, lease: &Lease, spec: &LeaseSpec) -> Option<Value> {
    let old = serde_json::to_value(&lease.spec).ok()?;
    let new = serde_json::to_value(spec).ok()?;
    let diff = merge_diff(&old, &new)?;
    let mut next = lease.clone();
    next.spec = spec.clone();
    let generation = lease.metadata.generation.unwrap_or_default() + 1;
    Some(json!({
        "metadata": {
            "resourceVersion": lease.metadata.resource_version,
            "annotations": { SIGNATURE: signer.sealed(&next, generation) },
        },
        "spec": diff,
    }))
}

/// Writes `spec` into the sealed `lease` and seals the result.
pub async fn change_spec(ctx: &Context, lease: &Lease, spec: &LeaseSpec) -> Result<Changed> {
    let Some(patch) = spec_patch(&ctx.signer, lease, spec) else {
        return Ok(Changed::Unchanged);
    };
    ctx.ensure_leader()?;
    let api: Api<Lease> =
        Api::namespaced(ctx.client.clone(), &lease.namespace().unwrap_or_default());
    let written = match api
        .patch(
            &lease.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(written) => written,
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(Changed::Conflict),
        Err(e) => return Err(Error::Kube(e)),
    };
    if ctx.signer.is_sealed(&written) {
        return Ok(Changed::Written(Box::new(written)));
    }
    // The generation did not move as predicted. What the apiserver returned is our own write
    // (it applied on the resourceVersion we read): seal it as it is. No precondition needed:
    // had anyone changed it since, the new signature would not verify.
    tracing::warn!(lease = %written.name_any(), generation = ?written.metadata.generation, "re-sealing a Lease whose generation moved unexpectedly");
    let generation = written.metadata.generation.unwrap_or_default();
    let reseal = json!({
        "metadata": { "annotations": { SIGNATURE: ctx.signer.sealed(&written, generation) } },
    });
    let resealed = api
        .patch(
            &written.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&reseal),
        )
        .await?;
    Ok(Changed::Written(Box::new(resealed)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
    use labpods_api::v1alpha1::{ImageSpec, LeaseHost, RequestRef};

    use super::*;
    use crate::signing::Seal;

    fn t(s: &str) -> Time {
        Time(s.parse::<Timestamp>().unwrap())
    }

    #[test]
    fn merge_diff_sends_only_what_changes_and_nulls_what_goes() {
        let old = json!({"a": 1, "b": {"x": 1, "y": 2}, "c": [1, 2], "gone": true});
        let new = json!({"a": 1, "b": {"x": 1, "y": 3}, "c": [2], "added": "z"});
        assert_eq!(
            merge_diff(&old, &new),
            Some(json!({"b": {"y": 3}, "c": [2], "added": "z", "gone": null}))
        );
        assert_eq!(merge_diff(&old, &old), None);
    }

    /// What the apiserver does with the patch: applies the diff, bumps the generation. The
    /// result verifies; an unchanged spec writes nothing.
    #[test]
    fn the_written_lease_verifies_at_its_next_generation() {
        let signer = LeaseSigner::new(b"k");
        let mut lease = Lease::new(
            "pod",
            LeaseSpec::new(
                RequestRef {
                    name: "pod".into(),
                    uid: "pr".into(),
                },
                [LeaseHost {
                    host: "h1".into(),
                    role: "node".into(),
                    hostname: None,
                }],
                t("2026-11-24T10:00:00Z"),
                t("2026-11-24T12:00:00Z"),
                ImageSpec::new("http://i.test/a.iso").with_checksum("sha256:ab"),
            ),
        );
        lease.metadata.namespace = Some("team".into());
        lease.metadata.uid = Some("lease-uid".into());
        lease.metadata.generation = Some(3);
        lease.metadata.resource_version = Some("42".into());
        assert!(spec_patch(&signer, &lease, &lease.spec.clone()).is_none());

        let mut spec = lease.spec.clone();
        spec.end = t("2026-11-24T14:00:00Z");
        let patch = spec_patch(&signer, &lease, &spec).unwrap();
        assert_eq!(patch["spec"], json!({"end": "2026-11-24T14:00:00Z"}));
        assert_eq!(patch["metadata"]["resourceVersion"], "42");

        let mut applied = serde_json::to_value(&lease).unwrap();
        json_patch_merge(&mut applied, &patch);
        let mut applied: Lease = serde_json::from_value(applied).unwrap();
        applied.metadata.generation = Some(4);
        assert_eq!(signer.verify(&applied), Ok(Seal::Sealed));
        assert_eq!(applied.spec.end, spec.end);
        assert_eq!(applied.spec.image.checksum.as_deref(), Some("sha256:ab"));
    }

    /// RFC 7386, for the test above.
    fn json_patch_merge(target: &mut Value, patch: &Value) {
        let Value::Object(patch) = patch else {
            *target = patch.clone();
            return;
        };
        if !target.is_object() {
            *target = json!({});
        }
        let Value::Object(map) = target else { return };
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                json_patch_merge(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}
