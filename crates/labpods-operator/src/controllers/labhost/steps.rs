//! Adapter between the pure provisioning/release state machines (`labpods_core::provisioning`)
//! and the hardware: observes what the stored step needs from the BMC, asks the step's handler,
//! performs the action, and stores the next step in the status (the caller writes it), so a
//! restarted operator resumes at the same step.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{Api, ResourceExt};
use labpods_api::conditions::{self, BOOKING_FAILED, QUARANTINED};
use labpods_api::v1alpha1::{
    BootMode, HostState, LabHost, LabHostStatus, Operation, ProvisioningProgress, ProvisioningStep,
};
use labpods_redfish::{Bmc, BootOverride, MediaState, Medium, PowerState};
use url::Url;

use super::{
    bmc::{call, reset},
    phone_home,
    seed::SeedServer,
    status,
};
use crate::{
    context::Context,
    error::Result,
    http::SeedError,
    provisioning::{
        self, AfterFailure, BmcAction, Completion, FIRST_STEP, Observed, Outcome, RetryPolicy,
        StepInput, Timeouts,
    },
};

/// Steps run back to back in one pass at most (a pass normally stops at the first wait).
const MAX_STEPS_PER_PASS: usize = 16;

/// How a pass through the state machine ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// A step waits on the hardware, or a retry waits out its backoff: look again then.
    Waiting(Duration),
    Provisioned,
    Released,
    /// The host went to Error; the reason is in the status.
    Failed,
}

