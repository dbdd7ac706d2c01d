//! What users see in kubectl: the printer columns of `kubectl get` (also through the `lab`
//! category and short names) and the field descriptions of `kubectl explain`, both checked
//! against the CRDs generated from the Rust types.

use anyhow::{Context, Result, ensure};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion, JSONSchemaProps,
};
use kube::api::{Api, Patch, PatchParams};
use labpods_api::{LabHost, Lease, PodRequest};
use labpods_tests::{Kubectl, TestCluster, eventually, labpods_crds};
use serde_json::{Value, json};
use std::time::Duration;

fn crd(kind: &str) -> Result<CustomResourceDefinition> {
    labpods_crds()
        .into_iter()
        .find(|crd| crd.spec.names.kind == kind)
        .with_context(|| format!("no CRD for {kind}"))
}

fn served_version(crd: &CustomResourceDefinition) -> Result<&CustomResourceDefinitionVersion> {
    crd.spec
        .versions
        .iter()
        .find(|version| version.storage)
        .context("no storage version")
}

/// The header kubectl prints: NAME, then the printer columns (priority 0 only unless wide).
fn expected_header(crd: &CustomResourceDefinition, wide: bool) -> Result<Vec<String>> {
    let columns = served_version(crd)?
        .additional_printer_columns
        .iter()
        .flatten();
    Ok(std::iter::once("NAME".to_string())
        .chain(
            columns
                .filter(|column| wide || column.priority.unwrap_or(0) == 0)
                .map(|column| column.name.to_uppercase()),
        )
        .collect())
}

/// One table kubectl printed, cells cut at the header's column starts.
#[derive(Debug)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn parse(text: &str) -> Result<Self> {
        let mut lines = text.lines().filter(|line| !line.trim().is_empty());
        let header_line = lines.next().context("kubectl printed nothing")?;
        let mut starts = Vec::new();
        let mut previous = ' ';
        for (at, c) in header_line.char_indices() {
            if c != ' ' && previous == ' ' {
                starts.push(at);
            }
            previous = c;
        }
        let cut = |line: &str| -> Vec<String> {
            starts
                .iter()
                .enumerate()
                .map(|(i, &start)| {
                    let end = starts
                        .get(i + 1)
                        .copied()
                        .unwrap_or(line.len())
                        .min(line.len());
                    line.get(start.min(end)..end)
                        .unwrap_or_default()
                        .trim()
                        .to_string()
                })
                .collect()
        };
        Ok(Self {
            header: header_line.split_whitespace().map(str::to_string).collect(),
            rows: lines.map(cut).collect(),
        })
    }

    fn cell(&self, row_name: &str, column: &str) -> Result<&str> {
        let index = self
            .header
            .iter()
            .position(|name| name == column)
            .with_context(|| format!("no column {column} in {:?}", self.header))?;
        let row = self
            .rows
            .iter()
            .find(|row| row.first().is_some_and(|name| name == row_name))
            .with_context(|| format!("no row {row_name} in {self:?}"))?;
        Ok(row[index].as_str())
    }
}

/// One object of each kind, with a status as the operator would write it.
struct Objects {
    host: String,
    _delete_host: labpods_tests::DeleteOnDrop,
    namespace: labpods_tests::TestNamespace,
}

async fn create_objects(cluster: &TestCluster) -> Result<Objects> {
    let namespace = cluster.namespace("kubectl-output").await?;
    let ns = namespace.name().to_string();
    // Cluster-scoped: named after the namespace so parallel tests never collide.
    let host = format!("host-{ns}");
    let delete_host = cluster.delete_on_drop(format!("labhost/{host}"));
    let manifests = format!(
        r#"
apiVersion: labpods.dev/v1alpha1
kind: LabHost
metadata: {{name: {host}}}
spec:
  bmc:
    address: https://127.0.0.1:9101
    credentialsSecretRef: {{name: bmc, namespace: {ns}}}
  profile: x86-small
---
apiVersion: labpods.dev/v1alpha1
kind: PodRequest
metadata: {{name: demo, namespace: {ns}}}
spec:
  roles: [{{name: node, count: 1}}]
  image: {{url: "https://images.example.org/os.iso"}}
  duration: 72h
---
apiVersion: labpods.dev/v1alpha1
kind: Lease
metadata: {{name: demo, namespace: {ns}}}
spec:
  requestRef: {{name: demo, uid: 3f1c5a2e-0000-4000-8000-000000000001}}
  hosts: [{{host: {host}, role: node}}]
  start: "2026-12-01T09:00:00Z"
  end: "2026-12-04T09:00:00Z"
  image: {{url: "https://images.example.org/os.iso"}}
"#
    );
    cluster
        .kubectl()?
        .run_with_input(["apply", "-f", "-"], &manifests)
        .await?
        .ok()?;

    let client = cluster.client().await?;
    let params = PatchParams::default();
    Api::<LabHost>::all(client.clone())
        .patch_status(
            &host,
            &params,
            &Patch::Merge(json!({"status": {"state": "Available", "power": "Off"}})),
        )
        .await?;
    Api::<PodRequest>::namespaced(client.clone(), &ns)
        .patch_status("demo", &params, &Patch::Merge(json!({"status": {"phase": "Ready", "hostCount": 1, "message": "all hosts run the image"}})))
        .await?;
    Api::<Lease>::namespaced(client, &ns)
        .patch_status(
            "demo",
            &params,
            &Patch::Merge(json!({"status": {"phase": "Bound", "hostCount": 1}})),
        )
        .await?;
    Ok(Objects {
        host,
        _delete_host: delete_host,
        namespace,
    })
}

