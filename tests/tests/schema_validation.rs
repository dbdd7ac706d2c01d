//! The CRD schemas reject bad input, each rejection naming the offending field, every way a
//! user or a tool submits it: `kubectl apply` (client-side and server-side, as users and
//! GitOps tools do) and a plain API create (a client that skips kubectl).
//!
//! Three tables:
//! * [`schema_cases`]: what the OpenAPI schema itself refuses (types, patterns, ranges,
//!   required fields, list sizes), and the unknown fields strict field validation refuses;
//! * [`rule_cases`]: one violating and one passing object per CEL rule of
//!   `labpods_api::validation::RULES`, checked both ways: the controllers' Rust check reports
//!   the rule's message at the field, and the real apiserver refuses with the same message at
//!   the same field (and accepts the passing object);
//! * the transition rules, which need a stored object with a status, in their own test.
//!
//! What needs the clock stays with the controllers: the last test shows a booking in the past
//! passing the apiserver and being reported by the Rust validation.

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use labpods_api::conditions::{INVALID, TRUE, find_condition};
use labpods_api::validation::{
    self, FieldError, RULES, podrequest_rule_errors, podrequest_update_errors, validate_labhost,
    validate_lease, validate_podrequest,
};
use labpods_api::{LabHost, Lease, PodRequest, PodRequestPhase};
use labpods_tests::e2e::{E2e, from_now};
use labpods_tests::field::{names_field, with};
use labpods_tests::sim::HostGroup;
use labpods_tests::{TestCluster, TestNamespace};
use serde_json::{Value, json};
use std::time::Duration;

/// Who rejects a case.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RejectedBy {
    /// The schema: every client is refused, the apiserver answers 422.
    Schema,
    /// Strict field validation: an unknown field. kubectl asks for it (its default
    /// `--validate=strict`) and is refused naming the field; a client that asks for nothing
    /// gets the default, `Warn`: the object is stored with the field dropped.
    StrictFieldValidation,
}

#[derive(Debug)]
struct Case {
    name: &'static str,
    object: Value,
    /// The path the message must name, e.g. `spec.roles[0].count`.
    field: &'static str,
    rejected_by: RejectedBy,
}

/// A real public key (`ssh-keygen -t ed25519`).
const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO+rffjb9hBUQZSpeLieKhjRVKNNpSnxzW83m7lvfpjV alice@laptop";

const SHA256: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

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
                "checksum": SHA256,
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

fn valid_lease(namespace: &str) -> Value {
    json!({
        "apiVersion": "labpods.dev/v1alpha1",
        "kind": "Lease",
        "metadata": { "name": "validation", "namespace": namespace },
        "spec": {
            "requestRef": { "name": "validation", "uid": "3f1c5a2e-0000-4000-8000-000000000001" },
            "hosts": [{ "host": "host-01", "role": "node" }],
            "start": "2026-12-01T09:00:00Z",
            "end": "2026-12-04T09:00:00Z",
            "image": { "url": "https://images.example.org/os.iso" },
        },
    })
}

/// `base` with several changes.
fn with_all(base: Value, changes: &[(&str, Option<Value>)]) -> Value {
    changes.iter().fold(base, |object, (pointer, value)| {
        with(object, pointer, value.clone())
    })
}

fn roles(entries: &[(&str, u32)]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|(name, count)| json!({ "name": name, "count": count }))
            .collect(),
    )
}

