//! The CRDs generated from the Rust types install and serve, under the names, short names
//! and category users type.

use anyhow::{Context, Result, ensure};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, ResourceExt};
use labpods_tests::{TestCluster, install_crds, labpods_crds, workspace_root};

fn condition_is_true(crd: &CustomResourceDefinition, type_: &str) -> bool {
    crd.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == type_ && condition.status == "True")
        })
}

#[tokio::test]
async fn the_generated_crds_install_and_become_established() -> Result<()> {
    let cluster = TestCluster::get()?;
    let client = cluster.client().await?;
    let generated = labpods_crds();
    ensure!(
        generated.len() == 3,
        "expected LabHost, PodRequest and Lease, got {}",
        generated.len()
    );

    // Re-applying what the control plane was started with is a no-op that must succeed.
    install_crds(&client, &generated).await?;

    let api: Api<CustomResourceDefinition> = Api::all(client);
    for crd in &generated {
        let live = api.get(&crd.name_any()).await?;
        ensure!(
            condition_is_true(&live, "Established"),
            "{} not Established",
            crd.name_any()
        );
        ensure!(
            condition_is_true(&live, "NamesAccepted"),
            "{} names not accepted",
            crd.name_any()
        );
        let accepted = live
            .status
            .as_ref()
            .and_then(|status| status.accepted_names.as_ref())
            .context("no accepted names")?;
        ensure!(accepted.plural == crd.spec.names.plural, "{accepted:?}");
        ensure!(
            accepted.short_names == crd.spec.names.short_names,
            "{accepted:?}"
        );
        ensure!(
            accepted.categories == crd.spec.names.categories,
            "{accepted:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn kubectl_discovers_the_kinds_with_short_names_and_the_lab_category() -> Result<()> {
    let cluster = TestCluster::get()?;
    let resources = cluster
        .kubectl()?
        .run(["api-resources", "--api-group=labpods.dev", "-o", "wide"])
        .await?
        .ok()?;
    for crd in labpods_crds() {
        let names = &crd.spec.names;
        let line = resources
            .lines()
            .find(|line| line.split_whitespace().next() == Some(names.plural.as_str()))
            .with_context(|| format!("{} not listed:\n{resources}", names.plural))?;
        for short in names.short_names.iter().flatten() {
            ensure!(
                line.contains(short.as_str()),
                "short name {short} missing: {line}"
            );
        }
        ensure!(line.contains(&names.kind), "{line}");
        ensure!(
            line.trim_end().ends_with("lab"),
            "category lab missing: {line}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_committed_crd_files_apply_with_kubectl() -> Result<()> {
    let cluster = TestCluster::get()?;
    let crds = workspace_root().join("crds");
    let applied = cluster
        .kubectl()?
        // Forced: the installed CRDs belong to the test support's field manager.
        .run([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "-f",
            &crds.to_string_lossy(),
        ])
        .await?
        .ok()?;
    for crd in labpods_crds() {
        ensure!(
            applied.contains(&format!(
                "customresourcedefinition.apiextensions.k8s.io/{}",
                crd.name_any()
            )),
            "{} not in crds/:\n{applied}",
            crd.name_any()
        );
    }
    Ok(())
}
