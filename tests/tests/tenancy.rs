//! Tenancy on the real apiserver, with real identities: the shipped roles (deploy/roles,
//! deploy/operator) and admission policies (deploy/admission) decide what a lab user, a lab
//! admin, a cluster-admin and the operator may do.
//!
//! People are impersonated users (as `kubectl --as` does; their groups are what a real
//! authenticator would give them). The operator is its real ServiceAccount, authenticated by
//! a token from the TokenRequest API. The policies are bound per test, for that test's
//! namespaces and LabHosts only (see `labpods_tests::tenancy`): the shared apiserver's other
//! tests never see them.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use labpods_api::v1alpha1::{
    ClaimRef, ImageSpec, LabHost, LabHostSpec, Lease, LeaseHost, LeaseSpec, PodRequest,
    PodRequestSpec, RequestRef, RoleSpec, SecretReference,
};
use labpods_tests::tenancy::{
    self, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, OPERATOR_USERNAME, SCOPE_LABEL,
    ScopedPolicies,
};
use labpods_tests::{DeleteOnDrop, TestCluster, TestNamespace, eventually};
use serde_json::json;

const RBAC_PROPAGATION: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Fixtures

fn forbidden(code: u16, message: &str) -> Result<()> {
    ensure!(code == 403, "expected 403 Forbidden, got {code}: {message}");
    Ok(())
}

/// A 403 from RBAC (not from admission).
/// `object` (a booking's child, as the operator writes it) created by the admin in A and in
/// B: `user` reads A's by name, lists none of A's kind, and cannot read B's.
async fn readable_by_name_in_a_only<K>(
    lab: &Lab,
    user: &Client,
    object: serde_json::Value,
) -> Result<()>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let kind = K::kind(&());
    let (a, b) = (lab.a.name(), lab.b.name());
    for namespace in [a, b] {
        let object: K = serde_json::from_value(object.clone())?;
        Api::<K>::namespaced(lab.admin.clone(), namespace)
            .create(&PostParams::default(), &object)
            .await?;
    }
    Api::<K>::namespaced(user.clone(), a)
        .get(&name)
        .await
        .with_context(|| format!("reading {kind} {name} in A"))?;
    rbac_refusal(
        &format!("listing A's {kind}s"),
        Api::<K>::namespaced(user.clone(), a)
            .list(&ListParams::default())
            .await,
    )?;
    rbac_refusal(
        &format!("reading B's {kind} {name}"),
        Api::<K>::namespaced(user.clone(), b).get(&name).await,
    )?;
    Ok(())
}

fn rbac_refusal<T: std::fmt::Debug>(what: &str, result: kube::Result<T>) -> Result<String> {
    let (code, message) = tenancy::refusal(result).with_context(|| what.to_string())?;
    forbidden(code, &message).with_context(|| what.to_string())?;
    ensure!(
        !message.contains("ValidatingAdmissionPolicy"),
        "{what}: refused by admission, expected RBAC: {message}"
    );
    Ok(message)
}

/// A 403 from the shipped admission policy, whose message names `field` and says only the
/// operator may write it.
fn policy_refusal<T: std::fmt::Debug>(
    what: &str,
    result: kube::Result<T>,
    field: &str,
) -> Result<String> {
    let (code, message) = tenancy::refusal(result).with_context(|| what.to_string())?;
    policy_message(what, code, &message, field)?;
    Ok(message)
}

fn policy_message(what: &str, code: u16, message: &str, field: &str) -> Result<()> {
    forbidden(code, message).with_context(|| what.to_string())?;
    ensure!(
        message.contains("ValidatingAdmissionPolicy"),
        "{what}: not refused by the admission policy: {message}"
    );
    let only = format!("only the labpods operator ({OPERATOR_USERNAME}) may write {field}");
    ensure!(
        message.contains(&only),
        "{what}: the refusal should say {only:?}: {message}"
    );
    Ok(())
}

fn at(seconds_from_now: i64) -> Time {
    Time(
        Timestamp::from_second(Timestamp::now().as_second() + seconds_from_now)
            .unwrap_or(Timestamp::UNIX_EPOCH),
    )
}

