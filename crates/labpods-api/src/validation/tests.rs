use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, Time};

use super::rules::{Kind, rule};
use super::*;
use crate::{AccessSpec, BmcTls, ImageSpec, RoleSpec, SecretReference};
use crate::{LeaseHost, PodRequestPhase, PodRequestStatus, RequestRef};

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
    assert_eq!(errs, [END_AFTER_START.error_at("spec")]);
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
fn duplicate_role_names_are_rejected_at_the_list() {
    let mut spec = request();
    spec.roles.push(RoleSpec::new("node", 2));
    let errs = errors(&spec);
    assert_eq!(fields(&errs), ["spec.roles"]);
    assert!(errs[0].message.contains("unique"), "{}", errs[0]);
}

#[test]
fn total_hosts_are_bounded() {
    let mut spec = request();
    spec.roles = (0..2).map(|i| RoleSpec::new(format!("r{i}"), 64)).collect();
    assert_eq!(errors(&spec), []);
    spec.roles.push(RoleSpec::new("one-more", 1));
    let errs = errors(&spec);
    assert_eq!(fields(&errs), ["spec.roles"]);
    assert!(errs[0].message.contains("128 hosts"), "{}", errs[0]);
    assert_eq!(MAX_HOSTS_PER_REQUEST, 128);
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
            "spec.roles[0].selector.matchLabels",
            "spec.roles[0].selector.matchLabels",
            "spec.roles[0].selector.matchExpressions[0].values",
        ]
    );
    assert!(
        errs[0].message.contains("key of matchLabels"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].message.contains("value of matchLabels"),
        "{}",
        errs[1]
    );
}

#[test]
fn image_url_and_checksum() {
    let mut spec = request();
    spec.image = ImageSpec::new("ftp://images.lab/x.iso").with_checksum("sha256:abc");
    let errs = errors(&spec);
    assert_eq!(fields(&errs), ["spec.image.url", "spec.image.checksum"]);
    assert!(errs[0].message.contains("http://"), "{}", errs[0]);
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
        ..BmcTls::default()
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
fn labhost_hardware_counts_are_bounded_as_the_schema_bounds_them() {
    use crate::v1alpha1::{HardwareFacts, MAX_CPUS, MAX_MEMORY_GIB};
    let with = |cpus, memory_gib| LabHostSpec {
        hardware: Some(HardwareFacts {
            cpus,
            memory_gib,
            arch: None,
        }),
        ..host()
    };
    assert_eq!(
        validate_labhost(&with(Some(MAX_CPUS), Some(MAX_MEMORY_GIB))),
        []
    );
    let errs = validate_labhost(&with(Some(MAX_CPUS + 1), Some(0)));
    assert_eq!(
        fields(&errs),
        ["spec.hardware.cpus", "spec.hardware.memoryGiB"]
    );
    assert!(
        errs[0].message.contains("declare 1 to 16384"),
        "{}",
        errs[0]
    );
    // The schema says the same (the apiserver refuses before any controller looks).
    let crd = crate::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "LabHost")
        .unwrap();
    let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
    for (max, name) in [(MAX_CPUS, "cpus"), (MAX_MEMORY_GIB, "memoryGiB")] {
        let pointer = format!(
            "/openAPIV3Schema/properties/spec/properties/hardware/properties/{name}/maximum"
        );
        assert_eq!(
            schema.pointer(&pointer).and_then(serde_json::Value::as_f64),
            Some(f64::from(max)),
            "{pointer}"
        );
    }
}

#[test]
fn summary_joins_field_and_message() {
    let errs = vec![
        FieldError::new("spec.a", "fix a"),
        FieldError::new("spec.b", "fix b"),
    ];
    assert_eq!(summarize(&errs), "spec.a: fix a; spec.b: fix b");
}

