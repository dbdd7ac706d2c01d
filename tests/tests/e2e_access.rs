//! What a booking hands its user (issue 8): per host in the PodRequest's status its hostname,
//! MACs and what the booted host reported (addresses, SSH host keys, when), and the access
//! Secret `<podrequest>-access` with an ssh_config and known_hosts that the real OpenSSH
//! client reads. The reports are written into `LabHost.status.reported` by hand, as the
//! phone-home endpoint writes them; another booking's report never shows.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use labpods_api::v1alpha1::{AssignedHost, LabHost, PodRequest};
use labpods_tests::e2e::{E2e, from_now};
use labpods_tests::openssh;
use labpods_tests::sim::HostGroup;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Writes `host`'s phone-home report for Lease `lease` (`ns/name`), as the endpoint does.
async fn report(e2e: &E2e, host: &str, lease: &str, address: &str, key: &str) -> Result<()> {
    let api: Api<LabHost> = Api::all(e2e.client());
    let patch = json!({
        "apiVersion": "labpods.dev/v1alpha1",
        "kind": "LabHost",
        "status": { "reported": {
            "lease": lease,
            "hostname": "reported-name",
            "addresses": [address],
            "hostKeys": [key],
            "at": from_now(0)?,
        } },
    });
    api.patch_status(
        host,
        &PatchParams::apply("e2e-phone-home").force(),
        &Patch::Apply(&patch),
    )
    .await
    .with_context(|| format!("writing the report of {host}"))?;
    Ok(())
}

/// The request's hosts once `check` holds for them.
async fn hosts_when(
    e2e: &mut E2e,
    name: &str,
    what: &str,
    check: impl Fn(&[AssignedHost]) -> bool,
) -> Result<PodRequest> {
    let api: Api<PodRequest> = Api::namespaced(e2e.client(), e2e.namespace());
    let check = &check;
    e2e.wait(what, TIMEOUT, || {
        let api = api.clone();
        async move {
            let pr = api.get(name).await?;
            let hosts = pr
                .status
                .as_ref()
                .map(|s| s.hosts.as_slice())
                .unwrap_or_default();
            Ok(check(hosts).then_some(pr))
        }
    })
    .await
}