fn schema_cases(namespace: &str) -> Vec<Case> {
    use RejectedBy::{Schema, StrictFieldValidation};
    let request = || valid_pod_request(namespace);
    let host = valid_lab_host;
    let case = |name, object, field, rejected_by| Case {
        name,
        object,
        field,
        rejected_by,
    };
    let many_roles: Vec<String> = (0..17).map(|i| format!("role{i}")).collect();
    let many_roles: Vec<(&str, u32)> = many_roles.iter().map(|n| (n.as_str(), 1)).collect();
    let many_expressions: Vec<Value> = (0..17)
        .map(|i| json!({ "key": format!("k{i}"), "operator": "Exists" }))
        .collect();
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
            "spec.roles[0].count",
            Schema,
        ),
        case(
            "role count 65",
            with(request(), "/spec/roles/0/count", Some(json!(65))),
            "spec.roles[0].count",
            Schema,
        ),
        case(
            "role count not a number",
            with(request(), "/spec/roles/0/count", Some(json!("two"))),
            "spec.roles[0].count",
            Schema,
        ),
        case(
            "role name not a DNS label",
            with(request(), "/spec/roles/0/name", Some(json!("Jump_Host"))),
            "spec.roles[0].name",
            Schema,
        ),
        case(
            "role profile not a DNS label",
            with(request(), "/spec/roles/1/profile", Some(json!("X86 Large"))),
            "spec.roles[1].profile",
            Schema,
        ),
        case(
            "selector with 17 expressions",
            with(
                request(),
                "/spec/roles/1/selector",
                Some(json!({ "matchExpressions": many_expressions })),
            ),
            "spec.roles[1].selector.matchExpressions",
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
            "duration with too many digits",
            with(request(), "/spec/duration", Some(json!("99999d"))),
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
            StrictFieldValidation,
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
            StrictFieldValidation,
        ),
    ]
}

/// One CEL rule's case: an object that breaks only that rule, the field the error names,
/// and a nearby object that keeps it.
#[derive(Debug)]
struct RuleCase {
    rule: &'static str,
    violating: Value,
    field: &'static str,
    passing: Value,
    /// Server-side apply refuses a list with a duplicate map key before validation runs,
    /// with its own message ("duplicate entries for key") at the same field.
    apply_refuses_duplicate_key: bool,
}

/// A DNS subdomain of exactly `len` characters, labels of at most 63 joined by dots.
fn dns_name(len: usize) -> String {
    let mut name = String::new();
    while name.len() < len {
        if !name.is_empty() {
            name.push('.');
        }
        let label = (len - name.len()).min(63);
        name.push_str(&"a".repeat(label));
    }
    name
}

