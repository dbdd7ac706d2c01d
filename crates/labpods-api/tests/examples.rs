//! The manifests in `examples/` parse as our types and pass the controllers' validation.

use std::path::{Path, PathBuf};

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use labpods_api::validation::{validate_labhost, validate_podrequest};
use labpods_api::{LABEL_ARCH, LABEL_LAB, LABEL_PROFILE, LABEL_RACK, LabHost, PodRequest};
use serde::Deserialize;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Every YAML document in `file` whose kind is `kind`, as `T`.
fn documents<T: for<'de> Deserialize<'de>>(file: &str, kind: &str) -> Vec<T> {
    let path = examples().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}")))
        .filter(|v| v.get("kind").and_then(|k| k.as_str()) == Some(kind))
        .map(|v| serde_yaml::from_value(v).unwrap_or_else(|e| panic!("{file}: not a {kind}: {e}")))
        .collect()
}

#[test]
fn lab_has_eight_valid_hosts_on_the_simulator_ports() {
    let hosts: Vec<LabHost> = documents("lab/02-labhosts.yaml", "LabHost");
    assert_eq!(hosts.len(), 8);
    for (i, host) in hosts.iter().enumerate() {
        let n = i + 1;
        let name = host.metadata.name.as_deref().unwrap_or_default();
        assert_eq!(name, format!("host-{n:02}"));
        assert_eq!(validate_labhost(&host.spec), [], "{name}");
        assert_eq!(
            host.spec.bmc.address,
            format!("http://127.0.0.1:{}", 9100 + n),
            "{name}"
        );
        assert_eq!(host.spec.bmc.system_id.as_deref(), Some("1"), "{name}");
        assert_eq!(
            host.spec.bmc.credentials_secret_ref.namespace,
            "labpods-system"
        );
        let labels = host.metadata.labels.clone().unwrap_or_default();
        for key in [LABEL_LAB, LABEL_RACK, LABEL_PROFILE, LABEL_ARCH] {
            assert!(labels.contains_key(key), "{name} lacks label {key}");
        }
        assert_eq!(
            labels[LABEL_PROFILE], host.spec.profile,
            "{name}: profile label and spec differ"
        );
        assert_eq!(
            labels[LABEL_RACK],
            if n <= 4 { "r1" } else { "r2" },
            "{name}"
        );
    }
}

#[test]
fn credentials_secret_matches_the_hosts_reference() {
    let secrets: Vec<serde_yaml::Value> = documents("lab/01-bmc-credentials.yaml", "Secret");
    let data = &secrets[0]["stringData"];
    assert_eq!(
        (data["username"].as_str(), data["password"].as_str()),
        (Some("admin"), Some("labpods"))
    );
    assert_eq!(
        secrets[0]["metadata"]["name"].as_str(),
        Some("bmc-credentials")
    );
}

#[test]
fn podrequests_are_valid_before_the_workshop() {
    let now: Timestamp = "2026-11-24T12:00:00Z".parse().expect("fixed instant");
    let max = SignedDuration::from_hours(14 * 24);
    let now_pod: Vec<PodRequest> = documents("podrequests/pod-now.yaml", "PodRequest");
    let later: Vec<PodRequest> = documents("podrequests/pod-tomorrow.yaml", "PodRequest");
    for pr in now_pod.iter().chain(&later) {
        assert_eq!(pr.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(
            validate_podrequest(&pr.spec, now, max),
            [],
            "{:?}",
            pr.metadata.name
        );
    }
    let roles: Vec<_> = now_pod[0]
        .spec
        .roles
        .iter()
        .map(|r| (r.name.as_str(), r.count))
        .collect();
    assert_eq!(roles, [("jumphost", 1), ("node", 3)]);
    assert_eq!(now_pod[0].spec.duration.as_deref(), Some("72h"));
    assert!(now_pod[0].spec.start.is_none());
    assert_eq!(later[0].spec.host_count(), 2);
    assert!(later[0].spec.start.is_some());
}

/// The shell command `pod-tomorrow.yaml` documents (after `#   `), without the
/// `| kubectl apply -f -` that sends it to a cluster.
fn documented_command(file: &str) -> String {
    let text = std::fs::read_to_string(examples().join(file)).expect("example readable");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("#   sed "))
        .unwrap_or_else(|| panic!("{file} documents no sed command"));
    let command = line
        .strip_suffix(" | kubectl apply -f -")
        .unwrap_or_else(|| panic!("{file}: the command does not end in kubectl apply: {line}"));
    format!("sed {command}")
}

#[test]
fn pod_tomorrow_rebooked_by_its_documented_command_is_valid_today() {
    let command = documented_command("podrequests/pod-tomorrow.yaml");
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .current_dir(examples().join(".."))
        .output()
        .expect("sh runs");
    assert!(
        output.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pr: PodRequest = serde_yaml::from_slice(&output.stdout).expect("still a PodRequest");

    let now = Timestamp::now();
    let today = now.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC).date();
    let at_nine = |days: i64| -> Timestamp {
        today
            .checked_add(k8s_openapi::jiff::Span::new().days(days))
            .expect("a date")
            .at(9, 0, 0, 0)
            .to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC)
            .expect("a UTC time")
            .timestamp()
    };
    assert_eq!(pr.spec.start.as_ref().map(|t| t.0), Some(at_nine(1)));
    assert_eq!(pr.spec.end.as_ref().map(|t| t.0), Some(at_nine(3)));
    assert_eq!(
        validate_podrequest(&pr.spec, now, SignedDuration::from_hours(14 * 24)),
        [],
        "{command}"
    );
    // Everything but the dates is the file's.
    let mut original: Vec<PodRequest> = documents("podrequests/pod-tomorrow.yaml", "PodRequest");
    let mut original = original.remove(0);
    original.spec.start.clone_from(&pr.spec.start);
    original.spec.end.clone_from(&pr.spec.end);
    assert_eq!(original, pr);
}
