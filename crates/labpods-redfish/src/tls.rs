//! TLS for BMC connections: rustls with the ring provider, verified against the system roots
//! by default, or against a per-host CA bundle, or pinned to one certificate; verification is
//! skipped only on explicit opt-in.
//!
//! Pinning: many BMCs ship a self-signed certificate that is its own issuer (what
//! `openssl req -x509` makes). webpki refuses such a certificate as a server certificate
//! (`CaUsedAsEndEntity`) even when it is the trust anchor, so a lab operator who puts it in
//! the CA bundle would be left with `insecureSkipVerify`. Like OpenSSL, Go and Python's
//! requests, we accept a presented certificate that is byte-identical to one in the CA
//! bundle, or whose SHA-256 fingerprint is the pinned one. For a pinned certificate the
//! name in it and its validity dates are not checked: the pin is a per-host trust decision
//! for exactly these bytes (BMC certificates rarely name the address they are reached at,
//! and factory certificates are often expired), and replacing the certificate means
//! changing the pin. The handshake signature is still verified with the certificate's key,
//! so only the holder of the pinned certificate's private key gets through. Any other
//! certificate goes through normal webpki verification against the bundle (a real CA
//! chain), with the name and dates checked.

use std::error::Error as StdError;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};

use crate::error::{Error, Result};

/// How to check a BMC's certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    /// PEM bundle of the CA(s) that signed this BMC's certificate, or the BMC's own
    /// self-signed certificate. When set, only these are trusted for the host (a lab CA should
    /// not be able to vouch for other sites, nor the public roots for a BMC).
    pub ca_pem: Option<Vec<u8>>,
    /// The SHA-256 fingerprint of the one certificate this BMC may present. With a CA bundle
    /// as well, either suffices.
    pub certificate_sha256: Option<Fingerprint>,
    /// Accept any certificate. Only ever set from an explicit user choice.
    pub insecure_skip_verify: bool,
    /// How the caller names the settings above, for error messages.
    pub names: SettingNames,
}

/// What the user calls the TLS settings (a LabHost field, a command-line flag), so that a
/// refused certificate's message says what to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SettingNames {
    pub ca_bundle: &'static str,
    pub fingerprint: &'static str,
}

impl Default for SettingNames {
    fn default() -> Self {
        Self {
            ca_bundle: "the CA bundle",
            fingerprint: "the certificate fingerprint",
        }
    }
}

/// A certificate's SHA-256 fingerprint (of its DER encoding, as `openssl x509 -fingerprint
/// -sha256` prints it).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Self {
        let digest = sha256(der);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }

    /// Whether `s` is a fingerprint [`FromStr`] accepts.
    pub fn is_valid(s: &str) -> bool {
        s.parse::<Self>().is_ok()
    }
}

impl FromStr for Fingerprint {
    type Err = Error;

