//! The CRD schemas reject bad input, each rejection naming the offending field: through
//! kubectl (client-side and server-side apply, as users and GitOps tools submit) and, for
//! everything a schema can express, at the apiserver itself (a client that skips kubectl's
//! checks). Rules a schema cannot express (end before start, ...) are the controllers'.

use anyhow::{Context, Result, ensure};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use labpods_api::{LabHost, PodRequest};
use labpods_tests::{TestCluster, TestNamespace};
use serde_json::{Value, json};

/// Who rejects a case.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RejectedBy {
    /// The apiserver (and so kubectl too).
    Schema,
    /// kubectl's validation only: the apiserver prunes unknown fields silently.
    Kubectl,
}

#[derive(Debug)]
struct Case {
    name: &'static str,
    object: Value,
    /// The path the message must name, e.g. `spec.roles.count`.
    field: &'static str,
    rejected_by: RejectedBy,
}

fn valid_pod_request(namespace: &str) -> Value {
    json!({
        "apiVersion": "labpods.dev/v1alpha1",
        "kind": "PodRequest",
        "metadata": { "name": "validation", "namespace": namespace },
        "spec": {
            "roles": [
                { "name": "jumphost", "count": 1 },
                { "name": "node", "count": 3, "profile": "x86-small" },
            ],
            "image": {
                "url": "https://images.example.org/os.iso",
                "checksum": "sha256:0123456789abcdef",
            },
            "start": "2026-12-01T09:00:00Z",
            "duration": "72h",
            "purpose": "schema validation test",
        },
    })
}

fn valid_lab_host() -> Value {
    json!({
        "apiVersion": "labpods.dev/v1alpha1",
        "kind": "LabHost",
        "metadata": { "name": "validation-host" },
        "spec": {
            "bmc": {
                "address": "https://127.0.0.1:9101",
                "credentialsSecretRef": { "name": "bmc", "namespace": "labpods-system" },
            },
            "bootMode": "UEFI",
            "profile": "x86-small",
            "hardware": { "cpus": 16, "memoryGiB": 64, "arch": "x86_64" },
        },
    })
}

/// `base` with the value at JSON `pointer` replaced (`Some`) or removed (`None`).
fn with(mut base: Value, pointer: &str, value: Option<Value>) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    if let Some(Value::Object(parent)) = base.pointer_mut(parent) {
        match value {
            Some(value) => parent.insert(key.to_string(), value),
            None => parent.remove(key),
        };
    }
    base
}