fn rule_cases(namespace: &str) -> Vec<RuleCase> {
    let request = || valid_pod_request(namespace);
    let host = valid_lab_host;
    let lease = || valid_lease(namespace);
    let case = |rule, violating, field, passing| RuleCase {
        rule,
        violating,
        field,
        passing,
        apply_refuses_duplicate_key: false,
    };
    let selector = |s: Value| with(request(), "/spec/roles/1/selector", Some(s));
    let expression = |e: Value| selector(json!({ "matchExpressions": [e] }));
    let tls = |insecure: bool| {
        with(
            host(),
            "/spec/bmc/tls",
            Some(json!({
                "caBundleSecretRef": { "name": "bmc-ca", "namespace": "labpods-system" },
                "insecureSkipVerify": insecure,
            })),
        )
    };
    vec![
        case(
            "podrequest-length-required",
            with(request(), "/spec/duration", None),
            "spec.duration",
            with_all(
                request(),
                &[
                    ("/spec/duration", None),
                    ("/spec/end", Some(json!("2026-12-02T09:00:00Z"))),
                ],
            ),
        ),
        // At both places the rule sits: the request's access and a role's.
        case(
            "access-ssh-key-format",
            with(
                request(),
                "/spec/access",
                Some(
                    json!({ "sshAuthorizedKeys": [ED25519, format!("{ED25519}\nssh-ed25519 AAAA")] }),
                ),
            ),
            "spec.access.sshAuthorizedKeys[1]",
            with(
                request(),
                "/spec/access",
                Some(json!({ "sshAuthorizedKeys": [ED25519, format!("{ED25519} \u{2014} work")] })),
            ),
        ),
        case(
            "access-ssh-key-format",
            with(
                request(),
                "/spec/roles/1/access",
                Some(
                    json!({ "sshAuthorizedKeys": [ED25519.replacen("ssh-ed25519", "SSH-ED25519", 1)] }),
                ),
            ),
            "spec.roles[1].access.sshAuthorizedKeys[0]",
            with(
                request(),
                "/spec/roles/1/access",
                Some(
                    json!({ "sshAuthorizedKeys": [format!("sk-ssh-ed25519@openssh.com {}", &ED25519[12..])] }),
                ),
            ),
        ),
        case(
            "podrequest-duration-xor-end",
            with(request(), "/spec/end", Some(json!("2026-12-02T09:00:00Z"))),
            "spec.end",
            request(),
        ),
        case(
            "podrequest-duration-positive",
            with(request(), "/spec/duration", Some(json!("0d0h"))),
            "spec.duration",
            with(request(), "/spec/duration", Some(json!("0d1h"))),
        ),
        case(
            "podrequest-end-after-start",
            with_all(
                request(),
                &[
                    ("/spec/duration", None),
                    ("/spec/end", Some(json!("2026-12-01T09:00:00Z"))),
                ],
            ),
            "spec.end",
            with_all(
                request(),
                &[
                    ("/spec/duration", None),
                    ("/spec/end", Some(json!("2026-12-01T09:00:01Z"))),
                ],
            ),
        ),
        RuleCase {
            apply_refuses_duplicate_key: true,
            ..case(
                "podrequest-role-names-unique",
                with(
                    request(),
                    "/spec/roles",
                    Some(roles(&[("node", 1), ("node", 2)])),
                ),
                "spec.roles",
                with(
                    request(),
                    "/spec/roles",
                    Some(roles(&[("node", 1), ("gpu", 2)])),
                ),
            )
        },
        case(
            "podrequest-total-hosts",
            with(
                request(),
                "/spec/roles",
                Some(roles(&[("a", 64), ("b", 64), ("c", 1)])),
            ),
            "spec.roles",
            with(
                request(),
                "/spec/roles",
                Some(roles(&[("a", 64), ("b", 64)])),
            ),
        ),
        case(
            "selector-match-labels-keys",
            selector(json!({ "matchLabels": { format!("{}/rack", dns_name(254)): "r1" } })),
            "spec.roles[1].selector.matchLabels",
            selector(json!({ "matchLabels": { format!("{}/rack", dns_name(253)): "r1" } })),
        ),
        case(
            "selector-match-labels-values",
            selector(json!({ "matchLabels": { "labpods.dev/rack": "r1-" } })),
            "spec.roles[1].selector.matchLabels",
            selector(json!({ "matchLabels": { "labpods.dev/rack": "" } })),
        ),
        case(
            "requirement-key",
            expression(json!({ "key": "labpods.dev/", "operator": "Exists" })),
            "spec.roles[1].selector.matchExpressions[0].key",
            expression(json!({ "key": "labpods.dev/rack", "operator": "Exists" })),
        ),
        case(
            "requirement-operator",
            expression(json!({ "key": "labpods.dev/rack", "operator": "in", "values": ["r1"] })),
            "spec.roles[1].selector.matchExpressions[0].operator",
            expression(json!({ "key": "labpods.dev/rack", "operator": "In", "values": ["r1"] })),
        ),
        case(
            "requirement-values-required",
            expression(json!({ "key": "labpods.dev/rack", "operator": "NotIn", "values": [] })),
            "spec.roles[1].selector.matchExpressions[0].values",
            expression(json!({ "key": "labpods.dev/rack", "operator": "NotIn", "values": ["r1"] })),
        ),
        case(
            "requirement-values-forbidden",
            expression(
                json!({ "key": "labpods.dev/rack", "operator": "DoesNotExist", "values": ["r1"] }),
            ),
            "spec.roles[1].selector.matchExpressions[0].values",
            expression(
                json!({ "key": "labpods.dev/rack", "operator": "DoesNotExist", "values": [] }),
            ),
        ),
        case(
            "requirement-values-syntax",
            expression(
                json!({ "key": "labpods.dev/rack", "operator": "In", "values": ["r1", "r 2"] }),
            ),
            "spec.roles[1].selector.matchExpressions[0].values",
            expression(
                json!({ "key": "labpods.dev/rack", "operator": "In", "values": ["r1", "r.2"] }),
            ),
        ),
        case(
            "image-url",
            // The pattern lets `:80` pass as a host; the rule sees there is none.
            with(
                request(),
                "/spec/image/url",
                Some(json!("http://:80/os.iso")),
            ),
            "spec.image.url",
            with(
                request(),
                "/spec/image/url",
                Some(json!("http://images.example.org:80/os.iso")),
            ),
        ),
        case(
            "image-url-no-credentials",
            with(
                request(),
                "/spec/image/url",
                Some(json!("https://tenant:hunter2@images.example.org/os.iso")),
            ),
            "spec.image.url",
            with(
                request(),
                "/spec/image/url",
                Some(json!(
                    "https://images.example.org/os.iso?owner=tenant@example.org"
                )),
            ),
        ),
        case(
            "image-checksum-length",
            with(
                request(),
                "/spec/image/checksum",
                Some(json!(format!("sha256:{}", "0".repeat(128)))),
            ),
            "spec.image.checksum",
            with(
                request(),
                "/spec/image/checksum",
                Some(json!(format!("sha512:{}", "0".repeat(128)))),
            ),
        ),
        case(
            "lease-end-after-start",
            with(lease(), "/spec/end", Some(json!("2026-12-01T09:00:00Z"))),
            "spec.end",
            lease(),
        ),
        case(
            "bmc-address-url",
            with(host(), "/spec/bmc/address", Some(json!("https://:443"))),
            "spec.bmc.address",
            with(
                host(),
                "/spec/bmc/address",
                Some(json!("https://10.0.0.21:443")),
            ),
        ),
        case(
            "bmc-system-id-one-segment",
            with(host(), "/spec/bmc/systemId", Some(json!("Systems/1"))),
            "spec.bmc.systemId",
            with(
                host(),
                "/spec/bmc/systemId",
                Some(json!("System.Embedded.1")),
            ),
        ),
        case(
            "bmc-tls-ca-or-insecure",
            tls(true),
            "spec.bmc.tls",
            tls(false),
        ),
        case(
            "bmc-tls-fingerprint-format",
            with(
                host(),
                "/spec/bmc/tls",
                // 31 pairs: one short.
                Some(json!({ "certificateSha256": vec!["ab"; 31].join(":") })),
            ),
            "spec.bmc.tls.certificateSha256",
            with(
                host(),
                "/spec/bmc/tls",
                Some(json!({ "certificateSha256": vec!["ab"; 32].join(":") })),
            ),
        ),
        case(
            "bmc-tls-fingerprint-alone",
            with(
                host(),
                "/spec/bmc/tls",
                Some(json!({
                    "certificateSha256": "ab".repeat(32),
                    "caBundleSecretRef": { "name": "bmc-ca", "namespace": "labpods-system" },
                })),
            ),
            "spec.bmc.tls",
            with(
                host(),
                "/spec/bmc/tls",
                Some(json!({ "certificateSha256": "AB".repeat(32) })),
            ),
        ),
    ]
}

