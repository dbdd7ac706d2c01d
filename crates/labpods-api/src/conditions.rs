//! Condition types used by the labpods resources, and a pure helper to set one in a list.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The object is doing what was asked (host provisioned, lease/request ready).
pub const READY: &str = "Ready";
/// A PodRequest's hosts are reserved for its window.
pub const SCHEDULED: &str = "Scheduled";
/// The spec breaks a validation rule: one that needs the clock or the lab's policy, or one of
/// the CRD's rules on an object stored before the rule existed. The message says which field
/// and the fix.
pub const INVALID: &str = "Invalid";
/// A Lease lost a host and no spare fitted.
pub const DEGRADED: &str = "Degraded";
/// A booking ends soon.
pub const EXPIRING_SOON: &str = "ExpiringSoon";
/// A change of a booking's window could not be honoured (hosts booked by someone else).
pub const EXTENSION_REJECTED: &str = "ExtensionRejected";
/// The LabHost's BMC answered the last call.
pub const BMC_REACHABLE: &str = "BmcReachable";
/// A LabHost's release could not complete (power-off, wipe or eject failed): it may still
/// hold a tenant's OS and data, so it is out of the pool until a lab admin's action runs a
/// full release (`spec.maintenance` on, then off).
pub const QUARANTINED: &str = "Quarantined";
/// The booking cannot be provisioned because of its own input (an image URL the BMCs cannot
/// use): on a LabHost, its run for the booking gave up and the host is released normally; on
/// a Lease, the booking ends (its PodRequest Failed). The message names the field.
pub const BOOKING_FAILED: &str = "BookingFailed";

/// False when a PodRequest's image was refused before any host was claimed: its digest is not
/// `spec.image.checksum`, or the operator could not download it to check. The message names
/// the field and the fix.
pub const IMAGE_VERIFIED: &str = "ImageVerified";

/// False on a Lease the operator did not write (forged, or edited by someone else): nothing is
/// provisioned for it. Absent on the Leases it wrote.
pub const AUTHENTIC: &str = "Authentic";

/// `status` value of a true condition.
pub const TRUE: &str = "True";
/// `status` value of a false condition.
pub const FALSE: &str = "False";

/// A condition of `type_`, true or false, observed at `observed_generation`, with the
/// transition time `now` (kept by [`set_condition`] when the status does not flip).
pub fn new_condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: &Time,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { TRUE } else { FALSE }.to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation,
        last_transition_time: now.clone(),
    }
}

/// Put `new` into `conditions`, replacing the condition of the same type.
///
/// `lastTransitionTime` becomes `now` only when the condition is new or its status flips;
/// otherwise the old time is kept, so an unchanged status writes the same bytes and does not
/// retrigger reconciles. The list stays sorted by type.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition, now: &Time) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            new.last_transition_time = if old.status == new.status {
                old.last_transition_time.clone()
            } else {
                now.clone()
            };
            *old = new;
        }
        None => {
            new.last_transition_time = now.clone();
            conditions.push(new);
        }
    }
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// Remove the condition of `type_`, if any.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// The condition of `type_`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` is present and true.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == TRUE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("test timestamps are in range"))
    }

    #[test]
    fn new_condition_gets_now() {
        let mut list = Vec::new();
        set_condition(
            &mut list,
            new_condition(READY, false, "Waiting", "m", Some(1), &at(5)),
            &at(10),
        );
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].last_transition_time, at(10));
        assert_eq!(list[0].status, FALSE);
    }

    #[test]
    fn same_status_keeps_transition_time_but_updates_message_and_generation() {
        let mut list = Vec::new();
        set_condition(
            &mut list,
            new_condition(READY, false, "Waiting", "a", Some(1), &at(0)),
            &at(10),
        );
        set_condition(
            &mut list,
            new_condition(READY, false, "Waiting", "b", Some(2), &at(0)),
            &at(20),
        );
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].last_transition_time, at(10));
        assert_eq!(list[0].message, "b");
        assert_eq!(list[0].observed_generation, Some(2));
    }

    #[test]
    fn flip_updates_transition_time() {
        let mut list = Vec::new();
        set_condition(
            &mut list,
            new_condition(READY, false, "Waiting", "", None, &at(0)),
            &at(10),
        );
        set_condition(
            &mut list,
            new_condition(READY, true, "Provisioned", "", None, &at(0)),
            &at(20),
        );
        assert_eq!(list[0].last_transition_time, at(20));
        assert!(is_true(&list, READY));
    }

    #[test]
    fn list_is_sorted_by_type_and_one_per_type() {
        let mut list = Vec::new();
        for t in [SCHEDULED, READY, INVALID, READY] {
            set_condition(
                &mut list,
                new_condition(t, true, "R", "", None, &at(0)),
                &at(1),
            );
        }
        let types: Vec<_> = list.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [INVALID, READY, SCHEDULED]);
        remove_condition(&mut list, READY);
        assert!(find_condition(&list, READY).is_none());
        assert!(!is_true(&list, READY));
    }
}