fn booking(name: &str, lab: &str) -> PodRequest {
    PodRequest::new(
        name,
        PodRequestSpec::new(
            [RoleSpec::new("node", 2).with_match_labels([("labpods.dev/lab", lab)])],
            ImageSpec::new("http://images.test/os.iso"),
            "2h",
        ),
    )
}

/// A Lease for `pr` naming `hosts`, as the attacker (or the operator) writes it.
fn lease_for(pr: &PodRequest, hosts: &[String]) -> Lease {
    Lease::new(
        &pr.name_any(),
        LeaseSpec::new(
            RequestRef {
                name: pr.name_any(),
                uid: pr.uid().unwrap_or_default(),
            },
            hosts.iter().map(|h| LeaseHost {
                host: h.clone(),
                role: "node".into(),
                hostname: None,
            }),
            at(0),
            at(3600),
            ImageSpec::new("http://images.test/os.iso"),
        ),
    )
}

/// `count` LabHosts labelled into `scope` (so that the test's claim binding sees them),
/// deleted when the guards drop.
async fn labhosts(
    cluster: &TestCluster,
    client: &Client,
    scope: &str,
    count: usize,
) -> Result<(Vec<String>, Vec<DeleteOnDrop>)> {
    let api: Api<LabHost> = Api::all(client.clone());
    let mut names = Vec::new();
    let mut guards = Vec::new();
    for i in 0..count {
        let name = format!("{scope}-host-{i}");
        let mut host = LabHost::new(
            &name,
            LabHostSpec::new(
                "https://192.0.2.10",
                "x86",
                SecretReference::new(OPERATOR_NAMESPACE, "bmc-credentials"),
            ),
        );
        host.metadata.labels = Some(
            [
                (SCOPE_LABEL.to_string(), scope.to_string()),
                ("labpods.dev/lab".to_string(), scope.to_string()),
            ]
            .into(),
        );
        guards.push(cluster.delete_on_drop(format!("labhost/{name}")));
        api.create(&PostParams::default(), &host).await?;
        names.push(name);
    }
    Ok((names, guards))
}

async fn claims(client: &Client, hosts: &[String]) -> Result<Vec<Option<ClaimRef>>> {
    let api: Api<LabHost> = Api::all(client.clone());
    let mut out = Vec::new();
    for host in hosts {
        out.push(api.get(host).await?.spec.claim_ref);
    }
    Ok(out)
}

async fn role_binding(
    client: &Client,
    namespace: &str,
    name: &str,
    role: (&str, &str),
    user: &str,
) -> Result<()> {
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: role.0.into(),
            name: role.1.into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: user.into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await?;
    Ok(())
}

async fn cluster_role_binding(
    cluster: &TestCluster,
    client: &Client,
    name: &str,
    role: &str,
    user: &str,
) -> Result<DeleteOnDrop> {
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: user.into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Subject::default()
        }]),
    };
    let guard = cluster.delete_on_drop(format!("clusterrolebinding/{name}"));
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await?;
    Ok(guard)
}

