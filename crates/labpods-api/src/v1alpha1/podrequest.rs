//! PodRequest: a user's booking of a set of bare-metal hosts.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::ImageSpec;
use crate::patterns;

/// Most hosts one role may ask for.
pub const MAX_ROLE_COUNT: u32 = 64;

/// A booking of a "pod": a set of bare-metal hosts in roles, booted with one image, for a
/// time window.
///
/// Namespaced. The operator finds hosts for every role, binds them in a Lease (same name as
/// the request), provisions them at the start and releases them at the end.
// kube's `printcolumn(...)` repeats keys by design; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "labpods.dev",
    version = "v1alpha1",
    kind = "PodRequest",
    namespaced,
    status = "PodRequestStatus",
    shortname = "podreq",
    shortname = "preq",
    category = "lab",
    derive = "PartialEq",
    derive = "Default",
    doc = "A booking of a pod: bare-metal hosts in roles, booted with one image, for a time window. The operator binds hosts in a Lease of the same name.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Where the booking is in its life"
    ),
    printcolumn(
        name = "Hosts",
        type_ = "integer",
        json_path = ".status.hostCount",
        description = "Number of hosts assigned"
    ),
    printcolumn(
        name = "Start",
        type_ = "string",
        json_path = ".status.scheduledStart",
        description = "When the hosts are (or will be) handed over"
    ),
    printcolumn(
        name = "End",
        type_ = "string",
        json_path = ".status.scheduledEnd",
        description = "When the hosts are taken back"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        description = "Why the booking waits, or what it is doing",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PodRequestSpec {
    /// The hosts wanted, by role (e.g. 1 `jumphost` and 3 `node`). Role names are unique.
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub roles: Vec<RoleSpec>,
    /// The image every host boots.
    pub image: ImageSpec,
    /// When the booking starts (RFC 3339, e.g. `2026-12-01T09:00:00Z`); absent means as soon
    /// as hosts are free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Time>,
    /// How long the booking lasts, as `<n>d`, `<n>h`, `<n>m` terms, largest first (`72h`,
    /// `90m`, `3d`, `1d12h`). Set exactly one of `duration` and `end`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::DURATION), length(min = 2, max = 32))]
    pub duration: Option<String>,
    /// When the booking ends (RFC 3339). Set exactly one of `duration` and `end`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Time>,
    /// What the pod is for, shown to lab operators in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub purpose: Option<String>,
    /// How the users get into the hosts: SSH keys, cloud-init user data and network config,
    /// delivered to every host as a NoCloud seed. A role's own `access` overrides it per field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessSpec>,
}

/// Most SSH keys one booking (or role) may authorise.
pub const MAX_SSH_KEYS: usize = 32;
/// Longest OpenSSH public key line accepted (an RSA 16384-bit key fits).
pub const MAX_SSH_KEY_LENGTH: usize = 4096;
/// Largest cloud-init network-config accepted inline.
pub const MAX_NETWORK_DATA_LENGTH: usize = 16 * 1024;
/// Largest cloud-init user data accepted from a Secret.
pub const MAX_USER_DATA_BYTES: usize = 64 * 1024;

/// What the booked hosts are personalised with, rendered into each host's cloud-init NoCloud
/// seed. Every field is optional; in a role's `access`, each field that is set replaces the
/// request's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessSpec {
    /// OpenSSH public keys (`ssh-ed25519 AAAA... alice@laptop`) authorised on every host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_SSH_KEYS), inner(length(min = 1, max = MAX_SSH_KEY_LENGTH)))]
    pub ssh_authorized_keys: Vec<String>,
    /// A Secret in the request's namespace holding cloud-init user data (at most 64 KiB),
    /// merged with the keys and the operator's phone-home.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data_secret_ref: Option<UserDataSecretRef>,
    /// cloud-init network-config (version 2, YAML) for every host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_NETWORK_DATA_LENGTH))]
    pub network_data: Option<String>,
}

/// A key of a Secret in the request's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDataSecretRef {
    /// Name of the Secret (same namespace as the PodRequest).
    #[schemars(pattern(patterns::DNS_SUBDOMAIN), length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data; default `userData`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::SECRET_KEY), length(min = 1, max = 253))]
    pub key: Option<String>,
}

impl UserDataSecretRef {
    /// The key read when none is given (Metal3's name for it).
    pub const DEFAULT_KEY: &str = "userData";

    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or(Self::DEFAULT_KEY)
    }
}

