//! `kubectl lab` as a user runs it: the `kubectl-lab` binary with `--kubeconfig`, against the
//! shared control plane with fixture LabHosts, Leases and PodRequests of known content (no
//! operator: these read and write the API), and against a bare control plane without the
//! CRDs. The whole session with a running operator is `e2e_kubectl_lab_session` in
//! kubectl_lab_e2e.rs.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use labpods_api::v1alpha1::{
    ImageSpec, LABEL_LAB, LabHost, LabHostSpec, Lease, LeaseHost, LeaseSpec, PodRequest,
    RequestRef, SecretReference,
};
use labpods_tests::{ControlPlane, ControlPlaneConfig, DeleteOnDrop, TestCluster};
use serde_json::{Value, json};

mod kubectl_lab_support;

use kubectl_lab_support::lab;

/// The row of a plugin table whose first cell is `name`, split on runs of 3+ spaces.
fn row<'a>(table: &'a str, name: &str) -> Result<Vec<&'a str>> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .with_context(|| format!("no row {name} in:\n{table}"))
}

fn minute(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%MZ").to_string()
}

/// A LabHost of `lab` (deleted when the test ends), its status as the LabHost controller
/// would write it.
async fn labhost(
    cluster: &TestCluster,
    client: &Client,
    name: &str,
    lab: &str,
    profile: &str,
    status: Value,
) -> Result<DeleteOnDrop> {
    let api: Api<LabHost> = Api::all(client.clone());
    let mut host = LabHost::new(
        name,
        LabHostSpec::new(
            "http://127.0.0.1:9",
            profile,
            SecretReference::new("labpods-system", "bmc"),
        ),
    );
    host.metadata.labels = Some([(LABEL_LAB.to_string(), lab.to_string())].into());
    host.spec.maintenance = status["state"] == "Maintenance";
    api.create(&PostParams::default(), &host).await?;
    let guard = cluster.delete_on_drop(format!("labhost/{name}"));
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    Ok(guard)
}

async fn lease(
    client: &Client,
    namespace: &str,
    name: &str,
    hosts: &[(&str, &str)],
    window: (Timestamp, Timestamp),
    phase: &str,
) -> Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let spec = LeaseSpec::new(
        RequestRef {
            name: name.into(),
            uid: "00000000-0000-0000-0000-000000000001".into(),
        },
        hosts.iter().map(|(h, r)| LeaseHost {
            host: h.to_string(),
            role: r.to_string(),
            hostname: None,
        }),
        Time(window.0),
        Time(window.1),
        ImageSpec::new("http://images.test/os.iso"),
    );
    api.create(&PostParams::default(), &Lease::new(name, spec))
        .await?;
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "phase": phase } })),
    )
    .await?;
    Ok(())
}