/// Creates `pr` as `client` once RBAC lets it (bindings take a moment to be seen).
async fn create_when_allowed(
    client: &Client,
    namespace: &str,
    pr: &PodRequest,
) -> Result<PodRequest> {
    let api: Api<PodRequest> = Api::namespaced(client.clone(), namespace);
    let created = eventually("RBAC to let the user book", RBAC_PROPAGATION, || {
        let api = api.clone();
        let pr = pr.clone();
        async move {
            match api.create(&PostParams::default(), &pr).await {
                Ok(created) => Ok(Some(created)),
                Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
    })
    .await?;
    Ok(created)
}

/// The operator as the apiserver sees it: its real ServiceAccount (the shipped one, bound to
/// the shipped operator role), by a token.
async fn operator_client(cluster: &TestCluster, admin: &Client) -> Result<Client> {
    let token =
        tenancy::service_account_token(admin, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT).await?;
    tenancy::client_with_token(cluster.kubeconfig(), &token).await
}

struct Lab {
    cluster: TestCluster,
    admin: Client,
    a: TestNamespace,
    b: TestNamespace,
    /// Unique to the test: user names, binding names, the admission scope.
    id: String,
}

impl Lab {
    async fn new(test: &str) -> Result<Self> {
        let cluster = TestCluster::get()?;
        let admin = cluster.client().await?;
        tenancy::install_roles(&cluster.kubectl()?).await?;
        let a = cluster.namespace(&format!("{test}-a")).await?;
        let b = cluster.namespace(&format!("{test}-b")).await?;
        let id = a.name().to_string();
        Ok(Self {
            cluster,
            admin,
            a,
            b,
            id,
        })
    }

    /// A lab user bound to labpods-user in namespace A (and nothing else).
    async fn user(&self, name: &str) -> Result<(String, Client)> {
        let user = format!("{name}@{}", self.id);
        role_binding(
            &self.admin,
            self.a.name(),
            &format!("{name}-books"),
            ("ClusterRole", "labpods-user"),
            &user,
        )
        .await?;
        let client = tenancy::client_as(self.cluster.kubeconfig(), &user, &["lab-users"]).await?;
        Ok((user, client))
    }

    /// The shipped policies, bound for namespace A and this test's LabHosts.
    async fn policies(&self, operator: Option<&str>) -> Result<ScopedPolicies> {
        tenancy::label_namespace(&self.admin, self.a.name(), &self.id).await?;
        ScopedPolicies::install(
            self.cluster.kubeconfig(),
            &self.admin,
            &self.id,
            self.a.name(),
            operator,
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------
// RBAC: the shipped roles

/// A lab user bound to labpods-user in A books, extends, reads and releases there; sees and
/// changes nothing in B; writes no Lease and no claim; reads no BMC Secret.
#[tokio::test]
async fn a_lab_user_books_in_their_namespace_and_nothing_else() -> Result<()> {
    let lab = Lab::new("tenancy-user").await?;
    let (user, alice) = lab.user("alice").await?;
    let (a, b) = (lab.a.name(), lab.b.name());

    // Book, read, extend, release in A.
    let pr = create_when_allowed(&alice, a, &booking("ci-pod", &lab.id)).await?;
    let mine: Api<PodRequest> = Api::namespaced(alice.clone(), a);
    ensure!(mine.get("ci-pod").await?.uid() == pr.uid());
    ensure!(mine.list(&ListParams::default()).await?.items.len() == 1);
    mine.patch(
        "ci-pod",
        &PatchParams::default(),
        &Patch::Merge(&json!({ "spec": { "duration": "3h" } })),
    )
    .await
    .context("extending the booking")?;
    Api::<Lease>::namespaced(alice.clone(), a)
        .list(&ListParams::default())
        .await
        .context("reading the Leases of A")?;
    Api::<Event>::namespaced(alice.clone(), a)
        .list(&ListParams::default())
        .await
        .context("reading the Events of A")?;
    // The booking's access Secret and descriptor ConfigMap (as the operator writes them):
    // readable by name in A; A's are not listed, and B's are not readable.
    readable_by_name_in_a_only::<Secret>(
        &lab,
        &alice,
        json!({ "metadata": { "name": "ci-pod-access" }, "stringData": { "ssh_config": "Host node-1\n" } }),
    )
    .await?;
    readable_by_name_in_a_only::<ConfigMap>(
        &lab,
        &alice,
        json!({ "metadata": { "name": "ci-pod-pod" }, "data": { "pdf.yaml": "{}" } }),
    )
    .await?;

    // Nothing in B: not even reading.
    let theirs: Api<PodRequest> = Api::namespaced(alice.clone(), b);
    let other = lab.admin.clone();
    Api::<PodRequest>::namespaced(other, b)
        .create(&PostParams::default(), &booking("theirs", &lab.id))
        .await?;
    rbac_refusal(
        "listing B's PodRequests",
        theirs.list(&ListParams::default()).await,
    )?;
    rbac_refusal("reading B's PodRequest", theirs.get("theirs").await)?;
    rbac_refusal(
        "booking in B",
        theirs
            .create(&PostParams::default(), &booking("sneaky", &lab.id))
            .await,
    )?;
    rbac_refusal(
        "changing B's booking",
        theirs
            .patch(
                "theirs",
                &PatchParams::default(),
                &Patch::Merge(&json!({ "spec": { "duration": "9h" } })),
            )
            .await,
    )?;
    rbac_refusal(
        "deleting B's booking",
        theirs.delete("theirs", &DeleteParams::default()).await,
    )?;
    rbac_refusal(
        "reading B's Leases",
        Api::<Lease>::namespaced(alice.clone(), b)
            .list(&ListParams::default())
            .await,
    )?;
    rbac_refusal(
        "reading B's Events",
        Api::<Event>::namespaced(alice.clone(), b)
            .list(&ListParams::default())
            .await,
    )?;
    rbac_refusal(
        "reading B's Secrets",
        Api::<Secret>::namespaced(alice.clone(), b)
            .list(&ListParams::default())
            .await,
    )?;

    // No Lease, not even in A; no claim; no LabHost at all (labpods-user grants none).
    let leases: Api<Lease> = Api::namespaced(alice.clone(), a);
    let message = rbac_refusal(
        "creating a Lease in A",
        leases
            .create(
                &PostParams::default(),
                &lease_for(&pr, &["any-host".into()]),
            )
            .await,
    )?;
    ensure!(
        message.contains(&user),
        "the refusal names the user: {message}"
    );
    rbac_refusal(
        "stretching a Lease's end in A",
        leases
            .patch(
                "ci-pod",
                &PatchParams::default(),
                &Patch::Merge(&json!({ "spec": { "end": at(86400) } })),
            )
            .await,
    )?;
    rbac_refusal(
        "writing a Lease's status in A",
        leases
            .patch_status(
                "ci-pod",
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": { "phase": "Ready" } })),
            )
            .await,
    )?;
    let hosts: Api<LabHost> = Api::all(alice.clone());
    let claim = json!({ "spec": { "claimRef": { "namespace": a, "name": "ci-pod", "uid": pr.uid(), "lease": "ci-pod" } } });
    rbac_refusal(
        "setting a LabHost's claimRef",
        hosts
            .patch("any-host", &PatchParams::default(), &Patch::Merge(&claim))
            .await,
    )?;
    rbac_refusal("listing LabHosts", hosts.list(&ListParams::default()).await)?;

    // BMC credentials live in the operator's namespace: out of reach.
    let bmc: Api<Secret> = Api::namespaced(alice.clone(), OPERATOR_NAMESPACE);
    rbac_refusal(
        "listing the BMC Secrets",
        bmc.list(&ListParams::default()).await,
    )?;
    rbac_refusal("reading a BMC Secret", bmc.get("bmc-credentials").await)?;
    rbac_refusal(
        "reading the Lease signing key",
        bmc.get("labpods-lease-signing").await,
    )?;
    rbac_refusal(
        "reading the operator's ConfigMaps",
        Api::<ConfigMap>::namespaced(alice.clone(), OPERATOR_NAMESPACE)
            .list(&ListParams::default())
            .await,
    )?;

    mine.delete("ci-pod", &DeleteParams::default())
        .await
        .context("releasing the booking")?;
    Ok(())
}

/// The shipped roles are aggregated (by the controller-manager) where Kubernetes' convention says: whoever may edit or
/// administer a namespace may book in it, whoever may view it sees the bookings; nobody
/// gets a Lease write that way. LabHosts stay out of every namespaced grant.
#[tokio::test]
async fn the_controller_manager_aggregates_the_shipped_roles_into_edit_view_and_admin() -> Result<()>
{
    let lab = Lab::new("tenancy-aggregate").await?;
    let a = lab.a.name();
    let kubeconfig = lab.cluster.kubeconfig();
    let mut clients = Vec::new();
    for role in ["edit", "view", "admin"] {
        let user = format!("{role}-user@{}", lab.id);
        role_binding(
            &lab.admin,
            a,
            &format!("{role}-user"),
            ("ClusterRole", role),
            &user,
        )
        .await?;
        clients.push((role, tenancy::client_as(kubeconfig, &user, &[]).await?));
    }
    for (role, client) in &clients {
        let requests: Api<PodRequest> = Api::namespaced(client.clone(), a);
        // Aggregation is a controller: wait until it folded the labpods rules in.
        eventually(
            &format!("{role} to include reading PodRequests"),
            RBAC_PROPAGATION,
            || {
                let requests = requests.clone();
                async move {
                    match requests.list(&ListParams::default()).await {
                        Ok(_) => Ok(Some(())),
                        Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
                        Err(e) => Err(e.into()),
                    }
                }
            },
        )
        .await?;
        Api::<Lease>::namespaced(client.clone(), a)
            .list(&ListParams::default())
            .await
            .with_context(|| format!("{role} reading Leases"))?;
        let booked = requests
            .create(
                &PostParams::default(),
                &booking(&format!("by-{role}"), &lab.id),
            )
            .await;
        match *role {
            "view" => {
                rbac_refusal("view booking", booked)?;
            }
            _ => {
                booked.with_context(|| format!("{role} booking"))?;
            }
        }
        let pr = lab.admin.clone();
        let any = Api::<PodRequest>::namespaced(pr, a)
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .next()
            .context("no PodRequest in A")?;
        rbac_refusal(
            &format!("{role} creating a Lease"),
            Api::<Lease>::namespaced(client.clone(), a)
                .create(&PostParams::default(), &lease_for(&any, &["h".into()]))
                .await,
        )?;
        rbac_refusal(
            &format!("{role} listing LabHosts (cluster-scoped: not granted by a RoleBinding)"),
            Api::<LabHost>::all(client.clone())
                .list(&ListParams::default())
                .await,
        )?;
    }

    // Cluster-wide grants: labpods-viewer sees the fleet and every booking, changes nothing;
    // labpods-host-reader sees the fleet only.
    let viewer = format!("viewer@{}", lab.id);
    let _v = cluster_role_binding(
        &lab.cluster,
        &lab.admin,
        &format!("viewer-{}", lab.id),
        "labpods-viewer",
        &viewer,
    )
    .await?;
    let viewer = tenancy::client_as(kubeconfig, &viewer, &[]).await?;
    let fleet: Api<LabHost> = Api::all(viewer.clone());
    eventually("labpods-viewer to list LabHosts", RBAC_PROPAGATION, || {
        let fleet = fleet.clone();
        async move { Ok(fleet.list(&ListParams::default()).await.ok().map(|_| ())) }
    })
    .await?;
    Api::<PodRequest>::all(viewer.clone())
        .list(&ListParams::default())
        .await
        .context("labpods-viewer listing every booking")?;
    rbac_refusal(
        "labpods-viewer booking",
        Api::<PodRequest>::namespaced(viewer, a)
            .create(&PostParams::default(), &booking("by-viewer", &lab.id))
            .await,
    )?;
    let reader = format!("host-reader@{}", lab.id);
    let _r = cluster_role_binding(
        &lab.cluster,
        &lab.admin,
        &format!("host-reader-{}", lab.id),
        "labpods-host-reader",
        &reader,
    )
    .await?;
    let reader = tenancy::client_as(kubeconfig, &reader, &[]).await?;
    let fleet: Api<LabHost> = Api::all(reader.clone());
    eventually(
        "labpods-host-reader to list LabHosts",
        RBAC_PROPAGATION,
        || {
            let fleet = fleet.clone();
            async move { Ok(fleet.list(&ListParams::default()).await.ok().map(|_| ())) }
        },
    )
    .await?;
    rbac_refusal(
        "labpods-host-reader listing bookings",
        Api::<PodRequest>::namespaced(reader, a)
            .list(&ListParams::default())
            .await,
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Admission: only the operator writes Leases and claims

/// The attacks of issue 7 against a tenant whom a careless Role gave write on Leases: the
/// admission policy refuses the forged Lease and the stretched end with a message that says
/// who may write the field and what to do instead, and no host is claimed. A cluster-admin
/// is refused the same (no bypass); the operator's own ServiceAccount is let through.
#[tokio::test]
async fn forged_and_stretched_leases_are_refused_to_everyone_but_the_operator() -> Result<()> {
    let lab = Lab::new("tenancy-forge").await?;
    let a = lab.a.name();
    let (user, alice) = lab.user("mallory").await?;
    // The mistake the policy is there for: a Role granting every verb on Leases.
    let careless = Role {
        metadata: ObjectMeta {
            name: Some("careless".into()),
            namespace: Some(a.into()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![k8s_openapi::api::rbac::v1::PolicyRule {
            api_groups: Some(vec!["labpods.dev".into()]),
            resources: Some(vec!["leases".into(), "leases/status".into()]),
            verbs: vec!["*".into()],
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(lab.admin.clone(), a)
        .create(&PostParams::default(), &careless)
        .await?;
    role_binding(&lab.admin, a, "careless", ("Role", "careless"), &user).await?;
    let _policies = lab.policies(None).await?;
    let (hosts, _host_guards) = labhosts(&lab.cluster, &lab.admin, &lab.id, 3).await?;

    let pr = create_when_allowed(&alice, a, &booking("ci-pod", &lab.id)).await?;
    let forged = lease_for(&pr, &hosts);
    let tenant_leases: Api<Lease> = Api::namespaced(alice.clone(), a);
    let admin_leases: Api<Lease> = Api::namespaced(lab.admin.clone(), a);

    // The forged Lease: every free host, for the tenant's own request.
    // Until the apiserver's informers have the Lease binding too (the probe that waited for
    // the bindings was a LabHost claim), a create may still pass: undo it and try again.
    let message = eventually(
        "the careless Role and the Lease binding to reach the policy",
        RBAC_PROPAGATION,
        || {
            let api = tenant_leases.clone();
            let admin = admin_leases.clone();
            let forged = forged.clone();
            async move {
                match api.create(&PostParams::default(), &forged).await {
                    Err(kube::Error::Api(s))
                        if s.code == 403 && s.message.contains("ValidatingAdmissionPolicy") =>
                    {
                        Ok(Some(s.message))
                    }
                    Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
                    Ok(l) => {
                        admin
                            .delete(&l.name_any(), &DeleteParams::default())
                            .await?;
                        Ok(None)
                    }
                    Err(e) => Err(e.into()),
                }
            }
        },
    )
    .await?;
    policy_message("the tenant's forged Lease", 403, &message, "Leases")?;
    ensure!(
        message.contains("Create a PodRequest instead") && message.contains(&user),
        "the refusal should name the user and say what to do: {message}"
    );
    policy_refusal(
        "a cluster-admin's forged Lease (no bypass)",
        admin_leases.create(&PostParams::default(), &forged).await,
        "Leases",
    )?;
    ensure!(
        claims(&lab.admin, &hosts)
            .await?
            .iter()
            .all(Option::is_none),
        "a host was claimed"
    );

    // The operator writes the Lease (one host, as its scheduler would).
    let operator = operator_client(&lab.cluster, &lab.admin).await?;
    let operator_leases: Api<Lease> = Api::namespaced(operator.clone(), a);
    let real = lease_for(&pr, &hosts[..1]);
    operator_leases
        .create(&PostParams::default(), &real)
        .await
        .context("the operator creating a Lease")?;
    operator_leases
        .patch_status(
            "ci-pod",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": { "phase": "Ready" } })),
        )
        .await
        .context("the operator writing a Lease's status")?;
    let end = admin_leases.get("ci-pod").await?.spec.end;

    // Stretching the end, adding hosts, rewriting the status or the signature: refused.
    let stretch = json!({ "spec": { "end": at(30 * 86400) } });
    let message = policy_refusal(
        "the tenant stretching the end",
        tenant_leases
            .patch("ci-pod", &PatchParams::default(), &Patch::Merge(&stretch))
            .await,
        "spec.end",
    )?;
    ensure!(
        message.contains("change spec.end or spec.duration of PodRequest ci-pod"),
        "the refusal should say how to extend: {message}"
    );
    policy_refusal(
        "a cluster-admin stretching the end",
        admin_leases
            .patch("ci-pod", &PatchParams::default(), &Patch::Merge(&stretch))
            .await,
        "spec.end",
    )?;
    let more = json!({ "spec": { "hosts": hosts.iter().map(|h| json!({ "host": h, "role": "node" })).collect::<Vec<_>>() } });
    policy_refusal(
        "the tenant adding hosts",
        tenant_leases
            .patch("ci-pod", &PatchParams::default(), &Patch::Merge(&more))
            .await,
        "spec.hosts",
    )?;
    policy_refusal(
        "the tenant changing the image",
        tenant_leases
            .patch(
                "ci-pod",
                &PatchParams::default(),
                &Patch::Merge(&json!({ "spec": { "image": { "url": "http://evil.test/x.iso" } } })),
            )
            .await,
        "spec.image",
    )?;
    policy_refusal(
        "the tenant rewriting the status",
        tenant_leases
            .patch_status(
                "ci-pod",
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": { "phase": "Provisioning" } })),
            )
            .await,
        "status",
    )?;
    policy_refusal(
        "the tenant writing the signature",
        tenant_leases
            .patch("ci-pod", &PatchParams::default(), &Patch::Merge(&json!({ "metadata": { "annotations": { "labpods.dev/signature": "v1:forged" } } })))
            .await,
        "the annotations labpods.dev/signature",
    )?;
    let lease = admin_leases.get("ci-pod").await?;
    ensure!(
        lease.spec.end == end,
        "the end moved to {:?}",
        lease.spec.end
    );
    ensure!(lease.spec.hosts.len() == 1, "hosts: {:?}", lease.spec.hosts);

    // What is not the operator's stays open (labels: kubectl label, the garbage collector's
    // metadata writes); the operator may still change its Lease.
    tenant_leases
        .patch(
            "ci-pod",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "metadata": { "labels": { "team": "a" } } })),
        )
        .await
        .context("labelling a Lease")?;
    operator_leases
        .patch(
            "ci-pod",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": { "end": at(7200) } })),
        )
        .await
        .context("the operator extending its Lease")?;
    ensure!(
        claims(&lab.admin, &hosts)
            .await?
            .iter()
            .all(Option::is_none),
        "a host was claimed"
    );

    // Outside the test's scope the policy does not apply (other tests are untouched).
    Api::<Lease>::namespaced(lab.admin.clone(), lab.b.name())
        .create(&PostParams::default(), &lease_for(&pr, &hosts[..1]))
        .await
        .context("an unbound namespace is not this test's business")?;
    Ok(())
}

/// LabHost spec.claimRef is the operator's alone; lab admins manage everything else about
/// hosts (create, maintenance, delete), and the operator still writes status.
#[tokio::test]
async fn only_the_operator_sets_a_claim_and_lab_admins_manage_hosts() -> Result<()> {
    let lab = Lab::new("tenancy-claims").await?;
    let _policies = lab.policies(None).await?;
    let admin_user = format!("lab-admin@{}", lab.id);
    let _binding = cluster_role_binding(
        &lab.cluster,
        &lab.admin,
        &format!("lab-admin-{}", lab.id),
        "labpods-admin",
        &admin_user,
    )
    .await?;
    let bob = tenancy::client_as(lab.cluster.kubeconfig(), &admin_user, &["lab-ops"]).await?;
    let hosts: Api<LabHost> = Api::all(bob.clone());
    let name = format!("{}-managed", lab.id);
    let _guard = lab.cluster.delete_on_drop(format!("labhost/{name}"));
    let mut host = LabHost::new(
        &name,
        LabHostSpec::new(
            "https://192.0.2.20",
            "x86",
            SecretReference::new(OPERATOR_NAMESPACE, "bmc-credentials"),
        ),
    );
    host.metadata.labels = Some([(SCOPE_LABEL.to_string(), lab.id.clone())].into());
    eventually("labpods-admin to create LabHosts", RBAC_PROPAGATION, || {
        let hosts = hosts.clone();
        let host = host.clone();
        async move {
            match hosts.create(&PostParams::default(), &host).await {
                Ok(_) => Ok(Some(())),
                Err(kube::Error::Api(s))
                    if s.code == 403 && !s.message.contains("ValidatingAdmissionPolicy") =>
                {
                    Ok(None)
                }
                Err(e) => Err(e.into()),
            }
        }
    })
    .await?;
    hosts
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": { "maintenance": true } })),
        )
        .await
        .context("a lab admin setting maintenance")?;

    let claim = |uid: &str| json!({ "spec": { "claimRef": { "namespace": lab.a.name(), "name": "ci-pod", "uid": uid, "lease": "ci-pod" } } });
    let message = policy_refusal(
        "a lab admin setting a claim",
        hosts
            .patch(&name, &PatchParams::default(), &Patch::Merge(&claim("u1")))
            .await,
        "spec.claimRef",
    )?;
    ensure!(
        message.contains("Book hosts with a PodRequest")
            && message.contains("spec.maintenance: true"),
        "the refusal should say what to do instead: {message}"
    );
    policy_refusal(
        "a cluster-admin setting a claim (no bypass)",
        Api::<LabHost>::all(lab.admin.clone())
            .patch(&name, &PatchParams::default(), &Patch::Merge(&claim("u1")))
            .await,
        "spec.claimRef",
    )?;
    let mut claimed = host.clone();
    claimed.metadata.name = Some(format!("{name}-preclaimed"));
    claimed.spec.claim_ref = Some(ClaimRef {
        namespace: lab.a.name().into(),
        name: "ci-pod".into(),
        uid: "u1".into(),
        lease: "ci-pod".into(),
    });
    let _guard2 = lab
        .cluster
        .delete_on_drop(format!("labhost/{name}-preclaimed"));
    policy_refusal(
        "a lab admin creating a claimed host",
        hosts.create(&PostParams::default(), &claimed).await,
        "spec.claimRef",
    )?;

    // The operator claims, reports status, and clears the claim; nobody else clears it.
    let operator = operator_client(&lab.cluster, &lab.admin).await?;
    let as_operator: Api<LabHost> = Api::all(operator);
    as_operator
        .patch(&name, &PatchParams::default(), &Patch::Merge(&claim("u1")))
        .await
        .context("the operator claiming a host")?;
    as_operator
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": { "state": "Claimed" } })),
        )
        .await
        .context("the operator writing LabHost status")?;
    policy_refusal(
        "a lab admin moving the claim to another request",
        hosts
            .patch(&name, &PatchParams::default(), &Patch::Merge(&claim("u2")))
            .await,
        "spec.claimRef",
    )?;
    policy_refusal(
        "a lab admin clearing the claim",
        hosts
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "spec": { "claimRef": null } })),
            )
            .await,
        "spec.claimRef",
    )?;
    as_operator
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": { "claimRef": null } })),
        )
        .await
        .context("the operator clearing its claim")?;

    // A lab admin still writes no Lease and reads no Secret.
    let pr = booking("ci-pod", &lab.id);
    rbac_refusal(
        "a lab admin creating a Lease",
        Api::<Lease>::namespaced(bob.clone(), lab.a.name())
            .create(
                &PostParams::default(),
                &lease_for(&pr, std::slice::from_ref(&name)),
            )
            .await,
    )?;
    rbac_refusal(
        "a lab admin listing Secrets",
        Api::<Secret>::namespaced(bob.clone(), OPERATOR_NAMESPACE)
            .list(&ListParams::default())
            .await,
    )?;
    hosts
        .delete(&name, &DeleteParams::default())
        .await
        .context("a lab admin retiring a host")?;
    Ok(())
}

/// The operator's identity is the one named in the policy's parameter: name another one
/// there, and that one may write Leases while the default may not.
#[tokio::test]
async fn the_operator_identity_is_set_in_one_place() -> Result<()> {
    let lab = Lab::new("tenancy-identity").await?;
    let a = lab.a.name();
    let other = format!("system:serviceaccount:{a}:operator");
    let _policies = lab.policies(Some(&other)).await?;
    // The other identity gets what the shipped operator role grants, in A.
    role_binding(
        &lab.admin,
        a,
        "operator",
        ("ClusterRole", "labpods-operator"),
        &other,
    )
    .await?;
    let token = tenancy::service_account_token(&lab.admin, a, "operator").await?;
    let moved = tenancy::client_with_token(lab.cluster.kubeconfig(), &token).await?;
    let pr = Api::<PodRequest>::namespaced(lab.admin.clone(), a)
        .create(&PostParams::default(), &booking("ci-pod", &lab.id))
        .await?;
    let api: Api<Lease> = Api::namespaced(moved, a);
    eventually(
        "the configured operator to write its Lease",
        RBAC_PROPAGATION,
        || {
            let api = api.clone();
            let lease = lease_for(&pr, &["h1".into()]);
            async move {
                match api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(Some(())),
                    Err(kube::Error::Api(s))
                        if s.code == 403 && !s.message.contains("ValidatingAdmissionPolicy") =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(e.into()),
                }
            }
        },
    )
    .await?;
    let default = operator_client(&lab.cluster, &lab.admin).await?;
    let (code, message) = tenancy::refusal(
        Api::<Lease>::namespaced(default, a)
            .patch(
                "ci-pod",
                &PatchParams::default(),
                &Patch::Merge(&json!({ "spec": { "end": at(86400) } })),
            )
            .await,
    )?;
    forbidden(code, &message)?;
    ensure!(
        message.contains(&format!(
            "only the labpods operator ({other}) may write spec.end"
        )) && message.contains(OPERATOR_USERNAME),
        "the refusal should name the configured operator and the refused user: {message}"
    );
    Ok(())
}
