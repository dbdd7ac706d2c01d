//! Rules a CRD schema cannot express, checked by the controllers and reported as an `Invalid`
//! condition. Each error names the field and says how to fix it.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::{LabHostSpec, PodRequestSpec, v1alpha1::MAX_ROLE_COUNT};

/// One problem with a spec: the offending field (`spec.roles[1].count`) and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Path of the field, as `kubectl explain` spells it, with list indexes.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Join errors into one human message (for a condition), in order.
pub fn summarize(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The time window a booking covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First instant of the booking.
    pub start: Timestamp,
    /// First instant after the booking.
    pub end: Timestamp,
}

impl Window {
    /// Length of the window.
    pub fn length(&self) -> SignedDuration {
        self.end.duration_since(self.start)
    }
}

/// Parse a booking length as the schema's pattern allows: `<n>d`, `<n>h`, `<n>m` terms,
/// largest first (`72h`, `90m`, `3d`, `1d12h`). `None` if malformed, zero or too long.
pub fn parse_duration(text: &str) -> Option<SignedDuration> {
    let mut rest = text;
    let mut total: i64 = 0;
    let mut last_unit_secs = i64::MAX;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let (number, tail) = rest.split_at(digits);
        let mut chars = tail.chars();
        let unit_secs = match chars.next()? {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            _ => return None,
        };
        if number.is_empty() || unit_secs >= last_unit_secs {
            return None;
        }
        let n: i64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit_secs)?)?;
        last_unit_secs = unit_secs;
        rest = chars.as_str();
    }
    (total > 0).then(|| SignedDuration::from_secs(total))
}

/// Render a length the way `spec.duration` spells it (`3d`, `1d12h`, `90m` -> `1h30m`).
pub fn format_duration(length: SignedDuration) -> String {
    let secs = length.as_secs().max(0);
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    let mut out = String::new();
    for (n, unit) in [(days, 'd'), (hours, 'h'), (minutes, 'm')] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() { "0m".to_owned() } else { out }
}

/// The window a request asks for: `spec.start` (or `now` when absent) until `spec.end` or
/// start + `spec.duration`. Callers that schedule a start-less request should pin the
/// result (`status.scheduledStart`) rather than recompute it with a later `now`.
pub fn effective_window(spec: &PodRequestSpec, now: Timestamp) -> Result<Window, FieldError> {
    let start = spec.start.as_ref().map_or(now, |t| t.0);
    let end = match (&spec.duration, &spec.end) {
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                "spec.end",
                "set either spec.duration or spec.end, not both: remove one of them",
            ));
        }
        (None, None) => {
            return Err(FieldError::new(
                "spec.duration",
                "set how long the booking lasts: spec.duration (e.g. 72h) or spec.end (RFC 3339)",
            ));
        }
        (None, Some(end)) => end.0,
        (Some(text), None) => {
            let length = parse_duration(text).ok_or_else(|| {
                FieldError::new(
                    "spec.duration",
                    format!("{text:?} is not a positive length: use <n>d, <n>h, <n>m terms, largest first, e.g. 72h or 1d12h"),
                )
            })?;
            start.checked_add(length).map_err(|_| {
                FieldError::new("spec.duration", format!("{text:?} is too long: shorten it"))
            })?
        }
    };
    if end <= start {
        let what = if spec.start.is_some() {
            "spec.start"
        } else {
            "now"
        };
        return Err(FieldError::new(
            "spec.end",
            format!(
                "{end} is not after {what} ({start}): set spec.end later, or use spec.duration"
            ),
        ));
    }
    Ok(Window { start, end })
}

/// Check a PodRequest spec at `now` against rules the schema cannot express, with the lab's
/// longest allowed booking `max_duration`. Empty when valid.
pub fn validate_podrequest(
    spec: &PodRequestSpec,
    now: Timestamp,
    max_duration: SignedDuration,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match effective_window(spec, now) {
        Ok(window) if window.length() > max_duration => {
            let field = if spec.end.is_some() {
                "spec.end"
            } else {
                "spec.duration"
            };
            errors.push(FieldError::new(
                field,
                format!(
                    "the booking lasts {} but this lab allows at most {}: shorten it (extend it later if needed)",
                    format_duration(window.length()),
                    format_duration(max_duration),
                ),
            ));
        }
        Ok(_) => {}
        Err(e) => errors.push(e),
    }
    errors.extend(validate_roles(spec));
    errors.extend(validate_image_url(&spec.image.url, "spec.image.url"));
    if let Some(checksum) = &spec.image.checksum {
        errors.extend(validate_checksum(checksum, "spec.image.checksum"));
    }
    errors
}

