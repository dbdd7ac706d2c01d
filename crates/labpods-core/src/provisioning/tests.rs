//! Transitions, timeouts, resumption, idempotence, completion signals and bounded retries,
//! with a fixed clock.

use chrono::{TimeDelta, TimeZone, Utc};
use labpods_api::v1alpha1::Operation;
use labpods_redfish::{
    BootEnabled, BootMode, BootOverride, BootTarget, MediaState, PowerState, ResetKind,
};

use super::*;

const IMAGE: &str = "http://images.lab.test/ubuntu.iso";
const WIPE: &str = "http://images.lab.test/wipe.iso";
const SEED: &str = "http://operator.lab.test:8081/seeds/node-01/t0k3n/cidata.iso";

fn t0() -> Time {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0)
        .single()
        .unwrap_or_default()
}

fn observed(power: PowerState) -> Observed {
    Observed {
        power,
        boot_progress: None,
        media: MediaState::default(),
        seed_medium: None,
        boot_override: BootOverride::default(),
        phoned_home: false,
    }
}

fn cd_once() -> BootOverride {
    BootOverride {
        target: Some("Cd".into()),
        enabled: Some("Once".into()),
        mode: Some("UEFI".into()),
    }
}

fn inserted(image: &str) -> MediaState {
    MediaState {
        inserted: true,
        image: Some(image.into()),
    }
}

struct Case {
    operation: Operation,
    step: Step,
    observed: Observed,
    attempts: u32,
    elapsed: TimeDelta,
    image: Option<&'static str>,
    seed: Option<&'static str>,
    completion: Completion,
}

impl Case {
    fn new(step: Step, observed: Observed) -> Self {
        Self {
            operation: Operation::Provision,
            step,
            observed,
            attempts: 1,
            elapsed: TimeDelta::zero(),
            image: Some(IMAGE),
            seed: None,
            completion: Completion::PhoneHome,
        }
    }

    fn seed(mut self, seed_medium: Option<MediaState>) -> Self {
        self.seed = Some(SEED);
        self.observed.seed_medium = seed_medium;
        self
    }

    fn release(mut self, wipe: Option<&'static str>) -> Self {
        self.operation = Operation::Release;
        self.image = wipe;
        self
    }

    fn after(mut self, elapsed: TimeDelta, attempts: u32) -> Self {
        self.elapsed = elapsed;
        self.attempts = attempts;
        self
    }

    fn run(&self) -> Outcome {
        let timeouts = Timeouts::default();
        let input = StepInput {
            operation: self.operation,
            attempts: self.attempts,
            step_started: t0(),
            now: t0() + self.elapsed,
            observed: &self.observed,
            image: self.image,
            seed: self.seed,
            boot_mode: BootMode::Uefi,
            completion: self.completion,
            timeouts: &timeouts,
        };
        handle(self.step, &input)
    }
}

fn act(action: BmcAction, next: Step) -> Outcome {
    Outcome::Act { action, next }
}

fn to(next: Step) -> Outcome {
    Outcome::Transition { next }
}

fn reset(kind: ResetKind) -> BmcAction {
    BmcAction::Reset(kind)
}

fn set_cd_once() -> BmcAction {
    BmcAction::SetBootOverride {
        target: BootTarget::Cd,
        enabled: BootEnabled::Once,
        mode: BootMode::Uefi,
    }
}

fn with<F: FnOnce(&mut Observed)>(power: PowerState, f: F) -> Observed {
    let mut o = observed(power);
    f(&mut o);
    o
}

fn min(m: i64) -> TimeDelta {
    TimeDelta::minutes(m)
}