#[test]
fn a_window_wholly_in_the_past_is_invalid_naming_start_and_end() {
    // NOW is 2026-11-24T12:00Z; this booking was for the week before.
    let mut spec = request();
    spec.duration = None;
    spec.start = Some(Time(ts("2026-11-16T09:00:00Z")));
    spec.end = Some(Time(ts("2026-11-18T09:00:00Z")));
    let errs = errors(&spec);
    assert_eq!(fields(&errs), ["spec.end"]);
    for needle in [
        "spec.start 2026-11-16T09:00:00Z",
        "spec.end 2026-11-18T09:00:00Z",
        "wholly in the past",
        "move spec.start and spec.end into the future",
        "remove spec.start",
    ] {
        assert!(errs[0].message.contains(needle), "{needle}: {}", errs[0]);
    }

    // The same with a duration: the start is what to move.
    spec.end = None;
    spec.duration = Some("48h".into());
    let errs = errors(&spec);
    assert_eq!(fields(&errs), ["spec.start"]);
    for needle in [
        "spec.duration 48h",
        "2026-11-18T09:00:00Z",
        "move spec.start",
    ] {
        assert!(errs[0].message.contains(needle), "{needle}: {}", errs[0]);
    }

    // Ending exactly now is over too.
    spec.duration = None;
    spec.end = Some(Time(ts(NOW)));
    assert_eq!(fields(&errors(&spec)), ["spec.end"]);
}

#[test]
fn a_window_that_started_but_has_not_ended_is_valid() {
    let mut spec = request();
    spec.duration = None;
    spec.start = Some(Time(ts("2026-11-23T09:00:00Z")));
    spec.end = Some(Time(ts("2026-11-25T09:00:00Z")));
    assert_eq!(errors(&spec), []);
    spec.end = None;
    spec.duration = Some("1d3h1m".into());
    assert_eq!(errors(&spec), []);
}

#[test]
fn a_past_window_is_reported_once_and_only_when_the_rules_hold() {
    // Broken rules hide the clock checks: fix the spec first, then the dates.
    let mut spec = request();
    spec.start = Some(Time(ts("2026-11-16T09:00:00Z")));
    spec.end = Some(Time(ts("2026-11-10T09:00:00Z")));
    spec.duration = None;
    assert_eq!(errors(&spec), [END_AFTER_START.error_at("spec")]);
}

// The table: every rule has a Rust check that agrees with its intent, reports its own
// message at its own field, and is located where its check variant says.

/// A DNS subdomain of exactly `len` characters: labels of up to 63, joined by dots.
fn dns_name(len: usize) -> String {
    let mut name = String::new();
    while name.len() < len {
        if !name.is_empty() {
            name.push('.');
        }
        let label = (len - name.len()).min(63);
        name.push_str(&"a".repeat(label));
    }
    name
}

fn spec_with(f: impl FnOnce(&mut PodRequestSpec)) -> PodRequestSpec {
    let mut spec = request();
    f(&mut spec);
    spec
}

fn selector_role(f: impl FnOnce(&mut LabelSelector)) -> PodRequestSpec {
    spec_with(|s| {
        let mut selector = LabelSelector::default();
        f(&mut selector);
        s.roles[1].selector = Some(selector);
    })
}

fn requirement_role(r: LabelSelectorRequirement) -> PodRequestSpec {
    selector_role(|sel| sel.match_expressions = Some(vec![r]))
}

fn lease() -> LeaseSpec {
    LeaseSpec::new(
        RequestRef {
            name: "ci-pod".into(),
            uid: "u1".into(),
        },
        [LeaseHost {
            host: "host-01".into(),
            role: "node".into(),
            hostname: None,
        }],
        Time(ts("2026-12-01T09:00:00Z")),
        Time(ts("2026-12-04T09:00:00Z")),
        ImageSpec::new("http://images.lab/x.iso"),
    )
}

fn pod_request(spec: PodRequestSpec, status: Option<PodRequestStatus>) -> PodRequest {
    let mut pr = PodRequest::new("ci-pod", spec);
    pr.status = status;
    pr
}

