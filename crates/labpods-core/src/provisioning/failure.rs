//! Bounded retries: a failed step (timeout, refused BMC call) is retried with exponential
//! backoff; too many failures in a row put the host in Error with the reason.

use chrono::TimeDelta;
use labpods_api::v1alpha1::Operation;

use super::model::Step;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Failures in a row after which the host goes to Error.
    pub max_failures: u32,
    pub backoff_base: TimeDelta,
    pub backoff_max: TimeDelta,
}

/// The operator's documented defaults (its configuration's defaults are these).
impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            backoff_base: TimeDelta::seconds(5),
            backoff_max: TimeDelta::minutes(5),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// Store `step` (fresh clock, attempts 1) and `failures`, then run it after `after`. The
    /// adapter may add jitter to `after`; the core stays deterministic.
    Retry {
        step: Step,
        after: TimeDelta,
        failures: u32,
    },
    /// Put the host in Error with `reason` (and give its lease a spare if one fits).
    GiveUp { reason: String },
}

/// `failures` counts the earlier failures in a row (LabHost status `consecutiveFailures`).
pub fn after_failure(
    operation: Operation,
    step: Step,
    failures: u32,
    reason: &str,
    policy: &RetryPolicy,
) -> AfterFailure {
    let failures = failures.saturating_add(1);
    if failures >= policy.max_failures {
        return AfterFailure::GiveUp {
            reason: format!(
                "{operation:?} failed {failures} times in a row, last at step {step:?}: {reason}"
            ),
        };
    }
    let doubling = 1i32.checked_shl(failures - 1).unwrap_or(i32::MAX);
    let after = policy
        .backoff_base
        .checked_mul(doubling)
        .map_or(policy.backoff_max, |d| d.min(policy.backoff_max));
    AfterFailure::Retry {
        step: retry_from(step),
        after,
        failures,
    }
}

/// Where a failed step resumes. A wait that timed out restarts from the power off: the
/// host's state is unknown, and the steps after it are cheap and idempotent.
fn retry_from(step: Step) -> Step {
    match step {
        Step::WaitPoweredOff | Step::WaitBooted | Step::WaitWiped => Step::PowerOff,
        other => other,
    }
}
