//! `labpods bmc` run as a user would: the real binary against sushy-tools (emulator with basic
//! auth, and sushy-static serving a DMTF mockup), checking what it prints. Needs the Python
//! venv from tests/support/python-venv.sh (the tests fail, not skip, without it).

// A failed unwrap is a failed test, with the error in the message.
#![allow(clippy::unwrap_used)]

// The sushy harness of the Redfish client's interop tests, shared by path.
#[path = "../../labpods-redfish/tests/support/image_server.rs"]
mod image_server;
#[path = "../../labpods-redfish/tests/support/python.rs"]
mod python;
#[path = "../../labpods-redfish/tests/support/sushy.rs"]
mod sushy;

use std::process::Output;

use image_server::ImageServer;
use python::ScratchDir;
use sushy::{FakeSystem, Protection};

const USER: &str = "operator";
const PASSWORD: &str = "cli-Secret-0451";
const SYSTEM: FakeSystem = FakeSystem {
    uuid: "5d0c1a6e-8f43-4b1e-a0c5-00000000cafe",
    name: "cli-node",
    mac: "52:54:00:cc:00:01",
};

/// Runs `labpods bmc ARGS...` with the BMC variables cleared, plus `env`. Fails the test if
/// the password shows up in any output.
async fn labpods(args: &[&str], env: &[(&str, &str)]) -> Output {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_labpods"))
        .arg("bmc")
        .args(args)
        .env_remove("LABPODS_BMC_USERNAME")
        .env_remove("LABPODS_BMC_PASSWORD")
        .env_remove("LABPODS_BMC_ENDPOINT")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = texts(&output);
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "the password was echoed:\n{stdout}\n{stderr}"
    );
    output
}

fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn succeeded(output: &Output) -> String {
    let (stdout, stderr) = texts(output);
    assert!(
        output.status.success(),
        "labpods bmc failed:\n{stdout}\n{stderr}"
    );
    stdout
}

#[tokio::test]
async fn info_shows_a_mockup_server() {
    let server = sushy::start_static(&sushy::mockup("public-rackmount1")).await;
    let endpoint = format!("http://127.0.0.1:{}", server.port);
    let env = [
        ("LABPODS_BMC_USERNAME", USER),
        ("LABPODS_BMC_PASSWORD", PASSWORD),
    ];

    let text = succeeded(&labpods(&["--endpoint", &endpoint, "info"], &env).await);
    for line in [
        "System:        437XR1138R2",
        "Manufacturer:  Contoso",
        "Serial:        437XR1138R2",
        "CPUs:          2 x Multi-Core Intel(R) Xeon(R) processor 7xxx Series",
        "Memory:        96 GiB",
        "NIC MACs:      12:44:6a:3b:04:11, aa:bb:cc:dd:ee:00, aa:bb:cc:dd:ee:fe",
        "Disks:         2",
        "Power:         On",
        "Boot progress: OSRunning",
        "Boot override: Pxe (Once, UEFI)",
        "Virtual media: inserted redfish.dmtf.org/freeImages/freeOS.1.1.iso",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }

    let json = succeeded(&labpods(&["--endpoint", &endpoint, "info", "-o", "json"], &env).await);
    let info: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(info["inventory"]["serialNumber"], "437XR1138R2");
    assert_eq!(info["inventory"]["cpuCount"], 2);
    assert_eq!(info["powerState"], "On");
    assert_eq!(info["bootProgress"], "OSRunning");
    assert_eq!(info["virtualMedia"]["inserted"], true);
}

#[tokio::test]
async fn power_boot_and_media_on_an_emulated_server() {
    let protection = Protection {
        tls: None,
        basic_auth: Some((USER.into(), PASSWORD.into())),
    };
    let server = sushy::start_emulator(&[SYSTEM], &protection).await;
    let image = ImageServer::start().await;
    let endpoint = format!("http://127.0.0.1:{}", server.port);
    let dir = ScratchDir::new("cli-creds");
    let creds_path = dir.path().join("bmc-credentials");
    std::fs::write(
        &creds_path,
        format!("username={USER}\npassword={PASSWORD}\n"),
    )
    .unwrap();
    let creds = creds_path.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--endpoint", endpoint.as_str(), "--credentials-file", creds];
        all.extend_from_slice(args);
        let all: Vec<String> = all.into_iter().map(str::to_owned).collect();
        async move {
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            succeeded(&labpods(&all, &[]).await)
        }
    };

    // sushy applies power changes 1-11 s later; the command waits for them.
    assert_eq!(run(&["power", "on"]).await, "power: On\n");
    assert_eq!(run(&["power", "off"]).await, "power: Off\n");
    // sushy always reports BootSourceOverrideEnabled as Continuous.
    assert_eq!(
        run(&["boot-once", "cd"]).await,
        "boot override: Cd (Continuous, UEFI)\n"
    );
    assert_eq!(
        run(&["media", "insert", image.url.as_str()]).await,
        format!("virtual media: inserted {}\n", image.url)
    );
    assert_eq!(run(&["media", "eject"]).await, "virtual media: empty\n");
    let info = run(&["info"]).await;
    assert!(info.contains("Power:         Off"), "{info}");
    assert!(info.contains("Boot progress: not reported"), "{info}");
    assert!(info.contains("NIC MACs:      52:54:00:cc:00:01"), "{info}");
    assert_eq!(run(&["power", "cycle"]).await, "power: cycle requested\n");
}

