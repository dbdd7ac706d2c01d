//! The NoCloud seed reaches the hosts (issue 8): each host of a booking with keys, user data
//! and network-config gets its own seed on the second virtual medium, which the simulated
//! host's cloud-init reads and answers with a phone-home (generated host key, its own
//! address), as a real host would. That fills the PodRequest's status and the access
//! Secret; at release the seed is ejected and its URL serves nothing. The same on
//! sushy-tools (its Floppy/USBStick device); a seed that cannot be made fails the booking
//! naming the field.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};
use labpods_api::v1alpha1::{
    AccessSpec, AssignedHost, ImageSpec, PodRequest, PodRequestPhase, PodRequestSpec,
    UserDataSecretRef,
};
use labpods_redfish::Medium;
use labpods_sim::{Device, Event};
use labpods_tests::e2e::E2e;
use labpods_tests::leaks::Confidential;
use labpods_tests::openssh;
use labpods_tests::sim::HostGroup;

const TIMEOUT: Duration = Duration::from_secs(60);
const NETWORK: &str = "version: 2\nethernets:\n  eth0: {dhcp4: true}\n";

/// The HTTP status of GET `url` (plain HTTP on a local listener).
async fn status_of(url: &url::Url) -> Result<u16> {
    let addr = url
        .socket_addrs(|| None)?
        .first()
        .copied()
        .context("no address")?;
    Ok(labpods_tests::http_get::get(addr, url.path()).await?.0)
}

/// A user-data Secret `name` in the test's namespace holding `user_data`.
async fn user_data_secret(e2e: &E2e, name: &str, user_data: &str) -> Result<()> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        data: Some([("userData".to_owned(), ByteString(user_data.into()))].into()),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(e2e.client(), e2e.namespace())
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(())
}

fn spec(e2e: &E2e, hosts: u32, access: AccessSpec) -> PodRequestSpec {
    let mut spec = PodRequestSpec::new(
        vec![e2e.role("node", hosts, None)],
        ImageSpec::new(e2e.image()),
        "1h",
    );
    spec.access = Some(access);
    spec
}

