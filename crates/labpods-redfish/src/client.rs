//! The Redfish implementation of [`Bmc`] for one ComputerSystem.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::Method;
use serde_json::json;
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;
use url::Url;

use crate::bmc::Bmc;
use crate::error::{Error, Result};
use crate::model::{
    ComputerSystem, Drive, EthernetInterface, Manager, SimpleStorage, Status, Storage, VirtualMedia,
};
use crate::transport::Transport;
use crate::vocabulary::{
    BootEnabled, BootMode, BootOverride, BootTarget, Disk, Inventory, MediaState, Medium,
    PowerState, ResetKind,
};

/// A virtual media device and its actions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MediaDevice {
    path: String,
    insert: String,
    eject: String,
}

/// The devices found for each medium.
#[derive(Debug, Default)]
pub(crate) struct MediaDevices {
    cd: Option<MediaDevice>,
    removable: Option<MediaDevice>,
}

impl MediaDevices {
    fn get(&self, medium: Medium) -> Option<&MediaDevice> {
        match medium {
            Medium::Cd => self.cd.as_ref(),
            Medium::Removable => self.removable.as_ref(),
        }
    }
}

/// A device as discovered: its path, MediaTypes, and Insert/Eject targets when advertised.
pub(crate) type Found = (String, Vec<String>, Option<(String, String)>);

/// Picks a device per medium from (path, MediaTypes, Insert/Eject targets) in discovery
/// order: the first device of the medium's types that advertises both actions; failing that,
/// the first of those types at all, with the action URIs the spec prescribes (some trees
/// omit them). A device that is a CD is the CD only, whatever else it lists (one slot cannot
/// hold the image and the seed).
pub(crate) fn choose_devices(found: &[Found]) -> MediaDevices {
    let pick = |medium: Medium| {
        let of_medium = |types: &[String]| {
            let is = |m: Medium| types.iter().any(|t| m.media_types().contains(&t.as_str()));
            match medium {
                Medium::Cd => is(Medium::Cd),
                Medium::Removable => is(Medium::Removable) && !is(Medium::Cd),
            }
        };
        let candidates = || found.iter().filter(|(_, types, _)| of_medium(types));
        candidates()
            .find_map(|(path, _, actions)| {
                actions.as_ref().map(|(insert, eject)| MediaDevice {
                    path: path.clone(),
                    insert: insert.clone(),
                    eject: eject.clone(),
                })
            })
            .or_else(|| {
                candidates().next().map(|(path, _, _)| {
                    let base = path.trim_end_matches('/');
                    MediaDevice {
                        insert: format!("{base}/Actions/VirtualMedia.InsertMedia"),
                        eject: format!("{base}/Actions/VirtualMedia.EjectMedia"),
                        path: path.clone(),
                    }
                })
            })
    };
    MediaDevices {
        cd: pick(Medium::Cd),
        removable: pick(Medium::Removable),
    }
}

/// One ComputerSystem behind a BMC endpoint.
#[derive(Debug)]
pub struct RedfishClient {
    transport: Arc<Transport>,
    system_id: String,
    system_path: String,
    reset_target: String,
    allowed_resets: Option<Vec<String>>,
    /// VirtualMedia collections to search, the System's first (no extra call), then Managers'.
    media_collections: Vec<MediaCollection>,
    media_devices: OnceCell<MediaDevices>,
    /// When the last power action was sent; held during an action to serialize them.
    last_power_action: Mutex<Option<Instant>>,
}

#[derive(Debug)]
enum MediaCollection {
    Known(String),
    UnderManager(String),
}