/// The apiserver stores Time to the second: cut so that the record reads back equal.
fn to_second(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

fn chrono(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().unsigned_abs())
        .unwrap_or_default()
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// A fresh run record at the first step.
pub fn start(
    operation: Operation,
    image: Option<String>,
    lease: String,
    now: &Time,
) -> ProvisioningProgress {
    let now = to_second(now.0);
    ProvisioningProgress {
        operation,
        step: FIRST_STEP,
        image,
        attempts: 1,
        started_at: now.clone(),
        step_started_at: now,
        lease,
    }
}

/// Stores `next`: a new step restarts its clock with attempts 1; the same step counts one
/// more attempt (a follow-up action within the step).
fn enter(progress: &mut ProvisioningProgress, next: ProvisioningStep, now: &Time) {
    if next == progress.step {
        progress.attempts = progress.attempts.saturating_add(1);
    } else {
        progress.step = next;
        progress.attempts = 1;
        progress.step_started_at = to_second(now.0);
    }
}

fn timeouts(ctx: &Context) -> Timeouts {
    let c = &ctx.config;
    Timeouts {
        graceful_off: delta(c.provisioning.graceful_shutdown_timeout),
        forced_off: delta(c.provisioning.forced_power_off_timeout),
        boot: delta(c.provisioning.timeout),
        wipe: delta(c.provisioning.wipe_timeout),
        poll: delta(c.polling.busy_interval),
    }
}

fn retry_policy(ctx: &Context) -> RetryPolicy {
    let c = &ctx.config;
    RetryPolicy {
        max_failures: c.provisioning.max_attempts,
        backoff_base: delta(c.polling.error_backoff_base),
        backoff_max: delta(c.polling.error_backoff_max),
    }
}

/// Reads what the step's handler looks at, and only that (each read is a Redfish call; the
/// handlers ignore the other fields for these steps).
async fn observe(
    ctx: &Context,
    bmc: &dyn Bmc,
    host: &LabHost,
    progress: &ProvisioningProgress,
) -> Result<Observed> {
    use ProvisioningStep as S;
    let step = progress.step;
    let power = call(ctx, "power_state", bmc.power_state()).await?;
    let media = if matches!(
        step,
        S::EjectMedia | S::InsertMedia | S::EjectAfterBoot | S::WipeInsertMedia | S::WaitWiped
    ) {
        call(ctx, "media_state", bmc.media_state()).await?
    } else {
        MediaState::default()
    };
    let seed_medium = if matches!(
        step,
        S::EjectMedia | S::InsertMedia | S::WipeInsertMedia | S::WaitWiped
    ) && call(ctx, "has_medium", bmc.has_medium(Medium::Removable)).await?
    {
        Some(call(ctx, "media_state", bmc.media_state_on(Medium::Removable)).await?)
    } else {
        None
    };
    let boot_override = if matches!(step, S::SetBootOnce | S::WipeBoot) {
        call(ctx, "boot_override", bmc.boot_override()).await?
    } else {
        BootOverride::default()
    };
    let boot_progress = if step == S::WaitBooted {
        call(ctx, "boot_progress", bmc.boot_progress()).await?
    } else {
        None
    };
    let phoned_home = if step == S::WaitWiped {
        wipe_reported(ctx, host, progress, &power).await?
    } else {
        phone_home::received(host, progress)
    };
    Ok(Observed {
        power,
        boot_progress,
        media,
        seed_medium,
        boot_override,
        phoned_home,
    })
}

/// The seed URL of a run at the step that inserts it (a provisioning run's InsertMedia,
/// when its host gets a seed, see [`SeedServer::delivery`]; a wipe's WipeInsertMedia); None
/// at every other step.
async fn seed_url(
    ctx: &Context,
    host: &LabHost,
    progress: &ProvisioningProgress,
) -> std::result::Result<Option<Url>, SeedError> {
    let inserting = matches!(
        (progress.operation, progress.step),
        (Operation::Provision, ProvisioningStep::InsertMedia)
            | (Operation::Release, ProvisioningStep::WipeInsertMedia)
    );
    // From this pass's progress: the host's stored status may predate the run.
    let Some((run, purpose)) = phone_home::run_of(host, progress).filter(|_| inserting) else {
        return Ok(None);
    };
    SeedServer::new(
        ctx.client.clone(),
        ctx.phone_home.clone(),
        ctx.config.phone_home.external_base_url.clone(),
        ctx.signer.clone(),
    )
    .delivery(host, &run, &purpose)
    .await
}

/// Whether the wipe reported, read again from the API server when the host is already off
/// without it: the wipe image reports, then powers off, and the host this pass started
/// from may predate the report.
async fn wipe_reported(
    ctx: &Context,
    host: &LabHost,
    progress: &ProvisioningProgress,
    power: &PowerState,
) -> Result<bool> {
    let received = phone_home::received(host, progress);
    if received || *power != PowerState::Off {
        return Ok(received);
    }
    let api: Api<LabHost> = Api::all(ctx.client.clone());
    let fresh = api.get_opt(&host.name_any()).await?;
    Ok(fresh.is_some_and(|h| phone_home::received(&h, progress)))
}

async fn perform(
    ctx: &Context,
    bmc: &dyn Bmc,
    action: &BmcAction,
    seed: Option<&Url>,
) -> Result<()> {
    ctx.ensure_leader()?;
    match action {
        BmcAction::Reset(kind) => reset(ctx, bmc, *kind).await?,
        BmcAction::InsertMedia(image) => {
            let url = image_url(image)?;
            call(ctx, "insert_media", bmc.insert_media(&url)).await?;
        }
        BmcAction::EjectMedia => call(ctx, "eject_media", bmc.eject_media()).await?,
        BmcAction::InsertSeed => {
            // The handler asks for it only with the run's seed URL in its input.
            let url = seed.ok_or_else(|| {
                labpods_redfish::Error::InvalidImageUrl("this run has no seed URL".into())
            })?;
            call(
                ctx,
                "insert_media",
                bmc.insert_media_on(Medium::Removable, url),
            )
            .await?;
        }
        BmcAction::EjectSeed => {
            call(ctx, "eject_media", bmc.eject_media_on(Medium::Removable)).await?;
        }
        BmcAction::SetBootOverride {
            target,
            enabled,
            mode,
        } => {
            call(
                ctx,
                "set_boot_override",
                bmc.set_boot_override(*target, *enabled, *mode),
            )
            .await?;
        }
    }
    Ok(())
}

/// The image URL to hand to the BMC. Credentials in it (`user:pass@`) are refused, not
/// stripped: the BMC would need them, and they would end up in its logs, our status and
/// Events. Messages never repeat the URL's userinfo.
fn image_url(image: &str) -> labpods_redfish::Result<url::Url> {
    let invalid = labpods_redfish::Error::InvalidImageUrl;
    let url = url::Url::parse(image)
        .map_err(|e| invalid(format!("spec.image.url {}: {e}", without_userinfo(image))))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(format!(
            "spec.image.url {} holds credentials (user:password@): serve the image without \
             them (a URL the BMC can fetch as it is, e.g. a pre-signed one)",
            without_userinfo(image)
        )));
    }
    Ok(url)
}

/// `url` with whatever sits between `scheme://` and `@` replaced by `***`; works on strings
/// that do not parse as URLs.
fn without_userinfo(url: &str) -> std::borrow::Cow<'_, str> {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.into();
    };
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]).into(),
        None => url.into(),
    }
}

