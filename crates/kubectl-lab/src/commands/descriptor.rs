//! `descriptor`: print a booking's pod descriptor for an installer: the OPNFV/Anuket PDF, or
//! with `--idf` the IDF, from the ConfigMap the booking's status names.

use std::io::Write;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use labpods_operator::controllers::scheduling::descriptor::{IDF, PDF};

use crate::cli::DescriptorArgs;
use crate::error::{Error, Result};
use crate::session::Session;

pub async fn run(session: &Session, args: &DescriptorArgs, out: &mut dyn Write) -> Result<()> {
    let pr = session.podrequest(&args.name).await?;
    // Written once the booking is bound: before, there is none to find.
    let Some(name) = pr.status.as_ref().and_then(|s| s.descriptor.clone()) else {
        return Err(Error::NotFound {
            kind: "pod descriptor (written once it is bound) of booking",
            name: args.name.clone(),
            namespace: session.namespace.clone(),
        });
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(session.client.clone(), &session.namespace);
    let config_map = config_maps
        .get(&name)
        .await
        .map_err(|e| session.err(&format!("reading ConfigMap {name}"), e))?;
    let key = if args.idf { IDF } else { PDF };
    let file = config_map
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| {
            Error::Api(format!(
                "ConfigMap {name} has no {key}: the operator writes it; ask a lab admin"
            ))
        })?;
    out.write_all(file.as_bytes())?;
    Ok(())
}