/// To the minute: fixtures' windows are shown in minutes.
fn now_minute() -> Result<Timestamp> {
    let s = Timestamp::now().as_second();
    Ok(Timestamp::from_second(s - s % 60)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lab_hosts_and_calendar_show_who_holds_what_until_when() -> Result<()> {
    let cluster = TestCluster::get()?;
    let client = cluster.client().await?;
    let ns = cluster.namespace("kubectl-lab-hosts").await?;
    let lab_name = ns.name().to_string();
    let (h1, h2, h3) = (
        format!("{lab_name}-h1"),
        format!("{lab_name}-h2"),
        format!("{lab_name}-h3"),
    );
    let _hosts = [
        labhost(
            &cluster,
            &client,
            &h1,
            &lab_name,
            "small",
            json!({"state": "Provisioned", "power": "On"}),
        )
        .await?,
        labhost(
            &cluster,
            &client,
            &h2,
            &lab_name,
            "large",
            json!({"state": "Available", "power": "Off"}),
        )
        .await?,
        labhost(
            &cluster,
            &client,
            &h3,
            &lab_name,
            "large",
            json!({"state": "Maintenance", "power": "Off"}),
        )
        .await?,
    ];
    let now = now_minute()?;
    let hour = SignedDuration::from_hours(1);
    let held_end = now + 2 * hour;
    lease(
        &client,
        ns.name(),
        "held",
        &[(&h1, "node")],
        (now - hour, held_end),
        "Ready",
    )
    .await?;
    let (later_start, later_end) = (now + 24 * hour, now + 48 * hour);
    lease(
        &client,
        ns.name(),
        "later",
        &[(&h2, "node")],
        (later_start, later_end),
        "Bound",
    )
    .await?;
    let kubeconfig = cluster.kubeconfig();
    let held = format!("{}/held", ns.name());
    let later = format!("{}/later", ns.name());

    let table = lab(kubeconfig, &["hosts", "--lab", &lab_name])
        .await?
        .ok()?;
    assert!(
        table.starts_with("NAME") && table.contains("HELD BY") && table.contains("FREE FROM"),
        "{table}"
    );
    assert!(!table.contains('\x1b'), "colour into a pipe:\n{table}");
    // On a terminal the states are coloured (Available green), unless NO_COLOR says not to.
    let on_tty = |no_color: bool| -> Result<String> {
        let command = format!(
            "'{}' --kubeconfig '{}' hosts --lab '{lab_name}'",
            kubectl_lab_support::plugin()?.display(),
            kubeconfig.display()
        );
        let mut script = std::process::Command::new("script");
        script.args(["-qec", &command, "/dev/null"]);
        if no_color {
            script.env("NO_COLOR", "1");
        }
        let out = script.output()?;
        anyhow::ensure!(out.status.success(), "script: {out:?}");
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let coloured = on_tty(false)?;
    assert!(
        coloured.contains("\x1b[32mAvailable"),
        "no colour on a terminal:\n{coloured:?}"
    );
    let plain = on_tty(true)?;
    assert!(
        plain.contains("Available") && !plain.contains("\x1b["),
        "colour despite NO_COLOR:\n{plain:?}"
    );
    let r1 = row(&table, &h1)?;
    assert_eq!(
        &r1[..6],
        [h1.as_str(), &lab_name, "small", "Provisioned", "On", &held],
        "{table}"
    );
    assert_eq!(
        r1[6],
        minute(held_end),
        "held until the Lease's end:\n{table}"
    );
    assert!(
        r1[7].starts_with(&minute(held_end)),
        "free once the Lease ends:\n{table}"
    );
    let r2 = row(&table, &h2)?;
    assert_eq!(
        &r2[3..],
        [
            "Available",
            "Off",
            "-",
            "-",
            "now",
            &format!("{later} from {}", minute(later_start))
        ],
        "{table}"
    );
    let r3 = row(&table, &h3)?;
    assert_eq!(
        &r3[3..8],
        ["Maintenance", "Off", "-", "-", "-"],
        "never free while in maintenance:\n{table}"
    );

    // A day and an hour from now h1 is free again, h2 is reserved, h3 still in maintenance.
    let free = lab(
        kubeconfig,
        &["hosts", "--lab", &lab_name, "--free-at", "+1d1h"],
    )
    .await?
    .ok()?;
    assert!(
        free.contains(&h1) && !free.contains(&h2) && !free.contains(&h3),
        "{free}"
    );
    let none = lab(
        kubeconfig,
        &["hosts", "--lab", &lab_name, "--profile", "gpu"],
    )
    .await?
    .ok()?;
    assert_eq!(none.trim(), "no LabHosts match");

    let json: Value = serde_json::from_str(
        &lab(kubeconfig, &["hosts", "--lab", &lab_name, "-o", "json"])
            .await?
            .ok()?,
    )?;
    let rows = json.as_array().context("hosts -o json is a list")?;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["name"], h1.as_str());
    assert_eq!(rows[0]["heldBy"], held.as_str());
    assert_eq!(
        rows[1]["nextReservation"],
        format!("{later} from {}", minute(later_start))
    );

    let calendar = lab(kubeconfig, &["calendar", "--lab", &lab_name, "--days", "3"])
        .await?
        .ok()?;
    let line = |host: &str| -> Result<String> {
        calendar
            .lines()
            .find(|l| l.starts_with(host))
            .map(|l| l[host.len()..].trim().to_string())
            .with_context(|| format!("no {host} in the calendar:\n{calendar}"))
    };
    let (t1, t2, t3) = (line(&h1)?, line(&h2)?, line(&h3)?);
    assert_eq!(t1.len(), 12, "3 days of 4 slots:\n{calendar}");
    // Slots are 6 h from today 00:00 UTC.
    let slot = |t: Timestamp| ((t.as_second() % 86_400) / 21_600) as usize;
    assert_eq!(
        t1.chars().nth(slot(now)),
        Some('A'),
        "h1 held now:\n{calendar}"
    );
    assert!(
        !t1[slot(now) + 2..].contains('A'),
        "h1 free a day on:\n{calendar}"
    );
    assert_eq!(
        t2.chars().nth(slot(later_start) + 4),
        Some('B'),
        "h2 reserved tomorrow:\n{calendar}"
    );
    assert_eq!(
        t2.chars().nth(slot(now)),
        Some('.'),
        "h2 free now:\n{calendar}"
    );
    assert!(t3.ends_with("####"), "h3 out of service:\n{calendar}");
    assert!(
        calendar.contains(&format!("A  {held}  Ready  ")),
        "{calendar}"
    );
    assert!(
        calendar.contains(&format!(
            "B  {later}  Bound (reserved)  {} -> {}  1 host",
            minute(later_start),
            minute(later_end)
        )),
        "{calendar}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lab_book_status_extend_release_and_their_errors() -> Result<()> {
    let cluster = TestCluster::get()?;
    let client = cluster.client().await?;
    let ns = cluster.namespace("kubectl-lab-book").await?;
    let kubeconfig = cluster.kubeconfig();
    let n = ns.name();
    let booked = lab(
        kubeconfig,
        &[
            "book",
            "ci-pod",
            "-n",
            n,
            "--role",
            "jumphost=1:x86-small",
            "--role",
            "node=2",
            "--lab",
            "no-such-lab",
            "--image",
            "http://images.test/os.iso",
            "--for",
            "1d",
        ],
    )
    .await?
    .ok()?;
    assert_eq!(
        booked.trim(),
        format!(
            "podrequest {n}/ci-pod created: 1 jumphost + 2 node for 1d, as soon as hosts are free"
        )
    );
    let api: Api<PodRequest> = Api::namespaced(client.clone(), n);
    let pr = api.get("ci-pod").await?;
    assert_eq!(pr.spec.host_count(), 3);
    let profiles: Vec<Option<&str>> = pr.spec.roles.iter().map(|r| r.profile.as_deref()).collect();
    assert_eq!(
        profiles,
        [Some("x86-small"), None],
        "--role jumphost=1:x86-small"
    );
    assert_eq!(pr.spec.duration.as_deref(), Some("1d"));

    let again = lab(
        kubeconfig,
        &[
            "book",
            "ci-pod",
            "-n",
            n,
            "--role",
            "node=1",
            "--image",
            "http://i.test/a.iso",
            "--for",
            "1h",
        ],
    )
    .await?;
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains(&format!(
            "a PodRequest named ci-pod already exists in namespace {n}"
        )),
        "{}",
        again.stderr
    );

    let status = lab(kubeconfig, &["status", "ci-pod", "-n", n])
        .await?
        .ok()?;
    assert!(
        status.starts_with(&format!("PodRequest {n}/ci-pod: Pending")),
        "{status}"
    );
    // In the scheduler's order: by creation, not by name. A request created a second later
    // (creation times are to the second) and named to sort first stands behind.
    let position = |status: &str| -> Result<usize> {
        let line = status
            .lines()
            .find(|l| l.starts_with("Queue: position "))
            .with_context(|| format!("a waiting request shows its place:\n{status}"))?;
        anyhow::ensure!(
            line.contains(" waiting (first come, first served); "),
            "says what the order is:\n{line}"
        );
        let number = line["Queue: position ".len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default();
        Ok(number.parse()?)
    };
    position(&status)?;
    let created = pr
        .metadata
        .creation_timestamp
        .as_ref()
        .context("no creationTimestamp")?
        .0
        .as_second();
    while Timestamp::now().as_second() <= created {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lab(
        kubeconfig,
        &[
            "book",
            "aa-later",
            "-n",
            n,
            "--role",
            "node=1",
            "--lab",
            "no-such-lab",
            "--image",
            "http://i.test/a.iso",
            "--for",
            "1h",
        ],
    )
    .await?
    .ok()?;
    let later = lab(kubeconfig, &["status", "aa-later", "-n", n])
        .await?
        .ok()?;
    let earlier = lab(kubeconfig, &["status", "ci-pod", "-n", n])
        .await?
        .ok()?;
    assert!(
        position(&later)? > position(&earlier)?,
        "created later, queued later:\n{earlier}\n{later}"
    );
    assert!(status.contains("Hosts: none assigned yet"), "{status}");
    let json: Value = serde_json::from_str(
        &lab(kubeconfig, &["status", "ci-pod", "-n", n, "-o", "json"])
            .await?
            .ok()?,
    )?;
    assert_eq!(json["phase"], "Pending");
    assert_eq!(json["name"], "ci-pod");
    let yaml = lab(kubeconfig, &["status", "ci-pod", "-n", n, "-o", "yaml"])
        .await?
        .ok()?;
    assert!(yaml.contains("phase: Pending"), "{yaml}");

    let missing = lab(kubeconfig, &["status", "nope", "-n", n]).await?;
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr.trim(),
        format!("error: no PodRequest named nope in namespace {n}")
    );
    let missing = lab(kubeconfig, &["release", "nope", "-n", n]).await?;
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("no PodRequest named nope"),
        "{}",
        missing.stderr
    );

    // Not bound yet: the request itself gets longer.
    let extended = lab(kubeconfig, &["extend", "ci-pod", "-n", n, "--by", "12h"])
        .await?
        .ok()?;
    assert_eq!(
        extended.trim(),
        "ci-pod has no hosts yet: its request is now 12h longer"
    );
    assert_eq!(
        api.get("ci-pod").await?.spec.duration.as_deref(),
        Some("1d12h")
    );

    let usage = lab(kubeconfig, &["extend", "ci-pod", "-n", n, "--by", "soon"]).await?;
    assert_eq!(usage.code, 2);
    assert!(
        usage.stderr.contains("--by \"soon\": expected a length"),
        "{}",
        usage.stderr
    );
    let usage = lab(
        kubeconfig,
        &[
            "book", "x", "-n", n, "--role", "node=0", "--image", "http://i", "--for", "1d",
        ],
    )
    .await?;
    assert_eq!(usage.code, 2);
    assert!(
        usage.stderr.contains("expected NAME=COUNT"),
        "{}",
        usage.stderr
    );
    let usage = lab(
        kubeconfig,
        &["book", "x", "-n", n, "--image", "http://i", "--for", "1d"],
    )
    .await?;
    assert_eq!(usage.code, 2, "clap's own usage error: {}", usage.stderr);

    let released = lab(kubeconfig, &["release", "ci-pod", "-n", n])
        .await?
        .ok()?;
    assert_eq!(released.trim(), "ci-pod released (it held no hosts)");
    assert!(
        api.get_opt("ci-pod").await?.is_none(),
        "no operator holds it back: gone"
    );

    let completion = lab(kubeconfig, &["completion", "bash"]).await?.ok()?;
    assert!(
        completion.contains("kubectl-lab") && completion.contains("calendar"),
        "{completion}"
    );
    let help = lab(kubeconfig, &["--help"]).await?.ok()?;
    assert!(
        help.contains("Examples:") && help.contains("Exit codes:"),
        "{help}"
    );
    Ok(())
}

/// Booking `pod` of one node in namespace `n`, as `kubectl lab book` writes it.
async fn booking_of_one_node(client: &kube::Client, n: &str) -> Result<Api<PodRequest>> {
    let pods: Api<PodRequest> = Api::namespaced(client.clone(), n);
    let spec = labpods_api::v1alpha1::PodRequestSpec::new(
        [labpods_api::v1alpha1::RoleSpec::new("node", 1)],
        ImageSpec::new("http://images.test/os.iso"),
        "1h",
    );
    pods.create(&PostParams::default(), &PodRequest::new("pod", spec))
        .await?;
    Ok(pods)
}

/// `kubectl lab ssh` reads the booking's access Secret (as the operator writes it), writes
/// its files to a private temporary directory and runs `ssh -F` there: a fake `ssh` first on
/// PATH records what it got and hands it to the real `ssh -G`, which resolves the options a
/// real connection would use. `kubectl lab status` shows each host's hostname and address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lab_ssh_runs_ssh_with_the_reported_host_key_pinned() -> Result<()> {
    use labpods_operator::controllers::scheduling::access;
    use labpods_tests::openssh;

    let cluster = TestCluster::get()?;
    let client = cluster.client().await?;
    let ns = cluster.namespace("kubectl-lab-ssh").await?;
    let (kubeconfig, n) = (cluster.kubeconfig(), ns.name());
    let work = tempfile::tempdir()?;
    let key = openssh::host_key(work.path(), "node")?;
    let hosts = vec![labpods_api::v1alpha1::AssignedHost {
        role: "node".into(),
        host: "lab-07".into(),
        hostname: Some("node-1".into()),
        addresses: vec!["10.1.0.5".into()],
        host_keys: vec![key.clone()],
        ..Default::default()
    }];
    let files = access::files(n, "pod", &hosts).context("files for a reported host")?;
    let pods = booking_of_one_node(&client, n).await?;
    pods.patch_status(
        "pod",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": {
            "phase": "Ready", "hosts": hosts, "accessSecret": "pod-access",
        } })),
    )
    .await?;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), n);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "pod-access" },
                "stringData": files,
            }))?,
        )
        .await?;

    // The fake ssh: records its arguments, the directory's mode and known_hosts, then runs
    // the real ssh -G on the same arguments.
    let bin = work.path().join("bin");
    std::fs::create_dir(&bin)?;
    let record = work.path().join("record");
    let real_ssh = openssh::bin_dir()?.join("ssh");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > {record}\nstat -c %a \"$(dirname \"$2\")\" > {record}.mode\ncp \"$(dirname \"$2\")/known_hosts\" {record}.known_hosts\nexec {real} -G \"$@\"\n",
        record = record.display(),
        real = real_ssh.display(),
    );
    let fake = bin.join("ssh");
    std::fs::write(&fake, script)?;
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let mut path = std::ffi::OsString::from(&bin);
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    let env = [("PATH", path)];

    let resolved = kubectl_lab_support::lab_with_env(
        kubeconfig,
        &["ssh", "pod", "node-1", "-n", n, "--", "uname", "-a"],
        &env,
    )
    .await?
    .ok()?;
    let args = std::fs::read_to_string(&record)?;
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(args[0], "-F");
    let dir = std::path::Path::new(args[1])
        .parent()
        .context("config dir")?;
    assert_eq!(
        args[2..],
        [
            "-o",
            &format!("UserKnownHostsFile={}", dir.join("known_hosts").display()),
            "node-1",
            "--",
            "uname",
            "-a"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(format!("{}.mode", record.display()))?.trim(),
        "700"
    );
    assert!(
        !dir.exists(),
        "the temporary directory is removed when ssh returns"
    );
    for line in [
        "hostname 10.1.0.5".to_owned(),
        "hostkeyalias node-1".to_owned(),
        "stricthostkeychecking true".to_owned(),
        format!("userknownhostsfile {}", dir.join("known_hosts").display()),
    ] {
        assert!(
            resolved.lines().any(|l| l == line),
            "ssh -G lacks {line:?}:\n{resolved}"
        );
    }
    let known_hosts = std::path::PathBuf::from(format!("{}.known_hosts", record.display()));
    let found = openssh::known_hosts_lookup(&known_hosts, "node-1")?;
    let body = key.split(' ').nth(1).unwrap_or_default();
    assert!(found.len() == 1 && found[0].contains(body), "{found:?}");

    let unknown =
        kubectl_lab_support::lab_with_env(kubeconfig, &["ssh", "pod", "node-9", "-n", n], &env)
            .await?;
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown
            .stderr
            .contains("no reachable host node-9: choose one of node-1"),
        "{}",
        unknown.stderr
    );

    let status = lab(kubeconfig, &["status", "pod", "-n", n]).await?.ok()?;
    let lab_07 = row(&status, "lab-07")?;
    assert_eq!(
        lab_07[..4],
        ["lab-07", "node", "node-1", "10.1.0.5"],
        "{status}"
    );
    Ok(())
}

