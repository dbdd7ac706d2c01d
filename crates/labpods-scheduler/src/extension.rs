//! Extending a running booking: accepted unless a later reservation needs its hosts or the
//! lab's policy forbids it.

use super::model::{PlanInput, RequestKey, Time, fmt_duration, fmt_time};

/// A lease asking for a later end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub owner: RequestKey,
    pub hosts: Vec<String>,
    pub start: Time,
    /// The end the booking was first granted: extensions are counted against the budget
    /// from there.
    pub original_end: Time,
    pub current_end: Time,
    pub new_end: Time,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionDecision {
    Accepted,
    Rejected { reason: String },
}

/// Checks `ext` against the reservations and policy in `lab` (its requests are ignored:
/// waiting requests hold nothing). Shortening is always accepted.
pub fn check_extension(ext: &Extension, lab: &PlanInput) -> ExtensionDecision {
    let policy = &lab.policy;
    if ext.new_end <= ext.current_end {
        return ExtensionDecision::Accepted;
    }
    let reject = |reason: String| ExtensionDecision::Rejected { reason };
    if let Some(max) = policy
        .max_duration
        .filter(|max| ext.new_end - ext.start > *max)
    {
        return reject(format!(
            "the booking would last {}, more than the lab's maximum of {}",
            fmt_duration(ext.new_end - ext.start),
            fmt_duration(max)
        ));
    }
    if let Some(budget) = policy
        .extension_budget
        .filter(|b| ext.new_end - ext.original_end > *b)
    {
        return reject(format!(
            "extensions may add at most {} to a booking; this one would add {} in total",
            fmt_duration(budget),
            fmt_duration(ext.new_end - ext.original_end)
        ));
    }
    // The hosts must also be released (allowance) before the next booking starts.
    let needed_until = ext.new_end + policy.release_allowance;
    let conflict = lab
        .reservations
        .iter()
        .filter(|r| r.owner != ext.owner && ext.hosts.contains(&r.host))
        .filter(|r| r.start < needed_until && r.end + policy.release_allowance > ext.current_end)
        .min_by_key(|r| (r.start, &r.host));
    match conflict {
        None => ExtensionDecision::Accepted,
        Some(r) => {
            let latest = (r.start - policy.release_allowance).max(ext.current_end);
            reject(format!(
                "host {} is reserved by {} from {}: the booking can end at {} at the latest",
                r.host,
                r.owner,
                fmt_time(r.start),
                fmt_time(latest)
            ))
        }
    }
}
