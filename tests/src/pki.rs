//! The control plane's certificates and keys, made fresh for each control plane.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::error::Result;

/// PEM texts, written to files by the control plane.
#[derive(Debug)]
pub struct Pki {
    /// Trusted by clients (kubeconfig) and put in service-account token secrets.
    pub ca_cert: String,
    /// The apiserver's serving certificate, for 127.0.0.1, localhost and the extra
    /// addresses asked for.
    pub serving_cert: String,
    pub serving_key: String,
    /// The apiserver's client certificate for kubelets (`kubectl logs`, `exec`): a kubelet
    /// trusts the CA for client certificates.
    pub kubelet_client_cert: String,
    pub kubelet_client_key: String,
    /// Signs service-account tokens (apiserver and the token controller).
    pub service_account_key: String,
    /// Verifies them: the apiserver does not read a public key out of a PKCS#8 private key.
    pub service_account_public_key: String,
}

impl Pki {
    /// The serving certificate is also valid for `addresses` (the `kubernetes` Service's IP,
    /// which pods connect to, for a control plane serving a node).
    pub fn generate_for(addresses: &[std::net::IpAddr]) -> Result<Self> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "labpods test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let mut names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        names.extend(addresses.iter().map(ToString::to_string));
        let mut serving_params = CertificateParams::new(names)?;
        serving_params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let serving_key = KeyPair::generate()?;
        let serving_cert = serving_params.signed_by(&serving_key, &ca)?;

        let mut kubelet_client_params = CertificateParams::new(Vec::<String>::new())?;
        kubelet_client_params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver-kubelet-client");
        kubelet_client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let kubelet_client_key = KeyPair::generate()?;
        let kubelet_client_cert = kubelet_client_params.signed_by(&kubelet_client_key, &ca)?;

        let service_account_key = KeyPair::generate()?;
        Ok(Self {
            ca_cert: ca.pem(),
            serving_cert: serving_cert.pem(),
            serving_key: serving_key.serialize_pem(),
            kubelet_client_cert: kubelet_client_cert.pem(),
            kubelet_client_key: kubelet_client_key.serialize_pem(),
            service_account_key: service_account_key.serialize_pem(),
            service_account_public_key: service_account_key.public_key_pem(),
        })
    }
}