async fn get_table(kubectl: &Kubectl, args: &[&str]) -> Result<Table> {
    Table::parse(&kubectl.run(args).await?.ok()?)
}

/// What kubectl should print for a column: the object's value at the column's (simple)
/// JSON path, empty when absent. Dates are relative ("5s") and not compared.
fn expected_cell(object: &Value, json_path: &str, type_: &str) -> Option<String> {
    if type_ == "date" {
        return None;
    }
    let pointer = json_path.replace('.', "/");
    Some(match object.pointer(&pointer) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    })
}

/// `kubectl get <resource> [-o wide]` prints the CRD's printer columns, each cell the
/// object's value at the column's path.
async fn assert_columns(
    kubectl: &Kubectl,
    kind: &str,
    resource: &str,
    name: &str,
    wide: bool,
) -> Result<Table> {
    let crd = crd(kind)?;
    let mut args = vec!["get", resource, name];
    if wide {
        args.extend(["-o", "wide"]);
    }
    let table = get_table(kubectl, &args).await?;
    ensure!(
        table.header == expected_header(&crd, wide)?,
        "kubectl {}: {table:?}",
        args.join(" ")
    );
    let object: Value = serde_json::from_str(
        &kubectl
            .run(["get", resource, name, "-o", "json"])
            .await?
            .ok()?,
    )?;
    let columns = served_version(&crd)?
        .additional_printer_columns
        .iter()
        .flatten();
    for column in columns.filter(|column| wide || column.priority.unwrap_or(0) == 0) {
        if let Some(expected) = expected_cell(&object, &column.json_path, &column.type_) {
            let shown = table.cell(name, &column.name.to_uppercase())?;
            ensure!(
                shown == expected,
                "kubectl {}: column {} shows {shown:?}, the object has {expected:?} at {}",
                args.join(" "),
                column.name,
                column.json_path
            );
        }
    }
    Ok(table)
}

