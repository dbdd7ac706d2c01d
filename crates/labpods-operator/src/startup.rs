//! Startup checks that turn the usual first-run mistakes into one clear message each: CRDs
//! not installed, RBAC missing a rule. They run before leader election so that every replica
//! reports them, and `labpods run` exits non-zero with the message.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, ListParams, PostParams},
};

/// A startup check that failed.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("CRD {crd} is not installed: run kubectl apply -f crds/")]
    MissingCrd { crd: String },
    #[error(
        "the operator's service account may not {verb} {resource}{scope}: add this rule to its (Cluster)Role (deploy/operator/rbac.yaml grants every rule the operator needs)"
    )]
    Forbidden {
        verb: String,
        resource: String,
        scope: String,
    },
    #[error("cannot reach the Kubernetes API")]
    Kube(#[from] kube::Error),
}

impl StartupError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::MissingCrd { .. } => "missing_crd",
            Self::Forbidden { .. } => "forbidden",
            Self::Kube(_) => "kube",
        }
    }
}

/// One permission the operator needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: Option<&'static str>,
    pub verb: &'static str,
    /// None = cluster-wide (or all namespaces).
    pub namespace: Option<String>,
}

impl Permission {
    fn describe(&self) -> (String, String) {
        let mut resource = self.resource.to_string();
        if let Some(sub) = self.subresource {
            resource = format!("{resource}/{sub}");
        }
        if !self.group.is_empty() {
            resource = format!("{resource}.{}", self.group);
        }
        let scope = match &self.namespace {
            Some(ns) => format!(" in namespace {ns}"),
            None => " cluster-wide".to_string(),
        };
        (resource, scope)
    }
}

/// Every permission the operator uses (what `deploy/operator/rbac.yaml` grants, and no more).
/// `namespace` is the operator's own (`leaderElection.leaseNamespace`): the BMC credential
/// Secrets, the Lease signing key, the history ConfigMaps and, when `leader_election`, the
/// election Lease live there. Outside the labpods kinds, only a booking's user-data Secret
/// is read elsewhere (get, by name).
pub fn required_permissions(namespace: &str, leader_election: bool) -> Vec<Permission> {
    let p = |group, resource, subresource, verb, namespace: Option<&str>| Permission {
        group,
        resource,
        subresource,
        verb,
        namespace: namespace.map(str::to_string),
    };
    let mut out = vec![];
    for verb in ["get", "list", "watch", "patch", "update"] {
        out.push(p("labpods.dev", "labhosts", None, verb, None));
        out.push(p("labpods.dev", "podrequests", None, verb, None));
    }
    for verb in ["get", "list", "watch", "create", "patch", "delete"] {
        out.push(p("labpods.dev", "leases", None, verb, None));
    }
    for resource in ["labhosts", "podrequests", "leases"] {
        out.push(p("labpods.dev", resource, Some("status"), "patch", None));
    }
    out.push(p("events.k8s.io", "events", None, "create", None));
    out.push(p("events.k8s.io", "events", None, "patch", None));
    // Tenants' Secrets: each booking's access Secret is written by server-side apply (a
    // patch, which creates); its user data for the hosts' seeds is read by name only (never
    // listed or watched), and only from the booking's own namespace
    // (`controllers::labhost::seed`).
    for verb in ["create", "get", "patch"] {
        out.push(p("", "secrets", None, verb, None));
    }
    // Each booking's descriptor ConfigMap, likewise written, never read.
    for verb in ["create", "patch"] {
        out.push(p("", "configmaps", None, verb, None));
    }
    let ns = Some(namespace);
    // The BMC Secrets are watched (metadata only) so that rotated credentials reconnect.
    for verb in ["get", "list", "watch", "create"] {
        out.push(p("", "secrets", None, verb, ns));
    }
    // History shards: listed, replaced and deleted by housekeeping (merge, compaction, retention).
    for verb in ["get", "list", "create", "update", "delete"] {
        out.push(p("", "configmaps", None, verb, ns));
    }
    if leader_election {
        for verb in ["get", "create", "update"] {
            out.push(p("coordination.k8s.io", "leases", None, verb, ns));
        }
    }
    out
}

