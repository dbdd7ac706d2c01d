//! Per-namespace host usage over time, for the concurrent-host quota and the fairness rank.

use std::collections::HashMap;

use super::model::Time;

#[derive(Debug, Clone, Default)]
pub struct NamespaceLoad {
    /// `(start, end, hosts)` held by each namespace: claims, reservations, planned windows.
    intervals: HashMap<String, Vec<(Time, Time, u32)>>,
    held_now: HashMap<String, u32>,
}

impl NamespaceLoad {
    /// A claim running now: counts for the quota and for "hosts held now".
    pub fn add_claim(&mut self, namespace: &str, now: Time, until: Time) {
        if until > now {
            *self.held_now.entry(namespace.to_owned()).or_default() += 1;
            self.add(namespace, now, until, 1);
        }
    }

    pub fn add(&mut self, namespace: &str, start: Time, end: Time, hosts: u32) {
        self.intervals
            .entry(namespace.to_owned())
            .or_default()
            .push((start, end, hosts));
    }

    pub fn held_now(&self, namespace: &str) -> u32 {
        self.held_now.get(namespace).copied().unwrap_or(0)
    }

    /// The most hosts the namespace holds at any instant of `[start, end)`.
    pub fn peak(&self, namespace: &str, start: Time, end: Time) -> u32 {
        let Some(list) = self.intervals.get(namespace) else {
            return 0;
        };
        let mut edges: Vec<(Time, i64)> = Vec::new();
        for &(s, e, n) in list.iter().filter(|(s, e, _)| *s < end && *e > start) {
            edges.push((s.max(start), i64::from(n)));
            edges.push((e, -i64::from(n)));
        }
        // Ends sort before starts at the same instant: [a, b) and [b, c) never overlap.
        edges.sort_by_key(|&(t, delta)| (t, delta));
        let (mut current, mut peak) = (0i64, 0i64);
        for (_, delta) in edges {
            current += delta;
            peak = peak.max(current);
        }
        u32::try_from(peak).unwrap_or(u32::MAX)
    }

    /// Instants after `from` at which the namespace's usage drops: when a quota-blocked
    /// request may fit.
    pub fn releases_after(&self, namespace: &str, from: Time) -> impl Iterator<Item = Time> + '_ {
        self.intervals
            .get(namespace)
            .into_iter()
            .flatten()
            .map(|&(_, e, _)| e)
            .filter(move |e| *e > from)
    }
}
