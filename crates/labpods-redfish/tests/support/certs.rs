//! A throwaway CA and a server certificate for 127.0.0.1, written as PEM files.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

use super::python::ScratchDir;

#[derive(Debug)]
pub struct TestPki {
    pub ca_pem: String,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    _dir: ScratchDir,
}

pub fn issue_loopback_cert() -> TestPki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();

    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let cert = params
        .signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))
        .unwrap();

    let dir = ScratchDir::new("pki");
    let cert_path = dir.path().join("server.pem");
    let key_path = dir.path().join("server.key");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        cert_path,
        key_path,
        _dir: dir,
    }
}

/// A self-signed certificate that is its own CA, as `openssl req -x509` makes and many BMCs
/// ship: CA:TRUE, issuer = subject, named for no address the tests use.
#[derive(Debug)]
pub struct SelfSigned {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    _dir: ScratchDir,
}

pub fn self_signed_bmc_cert() -> SelfSigned {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["bmc.factory.invalid".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "factory BMC");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let dir = ScratchDir::new("self-signed");
    let cert_path = dir.path().join("bmc.pem");
    let key_path = dir.path().join("bmc.key");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    SelfSigned {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        cert_path,
        key_path,
        _dir: dir,
    }
}