/// What one rule is checked on.
enum Subject {
    PodRequest(PodRequestSpec),
    Update(Box<(PodRequest, PodRequest)>),
    Lease(LeaseSpec),
    LabHost(LabHostSpec),
}

impl Subject {
    fn errors(&self) -> Vec<FieldError> {
        match self {
            Self::PodRequest(spec) => podrequest_rule_errors(spec),
            Self::Update(pair) => podrequest_update_errors(&pair.0, &pair.1),
            Self::Lease(spec) => validate_lease(spec),
            Self::LabHost(spec) => validate_labhost(spec),
        }
    }
}

/// Per rule: an object that breaks it (with the field it is reported at) and one that
/// keeps it, as close to each other as the rule allows.
fn update(old: PodRequest, new: PodRequest) -> Subject {
    Subject::Update(Box::new((old, new)))
}

fn cases() -> Vec<(&'static str, Subject, &'static str, Subject)> {
    use Subject::{LabHost, Lease, PodRequest};
    let bound = Some(PodRequestStatus {
        lease: Some("ci-pod".into()),
        phase: Some(PodRequestPhase::Scheduled),
        ..PodRequestStatus::default()
    });
    let provisioning = Some(PodRequestStatus {
        lease: Some("ci-pod".into()),
        phase: Some(PodRequestPhase::Provisioning),
        ..PodRequestStatus::default()
    });
    let more_nodes = spec_with(|s| s.roles[1].count = 4);
    let other_image = spec_with(|s| s.image = ImageSpec::new("http://images.lab/other.iso"));
    let t = |s: &str| Some(Time(ts(s)));
    vec![
        (
            "podrequest-length-required",
            PodRequest(spec_with(|s| s.duration = None)),
            "spec.duration",
            PodRequest(spec_with(|s| {
                s.duration = None;
                s.end = t("2026-12-01T00:00:00Z");
            })),
        ),
        (
            "podrequest-duration-xor-end",
            PodRequest(spec_with(|s| s.end = t("2026-12-01T00:00:00Z"))),
            "spec.end",
            PodRequest(request()),
        ),
        (
            "podrequest-duration-positive",
            PodRequest(spec_with(|s| s.duration = Some("0d0h".into()))),
            "spec.duration",
            PodRequest(spec_with(|s| s.duration = Some("0d1h".into()))),
        ),
        (
            "podrequest-end-after-start",
            PodRequest(spec_with(|s| {
                s.duration = None;
                s.start = t("2026-12-01T09:00:00Z");
                s.end = t("2026-12-01T09:00:00Z");
            })),
            "spec.end",
            PodRequest(spec_with(|s| {
                s.duration = None;
                s.start = t("2026-12-01T09:00:00Z");
                s.end = t("2026-12-01T09:00:01Z");
            })),
        ),
        (
            "access-ssh-key-format",
            PodRequest(spec_with(|s| {
                s.access = Some(keys(&[
                    ED25519,
                    &format!("{ED25519}\ncommand=\"sh\" {ED25519}"),
                ]));
            })),
            "spec.access.sshAuthorizedKeys[1]",
            PodRequest(spec_with(|s| s.access = Some(keys(&[ED25519, ECDSA])))),
        ),
        (
            "podrequest-role-names-unique",
            PodRequest(spec_with(|s| s.roles[0].name = "node".into())),
            "spec.roles",
            PodRequest(request()),
        ),
        (
            "podrequest-total-hosts",
            PodRequest(spec_with(|s| {
                s.roles[0].count = 64;
                s.roles[1].count = 64;
                s.roles.push(RoleSpec::new("extra", 1));
            })),
            "spec.roles",
            PodRequest(spec_with(|s| {
                s.roles[0].count = 64;
                s.roles[1].count = 64;
            })),
        ),
        (
            "selector-match-labels-keys",
            PodRequest(selector_role(|sel| {
                sel.match_labels = Some([(format!("{}/rack", dns_name(254)), "r1".into())].into());
            })),
            "spec.roles[1].selector.matchLabels",
            PodRequest(selector_role(|sel| {
                sel.match_labels = Some([(format!("{}/rack", dns_name(253)), "r1".into())].into());
            })),
        ),
        (
            "selector-match-labels-values",
            PodRequest(selector_role(|sel| {
                sel.match_labels = Some([("labpods.dev/rack".into(), "r1-".into())].into());
            })),
            "spec.roles[1].selector.matchLabels",
            PodRequest(selector_role(|sel| {
                sel.match_labels = Some([("labpods.dev/rack".into(), String::new())].into());
            })),
        ),
        (
            "requirement-key",
            PodRequest(requirement_role(requirement(
                "labpods.dev/",
                "Exists",
                None,
            ))),
            "spec.roles[1].selector.matchExpressions[0].key",
            PodRequest(requirement_role(requirement(
                "labpods.dev/r",
                "Exists",
                None,
            ))),
        ),
        (
            "requirement-operator",
            PodRequest(requirement_role(requirement("k", "in", Some(vec!["v"])))),
            "spec.roles[1].selector.matchExpressions[0].operator",
            PodRequest(requirement_role(requirement("k", "In", Some(vec!["v"])))),
        ),
        (
            "requirement-values-required",
            PodRequest(requirement_role(requirement("k", "NotIn", Some(vec![])))),
            "spec.roles[1].selector.matchExpressions[0].values",
            PodRequest(requirement_role(requirement("k", "NotIn", Some(vec![""])))),
        ),
        (
            "requirement-values-forbidden",
            PodRequest(requirement_role(requirement(
                "k",
                "DoesNotExist",
                Some(vec!["v"]),
            ))),
            "spec.roles[1].selector.matchExpressions[0].values",
            PodRequest(requirement_role(requirement(
                "k",
                "DoesNotExist",
                Some(vec![]),
            ))),
        ),
        (
            "requirement-values-syntax",
            PodRequest(requirement_role(requirement(
                "k",
                "In",
                Some(vec!["a", "b c"]),
            ))),
            "spec.roles[1].selector.matchExpressions[0].values",
            PodRequest(requirement_role(requirement(
                "k",
                "In",
                Some(vec!["a", "b.c"]),
            ))),
        ),
        (
            "image-url",
            PodRequest(spec_with(|s| s.image.url = "http://:80/x.iso".into())),
            "spec.image.url",
            PodRequest(spec_with(|s| s.image.url = "http://x/x.iso".into())),
        ),
        (
            "image-url-no-credentials",
            PodRequest(spec_with(|s| {
                s.image.url = "https://tenant:hunter2@images.example/x.iso".into()
            })),
            "spec.image.url",
            PodRequest(spec_with(|s| {
                s.image.url = "https://images.example/x.iso?user=tenant@example".into()
            })),
        ),
        (
            "image-checksum-length",
            PodRequest(spec_with(|s| {
                s.image.checksum = Some(format!("sha512:{}", "a".repeat(64)))
            })),
            "spec.image.checksum",
            PodRequest(spec_with(|s| {
                s.image.checksum = Some(format!("sha512:{}", "a".repeat(128)))
            })),
        ),
        (
            "podrequest-roles-immutable-once-bound",
            update(
                pod_request(request(), bound.clone()),
                pod_request(more_nodes.clone(), bound.clone()),
            ),
            "spec.roles",
            update(pod_request(request(), None), pod_request(more_nodes, None)),
        ),
        (
            "podrequest-image-immutable-once-provisioning",
            update(
                pod_request(request(), provisioning.clone()),
                pod_request(other_image.clone(), provisioning),
            ),
            "spec.image",
            update(
                pod_request(request(), bound.clone()),
                pod_request(other_image, bound),
            ),
        ),
        (
            "lease-end-after-start",
            Lease({
                let mut l = lease();
                l.end = l.start.clone();
                l
            }),
            "spec.end",
            Lease(lease()),
        ),
        (
            "bmc-address-url",
            LabHost({
                let mut h = host();
                h.bmc.address = "https://10.0.0.21:99999".into();
                h
            }),
            "spec.bmc.address",
            LabHost({
                let mut h = host();
                h.bmc.address = "https://10.0.0.21:65535".into();
                h
            }),
        ),
        (
            "bmc-system-id-one-segment",
            LabHost(host().with_system_id("Systems/1")),
            "spec.bmc.systemId",
            LabHost(host().with_system_id("System.Embedded.1")),
        ),
        (
            "bmc-tls-ca-or-insecure",
            LabHost({
                let mut h = host();
                h.bmc.tls = BmcTls {
                    ca_bundle_secret_ref: Some(SecretReference::new("labpods-system", "ca")),
                    insecure_skip_verify: true,
                    ..BmcTls::default()
                };
                h
            }),
            "spec.bmc.tls",
            LabHost({
                let mut h = host();
                h.bmc.tls = BmcTls {
                    ca_bundle_secret_ref: Some(SecretReference::new("labpods-system", "ca")),
                    insecure_skip_verify: false,
                    ..BmcTls::default()
                };
                h
            }),
        ),
        (
            "bmc-tls-fingerprint-format",
            LabHost({
                let mut h = host();
                // 31 pairs: one short.
                h.bmc.tls.certificate_sha256 = Some(vec!["ab"; 31].join(":"));
                h
            }),
            "spec.bmc.tls.certificateSha256",
            LabHost({
                let mut h = host();
                h.bmc.tls.certificate_sha256 = Some(vec!["AB"; 32].join(":"));
                h
            }),
        ),
        (
            "bmc-tls-fingerprint-alone",
            LabHost({
                let mut h = host();
                h.bmc.tls.certificate_sha256 = Some("ab".repeat(32));
                h.bmc.tls.insecure_skip_verify = true;
                h
            }),
            "spec.bmc.tls",
            LabHost({
                let mut h = host();
                h.bmc.tls.certificate_sha256 = Some("ab".repeat(32));
                h
            }),
        ),
    ]
}

