//! One handler per step. Every handler first looks at what the BMC reports and skips an
//! action whose effect is already there, so re-running the stored step after a restart is
//! safe.
//!
//! Provision: PowerOff -> WaitPoweredOff -> EjectMedia -> InsertMedia -> SetBootOnce ->
//! PowerOn -> WaitBooted -> EjectAfterBoot -> Done.
//! EjectMedia empties both media (a seed left by an earlier run included); InsertMedia puts
//! the run's seed on the removable medium first when the run has one (verified on the next
//! pass), then the image on the CD. EjectAfterBoot ejects the CD only: the seed stays for the
//! booking (cloud-init's NoCloud datasource looks for it at every boot) and goes at release.
//! Release: PowerOff -> WaitPoweredOff -> EjectMedia -> [with a wipe image: WipeInsertMedia
//! (the wipe's seed on the removable medium, then the image on the CD) -> WipeBoot ->
//! WaitWiped (the wipe image reports with the run's token and powers the host off; both
//! media are ejected)] -> Done. A wipe counts only on that report: a host that went Off
//! without it fails the step (the release is retried, then the host quarantined).
//! Release leaves the host off without a second PowerOff step: WaitWiped only completes on
//! power Off, so a stored PowerOff is never ambiguous about which half it belongs to.

use chrono::TimeDelta;
use labpods_api::v1alpha1::Operation;
use labpods_redfish::{BootEnabled, BootMode, BootOverride, BootTarget, PowerState, ResetKind};

use super::model::{BmcAction, Completion, OS_RUNNING, Outcome, Step, StepInput};

/// Follow-up actions within one step (e.g. set the override, then power on) before the step
/// is declared failed: a BMC that acknowledges but never applies them is broken.
const MAX_ATTEMPTS_IN_STEP: u32 = 4;

/// The decision for `step` given this pass's observation.
pub fn handle(step: Step, ctx: &StepInput<'_>) -> Outcome {
    if !belongs(ctx.operation, step) {
        return Outcome::Failed {
            reason: format!("step {step:?} is not part of {:?}", ctx.operation),
        };
    }
    match step {
        Step::PowerOff => power_off(ctx),
        Step::WaitPoweredOff => wait_powered_off(ctx),
        Step::EjectMedia => eject_seed(ctx, step).unwrap_or_else(|| eject(ctx, after_eject(ctx))),
        Step::InsertMedia => {
            insert_seed(ctx, step).unwrap_or_else(|| insert(ctx, step, Step::SetBootOnce))
        }
        Step::SetBootOnce => set_boot_once(ctx),
        Step::PowerOn => power_on(ctx),
        Step::WaitBooted => wait_booted(ctx),
        Step::EjectAfterBoot => eject(ctx, Step::Done),
        Step::WipeInsertMedia => {
            insert_seed(ctx, step).unwrap_or_else(|| insert(ctx, step, Step::WipeBoot))
        }
        Step::WipeBoot => wipe_boot(ctx),
        Step::WaitWiped => wait_wiped(ctx),
        Step::Done => Outcome::Done,
    }
}

fn belongs(operation: Operation, step: Step) -> bool {
    match operation {
        Operation::Provision => !matches!(
            step,
            Step::WipeInsertMedia | Step::WipeBoot | Step::WaitWiped
        ),
        Operation::Release => matches!(
            step,
            Step::PowerOff
                | Step::WaitPoweredOff
                | Step::EjectMedia
                | Step::WipeInsertMedia
                | Step::WipeBoot
                | Step::WaitWiped
                | Step::Done
        ),
    }
}

fn after_eject(ctx: &StepInput<'_>) -> Step {
    match (ctx.operation, ctx.image) {
        (Operation::Provision, _) => Step::InsertMedia,
        (Operation::Release, Some(_)) => Step::WipeInsertMedia,
        (Operation::Release, None) => Step::Done,
    }
}

/// Waiting steps look again after the poll interval, or at their deadline if sooner.
fn wait(ctx: &StepInput<'_>, reason: String, deadline: TimeDelta) -> Outcome {
    let left = (deadline - ctx.elapsed()).max(TimeDelta::seconds(1));
    Outcome::Wait {
        reason,
        recheck_after: ctx.timeouts.poll.min(left),
    }
}

fn act(action: BmcAction, next: Step) -> Outcome {
    Outcome::Act { action, next }
}

fn power_off(ctx: &StepInput<'_>) -> Outcome {
    match ctx.observed.power {
        PowerState::Off => Outcome::Transition {
            next: Step::EjectMedia,
        },
        PowerState::PoweringOff => Outcome::Transition {
            next: Step::WaitPoweredOff,
        },
        _ => act(
            BmcAction::Reset(ResetKind::GracefulShutdown),
            Step::WaitPoweredOff,
        ),
    }
}

