//! Wire types: only the properties the client reads. Unknown properties are ignored (serde's
//! default) so vendor trees with Oem sections and newer schema versions parse.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Link {
    #[serde(rename = "@odata.id")]
    pub odata_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ServiceRoot {
    pub systems: Option<Link>,
    pub session_service: Option<Link>,
    pub links: Option<ServiceRootLinks>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ServiceRootLinks {
    pub sessions: Option<Link>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Collection {
    #[serde(rename = "Members", default)]
    pub members: Vec<Link>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ComputerSystem {
    pub id: Option<String>,
    #[serde(rename = "UUID")]
    pub uuid: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub power_state: Option<String>,
    pub boot: Option<Boot>,
    pub boot_progress: Option<BootProgress>,
    pub processor_summary: Option<ProcessorSummary>,
    pub memory_summary: Option<MemorySummary>,
    pub ethernet_interfaces: Option<Link>,
    pub simple_storage: Option<Link>,
    pub storage: Option<Link>,
    pub virtual_media: Option<Link>,
    pub links: Option<SystemLinks>,
    pub actions: Option<SystemActions>,
    #[serde(rename = "@odata.etag")]
    pub etag: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Boot {
    pub boot_source_override_target: Option<String>,
    pub boot_source_override_enabled: Option<String>,
    pub boot_source_override_mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BootProgress {
    pub last_state: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ProcessorSummary {
    pub count: Option<u32>,
    pub model: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MemorySummary {
    #[serde(rename = "TotalSystemMemoryGiB")]
    pub total_system_memory_gib: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SystemLinks {
    #[serde(default)]
    pub managed_by: Vec<Link>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SystemActions {
    #[serde(rename = "#ComputerSystem.Reset")]
    pub reset: Option<ResetAction>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ResetAction {
    pub target: String,
    #[serde(rename = "ResetType@Redfish.AllowableValues")]
    pub allowable_values: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Manager {
    pub virtual_media: Option<Link>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EthernetInterface {
    #[serde(rename = "MACAddress")]
    pub mac_address: Option<String>,
    #[serde(rename = "PermanentMACAddress")]
    pub permanent_mac_address: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SimpleStorage {
    #[serde(default)]
    pub devices: Vec<SimpleStorageDevice>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SimpleStorageDevice {
    pub name: Option<String>,
    pub model: Option<String>,
    pub capacity_bytes: Option<u64>,
    pub status: Option<Status>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Storage {
    #[serde(default)]
    pub drives: Vec<Link>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Drive {
    pub id: Option<String>,
    pub name: Option<String>,
    pub model: Option<String>,
    pub capacity_bytes: Option<u64>,
    pub status: Option<Status>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Status {
    pub state: Option<String>,
}

impl Status {
    /// Redfish marks empty bays as `Absent`.
    pub fn is_absent(status: Option<&Status>) -> bool {
        status.and_then(|s| s.state.as_deref()) == Some("Absent")
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct VirtualMedia {
    #[serde(default)]
    pub media_types: Vec<String>,
    pub image: Option<String>,
    pub inserted: Option<bool>,
    pub actions: Option<VirtualMediaActions>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct VirtualMediaActions {
    #[serde(rename = "#VirtualMedia.InsertMedia")]
    pub insert: Option<ActionTarget>,
    #[serde(rename = "#VirtualMedia.EjectMedia")]
    pub eject: Option<ActionTarget>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ActionTarget {
    pub target: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Task {
    pub task_state: Option<String>,
    #[serde(default)]
    pub messages: Vec<Message>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Message {
    pub message: Option<String>,
}

/// `{"error": {"message": ..., "@Message.ExtendedInfo": [{"Message": ...}]}}`
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorDetail {
    pub message: Option<String>,
    #[serde(rename = "@Message.ExtendedInfo", default)]
    pub extended: Vec<Message>,
}

impl ErrorBody {
    /// The most specific human message in a Redfish error body, at most
    /// [`MAX_BMC_MESSAGE_CHARS`] characters of it: it ends up in status and Events.
    pub fn summary(body: &[u8]) -> String {
        let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
            return String::from_utf8_lossy(body).chars().take(200).collect();
        };
        let message = parsed
            .error
            .extended
            .into_iter()
            .find_map(|m| m.message)
            .or(parsed.error.message)
            .unwrap_or_default();
        bounded(message)
    }
}

/// Most characters of one message from a BMC kept in an error.
pub(crate) const MAX_BMC_MESSAGE_CHARS: usize = 500;

/// `text` cut to [`MAX_BMC_MESSAGE_CHARS`] characters, marked when cut.
pub(crate) fn bounded(text: String) -> String {
    match text.char_indices().nth(MAX_BMC_MESSAGE_CHARS) {
        Some((end, _)) => format!("{} (truncated)", &text[..end]),
        None => text,
    }
}