#[test]
fn every_rule_rejects_its_violation_with_its_message_and_accepts_the_fix() {
    let cases = cases();
    for rule in RULES {
        assert!(
            cases.iter().any(|(id, ..)| *id == rule.id),
            "rule {} has no case",
            rule.id
        );
    }
    for (id, violating, field, passing) in &cases {
        let rule = rule(id).unwrap_or_else(|| panic!("no rule {id}"));
        let expected = FieldError::new(*field, rule.message);
        assert_eq!(violating.errors(), [expected], "{id}: violating");
        assert_eq!(passing.errors(), [], "{id}: passing");
    }
}

#[test]
fn rule_ids_are_unique_and_messages_name_a_fix() {
    let mut ids: Vec<_> = RULES.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), RULES.len(), "duplicate rule ids");
    for rule in RULES {
        // "what is wrong: what to do", or a rule whose message is its own fix.
        assert!(
            rule.message.contains(':') || rule.message.starts_with("operator must"),
            "{}: {}",
            rule.id,
            rule.message
        );
        assert!(!rule.cel.contains('\n'), "{}", rule.id);
        assert_eq!(
            rule.check.is_transition(),
            rule.cel.contains("oldSelf"),
            "{}: only transition rules read oldSelf",
            rule.id
        );
        for (kind, path) in rule.check.locations() {
            // A rule at the root may only name fields below it.
            assert!(
                !path.is_empty() || rule.field_path.starts_with(".spec"),
                "{} on {} root",
                rule.id,
                kind.as_str()
            );
        }
    }
    assert_eq!(
        rule("lease-end-after-start").map(|r| r.check.locations()),
        Some(&[(Kind::Lease, "spec")][..])
    );
}

