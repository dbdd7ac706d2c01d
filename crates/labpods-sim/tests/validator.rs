//! DMTF's redfish-service-validator against one simulated BMC, with DMTF's schemas kept in
//! tests/data/redfish/csdl: every resource the simulator serves must validate with no failures.
//!
//! Needs the project venv: `tests/support/python-venv.sh` (or set LABPODS_VENV).

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use labpods_sim::SimConfig;
use support::*;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

fn venv() -> PathBuf {
    let venv = std::env::var_os("LABPODS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
            cache.join("labpods/venv")
        });
    let validator = venv.join("bin/rf_service_validator");
    assert!(
        validator.is_file(),
        "{} is missing: create the venv with `tests/support/python-venv.sh` (needs python3 and python3-venv), or point LABPODS_VENV at one with redfish-service-validator installed",
        validator.display()
    );
    venv
}

fn dmtf_schemas() -> PathBuf {
    repo_root().join("tests/data/redfish/csdl")
}

/// The validator's closing table: `| PASS | WARN | FAIL | NOT TESTED |` then a row of counts.
fn summary(output: &str) -> Option<[u64; 4]> {
    let mut lines = output
        .lines()
        .skip_while(|l| !l.contains("|     PASS     |"));
    let counts: Vec<u64> = lines
        .find(|l| l.trim_start().starts_with('|') && l.chars().any(|c| c.is_ascii_digit()))?
        .split('|')
        .filter_map(|cell| cell.trim().parse().ok())
        .collect();
    counts.try_into().ok()
}

/// What the simulator serves; each must have been validated.
const SERVED: [&str; 13] = [
    "/redfish/v1/",
    "/redfish/v1/Systems",
    "/redfish/v1/Systems/1",
    "/redfish/v1/Systems/1/EthernetInterfaces/1",
    "/redfish/v1/Systems/1/Storage/1/Drives/1",
    "/redfish/v1/Managers/1",
    "/redfish/v1/Managers/1/VirtualMedia",
    "/redfish/v1/Managers/1/VirtualMedia/Cd",
    "/redfish/v1/Managers/1/VirtualMedia/UsbStick",
    "/redfish/v1/Chassis/1",
    "/redfish/v1/SessionService",
    "/redfish/v1/SessionService/Sessions",
    "/redfish/v1/SessionService/Sessions/1",
];

#[tokio::test(flavor = "multi_thread")]
async fn dmtf_validator_passes_against_a_simulated_bmc() {
    let venv = venv();
    let csdl = dmtf_schemas();
    let sim = start(SimConfig {
        hosts: 1,
        ..SimConfig::default()
    })
    .await;
    let logs = tempfile::tempdir().unwrap();
    let endpoint = sim.endpoint(1).as_str().trim_end_matches('/').to_owned();
    let logdir = logs.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(venv.join("bin/rf_service_validator"))
            .args([
                "--ip",
                &endpoint,
                "--user",
                "admin",
                "--password",
                "labpods",
                "--authtype",
                "Session",
            ])
            .arg("--schema_directory")
            .arg(&csdl)
            .arg("--logdir")
            .arg(&logdir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let Some([pass, warn, fail, _not_tested]) = summary(&text) else {
        panic!(
            "no summary table in the validator's output (exit {:?}):\n{text}",
            output.status.code()
        );
    };
    let problems: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("FAIL -") || l.contains("ERROR"))
        .collect();
    assert_eq!(
        fail,
        0,
        "the validator found {fail} failures:\n{}\n--- full output ---\n{text}",
        problems.join("\n")
    );
    assert!(
        output.status.success(),
        "the validator exited with {:?}:\n{text}",
        output.status.code()
    );
    assert!(pass > 0, "the validator checked nothing:\n{text}");
    for path in SERVED {
        assert!(
            text.contains(&format!("Validating {path}...")),
            "{path} was not validated:\n{text}"
        );
    }
    // Known warnings, all "deprecated": Manager.VirtualMedia and its three URIs, and the Drive URI
    // under Storage. Current schemas prefer them under Systems/Chassis; most BMCs in the field
    // (and the operator's client) use these.
    assert!(
        warn <= 5,
        "{warn} warnings (expected only the deprecated-URI ones):\n{text}"
    );
    // The session the validator opened was logged out again: no leak.
    assert_eq!(
        sim.host(1).state().open_sessions,
        0,
        "{:?}",
        sim.host(1).history()
    );
    sim.shutdown().await;
}
