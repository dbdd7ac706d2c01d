//! LabHost: one physical server of the lab, driven through its Redfish BMC.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::SecretReference;
use crate::patterns;

/// Label naming the lab (site) a host is in.
pub const LABEL_LAB: &str = "labpods.dev/lab";
/// Label naming the rack a host is in.
pub const LABEL_RACK: &str = "labpods.dev/rack";
/// Label naming a host's hardware profile (same value as `spec.profile`).
pub const LABEL_PROFILE: &str = "labpods.dev/profile";
/// Label naming a host's CPU architecture, spelled as [`Arch`] serializes.
pub const LABEL_ARCH: &str = "labpods.dev/arch";

/// Most logical CPUs `spec.hardware.cpus` may declare (the largest servers today have under
/// 2,000): a bound keeps every stored value decodable and every sum over a lab in range.
pub const MAX_CPUS: u32 = 16_384;
/// Most memory `spec.hardware.memoryGiB` may declare: 64 TiB (the largest servers today hold
/// 32 TiB).
pub const MAX_MEMORY_GIB: u32 = 65_536;

/// One bare-metal server of the lab, reached through its Redfish BMC.
///
/// Cluster-scoped. Lab operators register hosts; the operator discovers their inventory,
/// claims them for Leases and (re)provisions them. PodRequests choose hosts by the LabHost's
/// labels, so label every host with:
///
/// * `labpods.dev/lab` ([`LABEL_LAB`]): the lab (site) the host is in,
/// * `labpods.dev/rack` ([`LABEL_RACK`]): its rack,
/// * `labpods.dev/profile` ([`LABEL_PROFILE`]): its hardware profile (same as `spec.profile`),
/// * `labpods.dev/arch` ([`LABEL_ARCH`]): its CPU architecture (`x86_64`, `aarch64`, ...).
// kube's `printcolumn(...)` repeats keys by design; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "labpods.dev",
    version = "v1alpha1",
    kind = "LabHost",
    status = "LabHostStatus",
    shortname = "lh",
    category = "lab",
    derive = "PartialEq",
    derive = "Default",
    doc = "One bare-metal server of the lab, driven through its Redfish BMC. Cluster-scoped; PodRequests select hosts by the labels labpods.dev/lab, labpods.dev/rack, labpods.dev/profile and labpods.dev/arch.",
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.state",
        description = "Lifecycle state of the host"
    ),
    printcolumn(
        name = "Power",
        type_ = "string",
        json_path = ".status.power",
        description = "Power state reported by the BMC"
    ),
    printcolumn(
        name = "Profile",
        type_ = "string",
        json_path = ".spec.profile",
        description = "Hardware profile"
    ),
    printcolumn(
        name = "Claimed-By",
        type_ = "string",
        json_path = ".spec.claimRef.name",
        description = "PodRequest holding the host"
    ),
    printcolumn(
        name = "Claim-Namespace",
        type_ = "string",
        json_path = ".spec.claimRef.namespace",
        description = "Namespace of the PodRequest holding the host",
        priority = 1
    ),
    printcolumn(
        name = "BMC",
        type_ = "string",
        json_path = ".spec.bmc.address",
        description = "Redfish endpoint",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct LabHostSpec {
    /// How to reach and authenticate to the host's Redfish BMC.
    pub bmc: BmcSpec,
    /// Firmware boot mode used when booting the image: `UEFI` (default) or `Legacy` (BIOS).
    #[serde(default)]
    pub boot_mode: BootMode,
    /// Hardware profile name (a DNS label such as `x86-small`); PodRequest roles may ask for a
    /// profile instead of, or in addition to, a label selector.
    #[schemars(pattern(patterns::DNS_LABEL), length(min = 1, max = 63))]
    pub profile: String,
    /// Facts about the hardware declared by the lab operator; the inventory the operator reads
    /// from Redfish is in `status.inventory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<HardwareFacts>,
    /// Set to true to take the host out of the pool: it is never newly claimed, and a claimed
    /// host finishes its current Lease first.
    #[serde(default)]
    pub maintenance: bool,
    /// The booking this host is bound to. Set and cleared only by the operator (like a
    /// PersistentVolume's claimRef); do not edit it by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_ref: Option<ClaimRef>,
}

/// Where the BMC is and how to talk to it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BmcSpec {
    /// Redfish service URL of the BMC, e.g. `https://10.0.0.21` or `http://127.0.0.1:9101`;
    /// `/redfish/v1` is appended by the client.
    #[schemars(pattern(patterns::BMC_URL), length(max = 2048))]
    pub address: String,
    /// Id of the ComputerSystem to manage (`/redfish/v1/Systems/<id>`); when absent the BMC
    /// must expose exactly one system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub system_id: Option<String>,
    /// Secret holding the BMC login in the keys `username` and `password`.
    pub credentials_secret_ref: SecretReference,
    /// TLS verification settings for `https://` addresses; ignored for `http://`.
    #[serde(default)]
    pub tls: BmcTls,
}