#[tokio::test]
async fn kubectl_get_shows_the_printer_columns() -> Result<()> {
    let cluster = TestCluster::get()?;
    let objects = create_objects(&cluster).await?;
    let kubectl = cluster.kubectl()?.namespace(objects.namespace.name());

    for wide in [false, true] {
        let hosts = assert_columns(&kubectl, "LabHost", "labhosts", &objects.host, wide).await?;
        ensure!(
            hosts.cell(&objects.host, "STATE")? == "Available",
            "{hosts:?}"
        );
        let requests = assert_columns(&kubectl, "PodRequest", "podrequests", "demo", wide).await?;
        ensure!(requests.cell("demo", "PHASE")? == "Ready", "{requests:?}");
        // `leases` alone is coordination.k8s.io's: users spell ours out or use the short name.
        for resource in ["leases.labpods.dev", "lablease"] {
            let leases = assert_columns(&kubectl, "Lease", resource, "demo", wide).await?;
            ensure!(leases.cell("demo", "PHASE")? == "Bound", "{leases:?}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn kubectl_get_lists_all_kinds_together_and_by_category() -> Result<()> {
    let cluster = TestCluster::get()?;
    let objects = create_objects(&cluster).await?;
    let kubectl = cluster.kubectl()?.namespace(objects.namespace.name());
    let expected = [
        format!("labhost.labpods.dev/{}", objects.host),
        "podrequest.labpods.dev/demo".to_string(),
        "lease.labpods.dev/demo".to_string(),
    ];
    for args in [
        ["get", "labhosts,podrequests,leases.labpods.dev"],
        ["get", "lab"],
    ] {
        let printed = kubectl.run(args).await?.ok()?;
        for name in &expected {
            ensure!(
                printed
                    .lines()
                    .any(|line| line.split_whitespace().next() == Some(name.as_str())),
                "kubectl {} does not list {name}:\n{printed}",
                args.join(" ")
            );
        }
        // Each kind prints its own table with its own columns.
        ensure!(
            printed.contains("PHASE") && printed.contains("STATE"),
            "{printed}"
        );
    }
    Ok(())
}

/// `kubectl explain <target>`, once the apiserver serves the kind's OpenAPI v3: it publishes
/// a new CRD's schema a moment after the CRD is Established, and until then kubectl says
/// `couldn't find resource`.
async fn explain(kubectl: &Kubectl, target: &str) -> Result<String> {
    let what = format!("kubectl explain {target}");
    Ok(eventually(&what, Duration::from_secs(30), || async move {
        let output = kubectl.run(["explain", target]).await?;
        if !output.success && output.stderr.contains("couldn't find resource") {
            return Ok(None);
        }
        output.ok().map(Some)
    })
    .await?)
}

/// Whitespace-insensitive: kubectl explain wraps descriptions.
fn normalized(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `kubectl explain <resource>.<path>` lists every field of the schema at `path` with its
/// description.
async fn assert_explained(
    kubectl: &Kubectl,
    kind: &str,
    resource: &str,
    path: &[&str],
) -> Result<()> {
    let crd = crd(kind)?;
    let mut schema: &JSONSchemaProps = served_version(&crd)?
        .schema
        .as_ref()
        .and_then(|validation| validation.open_api_v3_schema.as_ref())
        .context("no schema")?;
    for step in path {
        schema = schema
            .properties
            .as_ref()
            .and_then(|properties| properties.get(*step))
            .with_context(|| format!("no {step} in the {kind} schema"))?;
    }
    let target = format!("{resource}.{}", path.join("."));
    let explained = explain(kubectl, &target).await?;
    let explained_flat = normalized(&explained);
    let fields = schema.properties.as_ref().context("no fields")?;
    ensure!(!fields.is_empty(), "{target} has no fields");
    for (field, props) in fields {
        ensure!(
            explained
                .lines()
                .any(|line| line.split_whitespace().next() == Some(field.as_str())),
            "kubectl explain {target} does not list {field}:\n{explained}"
        );
        let description = props.description.as_deref().unwrap_or_default();
        ensure!(
            !description.is_empty(),
            "{target}.{field} has no description in the CRD"
        );
        ensure!(
            explained_flat.contains(&normalized(description)),
            "kubectl explain {target} lacks the description of {field} ({description:?}):\n{explained}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn kubectl_explain_prints_the_field_descriptions() -> Result<()> {
    let cluster = TestCluster::get()?;
    let kubectl = cluster.kubectl()?;
    assert_explained(&kubectl, "PodRequest", "podrequest", &["spec"]).await?;
    assert_explained(&kubectl, "PodRequest", "podrequest", &["spec", "image"]).await?;
    assert_explained(&kubectl, "LabHost", "labhost", &["spec"]).await?;
    assert_explained(&kubectl, "LabHost", "labhost", &["spec", "bmc"]).await?;
    assert_explained(&kubectl, "Lease", "leases.labpods.dev", &["spec"]).await?;
    Ok(())
}

/// `kubectl explain` shows the type of an `Option` field, which the CRD marks `nullable`.
/// Kubernetes 1.20 published nullable fields without a type (`duration <>`), so the CRDs
/// used to drop `nullable`; the apiserver still does so in OpenAPI v2, but kubectl explains
/// from OpenAPI v3, where the type stays.
#[tokio::test]
async fn kubectl_explain_shows_the_type_of_optional_fields() -> Result<()> {
    let cluster = TestCluster::get()?;
    let kubectl = cluster.kubectl()?;
    for (target, field) in [
        ("podrequest.spec.duration", "duration <string>"),
        ("podrequest.spec.end", "end <string>"),
        ("podrequest.spec.roles.selector", "selector <Object>"),
        ("podrequest.spec.image.checksum", "checksum <string>"),
        ("podrequest.status.phase", "phase <string>"),
        ("labhost.spec.bmc.systemId", "systemId <string>"),
        ("leases.labpods.dev.status.hostCount", "hostCount <integer>"),
    ] {
        let explained = explain(&kubectl, target).await?;
        ensure!(
            explained
                .lines()
                .any(|line| line.trim() == format!("FIELD: {field}")),
            "kubectl explain {target} does not show `FIELD: {field}`:\n{explained}"
        );
    }
    Ok(())
}

#[test]
fn tables_are_cut_at_the_header_columns() -> Result<()> {
    let table = Table::parse(
        "NAME   PHASE   HOSTS   START   AGE\n\
         demo   Ready   2               5s\n",
    )?;
    assert_eq!(table.cell("demo", "PHASE")?, "Ready");
    assert_eq!(table.cell("demo", "START")?, "");
    assert_eq!(table.cell("demo", "AGE")?, "5s");
    Ok(())
}
