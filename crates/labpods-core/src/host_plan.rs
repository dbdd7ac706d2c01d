//! What to do with a LabHost, decided from observed state only (pure, unit-tested).
//!
//! Inputs: the host's own state and stored step, its maintenance flag and claim, and the
//! claim's Lease as the Lease controller left it ([`LeaseView`]). Output: one [`Plan`].

use labpods_api::v1alpha1::{
    ClaimRef, HostState, Lease, LeasePhase, Operation, ProvisioningProgress,
};

/// The claim's Lease, as far as this host is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseView {
    /// The host has no claim.
    Unclaimed,
    /// The Lease has not started (Pending, Bound): keep the host ready and off.
    Waiting,
    /// The Lease runs (Provisioning, Ready, Degraded): the host must run `image`.
    Active { image: String },
    /// The Lease ends (Releasing, Released), is gone, belongs to another request (uid), or no
    /// longer lists this host (a spare replaced it): release the host and drop the claim.
    Ending,
}

/// Derives the view. `lease` must come from a fresh read when the cache has none (a claim
/// can appear before the cache sees its Lease; only the apiserver can say it is gone).
pub fn lease_view(host: &str, claim: Option<&ClaimRef>, lease: Option<&Lease>) -> LeaseView {
    let Some(claim) = claim else {
        return LeaseView::Unclaimed;
    };
    let Some(lease) = lease else {
        return LeaseView::Ending;
    };
    if lease.spec.request_ref.uid != claim.uid || lease.metadata.deletion_timestamp.is_some() {
        return LeaseView::Ending;
    }
    let phase = lease
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .unwrap_or(LeasePhase::Pending);
    let listed = lease.spec.hosts.iter().any(|h| h.host == host);
    match phase {
        // While binding, the Lease may not list every claimed host yet.
        LeasePhase::Pending => LeaseView::Waiting,
        _ if !listed => LeaseView::Ending,
        LeasePhase::Bound => LeaseView::Waiting,
        LeasePhase::Provisioning | LeasePhase::Ready | LeasePhase::Degraded => LeaseView::Active {
            image: lease.spec.image.url.clone(),
        },
        LeasePhase::Releasing | LeasePhase::Released => LeaseView::Ending,
    }
}

/// The host facts the decision needs.
#[derive(Debug, Clone, Copy)]
pub struct HostFacts<'a> {
    pub state: Option<HostState>,
    pub progress: Option<&'a ProvisioningProgress>,
    pub maintenance: bool,
    pub claimed: bool,
    /// A release of this host could not complete (condition `Quarantined`).
    pub quarantined: bool,
    /// Its run for the claim gave up on the booking's input (condition `BookingFailed`).
    pub booking_failed: bool,
}

/// A host that may still hold a tenant's OS or data: claimed, quarantined, or in or after a
/// run nobody released. Such a host is released before its LabHost may be deleted.
pub fn may_hold_tenant(facts: &HostFacts<'_>) -> bool {
    facts.claimed
        || facts.quarantined
        || facts.progress.is_some()
        || matches!(
            facts.state,
            Some(HostState::Provisioning | HostState::Provisioned | HostState::Releasing)
        )
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Check the BMC (power, inventory); report `state`; force the power off if `keep_off`.
    Idle { state: HostState, keep_off: bool },
    /// Begin provisioning `image` for `lease`.
    StartProvision { image: String, lease: String },
    /// Begin the release after `lease` (abandons a provisioning in progress). An empty
    /// `lease`: the release a lab admin asked for to end a quarantine.
    StartRelease { lease: String },
    /// Run the stored step.
    Continue,
    /// Nothing (left) to undo on the hardware, or the host's quarantine is stored: drop
    /// `spec.claimRef`.
    ClearClaim,
}