#[tokio::test]
async fn refused_or_missing_credentials_are_explained() {
    let protection = Protection {
        tls: None,
        basic_auth: Some((USER.into(), PASSWORD.into())),
    };
    let server = sushy::start_emulator(&[SYSTEM], &protection).await;
    let endpoint = format!("http://127.0.0.1:{}", server.port);

    let wrong = [
        ("LABPODS_BMC_USERNAME", USER),
        ("LABPODS_BMC_PASSWORD", "not-it-123"),
    ];
    let output = labpods(&["--endpoint", &endpoint, "info"], &wrong).await;
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("rejected the credentials"), "{stderr}");
    assert!(!stderr.contains("not-it-123"), "{stderr}");

    let output = labpods(&["--endpoint", &endpoint, "info"], &[]).await;
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("credentials missing"), "{stderr}");
}

#[tokio::test]
async fn a_ca_file_that_is_not_pem_is_refused() {
    let dir = ScratchDir::new("cli-ca");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "this is not a certificate\n").unwrap();
    let env = [
        ("LABPODS_BMC_USERNAME", USER),
        ("LABPODS_BMC_PASSWORD", PASSWORD),
    ];
    let args = [
        "--endpoint",
        "https://127.0.0.1:9/",
        "--ca-file",
        ca.to_str().unwrap(),
        "info",
    ];
    let output = labpods(&args, &env).await;
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("CA bundle holds no certificate"),
        "{stderr}"
    );
}

/// A factory-style BMC certificate made by `openssl req -x509 -newkey ec -pkeyopt
/// ec_paramgen_curve:prime256v1 -nodes -days 36500 -subj /CN=factory-bmc.invalid`: CA:TRUE,
/// its own issuer, named for no address used here. Test data only; the key guards nothing.
fn self_signed_files() -> (String, String) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    (
        format!("{dir}/self-signed-bmc.pem"),
        format!("{dir}/self-signed-bmc.key"),
    )
}

/// What `openssl x509 -in self-signed-bmc.pem -noout -fingerprint -sha256` prints.
const SELF_SIGNED_SHA256: &str = "6F:98:8C:A6:90:99:C2:91:CE:1C:24:25:3D:5A:E5:4A:83:F9:45:4B:5D:C7:AB:D2:2C:1C:8D:BB:C4:4D:E1:BB";

#[tokio::test]
async fn a_self_signed_bmc_certificate_is_trusted_when_pinned() {
    let (cert, key) = self_signed_files();
    let protection = Protection {
        tls: Some((cert.clone().into(), key.into())),
        basic_auth: Some((USER.into(), PASSWORD.into())),
    };
    let server = sushy::start_emulator(&[SYSTEM], &protection).await;
    let endpoint = format!("https://127.0.0.1:{}/", server.port);
    let env = [
        ("LABPODS_BMC_USERNAME", USER),
        ("LABPODS_BMC_PASSWORD", PASSWORD),
    ];
    let run = |tls: Vec<String>| {
        let mut args = vec!["--endpoint".to_owned(), endpoint.clone()];
        args.extend(tls);
        args.push("info".to_owned());
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            labpods(&args, &env).await
        }
    };

    // The certificate as the CA file, and its fingerprint as OpenSSL prints it or bare.
    for tls in [
        vec!["--ca-file".to_owned(), cert.clone()],
        vec!["--fingerprint".to_owned(), SELF_SIGNED_SHA256.to_owned()],
        vec![
            "--fingerprint".to_owned(),
            SELF_SIGNED_SHA256.replace(':', "").to_lowercase(),
        ],
    ] {
        let text = succeeded(&run(tls.clone()).await);
        assert!(text.contains(SYSTEM.uuid), "{tls:?}: {text}");
    }

    // Unpinned: refused, with the fingerprint to check and pin.
    let output = run(Vec::new()).await;
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("BMC certificate refused")
            && stderr.contains(SELF_SIGNED_SHA256)
            && stderr.contains("--fingerprint"),
        "{stderr}"
    );

    // Another certificate's fingerprint: refused, naming the flag.
    let wrong = vec!["AB"; 32].join(":");
    let output = run(vec!["--fingerprint".to_owned(), wrong.clone()]).await;
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!("not the one pinned in --fingerprint ({wrong})"))
            && stderr.contains(SELF_SIGNED_SHA256),
        "{stderr}"
    );

    // Not a fingerprint: a usage error.
    let output = run(vec!["--fingerprint".to_owned(), "6F:98".to_owned()]).await;
    let (_, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("64 hex digits"), "{stderr}");
}
