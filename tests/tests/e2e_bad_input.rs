//! Bad and hostile input (issue 9, test 3): a table of invalid objects (PodRequests, LabHosts,
//! Secrets) applied to the real apiserver as `kubectl apply --server-side` sends them (strict
//! field validation) while the operator runs. Each is either refused by the apiserver with a
//! message naming the field, or stored and then reported by the operator in status (a
//! PodRequest's Invalid condition, a LabHost's lastError) naming the field. Meanwhile the
//! operator keeps running, and another user's booking made after the table reaches Ready.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ApiResource, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use labpods_api::conditions::{INVALID, TRUE, find_condition};
use labpods_api::{LabHost, PodRequest};
use labpods_tests::e2e::E2e;
use labpods_tests::field::{names_field, with};
use labpods_tests::leaks::{Confidential, unique_password};
use labpods_tests::sim::HostGroup;
use serde_json::{Value, json};

/// How long the operator may take to report a stored object (it polls every second).
const REPORT_TIMEOUT: Duration = Duration::from_secs(60);
const TENANT: &str = "e2e-hostile-tenant";
/// A real public key (`ssh-keygen -t ed25519`).
const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO+rffjb9hBUQZSpeLieKhjRVKNNpSnxzW83m7lvfpjV alice@laptop";

/// What must happen to a case's subject (its last object).
enum Expect {
    /// The apiserver refuses it, naming the field.
    Refused(&'static str),
    /// Stored; the operator's status about it names the field.
    Reported(&'static str),
}

struct Case {
    name: &'static str,
    /// Objects applied in order; all but the last are what the subject needs (its Secrets)
    /// and must be stored.
    objects: Vec<Value>,
    expect: Expect,
}

fn pod_request(name: &str) -> Value {
    json!({
        "apiVersion": "labpods.dev/v1alpha1",
        "kind": "PodRequest",
        "metadata": { "name": name, "namespace": TENANT },
        "spec": {
            "roles": [{ "name": "node", "count": 1,
                        "selector": { "matchLabels": { "labpods.dev/lab": "nowhere" } } }],
            "image": { "url": "https://images.example.org/os.iso" },
            "duration": "1h",
        },
    })
}

fn lab_host(name: &str, address: &str, secret: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "labpods.dev/v1alpha1",
        "kind": "LabHost",
        "metadata": { "name": name },
        "spec": {
            "bmc": {
                "address": address,
                "credentialsSecretRef": { "name": secret, "namespace": namespace },
            },
            "profile": "hostile",
        },
    })
}

fn secret(name: &str, namespace: &str, data: &[(&str, &str)]) -> Value {
    let data: BTreeMap<&str, &str> = data.iter().copied().collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name, "namespace": namespace },
        "stringData": data,
    })
}

