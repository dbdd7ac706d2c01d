use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, Time};

use super::*;
use crate::{BmcTls, ImageSpec, RoleSpec, SecretReference};

const NOW: &str = "2026-11-24T12:00:00Z";

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamps are RFC 3339")
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

fn request() -> PodRequestSpec {
    PodRequestSpec::new(
        [RoleSpec::new("jumphost", 1), RoleSpec::new("node", 3)],
        ImageSpec::new("http://images.lab/ubuntu.iso"),
        "72h",
    )
}

fn errors(spec: &PodRequestSpec) -> Vec<FieldError> {
    validate_podrequest(spec, ts(NOW), days(14))
}

fn fields(errs: &[FieldError]) -> Vec<&str> {
    errs.iter().map(|e| e.field.as_str()).collect()
}

#[test]
fn valid_request_has_no_errors_and_window_starts_now() {
    assert_eq!(errors(&request()), []);
    let w = effective_window(&request(), ts(NOW)).expect("valid window");
    assert_eq!(w.start, ts(NOW));
    assert_eq!(w.end, ts("2026-11-27T12:00:00Z"));
}

#[test]
fn window_from_start_and_end() {
    let mut spec = request();
    spec.duration = None;
    spec.start = Some(Time(ts("2026-12-01T09:00:00Z")));
    spec.end = Some(Time(ts("2026-12-03T09:00:00Z")));
    let w = effective_window(&spec, ts(NOW)).expect("valid window");
    assert_eq!(
        (w.start, w.end),
        (ts("2026-12-01T09:00:00Z"), ts("2026-12-03T09:00:00Z"))
    );
    assert_eq!(w.length(), days(2));
}

#[test]
fn duration_and_end_both_set_is_rejected() {
    let mut spec = request();
    spec.end = Some(Time(ts("2026-12-03T09:00:00Z")));
    let errs = errors(&spec);
    assert_eq!(fields(&errs), ["spec.end"]);
    assert!(errs[0].message.contains("not both"), "{}", errs[0]);
}

#[test]
fn neither_duration_nor_end_is_rejected() {
    let mut spec = request();
    spec.duration = None;
    let errs = errors(&spec);
    assert_eq!(fields(&errs), ["spec.duration"]);
    assert!(errs[0].message.contains("72h"), "{}", errs[0]);
}

#[test]
fn end_before_start_is_rejected() {
    let mut spec = request();
    spec.duration = None;
    spec.start = Some(Time(ts("2026-12-03T09:00:00Z")));
    spec.end = Some(Time(ts("2026-12-01T09:00:00Z")));
    let errs = errors(&spec);
    assert_eq!(fields(&errs), ["spec.end"]);
    assert!(
        errs[0].message.contains("not after spec.start"),
        "{}",
        errs[0]
    );
}

#[test]
fn end_in_the_past_without_start_is_rejected() {
    let mut spec = request();
    spec.duration = None;
    spec.end = Some(Time(ts("2026-11-01T00:00:00Z")));
    let errs = errors(&spec);
    assert_eq!(fields(&errs), ["spec.end"]);
    assert!(errs[0].message.contains("not after now"), "{}", errs[0]);
}

#[test]
fn booking_longer_than_policy_is_rejected_with_both_lengths() {
    let mut spec = request();
    spec.duration = Some("15d".into());
    let errs = errors(&spec);
    assert_eq!(fields(&errs), ["spec.duration"]);
    assert!(
        errs[0].message.contains("15d") && errs[0].message.contains("14d"),
        "{}",
        errs[0]
    );
    spec.duration = Some("14d".into());
    assert_eq!(errors(&spec), []);
}

#[test]
fn durations_parse_and_render() {
    assert_eq!(parse_duration("72h"), Some(days(3)));
    assert_eq!(parse_duration("3d"), Some(days(3)));
    assert_eq!(parse_duration("90m"), Some(SignedDuration::from_mins(90)));
    assert_eq!(
        parse_duration("1d12h30m"),
        Some(SignedDuration::from_mins(36 * 60 + 30))
    );
    for bad in [
        "",
        "0h",
        "h",
        "12",
        "3w",
        "1h1d",
        "1h1h",
        "-1h",
        "99999999999999999999d",
    ] {
        assert_eq!(parse_duration(bad), None, "{bad:?}");
    }
    assert_eq!(format_duration(SignedDuration::from_mins(90)), "1h30m");
    assert_eq!(format_duration(days(3)), "3d");
}

#[test]
fn malformed_duration_is_rejected() {
    let mut spec = request();
    spec.duration = Some("1h1d".into());
    assert_eq!(fields(&errors(&spec)), ["spec.duration"]);
}

#[test]
fn duplicate_role_names_are_rejected_at_the_second_entry() {
    let mut spec = request();
    spec.roles.push(RoleSpec::new("node", 2));
    assert_eq!(fields(&errors(&spec)), ["spec.roles[2].name"]);
}