fn file(secret: &Secret, key: &str) -> Result<String> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .with_context(|| format!("the access Secret has no {key}"))?;
    Ok(String::from_utf8(bytes.0.clone())?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_reported_addresses_and_host_keys_reach_status_and_the_access_secret() -> Result<()> {
    let mut e2e = E2e::start("e2e-access", &[HostGroup::new("small", 3)]).await?;
    let ns = e2e.namespace().to_owned();
    let keys_dir = tempfile::tempdir()?;
    e2e.book("pod", vec![e2e.role("node", 2, None)], "1h")
        .await?;
    e2e.book("other", vec![e2e.role("node", 1, None)], "1h")
        .await?;
    e2e.check_ready("pod", &[("node", 2)]).await?;
    let other_host = e2e.check_ready("other", &[("node", 1)]).await?[0].clone();

    let pr = hosts_when(&mut e2e, "pod", "hostnames and MACs of pod", |h| {
        h.iter()
            .all(|h| h.hostname.is_some() && !h.mac_addresses.is_empty())
    })
    .await?;
    let hosts = pr.status.map(|s| s.hosts).unwrap_or_default();
    let (first, second) = (&hosts[0], &hosts[1]);
    let hostname = first.hostname.clone().unwrap_or_default();
    ensure!(
        [first.hostname.as_deref(), second.hostname.as_deref()] == [Some("node-1"), Some("node-2")]
            || [first.hostname.as_deref(), second.hostname.as_deref()]
                == [Some("node-2"), Some("node-1")],
        "hostnames are <role>-<n>: {hosts:?}"
    );

    let key = openssh::host_key(keys_dir.path(), "first")?;
    let foreign = openssh::host_key(keys_dir.path(), "foreign")?;
    report(&e2e, &first.host, &format!("{ns}/pod"), "10.77.0.11", &key).await?;
    // Another booking's report, on its own host and (stale) on one of pod's.
    report(
        &e2e,
        &other_host,
        &format!("{ns}/other"),
        "10.77.0.99",
        &foreign,
    )
    .await?;
    report(
        &e2e,
        &second.host,
        &format!("{ns}/other"),
        "10.77.0.98",
        &foreign,
    )
    .await?;

    let first_host = first.host.clone();
    let pr = hosts_when(
        &mut e2e,
        "pod",
        "pod to show the first host's report",
        |h| {
            h.iter()
                .any(|h| h.host == first_host && h.addresses == ["10.77.0.11"])
        },
    )
    .await?;
    let status = pr.status.clone().unwrap_or_default();
    let shown = status
        .hosts
        .iter()
        .find(|h| h.host == first.host)
        .context("first host")?;
    ensure!(shown.host_keys == [key.clone()], "{shown:?}");
    ensure!(shown.ready_at.is_some(), "{shown:?}");
    let unshown = status
        .hosts
        .iter()
        .find(|h| h.host == second.host)
        .context("second host")?;
    ensure!(
        unshown.addresses.is_empty() && unshown.host_keys.is_empty() && unshown.ready_at.is_none(),
        "another booking's report shows in pod: {unshown:?}"
    );
    ensure!(
        status.access_secret.as_deref() == Some("pod-access"),
        "{status:?}"
    );

    // The Secret, owned by the request, read the way its user reads it.
    let secrets: Api<Secret> = Api::namespaced(e2e.client(), &ns);
    let secret = secrets.get("pod-access").await?;
    let owner = secret.metadata.owner_references.clone().unwrap_or_default();
    ensure!(
        owner.len() == 1
            && owner[0].kind == "PodRequest"
            && Some(&owner[0].uid) == pr.metadata.uid.as_ref(),
        "{owner:?}"
    );
    let dir = tempfile::tempdir()?;
    let (config, known_hosts) = (
        dir.path().join("ssh_config"),
        dir.path().join("known_hosts"),
    );
    std::fs::write(&config, file(&secret, "ssh_config")?)?;
    std::fs::write(&known_hosts, file(&secret, "known_hosts")?)?;
    let resolved = openssh::resolved_config(&config, &hostname)?;
    for line in [
        "hostname 10.77.0.11".to_owned(),
        format!("hostkeyalias {hostname}"),
        "stricthostkeychecking true".to_owned(),
    ] {
        ensure!(
            resolved.lines().any(|l| l == line),
            "ssh -G lacks {line:?}:\n{resolved}"
        );
    }
    ensure!(
        resolved
            .lines()
            .any(|l| l.starts_with("userknownhostsfile ")
                && l.ends_with(&format!("/.ssh/labpods/{ns}/pod/known_hosts"))),
        "{resolved}"
    );
    // ssh looks the alias up in known_hosts: it finds the reported key, and only it.
    let body = key.split(' ').nth(1).unwrap_or_default();
    let found = openssh::known_hosts_lookup(&known_hosts, &hostname)?;
    ensure!(found.len() == 1 && found[0].contains(body), "{found:?}");
    let all = std::fs::read_to_string(&known_hosts)? + &std::fs::read_to_string(&config)?;
    ensure!(
        !all.contains("10.77.0.9") && !all.contains(foreign.split(' ').nth(1).unwrap_or("-")),
        "{all}"
    );

    // The second host reports for pod: the Secret follows.
    let second_key = openssh::host_key(keys_dir.path(), "second")?;
    report(
        &e2e,
        &second.host,
        &format!("{ns}/pod"),
        "10.77.0.12",
        &second_key,
    )
    .await?;
    let second_name = second.hostname.clone().unwrap_or_default();
    e2e.wait("the access Secret to list the second host", TIMEOUT, || {
        let secrets = secrets.clone();
        let second_name = second_name.clone();
        async move {
            let secret = secrets.get("pod-access").await?;
            let config = file(&secret, "ssh_config").unwrap_or_default();
            Ok(config
                .contains(&format!("Host {second_name}\n"))
                .then_some(()))
        }
    })
    .await?;

    // Removed with the request (the garbage collector, by the ownerReference).
    e2e.release("pod").await?;
    e2e.wait(
        "the access Secret to be collected with pod",
        Duration::from_secs(120),
        || {
            let secrets = secrets.clone();
            async move { Ok(secrets.get_opt("pod-access").await?.is_none().then_some(())) }
        },
    )
    .await?;
    e2e.shutdown().await?;
    Ok(())
}
