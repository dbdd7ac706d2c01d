//! Validation of the labpods resources, as the controllers run it and report it in an
//! `Invalid` condition. Each error names the field and says how to fix it.
//!
//! Three kinds of checks, from the strongest guarantee to the weakest:
//!
//! * The [rules table](rules::RULES): every rule there is also a CEL `x-kubernetes-validations`
//!   entry of the CRD, so the apiserver refuses a violating object before any controller sees
//!   it. The controllers run the same rules again ([`podrequest_rule_errors`], ...) as a
//!   second line, for objects stored before a rule existed; both say the same thing.
//! * Mirrors of schema keywords (`minItems`, `pattern`, `minimum`/`maximum`) the apiserver
//!   checks with its own wording, repeated here for the same reason.
//! * What the apiserver cannot know, so only the controllers check: anything that needs the
//!   clock (a window that has passed) or the lab's policy (the longest booking), and what
//!   CEL cannot parse (an SSH key's base64 body, a network-config's YAML: [`access_errors`]).

pub mod rules;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use self::rules::{
    Check, DURATION_POSITIVE, DURATION_XOR_END, END_AFTER_START, LENGTH_REQUIRED, errors_of,
};
pub use self::rules::{MAX_HOSTS_PER_REQUEST, RULES, Rule};
use crate::v1alpha1::{MAX_CPUS, MAX_MEMORY_GIB, MAX_ROLE_COUNT};
use crate::{AccessSpec, LabHostSpec, LeaseSpec, PodRequest, PodRequestSpec};

/// One problem with a spec: the offending field (`spec.roles[1].count`) and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Path of the field, as the apiserver prints it, with list indexes.
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
///
/// Fails with the first broken [rule](rules::RULES) about the window (a duration or an
/// end, not both, a positive duration, the end after the start), worded as the apiserver
/// words it, or when a start-less request's `spec.end` is not after `now`.
pub fn effective_window(spec: &PodRequestSpec, now: Timestamp) -> Result<Window, FieldError> {
    for rule in [
        &LENGTH_REQUIRED,
        &DURATION_XOR_END,
        &DURATION_POSITIVE,
        &END_AFTER_START,
    ] {
        if let Check::PodRequestSpec(holds) = rule.check
            && !holds(spec)
        {
            return Err(rule.error_at("spec"));
        }
    }
    let start = spec.start.as_ref().map_or(now, |t| t.0);
    let end = match (&spec.end, &spec.duration) {
        (Some(end), _) => end.0,
        (None, Some(text)) => {
            let length = parse_duration(text).ok_or_else(|| DURATION_POSITIVE.error_at("spec"))?;
            start.checked_add(length).map_err(|_| {
                FieldError::new("spec.duration", format!("{text:?} is too long: shorten it"))
            })?
        }
        (None, None) => return Err(LENGTH_REQUIRED.error_at("spec")),
    };
    if end <= start {
        // The rules hold, so only a start-less request gets here: its end has passed.
        return Err(FieldError::new(
            "spec.end",
            format!("{end} is not after now ({start}): set spec.end later, or use spec.duration"),
        ));
    }
    Ok(Window { start, end })
}

/// Check a PodRequest spec at `now`, with the lab's longest allowed booking
/// `max_duration`: the [rules](rules::RULES), the schema's own constraints, and what needs
/// the clock or the policy. Empty when valid.
pub fn validate_podrequest(
    spec: &PodRequestSpec,
    now: Timestamp,
    max_duration: SignedDuration,
) -> Vec<FieldError> {
    let mut errors = podrequest_rule_errors(spec);
    errors.extend(podrequest_schema_errors(spec));
    errors.extend(access_errors(spec));
    match effective_window(spec, now) {
        // Already reported by the rules.
        Err(e) if errors.contains(&e) => {}
        Err(e) => errors.push(e),
        Ok(window) => errors.extend(window_errors(spec, window, now, max_duration)),
    }
    errors
}