impl RedfishClient {
    /// Discovers the system (by Id or UUID, or the only one) behind an endpoint.
    pub(crate) async fn discover(
        transport: Arc<Transport>,
        system_id: Option<&str>,
    ) -> Result<Self> {
        let root = transport.service_root().await?;
        let systems = root
            .systems
            .ok_or_else(|| Error::Unsupported("a Systems collection".into()))?;
        let paths = transport.members(&systems.odata_id).await?;
        let (system_path, system) = find_system(&transport, paths, system_id).await?;

        let reset = system.actions.and_then(|a| a.reset);
        let mut media_collections: Vec<MediaCollection> = system
            .virtual_media
            .map(|l| MediaCollection::Known(l.odata_id))
            .into_iter()
            .collect();
        media_collections.extend(
            system
                .links
                .map(|l| l.managed_by)
                .unwrap_or_default()
                .into_iter()
                .map(|l| MediaCollection::UnderManager(l.odata_id)),
        );
        Ok(Self {
            system_id: system
                .id
                .unwrap_or_else(|| last_segment(&system_path).to_owned()),
            reset_target: reset.as_ref().map_or_else(
                || format!("{system_path}/Actions/ComputerSystem.Reset"),
                |r| r.target.clone(),
            ),
            allowed_resets: reset.and_then(|r| r.allowable_values),
            system_path,
            media_collections,
            media_devices: OnceCell::new(),
            last_power_action: Mutex::new(None),
            transport,
        })
    }

    pub fn system_id(&self) -> &str {
        &self.system_id
    }

    /// HTTP requests sent to this client's endpoint so far (shared by its systems).
    pub fn requests_sent(&self) -> u64 {
        self.transport.requests_sent()
    }

    async fn system(&self) -> Result<(ComputerSystem, Option<String>)> {
        self.transport.get(&self.system_path).await
    }

    async fn do_reset(&self, kind: ResetKind) -> Result<()> {
        let reset_type = choose_reset_type(kind, self.allowed_resets.as_deref())?;
        let mut last = self.last_power_action.lock().await;
        if let Some(previous) = *last {
            tokio::time::sleep_until(previous + self.transport.policy().min_power_action_interval)
                .await;
        }
        let result = self
            .transport
            .act(
                Method::POST,
                &self.reset_target,
                &json!({ "ResetType": reset_type }),
                None,
            )
            .await;
        *last = Some(Instant::now());
        result.map(drop)
    }

    async fn do_set_boot_override(
        &self,
        target: BootTarget,
        enabled: BootEnabled,
        mode: BootMode,
    ) -> Result<()> {
        let body = json!({ "Boot": {
            "BootSourceOverrideTarget": format!("{target:?}"),
            "BootSourceOverrideEnabled": format!("{enabled:?}"),
            "BootSourceOverrideMode": mode.as_redfish(),
        }});
        let mut conflicts = 0;
        loop {
            let (system, header_etag) = self.system().await?;
            let etag = header_etag.or(system.etag);
            match self
                .transport
                .act(Method::PATCH, &self.system_path, &body, etag.as_deref())
                .await
            {
                // Someone changed the system between our read and write: read again, once.
                Err(Error::Status { status: 412, .. }) if conflicts == 0 => conflicts += 1,
                other => return other.map(drop),
            }
        }
    }

    async fn devices(&self) -> Result<&MediaDevices> {
        self.media_devices
            .get_or_try_init(|| self.find_media_devices())
            .await
    }

    async fn media(&self, medium: Medium) -> Result<&MediaDevice> {
        self.devices()
            .await?
            .get(medium)
            .ok_or_else(|| Error::Unsupported(medium.to_string()))
    }

    /// Reads every virtual media device of the system's and its Managers' collections (each
    /// collection bounded by the policy's member limit) and picks one per medium.
    async fn find_media_devices(&self) -> Result<MediaDevices> {
        let mut found = Vec::new();
        for collection in &self.media_collections {
            let path = match collection {
                MediaCollection::Known(path) => path.clone(),
                MediaCollection::UnderManager(manager) => {
                    match self
                        .transport
                        .get::<Manager>(manager)
                        .await?
                        .0
                        .virtual_media
                    {
                        Some(link) => link.odata_id,
                        None => continue,
                    }
                }
            };
            for member in self.transport.members(&path).await? {
                let (device, _) = self.transport.get::<VirtualMedia>(&member).await?;
                let actions = match device.actions.map(|a| (a.insert, a.eject)) {
                    Some((Some(insert), Some(eject))) => Some((insert.target, eject.target)),
                    _ => None,
                };
                found.push((member, device.media_types, actions));
            }
        }
        Ok(choose_devices(&found))
    }