#[test]
fn error_paths_join_the_node_and_the_field_path() {
    assert_eq!(LENGTH_REQUIRED.error_at("spec").field, "spec.duration");
    let root = rule("podrequest-roles-immutable-once-bound").expect("rule exists");
    assert_eq!(root.error_at("").field, "spec.roles");
    let tls = rule("bmc-tls-ca-or-insecure").expect("rule exists");
    assert_eq!(tls.error_at("spec.bmc.tls").field, "spec.bmc.tls");
}

#[test]
fn roles_compare_by_name_whatever_the_order() {
    let status = Some(PodRequestStatus {
        lease: Some("ci-pod".into()),
        ..PodRequestStatus::default()
    });
    let old = pod_request(request(), status.clone());
    let mut reordered = request();
    reordered.roles.reverse();
    assert_eq!(
        podrequest_update_errors(&old, &pod_request(reordered, status.clone())),
        []
    );
    let mut fewer = request();
    fewer.roles.pop();
    assert_eq!(
        fields(&podrequest_update_errors(&old, &pod_request(fewer, status))),
        ["spec.roles"]
    );
}

#[test]
fn label_regexes_agree_with_the_rust_checks_on_their_shape() {
    // The CEL regexes are RE2, checked for real by the apiserver tests; here only that they
    // are anchored and bounded (the apiserver's cost estimate needs bounded strings anyway).
    for re in [rules::LABEL_KEY_RE, rules::LABEL_VALUE_RE] {
        assert!(re.starts_with('^') && re.ends_with('$'), "{re}");
        assert!(re.contains("{0,61}"), "{re}");
    }
    assert!(is_label_key(&format!(
        "{}/{}",
        dns_name(253),
        "b".repeat(63)
    )));
    assert!(!is_label_key(&format!("{}/b", dns_name(254))));
    assert!(!is_label_key(&"b".repeat(64)));
    assert!(!is_label_key("a/b/c"));
    assert!(is_label_value("") && is_label_value("x86_64") && !is_label_value("_x"));
}