/// A group of interchangeable hosts within a booking.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleSpec {
    /// Role name, a DNS label such as `jumphost` or `node`; unique within the request.
    #[schemars(pattern(patterns::DNS_LABEL), length(min = 1, max = 63))]
    pub name: String,
    /// Number of hosts in this role, 1 to 64.
    #[schemars(range(min = 1, max = MAX_ROLE_COUNT))]
    pub count: u32,
    /// Only hosts whose labels match (labpods.dev/lab, labpods.dev/rack, labpods.dev/profile,
    /// labpods.dev/arch, ...). Absent matches every host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Only hosts with this `spec.profile`, e.g. `x86-large`. Absent matches every profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::DNS_LABEL), length(min = 1, max = 63))]
    pub profile: Option<String>,
    /// This role's own access; each field that is set replaces the request's `access`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessSpec>,
}

/// Observed state of a PodRequest, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodRequestStatus {
    /// Pending, Scheduled, Provisioning, Ready, Releasing, Released or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PodRequestPhase>,
    /// Name of the Lease binding this request's hosts (same namespace). Once set, the
    /// roles cannot change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub lease: Option<String>,
    /// Hosts assigned, one per host, sorted by role then host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["host"]))]
    pub hosts: Vec<AssignedHost>,
    /// Number of hosts assigned (the length of `hosts`, for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_count: Option<u32>,
    /// When the hosts are (or will be) handed over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_start: Option<Time>,
    /// When the hosts are taken back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_end: Option<Time>,
    /// While the request waits: when the scheduler would start it if the lab does not
    /// change, to the minute (the estimate in `message`). Absent when no start can be
    /// estimated (the hosts it needs are in maintenance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_start: Option<Time>,
    /// For humans: why the request waits and when it will likely start, or what it is doing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The metadata.generation this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions (Scheduled, Ready, Invalid, ExpiringSoon, ...), sorted by type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Name of the Secret in this namespace with the pod's SSH config and `known_hosts`
    /// (built from the host keys the hosts reported), once the first host reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub access_secret: Option<String>,
    /// Name of the ConfigMap in this namespace with the pod's descriptor (OPNFV PDF
    /// `pdf.yaml` and IDF `idf.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub descriptor: Option<String>,
}

/// Where a PodRequest is in its life: Pending, Scheduled, Provisioning, Ready, Releasing,
/// Released or Failed.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum PodRequestPhase {
    /// Accepted, no hosts found yet (see `status.message`).
    Pending,
    /// Hosts are reserved for a future start.
    Scheduled,
    /// The window started; hosts are being reimaged.
    Provisioning,
    /// Every host runs the image.
    Ready,
    /// The window ended (or the request was deleted); hosts are being powered off.
    Releasing,
    /// Every host is back in the pool.
    Released,
    /// The request cannot be served; see the conditions.
    Failed,
}

/// One host assigned to a role.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct AssignedHost {
    /// The role the host fills.
    pub role: String,
    /// Name of the LabHost.
    pub host: String,
    /// The hostname the host was given (`<role>-<n>`, from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// MAC addresses of the host's network interfaces, from its inventory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mac_addresses: Vec<String>,
    /// IP addresses the booted host reported (phone-home).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// SSH host public keys the booted host reported, OpenSSH format.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_keys: Vec<String>,
    /// When the host booted the image and reported in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<Time>,
}

impl RoleSpec {
    /// A role of `count` hosts, any host.
    pub fn new(name: impl Into<String>, count: u32) -> Self {
        Self {
            name: name.into(),
            count,
            selector: None,
            profile: None,
            access: None,
        }
    }

    /// The same role, restricted to hosts of `profile`.
    #[must_use]
    pub fn with_profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// The same role, restricted to hosts whose labels include all of `labels`.
    #[must_use]
    pub fn with_match_labels<K: Into<String>, V: Into<String>>(
        mut self,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let selector = self.selector.get_or_insert_with(LabelSelector::default);
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .extend(labels.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }
}

impl PodRequestSpec {
    /// A request for `roles` booting `image`, starting now, lasting `duration` (e.g. `72h`).
    pub fn new(
        roles: impl IntoIterator<Item = RoleSpec>,
        image: ImageSpec,
        duration: impl Into<String>,
    ) -> Self {
        Self {
            roles: roles.into_iter().collect(),
            image,
            duration: Some(duration.into()),
            ..Self::default()
        }
    }

    /// Total number of hosts asked for, over all roles.
    pub fn host_count(&self) -> u32 {
        self.roles.iter().map(|r| r.count).sum()
    }
}
