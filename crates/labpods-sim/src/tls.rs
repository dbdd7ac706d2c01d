//! The fleet's TLS, one certificate shared by every BMC: either a server certificate for
//! 127.0.0.1/localhost issued by a throwaway CA, or a self-signed certificate that is its own
//! CA (see [`TlsCertificate`]). Clients trust the PEM the handle exposes.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{SimError, TlsCertificate};

/// The server side of the fleet's TLS.
#[derive(Debug)]
pub(crate) struct FleetTls {
    /// What a client trusts: the CA, or the self-signed certificate itself.
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

pub(crate) fn generate(kind: TlsCertificate) -> Result<FleetTls, SimError> {
    let (chain, key, ca_pem) = match kind {
        TlsCertificate::CaSigned => ca_signed()?,
        TlsCertificate::SelfSigned => self_signed()?,
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    Ok(FleetTls {
        ca_pem,
        server: Arc::new(server),
    })
}

type Generated = (Vec<CertificateDer<'static>>, KeyPair, String);

fn ca_signed() -> Result<Generated, SimError> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "labpods-sim CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate()?;
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()])?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "labpods-sim BMC");
    leaf_params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;

    let chain = vec![
        CertificateDer::from(leaf.der().to_vec()),
        CertificateDer::from(ca_cert.der().to_vec()),
    ];
    Ok((chain, leaf_key, ca_cert.pem()))
}

/// Like a factory BMC certificate: CA:TRUE, issuer = subject, and a name that is not the
/// address clients use, so only a pin (not name verification) can accept it.
fn self_signed() -> Result<Generated, SimError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["bmc.factory.invalid".to_owned()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "labpods-sim self-signed BMC");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key)?;
    Ok((
        vec![CertificateDer::from(cert.der().to_vec())],
        key,
        cert.pem(),
    ))
}