/// Runs the stored step and the ones it leads to at once, until a wait, the end, or a
/// failure. Kubernetes errors and lost leadership propagate; BMC failures and step failures
/// go through the retry policy (`provisioning::after_failure`).
pub async fn advance(
    ctx: &Context,
    host: &LabHost,
    bmc: &dyn Bmc,
    status: &mut LabHostStatus,
) -> Result<Finished> {
    let timeouts = timeouts(ctx);
    let completion = Completion::After(delta(
        ctx.config
            .provisioning
            .boot_fallback_for(&host.spec.profile),
    ));
    let boot_mode = match host.spec.boot_mode {
        BootMode::Uefi => labpods_redfish::BootMode::Uefi,
        BootMode::Legacy => labpods_redfish::BootMode::Legacy,
    };
    for _ in 0..MAX_STEPS_PER_PASS {
        let Some(progress) = status.provisioning.clone() else {
            return Ok(Finished::Waiting(ctx.config.polling.busy_interval));
        };
        let now = Time(ctx.clock.now());
        let observed = match observe(ctx, bmc, host, &progress).await {
            Ok(o) => o,
            Err(crate::error::Error::Bmc(e)) => {
                let reason = e.to_string();
                return Ok(failed(ctx, host, status, &progress, reason, Fault::Host));
            }
            Err(other) => return Err(other),
        };
        status.bmc_reachable = Some(true);
        status.power = Some(status::power(&observed.power));
        let seed = match seed_url(ctx, host, &progress).await {
            Ok(url) => url,
            Err(SeedError::Booking(reason)) => {
                let fault = Fault::Booking(Input::Access);
                return Ok(failed(ctx, host, status, &progress, reason, fault));
            }
            Err(SeedError::Kube(e)) => return Err(e.into()),
            Err(SeedError::NotFound) => None,
        };
        let input = StepInput {
            operation: progress.operation,
            attempts: progress.attempts.max(1),
            step_started: chrono(&progress.step_started_at),
            now: chrono(&now),
            observed: &observed,
            image: progress.image.as_deref(),
            seed: seed.as_ref().map(Url::as_str),
            boot_mode,
            completion,
            timeouts: &timeouts,
        };
        let outcome = provisioning::handle(progress.step, &input);
        tracing::debug!(step = ?progress.step, ?outcome, "step");
        match outcome {
            Outcome::Act { action, next } => {
                match perform(ctx, bmc, &action, seed.as_ref()).await {
                    Ok(()) => {}
                    Err(crate::error::Error::Bmc(e)) => {
                        let fault = fault_of(&action, progress.operation, &e);
                        return Ok(failed(ctx, host, status, &progress, e.to_string(), fault));
                    }
                    Err(other) => return Err(other),
                }
                if let Some(p) = status.provisioning.as_mut() {
                    enter(p, next, &now);
                }
            }
            Outcome::Transition { next } => {
                if let Some(p) = status.provisioning.as_mut() {
                    enter(p, next, &now);
                }
            }
            Outcome::Wait {
                reason,
                recheck_after,
            } => {
                tracing::debug!(step = ?progress.step, %reason, "waiting");
                return Ok(Finished::Waiting(
                    recheck_after
                        .to_std()
                        .unwrap_or(ctx.config.polling.busy_interval),
                ));
            }
            Outcome::Done => return Ok(done(status, &progress)),
            Outcome::Failed { reason } => {
                return Ok(failed(ctx, host, status, &progress, reason, Fault::Host));
            }
            Outcome::BookingFailed { reason } => {
                let fault = Fault::Booking(Input::Access);
                return Ok(failed(ctx, host, status, &progress, reason, fault));
            }
        }
    }
    Ok(Finished::Waiting(ctx.config.polling.busy_interval))
}

fn done(status: &mut LabHostStatus, progress: &ProvisioningProgress) -> Finished {
    status.provisioning = None;
    status.consecutive_failures = None;
    status.last_error = None;
    match progress.operation {
        Operation::Provision => {
            status.state = Some(HostState::Provisioned);
            status.current_image = progress.image.clone();
            // The OS may phone home after the BMC reported it running: with this run's token.
            status.booted_run = Some(progress.started_at.clone());
            Finished::Provisioned
        }
        Operation::Release => {
            conditions::remove_condition(&mut status.conditions, QUARANTINED);
            Finished::Released
        }
    }
}