    /// 64 hex digits, either case, optionally with a `:` between every two (OpenSSL's form).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Tls(format!(
                "certificate fingerprint {s:?}: want 64 hex digits (SHA-256), optionally as \
                 colon-separated pairs like `openssl x509 -noout -fingerprint -sha256` prints"
            ))
        };
        let digits: String = if s.contains(':') {
            let pairs: Vec<&str> = s.split(':').collect();
            if pairs.len() != 32 || pairs.iter().any(|p| p.len() != 2) {
                return Err(bad());
            }
            pairs.concat()
        } else {
            s.to_owned()
        };
        if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut bytes = [0; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// SHA-256 from the ring provider rustls already uses (one less direct dependency).
fn sha256(data: &[u8]) -> rustls::crypto::hash::Output {
    let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
    match suite.tls13() {
        Some(suite) => suite.common.hash_provider.hash(data),
        // TLS13_AES_128_GCM_SHA256 is a TLS 1.3 suite by definition.
        None => unreachable!("TLS13_AES_128_GCM_SHA256 is a TLS 1.3 suite"),
    }
}

/// TLS 1.3 tickets rustls keeps per server (its `MAX_TLS13_TICKETS_PER_SERVER`): a session
/// store of this size holds one server.
const SESSIONS_PER_SERVER: usize = 8;

impl TlsOptions {
    pub(crate) fn client_config(&self) -> Result<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?;
        let verifier = self.verifier(provider)?;
        let mut config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        // A config serves one BMC: room for that server's tickets, not rustls's default of
        // 32 servers, which cost 14 KiB per BMC (140 MiB of a 10,000-host lab) unused.
        config.resumption = Resumption::in_memory_sessions(SESSIONS_PER_SERVER);
        Ok(config)
    }

    fn verifier(&self, provider: Arc<CryptoProvider>) -> Result<PinningVerifier> {
        if self.insecure_skip_verify {
            return Ok(PinningVerifier {
                accept_any: true,
                pinned: Vec::new(),
                fingerprint: None,
                webpki: None,
                has_ca_bundle: false,
                names: self.names,
                provider,
            });
        }
        let (pinned, webpki) = match (&self.ca_pem, &self.certificate_sha256) {
            (Some(pem), _) => {
                let certs = certs_from_pem(pem, self.names.ca_bundle)?;
                let mut roots = RootCertStore::empty();
                // A certificate webpki cannot use as an anchor may still be pinned exactly.
                roots.add_parsable_certificates(certs.iter().cloned());
                let webpki = if roots.is_empty() {
                    None
                } else {
                    Some(webpki_verifier(roots, provider.clone())?)
                };
                (certs, webpki)
            }
            // A fingerprint alone: that certificate and no other.
            (None, Some(_)) => (Vec::new(), None),
            (None, None) => (Vec::new(), Some(system_verifier(&provider)?)),
        };
        Ok(PinningVerifier {
            accept_any: false,
            pinned,
            fingerprint: self.certificate_sha256,
            webpki,
            has_ca_bundle: self.ca_pem.is_some(),
            names: self.names,
            provider,
        })
    }
}

fn webpki_verifier(
    roots: RootCertStore,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| Error::Tls(format!("CA bundle: {e}")))
}

/// The certificates of a CA bundle; errors name the setting that holds it (`setting`).
fn certs_from_pem(pem: &[u8], setting: &str) -> Result<Vec<CertificateDer<'static>>> {
    let unusable = |why: String| {
        Error::Tls(format!(
            "{setting}: the CA bundle {why}: put the PEM of the BMC's CA, or of its own certificate, in it"
        ))
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unusable(format!("is not PEM ({e})")))?;
    if certs.is_empty() {
        return Err(unusable("holds no certificate".into()));
    }
    for cert in &certs {
        // Fail at configuration time, not at every handshake.
        rustls::server::ParsedCertificate::try_from(cert)
            .map_err(|e| unusable(format!("holds a certificate that cannot be parsed ({e})")))?;
    }
    Ok(certs)
}

