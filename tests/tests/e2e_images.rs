//! Image integrity (issue 8) on the real apiserver, the operator and the simulator, with the
//! images served by a small HTTP server inside the test that counts GETs: a wrong checksum is
//! refused before any BMC sees the URL, a right one passes with one download for every host
//! and booking of the image, and the lab's image policy is reported naming the field.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use labpods_api::conditions::{FALSE, IMAGE_VERIFIED, INVALID, TRUE, find_condition};
use labpods_api::v1alpha1::{ImageSpec, PodRequest, PodRequestPhase, PodRequestSpec};
use labpods_sim::Event;
use labpods_tests::e2e::E2e;
use labpods_tests::image_server::{ImageServer, sha256_checksum};
use labpods_tests::leaks::{Confidential, unique_password};
use labpods_tests::sim::HostGroup;

/// How long the operator may take to report a request (it downloads 1 MiB first).
const REPORT_TIMEOUT: Duration = Duration::from_secs(60);

fn body(seed: u8) -> Vec<u8> {
    (0..1usize << 20).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// Waits until `name` is Failed and returns the condition of `type_` (which must be there).
async fn failed_with(
    e2e: &mut E2e,
    name: &str,
    type_: &str,
) -> Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let request: PodRequest = e2e
        .wait_phase(name, PodRequestPhase::Failed, REPORT_TIMEOUT)
        .await?;
    let status = request.status.unwrap_or_default();
    ensure!(status.lease.is_none(), "{name} got a Lease: {status:?}");
    ensure!(status.hosts.is_empty(), "{name} got hosts: {status:?}");
    find_condition(&status.conditions, type_)
        .cloned()
        .with_context(|| format!("{name} has no {type_} condition: {status:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_image_checksum_is_verified_once_before_any_bmc_sees_the_url() -> Result<()> {
    let good = body(0);
    let tampered = body(1);
    let server = ImageServer::start(vec![
        ("/e2e-verified.iso", good.clone()),
        ("/e2e-tampered.iso", tampered),
    ])
    .await?;
    let mut e2e = E2e::start("e2e-image-checksum", &[HostGroup::new("small", 4)]).await?;
    // A pre-signed URL's signature: shown nowhere the operator writes.
    let signature = unique_password();
    e2e.keep_confidential(Confidential::value("image URL signature", &signature));

    // (a) The tampered image: its checksum is the good image's.
    let tampered_url = format!(
        "{}?X-Amz-Signature={signature}",
        server.url("/e2e-tampered.iso")
    );
    let spec = PodRequestSpec::new(
        vec![e2e.role("node", 2, None)],
        ImageSpec::new(&tampered_url).with_checksum(sha256_checksum(&good)),
        "1h",
    );
    e2e.book_spec("tampered", spec).await?;
    let refused = failed_with(&mut e2e, "tampered", IMAGE_VERIFIED).await?;
    assert_eq!(refused.status, FALSE);
    assert!(
        refused.message.starts_with("spec.image.checksum sha256:")
            && refused.message.contains("does not match"),
        "the condition names the field: {}",
        refused.message
    );
    assert_eq!(server.gets("/e2e-tampered.iso"), 1);
    // No BMC heard of it: no InsertMedia (taken or refused) of that image anywhere.
    for host in e2e.host_names() {
        let history = e2e.sim()?.bmc(&host)?.history();
        let inserted = history.iter().any(|event| {
            matches!(event, Event::MediaInserted { image, .. } | Event::MediaRefused { image, .. }
                if image.contains("e2e-tampered"))
        });
        assert!(
            !inserted,
            "{host} was sent the tampered image: {history:#?}"
        );
    }

    // (b) The right checksum: three hosts, then a second booking of the same image.
    e2e.use_image(server.url("/e2e-verified.iso"));
    let verified = ImageSpec::new(e2e.image()).with_checksum(sha256_checksum(&good));
    let spec = |e2e: &E2e, count| {
        PodRequestSpec::new(vec![e2e.role("node", count, None)], verified.clone(), "1h")
    };
    e2e.book_spec("pod", spec(&e2e, 3)).await?;
    e2e.check_ready("pod", &[("node", 3)]).await?;
    e2e.book_spec("again", spec(&e2e, 1)).await?;
    e2e.check_ready("again", &[("node", 1)]).await?;
    assert_eq!(
        server.gets("/e2e-verified.iso"),
        1,
        "one download for four hosts and two bookings"
    );
    let metrics = e2e.operator("a")?.scrape_metrics().await?;
    for line in [
        "labpods_image_downloads_total{outcome=\"downloaded\"} 2",
        "labpods_image_cache_hits_total 1",
        "labpods_image_verification_failures_total{reason=\"mismatch\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in /metrics:\n{metrics}");
    }
    e2e.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_image_policy_refuses_a_missing_checksum_and_a_foreign_server_naming_the_field()
-> Result<()> {
    let image = body(0);
    let server = ImageServer::start(vec![("/e2e-os.iso", image.clone())]).await?;
    let mut e2e = E2e::start_lab("e2e-image-policy", &[HostGroup::new("small", 1)]).await?;
    e2e.settings_mut().require_checksum = true;
    e2e.settings_mut().allowed_image_hosts = vec!["127.0.0.1".into(), "*.lab.example".into()];
    e2e.start_operator("a")?;
    let role = || vec![e2e.role("node", 1, None)];

    let spec = PodRequestSpec::new(role(), ImageSpec::new(server.url("/e2e-os.iso")), "1h");
    e2e.book_spec("no-checksum", spec).await?;
    let foreign = ImageSpec::new("http://images.example.org/e2e-os.iso")
        .with_checksum(sha256_checksum(&image));
    e2e.book_spec("foreign", PodRequestSpec::new(role(), foreign, "1h"))
        .await?;
    for (name, field) in [
        ("no-checksum", "spec.image.checksum"),
        ("foreign", "spec.image.url"),
    ] {
        let invalid = failed_with(&mut e2e, name, INVALID).await?;
        assert_eq!(invalid.status, TRUE);
        assert!(
            invalid.message.starts_with(field) && invalid.message.contains("images."),
            "{name}: the condition names {field} and the setting: {}",
            invalid.message
        );
    }
    // Nothing was downloaded for either, and the host was never claimed.
    assert_eq!(server.gets("/e2e-os.iso"), 0);
    let host = e2e.host_names().first().context("no host")?.clone();
    ensure!(
        e2e.labhost(&host).await?.spec.claim_ref.is_none(),
        "{host} was claimed"
    );
    e2e.shutdown().await?;
    Ok(())
}
