#![allow(clippy::unwrap_used)]

use super::*;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn bmc() -> Bmc {
    Bmc::new(Timing {
        power_delay: s(2),
        boot_time: s(9),
        session_timeout: s(60),
        session_limit: 2,
    })
}

/// Sets the override to Cd, once, at time 0.
fn boot_cd_once(b: &mut Bmc) {
    b.patch_boot(
        s(0),
        BootPatch {
            target: Some("Cd".into()),
            enabled: Some("Once".into()),
            mode: None,
        },
    )
    .unwrap();
}

fn boots(b: &Bmc) -> Vec<(String, Option<String>)> {
    b.history()
        .iter()
        .filter_map(|e| match e {
            Event::Boot { source, image, .. } => Some((source.clone(), image.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn power_on_passes_through_powering_on_after_the_delay() {
    let mut b = bmc();
    assert_eq!(b.power_state(s(0)), PowerState::Off);
    b.reset(s(10), "On", false, false).unwrap();
    assert_eq!(b.power_state(s(11)), PowerState::PoweringOn);
    assert_eq!(b.power_state(s(12)), PowerState::On);
    b.reset(s(20), "GracefulShutdown", false, false).unwrap();
    assert_eq!(b.power_state(s(21)), PowerState::PoweringOff);
    assert_eq!(b.power_state(s(22)), PowerState::Off);
}

#[test]
fn force_off_is_immediate_and_stops_the_boot() {
    let mut b = bmc();
    b.reset(s(0), "On", false, false).unwrap();
    b.reset(s(5), "ForceOff", false, false).unwrap();
    assert_eq!(b.power_state(s(5)), PowerState::Off);
    assert_eq!(b.boot_progress(s(100)), "None");
}

#[test]
fn unknown_reset_type_is_refused() {
    let mut b = bmc();
    assert!(matches!(
        b.reset(s(0), "Explode", false, false),
        Err(Refusal::NotAllowed { .. })
    ));
    assert!(b.history().is_empty());
}

#[test]
fn boot_progress_walks_to_os_running_and_installs_the_cd_image() {
    let mut b = bmc();
    b.insert_media(s(0), Device::Cd, "http://img/os.iso".into(), true)
        .unwrap();
    boot_cd_once(&mut b);
    b.reset(s(0), "On", false, false).unwrap();
    // power settles at 2 s; the boot takes 9 s from there.
    let walk: Vec<&str> = [1, 2, 5, 8, 11]
        .iter()
        .map(|n| b.boot_progress(s(*n)))
        .collect();
    assert_eq!(
        walk,
        [
            "None",
            "PrimaryProcessorInitializationStarted",
            "SystemHardwareInitializationComplete",
            "OSBootStarted",
            "OSRunning"
        ]
    );
    assert_eq!(
        b.state(s(11)).current_image.as_deref(),
        Some("http://img/os.iso")
    );
}

#[test]
fn once_override_is_consumed_by_the_next_boot_only() {
    let mut b = bmc();
    b.insert_media(s(0), Device::Cd, "os.iso".into(), true)
        .unwrap();
    let etag = b.etag();
    boot_cd_once(&mut b);
    assert_ne!(b.etag(), etag, "a changed override changes the ETag");
    b.reset(s(0), "On", false, false).unwrap();
    assert_eq!(b.boot_override().boot_source_override_enabled, "Disabled");
    // restarted before the install finished: the disk is still blank.
    b.reset(s(5), "ForceRestart", false, false).unwrap();
    assert_eq!(
        boots(&b),
        [("Cd".into(), Some("os.iso".into())), ("Hdd".into(), None)]
    );
    assert_eq!(b.state(s(40)).current_image, None);
}

#[test]
fn hdd_boot_runs_the_installed_image() {
    let mut b = bmc();
    b.insert_media(s(0), Device::Cd, "os.iso".into(), true)
        .unwrap();
    boot_cd_once(&mut b);
    b.reset(s(0), "On", false, false).unwrap();
    assert_eq!(b.state(s(20)).boot_progress, "OSRunning");
    b.eject_media(s(20), Device::Cd);
    b.reset(s(21), "PowerCycle", false, false).unwrap();
    assert_eq!(boots(&b)[1], ("Hdd".into(), Some("os.iso".into())));
    assert_eq!(b.boot_progress(s(40)), "OSRunning");
}

#[test]
fn cd_boot_without_media_never_reaches_the_os() {
    let mut b = bmc();
    b.patch_boot(
        s(0),
        BootPatch {
            target: Some("Cd".into()),
            enabled: Some("Continuous".into()),
            mode: None,
        },
    )
    .unwrap();
    b.reset(s(0), "On", false, false).unwrap();
    assert_eq!(
        b.boot_progress(s(100)),
        "SystemHardwareInitializationComplete"
    );
}

#[test]
fn faults_stick_power_and_hang_boots() {
    let mut b = bmc();
    b.reset(s(0), "On", true, false).unwrap();
    assert_eq!(b.power_state(s(10)), PowerState::Off);
    assert!(matches!(
        b.history()[0],
        Event::PowerAction { applied: false, .. }
    ));
    b.reset(s(10), "On", false, true).unwrap();
    assert_eq!(b.boot_progress(s(100)), "OSBootStarted");
}

#[test]
fn media_must_be_ejected_before_a_new_insert() {
    let mut b = bmc();
    b.insert_media(s(0), Device::Cd, "a.iso".into(), true)
        .unwrap();
    assert_eq!(
        b.insert_media(s(1), Device::Cd, "b.iso".into(), true),
        Err(Refusal::MediaInserted)
    );
    b.eject_media(s(2), Device::Cd);
    assert_eq!(
        b.state(s(2)).media,
        Media {
            image: None,
            inserted: false,
            write_protected: true
        }
    );
    assert!(matches!(&b.history()[1], Event::MediaEjected { image: Some(i), .. } if i == "a.iso"));
}

#[test]
fn an_image_on_an_unreachable_server_is_refused_and_recorded() {
    let mut b = bmc();
    let image = "http://images.invalid/os.iso";
    assert_eq!(
        b.insert_media(s(0), Device::Cd, image.into(), true),
        Err(Refusal::ImageUnreachable(image.into()))
    );
    assert!(!b.state(s(0)).media.inserted);
    assert!(matches!(b.history(), [Event::MediaRefused { image: i, .. }] if i == image));
    b.insert_media(s(1), Device::Cd, "http://images.test/os.iso".into(), true)
        .unwrap();
    assert!(b.state(s(1)).media.inserted);
}

#[test]
fn sessions_are_limited_expire_and_free_their_slot() {
    let mut b = bmc();
    b.open_session(s(0), "admin", "t1".into()).unwrap();
    let second = b.open_session(s(0), "admin", "t2".into()).unwrap();
    assert_eq!(
        b.open_session(s(0), "admin", "t3".into()),
        Err(Refusal::SessionLimit(2))
    );
    assert!(b.close_session(s(1), second));
    assert_eq!(b.touch_session(s(1), "t2"), None);
    assert!(b.touch_session(s(30), "t1").is_some());
    // t1 was used at 30 s: alive at 90 s, expired at 91 s.
    assert!(b.touch_session(s(90), "t1").is_some());
    assert_eq!(b.touch_session(s(151), "t1"), None);
    assert!(matches!(
        b.history().last(),
        Some(Event::SessionClosed {
            reason: SessionEnd::Expired,
            ..
        })
    ));
}

#[test]
fn bad_boot_patch_changes_nothing() {
    let mut b = bmc();
    let before = b.boot_override().clone();
    let bad = BootPatch {
        target: Some("Cd".into()),
        enabled: Some("Sometimes".into()),
        mode: None,
    };
    assert!(b.patch_boot(s(0), bad).is_err());
    assert_eq!(b.boot_override(), &before);
}

#[test]
fn the_usb_stick_is_a_second_medium_and_its_seed_is_played_once_per_boot() {
    let mut b = bmc();
    b.insert_media(s(0), Device::Cd, "os.iso".into(), true)
        .unwrap();
    b.insert_media(s(0), Device::UsbStick, "seed.iso".into(), true)
        .unwrap();
    let state = b.state(s(0));
    assert_eq!(
        (
            state.media.image.as_deref(),
            state.usb_stick.image.as_deref()
        ),
        (Some("os.iso"), Some("seed.iso"))
    );
    boot_cd_once(&mut b);
    b.reset(s(0), "On", false, false).unwrap();
    assert_eq!(b.seed_due(s(1)), None, "not before the OS runs");
    assert_eq!(b.seed_due(s(100)).as_deref(), Some("seed.iso"));
    assert_eq!(b.seed_due(s(101)), None, "once per boot");
    b.eject_media(s(102), Device::Cd);
    assert!(
        b.state(s(102)).usb_stick.inserted,
        "ejecting the CD keeps the stick"
    );
    b.reset(s(103), "ForceRestart", false, false).unwrap();
    assert_eq!(
        b.seed_due(s(300)).as_deref(),
        Some("seed.iso"),
        "a new boot"
    );
    b.eject_media(s(301), Device::UsbStick);
    b.reset(s(302), "ForceRestart", false, false).unwrap();
    assert_eq!(b.seed_due(s(500)), None, "no seed, nothing to play");
}

#[test]
fn the_os_powers_off_only_the_boot_whose_seed_it_played() {
    let mut b = bmc();
    b.insert_media(s(0), Device::Cd, "wipe.iso".into(), true)
        .unwrap();
    b.insert_media(s(0), Device::UsbStick, "seed.iso".into(), true)
        .unwrap();
    boot_cd_once(&mut b);
    b.reset(s(0), "On", false, false).unwrap();
    b.power_off_from_os(s(50));
    assert_eq!(b.power_state(s(50)), PowerState::On, "no seed played yet");
    assert!(b.seed_due(s(100)).is_some());
    b.reset(s(101), "ForceRestart", false, false).unwrap();
    b.power_off_from_os(s(102));
    assert_eq!(b.power_state(s(150)), PowerState::On, "a later boot runs");
    assert!(b.seed_due(s(300)).is_some());
    b.power_off_from_os(s(301));
    assert_eq!(b.power_state(s(301)), PowerState::Off);
    assert!(
        b.history()
            .iter()
            .any(|e| matches!(e, Event::OsPoweredOff { at_ms: 301_000 }))
    );
}