/// Graceful shutdown was requested when the step started; force it after `graceful_off`,
/// give up `forced_off` later.
fn wait_powered_off(ctx: &StepInput<'_>) -> Outcome {
    let t = ctx.timeouts;
    let power = &ctx.observed.power;
    if *power == PowerState::Off {
        return Outcome::Transition {
            next: Step::EjectMedia,
        };
    }
    if ctx.attempts <= 1 {
        if ctx.elapsed() >= t.graceful_off {
            return act(BmcAction::Reset(ResetKind::ForceOff), Step::WaitPoweredOff);
        }
        return wait(
            ctx,
            format!("waiting for a graceful power off (BMC reports {power})"),
            t.graceful_off,
        );
    }
    let deadline = t.graceful_off + t.forced_off;
    if ctx.elapsed() >= deadline {
        return Outcome::Failed {
            reason: format!("power is still {power} after a graceful and then a forced power off"),
        };
    }
    wait(
        ctx,
        format!("waiting for a forced power off (BMC reports {power})"),
        deadline,
    )
}

fn eject(ctx: &StepInput<'_>, next: Step) -> Outcome {
    if ctx.observed.media.inserted {
        act(BmcAction::EjectMedia, next)
    } else {
        Outcome::Transition { next }
    }
}

/// A seed on the removable medium is ejected before anything else (then `this` again).
fn eject_seed(ctx: &StepInput<'_>, this: Step) -> Option<Outcome> {
    ctx.observed
        .seed_medium
        .as_ref()
        .filter(|m| m.inserted)
        .map(|_| act(BmcAction::EjectSeed, this))
}

/// The run's seed, inserted and then seen inserted before the image goes on the CD; None
/// when there is nothing (more) to do for it.
fn insert_seed(ctx: &StepInput<'_>, this: Step) -> Option<Outcome> {
    let seed = ctx.seed?;
    let Some(medium) = &ctx.observed.seed_medium else {
        return Some(match ctx.operation {
            Operation::Provision => Outcome::BookingFailed {
                reason: "spec.access cannot reach the host: its BMC has no second virtual \
                         medium (a USB stick or floppy) for the NoCloud seed"
                    .to_owned(),
            },
            // The lab's setting, not the booking's: the host cannot be wiped with evidence.
            Operation::Release => Outcome::Failed {
                reason: "the wipe needs a second virtual medium (a USB stick or floppy) for \
                         the seed it reports completion with, and this BMC has none: give \
                         the host a profile without provisioning.wipeImages, or a BMC with one"
                    .to_owned(),
            },
        });
    };
    match (medium.inserted, medium.image.as_deref()) {
        (true, Some(current)) if current == seed => None,
        // Someone else's seed (or image): eject it, insert ours on the next pass.
        (true, _) => Some(act(BmcAction::EjectSeed, this)),
        (false, _) if ctx.attempts >= MAX_ATTEMPTS_IN_STEP => Some(Outcome::Failed {
            reason: format!(
                "the BMC did not insert the seed on its removable medium after {} tries",
                ctx.attempts
            ),
        }),
        (false, _) => Some(act(BmcAction::InsertSeed, this)),
    }
}

fn insert(ctx: &StepInput<'_>, this: Step, next: Step) -> Outcome {
    let Some(image) = ctx.image else {
        return Outcome::Failed {
            reason: "no image URL to insert".to_owned(),
        };
    };
    let media = &ctx.observed.media;
    match (media.inserted, media.image.as_deref()) {
        (true, Some(current)) if current == image => Outcome::Transition { next },
        // Someone else's image: eject it and insert ours on the next pass.
        (true, _) => act(BmcAction::EjectMedia, this),
        (false, _) => act(BmcAction::InsertMedia(image.to_owned()), next),
    }
}

fn boot_mode_name(mode: BootMode) -> &'static str {
    match mode {
        BootMode::Uefi => "UEFI",
        BootMode::Legacy => "Legacy",
    }
}

/// The override is Cd, once, in the host's mode (a BMC that does not report the mode is
/// trusted).
fn boots_cd_once(o: &BootOverride, mode: BootMode) -> bool {
    o.target.as_deref() == Some("Cd")
        && o.enabled.as_deref() == Some("Once")
        && o.mode.as_deref().is_none_or(|m| m == boot_mode_name(mode))
}

fn set_boot_override(ctx: &StepInput<'_>, next: Step) -> Outcome {
    act(
        BmcAction::SetBootOverride {
            target: BootTarget::Cd,
            enabled: BootEnabled::Once,
            mode: ctx.boot_mode,
        },
        next,
    )
}

