//! Fixtures shared by the unit tests of more than one module.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use labpods_api::conditions::{BOOKING_FAILED, new_condition};

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
