//! Kubeconfig files for the control plane, and clients made from them.

use std::path::Path;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result};

/// Writes a kubeconfig for `user`, authenticated by a bearer token.
pub fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca_cert: &Path,
    user: &str,
    token: &str,
) -> Result<()> {
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "labpods-test",
            "cluster": { "server": server, "certificate-authority": ca_cert },
        }],
        "users": [{ "name": user, "user": { "token": token } }],
        "contexts": [{
            "name": "labpods-test",
            "context": { "cluster": "labpods-test", "user": user },
        }],
        "current-context": "labpods-test",
    });
    let text = serde_yaml::to_string(&config)?;
    std::fs::write(path, text).map_err(Error::io(format!("writing {}", path.display())))
}

/// The kube config a kubeconfig file describes, for tweaking before making a client.
pub async fn config_for(kubeconfig: &Path) -> Result<kube::Config> {
    let file = Kubeconfig::read_from(kubeconfig)?;
    Ok(kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?)
}

/// A client for a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> Result<Client> {
    Ok(Client::try_from(config_for(kubeconfig).await?)?)
}