/// `kubectl lab descriptor` prints the PDF (or with `--idf` the IDF) of the ConfigMap the
/// booking's status names, as the operator writes it; a booking without one is told why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lab_descriptor_prints_the_pdf_and_with_idf_the_idf() -> Result<()> {
    use labpods_operator::controllers::scheduling::descriptor;

    let cluster = TestCluster::get()?;
    let client = cluster.client().await?;
    let ns = cluster.namespace("kubectl-lab-descriptor").await?;
    let (kubeconfig, n) = (cluster.kubeconfig(), ns.name());
    let pods = booking_of_one_node(&client, n).await?;

    let none = lab(kubeconfig, &["descriptor", "pod", "-n", n]).await?;
    assert_eq!(none.code, 1, "{}", none.stderr);
    assert!(
        none.stderr.contains(
            "no pod descriptor (written once it is bound) of booking named pod in namespace"
        ),
        "{}",
        none.stderr
    );

    let (pdf, idf) = (
        "{\n  \"version\": 1.0\n}\n",
        "{\n  \"idf\": {\n    \"version\": 0.1\n  }\n}\n",
    );
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), n);
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "pod-pod" },
                "data": { descriptor::PDF: pdf, descriptor::IDF: idf },
            }))?,
        )
        .await?;
    pods.patch_status(
        "pod",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "phase": "Ready", "descriptor": "pod-pod" } })),
    )
    .await?;
    let printed = lab(kubeconfig, &["descriptor", "pod", "-n", n])
        .await?
        .ok()?;
    assert_eq!(printed, pdf);
    let printed = lab(kubeconfig, &["descriptor", "pod", "--idf", "-n", n])
        .await?
        .ok()?;
    assert_eq!(printed, idf);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lab_says_when_labpods_is_not_installed() -> Result<()> {
    let plane = ControlPlane::start(ControlPlaneConfig::default()).await?;
    let status = lab(plane.kubeconfig(), &["status", "x", "-n", "default"]).await?;
    assert_eq!(status.code, 1);
    assert_eq!(
        status.stderr.trim(),
        "error: labpods is not installed in this cluster: CRD podrequests.labpods.dev missing"
    );
    let hosts = lab(plane.kubeconfig(), &["hosts"]).await?;
    assert_eq!(hosts.code, 1);
    assert_eq!(
        hosts.stderr.trim(),
        "error: labpods is not installed in this cluster: CRD labhosts.labpods.dev missing"
    );
    let unreachable = lab(plane.kubeconfig(), &["hosts", "--context", "nope"]).await?;
    assert_eq!(unreachable.code, 1);
    assert!(
        unreachable.stderr.contains("cannot load the kubeconfig"),
        "{}",
        unreachable.stderr
    );
    Ok(())
}

