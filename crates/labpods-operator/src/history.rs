//! The allocation history (DESIGN.md "History"): one JSON line per host of every Lease that
//! reached Released, kept after the Lease is collected, as the raw material of utilization
//! reports, wait times and capacity forecasts.
//!
//! Stored in ConfigMaps `labpods-history-YYYY-MM` (month of the release) in the operator's
//! namespace, one data key per Lease uid: appending is a merge patch of that key, so it is
//! idempotent (a retried append rewrites the same bytes) and needs no read-modify-write.
//! Bounded: one ConfigMap per month; a lab operator exports or deletes old months.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::ConfigMap,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use labpods_api::v1alpha1::{LABEL_LAB, LabHost, Lease, PodRequest};
use serde::{Deserialize, Serialize};

use crate::{context::Context, error::Result};

/// Prefix of the monthly ConfigMaps.
pub const CONFIGMAP_PREFIX: &str = "labpods-history-";

/// How a lease ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The window ran out.
    Expired,
    /// The user deleted the PodRequest before the end.
    ReleasedEarly,
}

/// One host's part in one lease.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    pub host: String,
    pub lease: String,
    pub namespace: String,
    pub role: String,
    pub profile: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<String>,
    /// What the user asked for (`spec.start`, or the request's creation when "now").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_start: Option<Time>,
    pub start: Time,
    /// The planned end of the window.
    pub end: Time,
    pub released_at: Time,
    pub ending: Ending,
}

/// The records of a Lease released at `released_at` (pure): one per listed host, sorted.
pub fn allocations(
    lease: &Lease,
    request: Option<&PodRequest>,
    hosts: &[&LabHost],
    released_at: &Time,
    ending: Ending,
) -> Vec<Allocation> {
    let requested_start = request.and_then(|pr| {
        pr.spec
            .start
            .clone()
            .or_else(|| pr.metadata.creation_timestamp.clone())
    });
    lease
        .spec
        .hosts
        .iter()
        .map(|h| {
            let labhost = hosts.iter().find(|l| l.name_any() == h.host);
            Allocation {
                host: h.host.clone(),
                lease: lease.name_any(),
                namespace: lease.namespace().unwrap_or_default(),
                role: h.role.clone(),
                profile: labhost.map(|l| l.spec.profile.clone()).unwrap_or_default(),
                lab: labhost.and_then(|l| l.labels().get(LABEL_LAB).cloned()),
                requested_start: requested_start.clone(),
                start: lease.spec.start.clone(),
                end: lease.spec.end.clone(),
                released_at: released_at.clone(),
                ending,
            }
        })
        .collect()
}

/// JSON lines, one allocation per line.
pub fn to_lines(records: &[Allocation]) -> String {
    records
        .iter()
        .filter_map(|r| serde_json::to_string(r).ok())
        .map(|l| l + "\n")
        .collect()
}

/// `labpods-history-2026-11` for a release in November 2026.
pub fn configmap_name(released_at: &Time) -> String {
    format!("{CONFIGMAP_PREFIX}{}", released_at.0.strftime("%Y-%m"))
}

/// Records the Lease's allocations under its uid (idempotent).
pub async fn append(
    ctx: &Context,
    lease: &Lease,
    records: &[Allocation],
    released_at: &Time,
) -> Result<()> {
    let namespace = &ctx.config.leader_election.lease_namespace;
    let name = configmap_name(released_at);
    let key = lease.uid().unwrap_or_else(|| lease.name_any());
    let data = BTreeMap::from([(key, to_lines(records))]);
    ctx.ensure_leader()?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = serde_json::json!({ "data": data });
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.clone()),
                    labels: Some(BTreeMap::from([(
                        "app.kubernetes.io/part-of".to_owned(),
                        "labpods".to_owned(),
                    )])),
                    ..ObjectMeta::default()
                },
                data: Some(data),
                ..ConfigMap::default()
            };
            match api.create(&PostParams::default(), &cm).await {
                Ok(_) => Ok(()),
                // Created meanwhile by another append: patch it.
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await?;
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use k8s_openapi::jiff::Timestamp;
    use labpods_api::v1alpha1::{
        ImageSpec, LabHostSpec, LeaseHost, LeaseSpec, PodRequestSpec, RequestRef, RoleSpec,
        SecretReference,
    };

    use super::*;

    fn at(s: &str) -> Time {
        Time(s.parse::<Timestamp>().unwrap())
    }

    #[test]
    fn one_line_per_host_with_profile_lab_and_ending() {
        let host = |h: &str, r: &str| LeaseHost {
            host: h.into(),
            role: r.into(),
        };
        let mut lease = Lease::new(
            "pod",
            LeaseSpec::new(
                RequestRef {
                    name: "pod".into(),
                    uid: "u1".into(),
                },
                [host("h2", "node"), host("h1", "jumphost")],
                at("2026-11-24T10:00:00Z"),
                at("2026-11-24T12:00:00Z"),
                ImageSpec::new("http://i.test/a.iso"),
            ),
        );
        lease.metadata.namespace = Some("team".into());
        let mut h1 = LabHost::new(
            "h1",
            LabHostSpec::new(
                "http://127.0.0.1:1",
                "x86-large",
                SecretReference::default(),
            ),
        );
        h1.metadata.labels = Some(BTreeMap::from([(LABEL_LAB.to_owned(), "lab-a".to_owned())]));
        let mut pr = PodRequest::new(
            "pod",
            PodRequestSpec::new(
                [RoleSpec::new("node", 1)],
                ImageSpec::new("http://i.test/a.iso"),
                "2h",
            ),
        );
        pr.metadata.creation_timestamp = Some(at("2026-11-24T09:58:00Z"));
        let released = at("2026-11-24T11:00:00Z");
        let records = allocations(&lease, Some(&pr), &[&h1], &released, Ending::ReleasedEarly);
        assert_eq!(records.len(), 2);
        assert_eq!(
            (records[0].host.as_str(), records[0].role.as_str()),
            ("h1", "jumphost")
        );
        assert_eq!(records[0].profile, "x86-large");
        assert_eq!(records[0].lab.as_deref(), Some("lab-a"));
        assert_eq!(
            records[1].profile, "",
            "a LabHost already gone leaves the profile empty"
        );
        assert_eq!(records[0].requested_start, Some(at("2026-11-24T09:58:00Z")));
        let lines = to_lines(&records);
        assert_eq!(lines.lines().count(), 2);
        let back: Allocation = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
        assert_eq!(back, records[0]);
        assert!(lines.contains(r#""ending":"ReleasedEarly""#));
        assert_eq!(configmap_name(&released), "labpods-history-2026-11");
    }
}
