//! Lease: the operator's binding of a PodRequest to concrete hosts for a window.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::ImageSpec;
use super::labhost::{HostState, ProvisioningStep};

/// Most hosts one Lease may list: a request's hosts (at most
/// [`MAX_HOSTS_PER_REQUEST`](crate::validation::MAX_HOSTS_PER_REQUEST)) and the spares that
/// replaced failed ones.
pub const MAX_LEASE_HOSTS: u32 = 1024;

/// The binding of a PodRequest to concrete LabHosts for a time window.
///
/// Namespaced, created and owned by the operator (ownerReference to its PodRequest, same
/// name). The kind shares its plural with `leases.coordination.k8s.io`: use
/// `kubectl get leases.labpods.dev`, the short name `lablease`, or `kubectl get lab`.
// kube's `printcolumn(...)` repeats keys by design; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "labpods.dev",
    version = "v1alpha1",
    kind = "Lease",
    namespaced,
    status = "LeaseStatus",
    shortname = "lablease",
    shortname = "llease",
    category = "lab",
    derive = "PartialEq",
    doc = "The binding of a PodRequest to concrete LabHosts for a time window, created by the operator. Shares its plural with leases.coordination.k8s.io: use kubectl get leases.labpods.dev or the short name lablease.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Where the lease is in its life"
    ),
    printcolumn(
        name = "Since",
        type_ = "date",
        json_path = ".status.lastPhaseTransitionTime",
        description = "How long the lease has been in its phase"
    ),
    printcolumn(
        name = "Hosts",
        type_ = "integer",
        json_path = ".status.hostCount",
        description = "Number of hosts bound"
    ),
    printcolumn(
        name = "Start",
        type_ = "string",
        json_path = ".spec.start",
        description = "Start of the window"
    ),
    printcolumn(
        name = "End",
        type_ = "string",
        json_path = ".spec.end",
        description = "End of the window"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct LeaseSpec {
    /// The PodRequest this lease serves.
    pub request_ref: RequestRef,
    /// The hosts bound, one entry per host, sorted by host (spares that replaced a failed
    /// host included).
    #[schemars(length(min = 1, max = MAX_LEASE_HOSTS))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["host"]))]
    pub hosts: Vec<LeaseHost>,
    /// Start of the window: provisioning begins then.
    pub start: Time,
    /// End of the window: the hosts are released then.
    pub end: Time,
    /// The image every host boots.
    pub image: ImageSpec,
}

/// A reference to the PodRequest (same namespace) a lease serves.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestRef {
    /// Name of the PodRequest.
    #[schemars(length(max = 253))]
    pub name: String,
    /// UID of the PodRequest.
    #[schemars(length(max = 128))]
    pub uid: String,
}

/// One host bound by a lease.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct LeaseHost {
    /// Name of the LabHost.
    #[schemars(length(max = 253))]
    pub host: String,
    /// The role it fills in the PodRequest.
    #[schemars(length(max = 63))]
    pub role: String,
    /// The hostname the host is given: `<role>-<n>`, n from 1 within the role. A spare that
    /// replaces a failed host takes over its hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 70))]
    pub hostname: Option<String>,
}

/// Observed state of a Lease, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaseStatus {
    /// Pending, Bound, Provisioning, Ready, Degraded, Releasing or Released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<LeasePhase>,
    /// When the Lease entered its phase: how long it has been provisioning or releasing (the
    /// alerts on a stuck Lease read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_phase_transition_time: Option<Time>,
    /// Progress of each host, sorted by host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["host"]))]
    pub hosts: Vec<HostProgress>,
    /// Number of hosts bound (the length of `spec.hosts`, for `kubectl get`: a printer
    /// column cannot count a list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_count: Option<u32>,
    /// When every host first ran the image (the Lease first became Ready); kept through
    /// the later phases, so the allocation history's provisioning time survives an operator
    /// restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<Time>,
    /// When every host was back in the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<Time>,
    /// The hosts a spare replaced (failed, deleted from the lab, or taken by another
    /// booking), sorted by host: which host was swapped out, for which role, and when it
    /// left the Lease. Kept until the Lease is collected, so the allocation history records
    /// a replaced host's part even after an operator restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_LEASE_HOSTS))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["host"]))]
    pub replaced: Vec<ReplacedHost>,
    /// The metadata.generation this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions (Ready, Degraded, ...), sorted by type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Where a Lease is in its life: Pending, Bound, Provisioning, Ready, Degraded, Releasing or
