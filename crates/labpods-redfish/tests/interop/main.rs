//! The Redfish client against peers nobody here wrote: sushy-tools' emulator (fake driver;
//! plain HTTP, then TLS with basic auth) and sushy-static serving DMTF mockups. The same
//! suite (suite.rs) runs against each; peers that are read-only get the read-only part.
//! Needs the Python venv: tests/support/python-venv.sh (the tests fail, not skip, without it).

// A failed unwrap is a failed test, with the error in the message.
#![allow(clippy::unwrap_used)]

mod hostile;
mod sim_only;
mod suite;
#[path = "../support/mod.rs"]
mod support;

use labpods_redfish::{
    BmcTarget, Credentials, Error, Fingerprint, PowerState, RedfishConnector, SettingNames,
    TlsOptions,
};
use suite::{Expected, Peer};
use support::certs::{issue_loopback_cert, self_signed_bmc_cert};
use support::image_server::ImageServer;
use support::python::Server;
use support::sushy::{self, FakeSystem, Protection};
use url::Url;

const USER: &str = "admin";
const PASSWORD: &str = "labpods-test-pw";

static SYSTEMS: [FakeSystem; 2] = [
    FakeSystem {
        uuid: "a7c2e0a4-3f51-4e43-9b2a-000000000001",
        name: "node-1",
        mac: "52:54:00:aa:00:01",
    },
    FakeSystem {
        uuid: "a7c2e0a4-3f51-4e43-9b2a-000000000002",
        name: "node-2",
        mac: "52:54:00:aa:00:02",
    },
];

fn sushy_expected(system: &'static FakeSystem) -> Expected {
    Expected {
        system_id: system.uuid,
        manufacturer: Some("Sushy Emulator"),
        nic_macs: std::slice::from_ref(&system.mac),
        power_state: Some(PowerState::Off),
        ..Expected::default()
    }
}

/// sushy-emulator over plain HTTP, no auth; the second fake system (so selection by id matters).
async fn sushy_plain() -> (Server, Peer) {
    let server = sushy::start_emulator(&SYSTEMS, &Protection::default()).await;
    let system = &SYSTEMS[1];
    let peer = Peer {
        name: "sushy-emulator (http)",
        target: BmcTarget {
            endpoint: Url::parse(&format!("http://127.0.0.1:{}", server.port)).unwrap(),
            system_id: Some(system.uuid.into()),
            credentials: Credentials::new(USER, PASSWORD),
            tls: TlsOptions::default(),
        },
        password: PASSWORD,
        expect: sushy_expected(system),
    };
    (server, peer)
}

/// sushy-emulator over TLS (our CA) with basic auth (bcrypt htpasswd).
async fn sushy_tls() -> (Server, Peer, support::certs::TestPki) {
    let pki = issue_loopback_cert();
    let protection = Protection {
        tls: Some((pki.cert_path.clone(), pki.key_path.clone())),
        basic_auth: Some((USER.into(), PASSWORD.into())),
    };
    let server = sushy::start_emulator(&SYSTEMS, &protection).await;
    let system = &SYSTEMS[0];
    let peer = Peer {
        name: "sushy-emulator (https, basic auth)",
        target: BmcTarget {
            endpoint: Url::parse(&format!("https://127.0.0.1:{}/", server.port)).unwrap(),
            system_id: Some(system.uuid.into()),
            credentials: Credentials::new(USER, PASSWORD),
            tls: TlsOptions {
                ca_pem: Some(pki.ca_pem.clone().into_bytes()),
                ..TlsOptions::default()
            },
        },
        password: PASSWORD,
        expect: sushy_expected(system),
    };
    (server, peer, pki)
}

async fn sushy_static(mockup: &str, expect: Expected) -> (Server, Peer) {
    let server = sushy::start_static(&sushy::mockup(mockup)).await;
    let peer = Peer {
        name: "sushy-static",
        target: BmcTarget {
            endpoint: Url::parse(&format!("http://127.0.0.1:{}", server.port)).unwrap(),
            // One system in the tree: found without an id.
            system_id: None,
            credentials: Credentials::new(USER, PASSWORD),
            tls: TlsOptions::default(),
        },
        password: PASSWORD,
        expect,
    };
    (server, peer)
}

