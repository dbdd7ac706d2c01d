//! Every manifest under examples/ applies cleanly, with client-side and with server-side
//! apply (as GitOps tools do), and re-applying changes nothing.
//!
//! The examples name fixed namespaces and cluster-scoped LabHosts, so this one test owns
//! them: it applies, checks and deletes them in sequence. Other tests make their own hosts.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use k8s_openapi::jiff::{SignedDuration, Span, Timestamp, tz::TimeZone};
use labpods_api::PodRequest;
use labpods_api::validation::{summarize, validate_podrequest};
use labpods_tests::{Kubectl, TestCluster, workspace_root};
use serde::Deserialize;
use serde_json::Value;

/// Deleting the examples' namespaces waits for the namespace controller.
const DELETE_TIMEOUT: &str = "180s";

/// The example directories, in the order a lab operator applies them.
fn example_dirs() -> Result<Vec<PathBuf>> {
    let examples = workspace_root().join("examples");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&examples)
        .with_context(|| format!("listing {}", examples.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_dir())
        .collect();
    // lab/ (namespace, secret, hosts) before podrequests/.
    dirs.sort();
    Ok(dirs)
}

/// Every document in the example directories, as (file, kind, name).
fn documents(dirs: &[PathBuf]) -> Result<Vec<(PathBuf, String, String)>> {
    let mut found = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path
                .extension()
                .is_none_or(|ext| ext != "yaml" && ext != "yml")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path)?;
            for document in serde_yaml::Deserializer::from_str(&text) {
                let value = Value::deserialize(document)
                    .with_context(|| format!("parsing {}", path.display()))?;
                if value.is_null() {
                    continue;
                }
                let kind = value["kind"].as_str().unwrap_or_default().to_string();
                let name = value["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                ensure!(
                    !kind.is_empty() && !name.is_empty(),
                    "{}: a document without kind or name",
                    path.display()
                );
                found.push((path.clone(), kind, name));
            }
        }
    }
    Ok(found)
}

fn count(documents: &[(PathBuf, String, String)], kind: &str) -> usize {
    documents.iter().filter(|(_, k, _)| k == kind).count()
}

async fn apply(kubectl: &Kubectl, dirs: &[PathBuf], server_side: bool) -> Result<String> {
    let mut printed = String::new();
    for dir in dirs {
        let mut args = vec!["apply".to_string(), "-f".to_string(), path_arg(dir)];
        if server_side {
            args.push("--server-side".to_string());
        }
        printed += &kubectl.run(&args).await?.ok()?;
    }
    Ok(printed)
}

async fn delete(kubectl: &Kubectl, dirs: &[PathBuf]) -> Result<()> {
    for dir in dirs.iter().rev() {
        kubectl
            .run([
                "delete",
                "-f",
                &path_arg(dir),
                "--ignore-not-found",
                "--wait=true",
                &format!("--timeout={DELETE_TIMEOUT}"),
            ])
            .await?
            .ok()?;
    }
    Ok(())
}

/// `kind/name=resourceVersion` of every object in the files: it changes on every write, so
/// a re-apply that leaves it alone is one a GitOps tool can repeat forever without churn
/// (a Secret with `stringData` included, which 1.20 rewrote on every apply).
async fn resource_versions(kubectl: &Kubectl, dirs: &[PathBuf]) -> Result<String> {
    let mut versions = String::new();
    for dir in dirs {
        versions += &kubectl
            .run([
                "get",
                "-f",
                &path_arg(dir),
                "-o",
                r#"jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion}{"\n"}{end}"#,
            ])
            .await?
            .ok()?;
    }
    Ok(versions)
}

/// The command `pod-tomorrow.yaml` documents for booking it from tomorrow (after `#   `),
/// without the `| kubectl apply -f -` that sends its output to the cluster.
fn documented_command(file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(file)?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("#   sed "))
        .with_context(|| format!("{} documents no sed command", file.display()))?;
    let command = line
        .strip_suffix(" | kubectl apply -f -")
        .with_context(|| format!("the command does not end in kubectl apply: {line}"))?;
    Ok(format!("sed {command}"))
}

/// 09:00 UTC `days` after today.
fn at_nine_utc(days: i64) -> Result<Timestamp> {
    let today = Timestamp::now().to_zoned(TimeZone::UTC).date();
    Ok(today
        .checked_add(Span::new().days(days))?
        .at(9, 0, 0, 0)
        .to_zoned(TimeZone::UTC)?
        .timestamp())
}

