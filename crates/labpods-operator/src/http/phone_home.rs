//! The boot completion callback. A reimaged host calls
//! `POST {externalBaseUrl}/phone-home/{host}?token={token}` once its OS is up; the seed the
//! operator renders sets cloud-init's `phone_home` module to exactly that:
//!
//! ```yaml
//! phone_home:
//!   url: http://10.0.0.5:8081/phone-home/node-01?token=3q2-7w...
//!   post: [pub_key_rsa, pub_key_ecdsa, pub_key_ed25519, instance_id, hostname, fqdn]
//!   tries: 10
//! ```
//!
//! The token is HMAC-SHA256(operator secret, host, booking, run): any replica sharing the
//! secret checks it against the LabHost's status without storing per-host state, a host can
//! only vouch for itself, and a token of an earlier booking or run (its seed, its logs) is
//! refused in a later one.

use std::{future::Future, net::IpAddr, pin::Pin};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use ring::hmac;
use url::Url;

/// Largest phone-home body accepted: three host keys (an RSA-8192 one is under 1.5 KiB) and a
/// few names.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest instance id, hostname or fqdn kept (the API's bound).
const MAX_NAME_BYTES: usize = 253;
/// Longest host key kept (the API's bound).
const MAX_KEY_BYTES: usize = 4096;

/// Why a callback could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum PhoneHomeError {
    #[error("no LabHost named {0}")]
    UnknownHost(String),
    #[error("LabHost {0} is not provisioned or provisioning for a booking")]
    NotWaiting(String),
    #[error("invalid token")]
    InvalidToken,
    #[error("cannot record the callback: {0}")]
    Kube(#[from] kube::Error),
}

impl PhoneHomeError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::UnknownHost(_) => "unknown_host",
            Self::NotWaiting(_) => "not_waiting",
            Self::InvalidToken => "invalid_token",
            Self::Kube(_) => "kube",
        }
    }
}

/// What a token is bound to: one host, in one booking, in one provisioning run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run<'a> {
    pub host: &'a str,
    /// The booking's identity: the uid of the PodRequest the host is claimed for.
    pub booking: &'a str,
    /// The run's identity: when it started, in seconds (the apiserver's precision).
    pub started: i64,
}

impl Run<'_> {
    /// Host names and uids hold no newline, so the message is unambiguous.
    fn message(&self) -> Vec<u8> {
        format!("{}\n{}\n{}", self.host, self.booking, self.started).into_bytes()
    }
}

/// A line more than a phone-home message: the two never collide.
fn seed_message(run: &Run<'_>) -> Vec<u8> {
    let mut m = b"seed\n".to_vec();
    m.extend(run.message());
    m
}

/// The form cloud-init's `phone_home` posts, bounded and checked; unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub instance_id: Option<String>,
    pub hostname: Option<String>,
    pub fqdn: Option<String>,
    /// The OpenSSH public host keys, in the order rsa, ecdsa, ed25519.
    pub host_keys: Vec<String>,
    /// The callback's source address.
    pub peer: Option<IpAddr>,
}

/// A field of the form that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct FormError {
    pub field: &'static str,
    pub why: String,
}

