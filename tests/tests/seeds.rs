//! A host's NoCloud seed served by the operator's HTTP endpoint on the real apiserver,
//! rendered from the booking: the instance-id of the booking, host and run, the Lease's
//! hostname, the request's SSH keys merged into the user's `#cloud-config` from their Secret,
//! and this run's phone-home URL. Only this run's seed token gets it; it is gone (404) once
//! the run ends; a missing Secret or key serves nothing. Only a Lease the operator sealed
//! counts: an unsealed or tampered one (a hostname changed behind its back) serves nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use labpods_api::v1alpha1::{
    AccessSpec, ClaimRef, ImageSpec, LabHost, LabHostSpec, LabHostStatus, Lease, LeaseHost,
    LeaseSpec, Operation, PodRequest, PodRequestSpec, ProvisioningProgress, ProvisioningStep,
    RequestRef, RoleSpec, SecretReference, UserDataSecretRef,
};
use labpods_operator::{
    controllers::labhost::{seed::SeedServer, status},
    http::{self, PhoneHomeTokens, Run},
    metrics::Metrics,
    signing::{LeaseSigner, SIGNATURE},
};
use labpods_tests::TestCluster;
use serde_json::json;
use serde_yaml::{Mapping, Value};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH alice@laptop";

/// GET `url`'s path from the listener at `addr`.
async fn get(addr: SocketAddr, url: &url::Url) -> Result<(u16, Vec<u8>)> {
    labpods_tests::http_get::get(addr, url.path()).await
}

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

