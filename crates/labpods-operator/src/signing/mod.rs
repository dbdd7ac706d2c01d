//! Lease signatures: the operator authenticates what it writes into a Lease, and honours
//! only what it wrote (DESIGN.md "Trust", defence in depth behind the admission policy in
//! `deploy/admission/`).
//!
//! A Lease is a tenant-namespaced object. The admission policy lets only the operator's
//! identity write its spec and status, but a cluster without the policy, an over-broad Role
//! or an admin with `kubectl edit` can still write one. So every Lease the operator writes
//! carries the annotation [`SIGNATURE`]: HMAC-SHA256, with a key only the operator holds (a
//! Secret in its own namespace, see [`key`]), over everything the operator takes from the
//! Lease:
//!
//! - where it is: namespace, name and **uid** (a copy under another name, or a deleted and
//!   re-created object, does not verify);
//! - **metadata.generation**, which the apiserver increments on every change of the spec and
//!   nobody can set: any spec write by someone else, including putting back an older signed
//!   version, leaves a signature for an older generation;
//! - the spec the operator reads: request (name, uid), hosts and roles, start, end, image;
//! - the annotation [`ORIGINAL_END`](crate::controllers::scheduling::bind::ORIGINAL_END)
//!   (the extension budget counts from it; annotations do not move the generation).
//!
//! The uid exists only once the apiserver created the object, so a Lease is created with a
//! *provisional* signature (over the same fields with no uid, generation 1) and sealed right
//! after ([`Seal::Provisional`]). A provisional Lease is trusted for nothing but being rolled
//! back: no host is ever claimed for it. A Lease whose signature is missing or does not verify
//! ([`Untrusted`]) is never honoured: no claim, no provisioning, no extension, no healing, no
//! history; its hosts, if any were claimed for its name, are released; the operator reports
//! it on the Lease and its PodRequest and never deletes it (it may be a tenant's object).
//!
//! Everything here is pure; the key's IO lives in [`key`].

pub mod key;

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use kube::ResourceExt;
use labpods_api::v1alpha1::{ImageSpec, Lease, LeaseHost, LeaseSpec, RequestRef};
use ring::hmac;

pub use labpods_core::trust::Untrusted;

use crate::controllers::scheduling::bind::ORIGINAL_END;

/// The annotation carrying a Lease's signature.
pub const SIGNATURE: &str = "labpods.dev/signature";
/// Prefix of a sealed signature (bound to the object's uid).
const SEALED: &str = "v1";
/// Prefix of a provisional signature (made before the object had a uid).
const PROVISIONAL: &str = "v1-provisional";
/// The generation the apiserver gives a created object.
const FIRST_GENERATION: i64 = 1;

/// How far a Lease that verifies may be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seal {
    /// Signed by the operator for this very object at its current generation: its spec is
    /// what the operator wrote.
    Sealed,
    /// Created by the operator, not sealed yet (a binding in progress, or interrupted by a
    /// crash): only to be sealed by the binder or rolled back.
    Provisional,
}

/// Verdicts on the Leases of one pass over the lab, kept for the next: a Lease's seal is a
/// function of its content, which its resourceVersion names, so only new or changed Leases
/// are verified again. At 2,000 Leases verifying all on every pass was 8% of the operator's
/// CPU.
#[derive(Debug, Default)]
pub struct Verdicts(HashMap<String, (String, Result<Seal, Untrusted>)>);

impl Verdicts {
    /// Verifies every Lease of `leases` (or recalls the verdict on its version) and forgets
    /// the Leases no longer there.
    pub fn of<'a>(
        &mut self,
        signer: &LeaseSigner,
        leases: impl IntoIterator<Item = &'a Lease>,
    ) -> Vec<Result<Seal, Untrusted>> {
        let mut kept = HashMap::with_capacity(self.0.len());
        let verdicts = leases
            .into_iter()
            .map(|lease| {
                let (Some(uid), Some(version)) = (
                    lease.metadata.uid.as_ref(),
                    lease.metadata.resource_version.as_ref(),
                ) else {
                    return signer.verify(lease);
                };
                let verdict = match self.0.remove(uid) {
                    Some((seen, verdict)) if &seen == version => verdict,
                    _ => signer.verify(lease),
                };
                kept.insert(uid.clone(), (version.clone(), verdict.clone()));
                verdict
            })
            .collect();
        self.0 = kept;
        verdicts
    }
}

