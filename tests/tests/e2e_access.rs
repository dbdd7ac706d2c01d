//! What a booking hands its user (issue 8): per host in the PodRequest's status its hostname,
//! MACs and what the booted host reported (addresses, SSH host keys, when), the access
//! Secret `<podrequest>-access` with an ssh_config and known_hosts that the real OpenSSH
//! client reads, and the pod descriptor `<podrequest>-pod` that python-jsonschema validates
//! against OPNFV pharos' schemas. The access test writes its reports into
//! `LabHost.status.reported` by hand, as the phone-home endpoint does (so another booking's
//! report can be planted: it never shows); in the descriptor test each simulated host reads
//! its seed and phones home itself.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams};
use labpods_api::v1alpha1::{
    AccessSpec, AssignedHost, ImageSpec, LabHost, PodRequest, PodRequestSpec,
};
use labpods_tests::e2e::{E2e, from_now};
use labpods_tests::leaks::{self, Output};
use labpods_tests::sim::HostGroup;
use labpods_tests::{openssh, pharos};
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

/// File `key` of the descriptor ConfigMap.
fn descriptor_file(config_map: &ConfigMap, key: &str) -> Result<String> {
    config_map
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned()
        .with_context(|| format!("the descriptor has no {key}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_booked_pod_has_a_descriptor_naming_every_host_that_validates_and_goes_with_it()
-> Result<()> {
    // Each host reads its seed and phones home as a booted cloud-init does (the simulator's
    // playback): the descriptor follows the reports.
    let mut e2e = E2e::start_lab("e2e-descriptor", &[HostGroup::new("small", 3)]).await?;
    e2e.serve_phone_home()?;
    e2e.start_operator("a")?;
    let ns = e2e.namespace().to_owned();
    let keys = tempfile::tempdir()?;
    let mut spec = PodRequestSpec::new(
        vec![e2e.role("jumphost", 1, None), e2e.role("node", 2, None)],
        ImageSpec::new(e2e.image()),
        "1h",
    );
    spec.access = Some(AccessSpec {
        ssh_authorized_keys: vec![openssh::host_key(keys.path(), "alice")?],
        ..AccessSpec::default()
    });
    e2e.book_spec("pod", spec).await?;
    e2e.check_ready("pod", &[("jumphost", 1), ("node", 2)])
        .await?;
    let pr = hosts_when(&mut e2e, "pod", "every host of pod to phone home", |h| {
        h.iter()
            .all(|h| h.hostname.is_some() && !h.mac_addresses.is_empty() && !h.addresses.is_empty())
    })
    .await?;
    let status = pr.status.clone().unwrap_or_default();
    ensure!(
        status.descriptor.as_deref() == Some("pod-pod"),
        "{status:?}"
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(e2e.client(), &ns);
    let descriptor = config_maps.get("pod-pod").await?;
    let owner = descriptor
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default();
    ensure!(
        owner.len() == 1
            && owner[0].kind == "PodRequest"
            && Some(&owner[0].uid) == pr.metadata.uid.as_ref(),
        "{owner:?}"
    );
    let pdf = descriptor_file(&descriptor, "pdf.yaml")?;
    pharos::validate_descriptor(&pdf, &descriptor_file(&descriptor, "idf.yaml")?)?;

    // Every host of the booking, by hostname, with its MACs; the jumphost role's host is
    // the PDF's jumphost.
    let parsed: serde_yaml::Value = serde_yaml::from_str(&pdf)?;
    let mut nodes: Vec<&serde_yaml::Value> = vec![&parsed["jumphost"]];
    nodes.extend(parsed["nodes"].as_sequence().into_iter().flatten());
    ensure!(nodes.len() == status.hosts.len(), "{pdf}");
    ensure!(
        parsed["jumphost"]["name"].as_str() == Some("jumphost-1"),
        "{pdf}"
    );
    for host in &status.hosts {
        let hostname = host.hostname.as_deref().unwrap_or_default();
        let node = nodes
            .iter()
            .find(|n| n["name"].as_str() == Some(hostname))
            .with_context(|| format!("{hostname} is not in the PDF:\n{pdf}"))?;
        let macs: Vec<&str> = node["interfaces"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|i| i["mac_address"].as_str())
            .collect();
        ensure!(
            macs == host.mac_addresses,
            "{hostname}: {macs:?} vs {host:?}"
        );
        ensure!(
            node["remote_management"]["type"].as_str() == Some("redfish"),
            "{node:?}"
        );
    }
    // No BMC credential, in any spelling the harness knows.
    let idf = descriptor_file(&descriptor, "idf.yaml")?;
    let outputs = [pdf.clone(), idf].map(|text| Output {
        source: "the pod descriptor".into(),
        text,
    });
    let found = leaks::find(&[e2e.sim()?.login()], &outputs);
    ensure!(found.is_empty(), "{found:?}");
    ensure!(
        !pdf.contains("\"pass\"") && !pdf.contains("\"user\""),
        "{pdf}"
    );

    // The IDF names where each host reported from (the descriptor may lag the status by a
    // pass).
    let idf = e2e
        .wait("the IDF to list every reported address", TIMEOUT, || {
            let config_maps = config_maps.clone();
            let hosts = status.hosts.clone();
            async move {
                let data = config_maps.get("pod-pod").await?.data.unwrap_or_default();
                Ok(data.get("idf.yaml").cloned().filter(|idf| {
                    hosts
                        .iter()
                        .flat_map(|h| &h.addresses)
                        .all(|a| idf.contains(&format!("\"{a}\"")))
                }))
            }
        })
        .await?;
    pharos::validate_descriptor(&pdf, &idf)?;

    // Removed with the request (the garbage collector, by the ownerReference).
    e2e.release("pod").await?;
    e2e.wait(
        "the descriptor to be collected with pod",
        Duration::from_secs(120),
        || {
            let config_maps = config_maps.clone();
            async move {
                Ok(config_maps
                    .get_opt("pod-pod")
                    .await?
                    .is_none()
                    .then_some(()))
            }
        },
    )
    .await?;
    e2e.shutdown().await?;
    Ok(())
}