#[tokio::test]
async fn seeds_are_rendered_from_the_booking_for_this_run_only() -> Result<()> {
    let cluster = TestCluster::get()?;
    let client = cluster.client().await?;
    let ns = cluster.namespace("seeds").await?;
    let ns_name = ns.name().to_owned();

    // The booking: keys for every host, the user's cloud-config in a Secret of theirs.
    let user_data = "#cloud-config\npackages: [git]\n".to_owned();
    Api::<Secret>::namespaced(client.clone(), &ns_name)
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("pod-data".into()),
                    ..ObjectMeta::default()
                },
                data: Some([("userData".to_owned(), ByteString(user_data.into_bytes()))].into()),
                ..Secret::default()
            },
        )
        .await?;
    let mut spec = PodRequestSpec::new(
        vec![RoleSpec::new("node", 1)],
        ImageSpec::new("http://images.example/os.iso"),
        "1h",
    );
    spec.access = Some(AccessSpec {
        ssh_authorized_keys: vec![KEY.into()],
        user_data_secret_ref: Some(UserDataSecretRef {
            name: "pod-data".into(),
            key: None,
        }),
        network_data: Some("version: 2\nethernets: {}\n".into()),
    });
    let requests: Api<PodRequest> = Api::namespaced(client.clone(), &ns_name);
    let request = requests
        .create(&PostParams::default(), &PodRequest::new("ci-pod", spec))
        .await?;
    let uid = request.metadata.uid.clone().context("no uid")?;

    let host = format!("{ns_name}-host");
    let now = Timestamp::now();
    let lease = Lease::new(
        "ci-pod-1",
        LeaseSpec::new(
            RequestRef {
                name: "ci-pod".into(),
                uid: uid.clone(),
            },
            [LeaseHost {
                host: host.clone(),
                role: "node".into(),
                hostname: None,
            }],
            Time(now),
            Time(now + SignedDuration::from_hours(1)),
            ImageSpec::new("http://images.example/os.iso"),
        ),
    );
    let leases = Api::<Lease>::namespaced(client.clone(), &ns_name);
    let lease = leases.create(&PostParams::default(), &lease).await?;

    let hosts: Api<LabHost> = Api::all(client.clone());
    let mut host_spec = LabHostSpec::new(
        "http://127.0.0.1:9",
        "small",
        SecretReference::new("labpods-system", "bmc"),
    );
    host_spec.claim_ref = Some(ClaimRef {
        namespace: ns_name.clone(),
        name: "ci-pod".into(),
        uid: uid.clone(),
        lease: "ci-pod-1".into(),
    });
    let created = hosts
        .create(&PostParams::default(), &LabHost::new(&host, host_spec))
        .await?;
    let _host = cluster.delete_on_drop(format!("labhost/{host}"));
    let started = 1_800_000_000;
    let run_status = LabHostStatus {
        provisioning: Some(progress(started)?),
        ..LabHostStatus::default()
    };
    status::write(&Metrics::new(), &hosts, &created, &run_status).await?;

    let tokens = PhoneHomeTokens::new(b"shared by the replicas");
    let base = url::Url::parse("http://operator.lab:8081/")?;
    let listener = http::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let signer = LeaseSigner::new(b"the operator's lease key");
    let server = SeedServer::new(
        client.clone(),
        tokens.clone(),
        Some(base.clone()),
        signer.clone(),
    );
    tokio::spawn(http::serve(
        listener,
        http::seeds::router(Arc::new(server)),
        std::future::pending(),
    ));
    let run = Run {
        host: &host,
        booking: &uid,
        started,
    };

    let (code, _) = get(addr, &tokens.seed_url(&base, &run)).await?;
    ensure!(code == 404, "a Lease the operator did not seal got {code}");
    let seal = |lease: &Lease| {
        let generation = lease.metadata.generation.unwrap_or(1);
        json!({ "metadata": { "annotations": { SIGNATURE: signer.sealed(lease, generation) } } })
    };
    let lease = leases
        .patch(
            "ci-pod-1",
            &PatchParams::default(),
            &Patch::Merge(seal(&lease)),
        )
        .await?;

    let (code, body) = get(addr, &tokens.seed_url(&base, &run)).await?;
    ensure!(code == 200, "this run's seed got {code}");
    let image = labpods_cidata::read(&body)?;
    ensure!(image.volume_id == "cidata", "{:?}", image.volume_id);
    let yaml = |name: &str| -> Result<Mapping> {
        let data = image.file(name).with_context(|| format!("no {name}"))?;
        Ok(serde_yaml::from_slice(data)?)
    };
    let meta = yaml("meta-data")?;
    let want_id = format!("labpods-{uid}-{host}-{started}");
    ensure!(
        meta.get("instance-id") == Some(&Value::from(want_id.as_str())),
        "{meta:?}"
    );
    // The Lease named the host node-1 (role node, first of it).
    ensure!(
        meta.get("local-hostname") == Some(&Value::from("node-1")),
        "{meta:?}"
    );
    let user = yaml("user-data")?;
    ensure!(
        image
            .file("user-data")
            .is_some_and(|u| u.starts_with(b"#cloud-config\n")),
        "not a cloud-config"
    );
    ensure!(
        user.get("packages") == Some(&Value::Sequence(vec!["git".into()])),
        "the user's config is lost: {user:?}"
    );
    ensure!(
        user.get("ssh_authorized_keys") == Some(&Value::Sequence(vec![KEY.into()])),
        "{user:?}"
    );
    let phone = user
        .get("phone_home")
        .and_then(|p| p.get("url"))
        .and_then(Value::as_str)
        .context("no phone_home.url")?;
    let phone = url::Url::parse(phone)?;
    ensure!(
        phone == tokens.url(&base, &run),
        "phone-home URL {phone} is not this run's"
    );
    ensure!(
        image.file("network-config") == Some(&b"version: 2\nethernets: {}\n"[..]),
        "network-config not passed through"
    );

    // Another run's or another token's seed: nothing.
    let earlier = Run {
        started: started - 600,
        ..run
    };
    for url in [
        tokens.seed_url(&base, &earlier),
        base.join(&format!("seeds/{host}/{}/cidata.iso", tokens.token(&run)))?,
    ] {
        let (code, _) = get(addr, &url).await?;
        ensure!(code == 404, "{url} got {code}");
    }

    // A hostname changed in the Lease behind the operator's back: the signature no longer
    // verifies, and nothing is served; sealed again (as the operator would), it is.
    let renamed = json!({ "spec": { "hosts": [
        { "host": host.clone(), "role": "node", "hostname": "renamed" }
    ] } });
    let tampered = leases
        .patch("ci-pod-1", &PatchParams::default(), &Patch::Merge(renamed))
        .await?;
    ensure!(tampered.metadata.generation != lease.metadata.generation);
    let (code, _) = get(addr, &tokens.seed_url(&base, &run)).await?;
    ensure!(code == 404, "a tampered Lease got {code}");
    leases
        .patch(
            "ci-pod-1",
            &PatchParams::default(),
            &Patch::Merge(seal(&tampered)),
        )
        .await?;
    let (code, body) = get(addr, &tokens.seed_url(&base, &run)).await?;
    ensure!(code == 200, "the sealed Lease got {code}");
    let meta = labpods_cidata::read(&body)?;
    let meta = meta.file("meta-data").context("no meta-data")?;
    ensure!(
        String::from_utf8_lossy(meta).contains("local-hostname: renamed"),
        "{}",
        String::from_utf8_lossy(meta)
    );

    // The user's Secret loses its key: no seed (the booking's mistake, nothing served).
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns_name);
    let mut secret = secrets.get("pod-data").await?;
    secret.data = Some([("other".to_owned(), ByteString(b"x".to_vec()))].into());
    secrets
        .replace("pod-data", &PostParams::default(), &secret)
        .await?;
    let (code, _) = get(addr, &tokens.seed_url(&base, &run)).await?;
    ensure!(code == 404, "a seed without its user data got {code}");

    // The run ends (the release starts): the seed is gone.
    let mut releasing = progress(started + 900)?;
    releasing.operation = Operation::Release;
    let current = hosts.get(&host).await?;
    status::write(
        &Metrics::new(),
        &hosts,
        &current,
        &LabHostStatus {
            provisioning: Some(releasing),
            ..LabHostStatus::default()
        },
    )
    .await?;
    let (code, _) = get(addr, &tokens.seed_url(&base, &run)).await?;
    ensure!(code == 404, "the seed outlived its run: {code}");
    Ok(())
}
