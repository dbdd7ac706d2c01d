//! Binding a request to the hosts the scheduler chose.
//!
//! Order matters for the LabHost controller, which drops a claim whose Lease does not exist:
//! 1. create the Lease (phase unset = Pending: "binding, keep the hosts off");
//! 2. claim every host (resourceVersion precondition, see [`claim`](crate::controllers::claim));
//! 3. the Lease controller sees every host claimed and sets the Lease Bound.
//!
//! If a host cannot be claimed the attempt is rolled back: the claims made are cleared (with
//! preconditions) and the Lease is deleted, and the next pass re-plans. A Pending Lease found
//! after a restart is resumed with the same steps (claiming is idempotent).
//!
//! Signatures ([`signing`](crate::signing)): the Lease is created with a provisional
//! signature and sealed (bound to its uid) before any host is claimed, so a host is only ever
//! claimed for a sealed Lease: one that holds exactly what this scheduler chose for this
//! request. A provisional Lease left by a crash is rolled back, never resumed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use labpods_api::v1alpha1::{
    ClaimRef, LabHost, Lease, LeaseHost, LeaseSpec, PodRequest, RequestRef,
};

use serde_json::json;

use crate::{
    context::Context,
    controllers::{
        claim::{Claimed, HostCheck, check, claim, unclaim},
        sealed,
        snapshot::{LabHosts, kube_time},
    },
    error::{Error, Result},
    scheduler::Placement,
    signing::SIGNATURE,
};

/// Annotation on a Lease: the end first granted, from which extensions count.
pub const ORIGINAL_END: &str = "labpods.dev/original-end";

/// How an attempt to bind ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// Every host is claimed for the Lease.
    Done,
    /// A host could not be claimed (why); rolled back, re-plan.
    Conflict(String),
    /// A Lease of that name exists already (our cache is behind); look again next pass.
    Exists,
}

/// The claim that binds a host to `pr`'s Lease (same name as the request).
pub fn claim_ref(pr: &PodRequest) -> ClaimRef {
    ClaimRef {
        namespace: pr.namespace().unwrap_or_default(),
        name: pr.name_any(),
        uid: pr.uid().unwrap_or_default(),
        lease: pr.name_any(),
    }
}

/// The Lease for `pr` placed at `p`: owned by the request (garbage-collected with it).
pub fn lease_for(pr: &PodRequest, p: &Placement) -> Lease {
    let hosts = p.assignments.iter().map(|a| LeaseHost {
        host: a.host.clone(),
        role: a.role.clone(),
        hostname: None,
    });
    let end = kube_time(p.end);
    let spec = LeaseSpec::new(
        RequestRef {
            name: pr.name_any(),
            uid: pr.uid().unwrap_or_default(),
        },
        hosts,
        kube_time(p.start),
        end.clone(),
        pr.spec.image.clone(),
    );
    let owner = pr.controller_owner_ref(&()).map(|mut o| {
        o.block_owner_deletion = Some(true);
        o
    });
    Lease {
        metadata: ObjectMeta {
            name: Some(pr.name_any()),
            namespace: pr.namespace(),
            owner_references: owner.map(|o| vec![o]),
            annotations: Some([(ORIGINAL_END.to_owned(), end.0.to_string())].into()),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}

/// Binds `lease`'s hosts to `pr`; `create` is false when resuming an existing Pending Lease.
pub async fn bind(
    ctx: &Context,
    pr: &PodRequest,
    lease: &Lease,
    create: bool,
    hosts: &LabHosts,
) -> Result<Bound> {
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), &pr.namespace().unwrap_or_default());
    let ours = claim_ref(pr);
    // Cheap pre-check on the cached copies: a host visibly taken (e.g. still Releasing after
    // its claim was cleared) would only make us create and roll back a Lease.
    if create && let Some(why) = precheck(&lease.spec.hosts, hosts, &ours) {
        return Ok(Bound::Conflict(why));
    }
    let lease = if create {
        ctx.ensure_leader()?;
        let mut new = lease.clone();
        ctx.signer.sign_new(&mut new);
        let created = match api.create(&PostParams::default(), &new).await {
            Ok(created) => created,
            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(Bound::Exists),
            Err(e) => return Err(Error::Kube(e)),
        };
        match seal(ctx, &api, &created).await {
            Ok(Some(sealed)) => sealed,
            Ok(None) => {
                return Ok(Bound::Conflict(
                    "the new Lease changed while sealing it".into(),
                ));
            }
            Err(e) => {
                rollback(ctx, &created, &[], &ours).await?;
                return Err(e);
            }
        }
    } else if ctx.signer.is_sealed(lease) {
        lease.clone()
    } else {
        // Never claim for a Lease this operator did not seal (the callers check too).
        return Ok(Bound::Conflict(format!(
            "Lease {} is not sealed by the operator",
            lease.name_any()
        )));
    };
    let mut claimed = Vec::with_capacity(lease.spec.hosts.len());
    for h in &lease.spec.hosts {
        let outcome = match hosts.get(&h.host) {
            Some(cached) => claim(ctx, cached, &ours).await,
            None => Ok(Claimed::No(format!("host {} no longer exists", h.host))),
        };
        match outcome {
            Ok(Claimed::Yes(host)) => claimed.push(*host),
            Ok(Claimed::No(why)) => {
                rollback(ctx, &lease, &claimed, &ours).await?;
                return Ok(Bound::Conflict(why));
            }
            Err(e) => {
                rollback(ctx, &lease, &claimed, &ours).await?;
                return Err(e);
            }
        }
    }
    Ok(Bound::Done)
}