/// The request's hosts once every one has reported its host keys.
async fn reported_hosts(e2e: &mut E2e, name: &str) -> Result<(String, Vec<AssignedHost>)> {
    let api: Api<PodRequest> = Api::namespaced(e2e.client(), e2e.namespace());
    e2e.wait(
        &format!("every host of {name} to phone home"),
        TIMEOUT,
        || {
            let api = api.clone();
            async move {
                let pr = api.get(name).await?;
                let uid = pr.metadata.uid.clone().unwrap_or_default();
                let hosts = pr.status.map(|s| s.hosts).unwrap_or_default();
                let done = !hosts.is_empty()
                    && hosts
                        .iter()
                        .all(|h| !h.host_keys.is_empty() && h.ready_at.is_some());
                Ok(done.then_some((uid, hosts)))
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_each_host_reads_its_seed_from_the_second_medium_and_phones_home() -> Result<()> {
    let mut e2e = E2e::start_lab("e2e-seed-delivery", &[HostGroup::new("small", 2)]).await?;
    let base = e2e.serve_phone_home()?;
    e2e.start_operator("a")?;
    let keys = tempfile::tempdir()?;
    let user_key = openssh::host_key(keys.path(), "alice")?;
    // The user's own data: in the seed, and nowhere the operator writes.
    let marker = format!("labpods-e2e-{}", rand::random::<u64>());
    e2e.keep_confidential(Confidential::value("user data", &marker));
    let user_data = format!("#cloud-config\nruncmd:\n  - [touch, /etc/{marker}]\n");
    user_data_secret(&e2e, "cloud-init", &user_data).await?;
    let access = AccessSpec {
        ssh_authorized_keys: vec![user_key.clone()],
        user_data_secret_ref: Some(UserDataSecretRef {
            name: "cloud-init".into(),
            key: None,
        }),
        network_data: Some(NETWORK.into()),
    };
    e2e.book_spec("pod", spec(&e2e, 2, access)).await?;
    e2e.check_ready("pod", &[("node", 2)]).await?;
    let (uid, hosts) = reported_hosts(&mut e2e, "pod").await?;

    let mut seed_urls = Vec::new();
    let mut reported_keys = BTreeSet::new();
    for assigned in &hosts {
        let host = &assigned.host;
        let state = e2e.sim()?.bmc(host)?.state();
        ensure!(state.usb_stick.inserted, "{host}: no seed inserted");
        let url = state.usb_stick.image.clone().context("no seed URL")?;
        let playback = state.playback.context("the host played no seed")?;
        ensure!(
            playback.url == url,
            "{host} read another seed: {playback:?}"
        );
        let seed = playback.seed.context("the seed was not read")?;
        let hostname = assigned.hostname.clone().context("no hostname")?;
        ensure!(
            seed.instance_id
                .as_deref()
                .is_some_and(|i| i.starts_with(&format!("labpods-{uid}-{host}-"))),
            "{host}: instance-id {:?}",
            seed.instance_id
        );
        ensure!(
            seed.local_hostname.as_deref() == Some(hostname.as_str()),
            "{host}: hostname {:?}, want {hostname}",
            seed.local_hostname
        );
        ensure!(
            seed.user_data.starts_with("#cloud-config\n")
                && seed.user_data.contains(&user_key)
                && seed.user_data.contains(&marker),
            "{host}: the keys or the user's data are missing from its user-data"
        );
        ensure!(seed.network_config.as_deref() == Some(NETWORK), "{seed:?}");
        let post = playback.phone_home.context("no phone-home posted")?;
        ensure!(
            post.url
                .starts_with(&format!("{base}phone-home/{host}?token=")),
            "{host}: phone_home.url {} is not this operator's for this host",
            post.url
        );
        ensure!(
            post.status == Some(204) || post.status == Some(200),
            "{post:?}"
        );
        // Status holds the key without its comment, and the address the host posted from.
        ensure!(
            post.host_key.starts_with(&assigned.host_keys[0]),
            "{host}: status {:?}, host posted {}",
            assigned.host_keys,
            post.host_key
        );
        ensure!(
            assigned.addresses == [post.address.clone()],
            "{host}: {:?}",
            assigned.addresses
        );
        reported_keys.insert(assigned.host_keys[0].clone());
        seed_urls.push((host.clone(), url::Url::parse(&url)?));
    }

    let secret = Api::<Secret>::namespaced(e2e.client(), e2e.namespace())
        .get("pod-access")
        .await?;
    let known_hosts = secret
        .data
        .as_ref()
        .and_then(|d| d.get("known_hosts"))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .context("no known_hosts")?;
    let listed: BTreeSet<String> = known_hosts
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .collect();
    ensure!(
        listed == reported_keys,
        "known_hosts holds {listed:?}, the hosts reported {reported_keys:?}"
    );

    let names: Vec<String> = hosts.iter().map(|h| h.host.clone()).collect();
    e2e.release("pod").await?;
    e2e.wait_hosts_free(&names, TIMEOUT).await?;
    for (host, url) in &seed_urls {
        let bmc = e2e.sim()?.bmc(host)?;
        ensure!(
            !bmc.state().usb_stick.inserted,
            "{host}: seed left inserted"
        );
        ensure!(
            bmc.history().iter().any(|e| matches!(
                e,
                Event::MediaEjected { device: Device::UsbStick, image: Some(i), .. } if i == url.as_str()
            )),
            "{host}: the seed was never ejected"
        );
        let code = status_of(url).await?;
        ensure!(code == 404, "{host}: the seed outlived its booking: {code}");
    }
    e2e.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_sushy_tools_takes_the_seed_on_its_removable_medium() -> Result<()> {
    let mut e2e = E2e::start_sushy_lab("e2e-sushy-seed", 1).await?;
    e2e.serve_phone_home()?;
    e2e.start_operator("a")?;
    let keys = tempfile::tempdir()?;
    let access = AccessSpec {
        ssh_authorized_keys: vec![openssh::host_key(keys.path(), "bob")?],
        ..AccessSpec::default()
    };
    e2e.book_spec("pod", spec(&e2e, 1, access)).await?;
    let hosts = e2e.check_ready("pod", &[("node", 1)]).await?;
    let bmc = e2e.sushy()?.bmc(&hosts[0]).await?;
    let seed = bmc.media_state_on(Medium::Removable).await?;
    let url = seed
        .image
        .clone()
        .context("no seed on the removable medium")?;
    ensure!(
        seed.inserted && url.contains(&format!("/seeds/{}/", hosts[0])),
        "{seed:?}"
    );
    ensure!(
        !bmc.media_state().await?.inserted,
        "the CD is ejected after boot"
    );
    e2e.release("pod").await?;
    e2e.wait_hosts_free(&hosts, TIMEOUT).await?;
    let seed = bmc.media_state_on(Medium::Removable).await?;
    ensure!(!seed.inserted, "seed left inserted at release: {seed:?}");
    e2e.shutdown().await?;
    Ok(())
}

/// User data the operator cannot put in a seed: a Secret that does not exist, and one over
/// the 64 KiB bound. Each fails its booking with a message naming the field, and its host is
/// released as after any booking, not put in Error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_missing_or_oversized_user_data_secret_fails_the_booking_naming_the_field()
-> Result<()> {
    let mut e2e = E2e::start_lab("e2e-seed-bad-input", &[HostGroup::new("small", 2)]).await?;
    e2e.serve_phone_home()?;
    e2e.start_operator("a")?;
    user_data_secret(
        &e2e,
        "too-big",
        &format!("#cloud-config\n#{}\n", "x".repeat(70_000)),
    )
    .await?;
    let cases = [
        ("missing", "never-created", "never-created does not exist"),
        ("oversized", "too-big", "make it smaller"),
    ];
    for (pod, secret, _) in cases {
        let access = AccessSpec {
            user_data_secret_ref: Some(UserDataSecretRef {
                name: secret.into(),
                key: None,
            }),
            ..AccessSpec::default()
        };
        e2e.book_spec(pod, spec(&e2e, 1, access)).await?;
    }
    for (pod, _, says) in cases {
        let request = e2e
            .wait_phase(pod, PodRequestPhase::Failed, TIMEOUT)
            .await?;
        let status = request.status.unwrap_or_default();
        let message = status.message.clone().unwrap_or_default();
        ensure!(
            message.contains("spec.access.userDataSecretRef") && message.contains(says),
            "{pod}: {status:?}"
        );
    }
    let hosts = e2e.host_names();
    e2e.wait_hosts_free(&hosts, TIMEOUT).await?;
    e2e.shutdown().await?;
    Ok(())
}
