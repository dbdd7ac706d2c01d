//! The operator's fenced status writes on the real apiserver: a write computed from an old
//! read (a deposed leader's, delivered late) never overwrites a status someone wrote since,
//! while a change elsewhere in the object (a claim, an annotation) does not block it.

use anyhow::{Result, ensure};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use labpods_api::v1alpha1::{
    ImageSpec, PodRequest, PodRequestPhase, PodRequestSpec, PodRequestStatus, RoleSpec,
};
use labpods_operator::controllers::fenced_status;
use labpods_operator::metrics::Metrics;
use labpods_tests::TestCluster;
use serde_json::json;

const MANAGER: &str = "labpods-podrequest";

fn status_patch(phase: PodRequestPhase, message: &str) -> serde_json::Value {
    let status = PodRequestStatus {
        phase: Some(phase),
        message: Some(message.to_owned()),
        ..PodRequestStatus::default()
    };
    json!({ "apiVersion": "labpods.dev/v1alpha1", "kind": "PodRequest", "status": status })
}

async fn booking(api: &Api<PodRequest>, name: &str) -> Result<PodRequest> {
    let spec = PodRequestSpec::new(
        vec![RoleSpec::new("node", 1)],
        ImageSpec::new("http://images.example/os.iso"),
        "1h",
    );
    Ok(api
        .create(&PostParams::default(), &PodRequest::new(name, spec))
        .await?)
}

fn status_of(pr: &PodRequest) -> Option<&PodRequestStatus> {
    pr.status.as_ref()
}

#[tokio::test]
async fn a_late_status_write_never_overwrites_the_new_leaders() -> Result<()> {
    let cluster = TestCluster::get()?;
    let ns = cluster.namespace("fenced-status").await?;
    let api: Api<PodRequest> = Api::namespaced(cluster.client().await?, ns.name());
    booking(&api, "late").await?;

    // The old leader read the object; the new leader reads it too and writes its status.
    let old_read = api.get("late").await?;
    let new_read = api.get("late").await?;
    fenced_status::write(
        &Metrics::new(),
        &api,
        MANAGER,
        &new_read,
        status_of,
        &status_patch(PodRequestPhase::Ready, "new leader"),
    )
    .await?;

    // The old leader's write arrives: refused, and the new leader's status stands.
    let late = fenced_status::write(
        &Metrics::new(),
        &api,
        MANAGER,
        &old_read,
        status_of,
        &status_patch(PodRequestPhase::Pending, "deposed leader"),
    )
    .await;
    ensure!(
        matches!(&late, Err(kube::Error::Api(s)) if s.code == 409),
        "the late write was not refused: {late:?}"
    );
    let now = api.get("late").await?;
    ensure!(
        now.status.as_ref().and_then(|s| s.message.as_deref()) == Some("new leader"),
        "the status was overwritten: {:?}",
        now.status
    );
    Ok(())
}

#[tokio::test]
async fn a_status_write_goes_through_a_change_elsewhere_in_the_object() -> Result<()> {
    let cluster = TestCluster::get()?;
    let ns = cluster.namespace("fenced-status").await?;
    let api: Api<PodRequest> = Api::namespaced(cluster.client().await?, ns.name());
    booking(&api, "moved").await?;
    let read = api.get("moved").await?;

    // Metadata changes after the read (as a claim or a phone-home annotation would).
    let annotate = json!({ "metadata": { "annotations": { "example.com/touched": "yes" } } });
    api.patch("moved", &PatchParams::default(), &Patch::Merge(&annotate))
        .await?;

    fenced_status::write(
        &Metrics::new(),
        &api,
        MANAGER,
        &read,
        status_of,
        &status_patch(PodRequestPhase::Scheduled, "written"),
    )
    .await?;
    let now = api.get("moved").await?;
    ensure!(
        now.status.as_ref().and_then(|s| s.phase) == Some(PodRequestPhase::Scheduled),
        "the status was not written: {:?}",
        now.status
    );
    Ok(())
}