/// The table. `ns` is the operator's namespace (where BMC Secrets belong), `bmc` a real
/// simulated BMC, `login` its username and password, `tenant_password` a password a tenant
/// puts in an image URL.
fn cases(ns: &str, bmc: &str, login: (&str, &str), tenant_password: &str) -> Vec<Case> {
    use Expect::{Refused, Reported};
    let (user, password) = login;
    let request = |n: &str| pod_request(&format!("bad-{n}"));
    let host = |n: &str| lab_host(&format!("bad-{n}"), bmc, "bmc-credentials", ns);
    let refused = |name, object, field| Case {
        name,
        objects: vec![object],
        expect: Refused(field),
    };
    let roles = |n: usize, count: u32| -> Value {
        (0..n)
            .map(|i| json!({ "name": format!("r{i}"), "count": count }))
            .collect()
    };
    let expression = |e: Value| json!({ "matchExpressions": [e] });
    let long = |n: usize| "a".repeat(n);
    vec![
        // PodRequests the apiserver refuses.
        refused(
            "role count of the wrong type",
            with(request("a1"), "/spec/roles/0/count", Some(json!("two"))),
            "spec.roles[0].count",
        ),
        refused(
            "role count over 64",
            with(request("a2"), "/spec/roles/0/count", Some(json!(65))),
            "spec.roles[0].count",
        ),
        refused(
            "role count beyond u32",
            with(
                request("a3"),
                "/spec/roles/0/count",
                Some(json!(1_u64 << 40)),
            ),
            "spec.roles[0].count",
        ),
        refused(
            "negative role count",
            with(request("a4"), "/spec/roles/0/count", Some(json!(-1))),
            "spec.roles[0].count",
        ),
        refused(
            "17 roles",
            with(request("a5"), "/spec/roles", Some(roles(17, 1))),
            "spec.roles",
        ),
        refused(
            "129 hosts in total",
            with(request("a6"), "/spec/roles", Some(roles(3, 43))),
            "spec.roles",
        ),
        refused(
            "role name of 64 characters",
            with(request("a7"), "/spec/roles/0/name", Some(json!(long(64)))),
            "spec.roles[0].name",
        ),
        refused(
            "purpose of 100 KiB",
            with(request("a8"), "/spec/purpose", Some(json!(long(100 << 10)))),
            "spec.purpose",
        ),
        refused(
            "image URL of 3000 characters",
            with(
                request("a9"),
                "/spec/image/url",
                Some(json!(format!("https://images.example.org/{}", long(3000)))),
            ),
            "spec.image.url",
        ),
        refused(
            "image URL not http(s)",
            with(
                request("b1"),
                "/spec/image/url",
                Some(json!("javascript:alert(1)")),
            ),
            "spec.image.url",
        ),
        refused(
            "image URL with credentials",
            with(
                request("b2"),
                "/spec/image/url",
                Some(json!(format!(
                    "https://tenant:{tenant_password}@images.example.org/os.iso"
                ))),
            ),
            "spec.image.url",
        ),
        refused(
            "sha256 checksum of 63 digits",
            with(
                request("b3"),
                "/spec/image/checksum",
                Some(json!(format!("sha256:{}", "0".repeat(63)))),
            ),
            "spec.image.checksum",
        ),
        refused(
            "sha512 checksum of 64 digits",
            with(
                request("b4"),
                "/spec/image/checksum",
                Some(json!(format!("sha512:{}", "0".repeat(64)))),
            ),
            "spec.image.checksum",
        ),
        refused(
            "both duration and end",
            with(
                request("b5"),
                "/spec/end",
                Some(json!("2030-01-01T00:00:00Z")),
            ),
            "spec.end",
        ),
        refused(
            "neither duration nor end",
            with(request("b6"), "/spec/duration", None),
            "spec.duration",
        ),
        refused(
            "zero duration",
            with(request("b7"), "/spec/duration", Some(json!("0m"))),
            "spec.duration",
        ),
        refused(
            "end before start",
            with(
                with(request("b8"), "/spec/duration", None),
                "/spec",
                Some(json!({
                    "roles": [{ "name": "node", "count": 1 }],
                    "image": { "url": "https://images.example.org/os.iso" },
                    "start": "2030-01-02T00:00:00Z",
                    "end": "2030-01-01T00:00:00Z",
                })),
            ),
            "spec.end",
        ),
        refused(
            "selector operator outside the set",
            with(
                request("b9"),
                "/spec/roles/0/selector",
                Some(expression(
                    json!({ "key": "labpods.dev/rack", "operator": "Like" }),
                )),
            ),
            "spec.roles[0].selector.matchExpressions[0].operator",
        ),
        refused(
            "selector In without values",
            with(
                request("c1"),
                "/spec/roles/0/selector",
                Some(expression(
                    json!({ "key": "labpods.dev/rack", "operator": "In" }),
                )),
            ),
            "spec.roles[0].selector.matchExpressions[0].values",
        ),
        refused(
            "selector label key with a space",
            with(
                request("c2"),
                "/spec/roles/0/selector",
                Some(json!({ "matchLabels": { "bad key!": "x" } })),
            ),
            "spec.roles[0].selector.matchLabels",
        ),
        refused(
            "unknown PodRequest field",
            with(request("c3"), "/spec/priority", Some(json!("urgent"))),
            "spec.priority",
        ),
        // LabHosts the apiserver refuses.
        refused(
            "cpus over 16384",
            with(
                host("d1"),
                "/spec/hardware",
                Some(json!({ "cpus": 16_385 })),
            ),
            "spec.hardware.cpus",
        ),
        refused(
            "cpus beyond u32",
            with(
                host("d2"),
                "/spec/hardware",
                Some(json!({ "cpus": 1_u64 << 33 })),
            ),
            "spec.hardware.cpus",
        ),
        refused(
            "memory 0 GiB",
            with(
                host("d3"),
                "/spec/hardware",
                Some(json!({ "memoryGiB": 0 })),
            ),
            "spec.hardware.memoryGiB",
        ),
        refused(
            "BMC address not http(s)",
            with(
                host("d4"),
                "/spec/bmc/address",
                Some(json!("ipmi://10.0.0.21")),
            ),
            "spec.bmc.address",
        ),
        refused(
            "BMC address of 3000 characters",
            with(
                host("d5"),
                "/spec/bmc/address",
                Some(json!(format!("https://{}.example", long(3000)))),
            ),
            "spec.bmc.address",
        ),
        refused(
            "fingerprint of 63 digits",
            with(
                host("d6"),
                "/spec/bmc/tls",
                Some(json!({ "certificateSha256": "a".repeat(63) })),
            ),
            "spec.bmc.tls.certificateSha256",
        ),
        refused(
            "CA bundle and insecureSkipVerify",
            with(
                host("d7"),
                "/spec/bmc/tls",
                Some(json!({
                    "caBundleSecretRef": { "name": "bmc-ca", "namespace": ns },
                    "insecureSkipVerify": true,
                })),
            ),
            "spec.bmc.tls",
        ),
        refused(
            "system id escaping its collection",
            with(
                host("d8"),
                "/spec/bmc/systemId",
                Some(json!("../../Managers/1")),
            ),
            "spec.bmc.systemId",
        ),
        refused(
            "Secret namespace not a DNS label",
            with(
                host("d9"),
                "/spec/bmc/credentialsSecretRef/namespace",
                Some(json!("Not_A_Namespace")),
            ),
            "spec.bmc.credentialsSecretRef.namespace",
        ),
        refused(
            "boot mode outside the enum",
            with(host("e1"), "/spec/bootMode", Some(json!("EFI"))),
            "spec.bootMode",
        ),
        refused(
            "unknown BMC field",
            with(host("e2"), "/spec/bmc/ipmiPort", Some(json!(623))),
            "spec.bmc.ipmiPort",
        ),
        // A Secret Kubernetes itself refuses.
        refused(
            "Secret key with a space",
            secret("bad-e3", ns, &[("pass word", "x")]),
            "data[pass word]",
        ),
        // Stored, and reported by the operator.
        Case {
            name: "booking wholly in the past",
            objects: vec![with(
                with(request("f1"), "/spec/duration", None),
                "/spec",
                Some(json!({
                    "roles": [{ "name": "node", "count": 1 }],
                    "image": { "url": "https://images.example.org/os.iso" },
                    "start": "2020-01-01T00:00:00Z",
                    "end": "2020-01-02T00:00:00Z",
                })),
            )],
            expect: Reported("spec.end"),
        },
        // Access: the apiserver checks a key's shape; the operator its body and the YAML.
        refused(
            "SSH key with a second line smuggled in its comment",
            with(
                request("k1"),
                "/spec/access",
                Some(
                    json!({ "sshAuthorizedKeys": [format!("{ED25519}\ncommand=\"sh\" {ED25519}")] }),
                ),
            ),
            "spec.access.sshAuthorizedKeys[0]",
        ),
        refused(
            "SSH key that is not one (a private key pasted)",
            with(
                request("k2"),
                "/spec/roles/0/access",
                Some(json!({ "sshAuthorizedKeys": ["-----BEGIN OPENSSH PRIVATE KEY-----"] })),
            ),
            "spec.roles[0].access.sshAuthorizedKeys[0]",
        ),
        refused(
            "more SSH keys than allowed",
            with(
                request("k3"),
                "/spec/access",
                Some(json!({ "sshAuthorizedKeys": vec![ED25519; 33] })),
            ),
            "spec.access.sshAuthorizedKeys",
        ),
        Case {
            name: "SSH key whose body is of another type",
            objects: vec![with(
                request("k4"),
                "/spec/access",
                Some(
                    json!({ "sshAuthorizedKeys": [ED25519, ED25519.replacen("ssh-ed25519", "ssh-rsa", 1)] }),
                ),
            )],
            expect: Reported("spec.access.sshAuthorizedKeys[1]"),
        },
        Case {
            name: "SSH key of a type OpenSSH dropped (DSA)",
            objects: vec![with(
                request("k5"),
                "/spec/access",
                Some(
                    json!({ "sshAuthorizedKeys": [ED25519.replacen("ssh-ed25519", "ssh-dss", 1)] }),
                ),
            )],
            expect: Reported("spec.access.sshAuthorizedKeys[0]"),
        },
        Case {
            name: "networkData that is not network-config version 2",
            objects: vec![with(
                request("k6"),
                "/spec/access",
                Some(json!({ "networkData": "version: 1\nconfig: []\n" })),
            )],
            expect: Reported("spec.access.networkData"),
        },
        Case {
            name: "networkData that is not YAML",
            objects: vec![with(
                request("k7"),
                "/spec/roles/0/access",
                Some(json!({ "networkData": "version: 2\n  ethernets: [" })),
            )],
            expect: Reported("spec.roles[0].access.networkData"),
        },
        Case {
            name: "booking longer than the lab allows",
            objects: vec![with(request("f2"), "/spec/duration", Some(json!("40d")))],
            expect: Reported("spec.duration"),
        },
        Case {
            name: "credentials Secret missing",
            objects: vec![lab_host("bad-g1", bmc, "no-such-secret", ns)],
            expect: Reported("spec.bmc.credentialsSecretRef"),
        },
        Case {
            name: "credentials Secret without a password",
            objects: vec![
                secret("bad-g2", ns, &[("username", user)]),
                lab_host("bad-g2", bmc, "bad-g2", ns),
            ],
            expect: Reported("spec.bmc.credentialsSecretRef"),
        },
        Case {
            name: "credentials Secret without a username",
            objects: vec![
                secret("bad-g3", ns, &[("password", password)]),
                lab_host("bad-g3", bmc, "bad-g3", ns),
            ],
            expect: Reported("spec.bmc.credentialsSecretRef"),
        },
        Case {
            name: "credentials Secret in a tenant's namespace",
            objects: vec![
                secret(
                    "bad-g4",
                    TENANT,
                    &[("username", user), ("password", password)],
                ),
                lab_host("bad-g4", bmc, "bad-g4", TENANT),
            ],
            expect: Reported("spec.bmc.credentialsSecretRef.namespace"),
        },
        Case {
            name: "wrong BMC password",
            objects: vec![
                secret(
                    "bad-g5",
                    ns,
                    &[("username", user), ("password", "not-the-password")],
                ),
                lab_host("bad-g5", bmc, "bad-g5", ns),
            ],
            expect: Reported("spec.bmc.credentialsSecretRef"),
        },
        Case {
            name: "garbage in the CA bundle",
            objects: vec![
                secret(
                    "bad-g6",
                    ns,
                    &[("ca.crt", "-----BEGIN CERTIFICATE-----\ngarbage\n")],
                ),
                with(
                    host("g6"),
                    "/spec/bmc/tls",
                    Some(json!({ "caBundleSecretRef": { "name": "bad-g6", "namespace": ns } })),
                ),
            ],
            expect: Reported("spec.bmc.tls.caBundleSecretRef"),
        },
        Case {
            name: "CA bundle Secret without ca.crt",
            objects: vec![
                secret("bad-g7", ns, &[("ca.pem", "x")]),
                with(
                    host("g7"),
                    "/spec/bmc/tls",
                    Some(json!({ "caBundleSecretRef": { "name": "bad-g7", "namespace": ns } })),
                ),
            ],
            expect: Reported("spec.bmc.tls.caBundleSecretRef"),
        },
        Case {
            name: "BMC address where nothing listens",
            objects: vec![with(
                host("g8"),
                "/spec/bmc/address",
                Some(json!("http://127.0.0.1:1")),
            )],
            expect: Reported("spec.bmc.address"),
        },
    ]
}