/// Every step's action, and the skip when its effect is already observed (idempotence).
#[test]
fn every_step_acts_or_skips_what_is_already_done() {
    use PowerState::{Off, On, PoweringOff, PoweringOn};
    let cases: Vec<(&str, Case, Outcome)> = vec![
        (
            "power off: graceful first",
            Case::new(Step::PowerOff, observed(On)),
            act(reset(ResetKind::GracefulShutdown), Step::WaitPoweredOff),
        ),
        (
            "power off: unknown power is asked too",
            Case::new(Step::PowerOff, observed(PowerState::Unknown)),
            act(reset(ResetKind::GracefulShutdown), Step::WaitPoweredOff),
        ),
        (
            "power off: already off",
            Case::new(Step::PowerOff, observed(Off)),
            to(Step::EjectMedia),
        ),
        (
            "power off: already going",
            Case::new(Step::PowerOff, observed(PoweringOff)),
            to(Step::WaitPoweredOff),
        ),
        (
            "wait off: off",
            Case::new(Step::WaitPoweredOff, observed(Off)),
            to(Step::EjectMedia),
        ),
        (
            "eject: inserted",
            Case::new(
                Step::EjectMedia,
                with(Off, |o| o.media = inserted("old.iso")),
            ),
            act(BmcAction::EjectMedia, Step::InsertMedia),
        ),
        (
            "eject: nothing inserted",
            Case::new(Step::EjectMedia, observed(Off)),
            to(Step::InsertMedia),
        ),
        (
            "insert: empty drive",
            Case::new(Step::InsertMedia, observed(Off)),
            act(BmcAction::InsertMedia(IMAGE.into()), Step::SetBootOnce),
        ),
        (
            "insert: ours already in",
            Case::new(Step::InsertMedia, with(Off, |o| o.media = inserted(IMAGE))),
            to(Step::SetBootOnce),
        ),
        (
            "insert: someone else's in",
            Case::new(
                Step::InsertMedia,
                with(Off, |o| o.media = inserted("old.iso")),
            ),
            act(BmcAction::EjectMedia, Step::InsertMedia),
        ),
        (
            "boot once: not set",
            Case::new(Step::SetBootOnce, observed(Off)),
            act(set_cd_once(), Step::PowerOn),
        ),
        (
            "boot once: wrong mode",
            Case::new(
                Step::SetBootOnce,
                with(Off, |o| {
                    o.boot_override = cd_once();
                    o.boot_override.mode = Some("Legacy".into())
                }),
            ),
            act(set_cd_once(), Step::PowerOn),
        ),
        (
            "boot once: continuous is not once",
            Case::new(
                Step::SetBootOnce,
                with(Off, |o| {
                    o.boot_override = cd_once();
                    o.boot_override.enabled = Some("Continuous".into())
                }),
            ),
            act(set_cd_once(), Step::PowerOn),
        ),
        (
            "boot once: already set",
            Case::new(
                Step::SetBootOnce,
                with(Off, |o| o.boot_override = cd_once()),
            ),
            to(Step::PowerOn),
        ),
        (
            "boot once: BMC without mode",
            Case::new(
                Step::SetBootOnce,
                with(Off, |o| {
                    o.boot_override = cd_once();
                    o.boot_override.mode = None
                }),
            ),
            to(Step::PowerOn),
        ),
        (
            "power on: off",
            Case::new(Step::PowerOn, observed(Off)),
            act(reset(ResetKind::On), Step::WaitBooted),
        ),
        (
            "power on: already on",
            Case::new(Step::PowerOn, observed(On)),
            to(Step::WaitBooted),
        ),
        (
            "power on: powering on",
            Case::new(Step::PowerOn, observed(PoweringOn)),
            to(Step::WaitBooted),
        ),
        (
            "eject after boot: inserted",
            Case::new(
                Step::EjectAfterBoot,
                with(On, |o| o.media = inserted(IMAGE)),
            ),
            act(BmcAction::EjectMedia, Step::Done),
        ),
        (
            "eject after boot: already out",
            Case::new(Step::EjectAfterBoot, observed(On)),
            to(Step::Done),
        ),
        ("done", Case::new(Step::Done, observed(On)), Outcome::Done),
        (
            "release eject without wipe",
            Case::new(Step::EjectMedia, observed(Off)).release(None),
            to(Step::Done),
        ),
        (
            "release eject with wipe",
            Case::new(Step::EjectMedia, with(Off, |o| o.media = inserted(IMAGE)))
                .release(Some(WIPE)),
            act(BmcAction::EjectMedia, Step::WipeInsertMedia),
        ),
        (
            "wipe insert",
            Case::new(Step::WipeInsertMedia, observed(Off)).release(Some(WIPE)),
            act(BmcAction::InsertMedia(WIPE.into()), Step::WipeBoot),
        ),
        (
            "wipe insert: already in",
            Case::new(
                Step::WipeInsertMedia,
                with(Off, |o| o.media = inserted(WIPE)),
            )
            .release(Some(WIPE)),
            to(Step::WipeBoot),
        ),
        (
            "wipe boot: override first",
            Case::new(Step::WipeBoot, observed(Off)).release(Some(WIPE)),
            act(set_cd_once(), Step::WipeBoot),
        ),
        (
            "wipe boot: then power on",
            Case::new(Step::WipeBoot, with(Off, |o| o.boot_override = cd_once()))
                .release(Some(WIPE))
                .after(min(0), 2),
            act(reset(ResetKind::On), Step::WipeBoot),
        ),
        (
            "wipe boot: on",
            Case::new(Step::WipeBoot, observed(On)).release(Some(WIPE)),
            to(Step::WaitWiped),
        ),
        (
            "wipe insert: the seed first",
            Case::new(Step::WipeInsertMedia, observed(Off))
                .release(Some(WIPE))
                .seed(Some(MediaState::default())),
            act(BmcAction::InsertSeed, Step::WipeInsertMedia),
        ),
        (
            "wipe insert: seed in, then the image",
            Case::new(Step::WipeInsertMedia, observed(Off))
                .release(Some(WIPE))
                .seed(Some(inserted(SEED))),
            act(BmcAction::InsertMedia(WIPE.into()), Step::WipeBoot),
        ),
        (
            "wiped: reported and off, seed in",
            reported_and_off(inserted(SEED)),
            act(BmcAction::EjectSeed, Step::WaitWiped),
        ),
        (
            "wiped: reported and off, media in",
            reported_and_off(MediaState::default()),
            act(BmcAction::EjectMedia, Step::Done),
        ),
        (
            "wiped: reported and off, media out",
            Case::new(Step::WaitWiped, with(Off, |o| o.phoned_home = true)).release(Some(WIPE)),
            to(Step::Done),
        ),
        (
            "wiped: phoned home while on",
            Case::new(Step::WaitWiped, with(On, |o| o.phoned_home = true)).release(Some(WIPE)),
            act(reset(ResetKind::ForceOff), Step::WaitWiped),
        ),
    ];
    for (name, case, want) in cases {
        assert_eq!(case.run(), want, "{name}");
    }
}

