//! The LabHost status this controller writes (pure), and the write itself: server-side apply
//! on /status under the field manager `labpods-labhost`, skipped when nothing changed.
//!
//! Deterministic by construction: no "last checked" timestamps, sorted lists, conditions whose
//! lastTransitionTime moves only when their status flips, so an idle pass writes nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use labpods_api::{
    conditions::{self, BMC_REACHABLE, READY},
    v1alpha1::{Disk, HostState, Inventory, LabHost, LabHostStatus, PowerState},
};
use serde_json::json;

use crate::{context::Context, error::Result, metrics::Metrics};

pub const FIELD_MANAGER: &str = "labpods-labhost";

/// Maps the client's power state to the API's.
pub fn power(p: &labpods_redfish::PowerState) -> PowerState {
    use labpods_redfish::PowerState as R;
    match p {
        R::On => PowerState::On,
        R::Off => PowerState::Off,
        R::PoweringOn => PowerState::PoweringOn,
        R::PoweringOff => PowerState::PoweringOff,
        R::Paused | R::Unknown => PowerState::Unknown,
    }
}

/// Maps the client's inventory to the API's, sorted for deterministic status.
pub fn inventory(i: &labpods_redfish::Inventory) -> Inventory {
    let mut disks: Vec<Disk> = i
        .disks
        .iter()
        .enumerate()
        .map(|(n, d)| Disk {
            name: d.name.clone().unwrap_or_else(|| format!("disk{n}")),
            capacity_bytes: d.capacity_bytes.and_then(|c| i64::try_from(c).ok()),
            media_type: None,
        })
        .collect();
    disks.sort_by(|a, b| a.name.cmp(&b.name));
    let mut macs = i.nic_macs.clone();
    macs.sort();
    Inventory {
        manufacturer: i.manufacturer.clone(),
        model: i.model.clone(),
        serial_number: i.serial_number.clone(),
        cpu_count: i.cpu_count,
        cpu_model: i.cpu_model.clone(),
        // Whole GiB: BMCs report e.g. 15.6 for 16 GiB modules.
        memory_gib: i
            .memory_gib
            .map(|g| g.round().clamp(0.0, f64::from(u32::MAX)) as u32),
        mac_addresses: macs,
        disks,
    }
}

/// A successful BMC pass: the host answered.
pub fn record_success(status: &mut LabHostStatus) {
    status.bmc_reachable = Some(true);
    status.consecutive_failures = None;
    status.last_error = None;
}

/// A failed pass. Returns true when the failures in a row reached `max`.
pub fn record_failure(
    status: &mut LabHostStatus,
    message: String,
    bmc_down: bool,
    max: u32,
) -> bool {
    if bmc_down {
        status.bmc_reachable = Some(false);
    }
    let n = status.consecutive_failures.unwrap_or(0).saturating_add(1);
    status.consecutive_failures = Some(n);
    status.last_error = Some(bounded(message));
    n >= max
}

/// Most bytes of error text kept in `status.lastError` or an Event note (events.k8s.io
/// refuses notes over 1 KiB, and a BMC's error text is the BMC's choice).
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// `message` cut to at most [`MAX_MESSAGE_BYTES`] bytes on a character boundary, marked when
/// cut.
pub fn bounded(message: String) -> String {
    const MARK: &str = " (truncated)";
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_MESSAGE_BYTES - MARK.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &message[..end])
}

/// Sets observedGeneration and the conditions from the rest of the status.
pub fn finish(status: &mut LabHostStatus, generation: Option<i64>, now: &Time) {
    status.observed_generation = generation;
    if let Some(reachable) = status.bmc_reachable {
        let (reason, message) = if reachable {
            ("Answered", "the BMC answered the last call".to_string())
        } else {
            (
                "Unreachable",
                status
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "the BMC did not answer".into()),
            )
        };
        let c =
            conditions::new_condition(BMC_REACHABLE, reachable, reason, message, generation, now);
        conditions::set_condition(&mut status.conditions, c, now);
    }
    let state = status.state.unwrap_or(HostState::Registering);
    let (ready, message) = match state {
        HostState::Available => (true, "in the pool, powered off".to_string()),
        HostState::Claimed => (true, "bound to a lease that has not started".to_string()),
        HostState::Provisioned => (true, "running the lease's image".to_string()),
        HostState::Maintenance => (true, "out of the pool for maintenance".to_string()),
        HostState::Registering => (false, "waiting for the BMC's first answer".to_string()),
        HostState::Provisioning | HostState::Releasing => {
            let step = status
                .provisioning
                .as_ref()
                .map(|p| format!("{:?}", p.step))
                .unwrap_or_default();
            (false, format!("at step {step}"))
        }
        HostState::Error => (
            false,
            status
                .last_error
                .clone()
                .unwrap_or_else(|| "failed; see events".into()),
        ),
    };
    let reason = format!("{state:?}");
    let c = conditions::new_condition(READY, ready, &reason, message, generation, now);
    conditions::set_condition(&mut status.conditions, c, now);
}