/// The API for an object of the table, by its kind.
fn api_for(e2e: &E2e, object: &Value) -> Result<Api<DynamicObject>> {
    let namespace = object["metadata"]["namespace"].as_str();
    let resource = match object["kind"].as_str() {
        Some("PodRequest") => ApiResource::erase::<PodRequest>(&()),
        Some("LabHost") => ApiResource::erase::<LabHost>(&()),
        Some("Secret") => ApiResource::erase::<Secret>(&()),
        other => bail!("no kind {other:?} in the table"),
    };
    Ok(match namespace {
        Some(ns) => Api::namespaced_with(e2e.client(), ns, &resource),
        None => Api::all_with(e2e.client(), &resource),
    })
}

/// Applies `object` as `kubectl apply --server-side` does; Err is the refusal's message.
async fn apply(e2e: &E2e, object: &Value) -> Result<std::result::Result<(), String>> {
    let api = api_for(e2e, object)?;
    let name = object["metadata"]["name"].as_str().context("no name")?;
    let params = PatchParams::apply("e2e-bad-input").validation_strict();
    match api.patch(name, &params, &Patch::Apply(object)).await {
        Ok(_) => Ok(Ok(())),
        Err(kube::Error::Api(status)) if (400..500).contains(&status.code) => {
            Ok(Err(status.message))
        }
        // A value of the wrong type never reaches validation under server-side apply: the
        // apiserver cannot build the typed patch and answers 500, naming the field.
        Err(kube::Error::Api(status))
            if status.code == 500 && status.message.contains("failed to create typed patch") =>
        {
            Ok(Err(status.message))
        }
        Err(e) => Err(e.into()),
    }
}

