//! The pure half of image handling: the lab's image policy (`images.requireChecksum`,
//! `images.allowedHosts`), parsing a `spec.image.checksum`, and how an image URL is shown.
//!
//! Shown URLs: a URL's query string may be a pre-signed URL's signature (S3's
//! `X-Amz-Signature`, Azure's `sig`), which is a bearer credential for the image. Whatever the
//! operator reports about an image (logs, conditions, Events) shows the URL with its userinfo
//! as `***` and its query and fragment as `?…`; only the BMC is given the URL as written.

use labpods_api::v1alpha1::ImageSpec;

use crate::config::ImagesConfig;

/// The digest algorithms `spec.image.checksum` may name (the CRD's pattern admits no other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    pub fn ring(self) -> &'static ring::digest::Algorithm {
        match self {
            Self::Sha256 => &ring::digest::SHA256,
            Self::Sha512 => &ring::digest::SHA512,
        }
    }
}

/// An expected digest: `sha256:<64 hex>` or `sha512:<128 hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: Algorithm,
    /// Lower-case hex.
    pub hex: String,
}

impl Checksum {
    /// None for anything but the two forms the CRD admits (an object stored before the rule
    /// is reported by the validation rules, never downloaded for).
    pub fn parse(text: &str) -> Option<Self> {
        let (name, hex) = text.split_once(':')?;
        let (algorithm, len) = match name {
            "sha256" => (Algorithm::Sha256, 64),
            "sha512" => (Algorithm::Sha512, 128),
            _ => return None,
        };
        let hex = hex.to_ascii_lowercase();
        (hex.len() == len && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then_some(Self { algorithm, hex })
    }
}

/// Checks a request's image against the lab's policy; the error names the field and the fix.
pub fn check(image: &ImageSpec, policy: &ImagesConfig) -> Result<(), String> {
    if policy.require_checksum && image.checksum.is_none() {
        return Err(
            "spec.image.checksum is required in this lab (operator setting \
             images.requireChecksum): add the image's digest as sha256:<hex> or sha512:<hex>, \
             from its SHA256SUMS or SHA512SUMS file"
                .to_owned(),
        );
    }
    if policy.allowed_hosts.is_empty() {
        return Ok(());
    }
    let host = url::Url::parse(&image.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    if host_allowed(&host, &policy.allowed_hosts) {
        return Ok(());
    }
    Err(format!(
        "spec.image.url {} is on a server this lab does not allow ({host:?}; operator setting \
         images.allowedHosts: {}): use an image from one of those servers, or ask the lab's \
         admins to allow this one",
        display(&image.url),
        policy.allowed_hosts.join(", ")
    ))
}

/// `host` is one of `allowed`: equal to an entry (case-insensitive), or below the domain of a
/// `*.suffix` entry (`*.example.org` admits `a.example.org` and `a.b.example.org`, not
/// `example.org` itself).
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    !host.is_empty()
        && allowed.iter().any(|entry| {
            let entry = entry.to_ascii_lowercase();
            match entry.strip_prefix("*.") {
                Some(suffix) => host
                    .strip_suffix(suffix)
                    .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
                None => host == entry,
            }
        })
}

/// An `images.allowedHosts` entry is a host name or `*.` and a domain.
pub fn is_host_pattern(entry: &str) -> bool {
    let name = entry.strip_prefix("*.").unwrap_or(entry);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `url` as the operator shows it: userinfo as `***`, query and fragment as `?…` (see the
/// module doc). Works on strings that do not parse as URLs.
pub fn display(url: &str) -> String {
    let (rest, cut) = match url.find(['?', '#']) {
        Some(i) => (&url[..i], true),
        None => (url, false),
    };
    let shown = match rest.find("://").map(|i| i + 3) {
        Some(start) => {
            let authority_end = rest[start..].find('/').map_or(rest.len(), |i| start + i);
            match rest[start..authority_end].rfind('@') {
                Some(at) => format!("{}***{}", &rest[..start], &rest[start + at..]),
                None => rest.to_owned(),
            }
        }
        None => rest.to_owned(),
    };
    if cut { format!("{shown}?…") } else { shown }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn policy(require: bool, hosts: &[&str]) -> ImagesConfig {
        ImagesConfig {
            require_checksum: require,
            allowed_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            ..ImagesConfig::default()
        }
    }

    #[test]
    fn checksums_parse_in_the_two_admitted_forms_only() {
        let sha256 = Checksum::parse(&format!("sha256:{}", "Ab".repeat(32))).unwrap();
        assert_eq!(sha256.algorithm, Algorithm::Sha256);
        assert_eq!(sha256.hex, "ab".repeat(32));
        let sha512 = Checksum::parse(&format!("sha512:{}", "0".repeat(128))).unwrap();
        assert_eq!(sha512.algorithm, Algorithm::Sha512);
        for bad in [
            format!("sha512:{}", "0".repeat(64)),
            format!("md5:{}", "0".repeat(32)),
            format!("sha256:{}", "g".repeat(64)),
            "sha256".to_owned(),
        ] {
            assert_eq!(Checksum::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn a_missing_checksum_is_refused_only_when_the_lab_requires_one() {
        let image = ImageSpec::new("http://images.lab/os.iso");
        assert_eq!(check(&image, &policy(false, &[])), Ok(()));
        let error = check(&image, &policy(true, &[])).unwrap_err();
        assert!(
            error.starts_with("spec.image.checksum is required")
                && error.contains("images.requireChecksum"),
            "{error}"
        );
        let with = image.with_checksum(format!("sha256:{}", "a".repeat(64)));
        assert_eq!(check(&with, &policy(true, &[])), Ok(()));
    }

    #[test]
    fn image_hosts_outside_the_allowed_list_are_refused_naming_the_field() {
        let allowed = policy(false, &["images.lab", "*.mirror.example"]);
        for ok in [
            "http://images.lab/os.iso",
            "https://IMAGES.lab:8443/os.iso",
            "https://eu.mirror.example/os.iso",
            "https://a.b.mirror.example/os.iso",
        ] {
            assert_eq!(check(&ImageSpec::new(ok), &allowed), Ok(()), "{ok}");
        }
        for refused in [
            "http://mirror.example/os.iso",
            "http://evilmirror.example/os.iso",
            "http://images.lab.evil.test/os.iso",
            "http://10.0.0.1/os.iso",
        ] {
            let error = check(&ImageSpec::new(refused), &allowed).unwrap_err();
            assert!(
                error.starts_with("spec.image.url ") && error.contains("images.allowedHosts"),
                "{error}"
            );
        }
        // Empty: any host.
        assert_eq!(
            check(&ImageSpec::new("http://x.test/a.iso"), &policy(false, &[])),
            Ok(())
        );
    }

    #[test]
    fn host_patterns_are_names_or_wildcard_domains() {
        for ok in ["images.lab", "*.example.org", "localhost", "10.0.0.1"] {
            assert!(is_host_pattern(ok), "{ok}");
        }
        for bad in ["", "*", "*.", "a..b", "http://x", "a/b", "*.*.x"] {
            assert!(!is_host_pattern(bad), "{bad}");
        }
    }

    #[test]
    fn shown_urls_hide_userinfo_and_query() {
        assert_eq!(
            display("https://u:p@images.lab/os.iso?X-Amz-Signature=abc#frag"),
            "https://***@images.lab/os.iso?…"
        );
        assert_eq!(
            display("http://images.lab/os.iso"),
            "http://images.lab/os.iso"
        );
        assert_eq!(
            display("http://images.lab/a@b.iso"),
            "http://images.lab/a@b.iso"
        );
        assert_eq!(display("not a url?x=1"), "not a url?…");
    }
}