    async fn do_media_state(&self, medium: Medium) -> Result<MediaState> {
        let device = self.media(medium).await?;
        let (media, _) = self.transport.get::<VirtualMedia>(&device.path).await?;
        Ok(MediaState {
            inserted: media.inserted.unwrap_or(false),
            image: media.image.filter(|i| !i.is_empty()),
        })
    }

    async fn do_insert_media(&self, medium: Medium, image: &Url) -> Result<()> {
        if !image.username().is_empty() || image.password().is_some() {
            // The BMC would log them, and so would anyone reporting this call.
            return Err(Error::InvalidImageUrl(
                "credentials in the URL (user:password@) are refused: serve the image \
                 without them"
                    .into(),
            ));
        }
        let device = self.media(medium).await?;
        let body = json!({ "Image": image.as_str(), "Inserted": true, "WriteProtected": true });
        self.transport
            .act(Method::POST, &device.insert, &body, None)
            .await
            .map(drop)
    }

    async fn do_eject_media(&self, medium: Medium) -> Result<()> {
        let device = self.media(medium).await?;
        match self
            .transport
            .act(Method::POST, &device.eject, &json!({}), None)
            .await
        {
            Ok(_) => Ok(()),
            // Many BMCs refuse to eject an empty drive; empty is what was asked for.
            Err(
                error @ Error::Status {
                    status: 400..=499, ..
                },
            ) => {
                if self.do_media_state(medium).await?.inserted {
                    Err(error)
                } else {
                    Ok(())
                }
            }
            Err(error) => Err(error),
        }
    }

    async fn do_inventory(&self) -> Result<Inventory> {
        let (system, _) = self.system().await?;
        let mut nic_macs = Vec::new();
        if let Some(link) = &system.ethernet_interfaces {
            for member in self.members(&link.odata_id).await? {
                let (nic, _) = self.transport.get::<EthernetInterface>(&member).await?;
                if let Some(mac) = nic.mac_address.or(nic.permanent_mac_address) {
                    nic_macs.push(mac.to_ascii_lowercase());
                }
            }
        }
        nic_macs.sort();
        nic_macs.dedup();
        Ok(Inventory {
            system_id: self.system_id.clone(),
            disks: self.disks(&system).await?,
            uuid: system.uuid,
            manufacturer: system.manufacturer,
            model: system.model,
            serial_number: system.serial_number,
            cpu_count: system.processor_summary.as_ref().and_then(|p| p.count),
            cpu_model: system.processor_summary.and_then(|p| p.model),
            memory_gib: system
                .memory_summary
                .and_then(|m| m.total_system_memory_gib),
            nic_macs,
        })
    }

    /// Disks from Storage (drives) or, on older trees, SimpleStorage (devices).
    async fn disks(&self, system: &ComputerSystem) -> Result<Vec<Disk>> {
        let mut disks = Vec::new();
        let mut seen = std::collections::HashSet::new();
        if let Some(link) = &system.storage {
            for member in self.members_if_present(&link.odata_id).await? {
                let (storage, _) = self.transport.get::<Storage>(&member).await?;
                for link in storage.drives {
                    // Controllers can share a drive; list it once.
                    if !seen.insert(link.odata_id.clone()) {
                        continue;
                    }
                    let (drive, _) = self.transport.get::<Drive>(&link.odata_id).await?;
                    if !Status::is_absent(drive.status.as_ref()) {
                        disks.push(Disk {
                            name: drive.name.or(drive.id),
                            model: drive.model,
                            capacity_bytes: drive.capacity_bytes,
                        });
                    }
                }
            }
        }
        if disks.is_empty()
            && let Some(link) = &system.simple_storage
        {
            for member in self.members_if_present(&link.odata_id).await? {
                let (storage, _) = self.transport.get::<SimpleStorage>(&member).await?;
                disks.extend(
                    storage
                        .devices
                        .into_iter()
                        .filter(|d| !Status::is_absent(d.status.as_ref()))
                        .map(|d| Disk {
                            name: d.name,
                            model: d.model,
                            capacity_bytes: d.capacity_bytes,
                        }),
                );
            }
        }
        Ok(disks)
    }