/// Runs the command `pod-tomorrow.yaml` documents, as a user would, into the cluster
/// (the examples are applied, so it updates `workshop`): the booking moves to tomorrow and
/// the controllers' validation accepts it today, whatever the date of the file.
async fn rebook_for_tomorrow(kubectl: &Kubectl) -> Result<()> {
    let root = workspace_root();
    let file = root.join("examples/podrequests/pod-tomorrow.yaml");
    let command = documented_command(&file)?;
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .current_dir(&root)
        .output()
        .context("running sh")?;
    ensure!(
        output.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let manifest = String::from_utf8(output.stdout)?;
    let applied = kubectl
        .run_with_input(["apply", "-f", "-"], &manifest)
        .await?
        .ok()?;
    ensure!(
        applied.trim() == "podrequest.labpods.dev/workshop configured",
        "{applied}"
    );
    let live: PodRequest = serde_json::from_str(
        &kubectl
            .run([
                "get",
                "podrequest",
                "-n",
                "team-a",
                "workshop",
                "-o",
                "json",
            ])
            .await?
            .ok()?,
    )?;
    ensure!(
        live.spec.start.as_ref().map(|t| t.0) == Some(at_nine_utc(1)?)
            && live.spec.end.as_ref().map(|t| t.0) == Some(at_nine_utc(3)?),
        "not booked from tomorrow: {:?}",
        live.spec
    );
    let errors = validate_podrequest(
        &live.spec,
        Timestamp::now(),
        SignedDuration::from_hours(14 * 24),
    );
    ensure!(errors.is_empty(), "{}", summarize(&errors));
    Ok(())
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The live objects agree with the files: `kubectl diff` exits 0 when nothing differs.
async fn assert_no_diff(kubectl: &Kubectl, dirs: &[PathBuf], server_side: bool) -> Result<()> {
    for dir in dirs {
        let mut args = vec!["diff".to_string(), "-f".to_string(), path_arg(dir)];
        if server_side {
            args.push("--server-side".to_string());
        }
        let diff = kubectl.run(&args).await?;
        ensure!(
            diff.success,
            "kubectl {} shows drift after apply:\n{}{}",
            args.join(" "),
            diff.stdout,
            diff.stderr
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_examples_apply_cleanly_client_side_and_server_side() -> Result<()> {
    let cluster = TestCluster::get()?;
    let kubectl = cluster.kubectl()?;
    let dirs = example_dirs()?;
    let documents = documents(&dirs)?;
    ensure!(
        count(&documents, "LabHost") >= 8,
        "expected at least 8 example LabHosts: {documents:#?}"
    );
    ensure!(
        count(&documents, "Secret") >= 1,
        "expected the BMC credentials Secret: {documents:#?}"
    );
    ensure!(
        count(&documents, "PodRequest") >= 1,
        "expected example PodRequests: {documents:#?}"
    );
    // Leftovers of an interrupted run would make the first apply an update.
    delete(&kubectl, &dirs).await?;

    let printed = apply(&kubectl, &dirs, false).await?;
    for (file, kind, name) in &documents {
        // `namespace/x created`, `labhost.labpods.dev/x created`.
        let expected = format!("/{name} created");
        ensure!(
            printed
                .lines()
                .any(|line| line.starts_with(&kind.to_lowercase()) && line.ends_with(&expected)),
            "{}: no `{expected}` in kubectl's output:\n{printed}",
            file.display()
        );
    }
    let before = resource_versions(&kubectl, &dirs).await?;
    apply(&kubectl, &dirs, false).await.context("re-applying")?;
    let after = resource_versions(&kubectl, &dirs).await?;
    ensure!(
        before == after,
        "re-applying rewrote objects:\n{before}\n---\n{after}"
    );
    assert_no_diff(&kubectl, &dirs, false).await?;
    rebook_for_tomorrow(&kubectl).await?;
    delete(&kubectl, &dirs).await?;

    let printed = apply(&kubectl, &dirs, true).await?;
    ensure!(
        printed
            .lines()
            .filter(|line| line.ends_with(" serverside-applied"))
            .count()
            == documents.len(),
        "not every document was server-side applied:\n{printed}"
    );
    let before = resource_versions(&kubectl, &dirs).await?;
    apply(&kubectl, &dirs, true)
        .await
        .context("re-applying server-side")?;
    let after = resource_versions(&kubectl, &dirs).await?;
    // The apiserver writes a Namespace once more on its first server-side re-apply: it
    // records the label and finalizer it set at creation under a `before-first-apply`
    // manager (still so in 1.37). Everything else, and every later re-apply, stays put.
    fn but_namespaces(versions: &str) -> Vec<&str> {
        versions
            .lines()
            .filter(|line| !line.starts_with("Namespace/"))
            .collect()
    }
    ensure!(
        but_namespaces(&before) == but_namespaces(&after),
        "re-applying server-side rewrote objects:\n{before}\n---\n{after}"
    );
    apply(&kubectl, &dirs, true)
        .await
        .context("re-applying server-side again")?;
    let again = resource_versions(&kubectl, &dirs).await?;
    ensure!(
        after == again,
        "a second server-side re-apply rewrote objects:\n{after}\n---\n{again}"
    );
    assert_no_diff(&kubectl, &dirs, true).await?;
    let hosts = kubectl.run(["get", "labhosts", "-o", "name"]).await?.ok()?;
    for (_, _, name) in documents.iter().filter(|(_, kind, _)| kind == "LabHost") {
        ensure!(
            hosts.contains(&format!("labhost.labpods.dev/{name}")),
            "{name} missing:\n{hosts}"
        );
    }
    delete(&kubectl, &dirs).await?;
    Ok(())
}