/// Signs and verifies Leases with the operator's key.
#[derive(Clone)]
pub struct LeaseSigner {
    key: hmac::Key,
}

impl std::fmt::Debug for LeaseSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseSigner(***)")
    }
}

impl LeaseSigner {
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// A key for another `purpose`, from the same Secret, so that every replica shares it
    /// without another Secret to install. No Lease signature (published in its annotation)
    /// can equal it: what Leases sign are JSON arrays, never this label.
    pub fn derive(&self, purpose: &str) -> Vec<u8> {
        let label = format!("labpods.dev/derive:{purpose}");
        hmac::sign(&self.key, label.as_bytes()).as_ref().to_vec()
    }

    /// The signature of `lease` as it will be at `generation`, bound to its uid (which it
    /// must have: the apiserver assigned it).
    pub fn sealed(&self, lease: &Lease, generation: i64) -> String {
        let uid = lease.uid().unwrap_or_default();
        self.signature(SEALED, lease, &uid, generation)
    }

    /// The signature of a Lease about to be created (no uid yet; generation 1).
    pub fn provisional(&self, lease: &Lease) -> String {
        self.signature(PROVISIONAL, lease, "", FIRST_GENERATION)
    }

    /// Puts the provisional signature on a Lease about to be created.
    pub fn sign_new(&self, lease: &mut Lease) {
        let signature = self.provisional(lease);
        lease
            .annotations_mut()
            .insert(SIGNATURE.to_owned(), signature);
    }

    /// Checks `lease` as read from the apiserver.
    pub fn verify(&self, lease: &Lease) -> Result<Seal, Untrusted> {
        let Some(value) = lease.annotations().get(SIGNATURE) else {
            return Err(Untrusted::Unsigned);
        };
        let Some((kind, tag)) = value.split_once(':') else {
            return Err(Untrusted::Mismatch);
        };
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return Err(Untrusted::Mismatch);
        };
        let generation = lease.metadata.generation.unwrap_or_default();
        let (seal, uid) = match kind {
            SEALED => (Seal::Sealed, lease.uid().unwrap_or_default()),
            PROVISIONAL if generation == FIRST_GENERATION => (Seal::Provisional, String::new()),
            _ => return Err(Untrusted::Mismatch),
        };
        let message = message(kind, lease, &uid, generation);
        hmac::verify(&self.key, &message, &tag)
            .map(|()| seal)
            .map_err(|_| Untrusted::Mismatch)
    }

    /// Whether `lease` is sealed (the only state in which its spec is honoured).
    pub fn is_sealed(&self, lease: &Lease) -> bool {
        self.verify(lease) == Ok(Seal::Sealed)
    }

    fn signature(&self, kind: &str, lease: &Lease, uid: &str, generation: i64) -> String {
        let tag = hmac::sign(&self.key, &message(kind, lease, uid, generation));
        format!("{kind}:{}", URL_SAFE_NO_PAD.encode(tag))
    }
}

