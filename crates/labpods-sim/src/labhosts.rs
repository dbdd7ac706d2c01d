//! LabHost manifests and the credentials Secret for a running fleet, as YAML text
//! (`labpods-sim --emit-labhosts FILE`), so `kubectl apply -f FILE` registers the fleet.
//! The shape follows examples/lab/*.yaml; a test parses the output into labpods-api's
//! LabHost type and validates it, so the two cannot drift apart silently.

use std::fmt::Write as _;

use crate::SimHandle;

/// Hosts per simulated rack (the `labpods.dev/rack` label).
const RACK_SIZE: usize = 40;

/// Where the manifests point and how they are labelled.
#[derive(Clone, Debug)]
pub struct Manifests {
    /// Namespace of the credentials (and CA) Secret.
    pub secret_namespace: String,
    pub secret_name: String,
    /// The `labpods.dev/lab` label.
    pub lab: String,
    /// Hardware profile: `spec.profile` and the `labpods.dev/profile` label.
    pub profile: String,
}

impl Default for Manifests {
    fn default() -> Self {
        Self {
            secret_namespace: "labpods-system".to_owned(),
            secret_name: "bmc-credentials".to_owned(),
            lab: "sim".to_owned(),
            profile: "sim-small".to_owned(),
        }
    }
}

/// The LabHost name of host `i`.
pub fn host_name(i: usize) -> String {
    format!("sim-{i:05}")
}

/// JSON-quoted: YAML reads it as the same string, whatever it contains.
fn q(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A multi-document YAML stream: the credentials Secret (and, with TLS, the CA Secret), then
/// one LabHost per host. Writing to a String cannot fail, hence the ignored results.
pub fn render(sim: &SimHandle, m: &Manifests) -> String {
    let ns = q(&m.secret_namespace);
    let ca_secret = format!("{}-ca", m.secret_name);
    let mut out = String::new();
    let _ = write!(
        out,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\ntype: Opaque\nstringData:\n  username: {user}\n  password: {pass}\n",
        name = q(&m.secret_name),
        user = q(sim.username()),
        pass = q(sim.password()),
    );
    let tls = match sim.ca_pem() {
        Some(pem) => {
            let _ = write!(
                out,
                "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\ntype: Opaque\nstringData:\n  ca.crt: {pem}\n",
                name = q(&ca_secret),
                pem = q(&pem),
            );
            format!(
                "    tls:\n      caBundleSecretRef:\n        name: {}\n        namespace: {ns}\n",
                q(&ca_secret)
            )
        }
        None => String::new(),
    };
    for i in 1..=sim.hosts() {
        let address = sim.endpoint(i);
        let _ = write!(
            out,
            "---\napiVersion: labpods.dev/v1alpha1\nkind: LabHost\nmetadata:\n  name: {name}\n  labels:\n    labpods.dev/lab: {lab}\n    labpods.dev/rack: {rack}\n    labpods.dev/profile: {profile}\n    labpods.dev/arch: x86_64\nspec:\n  profile: {profile}\n  bootMode: UEFI\n  bmc:\n    address: {address}\n    systemId: {system}\n    credentialsSecretRef:\n      name: {secret}\n      namespace: {ns}\n{tls}  hardware:\n    arch: x86_64\n    cpus: {cpus}\n    memoryGiB: {memory}\n",
            name = q(&host_name(i)),
            lab = q(&m.lab),
            rack = q(&format!("r{}", (i - 1) / RACK_SIZE + 1)),
            profile = q(&m.profile),
            address = q(address.as_str().trim_end_matches('/')),
            system = q(sim.system_id(i)),
            secret = q(&m.secret_name),
            cpus = crate::redfish::CPU_COUNT,
            memory = crate::redfish::MEMORY_GIB,
        );
    }
    out
}