/// What the controllers' Rust validation says of `object` by the rules of the table alone
/// (no clock, no policy).
fn rust_rule_errors(object: &Value) -> Result<Vec<FieldError>> {
    Ok(match object["kind"].as_str() {
        Some("PodRequest") => {
            podrequest_rule_errors(&serde_json::from_value::<PodRequest>(object.clone())?.spec)
        }
        Some("LabHost") => {
            validate_labhost(&serde_json::from_value::<LabHost>(object.clone())?.spec)
        }
        Some("Lease") => validate_lease(&serde_json::from_value::<Lease>(object.clone())?.spec),
        other => bail!("no validation for kind {other:?}"),
    })
}

/// The error of rule `id` at `field`, as both sides must word it.
fn expected_error(id: &str, field: &str) -> Result<(FieldError, &'static str)> {
    let rule = validation::rules::rule(id).with_context(|| format!("no rule {id}"))?;
    let error = rule.error_at("");
    Ok((
        FieldError {
            field: field.to_owned(),
            message: error.message,
        },
        rule.reason.label(),
    ))
}

/// (a) of the rule table: the Rust check rejects each violating object with the rule's
/// message at the field, and accepts each passing object. Needs no cluster.
#[test]
fn the_rust_checks_reject_each_rule_case_with_the_rules_message() -> Result<()> {
    let cases = rule_cases("rules");
    for rule in RULES.iter().filter(|r| !r.check.is_transition()) {
        ensure!(
            cases.iter().any(|c| c.rule == rule.id),
            "rule {} has no case",
            rule.id
        );
    }
    for case in &cases {
        let (expected, _) = expected_error(case.rule, case.field)?;
        let violating = rust_rule_errors(&case.violating)?;
        ensure!(
            violating == [expected.clone()],
            "{}: the Rust check said {violating:?}, expected only {expected:?}",
            case.rule
        );
        let passing = rust_rule_errors(&case.passing)?;
        ensure!(
            passing.is_empty(),
            "{}: the Rust check refused the passing object: {passing:?}",
            case.rule
        );
    }
    Ok(())
}