/// kubectl's own shell completion completes `kubectl lab <TAB>`: kubectl (1.26+) runs
/// `kubectl_complete-lab`, shipped beside the plugin, and relays its candidates.
#[tokio::test]
async fn kubectl_completes_kubectl_lab_through_kubectl_complete_lab() -> Result<()> {
    let plugin = kubectl_lab_support::plugin()?;
    let dir = plugin.parent().context("the plugin's directory")?;
    let mut path = std::ffi::OsString::from(dir);
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    let kubectl = labpods_tests::binaries::kubectl()?;
    let cases: [(&[&str], &str); 3] = [
        (&["bo"], "book\tBook a pod"),
        (&["book", "--ro"], "--role\t"),
        (&["release", "ci-pod", "--wa"], "--wait\t"),
    ];
    for (words, want) in cases {
        let output = tokio::process::Command::new(&kubectl)
            .args(["__complete", "lab"])
            .args(words)
            .env("PATH", &path)
            .output()
            .await
            .context("running kubectl __complete")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.lines().any(|l| l.starts_with(want)),
            "kubectl lab {words:?}<TAB> did not offer {want:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(stdout.lines().last(), Some(":4"), "{stdout}");
    }
    Ok(())
}

/// `kubectl lab book --wait` tells a script how the wait ended by its exit code: 4 when the
/// booking is not Ready in time (it goes on), 3 when it failed (with the operator's reason).
/// No operator runs here: the test writes the Failed status the operator would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lab_book_wait_exits_4_on_timeout_and_3_when_the_booking_fails() -> Result<()> {
    let cluster = TestCluster::get()?;
    let client = cluster.client().await?;
    let ns = cluster.namespace("kubectl-lab-exit").await?;
    let (kubeconfig, n) = (cluster.kubeconfig().to_path_buf(), ns.name().to_owned());
    let book = |name: &'static str, timeout: &'static str| {
        let (kubeconfig, n) = (kubeconfig.clone(), n.clone());
        async move {
            let args = [
                "book",
                name,
                "-n",
                &n,
                "--role",
                "node=1",
                "--image",
                "http://images.test/os.iso",
                "--for",
                "1d",
                "--wait",
                "--timeout",
                timeout,
            ];
            lab(&kubeconfig, &args).await
        }
    };

    let slow = book("slow", "2s").await?;
    assert_eq!(slow.code, 4, "{}", slow.stderr);
    assert!(
        slow.stderr
            .contains("slow is not Ready after 2s; it goes on"),
        "{}",
        slow.stderr
    );

    let waiting = tokio::spawn(book("doomed", "2m"));
    let pods: Api<PodRequest> = Api::namespaced(client, &n);
    let reason = "the booking ends before it starts: set the end after the start";
    labpods_tests::eventually("the booking", Duration::from_secs(60), || async {
        Ok(pods.get_opt("doomed").await?.map(|_| ()))
    })
    .await?;
    let failed = json!({ "status": { "phase": "Failed", "message": reason } });
    pods.patch_status("doomed", &PatchParams::default(), &Patch::Merge(&failed))
        .await?;
    let doomed = waiting.await??;
    assert_eq!(doomed.code, 3, "{}", doomed.stderr);
    assert!(
        doomed.stderr.contains(&format!("doomed failed: {reason}")),
        "{}",
        doomed.stderr
    );
    Ok(())
}