/// Seals a Lease this operator just created: its signature, now bound to the uid the
/// apiserver gave it. No resourceVersion precondition is needed: the signature covers the
/// generation and every trusted field, so sealing an object someone changed meanwhile
/// yields a signature that does not verify. None when the Lease is gone or was changed (it
/// is then rolled back).
async fn seal(ctx: &Context, api: &Api<Lease>, created: &Lease) -> Result<Option<Lease>> {
    let generation = created.metadata.generation.unwrap_or(1);
    let patch = json!({
        "metadata": { "annotations": { SIGNATURE: ctx.signer.sealed(created, generation) } },
    });
    ctx.ensure_leader()?;
    match api
        .patch(
            &created.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(sealed) if ctx.signer.is_sealed(&sealed) => Ok(Some(sealed)),
        Ok(changed) => {
            sealed::delete(ctx, &changed).await?;
            Ok(None)
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// Deletes a provisional Lease that a crash left unsealed (no host was claimed for it), by
/// uid so that a newer Lease of the same name is never touched. The next pass re-plans.
pub async fn roll_back_unsealed(ctx: &Context, lease: &Lease) -> Result<()> {
    sealed::delete(ctx, lease).await.map(drop)
}

/// Why binding `wanted` cannot succeed according to the cache, if it cannot (pure).
pub fn precheck(wanted: &[LeaseHost], hosts: &LabHosts, ours: &ClaimRef) -> Option<String> {
    wanted.iter().find_map(|h| match hosts.get(&h.host) {
        None => Some(format!("host {} no longer exists", h.host)),
        Some(cached) => match check(cached, ours) {
            HostCheck::Taken(why) => Some(why),
            HostCheck::Ours | HostCheck::Free => None,
        },
    })
}

/// Undoes an attempt: clears the claims it made, then deletes its Lease (by uid, so a newer
/// Lease of the same name is never touched).
async fn rollback(
    ctx: &Context,
    lease: &Lease,
    claimed: &[LabHost],
    ours: &ClaimRef,
) -> Result<()> {
    for host in claimed {
        unclaim(ctx, host, ours).await?;
    }
    sealed::delete(ctx, lease).await.map(drop)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::scheduler::Assignment;
    use labpods_core::fixtures;

    #[test]
    fn lease_is_owned_by_the_request_and_remembers_its_first_end() {
        let mut pr = fixtures::podrequest("pod", 2);
        pr.metadata.uid = Some("u1".into());
        let p = Placement {
            start: "2026-11-24T10:00:00Z".parse().unwrap(),
            end: "2026-11-24T11:00:00Z".parse().unwrap(),
            assignments: vec![
                Assignment {
                    role: "node".into(),
                    host: "h2".into(),
                },
                Assignment {
                    role: "jump".into(),
                    host: "h1".into(),
                },
            ],
        };
        let lease = lease_for(&pr, &p);
        let owner = &lease.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("PodRequest", "u1")
        );
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
        assert_eq!(lease.annotations()[ORIGINAL_END], "2026-11-24T11:00:00Z");
        let hosts: Vec<_> = lease.spec.hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(hosts, ["h1", "h2"]);
        assert_eq!(lease.spec.request_ref.uid, "u1");
        assert_eq!(claim_ref(&pr).lease, "pod");
    }

    #[test]
    fn precheck_refuses_hosts_the_cache_shows_taken() {
        use labpods_api::v1alpha1::HostState;
        let host = |name: &str, state: HostState| {
            (name.to_owned(), fixtures::labhost(name, Some(state)).into())
        };
        let hosts: LabHosts = [
            host("h1", HostState::Available),
            host("h2", HostState::Releasing),
        ]
        .into();
        let ours = ClaimRef {
            namespace: fixtures::NAMESPACE.into(),
            name: "pod".into(),
            uid: "u1".into(),
            lease: "pod".into(),
        };
        let want = |names: &[&str]| -> Vec<LeaseHost> {
            names
                .iter()
                .map(|n| LeaseHost {
                    host: (*n).into(),
                    role: "node".into(),
                    hostname: None,
                })
                .collect()
        };
        assert_eq!(precheck(&want(&["h1"]), &hosts, &ours), None);
        assert_eq!(
            precheck(&want(&["h1", "h2"]), &hosts, &ours),
            Some("host h2 is Releasing".into())
        );
        assert_eq!(
            precheck(&want(&["h9"]), &hosts, &ours),
            Some("host h9 no longer exists".into())
        );
    }
}