/// The verifier of the system's roots, loaded once per process: every BMC client read and
/// parsed the whole bundle, over 200 KiB of memory each, 2 GiB at 10,000 BMCs. A changed
/// system bundle is read at the operator's next start.
fn system_verifier(provider: &Arc<CryptoProvider>) -> Result<Arc<WebPkiServerVerifier>> {
    static SYSTEM: OnceLock<std::result::Result<Arc<WebPkiServerVerifier>, String>> =
        OnceLock::new();
    SYSTEM
        .get_or_init(|| {
            system_roots()
                .and_then(|roots| webpki_verifier(roots, provider.clone()))
                .map_err(|e| match e {
                    Error::Tls(why) => why,
                    other => other.to_string(),
                })
        })
        .clone()
        .map_err(Error::Tls)
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

/// Why a certificate was refused, worded for the user; carried through rustls and reqwest
/// as the source of the handshake error and turned into [`Error::Certificate`].
#[derive(Debug)]
pub(crate) struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Refused {}

/// Our refusal (or rustls' own certificate error) somewhere in a connection error's chain.
pub(crate) fn certificate_problem(error: &(dyn StdError + 'static)) -> Option<String> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = next {
        if let Some(rustls::Error::InvalidCertificate(cert)) = e.downcast_ref::<rustls::Error>() {
            if let CertificateError::Other(OtherError(other)) = cert
                && let Some(refused) = other.downcast_ref::<Refused>()
            {
                return Some(refused.0.clone());
            }
            return Some(format!("invalid peer certificate: {cert}"));
        }
        // io::Error's source() skips the error it wraps (hyper wraps rustls' in two), so
        // step into it by hand.
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    None
}

/// Accepts a pinned certificate (byte-identical to one of the CA bundle's, or with the
/// pinned fingerprint) and otherwise what webpki accepts, if there is anything to verify
/// against. See the module documentation for why a pin skips the name and dates. Either
/// way, and with `accept_any` too, handshake signatures are checked, so the session is keyed
/// to the presented certificate.
#[derive(Debug)]
struct PinningVerifier {
    /// `insecureSkipVerify`: any certificate.
    accept_any: bool,
    pinned: Vec<CertificateDer<'static>>,
    fingerprint: Option<Fingerprint>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    has_ca_bundle: bool,
    names: SettingNames,
    provider: Arc<CryptoProvider>,
}

impl PinningVerifier {
    fn refuse(&self, presented: Fingerprint, why: &str) -> rustls::Error {
        let message = match (self.has_ca_bundle, self.fingerprint) {
            (false, Some(pinned)) => format!(
                "the BMC presented a certificate with SHA-256 fingerprint {presented}, not the \
                 one pinned in {} ({pinned}); if the BMC's certificate was replaced, pin the \
                 new one",
                self.names.fingerprint
            ),
            (true, _) => format!(
                "the BMC's certificate (SHA-256 fingerprint {presented}) is not in {} and not \
                 issued by a CA in it ({why}); put the BMC's certificate or its CA there, or \
                 pin the fingerprint in {}",
                self.names.ca_bundle, self.names.fingerprint
            ),
            (false, None) => format!(
                "the BMC's certificate (SHA-256 fingerprint {presented}) is not issued by a \
                 CA the system trusts ({why}); give {} or pin the fingerprint in {}",
                self.names.ca_bundle, self.names.fingerprint
            ),
        };
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Refused(
            message,
        )))))
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.accept_any {
            return Ok(ServerCertVerified::assertion());
        }
        let presented = Fingerprint::of(end_entity);
        if self.fingerprint == Some(presented)
            || self
                .pinned
                .iter()
                .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        let Some(webpki) = &self.webpki else {
            return Err(self.refuse(presented, "not pinned"));
        };
        webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| {
                let why = match &e {
                    rustls::Error::InvalidCertificate(c) => c.to_string(),
                    other => other.to_string(),
                };
                self.refuse(presented, &why)
            })
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The verifier's decisions, on certificates made here (no network).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    use super::*;

    const LABHOST_NAMES: SettingNames = SettingNames {
        ca_bundle: "spec.bmc.tls.caBundleSecretRef",
        fingerprint: "spec.bmc.tls.certificateSha256",
    };

    /// A self-signed certificate that is its own issuer, as `openssl req -x509` makes: CA:TRUE,
    /// named for some other host, long expired.
    fn self_signed_bmc_cert() -> rcgen::Certificate {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["bmc.factory.invalid".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "BMC");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(2015, 1, 1);
        params.not_after = rcgen::date_time_ymd(2016, 1, 1);
        params.self_signed(&key).unwrap()
    }

    fn options(ca_pem: Option<String>, fingerprint: Option<Fingerprint>) -> TlsOptions {
        TlsOptions {
            ca_pem: ca_pem.map(String::into_bytes),
            certificate_sha256: fingerprint,
            insecure_skip_verify: false,
            names: LABHOST_NAMES,
        }
    }

    fn verify(options: &TlsOptions, cert: &[u8], host: &str) -> Result<(), String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = options.verifier(provider).unwrap();
        verifier
            .verify_server_cert(
                &CertificateDer::from(cert.to_vec()),
                &[],
                &ServerName::try_from(host.to_owned()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
            .map_err(|e| certificate_problem(&e).unwrap_or_else(|| format!("unexplained: {e}")))
    }

    #[test]
    fn garbage_ca_bundle_is_rejected() {
        let options = options(Some("not a certificate".into()), None);
        let err = options.client_config().err();
        assert!(
            matches!(&err, Some(Error::Tls(m)) if m.starts_with(LABHOST_NAMES.ca_bundle) && m.contains("holds no certificate")),
            "{err:?}"
        );
    }

    /// The reported bug: webpki alone refuses this with CaUsedAsEndEntity.
    #[test]
    fn self_signed_certificate_in_the_ca_bundle_is_accepted_whatever_its_name_and_dates() {
        let cert = self_signed_bmc_cert();
        let bundle = options(Some(cert.pem()), None);
        assert_eq!(verify(&bundle, cert.der(), "127.0.0.1"), Ok(()));
    }

    #[test]
    fn right_fingerprint_is_accepted_wrong_one_refused_naming_the_field() {
        let cert = self_signed_bmc_cert();
        let right = options(None, Some(Fingerprint::of(cert.der())));
        assert_eq!(verify(&right, cert.der(), "127.0.0.1"), Ok(()));

        let other = self_signed_bmc_cert();
        let wrong = options(None, Some(Fingerprint::of(other.der())));
        let message = verify(&wrong, cert.der(), "127.0.0.1").unwrap_err();
        assert!(
            message.contains("spec.bmc.tls.certificateSha256")
                && message.contains(&Fingerprint::of(cert.der()).to_string())
                && message.contains(&Fingerprint::of(other.der()).to_string()),
            "{message}"
        );
    }

    #[test]
    fn a_certificate_not_in_the_bundle_is_refused_naming_the_bundle_and_its_fingerprint() {
        let pinned = self_signed_bmc_cert();
        let presented = self_signed_bmc_cert();
        let bundle = options(Some(pinned.pem()), None);
        let message = verify(&bundle, presented.der(), "127.0.0.1").unwrap_err();
        assert!(
            message.contains("spec.bmc.tls.caBundleSecretRef")
                && message.contains(&Fingerprint::of(presented.der()).to_string()),
            "{message}"
        );
    }

    /// A real CA in the bundle still goes through webpki: name checked.
    #[test]
    fn ca_issued_certificate_is_verified_by_name() {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["bmc.example".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &Issuer::from_params(&ca_params, &ca_key))
            .unwrap();
        let bundle = options(Some(ca.pem()), None);
        assert_eq!(verify(&bundle, leaf.der(), "bmc.example"), Ok(()));
        let message = verify(&bundle, leaf.der(), "other.example").unwrap_err();
        assert!(
            message.contains("not valid for name \"other.example\""),
            "{message}"
        );
    }

    #[test]
    fn fingerprints_parse_in_both_spellings_and_print_as_openssl_does() {
        let plain = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        let a: Fingerprint = plain.parse().unwrap();
        let b: Fingerprint = colons.parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), vec!["AB"; 32].join(":"));
        for bad in [
            "",
            &"ab".repeat(31),
            &"ab".repeat(33),
            &"zz".repeat(32),
            &format!("{}:", vec!["ab"; 32].join(":")),
            &format!("a:b{}", "ab".repeat(31)),
            &format!("sha256:{plain}"),
        ] {
            let err = bad.parse::<Fingerprint>().unwrap_err();
            assert!(err.to_string().contains("64 hex digits"), "{bad}: {err}");
        }
    }
}