fn dynamic_api(kind: &str, client: kube::Client, namespace: &str) -> Result<Api<DynamicObject>> {
    Ok(match kind {
        "LabHost" => Api::all_with(client, &ApiResource::erase::<LabHost>(&())),
        "PodRequest" => {
            Api::namespaced_with(client, namespace, &ApiResource::erase::<PodRequest>(&()))
        }
        "Lease" => Api::namespaced_with(client, namespace, &ApiResource::erase::<Lease>(&())),
        other => bail!("unknown kind {other}"),
    })
}

/// How one submission ended.
#[derive(Debug)]
struct Answer {
    /// How it was submitted.
    how: &'static str,
    /// The object as stored (a dry run), or the refusal's message.
    outcome: std::result::Result<Value, String>,
}

const KUBECTL_APPLY: &str = "kubectl apply";
const KUBECTL_APPLY_SERVER_SIDE: &str = "kubectl apply --server-side";
const API_CREATE: &str = "API create";

/// Submit `object` as a server-side dry run: with kubectl (client-side and server-side
/// apply, kubectl's default strict field validation) and by a plain API create.
async fn submit(
    cluster: &TestCluster,
    namespace: &TestNamespace,
    object: &Value,
) -> Result<Vec<Answer>> {
    let yaml = serde_yaml::to_string(object)?;
    let kubectl = cluster.kubectl()?.namespace(namespace.name());
    let mut answers = Vec::new();
    for (how, mode) in [
        (KUBECTL_APPLY, "--server-side=false"),
        (KUBECTL_APPLY_SERVER_SIDE, "--server-side=true"),
    ] {
        let output = kubectl
            .run_with_input(
                ["apply", mode, "--dry-run=server", "-o", "json", "-f", "-"],
                &yaml,
            )
            .await?;
        let outcome = if output.success {
            Ok(serde_json::from_str(&output.stdout)
                .with_context(|| format!("{how} printed {}", output.stdout))?)
        } else {
            Err(output.stderr)
        };
        answers.push(Answer { how, outcome });
    }
    let kind = object["kind"].as_str().unwrap_or_default();
    let api = dynamic_api(kind, cluster.client().await?, namespace.name())?;
    let dynamic: DynamicObject = serde_json::from_value(object.clone())?;
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let outcome = match api.create(&dry_run, &dynamic).await {
        Ok(stored) => Ok(serde_json::to_value(stored)?),
        Err(kube::Error::Api(status)) if status.code == 422 => Err(status.message),
        Err(kube::Error::Api(status)) => Err(format!(
            "HTTP {} (not 422): {}",
            status.code, status.message
        )),
        Err(err) => return Err(err.into()),
    };
    answers.push(Answer {
        how: API_CREATE,
        outcome,
    });
    Ok(answers)
}

/// Problems with `answers` for an object every way must accept.
fn accepted_every_way(answers: &[Answer]) -> Vec<String> {
    answers
        .iter()
        .filter_map(|a| match &a.outcome {
            Ok(_) => None,
            Err(message) => Some(format!("{} refused it: {message}", a.how)),
        })
        .collect()
}

/// Problems with `answers` for an object every way must refuse naming `field`.
fn refused_every_way(answers: &[Answer], field: &str) -> Vec<String> {
    answers
        .iter()
        .filter_map(|a| match &a.outcome {
            Ok(_) => Some(format!("{} accepted it", a.how)),
            Err(message) if !names_field(message, field) => {
                Some(format!("{} did not name {field}: {message}", a.how))
            }
            Err(_) => None,
        })
        .collect()
}