/// Real keys (`ssh-keygen`), public halves only.
const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO+rffjb9hBUQZSpeLieKhjRVKNNpSnxzW83m7lvfpjV alice@laptop";
const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBLoIAPjH5OE7PFIZwE7YbHGe6NSSAV7QtJTGDGxOklOH/szZW7jxqubr0/8pKNy67Wu6SsOoTNfLJmDys0OD05U= bob";
const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDCE/89F1uMGPTNhZj8J1HqkF7vMwdJwGVJHPi3JnlmgT8TXA5fAcj93pTPYF8qwzOqGzlWufMOf1K9MOk1ZipjG/FzF2OoAxQLVxS61SVS8a5EVHu3lQrnVnSGcQ0ILILap3Y8kxc5wpJzqICWAjTrRtpsBUnyTi0LWhbu+ursBw==";

fn keys(lines: &[&str]) -> AccessSpec {
    AccessSpec {
        ssh_authorized_keys: lines.iter().map(|&l| l.to_owned()).collect(),
        ..AccessSpec::default()
    }
}

#[test]
fn ssh_key_shape_matches_the_cel_regex() {
    let re = regex::Regex::new(rules::SSH_PUBLIC_KEY_RE).expect("RE2 syntax the regex crate reads");
    let body = &ED25519[12..]; // "AAAA... alice@laptop"
    for line in [
        ED25519.to_owned(),
        ECDSA.to_owned(),
        RSA.to_owned(),
        format!("sk-ssh-ed25519@openssh.com {body}"),
        format!("ssh-ed25519 {body} "),
        format!("ssh-ed25519 {body}\r"),
        format!("ssh-ed25519 {body}\nssh-ed25519 {body}"),
        format!("ssh-dss {body}"),
        format!("SSH-ED25519 {body}"),
        format!(" ssh-ed25519 {body}"),
        format!("ssh-ed25519  {body}"),
        "ssh-ed25519".to_owned(),
        format!("ssh- {body}"),
        format!("sk-\n {body}"),
        format!("x-ssh_rsa {body}"),
        "ssh-ed25519 AAAA===".to_owned(),
        "ssh-ed25519 ".to_owned(),
        "ssh-ed25519 ====".to_owned(),
        "ssh-ed25519 AAA===".to_owned(),
        "ssh-ed25519 AA=A".to_owned(),
        "ssh-ed25519 AA-_".to_owned(),
        "command=\"x\" ssh-ed25519 AAAA".to_owned(),
        format!("ssh-ed25519\t{body}"),
        "ssh-ed25519 AAAA\n".to_owned(),
    ] {
        assert_eq!(
            rules::is_ssh_public_key_line(&line),
            re.is_match(&line),
            "{line:?}"
        );
    }
}