#[test]
fn waiting_steps_wait_with_a_reason_until_their_deadline() {
    use PowerState::On;
    let cases: Vec<(&str, Case, &str, TimeDelta)> = vec![
        (
            "wait off",
            Case::new(Step::WaitPoweredOff, observed(On)).after(min(1), 1),
            "waiting for a graceful power off (BMC reports On)",
            TimeDelta::seconds(5),
        ),
        (
            "close to the deadline",
            Case::new(Step::WaitPoweredOff, observed(On)).after(min(2) - TimeDelta::seconds(3), 1),
            "waiting for a graceful power off (BMC reports On)",
            TimeDelta::seconds(3),
        ),
        (
            "forced",
            Case::new(Step::WaitPoweredOff, observed(On)).after(min(3), 2),
            "waiting for a forced power off (BMC reports On)",
            TimeDelta::seconds(5),
        ),
        (
            "boot progress",
            Case::new(
                Step::WaitBooted,
                with(On, |o| o.boot_progress = Some("OSBootStarted".into())),
            )
            .after(min(3), 1),
            "waiting for BootProgress OSRunning (BMC reports OSBootStarted)",
            TimeDelta::seconds(5),
        ),
        (
            "phone home",
            Case::new(Step::WaitBooted, observed(On)).after(min(3), 1),
            "waiting for the phone-home callback",
            TimeDelta::seconds(5),
        ),
        (
            "wipe",
            Case::new(Step::WaitWiped, observed(On))
                .release(Some(WIPE))
                .after(min(3), 1),
            "waiting for the wipe to finish (BMC reports On)",
            TimeDelta::seconds(5),
        ),
        (
            "wipe after phone-home force",
            Case::new(Step::WaitWiped, with(On, |o| o.phoned_home = true))
                .release(Some(WIPE))
                .after(min(3), 2),
            "waiting for the wipe to finish (BMC reports On)",
            TimeDelta::seconds(5),
        ),
    ];
    for (name, case, reason, recheck) in cases {
        match case.run() {
            Outcome::Wait {
                reason: got,
                recheck_after,
            } => {
                assert_eq!((got.as_str(), recheck_after), (reason, recheck), "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn power_off_is_forced_after_the_graceful_timeout_then_fails() {
    let on = || observed(PowerState::On);
    assert!(matches!(
        Case::new(Step::WaitPoweredOff, on())
            .after(min(2) - TimeDelta::seconds(1), 1)
            .run(),
        Outcome::Wait { .. }
    ));
    assert_eq!(
        Case::new(Step::WaitPoweredOff, on()).after(min(2), 1).run(),
        act(reset(ResetKind::ForceOff), Step::WaitPoweredOff)
    );
    assert!(matches!(
        Case::new(Step::WaitPoweredOff, on()).after(min(3), 2).run(),
        Outcome::Wait { .. }
    ));
    assert_eq!(
        Case::new(Step::WaitPoweredOff, on()).after(min(4), 2).run(),
        Outcome::Failed {
            reason: "power is still On after a graceful and then a forced power off".into()
        }
    );
}

#[test]
fn boot_completes_on_each_of_the_three_signals_and_is_bounded() {
    let booted = to(Step::EjectAfterBoot);
    let on = PowerState::On;
    let mut by_progress = Case::new(
        Step::WaitBooted,
        with(on.clone(), |o| o.boot_progress = Some(OS_RUNNING.into())),
    );
    assert_eq!(by_progress.run(), booted, "BootProgress OSRunning");
    by_progress.completion = Completion::After(min(10));
    assert_eq!(
        by_progress.run(),
        booted,
        "OSRunning wins over the fallback"
    );

    let phone =
        Case::new(Step::WaitBooted, with(on.clone(), |o| o.phoned_home = true)).after(min(2), 1);
    assert_eq!(phone.run(), booted, "phone-home");
    let phone_with_progress = Case::new(
        Step::WaitBooted,
        with(on.clone(), |o| {
            o.phoned_home = true;
            o.boot_progress = Some("OSBootStarted".into());
        }),
    );
    assert_eq!(
        phone_with_progress.run(),
        booted,
        "phone-home even where BootProgress lags"
    );

    let mut fallback = Case::new(Step::WaitBooted, observed(on.clone())).after(min(9), 1);
    fallback.completion = Completion::After(min(10));
    match fallback.run() {
        Outcome::Wait { reason, .. } => {
            assert_eq!(reason, "assuming the OS is up 10m after power-on")
        }
        other => panic!("{other:?}"),
    }
    fallback.elapsed = min(10);
    assert_eq!(fallback.run(), booted, "fallback duration");

    // The fallback never completes while the BMC still reports the power off (sushy-tools
    // applies a power change seconds after accepting it).
    let mut late_power = Case::new(Step::WaitBooted, observed(PowerState::Off)).after(min(10), 1);
    late_power.completion = Completion::After(min(10));
    match late_power.run() {
        Outcome::Wait { reason, .. } => {
            assert_eq!(reason, "waiting for the BMC to report the power on")
        }
        other => panic!("{other:?}"),
    }

    // A BMC that reports BootProgress is waited on, not the fallback.
    let mut reported = Case::new(
        Step::WaitBooted,
        with(on.clone(), |o| {
            o.boot_progress = Some("OSBootStarted".into())
        }),
    )
    .after(min(10), 1);
    reported.completion = Completion::After(min(10));
    assert!(matches!(reported.run(), Outcome::Wait { .. }));

    let timeouts: Vec<(Case, &str)> = vec![
        (
            reported.after(min(30), 1),
            "no running OS 30m after power-on: no BootProgress OSRunning (BMC reports OSBootStarted)",
        ),
        (
            Case::new(Step::WaitBooted, observed(on)).after(min(31), 1),
            "no running OS 30m after power-on: no the phone-home callback",
        ),
    ];
    for (case, reason) in timeouts {
        assert_eq!(
            case.run(),
            Outcome::Failed {
                reason: reason.into()
            }
        );
    }
}

#[test]
fn wipe_is_bounded_and_its_boot_gives_up_on_a_deaf_bmc() {
    let wipe = Case::new(Step::WaitWiped, observed(PowerState::On))
        .release(Some(WIPE))
        .after(TimeDelta::hours(2), 1);
    assert_eq!(
        wipe.run(),
        Outcome::Failed {
            reason: "the wipe image still runs 2h after power-on".into()
        }
    );
    let deaf = Case::new(Step::WipeBoot, observed(PowerState::Off))
        .release(Some(WIPE))
        .after(min(1), 4);
    assert!(matches!(deaf.run(), Outcome::Failed { reason } if reason.contains("after 4 tries")));
}

/// The wipe image reported and powered off, its CD still in, the seed medium as given.
fn reported_and_off(seed_medium: MediaState) -> Case {
    let o = with(PowerState::Off, |o| {
        o.phoned_home = true;
        o.media = inserted(WIPE);
    });
    Case::new(Step::WaitWiped, o)
        .release(Some(WIPE))
        .seed(Some(seed_medium))
}

#[test]
fn a_wipe_counts_only_on_its_report_and_needs_a_medium_for_its_seed() {
    let silent = Case::new(Step::WaitWiped, observed(PowerState::Off)).release(Some(WIPE));
    assert!(
        matches!(silent.run(), Outcome::Failed { reason }
            if reason.contains("powered the host off without reporting completion")),
        "power Off alone is no wipe"
    );
    let single_medium = Case::new(Step::WipeInsertMedia, observed(PowerState::Off))
        .release(Some(WIPE))
        .seed(None);
    assert!(
        matches!(single_medium.run(), Outcome::Failed { reason }
            if reason.contains("second virtual medium") && reason.contains("provisioning.wipeImages")),
        "the lab's setting fails the host's release, not a booking"
    );
}

#[test]
fn steps_of_the_other_operation_and_a_missing_image_fail() {
    let wrong = Case::new(Step::WaitBooted, observed(PowerState::On)).release(None);
    assert_eq!(
        wrong.run(),
        Outcome::Failed {
            reason: "step WaitBooted is not part of Release".into()
        }
    );
    let mut no_image = Case::new(Step::InsertMedia, observed(PowerState::Off));
    no_image.image = None;
    assert_eq!(
        no_image.run(),
        Outcome::Failed {
            reason: "no image URL to insert".into()
        }
    );
    let wipe_in_provision = Case::new(Step::WipeBoot, observed(PowerState::Off));
    assert!(matches!(wipe_in_provision.run(), Outcome::Failed { .. }));
}

#[test]
fn failures_retry_with_doubling_backoff_then_give_up() {
    let policy = RetryPolicy::default();
    let mut got = Vec::new();
    for failures in 0..5 {
        got.push(after_failure(
            Operation::Provision,
            Step::WaitBooted,
            failures,
            "no running OS",
            &policy,
        ));
    }
    let retry = |secs, failures| AfterFailure::Retry {
        step: Step::PowerOff,
        after: TimeDelta::seconds(secs),
        failures,
    };
    assert_eq!(
        got[..4],
        [retry(5, 1), retry(10, 2), retry(20, 3), retry(40, 4)]
    );
    assert_eq!(
        got[4],
        AfterFailure::GiveUp {
            reason: "Provision failed 5 times in a row, last at step WaitBooted: no running OS"
                .into()
        }
    );
    // Action steps retry themselves; the backoff is capped.
    let capped = RetryPolicy {
        max_failures: 100,
        ..policy
    };
    assert_eq!(
        after_failure(Operation::Release, Step::InsertMedia, 40, "409", &capped),
        AfterFailure::Retry {
            step: Step::InsertMedia,
            after: TimeDelta::minutes(5),
            failures: 41
        }
    );
}

/// A BMC as the adapter sees it: applies actions, and boots the inserted image when powered
/// on through a Cd/Once override.
#[derive(Debug, Clone)]
struct FakeBmc {
    o: Observed,
    /// Passes after power-on until the OS (or the wipe) is done.
    boot_passes: u32,
    booted_image: Option<String>,
    actions: Vec<BmcAction>,
    /// The run's seed the adapter inserts on InsertSeed.
    seed: Option<&'static str>,
}

impl FakeBmc {
    fn new(power: PowerState) -> Self {
        Self {
            o: Observed {
                seed_medium: Some(MediaState::default()),
                ..observed(power)
            },
            boot_passes: 0,
            booted_image: None,
            actions: Vec::new(),
            seed: None,
        }
    }

    fn apply(&mut self, action: &BmcAction) {
        self.actions.push(action.clone());
        match action {
            BmcAction::Reset(ResetKind::On) => {
                self.o.power = PowerState::On;
                if self.o.boot_override.target.as_deref() == Some("Cd") {
                    self.booted_image = self.o.media.image.clone();
                    self.o.boot_override = BootOverride::default();
                }
                self.boot_passes = 3;
            }
            BmcAction::Reset(_) => {
                self.o.power = PowerState::Off;
                self.o.boot_progress = None;
            }
            BmcAction::InsertMedia(url) => self.o.media = inserted(url),
            BmcAction::EjectMedia => self.o.media = MediaState::default(),
            BmcAction::InsertSeed => self.o.seed_medium = self.seed.map(inserted),
            BmcAction::EjectSeed => self.o.seed_medium = Some(MediaState::default()),
            BmcAction::SetBootOverride { .. } => self.o.boot_override = cd_once(),
        }
    }

    /// Time passes: a booting host reaches its OS; a wipe image reports (when it has its
    /// seed) and powers off when done.
    fn tick(&mut self) {
        if self.o.power == PowerState::On && self.boot_passes > 0 {
            self.boot_passes -= 1;
            if self.boot_passes == 0 {
                if self.booted_image.as_deref() == Some(WIPE) {
                    self.o.phoned_home = self.o.seed_medium.as_ref().is_some_and(|m| m.inserted);
                    self.o.power = PowerState::Off;
                } else {
                    self.o.boot_progress = Some(OS_RUNNING.into());
                }
            }
        }
    }
}

fn input<'a>(
    operation: Operation,
    observed: &'a Observed,
    image: Option<&'a str>,
    seed: Option<&'a str>,
    timeouts: &'a Timeouts,
) -> StepInput<'a> {
    StepInput {
        operation,
        attempts: 1,
        step_started: t0(),
        now: t0(),
        observed,
        image,
        seed,
        boot_mode: BootMode::Uefi,
        completion: Completion::PhoneHome,
        timeouts,
    }
}

/// Runs the adapter contract until Done; returns each step entered with the BMC as it was
/// on entry.
fn drive(
    bmc: &mut FakeBmc,
    operation: Operation,
    from: Step,
    image: Option<&str>,
) -> Vec<(Step, FakeBmc)> {
    let timeouts = Timeouts::default();
    let (mut step, mut attempts, mut started, mut now) = (from, 1, t0(), t0());
    let mut entered = vec![(step, bmc.clone())];
    for _ in 0..100 {
        let ctx = StepInput {
            attempts,
            step_started: started,
            now,
            ..input(operation, &bmc.o, image, bmc.seed, &timeouts)
        };
        let next = match handle(step, &ctx) {
            Outcome::Done => return entered,
            Outcome::Act { action, next } => {
                bmc.apply(&action);
                next
            }
            Outcome::Transition { next } => next,
            Outcome::Wait { recheck_after, .. } => {
                now += recheck_after;
                bmc.tick();
                continue;
            }
            Outcome::Failed { reason } | Outcome::BookingFailed { reason } => {
                panic!("failed at {step:?}: {reason}")
            }
        };
        if next == step {
            attempts += 1;
        } else {
            (step, attempts, started) = (next, 1, now);
            entered.push((step, bmc.clone()));
        }
    }
    panic!(
        "no progress: {:?}",
        entered.iter().map(|e| e.0).collect::<Vec<_>>()
    );
}

fn steps(entered: &[(Step, FakeBmc)]) -> Vec<Step> {
    entered.iter().map(|e| e.0).collect()
}

#[test]
fn provisioning_runs_from_a_running_host_to_done() {
    let mut bmc = FakeBmc::new(PowerState::On);
    bmc.o.media = inserted("old.iso");
    bmc.o.boot_progress = Some(OS_RUNNING.into());
    let entered = drive(&mut bmc, Operation::Provision, FIRST_STEP, Some(IMAGE));
    assert_eq!(
        steps(&entered),
        [
            Step::PowerOff,
            Step::WaitPoweredOff,
            Step::EjectMedia,
            Step::InsertMedia,
            Step::SetBootOnce,
            Step::PowerOn,
            Step::WaitBooted,
            Step::EjectAfterBoot,
            Step::Done
        ]
    );
    assert_eq!(
        bmc.actions,
        [
            reset(ResetKind::GracefulShutdown),
            BmcAction::EjectMedia,
            BmcAction::InsertMedia(IMAGE.into()),
            set_cd_once(),
            reset(ResetKind::On),
            BmcAction::EjectMedia
        ]
    );
    assert_eq!(
        bmc.booted_image.as_deref(),
        Some(IMAGE),
        "booted the requested image once"
    );
    assert_eq!(
        (bmc.o.power.clone(), bmc.o.media.inserted),
        (PowerState::On, false)
    );
}

#[test]
fn release_powers_off_and_wipes_when_the_profile_says_so() {
    for wipe in [None, Some(WIPE)] {
        let mut bmc = FakeBmc::new(PowerState::On);
        bmc.o.media = inserted(IMAGE);
        bmc.seed = wipe.map(|_| SEED);
        drive(&mut bmc, Operation::Release, FIRST_STEP, wipe);
        assert_eq!(
            (bmc.o.power.clone(), bmc.o.media.inserted),
            (PowerState::Off, false),
            "{wipe:?}"
        );
        assert_eq!(
            bmc.o.seed_medium,
            Some(MediaState::default()),
            "the wipe's seed is ejected"
        );
        assert_eq!(bmc.o.phoned_home, wipe.is_some(), "the wipe reported");
        assert_eq!(
            bmc.booted_image.as_deref(),
            wipe,
            "wiped only with a wipe image"
        );
        let power_ons = bmc
            .actions
            .iter()
            .filter(|a| **a == reset(ResetKind::On))
            .count();
        assert_eq!(power_ons, usize::from(wipe.is_some()));
    }
}

/// A restarted operator resumes at the stored step, whether the crash came before that
/// step's BMC call or after it (but before the status write): the run ends in the same
/// state and the BMC receives exactly the calls of an uninterrupted run, none twice.
#[test]
fn resumes_from_every_stored_step_without_repeating_observed_work() {
    let timeouts = Timeouts::default();
    for (operation, image) in [
        (Operation::Provision, Some(IMAGE)),
        (Operation::Release, Some(WIPE)),
        (Operation::Release, None),
    ] {
        let mut reference = FakeBmc::new(PowerState::On);
        reference.o.media = inserted("old.iso");
        if operation == Operation::Release && image.is_some() {
            reference.seed = Some(SEED);
        }
        let entered = drive(&mut reference, operation, FIRST_STEP, image);
        let want = (
            reference.o.clone(),
            reference.booted_image.clone(),
            reference.actions.clone(),
        );
        for (stored, on_entry) in &entered {
            for call_reached_bmc in [false, true] {
                let mut bmc = on_entry.clone();
                if call_reached_bmc
                    && let Outcome::Act { action, .. } = handle(
                        *stored,
                        &input(operation, &on_entry.o, image, on_entry.seed, &timeouts),
                    )
                {
                    bmc.apply(&action);
                }
                drive(&mut bmc, operation, *stored, image);
                assert_eq!(
                    (bmc.o, bmc.booted_image, bmc.actions),
                    want.clone(),
                    "{operation:?} {image:?} resumed at {stored:?} (call reached the BMC: {call_reached_bmc})"
                );
            }
        }
    }
}

#[test]
fn a_run_with_a_seed_inserts_and_sees_it_before_the_image() {
    use PowerState::Off;
    let empty = || Some(MediaState::default());
    let cases = [
        (
            "inserts the seed first",
            Case::new(Step::InsertMedia, observed(Off)).seed(empty()),
            act(BmcAction::InsertSeed, Step::InsertMedia),
        ),
        (
            "seen inserted: the image next",
            Case::new(Step::InsertMedia, observed(Off)).seed(Some(inserted(SEED))),
            act(BmcAction::InsertMedia(IMAGE.into()), Step::SetBootOnce),
        ),
        (
            "another seed is ejected",
            Case::new(Step::InsertMedia, observed(Off)).seed(Some(inserted("http://x/old"))),
            act(BmcAction::EjectSeed, Step::InsertMedia),
        ),
        (
            "both in place",
            Case::new(Step::InsertMedia, with(Off, |o| o.media = inserted(IMAGE)))
                .seed(Some(inserted(SEED))),
            to(Step::SetBootOnce),
        ),
        (
            "no seed wanted: a single-medium BMC is fine",
            Case::new(Step::InsertMedia, observed(Off)),
            act(BmcAction::InsertMedia(IMAGE.into()), Step::SetBootOnce),
        ),
        (
            "a stale seed goes first at the start of a run",
            Case::new(
                Step::EjectMedia,
                with(Off, |o| {
                    o.media = inserted("old.iso");
                    o.seed_medium = Some(inserted("http://x/old"));
                }),
            ),
            act(BmcAction::EjectSeed, Step::EjectMedia),
        ),
        (
            "and at release",
            Case::new(
                Step::EjectMedia,
                with(Off, |o| {
                    o.seed_medium = Some(inserted(SEED));
                }),
            )
            .release(None),
            act(BmcAction::EjectSeed, Step::EjectMedia),
        ),
    ];
    for (name, case, want) in cases {
        assert_eq!(case.run(), want, "{name}");
    }
}

#[test]
fn a_seed_the_bmc_does_not_take_or_cannot_hold_fails_the_step() {
    use PowerState::Off;
    let never = Case::new(Step::InsertMedia, observed(Off))
        .seed(Some(MediaState::default()))
        .after(TimeDelta::seconds(30), 4);
    assert!(
        matches!(never.run(), Outcome::Failed { reason } if reason.contains("did not insert the seed")),
    );
    let single = Case::new(Step::InsertMedia, observed(Off)).seed(None);
    let Outcome::BookingFailed { reason } = single.run() else {
        panic!("a single-medium BMC cannot take the booking's seed");
    };
    assert!(reason.starts_with("spec.access "), "{reason}");
    assert!(reason.contains("no second virtual medium"), "{reason}");
}

#[test]
fn the_seed_stays_through_the_booking_and_goes_at_release() {
    let mut bmc = FakeBmc::new(PowerState::Off);
    bmc.seed = Some(SEED);
    bmc.o.seed_medium = Some(inserted("http://x/stale-seed"));
    drive(&mut bmc, Operation::Provision, FIRST_STEP, Some(IMAGE));
    assert_eq!(
        bmc.actions[..4],
        [
            BmcAction::EjectSeed,
            BmcAction::InsertSeed,
            BmcAction::InsertMedia(IMAGE.into()),
            set_cd_once(),
        ]
    );
    assert_eq!(bmc.booted_image.as_deref(), Some(IMAGE));
    assert_eq!(bmc.o.seed_medium, Some(inserted(SEED)), "kept after boot");
    assert!(!bmc.o.media.inserted, "the CD is ejected after boot");
    bmc.seed = None;
    bmc.actions.clear();
    drive(&mut bmc, Operation::Release, FIRST_STEP, None);
    assert_eq!(
        bmc.o.seed_medium,
        Some(MediaState::default()),
        "ejected at release"
    );
    assert!(bmc.actions.contains(&BmcAction::EjectSeed));
}
