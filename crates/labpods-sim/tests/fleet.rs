//! Fleet-level behaviour: scale, fixed ports, the LabHost manifests.

#![allow(clippy::unwrap_used)]

mod support;

use labpods_api::validation::validate_labhost;
use labpods_api::{LABEL_ARCH, LABEL_PROFILE, LABEL_RACK, LabHost};
use labpods_sim::labhosts::{self, Manifests};
use labpods_sim::{SimConfig, SimError};
use reqwest::StatusCode;
use support::*;

#[tokio::test]
async fn ten_thousand_bmcs_fit_in_one_process() {
    let sim = start(SimConfig {
        hosts: 10_000,
        ..SimConfig::default()
    })
    .await;
    let c = client();
    for i in [1, 5_000, 10_000] {
        assert_eq!(
            reset(&c, &sim, i, "On").await,
            reqwest::StatusCode::NO_CONTENT,
            "host {i}"
        );
        assert_eq!(sim.host(i).boots().len(), 1);
    }
    assert!(sim.host(9_999).history().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn port_base_places_host_i_on_port_base_plus_i() {
    // A fixed base can be taken by any other process's connection: start from a port the
    // kernel just handed out (host 1 takes it), and try another base on a clash.
    let (sim, base) = 'found: {
        for _ in 0..20 {
            let free = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            let base = free.saturating_sub(1).min(u16::MAX - 3);
            let config = SimConfig {
                hosts: 3,
                port_base: base,
                ..SimConfig::default()
            };
            if let Ok(sim) = labpods_sim::Sim::start(config).await {
                break 'found (sim, base);
            }
        }
        panic!("no three free consecutive ports in 20 tries");
    };
    for i in 1..=3 {
        assert_eq!(
            sim.endpoint(i).port(),
            Some(base + u16::try_from(i).unwrap())
        );
    }
    let c = client();
    let root = c
        .get(sim.endpoint(3).join("/redfish/v1/").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), StatusCode::OK);
    sim.shutdown().await;
}

#[tokio::test]
async fn impossible_fleets_are_refused() {
    let none = labpods_sim::Sim::start(SimConfig {
        hosts: 0,
        ..SimConfig::default()
    })
    .await;
    assert!(matches!(none, Err(SimError::NoHosts)));
    let past_the_end = labpods_sim::Sim::start(SimConfig {
        hosts: 10,
        port_base: 65_530,
        ..SimConfig::default()
    })
    .await;
    assert!(matches!(past_the_end, Err(SimError::PortRange { .. })));
}

/// Splits a multi-document YAML stream into documents.
fn documents(yaml: &str) -> Vec<serde_yaml::Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

#[tokio::test]
async fn emitted_labhosts_are_valid_labhosts_pointing_at_the_fleet() {
    let sim = start(SimConfig {
        hosts: 41,
        ..SimConfig::default()
    })
    .await;
    let yaml = labhosts::render(&sim, &Manifests::default());
    let docs = documents(&yaml);
    assert_eq!(docs.len(), 42);
    assert_eq!(docs[0]["kind"], "Secret");
    assert_eq!(docs[0]["stringData"]["password"], "labpods");
    let hosts: Vec<LabHost> = docs[1..]
        .iter()
        .map(|d| serde_yaml::from_value(d.clone()).unwrap())
        .collect();
    for (i, host) in hosts.iter().enumerate() {
        let errors = validate_labhost(&host.spec);
        assert!(errors.is_empty(), "{:?}: {errors:?}", host.metadata.name);
        assert_eq!(
            host.spec.bmc.address,
            sim.endpoint(i + 1).as_str().trim_end_matches('/')
        );
        assert_eq!(host.spec.bmc.system_id.as_deref(), Some("1"));
        assert_eq!(
            host.spec.bmc.credentials_secret_ref.name,
            docs[0]["metadata"]["name"].as_str().unwrap()
        );
    }
    let last = &hosts[40];
    assert_eq!(last.metadata.name.as_deref(), Some("sim-00041"));
    let labels = last.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[LABEL_RACK], "r2");
    assert_eq!(labels[LABEL_ARCH], "x86_64");
    assert_eq!(labels[LABEL_PROFILE], last.spec.profile);
    sim.shutdown().await;
}

#[tokio::test]
async fn emitted_labhosts_of_a_tls_fleet_carry_the_ca() {
    let sim = start(SimConfig {
        hosts: 2,
        tls: true,
        ..SimConfig::default()
    })
    .await;
    let docs = documents(&labhosts::render(&sim, &Manifests::default()));
    assert_eq!(
        docs[1]["stringData"]["ca.crt"],
        sim.ca_pem().unwrap().as_str()
    );
    let host: LabHost = serde_yaml::from_value(docs[2].clone()).unwrap();
    assert!(host.spec.bmc.address.starts_with("https://"));
    let ca_ref = host.spec.bmc.tls.ca_bundle_secret_ref.unwrap();
    assert_eq!(ca_ref.name, docs[1]["metadata"]["name"].as_str().unwrap());
    sim.shutdown().await;
}
