//! Which LabHost events can change a scheduling pass. A pass reads of a host its spec (claim,
//! maintenance, profile, BMC), labels, deletion, `state` and `bmcReachable` (whether it is
//! schedulable), its inventory (MACs, the descriptor) and its boot report (addresses and
//! host keys shown to the tenant). A provisioning step, a power reading, an error count or a
//! wipe record changes none of these, and no longer wakes the scheduler: at 1,000 hosts
//! those status writes were the most frequent events, and each cost a pass over the lab.

use std::hash::{DefaultHasher, Hash, Hasher};

use futures::Stream;
use kube::{ResourceExt, core::DeserializeGuard, runtime::watcher};
use labpods_api::v1alpha1::LabHost;

/// What of a LabHost a pass reads, hashed.
fn fingerprint(host: &LabHost) -> u64 {
    let status = host.status.as_ref();
    let mut hasher = DefaultHasher::new();
    (
        host.uid(),
        host.metadata.generation,
        host.labels(),
        host.metadata.deletion_timestamp.is_some(),
        status.and_then(|s| s.state),
        status.and_then(|s| s.bmc_reachable),
    )
        .hash(&mut hasher);
    // Inventory and report have no Hash of their own; their JSON stands in.
    for part in [
        status.and_then(|s| serde_json::to_vec(&s.inventory).ok()),
        status.and_then(|s| serde_json::to_vec(&s.reported).ok()),
    ] {
        part.hash(&mut hasher);
    }
    hasher.finish()
}

/// The LabHost events of `events` that can change a pass.
pub fn relevant<S>(
    events: S,
) -> impl Stream<Item = Result<DeserializeGuard<LabHost>, watcher::Error>>
where
    S: Stream<Item = Result<watcher::Event<DeserializeGuard<LabHost>>, watcher::Error>>,
{
    crate::controllers::changes::relevant(events, fingerprint)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use futures::{StreamExt, stream};
    use labpods_api::v1alpha1::{HostState, LabHostSpec, LabHostStatus, PowerState};

    use super::*;

    fn event(host: &LabHost) -> Result<watcher::Event<DeserializeGuard<LabHost>>, watcher::Error> {
        Ok(watcher::Event::Apply(DeserializeGuard(Ok(host.clone()))))
    }

    #[tokio::test]
    async fn power_readings_and_error_counts_do_not_wake_the_scheduler() {
        let mut host = LabHost::new("h1", LabHostSpec::default());
        host.status = Some(LabHostStatus {
            state: Some(HostState::Provisioning),
            ..LabHostStatus::default()
        });
        let mut stepped = host.clone();
        let status = stepped.status.as_mut().unwrap();
        status.power = Some(PowerState::On);
        status.consecutive_failures = Some(1);
        let mut done = stepped.clone();
        done.status.as_mut().unwrap().state = Some(HostState::Provisioned);
        let mut relabelled = done.clone();
        relabelled
            .labels_mut()
            .insert("labpods.dev/lab".into(), "b".into());
        let events = vec![
            event(&host),
            event(&stepped),
            event(&done),
            event(&relabelled),
            Ok(watcher::Event::Delete(DeserializeGuard(Ok(
                relabelled.clone()
            )))),
        ];
        let passed = relevant(stream::iter(events)).count().await;
        // The power reading and error count are dropped; the rest pass.
        assert_eq!(passed, 4);
    }
}