fn validate_roles(spec: &PodRequestSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if spec.roles.is_empty() {
        errors.push(FieldError::new(
            "spec.roles",
            "list at least one role, e.g. {name: node, count: 3}",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, role) in spec.roles.iter().enumerate() {
        if !seen.insert(role.name.as_str()) {
            errors.push(FieldError::new(
                format!("spec.roles[{i}].name"),
                format!(
                    "role {:?} is listed twice: merge the entries or rename one",
                    role.name
                ),
            ));
        }
        if !is_dns_label(&role.name) {
            errors.push(FieldError::new(
                format!("spec.roles[{i}].name"),
                format!("{:?} is not a DNS label: use lower-case letters, digits and '-', e.g. jumphost", role.name),
            ));
        }
        if !(1..=MAX_ROLE_COUNT).contains(&role.count) {
            errors.push(FieldError::new(
                format!("spec.roles[{i}].count"),
                format!(
                    "{} hosts is out of range: ask for 1 to {MAX_ROLE_COUNT}",
                    role.count
                ),
            ));
        }
        if let Some(selector) = &role.selector {
            errors.extend(validate_selector(
                selector,
                &format!("spec.roles[{i}].selector"),
            ));
        }
    }
    errors
}

/// Check a label selector the way the apiserver checks Deployment selectors: key and value
/// syntax, and operators with the right number of values. `field` prefixes error paths.
pub fn validate_selector(selector: &LabelSelector, field: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (key, value) in selector.match_labels.iter().flatten() {
        let at = format!("{field}.matchLabels[{key}]");
        errors.extend(check_label_key(key, &at));
        if !is_label_value(value) {
            errors.push(FieldError::new(
                at,
                format!("{value:?} is not a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"),
            ));
        }
    }
    for (i, req) in selector.match_expressions.iter().flatten().enumerate() {
        let at = format!("{field}.matchExpressions[{i}]");
        errors.extend(check_label_key(&req.key, &format!("{at}.key")));
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errors.push(FieldError::new(
                format!("{at}.values"),
                format!(
                    "operator {} needs at least one value: list the values to match",
                    req.operator
                ),
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errors.push(FieldError::new(
                format!("{at}.values"),
                format!("operator {} takes no values: remove values", req.operator),
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errors.push(FieldError::new(
                format!("{at}.operator"),
                format!("unknown operator {other:?}: use In, NotIn, Exists or DoesNotExist"),
            )),
        }
        for (j, value) in values.iter().enumerate() {
            if !is_label_value(value) {
                errors.push(FieldError::new(
                    format!("{at}.values[{j}]"),
                    format!("{value:?} is not a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"),
                ));
            }
        }
    }
    errors
}

/// Check a LabHost spec against rules the schema cannot express. Empty when valid.
pub fn validate_labhost(spec: &LabHostSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let tls = &spec.bmc.tls;
    if tls.insecure_skip_verify && tls.ca_bundle_secret_ref.is_some() {
        errors.push(FieldError::new(
            "spec.bmc.tls",
            "caBundleSecretRef and insecureSkipVerify contradict each other: keep the CA bundle and set insecureSkipVerify to false",
        ));
    }
    errors.extend(check_url(
        &spec.bmc.address,
        "spec.bmc.address",
        "the BMC's Redfish URL, e.g. https://10.0.0.21",
    ));
    if spec
        .bmc
        .system_id
        .as_deref()
        .is_some_and(|id| id.contains('/'))
    {
        errors.push(FieldError::new(
            "spec.bmc.systemId",
            "a system id is one path segment (the <id> in /redfish/v1/Systems/<id>): remove the '/'",
        ));
    }
    errors
}

fn validate_image_url(url: &str, field: &str) -> Vec<FieldError> {
    check_url(url, field, "an http:// or https:// URL of the ISO image")
}

fn check_url(text: &str, field: &str, expected: &str) -> Vec<FieldError> {
    let problem = match url::Url::parse(text) {
        Err(e) => Some(e.to_string()),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            Some(format!("scheme {:?} is not http or https", u.scheme()))
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some("it has no host".to_owned()),
        Ok(_) => None,
    };
    problem
        .map(|p| {
            FieldError::new(
                field,
                format!("{text:?} is not a valid URL ({p}): use {expected}"),
            )
        })
        .into_iter()
        .collect()
}

fn validate_checksum(checksum: &str, field: &str) -> Vec<FieldError> {
    let expected_len = match checksum.split_once(':') {
        Some(("sha256", hex)) => (64, hex),
        Some(("sha512", hex)) => (128, hex),
        _ => {
            return vec![FieldError::new(
                field,
                "use sha256:<64 hex digits> or sha512:<128 hex digits>",
            )];
        }
    };
    let (len, hex) = expected_len;
    if hex.len() == len
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Vec::new()
    } else {
        vec![FieldError::new(
            field,
            format!(
                "the digest must be {len} lower-case hex digits, got {}: copy it from the image's SHA*SUMS file",
                hex.len()
            ),
        )]
    }
}

/// A DNS-1123 label (see [`crate::patterns::DNS_LABEL`]).
fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain: dot-separated DNS labels, at most 253 characters.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A label name or value: at most 63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
fn is_label_name(s: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && edge_ok(s.chars().next())
        && edge_ok(s.chars().last())
}

fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_label_name(s)
}

fn check_label_key(key: &str, field: &str) -> Option<FieldError> {
    let valid = match key.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(key),
    };
    (!valid).then(|| {
        FieldError::new(
            field,
            format!("{key:?} is not a label key: use [prefix/]name, prefix a DNS subdomain, name at most 63 letters, digits, '-', '_' or '.', e.g. labpods.dev/rack"),
        )
    })
}

#[cfg(test)]
mod tests;
