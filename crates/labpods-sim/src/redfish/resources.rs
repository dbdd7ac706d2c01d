//! The JSON of each Redfish resource, following the DMTF schemas in tests/data/redfish/csdl.
//! Inventory is derived from the host index, so it is stable across runs.

use serde_json::{Value, json};

use crate::model::{BOOT_ENABLED, BOOT_MODES, BOOT_TARGETS, Bmc, Device, HostState, RESET_TYPES};

use super::{CHASSIS, CPU_COUNT, MANAGER, MEMORY_GIB, SYSTEM, SYSTEM_ID};

/// Identity of the simulated server behind host `index`.
pub(crate) struct Identity {
    pub index: usize,
}

impl Identity {
    pub fn serial(&self) -> String {
        format!("LPSIM{:06}", self.index)
    }

    pub fn uuid(&self) -> String {
        format!("4c504f44-0000-4000-8000-{:012x}", self.index)
    }

    pub fn service_uuid(&self) -> String {
        format!("4c504f44-0000-4000-9000-{:012x}", self.index)
    }

    /// Locally administered MACs: 02:1a:<index, 3 bytes>:<nic>.
    pub fn mac(&self, nic: u8) -> String {
        let i = self.index;
        format!(
            "02:1a:{:02x}:{:02x}:{:02x}:{:02x}",
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff,
            nic
        )
    }
}

pub(crate) const NICS: [u8; 2] = [1, 2];

fn id(path: &str) -> Value {
    json!({ "@odata.id": path })
}

fn ok() -> Value {
    json!({ "State": "Enabled", "Health": "OK" })
}

pub(crate) fn collection(path: &str, odata_type: &str, name: &str, members: &[String]) -> Value {
    json!({
        "@odata.id": path,
        "@odata.type": format!("#{odata_type}.{odata_type}"),
        "Name": name,
        "Members@odata.count": members.len(),
        "Members": members.iter().map(|m| id(m)).collect::<Vec<_>>(),
    })
}

pub(crate) fn service_root(who: &Identity) -> Value {
    json!({
        "@odata.id": "/redfish/v1/",
        "@odata.type": "#ServiceRoot.v1_15_0.ServiceRoot",
        "Id": "RootService",
        "Name": "labpods simulated BMC",
        "RedfishVersion": "1.15.0",
        "UUID": who.service_uuid(),
        "Vendor": "labpods",
        "Product": "labpods-sim",
        "Systems": id("/redfish/v1/Systems"),
        "Managers": id("/redfish/v1/Managers"),
        "Chassis": id("/redfish/v1/Chassis"),
        "SessionService": id("/redfish/v1/SessionService"),
        "Links": { "Sessions": id("/redfish/v1/SessionService/Sessions") },
    })
}

pub(crate) fn system(who: &Identity, bmc: &Bmc, state: &HostState) -> Value {
    let boot = bmc.boot_override();
    json!({
        "@odata.id": SYSTEM,
        "@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem",
        "@odata.etag": bmc.etag(),
        "Id": SYSTEM_ID,
        "Name": format!("sim-{:05}", who.index),
        "SystemType": "Physical",
        "Manufacturer": "labpods",
        "Model": "SimServer 1000",
        "SerialNumber": who.serial(),
        "UUID": who.uuid(),
        "PowerState": state.power_state,
        "BootProgress": { "LastState": state.boot_progress },
        "Boot": {
            "BootSourceOverrideTarget": boot.boot_source_override_target,
            "BootSourceOverrideTarget@Redfish.AllowableValues": BOOT_TARGETS,
            "BootSourceOverrideEnabled": boot.boot_source_override_enabled,
            "BootSourceOverrideEnabled@Redfish.AllowableValues": BOOT_ENABLED,
            "BootSourceOverrideMode": boot.boot_source_override_mode,
            "BootSourceOverrideMode@Redfish.AllowableValues": BOOT_MODES,
        },
        "ProcessorSummary": { "Count": CPU_COUNT, "Model": "Simulated Xeon 16-core" },
        "MemorySummary": { "TotalSystemMemoryGiB": MEMORY_GIB },
        "Status": ok(),
        "EthernetInterfaces": id(&format!("{SYSTEM}/EthernetInterfaces")),
        "Storage": id(&format!("{SYSTEM}/Storage")),
        "Links": {
            "Chassis": [id(CHASSIS)],
            "ManagedBy": [id(MANAGER)],
        },
        "Actions": {
            "#ComputerSystem.Reset": {
                "target": format!("{SYSTEM}/Actions/ComputerSystem.Reset"),
                "ResetType@Redfish.AllowableValues": RESET_TYPES,
            }
        },
    })
}

pub(crate) fn ethernet_interface(who: &Identity, nic: u8) -> Value {
    json!({
        "@odata.id": format!("{SYSTEM}/EthernetInterfaces/{nic}"),
        "@odata.type": "#EthernetInterface.v1_9_0.EthernetInterface",
        "Id": nic.to_string(),
        "Name": format!("NIC {nic}"),
        "MACAddress": who.mac(nic),
        "PermanentMACAddress": who.mac(nic),
        "SpeedMbps": 25000,
        "LinkStatus": "LinkUp",
        "Status": ok(),
    })
}