/// What is wrong with a well-formed window at `now`: it has passed, or it is longer than
/// the lab allows.
fn window_errors(
    spec: &PodRequestSpec,
    window: Window,
    now: Timestamp,
    max_duration: SignedDuration,
) -> Option<FieldError> {
    if window.end <= now {
        // Only with a spec.start: without one the window starts now.
        let (start, end) = (window.start, window.end);
        return Some(if spec.end.is_some() {
            FieldError::new(
                "spec.end",
                format!(
                    "the booking from spec.start {start} to spec.end {end} lies wholly in the past (it is {now}): move spec.start and spec.end into the future, or remove spec.start to start as soon as hosts are free"
                ),
            )
        } else {
            FieldError::new(
                "spec.start",
                format!(
                    "the booking from spec.start {start} for spec.duration {} lies wholly in the past (it ended {end}; it is {now}): move spec.start into the future, or remove it to start as soon as hosts are free",
                    spec.duration.as_deref().unwrap_or_default()
                ),
            )
        });
    }
    if window.length() > max_duration {
        let field = if spec.end.is_some() {
            "spec.end"
        } else {
            "spec.duration"
        };
        return Some(FieldError::new(
            field,
            format!(
                "the booking lasts {} but this lab allows at most {}: shorten it (extend it later if needed)",
                format_duration(window.length()),
                format_duration(max_duration),
            ),
        ));
    }
    None
}

/// The [rules](rules::RULES) a PodRequest spec breaks, as the apiserver reports them.
pub fn podrequest_rule_errors(spec: &PodRequestSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    errors_of(&mut errors, "spec", spec, |c| match c {
        Check::PodRequestSpec(holds) => Some(*holds),
        _ => None,
    });
    for (i, role) in spec.roles.iter().enumerate() {
        let at = format!("spec.roles[{i}]");
        errors_of(&mut errors, &at, role, |c| match c {
            Check::Role(holds) => Some(*holds),
            _ => None,
        });
        if let Some(selector) = &role.selector {
            errors.extend(validate_selector(selector, &format!("{at}.selector")));
        }
        if let Some(access) = &role.access {
            access_rule_errors(&mut errors, &format!("{at}.access"), access);
        }
    }
    if let Some(access) = &spec.access {
        access_rule_errors(&mut errors, "spec.access", access);
    }
    errors_of(&mut errors, "spec.image", &spec.image, |c| match c {
        Check::Image(holds) => Some(*holds),
        _ => None,
    });
    errors
}

fn access_rule_errors(errors: &mut Vec<FieldError>, at: &str, access: &AccessSpec) {
    for (i, key) in access.ssh_authorized_keys.iter().enumerate() {
        let at = format!("{at}.sshAuthorizedKeys[{i}]");
        errors_of(errors, &at, key.as_str(), |c| match c {
            Check::SshKey(holds) => Some(*holds),
            _ => None,
        });
    }
}

/// Every `access` of a request with its path: the request's, then each role's.
fn accesses(spec: &PodRequestSpec) -> impl Iterator<Item = (String, &AccessSpec)> {
    let request = spec.access.iter().map(|a| ("spec.access".to_owned(), a));
    let roles = spec.roles.iter().enumerate().filter_map(|(i, r)| {
        r.access
            .as_ref()
            .map(|a| (format!("spec.roles[{i}].access"), a))
    });
    request.chain(roles)
}