    async fn members(&self, collection: &str) -> Result<Vec<String>> {
        self.transport.members(collection).await
    }

    /// Members of a collection the system links to but may not serve (sushy links Storage
    /// even when its driver has none).
    async fn members_if_present(&self, collection: &str) -> Result<Vec<String>> {
        match self.members(collection).await {
            Err(Error::Status {
                status: 404 | 500 | 501,
                ..
            }) => Ok(Vec::new()),
            other => other,
        }
    }
}

async fn find_system(
    transport: &Transport,
    paths: Vec<String>,
    wanted: Option<&str>,
) -> Result<(String, ComputerSystem)> {
    let Some(wanted) = wanted else {
        return match paths.as_slice() {
            [only] => Ok((only.clone(), transport.get(only).await?.0)),
            _ => Err(Error::SystemNotFound(format!(
                "the BMC manages {} systems; give a system id",
                paths.len()
            ))),
        };
    };
    // Cheap first: the id is usually the last path segment.
    if let Some(path) = paths.iter().find(|p| last_segment(p) == wanted) {
        return Ok((path.clone(), transport.get(path).await?.0));
    }
    for path in &paths {
        let (system, _) = transport.get::<ComputerSystem>(path).await?;
        let matches = system.id.as_deref() == Some(wanted)
            || system
                .uuid
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(wanted));
        if matches {
            return Ok((path.clone(), system));
        }
    }
    Err(Error::SystemNotFound(format!(
        "no system with id or UUID {wanted}"
    )))
}

/// The ResetType to send for `kind`: the best candidate the BMC advertises, or the standard
/// value when it advertises nothing.
pub(crate) fn choose_reset_type(
    kind: ResetKind,
    allowed: Option<&[String]>,
) -> Result<&'static str> {
    let candidates = kind.candidates();
    let Some(allowed) = allowed else {
        return Ok(candidates[0]);
    };
    candidates
        .iter()
        .find(|c| allowed.iter().any(|a| a == *c))
        .copied()
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "reset {kind:?} (BMC allows {})",
                allowed.join(", ")
            ))
        })
}

