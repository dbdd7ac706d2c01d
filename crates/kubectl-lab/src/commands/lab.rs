//! The lab as the plugin shows it (pure): every host with the bookings that hold or reserve
//! it, from the LabHosts and the Leases (a Lease lists its hosts and its window).

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use labpods_api::v1alpha1::{HostState, LABEL_LAB, LabHost, Lease, LeasePhase};

/// A window of a booking on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub namespace: String,
    pub name: String,
    pub role: String,
    pub phase: Option<LeasePhase>,
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Booking {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Holds the host at `t`: inside its window, or still releasing after it.
    pub fn holds_at(&self, t: Timestamp) -> bool {
        (self.start <= t && t < self.end) || self.phase == Some(LeasePhase::Releasing)
    }
}

#[derive(Debug, Clone)]
pub struct HostView {
    pub name: String,
    pub lab: String,
    pub profile: String,
    pub state: Option<HostState>,
    pub power: Option<String>,
    pub maintenance: bool,
    /// Not Released, sorted by start.
    pub bookings: Vec<Booking>,
}

impl HostView {
    /// Never bookable while in maintenance or Error.
    pub fn out_of_service(&self) -> bool {
        self.maintenance || matches!(self.state, Some(HostState::Maintenance | HostState::Error))
    }

    pub fn holder_at(&self, t: Timestamp) -> Option<&Booking> {
        self.bookings.iter().find(|b| b.holds_at(t))
    }

    pub fn free_at(&self, t: Timestamp) -> bool {
        !self.out_of_service() && self.holder_at(t).is_none()
    }

    /// The first instant from `t` on at which the host is free (bookings back to back
    /// count as one), or None when it is out of service.
    pub fn free_from(&self, t: Timestamp) -> Option<Timestamp> {
        if self.out_of_service() {
            return None;
        }
        let mut at = t;
        while let Some(b) = self.holder_at(at) {
            if b.end <= at {
                // Past its end but still releasing: free once released, time unknown.
                return Some(at);
            }
            at = b.end;
        }
        Some(at)
    }

    /// The next booking starting after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<&Booking> {
        self.bookings.iter().find(|b| b.start > t)
    }
}

/// Every host (filtered by lab and profile) with its bookings, sorted by name.
pub fn views(
    hosts: &[LabHost],
    leases: &[Lease],
    lab: Option<&str>,
    profile: Option<&str>,
) -> Vec<HostView> {
    let mut views: Vec<HostView> = hosts
        .iter()
        .map(|h| {
            let name = h.name_any();
            let mut bookings: Vec<Booking> = leases
                .iter()
                .filter(|l| l.status.as_ref().and_then(|s| s.phase) != Some(LeasePhase::Released))
                .filter_map(|l| {
                    let entry = l.spec.hosts.iter().find(|e| e.host == name)?;
                    Some(Booking {
                        namespace: l.namespace().unwrap_or_default(),
                        name: l.name_any(),
                        role: entry.role.clone(),
                        phase: l.status.as_ref().and_then(|s| s.phase),
                        start: l.spec.start.0,
                        end: l.spec.end.0,
                    })
                })
                .collect();
            bookings.sort_by_key(|b| (b.start, b.key()));
            let status = h.status.as_ref();
            HostView {
                lab: h.labels().get(LABEL_LAB).cloned().unwrap_or_default(),
                profile: h.spec.profile.clone(),
                state: status.and_then(|s| s.state),
                power: status.and_then(|s| s.power).map(|p| format!("{p:?}")),
                maintenance: h.spec.maintenance,
                bookings,
                name,
            }
        })
        .filter(|v| lab.is_none_or(|l| v.lab == l))
        .filter(|v| profile.is_none_or(|p| v.profile == p))
        .collect();
    views.sort_by(|a, b| a.name.cmp(&b.name));
    views
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn booking(name: &str, start: &str, end: &str) -> Booking {
        Booking {
            namespace: "team".into(),
            name: name.into(),
            role: "node".into(),
            phase: Some(LeasePhase::Ready),
            start: at(start),
            end: at(end),
        }
    }

    fn view(bookings: Vec<Booking>) -> HostView {
        HostView {
            name: "h1".into(),
            lab: "lab".into(),
            profile: "p".into(),
            state: Some(HostState::Provisioned),
            power: None,
            maintenance: false,
            bookings,
        }
    }

    #[test]
    fn back_to_back_bookings_free_the_host_after_the_last() {
        let v = view(vec![
            booking("a", "2026-12-01T00:00:00Z", "2026-12-03T00:00:00Z"),
            booking("b", "2026-12-03T00:00:00Z", "2026-12-04T00:00:00Z"),
            booking("c", "2026-12-06T00:00:00Z", "2026-12-07T00:00:00Z"),
        ]);
        let now = at("2026-12-02T00:00:00Z");
        assert_eq!(v.holder_at(now).unwrap().name, "a");
        assert_eq!(v.free_from(now), Some(at("2026-12-04T00:00:00Z")));
        assert!(v.free_at(at("2026-12-05T00:00:00Z")));
        assert!(!v.free_at(at("2026-12-06T12:00:00Z")));
        assert_eq!(v.next_after(now).unwrap().name, "b");
        let mut down = view(Vec::new());
        down.maintenance = true;
        assert!(!down.free_at(now));
        assert_eq!(down.free_from(now), None);
    }
}