/// What CEL cannot check of a request's and its roles' `access`: that each SSH key's base64
/// body decodes to a key of the type the line states (a truncated paste, or a line whose type
/// was edited, passes the shape), and that `networkData` is a cloud-init network-config
/// version 2 mapping. A key of the wrong shape is left to its [rule](rules::RULES). The
/// messages never quote the key or the data (tenant input stays out of status).
pub fn access_errors(spec: &PodRequestSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (at, access) in accesses(spec) {
        for (i, key) in access.ssh_authorized_keys.iter().enumerate() {
            if let Some(problem) = ssh_key_body_problem(key) {
                errors.push(FieldError::new(
                    format!("{at}.sshAuthorizedKeys[{i}]"),
                    format!("{problem}: paste the whole line of an accepted key's .pub file unchanged (ssh-keygen -y -f <private key> prints it again; ssh-keygen -t ed25519 makes a new one)"),
                ));
            }
        }
        if let Some(problem) = access
            .network_data
            .as_deref()
            .and_then(network_data_problem)
        {
            errors.push(FieldError::new(format!("{at}.networkData"), problem));
        }
    }
    errors
}

/// Why a key line of the right shape is not a key of an accepted type, if it is not: a type
/// outside [`rules::SSH_KEY_TYPES`] (the apiserver's rule checks the family only). The wire
/// format (RFC 4253 section 6.6, RFC 5656, PROTOCOL.u2f) of every accepted type is a run of
/// length-prefixed strings, the first the type: a body cut short or padded breaks the run.
fn ssh_key_body_problem(line: &str) -> Option<String> {
    use base64::Engine as _;
    if !rules::is_ssh_public_key_line(line) {
        return None;
    }
    let mut words = line.split(' ');
    let (kind, body) = (words.next()?, words.next()?);
    if !rules::SSH_KEY_TYPES.contains(&kind) {
        return Some(format!(
            "the key type is not one labpods accepts ({})",
            rules::SSH_KEY_TYPES.join(", ")
        ));
    }
    let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(body) else {
        return Some("the key's body is not valid base64 (cut short?)".to_owned());
    };
    let mut fields = Vec::new();
    let mut rest = blob.as_slice();
    while !rest.is_empty() {
        let field = rest
            .get(..4)
            .and_then(|len| usize::try_from(u32::from_be_bytes(len.try_into().ok()?)).ok())
            .and_then(|len| rest.get(4..4usize.checked_add(len)?));
        let Some(field) = field else {
            return Some(format!(
                "the key's body is cut short: it is not a whole {kind} key"
            ));
        };
        rest = &rest[4 + field.len()..];
        fields.push(field);
    }
    match fields.as_slice() {
        [embedded, _, ..] if *embedded == kind.as_bytes() => None,
        [embedded, ..] if *embedded != kind.as_bytes() => Some(format!(
            "the key's body is not a {kind} key (its type was edited, or two keys were mixed)"
        )),
        _ => Some(format!(
            "the key's body is cut short: it is not a whole {kind} key"
        )),
    }
}

/// Why `networkData` is not a cloud-init network-config version 2, if it is not: a YAML
/// mapping with `version: 2`, at the top or under `network:` (cloud-init reads both).
fn network_data_problem(text: &str) -> Option<String> {
    const FIX: &str =
        "give a cloud-init network-config version 2 document, e.g. `version: 2` then `ethernets:`";
    let value: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            // The position only: serde_yaml's message can quote the input.
            let at = e
                .location()
                .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
                .unwrap_or_default();
            return Some(format!("is not valid YAML{at}: {FIX}"));
        }
    };
    let Some(mapping) = value.as_mapping() else {
        return Some(format!("must be a YAML mapping: {FIX}"));
    };
    let root = mapping
        .get("network")
        .and_then(serde_yaml::Value::as_mapping)
        .unwrap_or(mapping);
    match root.get("version").and_then(serde_yaml::Value::as_u64) {
        Some(2) => None,
        Some(_) => Some(format!("only network-config version 2 is supported: {FIX}")),
        None => Some(format!("has no `version: 2`: {FIX}")),
    }
}

/// The transition rules of the [table](rules::RULES) that an update from `old` to `new`
/// breaks (what may not change once hosts are bound), as the apiserver reports them.
pub fn podrequest_update_errors(old: &PodRequest, new: &PodRequest) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for rule in RULES {
        if let Check::PodRequestUpdate(holds) = rule.check
            && !holds(old, new)
        {
            errors.push(rule.error_at(""));
        }
    }
    errors
}

