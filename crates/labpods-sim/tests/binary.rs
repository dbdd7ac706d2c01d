//! The `labpods-sim` binary as e2e tests use it: a separate process, steered over the admin
//! endpoint, with LabHost manifests for the fleet.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};

/// Kills the simulator when the test ends, whatever happens.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_serves_a_fleet_steered_over_the_admin_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("labhosts.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_labpods-sim"))
        .args([
            "--hosts",
            "3",
            "--port-base",
            "0",
            "--boot-time",
            "100ms",
            "--power-delay",
            "10ms",
        ])
        .arg("--emit-labhosts")
        .arg(&manifests)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let sim = Running(child);
    // Read what it prints until the manifests are written.
    let mut admin = None;
    let mut host3 = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(url) = line.trim().strip_prefix("admin: ") {
            admin = Some(url.trim_end_matches("admin/hosts/{i}").to_owned());
        }
        if let Some(url) = line.trim().strip_prefix("host 3: ") {
            host3 = Some(url.to_owned());
        }
        if line.trim().starts_with("LabHosts:") {
            break;
        }
    }
    let (admin, host3) = (
        admin.expect("the binary prints its admin URL"),
        host3.expect("and host 3's endpoint"),
    );

    let yaml = std::fs::read_to_string(&manifests).unwrap();
    assert!(
        yaml.contains(&format!("address: \"{}\"", host3.trim_end_matches('/'))),
        "{yaml}"
    );

    let c = support::client();
    let reset = c
        .post(format!(
            "{host3}redfish/v1/Systems/1/Actions/ComputerSystem.Reset"
        ))
        .basic_auth("admin", Some("labpods"))
        .json(&json!({ "ResetType": "On" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    let shown: Value = c
        .get(format!("{admin}admin/hosts/3"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["history"][1]["event"], "boot", "{shown}");
    assert_eq!(shown["history"][1]["source"], "Hdd");

    let faults = c
        .post(format!("{admin}admin/hosts/3/faults"))
        .json(&json!({ "errorRate": 1.0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(faults.status(), StatusCode::OK);
    let failing = c
        .get(format!("{host3}redfish/v1/Systems/1"))
        .basic_auth("admin", Some("labpods"))
        .send()
        .await
        .unwrap();
    assert_eq!(failing.status(), StatusCode::INTERNAL_SERVER_ERROR);
    drop(sim);
}
