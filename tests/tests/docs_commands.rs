//! Every command the README's "Running a lab" section gives a lab operator (in its code
//! blocks and in its prose) is run by a test: the read-only ones verbatim by the e2e below on
//! an installed lab with a booking, every other one (and those needing the operator in a pod)
//! by the test named in [`RUN_ELSEWHERE`], whose source must contain what runs it. A command
//! added to the section without a test fails
//! `the_readmes_lab_operator_commands_are_each_run_by_a_test`.

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use labpods_tests::e2e::E2e;
use labpods_tests::sim::HostGroup;
use labpods_tests::{Kubectl, workspace_root};

/// Commands that change the lab, by prefix: the file whose test runs them, and the text in
/// that file that does.
const RUN_ELSEWHERE: &[(&str, &str, &str)] = &[
    (
        "helm install labpods charts/labpods -n labpods-system --create-namespace -f",
        // The full values rendered and accepted by the apiserver's server-side apply.
        "tests/tests/helm.rs",
        "\"--values\"",
    ),
    (
        "helm install labpods charts/labpods -n labpods-system --create-namespace",
        "tests/src/e2e.rs",
        "\"--create-namespace\".as_ref()",
    ),
    (
        "helm upgrade labpods charts/labpods -n labpods-system",
        "tests/tests/helm.rs",
        "\"upgrade\".as_ref()",
    ),
    (
        "helm uninstall",
        "tests/tests/helm.rs",
        "\"uninstall\", \"labpods\"",
    ),
    (
        "kubectl apply --server-side -k deploy/",
        "tests/tests/kustomize.rs",
        "apply_as_gitops(&kubectl, \"deploy\"",
    ),
    (
        "kubectl apply --server-side -f crds/",
        "tests/tests/helm.rs",
        "crds.as_os_str()",
    ),
    (
        "kubectl delete -f crds/",
        "tests/tests/kustomize.rs",
        "\"delete\".as_ref(),",
    ),
    (
        "kubectl patch labhost H --type merge -p",
        "tests/src/e2e.rs",
        "[\"patch\", \"labhost\", host, \"--type\", \"merge\", \"-p\", &patch]",
    ),
    (
        // Interactive (it opens an editor): it writes the LabHost as the patch above does.
        "kubectl edit labhost",
        "tests/src/e2e.rs",
        "[\"patch\", \"labhost\", host",
    ),
    (
        "kubectl lab status",
        "tests/tests/kubectl_lab_e2e.rs",
        "&[\"status\", \"pod\"",
    ),
    (
        "labpods bmc",
        "crates/labpods-operator/tests/bmc_cli.rs",
        "\"info\"",
    ),
    ("labpods run", "tests/src/operator.rs", "\"run\""),
    // The operator in pods: the kubelet e2e.
    (
        "kubectl get pods -n labpods-system",
        "tests/tests/kubelet.rs",
        "[\"get\", \"pods\", \"-n\", \"labpods-system\"]",
    ),
    (
        "kubectl logs -n labpods-system deploy/labpods",
        "tests/tests/kubelet.rs",
        "[\"logs\", \"-n\", \"labpods-system\", \"deploy/labpods\"]",
    ),
];

/// The lab-operator section of the README.
fn section() -> Result<String> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md"))?;
    let start = readme
        .find("## Running a lab")
        .context("no '## Running a lab' section")?;
    let end = readme[start..]
        .find("\n## ")
        .map_or(readme.len(), |e| start + e);
    Ok(readme[start..end].to_string())
}