/// Marks a host whose release gave up: it may still hold the tenant's OS and data. The
/// condition is what keeps it out of the pool once its claim is gone (`plan`), until a
/// completed release removes it.
fn quarantine(
    status: &mut LabHostStatus,
    lease: &str,
    reason: &str,
    generation: Option<i64>,
    now: &Time,
) {
    let after = if lease.is_empty() {
        "the release a lab admin asked for".to_owned()
    } else {
        format!("the release after lease {lease}")
    };
    let message = super::status::bounded(format!(
        "{after} could not complete ({reason}); the host may still hold the tenant's OS and \
         data: it stays out of the pool and is powered off whenever its BMC answers. Fix \
         the BMC or hardware, then set spec.maintenance to true and back to false to run a \
         full release"
    ));
    let c = conditions::new_condition(QUARANTINED, true, "ReleaseFailed", message, generation, now);
    conditions::set_condition(&mut status.conditions, c, now);
}

/// A failed step or BMC call: retry from where the policy says after its backoff, or give
/// up and put the host in Error (keeping the step for the post-mortem).
/// Whose mistake a failure is: only the host's own faults take it out of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// BMC unreachable, power that will not change, a step that timed out.
    Host,
    /// The booking's input cannot be used.
    Booking(Input),
}

/// Which of the booking's input a booking failure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// The BMC answered that it cannot use the booking's image.
    Image,
    /// `spec.access` cannot reach the host: its seed cannot be made, or the BMC has no
    /// medium for it.
    Access,
}

/// A refused InsertMedia of the booking's image is the booking's fault: the BMC answered,
/// about the URL it was given (a server it cannot reach, a URL it cannot use). Answers about
/// the session, a conflict or overload say nothing about the image.
fn fault_of(action: &BmcAction, operation: Operation, error: &labpods_redfish::Error) -> Fault {
    use labpods_redfish::Error as E;
    let about_the_image = match error {
        E::InvalidImageUrl(_) | E::TaskFailed { .. } => true,
        E::Status { status, .. } => !matches!(status, 401 | 403 | 409 | 429 | 503),
        _ => false,
    };
    let inserting_the_booking_image =
        operation == Operation::Provision && matches!(action, BmcAction::InsertMedia(_));
    if inserting_the_booking_image && about_the_image {
        Fault::Booking(Input::Image)
    } else {
        Fault::Host
    }
}

/// A release run after `lease`, with the profile's wipe image when it has one.
pub fn start_release(
    ctx: &Context,
    host: &LabHost,
    lease: String,
    now: &Time,
) -> ProvisioningProgress {
    let wipe = ctx
        .config
        .provisioning
        .wipe_images
        .get(&host.spec.profile)
        .map(ToString::to_string);
    start(Operation::Release, wipe, lease, now)
}

/// The booking's input cannot be used: the run ends without blaming the host. The condition
/// tells the Lease controller to end the booking (Failed, with this message); the host is
/// released like after any booking.
fn booking_failed(
    ctx: &Context,
    host: &LabHost,
    status: &mut LabHostStatus,
    progress: &ProvisioningProgress,
    reason: &str,
    input: Input,
) -> Finished {
    let (why, message) = match input {
        Input::Image => (
            "ImageRefused",
            format!(
                "spec.image.url {} cannot be used: {reason}. Give the PodRequest an image URL \
                 the lab's BMCs can fetch, and book again",
                progress
                    .image
                    .as_deref()
                    .map(without_userinfo)
                    .unwrap_or_default()
            ),
        ),
        // The reason names the field (spec.access...); never the user data.
        Input::Access => (
            "AccessRefused",
            format!("{reason}. Fix the PodRequest's access, and book again"),
        ),
    };
    let message = super::status::bounded(message);
    tracing::warn!(%message, "the booking's input failed: releasing the host");
    let now = Time(ctx.clock.now());
    let generation = host.metadata.generation;
    let c = conditions::new_condition(BOOKING_FAILED, true, why, message.clone(), generation, &now);
    conditions::set_condition(&mut status.conditions, c, &now);
    status.consecutive_failures = None;
    status.last_error = Some(message);
    phone_home::forget(status);
    status.provisioning = Some(start_release(ctx, host, progress.lease.clone(), &now));
    status.state = Some(HostState::Releasing);
    Finished::Waiting(ctx.config.polling.busy_interval)
}