/// Applies `desired` unless it equals `current`; the host as written, when it wrote.
pub async fn apply(
    ctx: &Context,
    host: &LabHost,
    current: Option<&LabHostStatus>,
    desired: &LabHostStatus,
) -> Result<Option<LabHost>> {
    if current == Some(desired) {
        return Ok(None);
    }
    ctx.ensure_leader()?;
    let api = Api::all(ctx.client.clone());
    Ok(Some(write(&ctx.metrics, &api, host, desired).await?))
}

/// Writes `desired` as the status of `host`, on the resourceVersion `host` was read at.
pub async fn write(
    metrics: &Metrics,
    api: &Api<LabHost>,
    host: &LabHost,
    desired: &LabHostStatus,
) -> std::result::Result<LabHost, kube::Error> {
    let patch = json!({
        "apiVersion": "labpods.dev/v1alpha1",
        "kind": "LabHost",
        "status": desired,
    });
    let cleared;
    let mut based_on = host;
    let reported = host.status.as_ref().is_some_and(|c| c.reported.is_some());
    if reported && desired.reported.is_none() {
        // The phone-home writer owns the report too: leaving it out of an apply would not
        // remove it. Removed on the same precondition as the apply; the apply then rests on
        // this write.
        let clear = json!({
            "metadata": { "resourceVersion": host.metadata.resource_version },
            "status": { "reported": null },
        });
        let name = host.metadata.name.as_deref().unwrap_or_default();
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        cleared = api
            .patch_status(name, &params, &Patch::Merge(&clear))
            .await?;
        based_on = &cleared;
    }
    crate::controllers::fenced_status::write(
        metrics,
        api,
        FIELD_MANAGER,
        based_on,
        |h: &LabHost| h.status.as_ref(),
        &patch,
    )
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {

    #[test]
    fn bmc_error_text_is_bounded_on_a_character_boundary() {
        let short = "BMC answered 500".to_owned();
        assert_eq!(bounded(short.clone()), short);
        // Multi-byte characters across the cut.
        let long = format!("BMC answered 400: {}", "é".repeat(4000));
        let cut = bounded(long.clone());
        assert!(cut.len() <= MAX_MESSAGE_BYTES, "{}", cut.len());
        assert!(cut.ends_with("é (truncated)"), "{cut}");
        assert!(long.starts_with(cut.trim_end_matches(" (truncated)")));

        let mut status = LabHostStatus::default();
        record_failure(&mut status, long, true, 5);
        assert_eq!(status.last_error, Some(cut));
    }
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn unchanged_state_gives_identical_status() {
        let mut first = LabHostStatus {
            state: Some(HostState::Available),
            ..LabHostStatus::default()
        };
        record_success(&mut first);
        finish(&mut first, Some(3), &at(100));
        let mut second = first.clone();
        record_success(&mut second);
        finish(&mut second, Some(3), &at(200));
        assert_eq!(
            first, second,
            "a later idle pass must not change the status"
        );
    }

    #[test]
    fn failures_accumulate_then_reset() {
        let mut s = LabHostStatus::default();
        assert!(!record_failure(&mut s, "timeout".into(), true, 3));
        assert!(!record_failure(&mut s, "timeout".into(), true, 3));
        assert!(record_failure(&mut s, "timeout".into(), true, 3));
        assert_eq!(s.bmc_reachable, Some(false));
        finish(&mut s, Some(1), &at(10));
        let c = conditions::find_condition(&s.conditions, BMC_REACHABLE).unwrap();
        assert_eq!(
            (c.status.as_str(), c.message.as_str()),
            ("False", "timeout")
        );
        record_success(&mut s);
        finish(&mut s, Some(1), &at(20));
        let c = conditions::find_condition(&s.conditions, BMC_REACHABLE).unwrap();
        assert_eq!(c.status, "True");
        assert_eq!(c.last_transition_time, at(20));
        assert_eq!(s.consecutive_failures, None);
        assert_eq!(s.last_error, None);
    }

    #[test]
    fn ready_condition_carries_generation_and_error() {
        let mut s = LabHostStatus {
            state: Some(HostState::Error),
            last_error: Some("step PowerOn failed 5 times: BMC answered 500".into()),
            ..LabHostStatus::default()
        };
        finish(&mut s, Some(7), &at(1));
        let c = conditions::find_condition(&s.conditions, READY).unwrap();
        assert_eq!(c.status, "False");
        assert_eq!(c.reason, "Error");
        assert_eq!(c.observed_generation, Some(7));
        assert!(c.message.contains("PowerOn"));
    }

    #[test]
    fn inventory_is_sorted_and_rounded() {
        let i = labpods_redfish::Inventory {
            memory_gib: Some(15.6),
            nic_macs: vec!["bb".into(), "aa".into()],
            ..labpods_redfish::Inventory::default()
        };
        let inv = inventory(&i);
        assert_eq!(inv.memory_gib, Some(16));
        assert_eq!(inv.mac_addresses, vec!["aa", "bb"]);
    }
}