/// How the BMC's TLS certificate is verified. Set at most one of the three fields; with none
/// the certificate must chain to the system roots and name the address.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BmcTls {
    /// Secret holding a PEM bundle (key `ca.crt`) of the CA(s) that signed the BMC's
    /// certificate, or of the BMC's own self-signed certificate: a certificate presented
    /// byte-for-byte as in the bundle is accepted whatever its name and dates; any other must
    /// chain to a CA in the bundle and name the address. When absent the system roots are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_secret_ref: Option<SecretReference>,
    /// Pin the BMC's certificate by the SHA-256 fingerprint of its DER encoding: 64 hex
    /// digits, optionally colon-separated as `openssl x509 -noout -fingerprint -sha256`
    /// prints them. Exactly that certificate is accepted, whatever its name and dates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 95))]
    pub certificate_sha256: Option<String>,
    /// Accept any certificate. Many BMCs ship self-signed certificates; this explicit opt-in
    /// exposes the BMC password to anyone on the path, so prefer pinning the certificate.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Firmware boot mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum BootMode {
    /// UEFI boot.
    #[default]
    #[serde(rename = "UEFI")]
    Uefi,
    /// BIOS (legacy) boot.
    Legacy,
}

/// CPU architecture, spelled as the kernel does: x86_64, aarch64, ppc64le or s390x.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Arch {
    /// 64-bit x86.
    #[serde(rename = "x86_64")]
    X86_64,
    /// 64-bit Arm.
    #[serde(rename = "aarch64")]
    Aarch64,
    /// 64-bit little-endian POWER.
    #[serde(rename = "ppc64le")]
    Ppc64le,
    /// IBM Z.
    #[serde(rename = "s390x")]
    S390x,
}

/// Hardware facts declared by the lab operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HardwareFacts {
    /// Number of logical CPUs, 1 to 16384.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_CPUS))]
    pub cpus: Option<u32>,
    /// Installed memory in GiB, 1 to 65536.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "memoryGiB")]
    #[schemars(range(min = 1, max = MAX_MEMORY_GIB))]
    pub memory_gib: Option<u32>,
    /// CPU architecture: `x86_64`, `aarch64`, `ppc64le` or `s390x`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
}

/// The booking a host is bound to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRef {
    /// Namespace of the PodRequest.
    #[schemars(length(max = 63))]
    pub namespace: String,
    /// Name of the PodRequest.
    #[schemars(length(max = 253))]
    pub name: String,
    /// UID of the PodRequest, so a re-created request with the same name is not mistaken
    /// for the old one.
    #[schemars(length(max = 128))]
    pub uid: String,
    /// Name of the Lease (in the same namespace) that binds the host.
    #[schemars(length(max = 253))]
    pub lease: String,
}

/// Observed state of a LabHost, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabHostStatus {
    /// Lifecycle state: Registering, Available, Claimed, Provisioning, Provisioned, Releasing,
    /// Maintenance or Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<HostState>,
    /// Power state last read from the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<PowerState>,
    /// Whether the last call to the BMC succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc_reachable: Option<bool>,
    /// Inventory read from Redfish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Inventory>,
    /// URL of the image the host last booted successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_image: Option<String>,
    /// The provisioning or release in progress, stored so a restarted operator resumes at
    /// the same step. Absent when the host is idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning: Option<ProvisioningProgress>,
    /// What the booted OS reported through phone-home for its current booking (addresses and
    /// SSH host keys). Removed when the host is released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<BootReport>,
    /// Start of the provisioning run that booted the current image: the run a phone-home
    /// token stays bound to once the run is done (the OS may report after the BMC said
    /// OSRunning). Removed when the host is released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booted_run: Option<Time>,
    /// Evidence of the host's last completed wipe: its wipe image reported completion with
    /// the token of that release run. Kept after the release, as the record of the wipe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_wipe: Option<WipeReport>,
    /// The last error met while driving the host, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Failures in a row; reset by a success. Too many put the host in Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// The metadata.generation this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions (BmcReachable, Ready, ...), one per type, sorted by type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Lifecycle state of a LabHost: Registering, Available, Claimed, Provisioning, Provisioned,
/// Releasing, Maintenance or Error.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum HostState {
    /// Newly registered; the BMC has not been inventoried yet.
    Registering,
    /// In the pool, free to be claimed.
    Available,
    /// Bound to a Lease, waiting for its start.
    Claimed,
    /// Being powered, reimaged and booted for its Lease.
    Provisioning,
    /// Booted with the Lease's image and handed to the user.
    Provisioned,
    /// Being powered off (and wiped) after its Lease.
    Releasing,
    /// Out of the pool on the lab operator's request (`spec.maintenance`).
    Maintenance,
    /// Failed repeatedly; see `status.lastError`. Never newly claimed.
    Error,
}

