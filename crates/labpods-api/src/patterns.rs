//! Regular expressions shared by the CRD schemas (`pattern:`) and the documentation, so the
//! apiserver and `kubectl explain` agree on one spelling of each rule.

/// A DNS-1123 label: lower-case alphanumerics and `-`, starting and ending alphanumeric.
pub const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A Kubernetes object name (RFC 1123 subdomain), e.g. a Secret's.
pub const DNS_SUBDOMAIN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A key of a Secret's or ConfigMap's data.
pub const SECRET_KEY: &str = "^[-._a-zA-Z0-9]+$";

/// A Redfish service root URL: `http://` or `https://`, then a host.
pub const BMC_URL: &str = "^https?://[^\\s/]+(/\\S*)?$";

/// An image URL the BMC can fetch as virtual media: `http://` or `https://`, then a host.
pub const IMAGE_URL: &str = "^https?://[^\\s/]+/\\S*$";

/// An image checksum: algorithm, colon, lower-case hex digest.
pub const CHECKSUM: &str = "^(sha256|sha512):[0-9a-f]+$";

/// A booking length: one or more `<number><unit>` terms with units `d` (24h), `h` and `m`,
/// largest first, e.g. `72h`, `90m`, `3d`, `1d12h`. The digits are bounded (4 for days, 6 for
/// hours, 8 for minutes: a few centuries at most) so every length the schema admits fits in
/// a timestamp.
pub const DURATION: &str = "^([0-9]{1,4}d)?([0-9]{1,6}h)?([0-9]{1,8}m)?$";

/// An image checksum's longest form: `sha512:` and 128 hex digits.
pub const CHECKSUM_MAX_LENGTH: u32 = 7 + 128;