/// A host leaves a lease only through a completed release (DESIGN.md "Claiming"): every host
/// that may have run the tenant's OS is released before its claim goes, and a host whose
/// release fails is quarantined (kept out of the pool and off) until a lab admin's
/// maintenance round trip runs a full release.
pub fn plan(facts: HostFacts<'_>, view: &LeaseView, lease_name: Option<&str>) -> Plan {
    let lease = || lease_name.unwrap_or_default().to_string();
    let active = matches!(view, LeaseView::Active { .. });
    let failed = facts.state == Some(HostState::Error);
    if let Some(progress) = facts.progress.filter(|_| !failed) {
        return match (progress.operation, view) {
            (Operation::Provision, LeaseView::Ending | LeaseView::Unclaimed) => {
                Plan::StartRelease {
                    lease: progress.lease.clone(),
                }
            }
            _ => Plan::Continue,
        };
    }
    if facts.quarantined {
        let off = Plan::Idle {
            state: HostState::Error,
            keep_off: true,
        };
        return match view {
            // The quarantine is stored in the status: the Lease can end without this host.
            _ if facts.claimed && !active => Plan::ClearClaim,
            _ if facts.claimed => off,
            _ if facts.maintenance => Plan::Idle {
                state: HostState::Maintenance,
                keep_off: false,
            },
            // The admin turned maintenance off again: the host comes back only released.
            _ if facts.state == Some(HostState::Maintenance) => Plan::StartRelease {
                lease: String::new(),
            },
            _ => off,
        };
    }
    if let Some(progress) = facts.progress.filter(|_| failed) {
        // A run that gave up (a host fault) may have left the tenant's OS running: off while
        // its Lease still lists it (a spare may replace it), released once it does not.
        return if facts.claimed && !matches!(view, LeaseView::Ending) {
            Plan::Idle {
                state: HostState::Error,
                keep_off: true,
            }
        } else {
            Plan::StartRelease {
                lease: progress.lease.clone(),
            }
        };
    }
    match view {
        LeaseView::Unclaimed if facts.maintenance => Plan::Idle {
            state: HostState::Maintenance,
            keep_off: false,
        },
        LeaseView::Unclaimed => Plan::Idle {
            state: HostState::Available,
            keep_off: true,
        },
        LeaseView::Waiting => Plan::Idle {
            state: HostState::Claimed,
            keep_off: true,
        },
        LeaseView::Active { .. } if facts.state == Some(HostState::Provisioned) => Plan::Idle {
            state: HostState::Provisioned,
            keep_off: false,
        },
        // Failed its BMC checks while claimed (it may have been Provisioned): off, and the
        // Lease may swap in a spare.
        LeaseView::Active { .. } if failed => Plan::Idle {
            state: HostState::Error,
            keep_off: true,
        },
        // Released after its booking's image failed: off until the Lease ends.
        LeaseView::Active { .. } if facts.booking_failed => Plan::Idle {
            state: HostState::Claimed,
            keep_off: true,
        },
        LeaseView::Active { image } => Plan::StartProvision {
            image: image.clone(),
            lease: lease(),
        },
        LeaseView::Ending => match facts.state {
            // Never touched for this claim: nothing to undo.
            None
            | Some(
                HostState::Registering
                | HostState::Available
                | HostState::Claimed
                | HostState::Maintenance,
            ) => Plan::ClearClaim,
            // Error without a run: its BMC checks failed, perhaps while it ran the tenant's OS.
            Some(
                HostState::Provisioning
                | HostState::Provisioned
                | HostState::Releasing
                | HostState::Error,
            ) => Plan::StartRelease { lease: lease() },
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use labpods_api::v1alpha1::{LeaseStatus, ProvisioningStep};

    use super::*;
    use crate::fixtures::{self, IMAGE};

    fn claim() -> ClaimRef {
        ClaimRef {
            namespace: fixtures::NAMESPACE.into(),
            name: "pod-1".into(),
            uid: "uid-1".into(),
            lease: "pod-1".into(),
        }
    }

    fn lease(phase: Option<LeasePhase>, hosts: &[&str]) -> Lease {
        let t = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let mut lease = fixtures::lease("pod-1", "uid-1", hosts, t.clone(), t);
        lease.status = phase.map(|p| LeaseStatus {
            phase: Some(p),
            ..LeaseStatus::default()
        });
        lease
    }

    fn progress(operation: Operation) -> ProvisioningProgress {
        let t = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        ProvisioningProgress {
            operation,
            step: ProvisioningStep::WaitBooted,
            image: Some(IMAGE.into()),
            attempts: 1,
            started_at: t.clone(),
            step_started_at: t,
            lease: "pod-1".into(),
        }
    }

    fn facts(state: Option<HostState>, progress: Option<&ProvisioningProgress>) -> HostFacts<'_> {
        HostFacts {
            state,
            progress,
            maintenance: false,
            claimed: true,
            quarantined: false,
            booking_failed: false,
        }
    }

    #[test]
    fn only_a_host_nothing_of_a_tenants_is_left_on_may_be_deleted_at_once() {
        let unclaimed = |state| HostFacts {
            claimed: false,
            ..facts(state, None)
        };
        for free in [
            None,
            Some(HostState::Registering),
            Some(HostState::Available),
            Some(HostState::Maintenance),
            // Its BMC checks failed while idle: no run left anything on it.
            Some(HostState::Error),
        ] {
            assert!(!may_hold_tenant(&unclaimed(free)), "{free:?}");
        }
        for used in [
            HostState::Provisioning,
            HostState::Provisioned,
            HostState::Releasing,
        ] {
            assert!(may_hold_tenant(&unclaimed(Some(used))), "{used:?}");
        }
        assert!(may_hold_tenant(&facts(Some(HostState::Available), None)));
        let p = progress(Operation::Provision);
        assert!(may_hold_tenant(&HostFacts {
            claimed: false,
            ..facts(Some(HostState::Error), Some(&p))
        }));
        assert!(may_hold_tenant(&HostFacts {
            quarantined: true,
            ..unclaimed(Some(HostState::Maintenance))
        }));
    }

    #[test]
    fn lease_view_follows_the_lease_phase() {
        let c = claim();
        let cases = [
            (Some(LeasePhase::Pending), LeaseView::Waiting),
            (None, LeaseView::Waiting),
            (Some(LeasePhase::Bound), LeaseView::Waiting),
            (
                Some(LeasePhase::Provisioning),
                LeaseView::Active {
                    image: IMAGE.into(),
                },
            ),
            (
                Some(LeasePhase::Ready),
                LeaseView::Active {
                    image: IMAGE.into(),
                },
            ),
            (
                Some(LeasePhase::Degraded),
                LeaseView::Active {
                    image: IMAGE.into(),
                },
            ),
            (Some(LeasePhase::Releasing), LeaseView::Ending),
            (Some(LeasePhase::Released), LeaseView::Ending),
        ];
        for (phase, want) in cases {
            assert_eq!(
                lease_view("h1", Some(&c), Some(&lease(phase, &["h1"]))),
                want,
                "{phase:?}"
            );
        }
    }

    #[test]
    fn gone_foreign_or_unlisting_leases_end_the_claim() {
        let c = claim();
        assert_eq!(lease_view("h1", Some(&c), None), LeaseView::Ending);
        let mut other = lease(Some(LeasePhase::Ready), &["h1"]);
        other.spec.request_ref.uid = "uid-2".into();
        assert_eq!(lease_view("h1", Some(&c), Some(&other)), LeaseView::Ending);
        let swapped = lease(Some(LeasePhase::Provisioning), &["h2"]);
        assert_eq!(
            lease_view("h1", Some(&c), Some(&swapped)),
            LeaseView::Ending
        );
        // ... but not while the Lease is still binding its hosts.
        let binding = lease(Some(LeasePhase::Pending), &[]);
        assert_eq!(
            lease_view("h1", Some(&c), Some(&binding)),
            LeaseView::Waiting
        );
        assert_eq!(lease_view("h1", None, Some(&binding)), LeaseView::Unclaimed);
    }

    #[test]
    fn free_hosts_are_kept_off_and_maintenance_is_left_alone() {
        let mut f = facts(Some(HostState::Available), None);
        f.claimed = false;
        assert_eq!(
            plan(f, &LeaseView::Unclaimed, None),
            Plan::Idle {
                state: HostState::Available,
                keep_off: true
            }
        );
        f.maintenance = true;
        assert_eq!(
            plan(f, &LeaseView::Unclaimed, None),
            Plan::Idle {
                state: HostState::Maintenance,
                keep_off: false
            }
        );
    }

    #[test]
    fn claimed_host_waits_off_then_provisions_once() {
        let f = facts(Some(HostState::Available), None);
        assert_eq!(
            plan(f, &LeaseView::Waiting, Some("pod-1")),
            Plan::Idle {
                state: HostState::Claimed,
                keep_off: true
            }
        );
        let active = LeaseView::Active {
            image: IMAGE.into(),
        };
        assert_eq!(
            plan(
                facts(Some(HostState::Claimed), None),
                &active,
                Some("pod-1")
            ),
            Plan::StartProvision {
                image: IMAGE.into(),
                lease: "pod-1".into()
            }
        );
        let p = progress(Operation::Provision);
        assert_eq!(
            plan(
                facts(Some(HostState::Provisioning), Some(&p)),
                &active,
                None
            ),
            Plan::Continue
        );
        assert_eq!(
            plan(facts(Some(HostState::Provisioned), None), &active, None),
            Plan::Idle {
                state: HostState::Provisioned,
                keep_off: false
            }
        );
    }

    #[test]
    fn ending_lease_releases_what_was_touched_and_drops_the_rest() {
        let p = progress(Operation::Provision);
        assert_eq!(
            plan(
                facts(Some(HostState::Provisioning), Some(&p)),
                &LeaseView::Ending,
                None
            ),
            Plan::StartRelease {
                lease: "pod-1".into()
            }
        );
        assert_eq!(
            plan(
                facts(Some(HostState::Provisioned), None),
                &LeaseView::Ending,
                Some("pod-1")
            ),
            Plan::StartRelease {
                lease: "pod-1".into()
            }
        );
        assert_eq!(
            plan(
                facts(Some(HostState::Claimed), None),
                &LeaseView::Ending,
                Some("pod-1")
            ),
            Plan::ClearClaim
        );
        let r = progress(Operation::Release);
        assert_eq!(
            plan(
                facts(Some(HostState::Releasing), Some(&r)),
                &LeaseView::Ending,
                None
            ),
            Plan::Continue
        );
    }

    #[test]
    fn failed_run_keeps_the_host_off_then_releases_it() {
        let p = progress(Operation::Provision);
        let active = LeaseView::Active {
            image: IMAGE.into(),
        };
        let off = Plan::Idle {
            state: HostState::Error,
            keep_off: true,
        };
        assert_eq!(
            plan(facts(Some(HostState::Error), Some(&p)), &active, None),
            off
        );
        // The Lease swapped in a spare or ended: the claim goes only through a release.
        let release = Plan::StartRelease {
            lease: "pod-1".into(),
        };
        assert_eq!(
            plan(
                facts(Some(HostState::Error), Some(&p)),
                &LeaseView::Ending,
                None
            ),
            release
        );
        // Maintenance does not skip it either.
        let mut f = facts(Some(HostState::Error), Some(&p));
        f.claimed = false;
        f.maintenance = true;
        assert_eq!(plan(f, &LeaseView::Unclaimed, None), release);
        // A host whose BMC checks failed while claimed (no run stored) is released too.
        assert_eq!(
            plan(
                facts(Some(HostState::Error), None),
                &LeaseView::Ending,
                Some("pod-1")
            ),
            release
        );
        assert_eq!(
            plan(facts(Some(HostState::Error), None), &active, Some("pod-1")),
            off
        );
    }

    #[test]
    fn host_released_after_its_booking_failed_is_not_provisioned_again() {
        let mut f = facts(Some(HostState::Available), None);
        f.booking_failed = true;
        let active = LeaseView::Active {
            image: IMAGE.into(),
        };
        assert_eq!(
            plan(f, &active, Some("pod-1")),
            Plan::Idle {
                state: HostState::Claimed,
                keep_off: true
            }
        );
        assert_eq!(plan(f, &LeaseView::Ending, Some("pod-1")), Plan::ClearClaim);
    }

    #[test]
    fn quarantined_host_stays_out_until_an_admin_round_trip_releases_it() {
        let r = progress(Operation::Release);
        let mut f = facts(Some(HostState::Error), Some(&r));
        f.quarantined = true;
        // Stored: the claim can go, the host stays in Error and off.
        assert_eq!(plan(f, &LeaseView::Ending, Some("pod-1")), Plan::ClearClaim);
        f.claimed = false;
        let off = Plan::Idle {
            state: HostState::Error,
            keep_off: true,
        };
        assert_eq!(plan(f, &LeaseView::Unclaimed, None), off);
        f.maintenance = true;
        assert_eq!(
            plan(f, &LeaseView::Unclaimed, None),
            Plan::Idle {
                state: HostState::Maintenance,
                keep_off: false
            }
        );
        // Maintenance off again: a full release, never straight to Available.
        f.maintenance = false;
        f.state = Some(HostState::Maintenance);
        f.progress = None;
        assert_eq!(
            plan(f, &LeaseView::Unclaimed, None),
            Plan::StartRelease {
                lease: String::new()
            }
        );
        // That release runs to its end, quarantine or not.
        f.state = Some(HostState::Releasing);
        f.progress = Some(&r);
        assert_eq!(plan(f, &LeaseView::Unclaimed, None), Plan::Continue);
    }
}
