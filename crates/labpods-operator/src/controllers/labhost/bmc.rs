//! The LabHost's BMC: credentials from its Secrets, one client per host (the connector shares
//! sessions per endpoint), and what one pass observes. Every call is timed into the Redfish
//! metrics under a bounded operation name and bounded by the global concurrency limit.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, PoisonError},
    time::Instant,
};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use labpods_api::v1alpha1::{BmcSpec, LabHost, SecretReference};
use labpods_redfish::{Bmc, BmcTarget, Credentials, Fingerprint, SettingNames, TlsOptions};
use tokio::sync::Mutex;
use url::Url;

use crate::{
    context::Context,
    error::{Error, Result},
};

/// The resourceVersion of each Secret in the operator's namespace, as the LabHost
/// controller's Secret watch last saw it (metadata only: no credential is cached).
#[derive(Debug, Clone, Default)]
pub struct SecretVersions(Arc<std::sync::Mutex<HashMap<String, String>>>);

impl SecretVersions {
    pub fn record(&self, name: &str, version: Option<&str>) {
        let mut versions = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match version {
            Some(v) => versions.insert(name.to_owned(), v.to_owned()),
            None => versions.remove(name),
        };
    }

    fn version(&self, name: &str) -> Option<String> {
        let versions = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        versions.get(name).cloned()
    }

    /// The versions of the Secrets `bmc` names, in the order it names them.
    fn of(&self, bmc: &BmcSpec) -> Vec<Option<String>> {
        let versions = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        secret_names(bmc)
            .map(|n| versions.get(n).cloned())
            .collect()
    }
}

/// The names of the Secrets a LabHost's BMC spec reads (all in the operator's namespace).
pub fn secret_names(bmc: &BmcSpec) -> impl Iterator<Item = &str> {
    std::iter::once(bmc.credentials_secret_ref.name.as_str()).chain(
        bmc.tls
            .ca_bundle_secret_ref
            .as_ref()
            .map(|r| r.name.as_str()),
    )
}

/// A host's client and what it was built from: the spec, the Secrets' versions the watch
/// had seen then, and the target read from them. A change of either reconnects; a changed
/// target (rotated credentials, a new CA) logs the old session out.
#[derive(Debug)]
struct Connected {
    spec: BmcSpec,
    versions: Vec<Option<String>>,
    target: BmcTarget,
    client: Arc<dyn Bmc>,
    /// The BMC refused the credentials: read the Secrets again before the next call.
    stale: bool,
}

/// Clients per LabHost name.
#[derive(Debug, Default)]
pub struct BmcClients {
    clients: Mutex<HashMap<String, Connected>>,
    versions: SecretVersions,
    secrets: Secrets,
}

/// The Secrets read this term, kept while the watch shows no newer version: a lab of 10,000
/// hosts sharing one credentials Secret reads it once at start-up, not once per host.
#[derive(Debug, Default)]
struct Secrets(std::sync::Mutex<HashMap<String, Arc<Secret>>>);

impl Secrets {
    /// `name` as last read, unless the watch has seen another version since.
    fn current(&self, name: &str, versions: &SecretVersions) -> Option<Arc<Secret>> {
        let cached = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let secret = cached.get(name)?;
        let seen = versions.version(name);
        (seen.is_none() || seen == secret.metadata.resource_version).then(|| secret.clone())
    }

    fn keep(&self, name: &str, secret: Arc<Secret>) {
        let mut cached = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        cached.insert(name.to_owned(), secret);
    }
}

/// How a pass reads the Secrets of one host.
struct SecretReader<'a> {
    ctx: &'a Context,
    cache: &'a Secrets,
    versions: &'a SecretVersions,
    /// The BMC refused what was read: read again, whatever the cache holds.
    again: bool,
}

impl SecretReader<'_> {
    async fn read(&self, r: &SecretReference, field: &str) -> Result<Arc<Secret>> {
        if !self.again
            && r.namespace == self.ctx.config.leader_election.lease_namespace
            && let Some(secret) = self.cache.current(&r.name, self.versions)
        {
            return Ok(secret);
        }
        let secret = Arc::new(read_secret(self.ctx, r, field).await?);
        self.cache.keep(&r.name, secret.clone());
        Ok(secret)
    }
}