/// The commands of the section: each line of its `sh` blocks (comments cut), and each
/// inline code span that starts with kubectl, helm or labpods.
fn commands() -> Result<BTreeSet<String>> {
    let text = section()?;
    let mut out = BTreeSet::new();
    let mut prose = String::new();
    let mut in_block = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_block = !in_block && line == "```sh";
            continue;
        }
        if in_block {
            let command = line.split("  #").next().unwrap_or_default().trim();
            if !command.is_empty() && !command.starts_with('#') {
                out.insert(command.to_string());
            }
        } else {
            prose.push_str(line);
            prose.push(' ');
        }
    }
    for span in prose.split('`').skip(1).step_by(2) {
        if ["kubectl ", "helm ", "labpods "]
            .iter()
            .any(|p| span.starts_with(p))
        {
            out.insert(span.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    Ok(out)
}

/// The read-only commands: run verbatim by the e2e.
fn read_only(command: &str) -> bool {
    let words: Vec<&str> = command.split_whitespace().collect();
    matches!(words.as_slice(), ["kubectl", "get" | "describe", ..])
        && !RUN_ELSEWHERE
            .iter()
            .any(|(prefix, _, _)| command.starts_with(prefix))
}

#[test]
fn the_readmes_lab_operator_commands_are_each_run_by_a_test() -> Result<()> {
    let commands = commands()?;
    ensure!(commands.len() >= 15, "too few commands found: {commands:?}");
    let mut unexercised = Vec::new();
    for command in &commands {
        if read_only(command) {
            continue;
        }
        match RUN_ELSEWHERE
            .iter()
            .find(|(prefix, _, _)| command.starts_with(prefix))
        {
            Some((_, file, evidence)) => {
                let source = std::fs::read_to_string(workspace_root().join(file))
                    .with_context(|| format!("reading {file}"))?;
                ensure!(
                    source.contains(evidence),
                    "{file} no longer runs `{command}` ({evidence:?} not in it)"
                );
            }
            None => unexercised.push(command.clone()),
        }
    }
    ensure!(
        unexercised.is_empty(),
        "README commands no test runs (add one to RUN_ELSEWHERE, with its test): {unexercised:?}"
    );
    Ok(())
}

/// `H` and `NAME` stand for a LabHost and a PodRequest; a namespaced command without a
/// namespace is run in the booking's.
fn concrete(command: &str, host: &str, booking: &str, namespace: &str) -> Vec<String> {
    let mut words: Vec<String> = command
        .split_whitespace()
        .skip(1)
        .map(|w| match w {
            "H" => host.to_string(),
            "NAME" => booking.to_string(),
            w => w.to_string(),
        })
        .collect();
    let namespaced = words
        .iter()
        .any(|w| w.starts_with("pod") || w == "leases.labpods.dev");
    if namespaced && !words.iter().any(|w| w == "-n" || w == "-A") {
        words.extend(["-n".to_string(), namespace.to_string()]);
    }
    words
}

#[tokio::test]
async fn e2e_the_readmes_read_commands_answer_on_an_installed_lab() -> Result<()> {
    let mut e2e = E2e::start_installed("e2e-docs", &[HostGroup::new("small", 2)]).await?;
    e2e.book("ci-pod", vec![e2e.role("node", 1, None)], "1h")
        .await?;
    e2e.check_ready("ci-pod", &[("node", 1)]).await?;
    let host = e2e
        .assigned_hosts("ci-pod")
        .await?
        .into_iter()
        .next()
        .context("no host")?;
    let kubectl = Kubectl::new(e2e.kubeconfig())?;
    let mut ran = 0;
    for command in commands()?.iter().filter(|c| read_only(c)) {
        let args = concrete(command, &host, "ci-pod", e2e.namespace());
        let out = kubectl.run(&args).await?;
        ensure!(
            out.success && !out.stdout.trim().is_empty(),
            "`{command}` ({}): {}{}",
            out.args,
            out.stdout,
            out.stderr
        );
        // What it is there for: the booking, its host, or the leader.
        ensure!(
            ["ci-pod", host.as_str(), "labpods-operator"]
                .iter()
                .any(|n| out.stdout.contains(n)),
            "`{command}` does not show the lab's objects:\n{}",
            out.stdout
        );
        ran += 1;
    }
    ensure!(ran >= 6, "only {ran} read commands found");
    e2e.shutdown().await?;
    Ok(())
}
