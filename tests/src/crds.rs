//! Installing CustomResourceDefinitions and waiting until they serve.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};

use crate::error::{Error, Result};

const FIELD_MANAGER: &str = "labpods-tests";
const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(60);

/// The CRDs this project generates from its types.
pub fn labpods_crds() -> Vec<CustomResourceDefinition> {
    labpods_api::crds()
}

/// Applies `crds` (server-side, so re-applying the same ones is a no-op) and waits until
/// each is Established.
pub async fn install_crds(client: &Client, crds: &[CustomResourceDefinition]) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for crd in crds {
        api.patch(&crd.name_any(), &params, &Patch::Apply(crd))
            .await?;
    }
    for crd in crds {
        let name = crd.name_any();
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(ESTABLISHED_TIMEOUT, established).await {
            Ok(result) => {
                result?;
            }
            Err(_) => {
                return Err(Error::CrdNotEstablished {
                    name,
                    seconds: ESTABLISHED_TIMEOUT.as_secs(),
                });
            }
        }
    }
    Ok(())
}
