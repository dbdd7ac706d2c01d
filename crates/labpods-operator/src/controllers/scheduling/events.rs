//! The Events a user reads in `kubectl describe podrequest`: one for each change of where
//! the booking stands (pure: from the status before and after a write).

use labpods_api::{
    conditions::{self, EXTENSION_REJECTED, SCHEDULED, find_condition},
    v1alpha1::{PodRequestPhase, PodRequestStatus},
};

/// One Event to publish on the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

/// What changed between `before` and `after` that a user wants told: a new phase (with the
/// status message), a request found unsatisfiable while it stays Pending, an extension
/// refused.
pub fn changed(before: Option<&PodRequestStatus>, after: &PodRequestStatus) -> Vec<Notice> {
    let mut notices = Vec::new();
    let message = after.message.clone().unwrap_or_default();
    let phase = |s: Option<&PodRequestStatus>| s.and_then(|s| s.phase);
    if let Some(new) = phase(Some(after)).filter(|new| phase(before) != Some(*new)) {
        notices.push(Notice {
            warning: new == PodRequestPhase::Failed,
            reason: format!("{new:?}"),
            note: message.clone(),
        });
    }
    let reason_of = |s: Option<&PodRequestStatus>, kind: &str| {
        s.and_then(|s| find_condition(&s.conditions, kind))
            .map(|c| {
                (
                    c.status == conditions::TRUE,
                    c.reason.clone(),
                    c.message.clone(),
                )
            })
    };
    if let Some((_, reason, note)) = reason_of(Some(after), SCHEDULED)
        .filter(|(_, reason, _)| reason == "Unsatisfiable")
        .filter(|now| reason_of(before, SCHEDULED).as_ref().map(|b| &b.1) != Some(&now.1))
    {
        notices.push(Notice {
            warning: true,
            reason,
            note,
        });
    }
    if let Some((_, _, note)) = reason_of(Some(after), EXTENSION_REJECTED)
        .filter(|(rejected, ..)| *rejected)
        .filter(|now| reason_of(before, EXTENSION_REJECTED).as_ref() != Some(now))
    {
        notices.push(Notice {
            warning: true,
            reason: "ExtensionRejected".to_owned(),
            note,
        });
    }
    notices
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
    use labpods_api::conditions::{new_condition, set_condition};

    use super::*;

    fn status(phase: PodRequestPhase, message: &str) -> PodRequestStatus {
        PodRequestStatus {
            phase: Some(phase),
            message: Some(message.to_owned()),
            ..PodRequestStatus::default()
        }
    }

    fn with(
        mut s: PodRequestStatus,
        kind: &str,
        ok: bool,
        reason: &str,
        m: &str,
    ) -> PodRequestStatus {
        let at = Time(Timestamp::UNIX_EPOCH);
        set_condition(
            &mut s.conditions,
            new_condition(kind, ok, reason, m, None, &at),
            &at,
        );
        s
    }

    fn reasons(notices: &[Notice]) -> Vec<(&str, bool)> {
        notices
            .iter()
            .map(|n| (n.reason.as_str(), n.warning))
            .collect()
    }

    #[test]
    fn a_new_phase_is_told_once_with_the_status_message() {
        let pending = status(PodRequestPhase::Pending, "waiting for 2 hosts");
        let ready = status(PodRequestPhase::Ready, "2 hosts run the image");
        let notices = changed(Some(&pending), &ready);
        assert_eq!(reasons(&notices), [("Ready", false)]);
        assert_eq!(notices[0].note, "2 hosts run the image");
        assert!(changed(Some(&ready), &ready).is_empty());
        let failed = status(PodRequestPhase::Failed, "spec.end is not after now");
        assert_eq!(reasons(&changed(None, &failed)), [("Failed", true)]);
    }

    #[test]
    fn unsatisfiable_and_a_refused_extension_are_warnings() {
        let pending = status(PodRequestPhase::Pending, "waiting");
        let unsatisfiable = with(
            pending.clone(),
            SCHEDULED,
            false,
            "Unsatisfiable",
            "too big",
        );
        assert_eq!(
            reasons(&changed(Some(&pending), &unsatisfiable)),
            [("Unsatisfiable", true)]
        );
        assert!(changed(Some(&unsatisfiable), &unsatisfiable).is_empty());
        let ready = status(PodRequestPhase::Ready, "running");
        let rejected = with(
            ready.clone(),
            EXTENSION_REJECTED,
            true,
            "Rejected",
            "host taken",
        );
        assert_eq!(
            reasons(&changed(Some(&ready), &rejected)),
            [("ExtensionRejected", true)]
        );
        assert!(changed(Some(&rejected), &rejected).is_empty());
    }
}