fn rackmount1() -> Expected {
    Expected {
        system_id: "437XR1138R2",
        manufacturer: Some("Contoso"),
        model: Some("3500"),
        serial_number: Some("437XR1138R2"),
        cpu_count: Some(2),
        cpu_model: Some("Multi-Core Intel(R) Xeon(R) processor 7xxx Series"),
        memory_gib: Some(96.0),
        // Four interfaces, one a VLAN of another: three distinct current MACs.
        nic_macs: &[
            "12:44:6a:3b:04:11",
            "aa:bb:cc:dd:ee:00",
            "aa:bb:cc:dd:ee:fe",
        ],
        // SimpleStorage: two present devices, two absent bays.
        disks: 2,
        power_state: Some(PowerState::On),
        boot_progress: Some("OSRunning"),
        reports_boot_once: true,
    }
}

fn tower() -> Expected {
    Expected {
        system_id: "437XR1238R2",
        manufacturer: Some("Contoso"),
        model: Some("3500"),
        serial_number: Some("437XR1238R2"),
        cpu_count: Some(8),
        cpu_model: Some("Intel(R) Xeon(R) Gold 5218 2.3GHz"),
        memory_gib: Some(1024.0),
        nic_macs: &["fb:aa:1d:4e:d0:7a", "fb:aa:1d:4e:d0:7c"],
        // Storage with Drives: ten present, eight absent bays.
        disks: 10,
        power_state: Some(PowerState::On),
        boot_progress: None,
        reports_boot_once: false,
    }
}

// --- labpods-sim ---

/// What labpods-sim serves for host `index` (see its resources module).
fn sim_expected(index: usize) -> Expected {
    // MACs are 02:1a:<index, 3 bytes>:<nic>; these tests use host 1 and 2 of small fleets.
    const MACS: [&[&str]; 2] = [
        &["02:1a:00:00:01:01", "02:1a:00:00:01:02"],
        &["02:1a:00:00:02:01", "02:1a:00:00:02:02"],
    ];
    const SERIALS: [&str; 2] = ["LPSIM000001", "LPSIM000002"];
    Expected {
        system_id: labpods_sim::SYSTEM_ID,
        manufacturer: Some("labpods"),
        model: Some("SimServer 1000"),
        serial_number: Some(SERIALS[index - 1]),
        cpu_count: Some(2),
        cpu_model: Some("Simulated Xeon 16-core"),
        memory_gib: Some(64.0),
        nic_macs: MACS[index - 1],
        disks: 1,
        power_state: Some(PowerState::Off),
        boot_progress: Some("None"),
        reports_boot_once: true,
    }
}

/// A small fleet; the suite talks to host 2 (so hosts are not mixed up).
async fn sim(config: labpods_sim::SimConfig) -> (labpods_sim::SimHandle, Peer) {
    let sim = labpods_sim::Sim::start(labpods_sim::SimConfig {
        hosts: 2,
        boot_time: std::time::Duration::from_millis(600),
        power_delay: std::time::Duration::from_millis(200),
        username: USER.into(),
        password: PASSWORD.into(),
        ..config
    })
    .await
    .unwrap();
    let peer = Peer {
        name: if config.tls {
            "labpods-sim (https)"
        } else {
            "labpods-sim (http)"
        },
        target: BmcTarget {
            endpoint: sim.endpoint(2),
            system_id: Some(sim.system_id(2).to_owned()),
            credentials: Credentials::new(USER, PASSWORD),
            tls: TlsOptions {
                ca_pem: sim.ca_pem().map(String::into_bytes),
                ..TlsOptions::default()
            },
        },
        password: PASSWORD,
        expect: sim_expected(2),
    };
    (sim, peer)
}

