//! The boot completion callback. A reimaged host calls
//! `POST {externalBaseUrl}/phone-home/{host}?token={token}` once its OS is up; cloud-init's
//! `phone_home` module does exactly that (it POSTs form data, which we ignore, to a URL we
//! publish in the host's status), e.g. in the image's user-data:
//!
//! ```yaml
//! phone_home:
//!   url: http://10.0.0.5:8081/phone-home/node-01?token=3q2-7w...
//!   post: [instance_id]
//!   tries: 10
//! ```
//!
//! The token is HMAC-SHA256(operator secret, host name), so any replica sharing the secret
//! can check it without storing per-host state, and a host can only vouch for itself.

use std::{future::Future, pin::Pin};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    hmac,
    rand::{SecureRandom, SystemRandom},
};
use url::Url;

/// Why a callback could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum PhoneHomeError {
    #[error("no LabHost named {0}")]
    UnknownHost(String),
    #[error("LabHost {0} is not waiting for a boot to complete")]
    NotWaiting(String),
    #[error("cannot record the callback: {0}")]
    Kube(#[from] kube::Error),
}

impl PhoneHomeError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::UnknownHost(_) => "unknown_host",
            Self::NotWaiting(_) => "not_waiting",
            Self::Kube(_) => "kube",
        }
    }
}

/// Records that a host phoned home; implemented by the LabHost controller.
pub trait PhoneHomeSink: Send + Sync {
    fn record<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), PhoneHomeError>> + Send + 'a>>;
}

/// Derives and checks per-host tokens.
#[derive(Clone)]
pub struct PhoneHomeTokens {
    key: hmac::Key,
}

impl std::fmt::Debug for PhoneHomeTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoneHomeTokens(***)")
    }
}

impl PhoneHomeTokens {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A random secret: tokens are valid only for this process.
    pub fn random() -> Result<Self, ring::error::Unspecified> {
        let mut secret = [0u8; 32];
        SystemRandom::new().fill(&mut secret)?;
        Ok(Self::new(&secret))
    }

    /// The token of one host.
    pub fn token(&self, host: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, host.as_bytes()))
    }

    /// Constant-time check of a presented token.
    pub fn verify(&self, host: &str, token: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(token)
            .is_ok_and(|tag| hmac::verify(&self.key, host.as_bytes(), &tag).is_ok())
    }

    /// The URL a host calls, under the operator's external base URL.
    pub fn url(&self, base: &Url, host: &str) -> Url {
        let mut url = base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["phone-home", host]);
        }
        url.query_pairs_mut()
            .clear()
            .append_pair("token", &self.token(host));
        url
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn token_verifies_for_its_host_only() {
        let tokens = PhoneHomeTokens::new(b"secret");
        let t = tokens.token("node-01");
        assert!(tokens.verify("node-01", &t));
        assert!(!tokens.verify("node-02", &t));
        assert!(!tokens.verify("node-01", "not-base64!"));
        assert!(!PhoneHomeTokens::new(b"other").verify("node-01", &t));
    }

    #[test]
    fn replicas_sharing_a_secret_agree() {
        assert_eq!(
            PhoneHomeTokens::new(b"s").token("h"),
            PhoneHomeTokens::new(b"s").token("h")
        );
    }

    #[test]
    fn url_is_under_the_base_with_the_token() {
        let tokens = PhoneHomeTokens::new(b"secret");
        let base = Url::parse("http://10.0.0.5:8081/labpods/").unwrap();
        let url = tokens.url(&base, "node-01");
        assert_eq!(url.path(), "/labpods/phone-home/node-01");
        let token: Vec<_> = url.query_pairs().collect();
        assert_eq!(token.len(), 1);
        assert!(tokens.verify("node-01", &token[0].1));
        assert!(!format!("{tokens:?}").contains("secret"));
    }
}