/// The CRDs the operator serves: (plural, kind).
const CRDS: [(&str, &str); 3] = [
    ("labhosts", "LabHost"),
    ("podrequests", "PodRequest"),
    ("leases", "Lease"),
];

/// Fails with the first problem found: missing CRDs first (the most common mistake), then
/// missing permissions (see [`required_permissions`]).
pub async fn check(
    client: &Client,
    namespace: &str,
    leader_election: bool,
) -> Result<(), StartupError> {
    for (plural, kind) in CRDS {
        let resource = ApiResource {
            group: labpods_api::GROUP.into(),
            version: "v1alpha1".into(),
            api_version: format!("{}/v1alpha1", labpods_api::GROUP),
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        match api.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {
                return Err(StartupError::MissingCrd {
                    crd: format!("{plural}.{}", labpods_api::GROUP),
                });
            }
            // 403 is reported by the access review below, with the rule to add.
            Err(kube::Error::Api(status)) if status.code == 403 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    for permission in required_permissions(namespace, leader_election) {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(permission.group.into()),
                    resource: Some(permission.resource.into()),
                    subresource: permission.subresource.map(Into::into),
                    verb: Some(permission.verb.into()),
                    namespace: permission.namespace.clone(),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let answer = reviews.create(&PostParams::default(), &review).await?;
        if !answer.status.is_some_and(|s| s.allowed) {
            let (resource, scope) = permission.describe();
            return Err(StartupError::Forbidden {
                verb: permission.verb.into(),
                resource,
                scope,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn messages_tell_the_fix() {
        let missing = StartupError::MissingCrd {
            crd: "labhosts.labpods.dev".into(),
        };
        assert_eq!(
            missing.to_string(),
            "CRD labhosts.labpods.dev is not installed: run kubectl apply -f crds/"
        );
        let status = required_permissions("labpods-system", false)
            .into_iter()
            .find(|p| p.subresource == Some("status"))
            .unwrap();
        let (resource, scope) = status.describe();
        assert_eq!(resource, "labhosts/status.labpods.dev");
        assert_eq!(scope, " cluster-wide");
    }

    #[test]
    fn leader_election_rules_are_namespaced() {
        let perms = required_permissions("labpods-system", true);
        let lease = perms
            .iter()
            .find(|p| p.group == "coordination.k8s.io" && p.verb == "update")
            .unwrap();
        assert_eq!(lease.namespace.as_deref(), Some("labpods-system"));
        assert!(
            required_permissions("labpods-system", false)
                .iter()
                .all(|p| p.group != "coordination.k8s.io")
        );
    }

    /// Secrets: outside the operator's namespace only written (the access Secrets it hands
    /// tenants) or read by name (a booking's user data), never listed or watched; its own
    /// namespace's (the BMC credentials) are watched for rotation.
    #[test]
    fn secrets_elsewhere_are_never_listed_or_watched() {
        let perms = required_permissions("labpods-system", true);
        let secrets: Vec<_> = perms.iter().filter(|p| p.resource == "secrets").collect();
        let mut cluster_wide: Vec<_> = secrets
            .iter()
            .filter(|p| p.namespace.is_none())
            .map(|p| p.verb)
            .collect();
        cluster_wide.sort_unstable();
        assert_eq!(cluster_wide, ["create", "get", "patch"]);
        assert!(
            secrets
                .iter()
                .filter(|p| matches!(p.verb, "list" | "watch"))
                .all(|p| p.namespace.as_deref() == Some("labpods-system")),
            "{secrets:?}"
        );
    }

    /// The descriptor ConfigMaps are written in tenants' namespaces, never read there.
    #[test]
    fn configmaps_are_only_written_outside_the_operators_namespace() {
        let perms = required_permissions("labpods-system", true);
        let mut cluster_wide: Vec<_> = perms
            .iter()
            .filter(|p| p.resource == "configmaps" && p.namespace.is_none())
            .map(|p| p.verb)
            .collect();
        cluster_wide.sort_unstable();
        assert_eq!(cluster_wide, ["create", "patch"]);
    }
}