fn set_boot_once(ctx: &StepInput<'_>) -> Outcome {
    if boots_cd_once(&ctx.observed.boot_override, ctx.boot_mode) {
        Outcome::Transition {
            next: Step::PowerOn,
        }
    } else {
        set_boot_override(ctx, Step::PowerOn)
    }
}

fn is_on(power: &PowerState) -> bool {
    matches!(power, PowerState::On | PowerState::PoweringOn)
}

fn power_on(ctx: &StepInput<'_>) -> Outcome {
    if is_on(&ctx.observed.power) {
        Outcome::Transition {
            next: Step::WaitBooted,
        }
    } else {
        act(BmcAction::Reset(ResetKind::On), Step::WaitBooted)
    }
}

/// Done on BootProgress OSRunning where the BMC reports BootProgress, on the phone-home
/// callback, or (a BMC without BootProgress, profile without phone-home) after the
/// profile's fallback duration; in every case bounded by the boot timeout.
fn wait_booted(ctx: &StepInput<'_>) -> Outcome {
    let o = ctx.observed;
    let done = Outcome::Transition {
        next: Step::EjectAfterBoot,
    };
    if o.boot_progress.as_deref() == Some(OS_RUNNING) || o.phoned_home {
        return done;
    }
    let timeout = ctx.timeouts.boot;
    let waiting_for = match (&o.boot_progress, ctx.completion) {
        (Some(state), _) => format!("BootProgress OSRunning (BMC reports {state})"),
        (None, Completion::PhoneHome) => "the phone-home callback".to_owned(),
        // Some BMCs (sushy-tools) apply a power change seconds after accepting it: an OS
        // cannot be up before the BMC reports the power on.
        (None, Completion::After(_)) if !matches!(o.power, PowerState::On) => {
            "the BMC to report the power on".to_owned()
        }
        (None, Completion::After(d)) => {
            if ctx.elapsed() >= d {
                return done;
            }
            return wait(
                ctx,
                format!("assuming the OS is up {} after power-on", humantime_like(d)),
                d.min(timeout),
            );
        }
    };
    if ctx.elapsed() >= timeout {
        return Outcome::Failed {
            reason: format!(
                "no running OS {} after power-on: no {waiting_for}",
                humantime_like(timeout)
            ),
        };
    }
    wait(ctx, format!("waiting for {waiting_for}"), timeout)
}

/// Sets the override, then powers on; done once the host is on.
fn wipe_boot(ctx: &StepInput<'_>) -> Outcome {
    if is_on(&ctx.observed.power) {
        return Outcome::Transition {
            next: Step::WaitWiped,
        };
    }
    if ctx.attempts >= MAX_ATTEMPTS_IN_STEP {
        return Outcome::Failed {
            reason: format!(
                "the BMC did not power the host on into the wipe image after {} tries",
                ctx.attempts
            ),
        };
    }
    if boots_cd_once(&ctx.observed.boot_override, ctx.boot_mode) {
        act(BmcAction::Reset(ResetKind::On), Step::WipeBoot)
    } else {
        set_boot_override(ctx, Step::WipeBoot)
    }
}

/// The wipe image reports completion with the run's token, then powers the host off
/// (entered only once the host was on); if it stays on after reporting, the operator powers
/// it off. Off without the report is no wipe.
fn wait_wiped(ctx: &StepInput<'_>) -> Outcome {
    let o = ctx.observed;
    if o.power == PowerState::Off {
        if !o.phoned_home {
            return Outcome::Failed {
                reason: "the wipe image powered the host off without reporting completion \
                         (no phone-home with this release run's token): the wipe is not \
                         taken as done"
                    .to_owned(),
            };
        }
        return eject_seed(ctx, Step::WaitWiped).unwrap_or_else(|| eject(ctx, Step::Done));
    }
    let timeout = ctx.timeouts.wipe;
    if ctx.elapsed() >= timeout {
        return Outcome::Failed {
            reason: format!(
                "the wipe image still runs {} after power-on",
                humantime_like(timeout)
            ),
        };
    }
    if o.phoned_home && ctx.attempts <= 1 {
        return act(BmcAction::Reset(ResetKind::ForceOff), Step::WaitWiped);
    }
    wait(
        ctx,
        format!("waiting for the wipe to finish (BMC reports {})", o.power),
        timeout,
    )
}

/// Durations in reasons: `30m`, `2h`, `90s`.
fn humantime_like(d: TimeDelta) -> String {
    let s = d.num_seconds();
    match (s % 3600, s % 60) {
        (0, _) => format!("{}h", s / 3600),
        (_, 0) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}
