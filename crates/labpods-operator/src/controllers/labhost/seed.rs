//! Serves a host's NoCloud seed for its current run, rendered on demand from the booking
//! (the PodRequest's access, its user-data Secret, the Lease's hostname) so that any replica
//! can serve it and it is gone (404) as soon as the run or the booking ends: nothing of it is
//! stored. The URL carries a seed token (like the phone-home token, bound to host, booking
//! and run, for another purpose), so only whoever was handed the URL (the host's BMC) can
//! fetch it.

use std::{future::Future, pin::Pin};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use labpods_api::v1alpha1::{LabHost, Lease, PodRequest};
use url::Url;

use super::phone_home::current_run;
use crate::{
    http::{PhoneHomeTokens, SeedError, SeedSource},
    seed::{self, SeedInput},
};

/// Reads what a seed is rendered from, through the API server.
#[derive(Clone)]
pub struct SeedServer {
    client: Client,
    tokens: PhoneHomeTokens,
    /// Where hosts reach the operator; absent = no phone-home in the seed.
    base: Option<Url>,
}

impl std::fmt::Debug for SeedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeedServer")
    }
}

impl SeedServer {
    pub fn new(client: Client, tokens: PhoneHomeTokens, base: Option<Url>) -> Self {
        Self {
            client,
            tokens,
            base,
        }
    }

    async fn render(&self, host: &str, token: &str) -> Result<Vec<u8>, SeedError> {
        let hosts: Api<LabHost> = Api::all(self.client.clone());
        let lh = hosts.get_opt(host).await?.ok_or(SeedError::NotFound)?;
        let (run, _) = current_run(&lh).ok_or(SeedError::NotFound)?;
        if !self.tokens.verify_seed(&run, token) {
            return Err(SeedError::NotFound);
        }
        let claim = lh.spec.claim_ref.as_ref().ok_or(SeedError::NotFound)?;
        let ns = claim.namespace.as_str();
        let lease = Api::<Lease>::namespaced(self.client.clone(), ns)
            .get_opt(&claim.lease)
            .await?
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
        let access = seed::effective_access(
            request.spec.access.as_ref(),
            role.and_then(|r| r.access.as_ref()),
        );
        let user_data = match &access.user_data_secret_ref {
            // Only from the booking's own namespace.
            Some(r) => Some(read_user_data(&self.client, ns, &r.name, r.key()).await?),
            None => None,
        };
        let instance_id = seed::instance_id(&claim.uid, host, run.started);
        let phone_home = self.base.as_ref().map(|b| self.tokens.url(b, &run));
        let rendered = seed::render(&SeedInput {
            instance_id: &instance_id,
            hostname: bound.hostname.as_deref().unwrap_or(&bound.role),
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