fn failed(
    ctx: &Context,
    host: &LabHost,
    status: &mut LabHostStatus,
    progress: &ProvisioningProgress,
    reason: String,
    fault: Fault,
) -> Finished {
    // It goes into status and an Event; BMC error text is unbounded.
    let reason = super::status::bounded(reason);
    let failures = status.consecutive_failures.unwrap_or(0);
    match provisioning::after_failure(
        progress.operation,
        progress.step,
        failures,
        &reason,
        &retry_policy(ctx),
    ) {
        AfterFailure::Retry {
            step,
            after,
            failures,
        } => {
            tracing::warn!(step = ?progress.step, %reason, failures, "step failed; retrying");
            if let Some(p) = status.provisioning.as_mut() {
                let now = Time(ctx.clock.now());
                p.step = step;
                p.attempts = 1;
                p.step_started_at = to_second(now.0);
            }
            status.consecutive_failures = Some(failures);
            status.last_error = Some(reason);
            let after = after
                .to_std()
                .unwrap_or(ctx.config.polling.error_backoff_base);
            Finished::Waiting(after + after.mul_f64(rand::random::<f64>() * 0.1))
        }
        AfterFailure::GiveUp { reason } => {
            if let Fault::Booking(input) = fault {
                return booking_failed(ctx, host, status, progress, &reason, input);
            }
            tracing::warn!(%reason, "giving up: host goes to Error");
            status.consecutive_failures = Some(failures.saturating_add(1));
            if progress.operation == Operation::Release {
                let now = Time(ctx.clock.now());
                quarantine(
                    status,
                    &progress.lease,
                    &reason,
                    host.metadata.generation,
                    &now,
                );
            }
            status.last_error = Some(reason);
            status.state = Some(HostState::Error);
            Finished::Failed
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {

    #[test]
    fn image_urls_with_credentials_are_refused_without_showing_them() {
        let err = image_url("https://alice:s3cret@images.example/os.iso").unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("spec.image.url https://***@images.example/os.iso holds credentials"),
            "{message}"
        );
        assert!(
            !message.contains("s3cret") && !message.contains("alice"),
            "{message}"
        );
        let err = image_url("https://token@images.example/os.iso").unwrap_err();
        assert!(!err.to_string().contains("token"), "{err}");
        // Unparseable, credentials and all: still not shown.
        let err = image_url("https://bob:pw@[::1/os.iso").unwrap_err();
        assert!(!err.to_string().contains("bob:pw"), "{err}");
        assert_eq!(
            image_url("https://images.example/os.iso?sig=abc")
                .unwrap()
                .as_str(),
            "https://images.example/os.iso?sig=abc"
        );
        assert_eq!(without_userinfo("not a url"), "not a url");
    }
    use super::*;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn a_new_run_starts_at_power_off_with_whole_seconds() {
        let now = Time(
            Timestamp::from_second(100)
                .unwrap()
                .checked_add(k8s_openapi::jiff::SignedDuration::from_millis(700))
                .unwrap(),
        );
        let p = start(
            Operation::Provision,
            Some("http://i/x.iso".into()),
            "l".into(),
            &now,
        );
        assert_eq!(p.step, ProvisioningStep::PowerOff);
        assert_eq!(p.attempts, 1);
        assert_eq!(p.started_at, at(100));
        assert_eq!(p.step_started_at, at(100));
    }

    #[test]
    fn entering_a_step_restarts_its_clock_and_repeating_counts_attempts() {
        let mut p = start(Operation::Provision, None, "l".into(), &at(100));
        enter(&mut p, ProvisioningStep::WaitPoweredOff, &at(110));
        assert_eq!(
            (p.step, p.attempts, p.step_started_at.clone()),
            (ProvisioningStep::WaitPoweredOff, 1, at(110))
        );
        enter(&mut p, ProvisioningStep::WaitPoweredOff, &at(250));
        assert_eq!((p.attempts, p.step_started_at.clone()), (2, at(110)));
    }

    #[test]
    fn times_convert_exactly() {
        assert_eq!(chrono(&at(1_800_000_000)).timestamp(), 1_800_000_000);
        assert_eq!(delta(Duration::from_secs(90)), TimeDelta::seconds(90));
    }

    #[test]
    fn done_records_the_image_and_clears_the_run() {
        let mut status = LabHostStatus {
            consecutive_failures: Some(2),
            last_error: Some("x".into()),
            ..LabHostStatus::default()
        };
        let p = start(
            Operation::Provision,
            Some("http://i/x.iso".into()),
            "l".into(),
            &at(1),
        );
        status.provisioning = Some(p.clone());
        assert_eq!(done(&mut status, &p), Finished::Provisioned);
        assert_eq!(status.state, Some(HostState::Provisioned));
        assert_eq!(status.current_image.as_deref(), Some("http://i/x.iso"));
        assert_eq!(
            (
                status.provisioning,
                status.consecutive_failures,
                status.last_error
            ),
            (None, None, None)
        );
    }
}