/// The operator's status message about a stored subject: a PodRequest's Invalid condition, a
/// LabHost's lastError.
async fn reported(client: Client, object: &Value) -> labpods_tests::Result<Option<String>> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    Ok(match object["kind"].as_str() {
        Some("PodRequest") => {
            let api: Api<PodRequest> = Api::namespaced(client, TENANT);
            let status = api.get(name).await?.status.unwrap_or_default();
            find_condition(&status.conditions, INVALID)
                .filter(|c| c.status == TRUE)
                .map(|c| c.message.clone())
        }
        _ => {
            let api: Api<LabHost> = Api::all(client);
            api.get(name).await?.status.and_then(|s| s.last_error)
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_bad_and_hostile_input_is_refused_or_reported_naming_the_field() -> Result<()> {
    let mut e2e = E2e::start("e2e-bad-input", &[HostGroup::new("small", 2)]).await?;
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(TENANT.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(e2e.client())
        .create(&PostParams::default(), &namespace)
        .await?;
    let lab_hosts = e2e.host_names();
    let bmc = e2e.labhost(&lab_hosts[0]).await?.spec.bmc;
    let credentials: Api<Secret> = Api::namespaced(e2e.client(), e2e.namespace());
    let login = credentials
        .get(&bmc.credentials_secret_ref.name)
        .await?
        .data
        .unwrap_or_default();
    let field = |key: &str| {
        login
            .get(key)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .unwrap_or_default()
    };
    let (user, password) = (field("username"), field("password"));
    let tenant_password = unique_password();
    e2e.keep_confidential(Confidential::value(
        "the password a tenant put in an image URL",
        &tenant_password,
    ));

    let table = cases(
        e2e.namespace(),
        &bmc.address,
        (&user, &password),
        &tenant_password,
    );
    ensure!(table.len() >= 30, "the table shrank to {}", table.len());
    let mut problems = Vec::new();
    let mut stored = Vec::new();
    for case in &table {
        let (subject, needs) = case.objects.split_last().context("an empty case")?;
        for object in needs {
            if let Err(message) = apply(&e2e, object).await? {
                problems.push(format!("{}: its Secret was refused: {message}", case.name));
            }
        }
        match (&case.expect, apply(&e2e, subject).await?) {
            (Expect::Refused(field), Err(message)) if !names_field(&message, field) => {
                problems.push(format!(
                    "{}: refused without naming {field}: {message}",
                    case.name
                ));
            }
            (Expect::Refused(_), Err(_)) => {}
            (Expect::Refused(_), Ok(())) => {
                problems.push(format!("{}: the apiserver stored it", case.name));
            }
            (Expect::Reported(_), Err(message)) => {
                problems.push(format!(
                    "{}: refused, but must be stored: {message}",
                    case.name
                ));
            }
            (Expect::Reported(field), Ok(())) => stored.push((case.name, subject, *field)),
        }
    }

    // Another user books while all of that is stored: the operator is neither stuck nor down.
    e2e.book("good", vec![e2e.role("node", 2, None)], "1h")
        .await?;
    e2e.check_ready("good", &[("node", 2)]).await?;

    for (name, subject, field) in stored {
        let what = format!("the operator to report {name:?} naming {field}");
        let client = e2e.client();
        let message = e2e
            .wait(&what, REPORT_TIMEOUT, || reported(client.clone(), subject))
            .await;
        match message {
            Ok(m) if names_field(&m, field) => {}
            Ok(m) => problems.push(format!("{name}: reported without naming {field}: {m}")),
            Err(e) => problems.push(format!("{name}: {e:#}")),
        }
    }
    // No hostile LabHost joined the pool.
    for host in Api::<LabHost>::all(e2e.client())
        .list(&Default::default())
        .await?
        .items
    {
        let name = host.meta().name.clone().unwrap_or_default();
        let state = host.status.and_then(|s| s.state);
        if name.starts_with("bad-") && state == Some(labpods_api::HostState::Available) {
            problems.push(format!("hostile LabHost {name} is Available"));
        }
    }
    e2e.operator("a")?.check_running()?;
    ensure!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    e2e.shutdown().await?;
    Ok(())
}