type KeyField = (&'static str, &'static [&'static str]);

const KEY_FIELDS: [KeyField; 3] = [
    ("pub_key_rsa", &["ssh-rsa"]),
    (
        "pub_key_ecdsa",
        &[
            "ecdsa-sha2-nistp256",
            "ecdsa-sha2-nistp384",
            "ecdsa-sha2-nistp521",
        ],
    ),
    ("pub_key_ed25519", &["ssh-ed25519"]),
];

fn name_field(field: &'static str, value: &str) -> Result<Option<String>, FormError> {
    if value.len() > MAX_NAME_BYTES || value.chars().any(char::is_control) {
        return Err(FormError {
            field,
            why: format!("at most {MAX_NAME_BYTES} bytes, no control characters"),
        });
    }
    Ok(Some(value.to_owned()))
}

impl Report {
    /// Parses an `application/x-www-form-urlencoded` body. cloud-init sends `N/A` for a
    /// value it does not have; that is absent, not an error.
    pub fn from_form(body: &[u8], peer: Option<IpAddr>) -> Result<Self, FormError> {
        let mut report = Report {
            peer,
            ..Report::default()
        };
        let mut keys: [Option<String>; 3] = Default::default();
        for (name, value) in url::form_urlencoded::parse(body) {
            let value = value.trim();
            if value.is_empty() || value == "N/A" {
                continue;
            }
            match name.as_ref() {
                "instance_id" => report.instance_id = name_field("instance_id", value)?,
                "hostname" => report.hostname = name_field("hostname", value)?,
                "fqdn" => report.fqdn = name_field("fqdn", value)?,
                other => {
                    if let Some(i) = KEY_FIELDS.iter().position(|(f, _)| *f == other) {
                        let (field, types) = KEY_FIELDS[i];
                        let key = openssh_public_key(value, types)
                            .map_err(|why| FormError { field, why })?;
                        keys[i] = Some(key);
                    }
                }
            }
        }
        report.host_keys = keys.into_iter().flatten().collect();
        Ok(report)
    }
}

/// Checks `line` is an OpenSSH public key (`type base64 [comment]`) of one of `types`, its
/// blob naming the same type; returns it without the comment (a host's comment is
/// `root@hostname`, nothing a known_hosts line needs).
pub fn openssh_public_key(line: &str, types: &[&str]) -> Result<String, String> {
    if line.len() > MAX_KEY_BYTES {
        return Err(format!("longer than {MAX_KEY_BYTES} bytes"));
    }
    let mut parts = line.split_ascii_whitespace();
    let (Some(kind), Some(data)) = (parts.next(), parts.next()) else {
        return Err("not an OpenSSH public key (\"TYPE BASE64 [COMMENT]\")".into());
    };
    if !types.contains(&kind) {
        return Err(format!("key type {kind:?} is not one of {types:?}"));
    }
    let blob = STANDARD
        .decode(data)
        .map_err(|_| "the key data is not base64".to_owned())?;
    let named = blob
        .get(..4)
        .and_then(|len| {
            let len = usize::try_from(u32::from_be_bytes(len.try_into().ok()?)).ok()?;
            blob.get(4..4usize.checked_add(len)?)
        })
        .is_some_and(|name| name == kind.as_bytes());
    if !named {
        return Err(format!("the key data is not a {kind} key"));
    }
    Ok(format!("{kind} {data}"))
}

/// Records that a host phoned home; implemented by the LabHost controller, which checks the
/// token against the host's current run with [`PhoneHomeTokens::verify`].
pub trait PhoneHomeSink: Send + Sync {
    fn record<'a>(
        &'a self,
        host: &'a str,
        token: &'a str,
        report: Report,
    ) -> Pin<Box<dyn Future<Output = Result<(), PhoneHomeError>> + Send + 'a>>;
}

/// Derives and checks per-run tokens.
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

    /// The token of one run of one host.
    pub fn token(&self, run: &Run<'_>) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, &run.message()))
    }

    /// Constant-time check of a presented token.
    pub fn verify(&self, run: &Run<'_>, token: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(token)
            .is_ok_and(|tag| hmac::verify(&self.key, &run.message(), &tag).is_ok())
    }

    /// The run's seed token: another message than the phone-home token's, so the seed URL
    /// (which the BMC holds) cannot post reports, nor the phone-home URL fetch the seed.
    pub fn seed_token(&self, run: &Run<'_>) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, &seed_message(run)))
    }

    pub fn verify_seed(&self, run: &Run<'_>, token: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(token)
            .is_ok_and(|tag| hmac::verify(&self.key, &seed_message(run), &tag).is_ok())
    }

    /// The URL the BMC fetches the run's seed image from.
    pub fn seed_url(&self, base: &Url, run: &Run<'_>) -> Url {
        let mut url = base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend([
                "seeds",
                run.host,
                &self.seed_token(run),
                "cidata.iso",
            ]);
        }
        url.set_query(None);
        url
    }

    /// The URL the host calls in this run, under the operator's external base URL.
    pub fn url(&self, base: &Url, run: &Run<'_>) -> Url {
        let mut url = base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["phone-home", run.host]);
        }
        url.query_pairs_mut()
            .clear()
            .append_pair("token", &self.token(run));
        url
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const RUN: Run<'static> = Run {
        host: "node-01",
        booking: "uid-1",
        started: 1_800_000_000,
    };

    #[test]
    fn token_verifies_for_its_host_booking_and_run_only() {
        let tokens = PhoneHomeTokens::new(b"secret");
        let t = tokens.token(&RUN);
        assert!(tokens.verify(&RUN, &t));
        let other_host = Run {
            host: "node-02",
            ..RUN
        };
        let earlier_booking = Run {
            booking: "uid-0",
            ..RUN
        };
        let earlier_run = Run {
            started: RUN.started - 600,
            ..RUN
        };
        for other in [other_host, earlier_booking, earlier_run] {
            assert!(!tokens.verify(&other, &t), "{other:?}");
        }
        assert!(!tokens.verify(&RUN, "not-base64!"));
        assert!(!PhoneHomeTokens::new(b"other").verify(&RUN, &t));
    }

    #[test]
    fn seed_tokens_are_per_run_and_not_phone_home_tokens() {
        let tokens = PhoneHomeTokens::new(b"secret");
        let base = Url::parse("http://10.0.0.5:8081/").unwrap();
        let url = tokens.seed_url(&base, &RUN);
        let token = tokens.seed_token(&RUN);
        assert_eq!(url.path(), format!("/seeds/node-01/{token}/cidata.iso"));
        assert!(tokens.verify_seed(&RUN, &token));
        assert!(!tokens.verify(&RUN, &token), "a seed token posts no report");
        assert!(!tokens.verify_seed(&RUN, &tokens.token(&RUN)));
        let earlier = Run {
            started: RUN.started - 1,
            ..RUN
        };
        assert!(!tokens.verify_seed(&earlier, &token));
    }

    #[test]
    fn replicas_sharing_a_secret_agree() {
        assert_eq!(
            PhoneHomeTokens::new(b"s").token(&RUN),
            PhoneHomeTokens::new(b"s").token(&RUN)
        );
    }

    #[test]
    fn url_is_under_the_base_with_the_token() {
        let tokens = PhoneHomeTokens::new(b"secret");
        let base = Url::parse("http://10.0.0.5:8081/labpods/").unwrap();
        let url = tokens.url(&base, &RUN);
        assert_eq!(url.path(), "/labpods/phone-home/node-01");
        let token: Vec<_> = url.query_pairs().collect();
        assert_eq!(token.len(), 1);
        assert!(tokens.verify(&RUN, &token[0].1));
        assert!(!format!("{tokens:?}").contains("secret"));
    }

    /// An ed25519 public key blob (`ssh-ed25519` + 32 key bytes), as cloud-init posts it.
    fn ed25519() -> String {
        let mut blob = Vec::new();
        blob.extend_from_slice(&11u32.to_be_bytes());
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&32u32.to_be_bytes());
        blob.extend_from_slice(&[7; 32]);
        format!("ssh-ed25519 {}", STANDARD.encode(blob))
    }

    #[test]
    fn cloud_init_form_is_read_with_keys_checked_and_na_dropped() {
        let key = ed25519();
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("pub_key_rsa", "N/A")
            .append_pair("pub_key_ecdsa", "N/A")
            .append_pair("pub_key_ed25519", &format!("{key} root@node-0\n"))
            .append_pair("instance_id", "i-1")
            .append_pair("hostname", "node-0")
            .append_pair("fqdn", "node-0.lab")
            .append_pair("extra", "ignored")
            .finish();
        let peer: IpAddr = "127.0.0.3".parse().unwrap();
        let report = Report::from_form(body.as_bytes(), Some(peer)).unwrap();
        assert_eq!(
            report,
            Report {
                instance_id: Some("i-1".into()),
                hostname: Some("node-0".into()),
                fqdn: Some("node-0.lab".into()),
                host_keys: vec![key],
                peer: Some(peer),
            }
        );
    }

    #[test]
    fn bad_form_fields_are_refused_naming_the_field() {
        let cases = [
            ("pub_key_ed25519=ssh-rsa+AAAA", "pub_key_ed25519"),
            ("pub_key_ed25519=ssh-ed25519+%21%21", "pub_key_ed25519"),
            // A blob naming another type.
            (
                "pub_key_rsa=ssh-rsa+AAAAC3NzaC1lZDI1NTE5AAAAIA",
                "pub_key_rsa",
            ),
            // A length past the blob's end.
            ("pub_key_ed25519=ssh-ed25519+AAAA", "pub_key_ed25519"),
            ("pub_key_ecdsa=nonsense", "pub_key_ecdsa"),
            ("hostname=a%0Ab", "hostname"),
        ];
        for (body, field) in cases {
            let err = Report::from_form(body.as_bytes(), None).unwrap_err();
            assert_eq!(err.field, field, "{body}: {err}");
        }
        let long = format!("instance_id={}", "x".repeat(300));
        assert_eq!(
            Report::from_form(long.as_bytes(), None).unwrap_err().field,
            "instance_id"
        );
    }
}