#[test]
fn role_count_and_name_rules() {
    let mut spec = request();
    spec.roles[1].count = 0;
    spec.roles[0].name = "Jump_Host".into();
    let errs = errors(&spec);
    assert_eq!(fields(&errs), ["spec.roles[0].name", "spec.roles[1].count"]);
    assert!(errs[1].message.contains("1 to 64"), "{}", errs[1]);
}

#[test]
fn no_roles_is_rejected() {
    let mut spec = request();
    spec.roles.clear();
    assert_eq!(fields(&errors(&spec)), ["spec.roles"]);
}

fn requirement(key: &str, op: &str, values: Option<Vec<&str>>) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: values.map(|v| v.into_iter().map(String::from).collect()),
    }
}

#[test]
fn selector_operators_need_the_right_values() {
    let mut spec = request();
    spec.roles[1] = RoleSpec::new("node", 3).with_match_labels([("labpods.dev/rack", "r1")]);
    spec.roles[1]
        .selector
        .as_mut()
        .expect("with_match_labels sets a selector")
        .match_expressions = Some(vec![
        requirement(
            "labpods.dev/profile",
            "In",
            Some(vec!["x86-small", "x86-large"]),
        ),
        requirement("labpods.dev/arch", "In", None),
        requirement("labpods.dev/lab", "Exists", Some(vec!["x"])),
        requirement("labpods.dev/lab", "DoesNotExist", Some(vec![])),
        requirement("labpods.dev/lab", "Equals", None),
    ]);
    let errs = errors(&spec);
    assert_eq!(
        fields(&errs),
        [
            "spec.roles[1].selector.matchExpressions[1].values",
            "spec.roles[1].selector.matchExpressions[2].values",
            "spec.roles[1].selector.matchExpressions[4].operator",
        ]
    );
}

#[test]
fn selector_label_syntax() {
    let mut spec = request();
    spec.roles[0] = RoleSpec::new("jumphost", 1).with_match_labels([
        ("labpods.dev/rack", "r1"),
        ("bad key!", "v"),
        ("Bad_Prefix/x", "v"),
        ("ok", "-bad-value"),
        ("empty-value-ok", ""),
    ]);
    spec.roles[0]
        .selector
        .as_mut()
        .expect("with_match_labels sets a selector")
        .match_expressions = Some(vec![requirement(
        "labpods.dev/rack",
        "NotIn",
        Some(vec!["r2", "no spaces"]),
    )]);
    let errs = errors(&spec);
    assert_eq!(
        fields(&errs),
        [
            "spec.roles[0].selector.matchLabels[Bad_Prefix/x]",
            "spec.roles[0].selector.matchLabels[bad key!]",
            "spec.roles[0].selector.matchLabels[ok]",
            "spec.roles[0].selector.matchExpressions[0].values[1]",
        ]
    );
}

#[test]
fn image_url_and_checksum() {
    let mut spec = request();
    spec.image = ImageSpec::new("ftp://images.lab/x.iso").with_checksum("sha256:abc");
    let errs = errors(&spec);
    assert_eq!(fields(&errs), ["spec.image.url", "spec.image.checksum"]);
    assert!(errs[0].message.contains("ftp"), "{}", errs[0]);
    spec.image = ImageSpec::new("https://images.lab/x.iso")
        .with_checksum(format!("sha256:{}", "a".repeat(64)));
    assert_eq!(errors(&spec), []);
    spec.image.checksum = Some(format!("md5:{}", "a".repeat(32)));
    assert_eq!(fields(&errors(&spec)), ["spec.image.checksum"]);
}

fn host() -> LabHostSpec {
    LabHostSpec::new(
        "https://10.0.0.21",
        "x86-small",
        SecretReference::new("labpods-system", "bmc"),
    )
}

#[test]
fn labhost_valid() {
    assert_eq!(validate_labhost(&host()), []);
    assert_eq!(validate_labhost(&host().with_system_id("1")), []);
}

#[test]
fn labhost_tls_contradiction() {
    let mut spec = host();
    spec.bmc.tls = BmcTls {
        ca_bundle_secret_ref: Some(SecretReference::new("labpods-system", "bmc-ca")),
        insecure_skip_verify: true,
    };
    let errs = validate_labhost(&spec);
    assert_eq!(fields(&errs), ["spec.bmc.tls"]);
    assert!(
        errs[0].message.contains("insecureSkipVerify to false"),
        "{}",
        errs[0]
    );
}

#[test]
fn labhost_address_and_system_id() {
    let mut spec = host().with_system_id("Systems/1");
    spec.bmc.address = "https://".into();
    assert_eq!(
        fields(&validate_labhost(&spec)),
        ["spec.bmc.address", "spec.bmc.systemId"]
    );
}

#[test]
fn summary_joins_field_and_message() {
    let errs = vec![
        FieldError::new("spec.a", "fix a"),
        FieldError::new("spec.b", "fix b"),
    ];
    assert_eq!(summarize(&errs), "spec.a: fix a; spec.b: fix b");
}
