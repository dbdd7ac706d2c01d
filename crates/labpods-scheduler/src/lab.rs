//! Host indexes (by name, profile, label) and the role -> candidate hosts lookup, cached per
//! distinct (profile, selector) so that thousands of similar requests cost one scan each.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::model::{Host, Role};
use super::selector::Selector;

/// Hosts matching a role's profile and selector, in host-slice order.
#[derive(Debug)]
pub struct Candidates {
    /// Every matching host, schedulable or not: decides Unsatisfiable.
    pub all: Vec<usize>,
    /// Matching hosts that may be chosen.
    pub schedulable: Vec<usize>,
}

/// What makes two roles draw from the same hosts: their profile and selector.
pub type Pool = (Option<String>, Selector);

pub fn pool(role: &Role) -> Pool {
    (role.profile.clone(), role.selector.clone())
}

/// Hosts without a rack label.
pub const NO_RACK: u32 = u32::MAX;

#[derive(Debug)]
pub struct Lab<'a> {
    pub hosts: &'a [Host],
    /// Position of each host in name order: the final, deterministic placement tiebreak.
    pub rank: Vec<u32>,
    /// Interned value of each host's rack label ([`NO_RACK`] without one).
    pub rack: Vec<u32>,
    by_name: HashMap<&'a str, usize>,
    by_profile: HashMap<&'a str, Vec<usize>>,
    by_label: HashMap<(&'a str, &'a str), Vec<usize>>,
    cache: RefCell<HashMap<Pool, Rc<Candidates>>>,
}

impl<'a> Lab<'a> {
    pub fn new(hosts: &'a [Host], rack_label: &str) -> Self {
        let mut by_name_order: Vec<usize> = (0..hosts.len()).collect();
        by_name_order.sort_unstable_by_key(|&i| hosts[i].name.as_str());
        let mut rank = vec![0u32; hosts.len()];
        for (r, &i) in by_name_order.iter().enumerate() {
            rank[i] = u32::try_from(r).unwrap_or(u32::MAX);
        }
        let mut racks: HashMap<&str, u32> = HashMap::new();
        let rack = hosts
            .iter()
            .map(|h| match h.labels.get(rack_label) {
                Some(value) => {
                    let next = u32::try_from(racks.len()).unwrap_or(NO_RACK);
                    *racks.entry(value.as_str()).or_insert(next)
                }
                None => NO_RACK,
            })
            .collect();
        let mut by_name = HashMap::with_capacity(hosts.len());
        let mut by_profile: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_label: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        for (i, h) in hosts.iter().enumerate() {
            by_name.insert(h.name.as_str(), i);
            by_profile.entry(h.profile.as_str()).or_default().push(i);
            for (k, v) in &h.labels {
                by_label
                    .entry((k.as_str(), v.as_str()))
                    .or_default()
                    .push(i);
            }
        }
        Self {
            hosts,
            rank,
            rack,
            by_name,
            by_profile,
            by_label,
            cache: RefCell::new(HashMap::new()),
        }
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub fn candidates(&self, role: &Role) -> Rc<Candidates> {
        let key = pool(role);
        if let Some(hit) = self.cache.borrow().get(&key) {
            return Rc::clone(hit);
        }
        let found = Rc::new(self.scan(role));
        self.cache.borrow_mut().insert(key, Rc::clone(&found));
        found
    }

    /// Starts from the narrowest index the role allows, then applies the full selector.
    fn scan(&self, role: &Role) -> Candidates {
        let empty = Vec::new();
        let by_profile = role
            .profile
            .as_deref()
            .map(|p| self.by_profile.get(p).unwrap_or(&empty));
        let by_label = role
            .selector
            .match_labels
            .iter()
            .map(|(k, v)| {
                self.by_label
                    .get(&(k.as_str(), v.as_str()))
                    .unwrap_or(&empty)
            })
            .min_by_key(|list| list.len());
        let narrowest = match (by_profile, by_label) {
            (Some(p), Some(l)) => Some(if p.len() <= l.len() { p } else { l }),
            (p, l) => p.or(l),
        };
        let matches = |i: &usize| {
            let h = &self.hosts[*i];
            role.profile.as_ref().is_none_or(|p| *p == h.profile)
                && role.selector.matches(&h.labels)
        };
        let all: Vec<usize> = match narrowest {
            Some(list) => list.iter().copied().filter(matches).collect(),
            None => (0..self.hosts.len()).filter(matches).collect(),
        };
        let schedulable = all
            .iter()
            .copied()
            .filter(|i| self.hosts[*i].schedulable)
            .collect();
        Candidates { all, schedulable }
    }
}