#[tokio::test]
async fn sim_full_suite() {
    let (sim, peer) = sim(labpods_sim::SimConfig::default()).await;
    let image = Url::parse("http://images.example/labpods-test.iso").unwrap();
    suite::discovery_and_inventory(&peer).await;
    suite::unknown_system_is_reported(&peer).await;
    suite::power_on_and_off(&peer).await;
    suite::boot_override(&peer).await;
    suite::virtual_media(&peer, &image).await;
    suite::removable_media(&peer, &image, &image.join("cidata.iso").unwrap()).await;
    suite::wrong_password_is_refused_without_leaking(&peer).await;
    assert_eq!(
        sim.host(2).state().open_sessions,
        0,
        "every session was logged out"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn sim_tls_with_task_monitors() {
    let config = labpods_sim::SimConfig {
        tls: true,
        async_actions: true,
        ..labpods_sim::SimConfig::default()
    };
    let (sim, peer) = sim(config).await;
    let image = Url::parse("https://images.example/labpods-test.iso").unwrap();
    suite::discovery_and_inventory(&peer).await;
    suite::power_on_and_off(&peer).await;
    suite::virtual_media(&peer, &image).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn sim_reimage_sequence_calls() {
    let (sim, peer) = sim(labpods_sim::SimConfig::default()).await;
    let image = Url::parse("http://images.example/labpods-test.iso").unwrap();
    let counts = suite::reimage_sequence(&peer, &image).await;
    suite::report_calls(&peer, &counts);
    // The host really booted the image from the virtual CD.
    assert_eq!(
        sim.host(2).boots().last(),
        Some(&("Cd".to_owned(), Some(image.to_string())))
    );
    assert_eq!(sim.host(2).state().open_sessions, 0);
    sim.shutdown().await;
}

// --- sushy-emulator, plain HTTP ---

#[tokio::test]
async fn sushy_plain_discovery_and_inventory() {
    let (_server, peer) = sushy_plain().await;
    suite::discovery_and_inventory(&peer).await;
    suite::unknown_system_is_reported(&peer).await;
}

#[tokio::test]
async fn sushy_plain_power() {
    let (_server, peer) = sushy_plain().await;
    suite::power_on_and_off(&peer).await;
}

#[tokio::test]
async fn sushy_plain_boot_override() {
    let (_server, peer) = sushy_plain().await;
    suite::boot_override(&peer).await;
}

#[tokio::test]
async fn sushy_plain_virtual_media() {
    let (_server, peer) = sushy_plain().await;
    let image = ImageServer::start().await;
    suite::virtual_media(&peer, &image.url).await;
    suite::removable_media(&peer, &image.url, &image.url.join("cidata.iso").unwrap()).await;
}

#[tokio::test]
async fn sushy_plain_reimage_sequence_calls() {
    let (_server, peer) = sushy_plain().await;
    let image = ImageServer::start().await;
    let counts = suite::reimage_sequence(&peer, &image.url).await;
    suite::report_calls(&peer, &counts);
}

// --- sushy-emulator, TLS + basic auth ---

#[tokio::test]
async fn sushy_tls_full_suite() {
    let (_server, peer, _pki) = sushy_tls().await;
    let image = ImageServer::start().await;
    suite::discovery_and_inventory(&peer).await;
    suite::boot_override(&peer).await;
    suite::virtual_media(&peer, &image.url).await;
    suite::power_on_and_off(&peer).await;
}

#[tokio::test]
async fn sushy_tls_wrong_password() {
    let (_server, peer, _pki) = sushy_tls().await;
    suite::wrong_password_is_refused_without_leaking(&peer).await;
}

/// Verified by default: without the CA the handshake fails; with the explicit opt-in it works.
#[tokio::test]
async fn sushy_tls_verification() {
    let (_server, peer, _pki) = sushy_tls().await;
    let system_roots = BmcTarget {
        tls: TlsOptions::default(),
        ..peer.target.clone()
    };
    let err = RedfishConnector::new(suite::test_policy())
        .client(&system_roots)
        .await
        .expect_err("a certificate from an unknown CA is refused");
    assert!(
        matches!(&err, Error::Certificate(m) if m.contains("not issued by a CA the system trusts")),
        "{err:?}"
    );

    let insecure = BmcTarget {
        tls: TlsOptions {
            insecure_skip_verify: true,
            ..TlsOptions::default()
        },
        ..peer.target.clone()
    };
    let client = RedfishConnector::new(suite::test_policy())
        .client(&insecure)
        .await
        .unwrap();
    assert_eq!(client.system_id(), peer.expect.system_id);
}

// --- sushy-static with DMTF mockups (read-only) ---

#[tokio::test]
async fn sushy_static_rackmount1() {
    let (_server, peer) = sushy_static("public-rackmount1", rackmount1()).await;
    suite::discovery_and_inventory(&peer).await;
    suite::unknown_system_is_reported(&peer).await;
    suite::inserted_media_is_read(&peer, "redfish.dmtf.org/freeImages/freeOS.1.1.iso").await;
}

#[tokio::test]
async fn sushy_static_tower() {
    let (_server, peer) = sushy_static("public-tower", tower()).await;
    suite::discovery_and_inventory(&peer).await;
    // Virtual media only under the Manager in this tree.
    suite::inserted_media_is_read(&peer, "redfish.dmtf.org/freeImages/freeOS.1.1.iso").await;
}

// --- a BMC certificate that is its own CA (openssl req -x509), pinned ---

const LABHOST_NAMES: SettingNames = SettingNames {
    ca_bundle: "spec.bmc.tls.caBundleSecretRef",
    fingerprint: "spec.bmc.tls.certificateSha256",
};

/// Against a BMC presenting the self-signed `cert` (PEM and DER): pinned as the CA bundle or
/// by fingerprint it is accepted (though it names another host); unpinned, or with another
/// fingerprint, it is refused with a message naming the field to change and the fingerprint
/// to pin.
async fn self_signed_is_usable_only_when_pinned(target: &BmcTarget, pem: &str, der: &[u8]) {
    let presented = Fingerprint::of(der).to_string();
    let with = |tls: TlsOptions| BmcTarget {
        tls: TlsOptions {
            names: LABHOST_NAMES,
            ..tls
        },
        ..target.clone()
    };
    let connect = |target: BmcTarget| async move {
        RedfishConnector::new(suite::test_policy())
            .client(&target)
            .await
    };

    for (how, tls) in [
        (
            "as the CA bundle",
            TlsOptions {
                ca_pem: Some(pem.as_bytes().to_vec()),
                ..TlsOptions::default()
            },
        ),
        (
            "by fingerprint",
            TlsOptions {
                certificate_sha256: Some(Fingerprint::of(der)),
                ..TlsOptions::default()
            },
        ),
    ] {
        let client = connect(with(tls))
            .await
            .unwrap_or_else(|e| panic!("pinned {how}: {e}"));
        assert_eq!(
            client.system_id(),
            target.system_id.as_deref().unwrap_or_default(),
            "pinned {how}"
        );
    }

    // Refused: the message names the setting to change and the fingerprint to pin.
    let other = self_signed_bmc_cert();
    for (how, tls, names) in [
        (
            "another certificate's fingerprint",
            TlsOptions {
                certificate_sha256: Some(Fingerprint::of(&other.cert_der)),
                ..TlsOptions::default()
            },
            "spec.bmc.tls.certificateSha256",
        ),
        (
            "a bundle without the BMC's certificate",
            TlsOptions {
                ca_pem: Some(other.cert_pem.clone().into_bytes()),
                ..TlsOptions::default()
            },
            "spec.bmc.tls.caBundleSecretRef",
        ),
        (
            "nothing pinned (system roots)",
            TlsOptions::default(),
            "spec.bmc.tls.certificateSha256",
        ),
    ] {
        let err = connect(with(tls)).await.expect_err(how);
        assert!(
            matches!(&err, Error::Certificate(m) if m.contains(names) && m.contains(&presented)),
            "{how}: {err:?}"
        );
    }
}

#[tokio::test]
async fn sushy_self_signed_certificate_pinned() {
    let cert = self_signed_bmc_cert();
    let protection = Protection {
        tls: Some((cert.cert_path.clone(), cert.key_path.clone())),
        basic_auth: Some((USER.into(), PASSWORD.into())),
    };
    let server = sushy::start_emulator(&SYSTEMS, &protection).await;
    let target = BmcTarget {
        endpoint: Url::parse(&format!("https://127.0.0.1:{}/", server.port)).unwrap(),
        system_id: Some(SYSTEMS[0].uuid.into()),
        credentials: Credentials::new(USER, PASSWORD),
        tls: TlsOptions::default(),
    };
    self_signed_is_usable_only_when_pinned(&target, &cert.cert_pem, &cert.cert_der).await;
}

#[tokio::test]
async fn sim_self_signed_certificate_pinned() {
    let config = labpods_sim::SimConfig {
        tls: true,
        tls_certificate: labpods_sim::TlsCertificate::SelfSigned,
        ..labpods_sim::SimConfig::default()
    };
    // The peer trusts the certificate the sim serves, as its CA bundle.
    let (sim, peer) = sim(config).await;
    let pem = sim.ca_pem().unwrap();
    let der = pem_to_der(&pem);
    suite::discovery_and_inventory(&peer).await;
    suite::power_on_and_off(&peer).await;
    self_signed_is_usable_only_when_pinned(&peer.target, &pem, &der).await;
    sim.shutdown().await;
}

/// The DER of a one-certificate PEM.
fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}
