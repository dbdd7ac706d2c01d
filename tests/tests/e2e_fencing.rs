//! End-to-end: fencing. One actor per host while leadership moves: a leader cut off from
//! the apiserver (its connections black-holed by a proxy, the BMCs still in reach) stops
//! acting within its renew deadline, the other replica takes over, and the cut-off replica's
//! writes, delivered late when the network comes back, change nothing.

use std::time::Duration;

use anyhow::{Result, bail};
use labpods_api::v1alpha1::{HostState, LabHost};
use labpods_tests::e2e::{E2e, PROVISION_TIMEOUT};
use labpods_tests::sim::HostGroup;

const ELECTION_TIMEOUT: Duration = Duration::from_secs(30);
const RELEASE_TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_black_holed_leader_is_fenced_and_its_late_writes_change_nothing() -> Result<()> {
    let mut e2e = E2e::start_lab("e2e-fence", &[HostGroup::new("small", 4)]).await?;
    let proxy = e2e.start_operator_via_proxy("a").await?;
    e2e.wait_leader(Some("e2e-fence-a"), ELECTION_TIMEOUT)
        .await?;
    e2e.start_operator("b")?;

    e2e.book("cut", vec![e2e.role("node", 2, None)], "1h")
        .await?;
    let client = e2e.client();
    e2e.wait("a host to be Provisioning", PROVISION_TIMEOUT, || {
        let api: kube::Api<LabHost> = kube::Api::all(client.clone());
        async move {
            let hosts = api.list(&Default::default()).await?;
            let busy = hosts
                .items
                .iter()
                .any(|h| h.status.as_ref().and_then(|s| s.state) == Some(HostState::Provisioning));
            Ok(busy.then_some(()))
        }
    })
    .await?;

    // Mid-provisioning, the leader loses the apiserver but not the BMCs.
    proxy.black_hole();
    e2e.wait_leader(Some("e2e-fence-b"), ELECTION_TIMEOUT)
        .await?;
    e2e.check_ready("cut", &[("node", 2)]).await?;
    let deposed = e2e.operators()[0].log();
    if !deposed.contains("stopped leading") {
        bail!("the cut-off replica never said it stopped leading:\n{deposed}");
    }

    // The network comes back: what the deposed replica sent into the black hole arrives now.
    proxy.resume();
    e2e.book("after", vec![e2e.role("node", 1, None)], "1h")
        .await?;
    e2e.check_ready("after", &[("node", 1)]).await?;
    // Neither a late status write nor a late renewal undid the new leader's work.
    e2e.check_still_ready("cut", &[("node", 2)]).await?;
    e2e.wait_leader(Some("e2e-fence-b"), ELECTION_TIMEOUT)
        .await?;
    e2e.check_no_double_binding().await?;

    let hosts = e2e.assigned_hosts("cut").await?;
    e2e.release("cut").await?;
    e2e.wait_hosts_free(&hosts, RELEASE_TIMEOUT).await?;
    e2e.check_bmc_calls()?;
    let calls_of_a = e2e
        .bmc_calls()?
        .iter()
        .flat_map(|(_, calls)| calls)
        .filter(|c| labpods_tests::bmc_log::replica(c) == Some("e2e-fence-a"))
        .count();
    assert!(
        calls_of_a > 0,
        "the first leader never called a BMC: the test did not cut it off mid-work"
    );
    e2e.shutdown().await?;
    Ok(())
}
