//! What the operator needs from a BMC, as a trait it can substitute in its tests.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;
use url::Url;

use crate::credentials::Credentials;
use crate::error::Result;
use crate::tls::TlsOptions;

/// ComputerSystem.PowerState.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum PowerState {
    On,
    Off,
    PoweringOn,
    PoweringOff,
    Paused,
    /// Not reported, or a value this client does not know.
    Unknown,
}

impl PowerState {
    pub(crate) fn parse(value: Option<&str>) -> Self {
        match value {
            Some("On") => Self::On,
            Some("Off") => Self::Off,
            Some("PoweringOn") => Self::PoweringOn,
            Some("PoweringOff") => Self::PoweringOff,
            Some("Paused") => Self::Paused,
            _ => Self::Unknown,
        }
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a reset should achieve; the client picks the ResetType the BMC allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetKind {
    On,
    ForceOff,
    GracefulShutdown,
    ForceRestart,
}

impl ResetKind {
    /// Redfish ResetType values that achieve this, best first.
    pub(crate) fn candidates(self) -> &'static [&'static str] {
        match self {
            Self::On => &["On", "ForceOn"],
            Self::ForceOff => &["ForceOff"],
            Self::GracefulShutdown => &["GracefulShutdown"],
            Self::ForceRestart => &["ForceRestart", "PowerCycle", "GracefulRestart"],
        }
    }
}

/// BootSourceOverrideTarget values the operator uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BootTarget {
    Cd,
    Pxe,
    Hdd,
}

/// BootSourceOverrideEnabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BootEnabled {
    Once,
    Continuous,
}

/// BootSourceOverrideMode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BootMode {
    #[serde(rename = "UEFI")]
    Uefi,
    Legacy,
}

impl BootMode {
    pub(crate) fn as_redfish(self) -> &'static str {
        match self {
            Self::Uefi => "UEFI",
            Self::Legacy => "Legacy",
        }
    }
}

/// Boot override as the BMC reports it (raw strings: vendors add values).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootOverride {
    pub target: Option<String>,
    pub enabled: Option<String>,
    pub mode: Option<String>,
}

/// A virtual media device, by what it is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Medium {
    /// The CD/DVD drive the OS image boots from.
    Cd,
    /// A USB stick or floppy beside it: where a NoCloud `cidata` seed goes.
    Removable,
}

impl Medium {
    /// The Redfish MediaTypes that make a device this medium.
    pub(crate) fn media_types(self) -> &'static [&'static str] {
        match self {
            Self::Cd => &["CD", "DVD"],
            Self::Removable => &["USBStick", "Floppy"],
        }
    }
}

impl fmt::Display for Medium {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cd => "virtual CD/DVD",
            Self::Removable => "virtual USB stick or floppy",
        })
    }
}

/// What a virtual media device holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaState {
    pub inserted: bool,
    pub image: Option<String>,
}

/// One disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Disk {
    pub name: Option<String>,
    pub model: Option<String>,
    pub capacity_bytes: Option<u64>,
}

/// Hardware facts read from the BMC.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    pub system_id: String,
    pub uuid: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub cpu_count: Option<u32>,
    pub cpu_model: Option<String>,
    pub memory_gib: Option<f64>,
    /// Lower-case, sorted, without duplicates.
    pub nic_macs: Vec<String>,
    /// Empty when the BMC does not report storage.
    pub disks: Vec<Disk>,
}

/// One server's BMC, as the operator drives it.
pub trait Bmc: Send + Sync + fmt::Debug {
    fn power_state(&self) -> BoxFuture<'_, Result<PowerState>>;
    fn reset(&self, kind: ResetKind) -> BoxFuture<'_, Result<()>>;
    /// BootProgress.LastState; None when the BMC does not report it.
    fn boot_progress(&self) -> BoxFuture<'_, Result<Option<String>>>;
    fn boot_override(&self) -> BoxFuture<'_, Result<BootOverride>>;
    fn set_boot_override(
        &self,
        target: BootTarget,
        enabled: BootEnabled,
        mode: BootMode,
    ) -> BoxFuture<'_, Result<()>>;
    /// Whether the BMC has a device for `medium` (many have only the CD).
    fn has_medium(&self, medium: Medium) -> BoxFuture<'_, Result<bool>>;
    fn insert_media_on<'a>(&'a self, medium: Medium, image: &'a Url) -> BoxFuture<'a, Result<()>>;
    /// Succeeds when nothing is inserted.
    fn eject_media_on(&self, medium: Medium) -> BoxFuture<'_, Result<()>>;
    fn media_state_on(&self, medium: Medium) -> BoxFuture<'_, Result<MediaState>>;
    /// [`Bmc::insert_media_on`] the CD.
    fn insert_media<'a>(&'a self, image: &'a Url) -> BoxFuture<'a, Result<()>> {
        self.insert_media_on(Medium::Cd, image)
    }
    /// [`Bmc::eject_media_on`] the CD.
    fn eject_media(&self) -> BoxFuture<'_, Result<()>> {
        self.eject_media_on(Medium::Cd)
    }
    /// [`Bmc::media_state_on`] the CD.
    fn media_state(&self) -> BoxFuture<'_, Result<MediaState>> {
        self.media_state_on(Medium::Cd)
    }
    fn inventory(&self) -> BoxFuture<'_, Result<Inventory>>;
    /// Ends the session with the BMC (shared by all systems behind the same endpoint).
    fn logout(&self) -> BoxFuture<'_, Result<()>>;
}

/// Where a BMC is and how to talk to it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BmcTarget {
    pub endpoint: Url,
    /// Id (or UUID) of the ComputerSystem; optional when the BMC manages exactly one.
    pub system_id: Option<String>,
    pub credentials: Credentials,
    pub tls: TlsOptions,
}

/// Hands out BMC clients; the operator holds one, tests substitute their own.
pub trait BmcConnector: Send + Sync + fmt::Debug {
    /// The client for a target, shared by everyone asking for the same target.
    fn connect<'a>(&'a self, target: &'a BmcTarget) -> BoxFuture<'a, Result<Arc<dyn Bmc>>>;
    /// Drops the target's clients and logs out their session (credentials rotated).
    fn disconnect<'a>(&'a self, target: &'a BmcTarget) -> BoxFuture<'a, Result<()>>;
    /// Logs out of every BMC session (on shutdown); returns how many logouts failed.
    fn logout_all(&self) -> BoxFuture<'_, usize>;
}