impl BmcClients {
    pub fn new(versions: SecretVersions) -> Self {
        Self {
            clients: Mutex::default(),
            versions,
            secrets: Secrets::default(),
        }
    }

    /// The host's client, connecting (and reading its Secrets) only when needed.
    pub async fn get(&self, ctx: &Context, host: &LabHost) -> Result<Arc<dyn Bmc>> {
        let name = host.metadata.name.clone().unwrap_or_default();
        let versions = self.versions.of(&host.spec.bmc);
        let previous = {
            let mut clients = self.clients.lock().await;
            match clients.get(&name) {
                Some(c) if c.spec == host.spec.bmc && c.versions == versions && !c.stale => {
                    return Ok(c.client.clone());
                }
                _ => clients.remove(&name),
            }
        };
        let reader = SecretReader {
            ctx,
            cache: &self.secrets,
            versions: &self.versions,
            again: previous.as_ref().is_some_and(|c| c.stale),
        };
        let target = match target(&reader, &host.spec.bmc).await {
            Ok(target) => target,
            Err(e) => {
                // Keep the old target, so that its session is still logged out later.
                if let Some(mut old) = previous {
                    old.stale = true;
                    self.clients.lock().await.insert(name, old);
                }
                return Err(e);
            }
        };
        let previous = match previous {
            // Nothing that reaches the BMC changed (the watch saw a Secret's version for
            // the first time, another spec field changed): the session goes on.
            Some(old) if old.target == target && !old.stale => {
                let client = old.client.clone();
                let kept = Connected {
                    spec: host.spec.bmc.clone(),
                    versions,
                    ..old
                };
                self.clients.lock().await.insert(name, kept);
                return Ok(client);
            }
            other => other,
        };
        if let Some(old) = previous.filter(|old| old.target != target)
            && let Err(e) = ctx.bmc.disconnect(&old.target).await
        {
            tracing::debug!(error = %e, "BMC logout after a credential change failed");
        }
        let client = call(ctx, "connect", ctx.bmc.connect(&target)).await?;
        let connected = Connected {
            spec: host.spec.bmc.clone(),
            versions,
            target,
            client: client.clone(),
            stale: false,
        };
        self.clients.lock().await.insert(name, connected);
        Ok(client)
    }

    /// The BMC refused the credentials (they may have rotated): the next pass re-reads the
    /// Secret, and logs the old session out if it changed.
    pub async fn refused(&self, host: &str) {
        if let Some(c) = self.clients.lock().await.get_mut(host) {
            c.stale = true;
        }
    }

    /// Drops the host's client (the host is gone).
    pub async fn forget(&self, host: &str) -> Option<Arc<dyn Bmc>> {
        self.clients.lock().await.remove(host).map(|c| c.client)
    }
}

/// The LabHost fields that name its Secrets, as errors about them name them.
const CREDENTIALS_FIELD: &str = "spec.bmc.credentialsSecretRef";
const CA_BUNDLE_FIELD: &str = "spec.bmc.tls.caBundleSecretRef";

async fn target(secrets: &SecretReader<'_>, bmc: &BmcSpec) -> Result<BmcTarget> {
    let endpoint = Url::parse(&bmc.address).map_err(|e| {
        Error::Bmc(labpods_redfish::Error::InvalidEndpoint(format!(
            "spec.bmc.address {}: {e}",
            bmc.address
        )))
    })?;
    let secret = secrets
        .read(&bmc.credentials_secret_ref, CREDENTIALS_FIELD)
        .await?;
    let credentials = (&bmc.credentials_secret_ref, CREDENTIALS_FIELD);
    let username = secret_key(&secret, credentials, "username")?;
    let password = secret_key(&secret, credentials, "password")?;
    // The schema checks the spelling; this is for objects stored before it did.
    let certificate_sha256 = bmc
        .tls
        .certificate_sha256
        .as_deref()
        .map(|s| {
            s.parse::<Fingerprint>().map_err(|e| {
                Error::Bmc(labpods_redfish::Error::Tls(format!(
                    "spec.bmc.tls.certificateSha256: {e}"
                )))
            })
        })
        .transpose()?;
    let ca_pem = match &bmc.tls.ca_bundle_secret_ref {
        Some(r) => {
            let secret = secrets.read(r, CA_BUNDLE_FIELD).await?;
            Some(secret_key(&secret, (r, CA_BUNDLE_FIELD), "ca.crt")?)
        }
        None => None,
    };
    Ok(BmcTarget {
        endpoint,
        system_id: bmc.system_id.clone(),
        credentials: Credentials::new(
            String::from_utf8_lossy(&username),
            String::from_utf8_lossy(&password),
        ),
        tls: TlsOptions {
            ca_pem,
            certificate_sha256,
            insecure_skip_verify: bmc.tls.insecure_skip_verify,
            names: SettingNames {
                ca_bundle: CA_BUNDLE_FIELD,
                fingerprint: "spec.bmc.tls.certificateSha256",
            },
        },
    })
}

