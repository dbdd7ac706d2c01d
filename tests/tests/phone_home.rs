//! Phone-home on the real apiserver: cloud-init's form POST, with the token of the host's
//! current run, lands in `LabHost.status.reported` from the operator's HTTP endpoint (any
//! replica's); a token of an earlier booking or an earlier run of the same booking is
//! refused; the leader's status write that ends the run removes the report.

use std::{net::SocketAddr, sync::Arc};

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{Api, api::PostParams};
use labpods_api::v1alpha1::{
    ClaimRef, LabHost, LabHostSpec, LabHostStatus, Operation, ProvisioningProgress,
    ProvisioningStep, SecretReference,
};
use labpods_operator::{
    context::SystemClock,
    controllers::labhost::{phone_home::StatusSink, status},
    http::{self, PhoneHomeTokens, Run},
    metrics::Metrics,
};
use labpods_tests::TestCluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An ed25519 host key as cloud-init posts it (`/etc/ssh/ssh_host_ed25519_key.pub`).
const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH";

fn progress(started: i64) -> Result<ProvisioningProgress> {
    let at = Time(Timestamp::from_second(started)?);
    Ok(ProvisioningProgress {
        operation: Operation::Provision,
        step: ProvisioningStep::WaitBooted,
        image: Some("http://images.example/os.iso".into()),
        attempts: 1,
        started_at: at.clone(),
        step_started_at: at,
        lease: "ci-pod-1".into(),
    })
}

async fn post(addr: SocketAddr, url: &url::Url) -> Result<u16> {
    let key = format!("{HOST_KEY} root@node-0");
    let form = [
        ("pub_key_rsa", "N/A"),
        ("pub_key_ecdsa", "N/A"),
        ("pub_key_ed25519", key.as_str()),
        ("instance_id", "i-run-1"),
        ("hostname", "node-0"),
        ("fqdn", "node-0.lab"),
    ];
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let path = format!("{}?{}", url.path(), url.query().unwrap_or(""));
    // What cloud-init sends (HTTP/1.1, a form, the connection closed after the answer).
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: operator.lab\r\nContent-Type: \
         application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    answer
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP answer: {answer:?}"))
}

#[tokio::test]
async fn phone_home_records_this_runs_report_and_refuses_earlier_tokens() -> Result<()> {
    let cluster = TestCluster::get()?;
    let client = cluster.client().await?;
    let ns = cluster.namespace("phone-home").await?;
    let name = format!("{}-host", ns.name());
    let api: Api<LabHost> = Api::all(client.clone());
    let mut spec = LabHostSpec::new(
        "http://127.0.0.1:9",
        "small",
        SecretReference::new("labpods-system", "bmc"),
    );
    spec.claim_ref = Some(ClaimRef {
        namespace: ns.name().into(),
        name: "ci-pod".into(),
        uid: "uid-booking-2".into(),
        lease: "ci-pod-1".into(),
    });
    let created = api
        .create(&PostParams::default(), &LabHost::new(&name, spec))
        .await?;
    let _host = cluster.delete_on_drop(format!("labhost/{name}"));
    let started = 1_800_000_000;
    let provisioning = LabHostStatus {
        provisioning: Some(progress(started)?),
        ..LabHostStatus::default()
    };
    status::write(&Metrics::new(), &api, &created, &provisioning).await?;

    let tokens = PhoneHomeTokens::new(b"shared by the replicas");
    let listener = http::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let sink = StatusSink::new(client.clone(), tokens.clone(), Arc::new(SystemClock));
    tokio::spawn(http::serve(
        listener,
        http::phone_home_router(Arc::new(sink)),
        std::future::pending(),
    ));
    let base = url::Url::parse("http://operator.lab/")?;
    let run = Run {
        host: &name,
        booking: "uid-booking-2",
        started,
    };

    // The same host's token in an earlier booking, and in an earlier run of this one.
    let earlier_booking = Run {
        booking: "uid-booking-1",
        ..run
    };
    let earlier_run = Run {
        started: started - 600,
        ..run
    };
    for stale in [earlier_booking, earlier_run] {
        let code = post(addr, &tokens.url(&base, &stale)).await?;
        ensure!(code == 403, "a stale token got {code}: {stale:?}");
    }
    let host = api.get(&name).await?;
    ensure!(
        host.status
            .as_ref()
            .and_then(|s| s.reported.as_ref())
            .is_none(),
        "a stale token recorded a report"
    );

    let code = post(addr, &tokens.url(&base, &run)).await?;
    ensure!(code == 200, "this run's token got {code}");
    let host = api.get(&name).await?;
    let reported = host
        .status
        .as_ref()
        .and_then(|s| s.reported.clone())
        .context("no status.reported")?;
    ensure!(
        reported.lease == format!("{}/ci-pod-1", ns.name())
            && reported.instance_id.as_deref() == Some("i-run-1")
            && reported.hostname.as_deref() == Some("node-0")
            && reported.addresses == ["127.0.0.1"]
            && reported.host_keys == [HOST_KEY],
        "{reported:?}"
    );
    // The run's own status, written by the leader before the report, is untouched.
    ensure!(
        host.status.as_ref().and_then(|s| s.provisioning.clone()) == Some(progress(started)?),
        "{:?}",
        host.status
    );

    // The leader starts the release (no report in what it writes): the report is gone, and
    // the token no longer records anything. (A release that boots a wipe image has a token
    // of its own, bound to the host and that run: the booking's is refused then too.)
    let mut releasing = progress(started + 900)?;
    releasing.operation = Operation::Release;
    releasing.step = ProvisioningStep::WaitWiped;
    let release = LabHostStatus {
        provisioning: Some(releasing),
        ..LabHostStatus::default()
    };
    status::write(&Metrics::new(), &api, &host, &release).await?;
    let host = api.get(&name).await?;
    ensure!(
        host.status.as_ref() == Some(&release),
        "after the release started: {:?}",
        host.status
    );
    let code = post(addr, &tokens.url(&base, &run)).await?;
    ensure!(
        code == 403,
        "the booking's token during the wipe got {code}"
    );
    let mut plain = release.clone();
    if let Some(p) = plain.provisioning.as_mut() {
        (p.image, p.step) = (None, ProvisioningStep::PowerOff);
    }
    let host = api.get(&name).await?;
    status::write(&Metrics::new(), &api, &host, &plain).await?;
    let code = post(addr, &tokens.url(&base, &run)).await?;
    ensure!(
        code == 409,
        "a report during a release without a wipe got {code}"
    );

    // A leader's write computed before a report (a deposed replica's, delivered late)
    // cannot remove it.
    let restarted = api.get(&name).await?;
    status::write(&Metrics::new(), &api, &restarted, &provisioning).await?;
    let read_before_report = api.get(&name).await?;
    let code = post(addr, &tokens.url(&base, &run)).await?;
    ensure!(code == 200, "the report of the new run got {code}");
    let late = status::write(
        &Metrics::new(),
        &api,
        &read_before_report,
        &LabHostStatus::default(),
    )
    .await;
    ensure!(
        matches!(&late, Err(kube::Error::Api(s)) if s.code == 409),
        "a write computed before the report was not refused: {late:?}"
    );
    ensure!(
        api.get(&name)
            .await?
            .status
            .and_then(|s| s.reported)
            .is_some(),
        "the late write removed the report"
    );
    Ok(())
}