#[tokio::test]
async fn invalid_manifests_are_rejected_naming_the_field() -> Result<()> {
    let cluster = TestCluster::get()?;
    let namespace = cluster.namespace("schema-validation").await?;

    // The table means something only if the objects it breaks are valid.
    for valid in [
        valid_pod_request(namespace.name()),
        valid_lab_host(),
        valid_lease(namespace.name()),
    ] {
        let problems = accepted_every_way(&submit(&cluster, &namespace, &valid).await?);
        ensure!(
            problems.is_empty(),
            "a valid {} was refused: {problems:#?}",
            valid["kind"]
        );
    }

    let cases = schema_cases(namespace.name());
    ensure!(
        cases.len() >= 15,
        "the table shrank to {} cases",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let answers = submit(&cluster, &namespace, &case.object)
            .await
            .with_context(|| format!("case {:?}", case.name))?;
        let problems = match case.rejected_by {
            RejectedBy::Schema => refused_every_way(&answers, case.field),
            RejectedBy::StrictFieldValidation => {
                let (kubectl, api): (Vec<_>, Vec<_>) =
                    answers.into_iter().partition(|a| a.how != API_CREATE);
                let mut problems = refused_every_way(&kubectl, case.field);
                // The API default (`Warn`): stored, the unknown field dropped.
                let name = case.field.rsplit('.').next().unwrap_or(case.field);
                for a in &api {
                    match &a.outcome {
                        Ok(stored) if stored.to_string().contains(&format!("\"{name}\"")) => {
                            problems.push(format!("{} kept {}: {stored}", a.how, case.field));
                        }
                        Ok(_) => {}
                        Err(message) => {
                            problems.push(format!("{} refused it: {message}", a.how));
                        }
                    }
                }
                problems
            }
        };
        failures.extend(problems.into_iter().map(|p| format!("{}: {p}", case.name)));
    }
    ensure!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

/// (b) of the rule table: the real apiserver refuses each violating object with the rule's
/// message at the field the Rust check names, every way it is submitted, and accepts each
/// passing object.
#[tokio::test]
async fn every_cel_rule_rejects_its_case_with_the_rust_checks_message() -> Result<()> {
    let cluster = TestCluster::get()?;
    let namespace = cluster.namespace("cel-rules").await?;
    let mut failures = Vec::new();
    for case in rule_cases(namespace.name()) {
        let (expected, label) = expected_error(case.rule, case.field)?;
        // The apiserver's line: `<field>: <reason>: <message>` (1.37 prints no value for a
        // CEL `Invalid value`; older ones put the type between reason and message).
        let head = format!("{}: {label}", expected.field);
        for answer in submit(&cluster, &namespace, &case.violating).await? {
            let problem = match &answer.outcome {
                Ok(_) => Some("accepted it".to_owned()),
                Err(message)
                    if answer.how == KUBECTL_APPLY_SERVER_SIDE
                        && case.apply_refuses_duplicate_key =>
                {
                    (!(message.contains("duplicate entries for key")
                        && names_field(message, &expected.field)))
                    .then(|| format!("no duplicate key at {}: {message}", expected.field))
                }
                Err(message)
                    if !(message.contains(&head) && message.contains(&expected.message)) =>
                {
                    Some(format!(
                        "did not say {head}: {}: {message}",
                        expected.message
                    ))
                }
                Err(_) => None,
            };
            if let Some(problem) = problem {
                failures.push(format!("{}: {}: {problem}", case.rule, answer.how));
            }
        }
        let answers = submit(&cluster, &namespace, &case.passing).await?;
        failures.extend(
            accepted_every_way(&answers)
                .into_iter()
                .map(|p| format!("{} (passing): {p}", case.rule)),
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

/// Patch the spec of PodRequest `validation` (merge patch, as `kubectl patch` sends it).
async fn patch_spec(api: &Api<PodRequest>, spec: Value) -> kube::Result<PodRequest> {
    api.patch(
        "validation",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await
}

async fn patch_status(api: &Api<PodRequest>, status: Value) -> Result<PodRequest> {
    api.patch_status(
        "validation",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .context("a status write was refused")
}

/// The refusal of a spec patch must be rule `id`'s, as the Rust check words it for the
/// same transition.
fn assert_refused_by(
    result: kube::Result<PodRequest>,
    id: &str,
    rust: &[FieldError],
) -> Result<()> {
    let field = validation::rules::rule(id)
        .map(|r| r.error_at("").field)
        .unwrap_or_default();
    let (expected, label) = expected_error(id, &field)?;
    ensure!(
        rust == [expected.clone()],
        "{id}: the Rust check said {rust:?}"
    );
    match result {
        Err(kube::Error::Api(status)) => {
            ensure!(status.code == 422, "{status:?}");
            let head = format!("{}: {label}: {}", expected.field, expected.message);
            ensure!(status.message.contains(&head), "{id}: {}", status.message);
            Ok(())
        }
        other => bail!("{id}: the update was not refused: {other:?}"),
    }
}

/// Roles may not change once hosts are bound (`status.lease` set), nor the image once
/// provisioning has started: transition rules at the schema root, where they see the status.
/// Status writes (the operator's, on /status) and metadata changes never trip them.
#[tokio::test]
async fn roles_freeze_once_bound_and_the_image_once_provisioning_started() -> Result<()> {
    let cluster = TestCluster::get()?;
    let namespace = cluster.namespace("transition-rules").await?;
    let api: Api<PodRequest> = Api::namespaced(cluster.client().await?, namespace.name());
    let request: PodRequest = serde_json::from_value(valid_pod_request(namespace.name()))?;
    api.create(&PostParams::default(), &request).await?;

    // Before binding, everything may change.
    patch_spec(&api, json!({ "roles": [{ "name": "node", "count": 2 }] }))
        .await
        .context("changing roles before binding")?;
    patch_spec(
        &api,
        json!({ "image": { "url": "https://images.example.org/b.iso" } }),
    )
    .await
    .context("changing the image before binding")?;

    // Bound: the operator writes status.lease.
    let stored = patch_status(&api, json!({ "lease": "validation", "phase": "Scheduled" })).await?;
    let more = json!([{ "name": "node", "count": 3 }]);
    let mut changed = stored.clone();
    changed.spec.roles = serde_json::from_value(more.clone())?;
    assert_refused_by(
        patch_spec(&api, json!({ "roles": more })).await,
        "podrequest-roles-immutable-once-bound",
        &podrequest_update_errors(&stored, &changed),
    )?;
    // What a user sees from kubectl.
    let mut manifest = valid_pod_request(namespace.name());
    manifest["spec"]["roles"] = json!([{ "name": "node", "count": 3 }]);
    manifest["spec"]["image"]["url"] = json!("https://images.example.org/b.iso");
    let output = cluster
        .kubectl()?
        .namespace(namespace.name())
        .run_with_input(["apply", "-f", "-"], &serde_yaml::to_string(&manifest)?)
        .await?;
    ensure!(
        !output.success
            && output
                .stderr
                .contains("spec.roles: Forbidden: spec.roles cannot change once hosts are bound"),
        "kubectl apply: {output:?}"
    );
    // Other fields still may, the image included until provisioning starts.
    patch_spec(&api, json!({ "purpose": "still editable" })).await?;
    patch_spec(
        &api,
        json!({ "image": { "url": "https://images.example.org/c.iso" } }),
    )
    .await
    .context("changing the image of a bound, not yet provisioning request")?;

    // Provisioning started.
    let stored = patch_status(
        &api,
        json!({ "phase": "Provisioning", "message": "booting" }),
    )
    .await?;
    let mut changed = stored.clone();
    changed.spec.image.url = "https://images.example.org/d.iso".into();
    assert_refused_by(
        patch_spec(
            &api,
            json!({ "image": { "url": "https://images.example.org/d.iso" } }),
        )
        .await,
        "podrequest-image-immutable-once-provisioning",
        &podrequest_update_errors(&stored, &changed),
    )?;
    // Re-applying the same spec, metadata and status writes go through.
    patch_spec(&api, serde_json::to_value(&stored.spec)?).await?;
    api.patch(
        "validation",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "team": "a" } } })),
    )
    .await
    .context("a label on a provisioning request")?;
    patch_status(&api, json!({ "phase": "Ready", "message": "ready" })).await?;
    Ok(())
}

/// With `nullable` kept (schemars' rendering of `Option`), an explicit `null` is stored
/// rather than pruned: the rules read it as absent, and the operator's types read it as
/// `None`.
#[tokio::test]
async fn explicit_nulls_are_stored_and_read_as_absent() -> Result<()> {
    let cluster = TestCluster::get()?;
    let namespace = cluster.namespace("explicit-nulls").await?;
    let mut object = valid_pod_request(namespace.name());
    object["spec"]["end"] = Value::Null;
    object["spec"]["start"] = Value::Null;
    object["spec"]["purpose"] = Value::Null;
    object["spec"]["roles"][1]["selector"] = Value::Null;
    object["spec"]["image"]["checksum"] = Value::Null;
    let api = dynamic_api("PodRequest", cluster.client().await?, namespace.name())?;
    let stored = api
        .create(&PostParams::default(), &serde_json::from_value(object)?)
        .await
        .context("duration with end: null is one length, not two")?;
    let stored = serde_json::to_value(stored)?;
    ensure!(
        stored["spec"]["end"].is_null() && stored["spec"].get("end").is_some(),
        "{stored}"
    );

    let typed: Api<PodRequest> = Api::namespaced(cluster.client().await?, namespace.name());
    let read = typed
        .get("validation")
        .await
        .context("the operator's types read it")?;
    ensure!(
        read.spec.end.is_none()
            && read.spec.start.is_none()
            && read.spec.purpose.is_none()
            && read.spec.roles[1].selector.is_none()
            && read.spec.image.checksum.is_none(),
        "{:?}",
        read.spec
    );
    let errors = validate_podrequest(
        &read.spec,
        Timestamp::now(),
        SignedDuration::from_hours(14 * 24),
    );
    ensure!(errors.is_empty(), "{errors:?}");
    Ok(())
}

/// What needs the clock the apiserver cannot check: a booking wholly in the past is stored,
/// and the controllers' validation reports it naming the fields and the fix.
#[tokio::test]
async fn a_booking_in_the_past_passes_the_apiserver_and_is_left_to_the_controller() -> Result<()> {
    let cluster = TestCluster::get()?;
    let namespace = cluster.namespace("past-booking").await?;
    let object = with_all(
        valid_pod_request(namespace.name()),
        &[
            ("/spec/duration", None),
            ("/spec/start", Some(json!("2020-01-06T09:00:00Z"))),
            ("/spec/end", Some(json!("2020-01-08T09:00:00Z"))),
        ],
    );
    let problems = accepted_every_way(&submit(&cluster, &namespace, &object).await?);
    ensure!(problems.is_empty(), "{problems:#?}");
    let spec = serde_json::from_value::<PodRequest>(object)?.spec;
    let errors = validate_podrequest(&spec, Timestamp::now(), SignedDuration::from_hours(14 * 24));
    ensure!(
        errors.len() == 1
            && errors[0].field == "spec.end"
            && errors[0].message.contains("wholly in the past")
            && errors[0]
                .message
                .contains("move spec.start and spec.end into the future"),
        "{errors:?}"
    );
    Ok(())
}

/// The same booking given to the operator: it reports it Invalid (phase Failed, condition
/// Invalid naming spec.end and the fix) instead of waiting for a window that never comes,
/// and claims nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_booking_wholly_in_the_past_is_reported_invalid() -> Result<()> {
    let mut e2e = E2e::start("e2e-past-booking", &[HostGroup::new("small", 1)]).await?;
    let roles = vec![e2e.role("node", 1, Some("small"))];
    e2e.book_window("past", roles, Some(from_now(-3 * 3600)?), from_now(-3600)?)
        .await?;
    let failed = e2e
        .wait_phase("past", PodRequestPhase::Failed, Duration::from_secs(30))
        .await?;
    let status = failed.status.clone().unwrap_or_default();
    let invalid = find_condition(&status.conditions, INVALID)
        .with_context(|| format!("no Invalid condition: {status:?}"))?;
    ensure!(invalid.status == TRUE, "{invalid:?}");
    ensure!(
        invalid.message.contains("spec.end: ")
            && invalid.message.contains("wholly in the past")
            && invalid
                .message
                .contains("move spec.start and spec.end into the future"),
        "{}",
        invalid.message
    );
    ensure!(
        e2e.lease("past").await?.is_none(),
        "a Lease for a past booking"
    );
    e2e.shutdown().await?;
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