fn cases(namespace: &str) -> Vec<Case> {
    use RejectedBy::{Kubectl, Schema};
    let request = || valid_pod_request(namespace);
    let host = valid_lab_host;
    let case = |name, object, field, rejected_by| Case {
        name,
        object,
        field,
        rejected_by,
    };
    let roles = |names: &[&str]| {
        Value::Array(
            names
                .iter()
                .map(|name| json!({ "name": name, "count": 1 }))
                .collect(),
        )
    };
    let many_roles: Vec<String> = (0..17).map(|i| format!("role{i}")).collect();
    let many_roles: Vec<&str> = many_roles.iter().map(String::as_str).collect();
    vec![
        case(
            "PodRequest without image",
            with(request(), "/spec/image", None),
            "spec.image",
            Schema,
        ),
        case(
            "PodRequest without roles",
            with(request(), "/spec/roles", None),
            "spec.roles",
            Schema,
        ),
        case(
            "PodRequest with no role",
            with(request(), "/spec/roles", Some(json!([]))),
            "spec.roles",
            Schema,
        ),
        case(
            "PodRequest with 17 roles",
            with(request(), "/spec/roles", Some(roles(&many_roles))),
            "spec.roles",
            Schema,
        ),
        case(
            "role count 0",
            with(request(), "/spec/roles/0/count", Some(json!(0))),
            "spec.roles.count",
            Schema,
        ),
        case(
            "role count 65",
            with(request(), "/spec/roles/0/count", Some(json!(65))),
            "spec.roles.count",
            Schema,
        ),
        case(
            "role count not a number",
            with(request(), "/spec/roles/0/count", Some(json!("two"))),
            "spec.roles.count",
            Schema,
        ),
        case(
            "duplicate role names",
            with(request(), "/spec/roles", Some(roles(&["node", "node"]))),
            "spec.roles",
            Schema,
        ),
        case(
            "role name not a DNS label",
            with(request(), "/spec/roles/0/name", Some(json!("Jump_Host"))),
            "spec.roles.name",
            Schema,
        ),
        case(
            "role profile not a DNS label",
            with(request(), "/spec/roles/1/profile", Some(json!("X86 Large"))),
            "spec.roles.profile",
            Schema,
        ),
        case(
            "image without url",
            with(request(), "/spec/image/url", None),
            "spec.image.url",
            Schema,
        ),
        case(
            "image url not http(s)",
            with(
                request(),
                "/spec/image/url",
                Some(json!("ftp://images.example.org/os.iso")),
            ),
            "spec.image.url",
            Schema,
        ),
        case(
            "image checksum not sha256/sha512",
            with(
                request(),
                "/spec/image/checksum",
                Some(json!("md5:0123abcd")),
            ),
            "spec.image.checksum",
            Schema,
        ),
        case(
            "duration not <n>d<n>h<n>m",
            with(request(), "/spec/duration", Some(json!("3 days"))),
            "spec.duration",
            Schema,
        ),
        case(
            "start not a date-time",
            with(request(), "/spec/start", Some(json!("tomorrow"))),
            "spec.start",
            Schema,
        ),
        case(
            "purpose over 512 characters",
            with(request(), "/spec/purpose", Some(json!("x".repeat(513)))),
            "spec.purpose",
            Schema,
        ),
        case(
            "unknown PodRequest field",
            with(request(), "/spec/hostCount", Some(json!(4))),
            "spec.hostCount",
            Kubectl,
        ),
        case(
            "LabHost without BMC address",
            with(host(), "/spec/bmc/address", None),
            "spec.bmc.address",
            Schema,
        ),
        case(
            "BMC address not http(s)",
            with(host(), "/spec/bmc/address", Some(json!("ipmi://10.0.0.21"))),
            "spec.bmc.address",
            Schema,
        ),
        case(
            "LabHost without credentials",
            with(host(), "/spec/bmc/credentialsSecretRef", None),
            "spec.bmc.credentialsSecretRef",
            Schema,
        ),
        case(
            "LabHost without profile",
            with(host(), "/spec/profile", None),
            "spec.profile",
            Schema,
        ),
        case(
            "LabHost profile not a DNS label",
            with(host(), "/spec/profile", Some(json!("Big_Box"))),
            "spec.profile",
            Schema,
        ),
        case(
            "boot mode outside the enum",
            with(host(), "/spec/bootMode", Some(json!("EFI"))),
            "spec.bootMode",
            Schema,
        ),
        case(
            "arch outside the enum",
            with(host(), "/spec/hardware/arch", Some(json!("x86"))),
            "spec.hardware.arch",
            Schema,
        ),
        case(
            "cpus 0",
            with(host(), "/spec/hardware/cpus", Some(json!(0))),
            "spec.hardware.cpus",
            Schema,
        ),
        case(
            "unknown BMC field",
            with(host(), "/spec/bmc/ipmiPort", Some(json!(623))),
            "spec.bmc.ipmiPort",
            Kubectl,
        ),
    ]
}

/// Whether `message` names `field`: as a path (`spec.roles.count`, the apiserver) or as
/// a quoted name inside its parent (`"image" in ...PodRequest.spec`, kubectl).
fn names_field(message: &str, field: &str) -> bool {
    if message.contains(field) {
        return true;
    }
    let (parent, name) = field.rsplit_once('.').unwrap_or(("", field));
    message.contains(&format!("\"{name}\"")) && message.contains(parent)
}

fn dynamic_api(cluster_scoped: bool, client: kube::Client, namespace: &str) -> Api<DynamicObject> {
    if cluster_scoped {
        Api::all_with(client, &ApiResource::erase::<LabHost>(&()))
    } else {
        Api::namespaced_with(client, namespace, &ApiResource::erase::<PodRequest>(&()))
    }
}

