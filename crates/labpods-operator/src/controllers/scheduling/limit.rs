//! The per-namespace limit on open PodRequests (`policy.maxOpenRequestsPerNamespace`): every
//! open request costs every scheduler pass, so one namespace flooding the lab with requests
//! would slow everyone's. Past the limit the newest requests wait unscheduled, told why, and
//! move up as earlier ones end (pure).

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::jiff::Timestamp;
use labpods_api::v1alpha1::PodRequest;

/// An open request: bound (a Lease serves it) or waiting to be scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub created: Option<Timestamp>,
    pub bound: bool,
}

impl<'a> Open<'a> {
    pub fn of(pr: &'a PodRequest, bound: bool) -> Self {
        Self {
            namespace: pr.metadata.namespace.as_deref().unwrap_or_default(),
            name: pr.metadata.name.as_deref().unwrap_or_default(),
            created: pr.metadata.creation_timestamp.as_ref().map(|t| t.0),
            bound,
        }
    }
}

/// The waiting requests held back, as `(namespace, name)`: per namespace, bound requests count
/// first (they hold hosts already), then waiting ones oldest first; a waiting request whose
/// place is past `limit` is held back. A bound request is never held back.
pub fn over_limit<'a>(open: &[Open<'a>], limit: u32) -> HashSet<(&'a str, &'a str)> {
    let mut by_namespace: BTreeMap<&str, Vec<&Open<'a>>> = BTreeMap::new();
    for o in open {
        by_namespace.entry(o.namespace).or_default().push(o);
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    by_namespace
        .into_values()
        .flat_map(|mut requests| {
            requests.sort_by_key(|o| (!o.bound, o.created, o.name));
            requests
                .into_iter()
                .skip(limit)
                .filter(|o| !o.bound)
                .map(|o| (o.namespace, o.name))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What a held-back request says.
pub fn message(namespace: &str, open: usize, limit: u32) -> String {
    format!(
        "namespace {namespace} has {open} open PodRequests, over the limit of {limit} \
         (policy.maxOpenRequestsPerNamespace): this one waits until earlier ones end or are \
         deleted"
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn open<'a>(namespace: &'a str, name: &'a str, second: i64, bound: bool) -> Open<'a> {
        Open {
            namespace,
            name,
            created: Some(Timestamp::from_second(second).unwrap()),
            bound,
        }
    }

    #[test]
    fn the_newest_waiting_requests_past_the_limit_wait_and_bound_ones_never() {
        let requests = [
            open("a", "new", 30, false),
            open("a", "old", 10, false),
            open("a", "running", 40, true),
            open("a", "middle", 20, false),
            open("b", "alone", 50, false),
        ];
        let held = over_limit(&requests, 2);
        assert_eq!(held, [("a", "new"), ("a", "middle")].into());
        let bound_over = [
            open("a", "r1", 1, true),
            open("a", "r2", 2, true),
            open("a", "w", 3, false),
        ];
        assert_eq!(over_limit(&bound_over, 1), [("a", "w")].into());
    }

    #[test]
    fn the_message_names_the_limit_and_its_setting() {
        let m = message("team", 51, 50);
        assert!(
            m.contains("51 open PodRequests, over the limit of 50"),
            "{m}"
        );
        assert!(m.contains("policy.maxOpenRequestsPerNamespace"), "{m}");
    }
}