/// Released.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum LeasePhase {
    /// Created; not every host is bound yet.
    Pending,
    /// Every host is bound; waiting for the start.
    Bound,
    /// Hosts are being reimaged.
    Provisioning,
    /// Every host runs the image.
    Ready,
    /// Some host failed and no spare fitted; see the conditions.
    Degraded,
    /// Hosts are being powered off.
    Releasing,
    /// Every host is back in the pool.
    Released,
}

/// Progress of one host of a lease.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostProgress {
    /// Name of the LabHost.
    pub host: String,
    /// The role it fills (from `spec.hosts`): kept here so a host a spare replaces is
    /// listed in `replaced` with its role. Empty in a status written before this field.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 63))]
    pub role: String,
    /// The host's lifecycle state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<HostState>,
    /// The provisioning step the host is at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<ProvisioningStep>,
    /// For humans: what the host is doing or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the host was first seen failed (state Error) during this booking; kept after it
    /// recovers, so the allocation history records its part as Failed even after an
    /// operator restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<Time>,
}

/// A host a spare replaced in a lease.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplacedHost {
    /// Name of the LabHost.
    #[schemars(length(max = 253))]
    pub host: String,
    /// The role it filled, which the spare took over.
    #[schemars(length(max = 63))]
    pub role: String,
    /// When it left the Lease (the operator's first status after the swap).
    pub at: Time,
}

impl LeaseSpec {
    /// A lease of `hosts` for `[start, end)`; the hosts are sorted so the spec is the same
    /// whatever order the scheduler picked them in.
    pub fn new(
        request_ref: RequestRef,
        hosts: impl IntoIterator<Item = LeaseHost>,
        start: Time,
        end: Time,
        image: ImageSpec,
    ) -> Self {
        let mut hosts: Vec<LeaseHost> = hosts.into_iter().collect();
        hosts.sort();
        name_hosts(&mut hosts);
        Self {
            request_ref,
            hosts,
            start,
            end,
            image,
        }
    }
}

/// Gives each host without a hostname the next free `<role>-<n>` of its role, in list order.
fn name_hosts(hosts: &mut [LeaseHost]) {
    let taken: std::collections::BTreeSet<String> =
        hosts.iter().filter_map(|h| h.hostname.clone()).collect();
    let mut next: std::collections::BTreeMap<String, u32> = Default::default();
    for h in hosts.iter_mut().filter(|h| h.hostname.is_none()) {
        let n = next.entry(h.role.clone()).or_insert(1);
        while taken.contains(&format!("{}-{n}", h.role)) {
            *n += 1;
        }
        h.hostname = Some(format!("{}-{n}", h.role));
        *n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn new_sorts_hosts_and_serializes_camel_case() {
        let host = |h: &str, r: &str| LeaseHost {
            host: h.into(),
            role: r.into(),
            hostname: None,
        };
        let t = |s: &str| Time(s.parse::<Timestamp>().expect("fixed instant"));
        let spec = LeaseSpec::new(
            RequestRef {
                name: "ci-pod".into(),
                uid: "u1".into(),
            },
            [host("host-03", "node"), host("host-01", "jumphost")],
            t("2026-12-01T09:00:00Z"),
            t("2026-12-04T09:00:00Z"),
            ImageSpec::new("http://images.lab/x.iso"),
        );
        let names: Vec<_> = spec.hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(names, ["host-01", "host-03"]);
        let json = serde_json::to_value(&spec).expect("serializes");
        assert_eq!(json["requestRef"]["name"], "ci-pod");
        assert_eq!(json["start"], "2026-12-01T09:00:00Z");
    }

    #[test]
    fn hosts_are_named_role_n_and_a_kept_name_is_not_reused() {
        let host = |h: &str, r: &str, name: Option<&str>| LeaseHost {
            host: h.into(),
            role: r.into(),
            hostname: name.map(Into::into),
        };
        let mut hosts = vec![
            host("a", "node", None),
            host("b", "jumphost", None),
            host("c", "node", Some("node-1")),
            host("d", "node", None),
        ];
        name_hosts(&mut hosts);
        let names: Vec<_> = hosts.iter().filter_map(|h| h.hostname.as_deref()).collect();
        assert_eq!(names, ["node-2", "jumphost-1", "node-1", "node-3"]);
    }
}
