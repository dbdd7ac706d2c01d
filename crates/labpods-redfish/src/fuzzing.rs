//! Fuzz entry point (`fuzz/fuzz_targets/redfish_response.rs`) and the replay of its corpus
//! in this crate's unit tests: a BMC's response body, as every resource the client decodes,
//! through what the client derives from it. Any bytes: no panic, and error text bounded
//! before it can reach status or Events.

use crate::{
    PowerState, ResetKind,
    client::{choose_devices, choose_reset_type, last_segment},
    model::{
        Collection, ComputerSystem, Drive, ErrorBody, EthernetInterface, MAX_BMC_MESSAGE_CHARS,
        Manager, ServiceRoot, SimpleStorage, Storage, Task, VirtualMedia,
    },
};

/// Decodes `body` as each resource; panics on a broken invariant.
pub fn response_body(body: &[u8]) {
    let summary = ErrorBody::summary(body);
    assert!(
        summary.chars().count() <= MAX_BMC_MESSAGE_CHARS + " (truncated)".len(),
        "an error summary of {} characters",
        summary.chars().count()
    );
    if let Ok(system) = serde_json::from_slice::<ComputerSystem>(body) {
        let _ = PowerState::parse(system.power_state.as_deref());
        let allowed = system
            .actions
            .and_then(|a| a.reset)
            .and_then(|r| r.allowable_values);
        for kind in [
            ResetKind::On,
            ResetKind::ForceOff,
            ResetKind::GracefulShutdown,
            ResetKind::ForceRestart,
        ] {
            if let Ok(value) = choose_reset_type(kind, allowed.as_deref()) {
                assert!(kind.candidates().contains(&value));
            }
        }
    }
    if let Ok(media) = serde_json::from_slice::<VirtualMedia>(body) {
        let actions = media
            .actions
            .and_then(|a| Some((a.insert?.target, a.eject?.target)));
        let found = [(
            "/redfish/v1/Managers/1/VirtualMedia/1".to_owned(),
            media.media_types,
            actions,
        )];
        let _ = choose_devices(&found);
    }
    if let Ok(collection) = serde_json::from_slice::<Collection>(body) {
        for member in &collection.members {
            assert!(!last_segment(&member.odata_id).contains('/'));
        }
    }
    let _ = serde_json::from_slice::<ServiceRoot>(body);
    let _ = serde_json::from_slice::<Manager>(body);
    let _ = serde_json::from_slice::<EthernetInterface>(body);
    let _ = serde_json::from_slice::<SimpleStorage>(body);
    let _ = serde_json::from_slice::<Storage>(body);
    let _ = serde_json::from_slice::<Drive>(body);
    let _ = serde_json::from_slice::<Task>(body);
}

#[cfg(test)]
mod tests {
    /// The fuzz corpus (DMTF mockups and what the fuzzer kept) still holds.
    #[test]
    fn the_fuzz_corpus_replays_cleanly() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fuzz/corpus/redfish_response"
        );
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
            let path = entry.map(|e| e.path()).unwrap_or_default();
            let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            super::response_body(&body);
            n += 1;
        }
        assert!(n >= 20, "only {n} inputs in {dir}");
    }
}