/// What went wrong when submitting `object` every way: empty if each rejected it naming
/// `field`, or, with `rejected_by: None`, if each accepted it.
async fn check(
    cluster: &TestCluster,
    namespace: &TestNamespace,
    object: &Value,
    field: &str,
    rejected_by: Option<RejectedBy>,
) -> Result<Vec<String>> {
    let yaml = serde_yaml::to_string(object)?;
    let kubectl = cluster.kubectl()?.namespace(namespace.name());
    let mut problems = Vec::new();
    for mode in ["--server-side=false", "--server-side=true"] {
        let output = kubectl
            .run_with_input(["apply", mode, "--dry-run=server", "-f", "-"], &yaml)
            .await?;
        match (rejected_by, output.success) {
            (None, false) => problems.push(format!(
                "kubectl apply {mode} rejected it: {}",
                output.stderr
            )),
            (Some(_), true) => problems.push(format!("kubectl apply {mode} accepted it")),
            (Some(_), false) if !names_field(&output.stderr, field) => {
                problems.push(format!(
                    "kubectl apply {mode} did not name {field}: {}",
                    output.stderr
                ));
            }
            _ => {}
        }
    }
    if rejected_by != Some(RejectedBy::Kubectl) {
        let cluster_scoped = object["kind"] == "LabHost";
        let api = dynamic_api(cluster_scoped, cluster.client().await?, namespace.name());
        let dynamic: DynamicObject = serde_json::from_value(object.clone())?;
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        match (rejected_by, api.create(&dry_run, &dynamic).await) {
            (None, Err(err)) => problems.push(format!("the apiserver rejected it: {err}")),
            (Some(_), Ok(_)) => problems.push("the apiserver accepted it".to_string()),
            (Some(_), Err(kube::Error::Api(status))) => {
                if status.code != 422 || !names_field(&status.message, field) {
                    problems.push(format!(
                        "the apiserver did not answer 422 naming {field}: {status:?}"
                    ));
                }
            }
            (Some(_), Err(err)) => problems.push(format!("the apiserver failed: {err}")),
            (None, Ok(_)) => {}
        }
    }
    Ok(problems)
}

#[tokio::test]
async fn invalid_manifests_are_rejected_naming_the_field() -> Result<()> {
    let cluster = TestCluster::get()?;
    let namespace = cluster.namespace("schema-validation").await?;

    // The table means something only if the objects it breaks are valid.
    for valid in [valid_pod_request(namespace.name()), valid_lab_host()] {
        let problems = check(&cluster, &namespace, &valid, "", None).await?;
        ensure!(
            problems.is_empty(),
            "a valid {} was refused: {problems:#?}",
            valid["kind"]
        );
    }

    let cases = cases(namespace.name());
    ensure!(
        cases.len() >= 15,
        "the table shrank to {} cases",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let problems = check(
            &cluster,
            &namespace,
            &case.object,
            case.field,
            Some(case.rejected_by),
        )
        .await
        .with_context(|| format!("case {:?}", case.name))?;
        failures.extend(
            problems
                .into_iter()
                .map(|problem| format!("{}: {problem}", case.name)),
        );
    }
    ensure!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn a_status_phase_outside_the_enum_is_rejected() -> Result<()> {
    let cluster = TestCluster::get()?;
    let namespace = cluster.namespace("status-validation").await?;
    let requests: Api<PodRequest> = Api::namespaced(cluster.client().await?, namespace.name());
    let request: PodRequest = serde_json::from_value(valid_pod_request(namespace.name()))?;
    requests.create(&PostParams::default(), &request).await?;

    let params = PatchParams::default();
    requests
        .patch_status(
            "validation",
            &params,
            &Patch::Merge(json!({ "status": { "phase": "Ready" } })),
        )
        .await
        .context("a valid phase was refused")?;
    let refused = requests
        .patch_status(
            "validation",
            &params,
            &Patch::Merge(json!({ "status": { "phase": "Done" } })),
        )
        .await;
    match refused {
        Err(kube::Error::Api(status)) => {
            ensure!(status.code == 422, "{status:?}");
            ensure!(
                names_field(&status.message, "status.phase"),
                "{}",
                status.message
            );
            ensure!(
                status.message.contains("\"Pending\""),
                "no supported values listed: {}",
                status.message
            );
        }
        other => anyhow::bail!("phase Done was not refused: {other:?}"),
    }
    Ok(())
}

#[test]
fn names_field_accepts_both_spellings() {
    assert!(names_field(
        "spec.roles.count: Invalid value: 0",
        "spec.roles.count"
    ));
    assert!(names_field(
        r#"missing required field "image" in dev.labpods.v1alpha1.PodRequest.spec"#,
        "spec.image"
    ));
    assert!(!names_field(
        "spec.roles.count: Invalid value: 0",
        "spec.image"
    ));
}
