//! Fixtures shared by the unit tests of more than one module.

use std::{sync::Mutex, time::Duration};

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use labpods_api::conditions::{BOOKING_FAILED, new_condition};

use crate::context::Clock;

/// Adds the condition a host's run reports when the booking's image was refused.
pub fn image_refused(conditions: &mut Vec<Condition>, why: &str, at: &Time) {
    conditions.push(new_condition(
        BOOKING_FAILED,
        true,
        "ImageRefused",
        why,
        None,
        at,
    ));
}

/// A clock that moves only when told to, for tests that step time through a `Context`
/// (test-only: production always runs on `SystemClock`).
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: Duration) {
        if let Ok(mut now) = self.0.lock()
            && let Ok(next) = now.checked_add(by)
        {
            *now = next;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.0
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|p| *p.into_inner())
    }
}

#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = Timestamp::from_second(1_800_000_000).unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now().as_second(), 1_800_000_090);
    }
}
