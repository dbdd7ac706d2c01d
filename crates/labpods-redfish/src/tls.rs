//! TLS for BMC connections: rustls with the ring provider, verified against the system roots
//! by default, or against a per-host CA bundle; verification is skipped only on explicit
//! opt-in (many BMCs ship self-signed certificates nobody has replaced yet).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{Error, Result};

/// How to check a BMC's certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    /// PEM bundle of the CA(s) that signed this BMC's certificate. When set, only these are
    /// trusted for the host (a lab CA should not be able to vouch for other sites, nor the
    /// public roots for a BMC).
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any certificate. Only ever set from an explicit user choice.
    pub insecure_skip_verify: bool,
}

impl TlsOptions {
    pub(crate) fn client_config(&self) -> Result<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?;
        if self.insecure_skip_verify {
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth());
        }
        let roots = match &self.ca_pem {
            Some(pem) => roots_from_pem(pem)?,
            None => system_roots()?,
        };
        Ok(builder.with_root_certificates(roots).with_no_client_auth())
    }
}

fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| Error::Tls(format!("CA bundle: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| Error::Tls(format!("CA bundle: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::Tls("CA bundle holds no certificate".into()));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let why = loaded
            .errors
            .first()
            .map_or_else(|| "none found".to_owned(), ToString::to_string);
        return Err(Error::Tls(format!(
            "no usable system CA certificates ({why}); give a CA bundle for the BMC"
        )));
    }
    Ok(roots)
}

/// Checks handshake signatures (so the session is still keyed to the presented certificate)
/// but not who issued the certificate.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_ca_bundle_is_rejected() {
        let options = TlsOptions {
            ca_pem: Some(b"not a certificate".to_vec()),
            insecure_skip_verify: false,
        };
        let err = options.client_config().err();
        assert!(matches!(err, Some(Error::Tls(_))), "{err:?}");
    }
}