/// Power state as reported by Redfish: On, Off, PoweringOn, PoweringOff or Unknown.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PowerState {
    /// Powered on.
    On,
    /// Powered off.
    Off,
    /// Transitioning to on.
    PoweringOn,
    /// Transitioning to off.
    PoweringOff,
    /// The BMC did not say.
    Unknown,
}

/// A wipe image's completion report (its phone-home with the release run's token).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WipeReport {
    /// Start of the release run the wipe belonged to.
    pub run: Time,
    /// The name of the Lease whose release ran the wipe, or empty for a release a lab admin
    /// asked for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 253))]
    pub lease: String,
    /// cloud-init's instance-id of the wipe, as its seed gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub instance_id: Option<String>,
    /// When the report arrived.
    pub at: Time,
}

/// A booted host's phone-home report, accepted only with the token of the current run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootReport {
    /// The Lease (`namespace/name`) whose run the report belongs to.
    #[schemars(length(max = 317))]
    pub lease: String,
    /// cloud-init's instance-id, as the seed gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub instance_id: Option<String>,
    /// The hostname the host reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub hostname: Option<String>,
    /// IP addresses the host reported from (the callback's source address first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 64)))]
    pub addresses: Vec<String>,
    /// SSH host public keys, OpenSSH format (`ssh-ed25519 AAAA...`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(max = 4096)))]
    pub host_keys: Vec<String>,
    /// When the report arrived.
    pub at: Time,
}

/// Hardware inventory read from Redfish.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    /// System manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// System model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// System serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Number of CPU sockets' logical processors, as Redfish ProcessorSummary.Count reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_count: Option<u32>,
    /// CPU model string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    /// Total memory in GiB.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "memoryGiB")]
    pub memory_gib: Option<u32>,
    /// MAC addresses of the network interfaces, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mac_addresses: Vec<String>,
    /// Disks, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<Disk>,
}

/// One disk of the inventory.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Disk {
    /// Name of the drive as the BMC reports it.
    pub name: String,
    /// Capacity in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<i64>,
    /// Media type, e.g. `SSD` or `HDD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// Which long-running operation a host is going through: Provision or Release.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Operation {
    /// Booting the Lease's image.
    Provision,
    /// Powering off (and wiping) after the Lease.
    Release,
}

/// A step of the provisioning/release state machine. Every step is idempotent, so a restarted
/// operator re-runs the stored step safely.
///
/// Provision: PowerOff, WaitPoweredOff, EjectMedia, InsertMedia, SetBootOnce, PowerOn,
/// WaitBooted, EjectAfterBoot, Done. Release: PowerOff, WaitPoweredOff, EjectMedia, then with a
/// wipe image WipeInsertMedia, WipeBoot, WaitWiped, PowerOff, WaitPoweredOff, EjectMedia; Done.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum ProvisioningStep {
    /// Ask the BMC to power off (graceful first, forced after a timeout).
    PowerOff,
    /// Wait until the BMC reports power Off.
    WaitPoweredOff,
    /// Eject any virtual media.
    EjectMedia,
    /// Insert the Lease's image as virtual media.
    InsertMedia,
    /// Set the one-time boot override to the virtual CD.
    SetBootOnce,
    /// Power on.
    PowerOn,
    /// Wait for the OS to come up (BootProgress OSRunning, phone-home, or timeout).
    WaitBooted,
    /// Eject the image once the OS runs, so a reboot boots from disk.
    EjectAfterBoot,
    /// Finished.
    Done,
    /// Release: insert the wipe image.
    WipeInsertMedia,
    /// Release: boot the wipe image once.
    WipeBoot,
    /// Release: wait for the wipe to finish and the host to power off.
    WaitWiped,
}

/// The resumable record of a provisioning or release in progress.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProvisioningProgress {
    /// Provision or Release.
    pub operation: Operation,
    /// The current step; it has not completed yet.
    pub step: ProvisioningStep,
    /// URL of the image being booted (Provision) or of the wipe image (Release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Attempts made at the current step (1 for the first).
    #[serde(default)]
    pub attempts: u32,
    /// When the operation started.
    pub started_at: Time,
    /// When the current step started; bounds the step's timeout.
    pub step_started_at: Time,
    /// Name of the Lease the operation serves.
    pub lease: String,
}

impl LabHostSpec {
    /// A host with the given BMC address and profile, credentials from Secret
    /// `namespace/secret`; other fields at their defaults.
    pub fn new(
        address: impl Into<String>,
        profile: impl Into<String>,
        credentials: SecretReference,
    ) -> Self {
        Self {
            bmc: BmcSpec {
                address: address.into(),
                system_id: None,
                credentials_secret_ref: credentials,
                tls: BmcTls::default(),
            },
            profile: profile.into(),
            ..Self::default()
        }
    }

    /// The same host, managing ComputerSystem `id`.
    #[must_use]
    pub fn with_system_id(mut self, id: impl Into<String>) -> Self {
        self.bmc.system_id = Some(id.into());
        self
    }
}