pub(crate) fn storage() -> Value {
    json!({
        "@odata.id": format!("{SYSTEM}/Storage/1"),
        "@odata.type": "#Storage.v1_15_0.Storage",
        "Id": "1",
        "Name": "NVMe storage",
        "Drives@odata.count": 1,
        "Drives": [id(&format!("{SYSTEM}/Storage/1/Drives/1"))],
        "Status": ok(),
    })
}

pub(crate) fn drive(who: &Identity) -> Value {
    json!({
        "@odata.id": format!("{SYSTEM}/Storage/1/Drives/1"),
        "@odata.type": "#Drive.v1_17_0.Drive",
        "Id": "1",
        "Name": "Boot disk",
        "CapacityBytes": 960_197_124_096_u64,
        "MediaType": "SSD",
        "Protocol": "NVMe",
        "Model": "SimDisk 960",
        "SerialNumber": format!("{}-D1", who.serial()),
        "Status": ok(),
    })
}

pub(crate) fn chassis(who: &Identity, state: &HostState) -> Value {
    json!({
        "@odata.id": CHASSIS,
        "@odata.type": "#Chassis.v1_22_0.Chassis",
        "Id": "1",
        "Name": format!("Chassis of sim-{:05}", who.index),
        "ChassisType": "RackMount",
        "Manufacturer": "labpods",
        "Model": "SimServer 1000",
        "SerialNumber": who.serial(),
        "PowerState": state.power_state,
        "Status": ok(),
        "Links": {
            "ComputerSystems": [id(SYSTEM)],
            "ManagedBy": [id(MANAGER)],
        },
    })
}

pub(crate) fn manager(who: &Identity) -> Value {
    json!({
        "@odata.id": MANAGER,
        "@odata.type": "#Manager.v1_17_0.Manager",
        "Id": "1",
        "Name": "Simulated BMC",
        "ManagerType": "BMC",
        "FirmwareVersion": env!("CARGO_PKG_VERSION"),
        "UUID": who.service_uuid(),
        "PowerState": "On",
        "Status": ok(),
        "VirtualMedia": id(&format!("{MANAGER}/VirtualMedia")),
        "Links": {
            "ManagerForServers": [id(SYSTEM)],
            "ManagerForChassis": [id(CHASSIS)],
        },
    })
}

pub(crate) fn virtual_media(state: &HostState, device: Device) -> Value {
    let (media, name, types) = match device {
        Device::Cd => (&state.media, "Virtual CD", ["CD", "DVD"].as_slice()),
        Device::UsbStick => (
            &state.usb_stick,
            "Virtual USB stick",
            ["USBStick"].as_slice(),
        ),
    };
    let base = format!("{MANAGER}/VirtualMedia/{}", device.id());
    let image_name = media.image.as_deref().and_then(|i| i.rsplit('/').next());
    json!({
        "@odata.id": base,
        "@odata.type": "#VirtualMedia.v1_6_0.VirtualMedia",
        "Id": device.id(),
        "Name": name,
        "MediaTypes": types,
        "Image": media.image,
        "ImageName": image_name,
        "Inserted": media.inserted,
        "WriteProtected": media.write_protected,
        "ConnectedVia": if media.inserted { "URI" } else { "NotConnected" },
        "TransferMethod": "Stream",
        "Actions": {
            "#VirtualMedia.InsertMedia": { "target": format!("{base}/Actions/VirtualMedia.InsertMedia") },
            "#VirtualMedia.EjectMedia": { "target": format!("{base}/Actions/VirtualMedia.EjectMedia") },
        },
    })
}

pub(crate) fn session_service(timeout_secs: u64) -> Value {
    json!({
        "@odata.id": "/redfish/v1/SessionService",
        "@odata.type": "#SessionService.v1_1_8.SessionService",
        "Id": "SessionService",
        "Name": "Session Service",
        "ServiceEnabled": true,
        "SessionTimeout": timeout_secs,
        "Status": ok(),
        "Sessions": id("/redfish/v1/SessionService/Sessions"),
    })
}

pub(crate) fn session(id: u32, user: &str) -> Value {
    json!({
        "@odata.id": format!("/redfish/v1/SessionService/Sessions/{id}"),
        "@odata.type": "#Session.v1_5_0.Session",
        "Id": id.to_string(),
        "Name": "User session",
        "UserName": user,
    })
}

/// A running Task, as returned with 202 and by its monitor until it completes.
pub(crate) fn task(id: u32) -> Value {
    json!({
        "@odata.id": format!("/redfish/v1/TaskService/Tasks/{id}"),
        "@odata.type": "#Task.v1_7_0.Task",
        "Id": id.to_string(),
        "Name": "Action task",
        "TaskState": "Running",
        "TaskStatus": "OK",
        "TaskMonitor": format!("/redfish/v1/TaskService/TaskMonitors/{id}"),
    })
}
