//! What a user reads of each booked host (pure): its hostname from the Lease, its MACs
//! from the LabHost's inventory, and what the booted OS reported through phone-home.
//!
//! A LabHost carries one report, of whichever run booted it last. It is shown only when
//! it names this Lease and the host is still claimed for this request (by uid): a report of
//! an earlier booking, or of another request of the same name, never reaches this one.

use kube::ResourceExt;
use labpods_api::v1alpha1::{AssignedHost, BootReport, LabHost, Lease};

use crate::controllers::snapshot::LabHosts;

/// `namespace/name` of a Lease, as a [`BootReport`] names it.
pub fn lease_key(lease: &Lease) -> String {
    format!(
        "{}/{}",
        lease.namespace().unwrap_or_default(),
        lease.name_any()
    )
}

/// The report `host` holds for `lease`, if it holds one for it.
pub fn report_for<'a>(host: &'a LabHost, lease: &Lease) -> Option<&'a BootReport> {
    let claimed = host.spec.claim_ref.as_ref().is_some_and(|c| {
        c.uid == lease.spec.request_ref.uid
            && c.lease == lease.name_any()
            && Some(&c.namespace) == lease.metadata.namespace.as_ref()
    });
    let key = lease_key(lease);
    host.status
        .as_ref()
        .and_then(|s| s.reported.as_ref())
        .filter(|r| claimed && r.lease == key)
}

/// One entry per host of `lease`, sorted by role then host.
pub fn assigned(lease: &Lease, labhosts: &LabHosts) -> Vec<AssignedHost> {
    let mut hosts: Vec<AssignedHost> = lease
        .spec
        .hosts
        .iter()
        .map(|h| {
            let labhost = labhosts.get(&h.host).map(AsRef::as_ref);
            let mac_addresses = labhost
                .and_then(|l| l.status.as_ref())
                .and_then(|s| s.inventory.as_ref())
                .map(|i| i.mac_addresses.clone())
                .unwrap_or_default();
            let report = labhost.and_then(|l| report_for(l, lease));
            AssignedHost {
                role: h.role.clone(),
                host: h.host.clone(),
                hostname: h.hostname.clone(),
                mac_addresses,
                addresses: report.map(|r| r.addresses.clone()).unwrap_or_default(),
                host_keys: report.map(|r| r.host_keys.clone()).unwrap_or_default(),
                ready_at: report.map(|r| r.at.clone()),
            }
        })
        .collect();
    hosts.sort();
    hosts
}

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use labpods_api::v1alpha1::{
        ClaimRef, ImageSpec, Inventory, LabHostSpec, LabHostStatus, LeaseHost, LeaseSpec,
        RequestRef, SecretReference,
    };

    use super::*;

    pub(crate) fn at(s: &str) -> Time {
        Time(s.parse().expect("fixed instant"))
    }

    /// Lease `team/pod` of request uid `u-pod` over `hosts` (role `node`, in order).
    pub(crate) fn lease(hosts: &[&str]) -> Lease {
        let mut l = Lease::new(
            "pod",
            LeaseSpec::new(
                RequestRef {
                    name: "pod".into(),
                    uid: "u-pod".into(),
                },
                hosts.iter().map(|h| LeaseHost {
                    host: (*h).into(),
                    role: "node".into(),
                    hostname: None,
                }),
                at("2026-11-24T10:00:00Z"),
                at("2026-11-24T11:00:00Z"),
                ImageSpec::new("http://i.test/a.iso"),
            ),
        );
        l.metadata.namespace = Some("team".into());
        l
    }

    /// LabHost `name` claimed by `claim` (`(lease, uid)` in `team`), with MACs and a report.
    pub(crate) fn labhost(
        name: &str,
        claim: Option<(&str, &str)>,
        report: Option<BootReport>,
    ) -> LabHost {
        let mut h = LabHost::new(
            name,
            LabHostSpec::new(
                "https://10.0.0.21",
                "x86-small",
                SecretReference {
                    name: "bmc".into(),
                    namespace: "labpods-system".into(),
                },
            ),
        );
        h.spec.claim_ref = claim.map(|(lease, uid)| ClaimRef {
            namespace: "team".into(),
            name: lease.into(),
            uid: uid.into(),
            lease: lease.into(),
        });
        h.status = Some(LabHostStatus {
            inventory: Some(Inventory {
                mac_addresses: vec![format!("52:54:00:00:00:{}", &name[name.len() - 2..])],
                ..Inventory::default()
            }),
            reported: report,
            ..LabHostStatus::default()
        });
        h
    }

    pub(crate) fn report(lease: &str, address: &str) -> BootReport {
        BootReport {
            lease: lease.into(),
            instance_id: None,
            hostname: None,
            addresses: vec![address.into()],
            host_keys: vec![format!(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} root@host",
                &address.replace('.', "")
            )],
            at: at("2026-11-24T10:05:00Z"),
        }
    }

    pub(crate) fn index(hosts: Vec<LabHost>) -> LabHosts {
        hosts
            .into_iter()
            .map(|h| (h.name_any(), h.into()))
            .collect()
    }

    #[test]
    fn each_host_shows_its_hostname_macs_and_this_leases_report() {
        let l = lease(&["h02", "h01"]);
        let hosts = index(vec![
            labhost(
                "h01",
                Some(("pod", "u-pod")),
                Some(report("team/pod", "10.1.0.5")),
            ),
            labhost("h02", Some(("pod", "u-pod")), None),
        ]);
        let shown = assigned(&l, &hosts);
        assert_eq!(shown.len(), 2);
        let h01 = &shown[0];
        assert_eq!(
            (h01.host.as_str(), h01.hostname.as_deref()),
            ("h01", Some("node-1"))
        );
        assert_eq!(h01.mac_addresses, ["52:54:00:00:00:01"]);
        assert_eq!(h01.addresses, ["10.1.0.5"]);
        assert_eq!(h01.host_keys.len(), 1);
        assert_eq!(h01.ready_at, Some(at("2026-11-24T10:05:00Z")));
        let h02 = &shown[1];
        assert_eq!(h02.hostname.as_deref(), Some("node-2"));
        assert_eq!(h02.mac_addresses, ["52:54:00:00:00:02"]);
        assert!(h02.addresses.is_empty() && h02.host_keys.is_empty() && h02.ready_at.is_none());
    }

    #[test]
    fn another_bookings_report_never_shows() {
        let l = lease(&["h01", "h02", "h03"]);
        let hosts = index(vec![
            // The report of another Lease.
            labhost(
                "h01",
                Some(("pod", "u-pod")),
                Some(report("team/other", "10.1.0.1")),
            ),
            // The report names this Lease, but the host is claimed by an earlier request of
            // the same name (another uid).
            labhost(
                "h02",
                Some(("pod", "u-earlier")),
                Some(report("team/pod", "10.1.0.2")),
            ),
            // Claimed by nobody any more.
            labhost("h03", None, Some(report("team/pod", "10.1.0.3"))),
        ]);
        for h in assigned(&l, &hosts) {
            assert!(h.addresses.is_empty(), "{h:?}");
            assert!(h.host_keys.is_empty() && h.ready_at.is_none(), "{h:?}");
        }
    }

    #[test]
    fn a_host_missing_from_the_cache_still_shows_its_role_and_hostname() {
        let shown = assigned(&lease(&["gone"]), &LabHosts::new());
        assert_eq!(shown[0].hostname.as_deref(), Some("node-1"));
        assert!(shown[0].mac_addresses.is_empty());
    }
}
