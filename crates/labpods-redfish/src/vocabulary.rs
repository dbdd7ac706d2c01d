//! The BMC vocabulary: power states, reset kinds, boot overrides, media and inventory.
//! Plain data, built without the client (`default-features = false`), so the operator's
//! pure provisioning state machines speak it without an HTTP stack.

use std::fmt;

use serde::Serialize;

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
    #[cfg(feature = "client")]
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
    #[cfg(feature = "client")]
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
    #[cfg(feature = "client")]
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
    #[cfg(feature = "client")]
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