/// Mirrors of the schema's own constraints on a PodRequest (the apiserver words these
/// itself): at least one role, role names DNS labels, counts in range.
fn podrequest_schema_errors(spec: &PodRequestSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if spec.roles.is_empty() {
        errors.push(FieldError::new(
            "spec.roles",
            "list at least one role, e.g. {name: node, count: 3}",
        ));
    }
    for (i, role) in spec.roles.iter().enumerate() {
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
    }
    errors
}

/// The [rules](rules::RULES) a role's label selector breaks: label syntax, and operators
/// with the right number of values. `field` is the selector's path (`spec.roles[0].selector`).
pub fn validate_selector(selector: &LabelSelector, field: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    errors_of(&mut errors, field, selector, |c| match c {
        Check::Selector(holds) => Some(*holds),
        _ => None,
    });
    for (i, req) in selector.match_expressions.iter().flatten().enumerate() {
        errors_of(
            &mut errors,
            &format!("{field}.matchExpressions[{i}]"),
            req,
            |c| match c {
                Check::Requirement(holds) => Some(*holds),
                _ => None,
            },
        );
    }
    errors
}

/// Check a LabHost spec against the [rules](rules::RULES) and the schema's bounds. Empty
/// when valid.
pub fn validate_labhost(spec: &LabHostSpec) -> Vec<FieldError> {
    let mut errors = labhost_schema_errors(spec);
    errors_of(&mut errors, "spec.bmc", &spec.bmc, |c| match c {
        Check::Bmc(holds) => Some(*holds),
        _ => None,
    });
    errors_of(&mut errors, "spec.bmc.tls", &spec.bmc.tls, |c| match c {
        Check::BmcTls(holds) => Some(*holds),
        _ => None,
    });
    errors
}

/// Mirrors of the schema's bounds on a LabHost's declared hardware.
fn labhost_schema_errors(spec: &LabHostSpec) -> Vec<FieldError> {
    let hardware = spec.hardware.as_ref();
    [
        (
            "spec.hardware.cpus",
            "CPUs",
            hardware.and_then(|h| h.cpus),
            MAX_CPUS,
        ),
        (
            "spec.hardware.memoryGiB",
            "GiB",
            hardware.and_then(|h| h.memory_gib),
            MAX_MEMORY_GIB,
        ),
    ]
    .into_iter()
    .filter_map(|(field, unit, value, max)| {
        let value = value.filter(|v| !(1..=max).contains(v))?;
        Some(FieldError::new(
            field,
            format!("{value} {unit} is out of range: declare 1 to {max}"),
        ))
    })
    .collect()
}

/// Check a Lease spec against the [rules](rules::RULES). Empty when valid.
pub fn validate_lease(spec: &LeaseSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    errors_of(&mut errors, "spec", spec, |c| match c {
        Check::LeaseSpec(holds) => Some(*holds),
        _ => None,
    });
    errors_of(&mut errors, "spec.image", &spec.image, |c| match c {
        Check::Image(holds) => Some(*holds),
        _ => None,
    });
    errors
}

/// An `http://` or `https://` URL with a host, as the `url` crate parses it. Stricter than
/// CEL's `isURL` in corners (a port above 65535, an invalid IPv6 host), never looser.
fn is_url_with_host(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    })
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

/// A label name: at most 63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
fn is_label_name(s: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && edge_ok(s.chars().next())
        && edge_ok(s.chars().last())
}

/// A label value: empty or a label name (see [`rules::LABEL_VALUE_RE`]).
fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_label_name(s)
}

/// A label key, `[prefix/]name` (see [`rules::LABEL_KEY_RE`]).
fn is_label_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(key),
    }
}

#[cfg(test)]
mod tests;