pub(crate) fn last_segment(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

impl Bmc for RedfishClient {
    fn power_state(&self) -> BoxFuture<'_, Result<PowerState>> {
        async move {
            let (system, _) = self.system().await?;
            Ok(PowerState::parse(system.power_state.as_deref()))
        }
        .boxed()
    }

    fn reset(&self, kind: ResetKind) -> BoxFuture<'_, Result<()>> {
        self.do_reset(kind).boxed()
    }

    fn boot_progress(&self) -> BoxFuture<'_, Result<Option<String>>> {
        async move {
            let (system, _) = self.system().await?;
            Ok(system.boot_progress.and_then(|p| p.last_state))
        }
        .boxed()
    }

    fn boot_override(&self) -> BoxFuture<'_, Result<BootOverride>> {
        async move {
            let (system, _) = self.system().await?;
            Ok(system
                .boot
                .map_or_else(BootOverride::default, |b| BootOverride {
                    target: b.boot_source_override_target,
                    enabled: b.boot_source_override_enabled,
                    mode: b.boot_source_override_mode,
                }))
        }
        .boxed()
    }

    fn set_boot_override(
        &self,
        target: BootTarget,
        enabled: BootEnabled,
        mode: BootMode,
    ) -> BoxFuture<'_, Result<()>> {
        self.do_set_boot_override(target, enabled, mode).boxed()
    }

    fn has_medium(&self, medium: Medium) -> BoxFuture<'_, Result<bool>> {
        async move { Ok(self.devices().await?.get(medium).is_some()) }.boxed()
    }

    fn insert_media_on<'a>(&'a self, medium: Medium, image: &'a Url) -> BoxFuture<'a, Result<()>> {
        self.do_insert_media(medium, image).boxed()
    }

    fn eject_media_on(&self, medium: Medium) -> BoxFuture<'_, Result<()>> {
        self.do_eject_media(medium).boxed()
    }

    fn media_state_on(&self, medium: Medium) -> BoxFuture<'_, Result<MediaState>> {
        self.do_media_state(medium).boxed()
    }

    fn inventory(&self) -> BoxFuture<'_, Result<Inventory>> {
        self.do_inventory().boxed()
    }

    fn logout(&self) -> BoxFuture<'_, Result<()>> {
        self.transport.logout().boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn reset_type_follows_allowable_values() {
        let dell_like = allowed(&["On", "ForceOff", "GracefulShutdown", "PowerCycle"]);
        assert_eq!(
            choose_reset_type(ResetKind::ForceRestart, Some(&dell_like)).ok(),
            Some("PowerCycle")
        );
        let force_on_only = allowed(&["ForceOn", "ForceOff"]);
        assert_eq!(
            choose_reset_type(ResetKind::On, Some(&force_on_only)).ok(),
            Some("ForceOn")
        );
        assert_eq!(
            choose_reset_type(ResetKind::ForceRestart, None).ok(),
            Some("ForceRestart")
        );
        let err = choose_reset_type(ResetKind::GracefulShutdown, Some(&force_on_only));
        assert!(matches!(err, Err(Error::Unsupported(_))), "{err:?}");
    }

    fn found(path: &str, types: &[&str], actions: bool) -> Found {
        (
            path.to_owned(),
            allowed(types),
            actions.then(|| (format!("{path}/insert"), format!("{path}/eject"))),
        )
    }

    #[test]
    fn media_devices_are_chosen_by_media_types() {
        // sushy-tools' defaults: Cd [CD, DVD], Floppy [Floppy, USBStick].
        let sushy = choose_devices(&[
            found("/vm/Cd", &["CD", "DVD"], true),
            found("/vm/Floppy", &["Floppy", "USBStick"], true),
        ]);
        assert_eq!(
            sushy.get(Medium::Cd).map(|d| d.path.as_str()),
            Some("/vm/Cd")
        );
        assert_eq!(
            sushy.get(Medium::Removable).map(|d| d.insert.as_str()),
            Some("/vm/Floppy/insert")
        );
        // iLO-like: the removable device first, a device without actions before one with.
        let ilo = choose_devices(&[
            found("/vm/1", &["Floppy", "USBStick"], false),
            found("/vm/2", &["CD", "DVD"], false),
            found("/vm/3", &["USBStick"], true),
        ]);
        assert_eq!(
            ilo.get(Medium::Cd).map(|d| d.insert.as_str()),
            Some("/vm/2/Actions/VirtualMedia.InsertMedia")
        );
        assert_eq!(
            ilo.get(Medium::Removable).map(|d| d.path.as_str()),
            Some("/vm/3")
        );
        // One device for both: the CD only; and a CD-only BMC has no removable medium.
        let one = choose_devices(&[found("/vm/1", &["CD", "USBStick"], true)]);
        assert!(one.get(Medium::Cd).is_some() && one.get(Medium::Removable).is_none());
        let none = choose_devices(&[found("/vm/hdd", &["HDD"], true)]);
        assert!(none.get(Medium::Cd).is_none() && none.get(Medium::Removable).is_none());
    }

    #[test]
    fn last_segment_ignores_trailing_slash() {
        assert_eq!(
            last_segment("/redfish/v1/Systems/437XR1138R2/"),
            "437XR1138R2"
        );
        assert_eq!(last_segment("/redfish/v1/Systems/1"), "1");
    }
}
