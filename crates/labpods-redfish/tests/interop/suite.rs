//! The client test suite, written once and run against every peer (see main.rs).
//! Each check drives the public API the operator uses and asserts what a user would see.

use std::sync::Arc;
use std::time::Duration;

use labpods_redfish::{
    Bmc, BmcTarget, BootEnabled, BootMode, BootTarget, ClientPolicy, Credentials, Error, Medium,
    PowerState, RedfishClient, RedfishConnector, ResetKind,
};
use url::Url;

use crate::support::log_capture;

/// A BMC to test against, and the facts its tree holds.
#[derive(Debug)]
pub struct Peer {
    pub name: &'static str,
    pub target: BmcTarget,
    /// The password in `target` (the client offers no way to read it back).
    pub password: &'static str,
    pub expect: Expected,
}

/// What the peer's tree says (from its fixture: the mockup files or the emulator config).
#[derive(Debug, Default)]
pub struct Expected {
    pub system_id: &'static str,
    pub manufacturer: Option<&'static str>,
    pub model: Option<&'static str>,
    pub serial_number: Option<&'static str>,
    pub cpu_count: Option<u32>,
    pub cpu_model: Option<&'static str>,
    pub memory_gib: Option<f64>,
    pub nic_macs: &'static [&'static str],
    pub disks: usize,
    pub power_state: Option<PowerState>,
    pub boot_progress: Option<&'static str>,
    /// sushy stores the override target but always reports Enabled=Continuous.
    pub reports_boot_once: bool,
}

/// A policy that keeps retries short so a failing test fails quickly.
pub fn test_policy() -> ClientPolicy {
    ClientPolicy {
        request_timeout: Duration::from_secs(30),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(2),
        min_power_action_interval: Duration::from_millis(200),
        task_poll_interval: Duration::from_millis(200),
        ..ClientPolicy::default()
    }
}

pub async fn connect(peer: &Peer) -> (RedfishConnector, Arc<RedfishClient>) {
    let connector = RedfishConnector::new(test_policy());
    let client = connector
        .client(&peer.target)
        .await
        .unwrap_or_else(|e| panic!("{}: connect: {e}", peer.name));
    (connector, client)
}

/// Discovery, inventory, power state and boot progress: what `labpods bmc info` shows.
pub async fn discovery_and_inventory(peer: &Peer) {
    let (connector, client) = connect(peer).await;
    let want = &peer.expect;
    assert_eq!(client.system_id(), want.system_id, "{}", peer.name);

    let inventory = client.inventory().await.unwrap();
    assert_eq!(inventory.system_id, want.system_id);
    assert_eq!(
        inventory.manufacturer.as_deref(),
        want.manufacturer,
        "{}",
        peer.name
    );
    assert_eq!(inventory.model.as_deref(), want.model, "{}", peer.name);
    assert_eq!(
        inventory.serial_number.as_deref(),
        want.serial_number,
        "{}",
        peer.name
    );
    assert_eq!(inventory.cpu_count, want.cpu_count, "{}", peer.name);
    assert_eq!(
        inventory.cpu_model.as_deref(),
        want.cpu_model,
        "{}",
        peer.name
    );
    assert_eq!(inventory.memory_gib, want.memory_gib, "{}", peer.name);
    assert_eq!(inventory.nic_macs, want.nic_macs, "{}", peer.name);
    assert_eq!(
        inventory.disks.len(),
        want.disks,
        "{}: {:?}",
        peer.name,
        inventory.disks
    );
    assert!(
        inventory
            .disks
            .iter()
            .all(|d| d.capacity_bytes.is_some_and(|c| c > 0))
    );

    if let Some(power) = &want.power_state {
        assert_eq!(&client.power_state().await.unwrap(), power, "{}", peer.name);
    }
    assert_eq!(
        client.boot_progress().await.unwrap().as_deref(),
        want.boot_progress
    );
    assert_eq!(connector.logout_all().await, 0);
}

/// The virtual CD drive is found (under the System or the Manager) and its state read.
pub async fn inserted_media_is_read(peer: &Peer, image: &str) {
    let (connector, client) = connect(peer).await;
    let state = client.media_state().await.unwrap();
    assert!(state.inserted, "{}: {state:?}", peer.name);
    assert_eq!(state.image.as_deref(), Some(image), "{}", peer.name);
    assert_eq!(connector.logout_all().await, 0);
}

/// Asking for a system that is not there names the problem instead of picking another.
pub async fn unknown_system_is_reported(peer: &Peer) {
    let target = BmcTarget {
        system_id: Some("no-such-system".into()),
        ..peer.target.clone()
    };
    let err = RedfishConnector::new(test_policy())
        .client(&target)
        .await
        .expect_err("connect to a missing system");
    assert!(
        matches!(err, Error::SystemNotFound(_)),
        "{}: {err}",
        peer.name
    );
    assert!(err.to_string().contains("no-such-system"));
}