/// Reads a Secret a LabHost names, only from the operator's namespace: whoever may write a
/// LabHost must not be able to send any Secret of the cluster to an address they choose.
async fn read_secret(ctx: &Context, r: &SecretReference, field: &str) -> Result<Secret> {
    let own = &ctx.config.leader_election.lease_namespace;
    if &r.namespace != own {
        return Err(Error::Secret {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            message: format!(
                "{field}.namespace must be the operator's namespace `{own}`: BMC Secrets are \
                 read only from there; move the Secret to `{own}` and point {field} at it"
            ),
        });
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &r.namespace);
    api.get_opt(&r.name).await?.ok_or_else(|| Error::Secret {
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        message: format!("not found: create it, or point {field} at an existing Secret"),
    })
}

/// One key of the Secret `field` names. The value never appears in errors or logs.
fn secret_key(secret: &Secret, (r, field): (&SecretReference, &str), key: &str) -> Result<Vec<u8>> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|v| v.clone().into_bytes())
        })
        .ok_or_else(|| Error::Secret {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            message: format!(
                "has no key `{key}`: add it, or point {field} at a Secret that has it"
            ),
        })
}

/// Runs one Redfish call under the global concurrency limit and records its latency and
/// errors under `operation` (a fixed name, never object data). Fenced: no call starts once
/// leadership is lost, and one in flight (with its retries and task polls) is abandoned
/// when it is, so a deposed replica's Redfish traffic never interleaves with the new
/// leader's.
pub async fn call<T>(
    ctx: &Context,
    operation: &'static str,
    fut: impl Future<Output = labpods_redfish::Result<T>>,
) -> Result<T> {
    // The semaphore is never closed, so acquiring only fails if it were; run unbounded then.
    let _permit = ctx.bmc_limit.acquire().await.ok();
    ctx.ensure_leader()?;
    let mut leadership = ctx.leadership.clone();
    let started = Instant::now();
    let result = tokio::select! {
        result = fut => result,
        () = leadership.lost() => return Err(Error::NotLeader),
    };
    ctx.metrics.observe_redfish(operation, started.elapsed());
    if let Err(e) = &result {
        ctx.metrics.redfish_failed(operation, e.metric_label());
    }
    Ok(result?)
}

/// A power action, no earlier than the minimum interval after this term began: the previous
/// leader's last action on this BMC may have come just before its term ended, and the
/// per-BMC minimum interval between power actions must hold across replicas too.
pub async fn reset(ctx: &Context, bmc: &dyn Bmc, kind: labpods_redfish::ResetKind) -> Result<()> {
    let mut leadership = ctx.leadership.clone();
    tokio::select! {
        () = tokio::time::sleep_until(ctx.power_actions_from) => {}
        () = leadership.lost() => return Err(Error::NotLeader),
    }
    call(ctx, "reset", bmc.reset(kind)).await
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn secret(version: &str) -> Arc<Secret> {
        Arc::new(Secret {
            metadata: ObjectMeta {
                name: Some("bmc".into()),
                resource_version: Some(version.into()),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        })
    }

    #[test]
    fn a_read_secret_serves_until_the_watch_sees_another_version() {
        let (cache, versions) = (Secrets::default(), SecretVersions::default());
        assert!(cache.current("bmc", &versions).is_none(), "never read");
        cache.keep("bmc", secret("7"));
        // Before the watch listed it, and while it shows the version read: no new read.
        assert!(cache.current("bmc", &versions).is_some());
        versions.record("bmc", Some("7"));
        assert!(cache.current("bmc", &versions).is_some());
        // Rotated: read again.
        versions.record("bmc", Some("8"));
        assert!(cache.current("bmc", &versions).is_none());
        assert!(cache.current("other", &versions).is_none());
    }
}