#[test]
fn a_key_whose_body_is_not_of_its_type_is_invalid_naming_its_index() {
    let edited = format!("ssh-rsa {}", &ED25519[12..]);
    let dsa = format!("ssh-dss {}", &ED25519[12..]);
    // Whole base64 quanta, so only the key's own framing shows the cut.
    let truncated = &ED25519[..60];
    let not_base64 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5A";
    let spec = spec_with(|s| {
        s.access = Some(keys(&[ED25519, ECDSA, &edited]));
        s.roles[1].access = Some(keys(&[
            RSA,
            truncated,
            not_base64,
            &dsa,
            &format!("{}==", &ED25519[..80]),
        ]));
    });
    let errs = errors(&spec);
    assert_eq!(
        fields(&errs),
        [
            "spec.access.sshAuthorizedKeys[2]",
            "spec.roles[1].access.sshAuthorizedKeys[1]",
            "spec.roles[1].access.sshAuthorizedKeys[2]",
            "spec.roles[1].access.sshAuthorizedKeys[3]",
            "spec.roles[1].access.sshAuthorizedKeys[4]",
        ]
    );
    assert!(
        errs[3].message.contains(
            "key type is not one labpods accepts (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256"
        ),
        "{}",
        errs[3]
    );
    assert!(errs[0].message.contains("not a ssh-rsa key"), "{}", errs[0]);
    assert!(errs[1].message.contains("cut short"), "{}", errs[1]);
    assert!(errs[2].message.contains("not valid base64"), "{}", errs[2]);
    for e in &errs {
        assert!(e.message.contains("paste the whole line"), "{e}");
        assert!(!e.message.contains("AAAA"), "the key is not quoted: {e}");
    }
}

#[test]
fn network_data_must_be_a_version_2_mapping() {
    let with_network = |text: &str| {
        spec_with(|s| {
            s.roles[0].access = Some(AccessSpec {
                network_data: Some(text.to_owned()),
                ..AccessSpec::default()
            });
        })
    };
    for good in [
        "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n",
        "network:\n  version: 2\n  ethernets: {}\n",
    ] {
        assert_eq!(errors(&with_network(good)), [], "{good}");
    }
    for (bad, says) in [
        ("version: 1\nconfig: []\n", "only network-config version 2"),
        ("ethernets: {}\n", "has no `version: 2`"),
        ("- version: 2\n", "must be a YAML mapping"),
        (
            "version: 2\n  ethernets: [secret-ish\n",
            "is not valid YAML at line",
        ),
    ] {
        let errs = errors(&with_network(bad));
        assert_eq!(fields(&errs), ["spec.roles[0].access.networkData"], "{bad}");
        assert!(errs[0].message.contains(says), "{bad}: {}", errs[0]);
        assert!(!errs[0].message.contains("secret-ish"), "{}", errs[0]);
    }
}
