//! Serves a host's NoCloud seed for its current run, rendered on demand from the booking
//! (the PodRequest's access, its user-data Secret, the Lease's hostname) so that any replica
//! can serve it and it is gone (404) as soon as the run or the booking ends: nothing of it is
//! stored. The URL carries a seed token (like the phone-home token, bound to host, booking
//! and run, for another purpose), so only whoever was handed the URL (the host's BMC) can
//! fetch it.
//!
//! A release run that boots a wipe image gets a seed too, with nothing of the booking in it:
//! the run's phone-home (the wipe's evidence) and a power-off.

use std::{future::Future, pin::Pin};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use labpods_api::v1alpha1::{AccessSpec, LabHost, Lease, PodRequest};
use url::Url;

use super::phone_home::{Purpose, current_run};
use crate::{
    http::{PhoneHomeTokens, Run, SeedError, SeedSource},
    seed::{self, SeedInput},
    signing::{LeaseSigner, Seal},
};

/// Reads what a seed is rendered from, through the API server.
#[derive(Clone)]
pub struct SeedServer {
    client: Client,
    tokens: PhoneHomeTokens,
    /// Where hosts reach the operator; absent = no phone-home in the seed, and no seed
    /// delivered (the BMC needs a URL to fetch it from).
    base: Option<Url>,
    /// Only a Lease the operator sealed names the host's hostname and role.
    signer: LeaseSigner,
}

impl std::fmt::Debug for SeedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeedServer")
    }
}

/// What a host's seed is made of, from its booking.
struct Booking {
    namespace: String,
    hostname: String,
    access: AccessSpec,
}

impl SeedServer {
    pub fn new(
        client: Client,
        tokens: PhoneHomeTokens,
        base: Option<Url>,
        signer: LeaseSigner,
    ) -> Self {
        Self {
            client,
            tokens,
            base,
            signer,
        }
    }

    /// The seed URL of `run` when its host gets a seed: the operator has an external URL,
    /// and the run boots a wipe image or the host's access (its role's, else the request's)
    /// sets anything. A booking's seed is rendered once here, so a booking whose seed cannot
    /// be made (a missing or oversized user-data Secret) fails before the BMC is handed the
    /// URL.
    pub async fn delivery(
        &self,
        lh: &LabHost,
        run: &Run<'_>,
        purpose: &Purpose,
    ) -> Result<Option<Url>, SeedError> {
        let Some(base) = &self.base else {
            return Ok(None);
        };
        if *purpose == Purpose::Wipe {
            return Ok(Some(self.tokens.seed_url(base, run)));
        }
        let booking = match self.booking(lh, run.host).await {
            Ok(b) => b,
            // Not (or no longer) a sealed booking of this host: nothing to deliver.
            Err(SeedError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let a = &booking.access;
        if a.ssh_authorized_keys.is_empty()
            && a.user_data_secret_ref.is_none()
            && a.network_data.is_none()
        {
            return Ok(None);
        }
        self.image(&booking, run).await?;
        Ok(Some(self.tokens.seed_url(base, run)))
    }

    async fn render(&self, host: &str, token: &str) -> Result<Vec<u8>, SeedError> {
        let hosts: Api<LabHost> = Api::all(self.client.clone());
        let lh = hosts.get_opt(host).await?.ok_or(SeedError::NotFound)?;
        let (run, purpose) = current_run(&lh).ok_or(SeedError::NotFound)?;
        if !self.tokens.verify_seed(&run, token) {
            return Err(SeedError::NotFound);
        }
        if purpose == Purpose::Wipe {
            return self.wipe_image(&run);
        }
        let booking = self.booking(&lh, host).await?;
        self.image(&booking, &run).await
    }

    fn wipe_image(&self, run: &Run<'_>) -> Result<Vec<u8>, SeedError> {
        let base = self.base.as_ref().ok_or(SeedError::NotFound)?;
        let instance_id = seed::instance_id(run.booking, run.host, run.started);
        let seed = seed::wipe(&instance_id, run.host, &self.tokens.url(base, run));
        Ok(seed.image(run.started)?)
    }

    /// The host's booking: its claim's sealed Lease and the PodRequest it was made for.
    async fn booking(&self, lh: &LabHost, host: &str) -> Result<Booking, SeedError> {
        let claim = lh.spec.claim_ref.as_ref().ok_or(SeedError::NotFound)?;
        let ns = claim.namespace.as_str();
        let lease = Api::<Lease>::namespaced(self.client.clone(), ns)
            .get_opt(&claim.lease)
            .await?
            .filter(|l| self.signer.verify(l) == Ok(Seal::Sealed))
            .ok_or(SeedError::NotFound)?;
        let bound = lease
            .spec
            .hosts
            .iter()
            .find(|h| h.host == host)
            .ok_or(SeedError::NotFound)?;
        // The claim's booking, not a re-created one of the same name.
        let request = Api::<PodRequest>::namespaced(self.client.clone(), ns)
            .get_opt(&claim.name)
            .await?
            .filter(|r| r.metadata.uid.as_deref() == Some(claim.uid.as_str()))
            .ok_or(SeedError::NotFound)?;
        let role = request.spec.roles.iter().find(|r| r.name == bound.role);
        Ok(Booking {
            namespace: ns.to_owned(),
            hostname: bound.hostname.clone().unwrap_or_else(|| bound.role.clone()),
            access: seed::effective_access(
                request.spec.access.as_ref(),
                role.and_then(|r| r.access.as_ref()),
            ),
        })
    }

    async fn image(&self, booking: &Booking, run: &Run<'_>) -> Result<Vec<u8>, SeedError> {
        let access = &booking.access;
        let user_data = match &access.user_data_secret_ref {
            // Only from the booking's own namespace.
            Some(r) => {
                Some(read_user_data(&self.client, &booking.namespace, &r.name, r.key()).await?)
            }
            None => None,
        };
        let instance_id = seed::instance_id(run.booking, run.host, run.started);
        let phone_home = self.base.as_ref().map(|b| self.tokens.url(b, run));
        let rendered = seed::render(&SeedInput {
            instance_id: &instance_id,
            hostname: &booking.hostname,
            ssh_authorized_keys: &access.ssh_authorized_keys,
            user_data: user_data.as_deref(),
            network_config: access.network_data.as_deref(),
            phone_home: phone_home.as_ref(),
        })?;
        Ok(rendered.image(run.started)?)
    }
}

/// The user data in `namespace/name[key]`; what is wrong is said naming the field, never
/// with the content.
pub async fn read_user_data(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Vec<u8>, SeedError> {
    let field = seed::USER_DATA_FIELD;
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?
        .ok_or_else(|| {
            SeedError::Booking(format!(
                "{field}: Secret {namespace}/{name} does not exist: create it in the \
                 PodRequest's namespace, or remove the reference"
            ))
        })?;
    secret
        .data
        .and_then(|mut d| d.remove(key))
        .map(|b| b.0)
        .ok_or_else(|| {
            SeedError::Booking(format!(
                "{field}: Secret {namespace}/{name} has no key {key:?}: put the user data \
                 under that key, or name the key that holds it"
            ))
        })
}

impl SeedSource for SeedServer {
    fn seed<'a>(
        &'a self,
        host: &'a str,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, SeedError>> + Send + 'a>> {
        Box::pin(self.render(host, token))
    }
}