/// Power on, then off, waiting for the BMC to report each state (sushy applies power
/// changes 1-11 s after answering 204).
pub async fn power_on_and_off(peer: &Peer) {
    let (connector, client) = connect(peer).await;
    client.reset(ResetKind::On).await.unwrap();
    wait_for_power(&*client, PowerState::On).await;
    client.reset(ResetKind::ForceOff).await.unwrap();
    wait_for_power(&*client, PowerState::Off).await;
    assert_eq!(connector.logout_all().await, 0);
}

pub async fn wait_for_power(bmc: &dyn Bmc, want: PowerState) -> u32 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut polls = 0;
    loop {
        polls += 1;
        let state = bmc.power_state().await.unwrap();
        if state == want {
            return polls;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "power state still {state} after 60 s, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn wait_for_boot_progress(bmc: &dyn Bmc, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let state = bmc.boot_progress().await.unwrap();
        if state.as_deref() == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "boot progress still {state:?} after 60 s, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Boot override to CD (once, UEFI) and back to PXE: the BMC reports what was set.
pub async fn boot_override(peer: &Peer) {
    let (connector, client) = connect(peer).await;
    for target in [BootTarget::Cd, BootTarget::Pxe] {
        client
            .set_boot_override(target, BootEnabled::Once, BootMode::Uefi)
            .await
            .unwrap();
        let now = client.boot_override().await.unwrap();
        assert_eq!(
            now.target.as_deref(),
            Some(format!("{target:?}").as_str()),
            "{}",
            peer.name
        );
        assert_eq!(now.mode.as_deref(), Some("UEFI"), "{}", peer.name);
        let expected_enabled = if peer.expect.reports_boot_once {
            "Once"
        } else {
            "Continuous"
        };
        assert_eq!(
            now.enabled.as_deref(),
            Some(expected_enabled),
            "{}",
            peer.name
        );
    }
    assert_eq!(connector.logout_all().await, 0);
}

/// Eject (idempotent on an empty drive), insert an image, eject again.
pub async fn virtual_media(peer: &Peer, image: &Url) {
    let (connector, client) = connect(peer).await;
    client.eject_media().await.unwrap();
    client
        .eject_media()
        .await
        .expect("ejecting an empty drive succeeds");
    assert!(!client.media_state().await.unwrap().inserted);

    // Credentials in the image URL: refused before the BMC sees them, and not repeated.
    let mut with_credentials = image.clone();
    with_credentials.set_username("tenant").unwrap();
    with_credentials
        .set_password(Some("image-pw-1234"))
        .unwrap();
    let err = client.insert_media(&with_credentials).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidImageUrl(_)),
        "{}: {err:?}",
        peer.name
    );
    assert!(
        !format!("{err} {err:?}").contains("image-pw-1234"),
        "{err:?}"
    );
    assert!(
        !client.media_state().await.unwrap().inserted,
        "{}",
        peer.name
    );

    client.insert_media(image).await.unwrap();
    let state = client.media_state().await.unwrap();
    assert!(state.inserted, "{}: {state:?}", peer.name);
    assert_eq!(
        state.image.as_deref(),
        Some(image.as_str()),
        "{}",
        peer.name
    );

    client.eject_media().await.unwrap();
    let state = client.media_state().await.unwrap();
    assert!(!state.inserted, "{}: {state:?}", peer.name);
    assert_eq!(connector.logout_all().await, 0);
}

/// The removable medium beside the CD (a USB stick or floppy) is found by its MediaTypes and
/// holds its own image: inserting and ejecting it leaves the CD as it was.
pub async fn removable_media(peer: &Peer, image: &Url, seed: &Url) {
    let (connector, client) = connect(peer).await;
    assert!(
        client.has_medium(Medium::Cd).await.unwrap(),
        "{}",
        peer.name
    );
    assert!(
        client.has_medium(Medium::Removable).await.unwrap(),
        "{}",
        peer.name
    );
    for medium in [Medium::Cd, Medium::Removable] {
        client.eject_media_on(medium).await.unwrap();
    }
    client.insert_media(image).await.unwrap();
    client
        .insert_media_on(Medium::Removable, seed)
        .await
        .unwrap();
    let cd = client.media_state().await.unwrap();
    let stick = client.media_state_on(Medium::Removable).await.unwrap();
    assert_eq!(cd.image.as_deref(), Some(image.as_str()), "{}", peer.name);
    assert!(stick.inserted, "{}: {stick:?}", peer.name);
    assert_eq!(stick.image.as_deref(), Some(seed.as_str()), "{}", peer.name);

    client.eject_media_on(Medium::Removable).await.unwrap();
    let stick = client.media_state_on(Medium::Removable).await.unwrap();
    assert!(!stick.inserted, "{}: {stick:?}", peer.name);
    assert!(
        client.media_state().await.unwrap().inserted,
        "{}",
        peer.name
    );
    client.eject_media().await.unwrap();
    assert_eq!(connector.logout_all().await, 0);
}