/// The signed bytes: a JSON array of every field the operator trusts, in a fixed order.
/// The destructuring below lists every field of the spec without `..`: a field added to the
/// Lease (or its image) does not compile until it is signed here or declared untrusted.
fn message(kind: &str, lease: &Lease, uid: &str, generation: i64) -> Vec<u8> {
    let LeaseSpec {
        request_ref,
        hosts,
        start,
        end,
        image,
    } = &lease.spec;
    let RequestRef {
        name: request_name,
        uid: request_uid,
    } = request_ref;
    let ImageSpec { url, checksum } = image;
    let hosts: Vec<[&str; 3]> = hosts
        .iter()
        .map(
            |LeaseHost {
                 host,
                 role,
                 hostname,
             }| {
                [
                    host.as_str(),
                    role.as_str(),
                    hostname.as_deref().unwrap_or_default(),
                ]
            },
        )
        .collect();
    let original_end = lease.annotations().get(ORIGINAL_END);
    // Instants to the second: the apiserver keeps no more, and a re-serialized time must sign
    // the same as the one written.
    let body = serde_json::json!([
        "labpods.dev/lease",
        kind,
        lease.namespace().unwrap_or_default(),
        lease.name_any(),
        uid,
        generation,
        request_name,
        request_uid,
        hosts,
        start.0.as_second(),
        end.0.as_second(),
        url,
        checksum,
        original_end,
    ]);
    body.to_string().into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

    use super::*;

    fn t(s: &str) -> Time {
        Time(s.parse::<Timestamp>().unwrap())
    }

    /// A Lease as the operator creates it (no uid, no generation yet).
    fn new_lease() -> Lease {
        let host = |h: &str, r: &str| LeaseHost {
            host: h.into(),
            role: r.into(),
            hostname: None,
        };
        let mut lease = Lease::new(
            "pod",
            LeaseSpec::new(
                RequestRef {
                    name: "pod".into(),
                    uid: "pr-uid".into(),
                },
                [host("h1", "jumphost"), host("h2", "node")],
                t("2026-11-24T10:00:00Z"),
                t("2026-11-24T12:00:00Z"),
                ImageSpec::new("http://i.test/a.iso").with_checksum("sha256:ab"),
            ),
        );
        lease.metadata.namespace = Some("team-a".into());
        lease.metadata.annotations =
            Some([(ORIGINAL_END.to_owned(), "2026-11-24T12:00:00Z".to_owned())].into());
        lease
    }

    /// The same Lease as the apiserver returns it after creation.
    fn created(mut lease: Lease) -> Lease {
        lease.metadata.uid = Some("lease-uid".into());
        lease.metadata.generation = Some(1);
        lease
    }

    /// Created, then sealed as the binder does.
    fn sealed(signer: &LeaseSigner) -> Lease {
        let mut lease = new_lease();
        signer.sign_new(&mut lease);
        let mut lease = created(lease);
        let signature = signer.sealed(&lease, 1);
        lease.annotations_mut().insert(SIGNATURE.into(), signature);
        lease
    }

    #[test]
    fn derived_keys_are_shared_by_one_key_and_differ_by_purpose_and_key() {
        let (a, b) = (LeaseSigner::new(&[1; 32]), LeaseSigner::new(&[2; 32]));
        let phone_home = a.derive("phone-home");
        assert_eq!(phone_home, LeaseSigner::new(&[1; 32]).derive("phone-home"));
        assert_eq!(phone_home.len(), 32);
        assert_ne!(phone_home, a.derive("other"));
        assert_ne!(phone_home, b.derive("phone-home"));
    }

    #[test]
    fn provisional_then_sealed() {
        let signer = LeaseSigner::new(b"0123456789abcdef0123456789abcdef");
        let mut lease = new_lease();
        signer.sign_new(&mut lease);
        let lease = created(lease);
        assert_eq!(signer.verify(&lease), Ok(Seal::Provisional));
        assert!(!signer.is_sealed(&lease));
        assert_eq!(signer.verify(&sealed(&signer)), Ok(Seal::Sealed));
    }

    #[test]
    fn a_lease_changed_since_its_last_verdict_is_verified_again() {
        let signer = LeaseSigner::new(b"0123456789abcdef0123456789abcdef");
        let mut verdicts = Verdicts::default();
        let mut lease = sealed(&signer);
        lease.metadata.resource_version = Some("10".into());
        assert_eq!(verdicts.of(&signer, [&lease]), [Ok(Seal::Sealed)]);
        // Someone stretches the end: a new version, a new verdict.
        lease.spec.end = t("2030-01-01T00:00:00Z");
        lease.metadata.resource_version = Some("11".into());
        assert_eq!(verdicts.of(&signer, [&lease]), [Err(Untrusted::Mismatch)]);
        // Gone from a pass, forgotten: nothing is kept for Leases that are collected.
        assert!(verdicts.of(&signer, []).is_empty());
        assert!(verdicts.0.is_empty());
    }

    #[test]
    fn unsigned_and_other_keys_are_refused() {
        let signer = LeaseSigner::new(b"the operator's key");
        assert_eq!(
            signer.verify(&created(new_lease())),
            Err(Untrusted::Unsigned)
        );
        let other = LeaseSigner::new(b"a guessed key");
        assert_eq!(signer.verify(&sealed(&other)), Err(Untrusted::Mismatch));
        let mut garbage = sealed(&signer);
        garbage
            .annotations_mut()
            .insert(SIGNATURE.into(), "v1:not base64!".into());
        assert_eq!(signer.verify(&garbage), Err(Untrusted::Mismatch));
        garbage
            .annotations_mut()
            .insert(SIGNATURE.into(), "no-prefix".into());
        assert_eq!(signer.verify(&garbage), Err(Untrusted::Mismatch));
    }

    /// Every field the operator acts on is covered: changing any one of them (even without
    /// the generation moving, as an annotation write or a forged create does) breaks it.
    #[test]
    fn every_trusted_field_is_covered() {
        let signer = LeaseSigner::new(b"k");
        type Change = Box<dyn Fn(&mut Lease)>;
        let changes: Vec<(&str, Change)> = vec![
            ("end", Box::new(|l| l.spec.end = t("2026-12-24T12:00:00Z"))),
            (
                "start",
                Box::new(|l| l.spec.start = t("2026-11-24T09:00:00Z")),
            ),
            (
                "a host",
                Box::new(|l| l.spec.hosts[1].host = "someone-elses".into()),
            ),
            (
                "one more host",
                Box::new(|l| {
                    l.spec.hosts.push(LeaseHost {
                        host: "h3".into(),
                        role: "node".into(),
                        hostname: None,
                    });
                }),
            ),
            ("a role", Box::new(|l| l.spec.hosts[0].role = "node".into())),
            (
                "the image",
                Box::new(|l| l.spec.image.url = "http://evil.test/x.iso".into()),
            ),
            ("the checksum", Box::new(|l| l.spec.image.checksum = None)),
            (
                "the request uid",
                Box::new(|l| l.spec.request_ref.uid = "other-pr".into()),
            ),
            (
                "the request name",
                Box::new(|l| l.spec.request_ref.name = "other".into()),
            ),
            (
                "the original end (extension budget)",
                Box::new(|l| {
                    l.annotations_mut()
                        .insert(ORIGINAL_END.into(), "2026-12-24T12:00:00Z".into());
                }),
            ),
            (
                "the namespace",
                Box::new(|l| l.metadata.namespace = Some("team-b".into())),
            ),
            (
                "the name",
                Box::new(|l| l.metadata.name = Some("copy".into())),
            ),
            (
                "the uid (deleted and re-created)",
                Box::new(|l| l.metadata.uid = Some("new-object".into())),
            ),
            (
                "the generation (any spec write, an older version put back)",
                Box::new(|l| l.metadata.generation = Some(2)),
            ),
        ];
        for (what, change) in changes {
            let mut lease = sealed(&signer);
            change(&mut lease);
            assert_eq!(
                signer.verify(&lease),
                Err(Untrusted::Mismatch),
                "changing {what} must break the signature"
            );
        }
        // What the operator does not read may change: labels, other annotations, status.
        let mut lease = sealed(&signer);
        lease.labels_mut().insert("team".into(), "a".into());
        lease
            .annotations_mut()
            .insert("note".into(), "hello".into());
        lease.status = Some(labpods_api::v1alpha1::LeaseStatus::default());
        assert_eq!(signer.verify(&lease), Ok(Seal::Sealed));
    }

    /// A provisional signature is worth nothing once the object changed, and cannot be
    /// passed off as a sealed one.
    #[test]
    fn provisional_signatures_hold_only_at_the_first_generation() {
        let signer = LeaseSigner::new(b"k");
        let mut lease = new_lease();
        signer.sign_new(&mut lease);
        let mut lease = created(lease);
        lease.metadata.generation = Some(2);
        assert_eq!(signer.verify(&lease), Err(Untrusted::Mismatch));
        let mut lease = created(new_lease());
        let provisional = signer.provisional(&lease);
        let tag = provisional.split_once(':').unwrap().1;
        lease
            .annotations_mut()
            .insert(SIGNATURE.into(), format!("{SEALED}:{tag}"));
        assert_eq!(signer.verify(&lease), Err(Untrusted::Mismatch));
    }

    #[test]
    fn sub_second_times_sign_as_the_apiserver_keeps_them() {
        let signer = LeaseSigner::new(b"k");
        let mut lease = created(new_lease());
        lease.spec.end = t("2026-11-24T12:00:00.700Z");
        let signature = signer.sealed(&lease, 1);
        lease.annotations_mut().insert(SIGNATURE.into(), signature);
        lease.spec.end = t("2026-11-24T12:00:00Z");
        assert_eq!(signer.verify(&lease), Ok(Seal::Sealed));
    }

    #[test]
    fn the_key_never_shows() {
        let signer = LeaseSigner::new(b"super secret key");
        assert!(!format!("{signer:?}").contains("secret"));
    }
}