/// A wrong password is refused with Unauthorized, and neither the password nor the user
/// name shows up in the error, its Debug form, or any log line of any crate.
pub async fn wrong_password_is_refused_without_leaking(peer: &Peer) {
    const WRONG: &str = "Wr0ng-Pa55word-xyzzy";
    let (logs, _guard) = log_capture::capture();
    let target = BmcTarget {
        credentials: Credentials::new(peer.target.credentials.username(), WRONG),
        ..peer.target.clone()
    };
    let err = RedfishConnector::new(test_policy())
        .client(&target)
        .await
        .expect_err("wrong password must be refused");
    assert!(
        matches!(err, Error::Unauthorized { .. }),
        "{}: {err:?}",
        peer.name
    );
    assert_eq!(err.metric_label(), "unauthorized");
    assert!(!err.is_transient(), "a refused password is not retried");

    // A successful session on the same thread, to have logs of the happy path as well.
    let (connector, client) = connect(peer).await;
    client.power_state().await.unwrap();
    let shown = format!("{err} {err:?} {target:?} {:?} {client:?}", peer.target);
    connector.logout_all().await;

    let logs = logs.text();
    assert!(!logs.is_empty(), "log capture works");
    for secret in secrets_of(peer, WRONG) {
        assert!(
            !shown.contains(&secret),
            "secret in error/Debug output: {shown}"
        );
        assert!(!logs.contains(&secret), "secret in logs");
    }
}

/// The strings that must never appear: the passwords and the basic-auth header values.
fn secrets_of(peer: &Peer, wrong_password: &str) -> Vec<String> {
    use base64::Engine as _;
    let user = peer.target.credentials.username();
    let basic = |p: &str| base64::engine::general_purpose::STANDARD.encode(format!("{user}:{p}"));
    vec![
        peer.password.to_owned(),
        wrong_password.to_owned(),
        basic(peer.password),
        basic(wrong_password),
    ]
}

/// The operator's reimage sequence; returns the HTTP requests each step took.
pub async fn reimage_sequence(peer: &Peer, image: &Url) -> Vec<(&'static str, u64)> {
    let (connector, client) = connect(peer).await;
    let mut counts = Vec::new();
    let mut last = 0;
    let mut step = |name: &'static str, now: u64| {
        counts.push((name, now - last));
        last = now;
    };
    // The operator looks for the seed's medium first; the devices are read once per client.
    client.has_medium(Medium::Removable).await.unwrap();
    step(
        "connect (discovery + login + media devices)",
        client.requests_sent(),
    );
    client.reset(ResetKind::ForceOff).await.unwrap();
    step("power off", client.requests_sent());
    wait_for_power(&*client, PowerState::Off).await;
    step("wait for off (polls)", client.requests_sent());
    client.eject_media().await.unwrap();
    step("eject", client.requests_sent());
    client.insert_media(image).await.unwrap();
    step("insert", client.requests_sent());
    client
        .set_boot_override(BootTarget::Cd, BootEnabled::Once, BootMode::Uefi)
        .await
        .unwrap();
    step("boot once cd", client.requests_sent());
    client.reset(ResetKind::On).await.unwrap();
    step("power on", client.requests_sent());
    wait_for_power(&*client, PowerState::On).await;
    step("wait for on (polls)", client.requests_sent());
    if peer.expect.boot_progress.is_some() {
        wait_for_boot_progress(&*client, "OSRunning").await;
        step("wait for OSRunning (polls)", client.requests_sent());
    } else {
        assert_eq!(client.boot_progress().await.unwrap(), None);
        step("boot progress (not reported)", client.requests_sent());
    }
    client.eject_media().await.unwrap();
    step("eject", client.requests_sent());
    client.logout().await.unwrap();
    step("logout", client.requests_sent());
    drop(connector);
    counts
}

/// Prints the counts (they go in the report; nothing timed is asserted) and checks the fixed
/// steps stay small: a reimage must not cost a BMC dozens of calls.
pub fn report_calls(peer: &Peer, counts: &[(&'static str, u64)]) {
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    println!(
        "Redfish calls per reimage sequence against {}: {total}",
        peer.name
    );
    for (name, n) in counts {
        println!("  {name:<30} {n}");
        if !name.contains("polls") && !name.starts_with("connect") {
            assert!(*n <= 6, "{name} took {n} requests against {}", peer.name);
        }
    }
}
