//! The one table of validation rules that both the apiserver and the controllers check.
//!
//! Every [`Rule`] has a CEL expression, which [`crate::crds()`] attaches to the CRD schema as
//! an `x-kubernetes-validations` entry, and a Rust predicate with the same meaning, which
//! [`crate::validation`] runs as a second line of defence (an object stored before the rule
//! existed, an apiserver that was not given the CRD from this crate). Both report the same
//! field path and the same message, so a user sees one wording wherever the rule caught them.
//!
//! Where a rule sits is decided by its [`Check`] variant: the variant names both the schema
//! node the CEL rule is attached to (`self` in the expression) and the Rust type its
//! predicate looks at, so the two cannot disagree about what `self` is.
//!
//! Rules that need the clock (a window in the past) or the operator's configuration (the
//! lab's longest booking) cannot be CEL (the apiserver has neither) and live only in
//! [`crate::validation`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::{FieldError, is_label_key, is_label_value, is_url_with_host, parse_duration};
use crate::{BmcSpec, BmcTls, ImageSpec, LeaseSpec, PodRequest, PodRequestSpec, RoleSpec};

/// Most hosts one PodRequest may ask for, over all its roles. A `macro_rules!` so the number
/// is spelled once for the Rust constant, the CEL expression and the message.
macro_rules! max_hosts_per_request {
    () => {
        128
    };
}

/// Most hosts one PodRequest may ask for, over all its roles.
pub const MAX_HOSTS_PER_REQUEST: u32 = max_hosts_per_request!();

/// A label key, `[prefix/]name` (RE2, as CEL's `matches` reads it): prefix dot-separated DNS
/// labels, name at most 63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends. The prefix's
/// 253-character limit is a second expression (RE2 cannot bound a repeated group's length).
macro_rules! label_key_re {
    () => {
        "^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?([.][a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
    };
}

/// The prefix of a label key (before the `/`) is at most 253 characters.
macro_rules! label_key_prefix_length_re {
    () => {
        "^([^/]{1,253}/)?[^/]*$"
    };
}

/// A certificate's SHA-256 fingerprint: 64 hex digits, or 32 colon-separated pairs.
macro_rules! sha256_fingerprint_re {
    () => {
        "^([0-9A-Fa-f]{64}|[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){31})$"
    };
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
macro_rules! label_value_re {
    () => {
        "^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
    };
}

/// CEL: the string `$s` is a label key.
macro_rules! cel_label_key {
    ($s:literal) => {
        concat!(
            $s,
            ".matches('",
            label_key_re!(),
            "') && ",
            $s,
            ".matches('",
            label_key_prefix_length_re!(),
            "')"
        )
    };
}

/// CEL: the string `$s` is a label value.
macro_rules! cel_label_value {
    ($s:literal) => {
        concat!($s, ".matches('", label_value_re!(), "')")
    };
}

/// CEL: the string `$s` is an http(s) URL with a host.
macro_rules! cel_http_url {
    ($s:literal) => {
        concat!(
            "isURL(",
            $s,
            ") && url(",
            $s,
            ").getScheme() in ['http', 'https'] && url(",
            $s,
            ").getHostname() != ''"
        )
    };
}

/// The shape of an OpenSSH public key line (RE2): `<type> <base64>[ <comment>]`. RE2's `.`
/// stops at a newline and `$` is the end of the text, so a comment cannot smuggle a second
/// line (another key, or `command=` options) in. Kept this short on purpose: the apiserver
/// prices a regex by its length times the string's, for every key of every role, and
/// refuses the CRD past its budget (a list of the types in CEL costs more than it allows).
/// The exact list of types ([`SSH_KEY_TYPES`]) and the padding are the controller's check,
/// with the key's base64 body.
macro_rules! ssh_public_key_re {
    () => {
        "^[a-z0-9@.-]+ [A-Za-z0-9+/]+=*( .*)?$"
    };
}

/// The OpenSSH public key types accepted in `sshAuthorizedKeys` (DSA is gone from OpenSSH).
pub const SSH_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// The RE2 expression CEL uses for an OpenSSH public key line.
pub const SSH_PUBLIC_KEY_RE: &str = ssh_public_key_re!();

/// The RE2 expression CEL uses for a label key (for tests and documentation).
pub const LABEL_KEY_RE: &str = label_key_re!();
/// The RE2 expression CEL uses for a label value.
pub const LABEL_VALUE_RE: &str = label_value_re!();

/// How the apiserver words a failed rule (`reason` of an `x-kubernetes-validations` entry).
/// `FieldValueDuplicate` is left out on purpose: the apiserver drops the message for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `Invalid value: ...: <message>` (the default).
    Invalid,
    /// `Required value: <message>`.
    Required,
    /// `Forbidden: <message>`.
    Forbidden,
}

impl Reason {
    /// The value of `reason` in the CRD.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "FieldValueInvalid",
            Self::Required => "FieldValueRequired",
            Self::Forbidden => "FieldValueForbidden",
        }
    }

    /// What the apiserver writes between the field and the message.
    pub fn label(self) -> &'static str {
        match self {
            Self::Invalid => "Invalid value",
            Self::Required => "Required value",
            Self::Forbidden => "Forbidden",
        }
    }
}

/// The kinds rules are attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `labhosts.labpods.dev`.
    LabHost,
    /// `podrequests.labpods.dev`.
    PodRequest,
    /// `leases.labpods.dev`.
    Lease,
}

impl Kind {
    /// The kind's name, as in `kind:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LabHost => "LabHost",
            Self::PodRequest => "PodRequest",
            Self::Lease => "Lease",
        }
    }
}

/// Where a rule sits and the Rust predicate that means the same as its CEL expression
/// (`true`: the rule holds). Each variant's doc names the schema node (`self` in CEL).
#[derive(Debug, Clone, Copy)]
pub enum Check {
    /// `self` is a PodRequest's `spec`.
    PodRequestSpec(fn(&PodRequestSpec) -> bool),
    /// `self` is one entry of a PodRequest's `spec.roles`.
    Role(fn(&RoleSpec) -> bool),
    /// `self` is the `selector` of a role.
    Selector(fn(&LabelSelector) -> bool),
    /// `self` is one entry of a role selector's `matchExpressions`.
    Requirement(fn(&LabelSelectorRequirement) -> bool),
    /// `self` is the `spec.image` of a PodRequest or of a Lease.
    Image(fn(&ImageSpec) -> bool),
    /// A transition rule on a whole PodRequest (the schema root, so it sees the status):
    /// `oldSelf` is the stored object, `self` the update.
    PodRequestUpdate(fn(old: &PodRequest, new: &PodRequest) -> bool),
    /// `self` is a Lease's `spec`.
    LeaseSpec(fn(&LeaseSpec) -> bool),
    /// `self` is one entry of `sshAuthorizedKeys` in a PodRequest's `spec.access` or in a
    /// role's `access` (one string per rule keeps the apiserver's cost estimate small).
    SshKey(fn(&str) -> bool),
    /// `self` is a LabHost's `spec.bmc`.
    Bmc(fn(&BmcSpec) -> bool),
    /// `self` is a LabHost's `spec.bmc.tls`.
    BmcTls(fn(&BmcTls) -> bool),
}

impl Check {
    /// The schema nodes the rule is attached to: the kind and the path from the schema root,
    /// `.` between fields and `[]` for the items of a list (`spec.roles[].selector`; `` is
    /// the root).
    pub fn locations(&self) -> &'static [(Kind, &'static str)] {
        match self {
            Self::PodRequestSpec(_) => &[(Kind::PodRequest, "spec")],
            Self::Role(_) => &[(Kind::PodRequest, "spec.roles[]")],
            Self::Selector(_) => &[(Kind::PodRequest, "spec.roles[].selector")],
            Self::Requirement(_) => {
                &[(Kind::PodRequest, "spec.roles[].selector.matchExpressions[]")]
            }
            Self::Image(_) => &[
                (Kind::PodRequest, "spec.image"),
                (Kind::Lease, "spec.image"),
            ],
            Self::PodRequestUpdate(_) => &[(Kind::PodRequest, "")],
            Self::SshKey(_) => &[
                (Kind::PodRequest, "spec.access.sshAuthorizedKeys[]"),
                (Kind::PodRequest, "spec.roles[].access.sshAuthorizedKeys[]"),
            ],
            Self::LeaseSpec(_) => &[(Kind::Lease, "spec")],
            Self::Bmc(_) => &[(Kind::LabHost, "spec.bmc")],
            Self::BmcTls(_) => &[(Kind::LabHost, "spec.bmc.tls")],
        }
    }

    /// Whether the rule compares the update with the stored object (`oldSelf`).
    pub fn is_transition(&self) -> bool {
        matches!(self, Self::PodRequestUpdate(_))
    }
}

/// One validation rule, checked by the apiserver (CEL) and by the controllers (Rust).
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Stable name, for tests and documentation.
    pub id: &'static str,
    /// The CEL expression; `self` is the node [`Check::locations`] names.
    pub cel: &'static str,
    /// What is wrong and how to fix it, naming the field; the same from CEL and Rust.
    pub message: &'static str,
    /// The field reported, relative to the rule's node, in CEL `fieldPath` syntax (`.end`);
    /// empty for the node itself.
    pub field_path: &'static str,
    /// How the apiserver words the failure.
    pub reason: Reason,
    /// Where the rule sits and its Rust predicate.
    pub check: Check,
}

impl Rule {
    /// The error this rule reports for the node at `at`, an object path with list indexes
    /// (`spec.roles[1].selector`, or `` for the root): the path the apiserver prints.
    pub fn error_at(&self, at: &str) -> FieldError {
        let field = match (at, self.field_path) {
            (at, "") => at.to_owned(),
            ("", relative) => relative.trim_start_matches('.').to_owned(),
            (at, relative) => format!("{at}{relative}"),
        };
        FieldError::new(field, self.message)
    }

    /// The rule as an `x-kubernetes-validations` entry.
    pub fn to_validation_rule(
        &self,
    ) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule {
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule {
            rule: self.cel.to_owned(),
            message: Some(self.message.to_owned()),
            field_path: (!self.field_path.is_empty()).then(|| self.field_path.to_owned()),
            reason: (self.reason != Reason::Invalid).then(|| self.reason.as_str().to_owned()),
            ..Default::default()
        }
    }
}

/// A PodRequest says how long it lasts.
pub const LENGTH_REQUIRED: Rule = Rule {
    id: "podrequest-length-required",
    cel: "has(self.duration) || has(self.end)",
    message: "set how long the booking lasts: spec.duration (e.g. 72h) or spec.end (RFC 3339)",
    field_path: ".duration",
    reason: Reason::Required,
    check: Check::PodRequestSpec(|s| s.duration.is_some() || s.end.is_some()),
};

/// A PodRequest has a duration or an end, not both.
pub const DURATION_XOR_END: Rule = Rule {
    id: "podrequest-duration-xor-end",
    cel: "!(has(self.duration) && has(self.end))",
    message: "set either spec.duration or spec.end, not both: remove one of them",
    field_path: ".end",
    reason: Reason::Forbidden,
    check: Check::PodRequestSpec(|s| !(s.duration.is_some() && s.end.is_some())),
};

/// A PodRequest's duration is longer than zero.
pub const DURATION_POSITIVE: Rule = Rule {
    id: "podrequest-duration-positive",
    // The schema's pattern allows only `<n>d<n>h<n>m` terms with few digits, so a
    // non-zero digit is exactly "longer than zero".
    cel: "!has(self.duration) || self.duration.matches('[1-9]')",
    message: "spec.duration must be longer than zero: use <n>d, <n>h, <n>m terms, largest first, e.g. 72h or 1d12h",
    field_path: ".duration",
    reason: Reason::Invalid,
    check: Check::PodRequestSpec(|s| {
        s.duration
            .as_deref()
            .is_none_or(|d| parse_duration(d).is_some())
    }),
};

/// A PodRequest ends after it starts.
pub const END_AFTER_START: Rule = Rule {
    id: "podrequest-end-after-start",
    cel: "!has(self.start) || !has(self.end) || self.end > self.start",
    message: "spec.end must be after spec.start: set spec.end later, or use spec.duration",
    field_path: ".end",
    reason: Reason::Invalid,
    check: Check::PodRequestSpec(|s| match (&s.start, &s.end) {
        (Some(start), Some(end)) => end.0 > start.0,
        _ => true,
    }),
};

/// Every rule, in the order the errors are reported.
pub const RULES: &[Rule] = &[
    // PodRequest: the window.
    LENGTH_REQUIRED,
    DURATION_XOR_END,
    DURATION_POSITIVE,
    END_AFTER_START,
    // PodRequest: the roles.
    Rule {
        id: "podrequest-role-names-unique",
        cel: "self.roles.all(r, self.roles.exists_one(o, o.name == r.name))",
        message: "role names in spec.roles must be unique: merge the entries or rename one",
        field_path: ".roles",
        reason: Reason::Invalid,
        check: Check::PodRequestSpec(|s| {
            let mut names: Vec<&str> = s.roles.iter().map(|r| r.name.as_str()).collect();
            names.sort_unstable();
            names.windows(2).all(|w| w[0] != w[1])
        }),
    },
    Rule {
        id: "podrequest-total-hosts",
        cel: concat!(
            "self.roles.map(r, r.count).sum() <= ",
            max_hosts_per_request!()
        ),
        message: concat!(
            "the roles in spec.roles ask for more than ",
            max_hosts_per_request!(),
            " hosts in total: lower the counts or split the booking"
        ),
        field_path: ".roles",
        reason: Reason::Invalid,
        check: Check::PodRequestSpec(|s| {
            s.roles.iter().map(|r| u64::from(r.count)).sum::<u64>()
                <= u64::from(MAX_HOSTS_PER_REQUEST)
        }),
    },
    // PodRequest: role selectors.
    Rule {
        id: "selector-match-labels-keys",
        cel: concat!(
            "!has(self.matchLabels) || self.matchLabels.all(k, ",
            cel_label_key!("k"),
            ")"
        ),
        message: "every key of matchLabels must be a label key, [prefix/]name: prefix a DNS subdomain (at most 253 characters), name at most 63 letters, digits, '-', '_' or '.', alphanumeric at both ends, e.g. labpods.dev/rack",
        field_path: ".matchLabels",
        reason: Reason::Invalid,
        check: Check::Selector(|s| {
            s.match_labels
                .iter()
                .flatten()
                .all(|(k, _)| is_label_key(k))
        }),
    },
    Rule {
        id: "selector-match-labels-values",
        cel: concat!(
            "!has(self.matchLabels) || self.matchLabels.all(k, ",
            cel_label_value!("self.matchLabels[k]"),
            ")"
        ),
        message: "every value of matchLabels must be a label value: empty, or at most 63 letters, digits, '-', '_' or '.', alphanumeric at both ends, e.g. x86_64",
        field_path: ".matchLabels",
        reason: Reason::Invalid,
        check: Check::Selector(|s| {
            s.match_labels
                .iter()
                .flatten()
                .all(|(_, v)| is_label_value(v))
        }),
    },
    Rule {
        id: "requirement-key",
        cel: cel_label_key!("self.key"),
        message: "key must be a label key, [prefix/]name: prefix a DNS subdomain (at most 253 characters), name at most 63 letters, digits, '-', '_' or '.', alphanumeric at both ends, e.g. labpods.dev/rack",
        field_path: ".key",
        reason: Reason::Invalid,
        check: Check::Requirement(|r| is_label_key(&r.key)),
    },
    Rule {
        id: "requirement-operator",
        cel: "self.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist']",
        message: "operator must be In, NotIn, Exists or DoesNotExist",
        field_path: ".operator",
        reason: Reason::Invalid,
        check: Check::Requirement(|r| {
            matches!(
                r.operator.as_str(),
                "In" | "NotIn" | "Exists" | "DoesNotExist"
            )
        }),
    },
    Rule {
        id: "requirement-values-required",
        cel: "!(self.operator in ['In', 'NotIn']) || (has(self.values) && size(self.values) > 0)",
        message: "operators In and NotIn need at least one value: list the values to match",
        field_path: ".values",
        reason: Reason::Required,
        check: Check::Requirement(|r| {
            !matches!(r.operator.as_str(), "In" | "NotIn")
                || r.values.as_ref().is_some_and(|v| !v.is_empty())
        }),
    },
    Rule {
        id: "requirement-values-forbidden",
        cel: "!(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) || size(self.values) == 0",
        message: "operators Exists and DoesNotExist take no values: remove values",
        field_path: ".values",
        reason: Reason::Forbidden,
        check: Check::Requirement(|r| {
            !matches!(r.operator.as_str(), "Exists" | "DoesNotExist")
                || r.values.as_ref().is_none_or(Vec::is_empty)
        }),
    },
    Rule {
        id: "requirement-values-syntax",
        cel: concat!(
            "!has(self.values) || self.values.all(v, ",
            cel_label_value!("v"),
            ")"
        ),
        message: "every entry of values must be a label value: empty, or at most 63 letters, digits, '-', '_' or '.', alphanumeric at both ends, e.g. x86-small",
        field_path: ".values",
        reason: Reason::Invalid,
        check: Check::Requirement(|r| r.values.iter().flatten().all(|v| is_label_value(v))),
    },
    // The image (PodRequest and Lease).
    // CEL's isURL (Go's url.ParseRequestURI) is looser than the url crate in corners, such as
    // a port above 65535: there the Rust check refuses what the apiserver let through.
    Rule {
        id: "image-url",
        cel: cel_http_url!("self.url"),
        message: "spec.image.url must be an http:// or https:// URL with a host, of the ISO image the BMC fetches, e.g. http://images.lab/ubuntu.iso",
        field_path: ".url",
        reason: Reason::Invalid,
        check: Check::Image(|i| is_url_with_host(&i.url)),
    },
    // The operator refuses such a URL before any BMC sees it too; here the tenant learns it
    // at `kubectl apply`, and the password never reaches a status or an Event. The message
    // does not repeat the URL (the apiserver prints the rule's message, not the value).
    Rule {
        id: "image-url-no-credentials",
        cel: "!self.url.matches('^[^:/?#]+://[^/?#]*@')",
        message: "spec.image.url must not hold credentials (user:password@): the BMC, its logs and the booking's status would show them; serve the image at a URL the BMC can fetch as it is, e.g. a pre-signed one",
        field_path: ".url",
        reason: Reason::Invalid,
        check: Check::Image(|i| !has_userinfo(&i.url)),
    },
    Rule {
        id: "image-checksum-length",
        cel: "!has(self.checksum) || self.checksum.matches('^sha256:[0-9a-f]{64}$') || self.checksum.matches('^sha512:[0-9a-f]{128}$')",
        message: "spec.image.checksum must be sha256: and 64 lower-case hex digits, or sha512: and 128: copy the digest from the image's SHA256SUMS or SHA512SUMS file",
        field_path: ".checksum",
        reason: Reason::Invalid,
        check: Check::Image(|i| i.checksum.as_deref().is_none_or(is_checksum)),
    },
    // PodRequest access (the request's and each role's). The apiserver checks the shape;
    // that the base64 body is a key of the stated type only the controller can check
    // (`validation::access_errors`).
    Rule {
        id: "access-ssh-key-format",
        cel: concat!("self.matches('", ssh_public_key_re!(), "')"),
        message: "an entry of sshAuthorizedKeys must be one OpenSSH public key line, `<type> <base64> [comment]`, of type ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521, sk-ssh-ed25519@openssh.com or sk-ecdsa-sha2-nistp256@openssh.com: paste the single line of your key's .pub file (e.g. ~/.ssh/id_ed25519.pub), without options",
        field_path: "",
        reason: Reason::Invalid,
        check: Check::SshKey(is_ssh_public_key_line),
    },
    // PodRequest updates: what may not change once hosts are bound.
    Rule {
        id: "podrequest-roles-immutable-once-bound",
        cel: "!has(oldSelf.status) || !has(oldSelf.status.lease) || self.spec.roles == oldSelf.spec.roles",
        message: "spec.roles cannot change once hosts are bound (status.lease is set): delete the PodRequest and book again with the new roles",
        field_path: ".spec.roles",
        reason: Reason::Forbidden,
        check: Check::PodRequestUpdate(|old, new| {
            old.status.as_ref().is_none_or(|s| s.lease.is_none())
                || same_roles(&old.spec.roles, &new.spec.roles)
        }),
    },
    Rule {
        id: "podrequest-image-immutable-once-provisioning",
        cel: "!has(oldSelf.status) || !has(oldSelf.status.phase) || !(oldSelf.status.phase in ['Provisioning', 'Ready', 'Releasing', 'Released']) || self.spec.image == oldSelf.spec.image",
        message: "spec.image cannot change once provisioning has started (status.phase Provisioning or later): delete the PodRequest and book again with the new image",
        field_path: ".spec.image",
        reason: Reason::Forbidden,
        check: Check::PodRequestUpdate(|old, new| {
            use crate::PodRequestPhase::{Provisioning, Ready, Released, Releasing};
            let started = old
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .is_some_and(|p| matches!(p, Provisioning | Ready | Releasing | Released));
            !started || old.spec.image == new.spec.image
        }),
    },
    // Lease.
    Rule {
        id: "lease-end-after-start",
        cel: "self.end > self.start",
        message: "spec.end must be after spec.start: set spec.end later",
        field_path: ".end",
        reason: Reason::Invalid,
        check: Check::LeaseSpec(|l| l.end.0 > l.start.0),
    },
    // LabHost.
    // As image-url: the Rust check is the stricter in corners.
    Rule {
        id: "bmc-address-url",
        cel: cel_http_url!("self.address"),
        message: "spec.bmc.address must be the BMC's Redfish URL, http:// or https:// with a host, e.g. https://10.0.0.21",
        field_path: ".address",
        reason: Reason::Invalid,
        check: Check::Bmc(|b| is_url_with_host(&b.address)),
    },
    Rule {
        id: "bmc-system-id-one-segment",
        cel: "!has(self.systemId) || !self.systemId.contains('/')",
        message: "spec.bmc.systemId is one path segment (the <id> in /redfish/v1/Systems/<id>): remove the '/'",
        field_path: ".systemId",
        reason: Reason::Invalid,
        check: Check::Bmc(|b| b.system_id.as_deref().is_none_or(|id| !id.contains('/'))),
    },
    Rule {
        id: "bmc-tls-ca-or-insecure",
        cel: "!(has(self.caBundleSecretRef) && has(self.insecureSkipVerify) && self.insecureSkipVerify)",
        message: "caBundleSecretRef and insecureSkipVerify contradict each other: keep the CA bundle and set insecureSkipVerify to false",
        field_path: "",
        reason: Reason::Invalid,
        check: Check::BmcTls(|t| !(t.ca_bundle_secret_ref.is_some() && t.insecure_skip_verify)),
    },
    Rule {
        id: "bmc-tls-fingerprint-format",
        cel: concat!(
            "!has(self.certificateSha256) || self.certificateSha256.matches('",
            sha256_fingerprint_re!(),
            "')"
        ),
        message: "spec.bmc.tls.certificateSha256 must be a SHA-256 fingerprint: 64 hex digits, optionally colon-separated pairs as `openssl x509 -noout -fingerprint -sha256` prints",
        field_path: ".certificateSha256",
        reason: Reason::Invalid,
        check: Check::BmcTls(|t| {
            t.certificate_sha256
                .as_deref()
                .is_none_or(is_sha256_fingerprint)
        }),
    },
    Rule {
        id: "bmc-tls-fingerprint-alone",
        cel: "!has(self.certificateSha256) || !(has(self.caBundleSecretRef) || (has(self.insecureSkipVerify) && self.insecureSkipVerify))",
        message: "certificateSha256 pins one certificate and contradicts caBundleSecretRef and insecureSkipVerify: remove caBundleSecretRef and set insecureSkipVerify to false, or remove certificateSha256",
        field_path: "",
        reason: Reason::Invalid,
        check: Check::BmcTls(|t| {
            t.certificate_sha256.is_none()
                || !(t.ca_bundle_secret_ref.is_some() || t.insecure_skip_verify)
        }),
    },
];

/// `spec.bmc.tls.certificateSha256`: 64 hex digits, or 32 colon-separated pairs.
fn is_sha256_fingerprint(s: &str) -> bool {
    let hex = |p: &str| p.bytes().all(|b| b.is_ascii_hexdigit());
    if s.contains(':') {
        let pairs: Vec<&str> = s.split(':').collect();
        pairs.len() == 32 && pairs.iter().all(|p| p.len() == 2 && hex(p))
    } else {
        s.len() == 64 && hex(s)
    }
}

/// Whether a URL has userinfo: an `@` between `scheme://` and the path, query or fragment
/// (what the rule's RE2 expression matches).
fn has_userinfo(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !scheme.is_empty() && !scheme.contains(['/', '?', '#']) && authority.contains('@')
}

/// What [`SSH_PUBLIC_KEY_RE`] matches: a type of lower-case letters, digits, `@`, `.` and
/// `-`, one space, a base64 alphabet body ending in any `=`, then nothing or a space and a
/// comment without a newline.
pub fn is_ssh_public_key_line(line: &str) -> bool {
    let Some((kind, rest)) = line.split_once(' ') else {
        return false;
    };
    let (body, comment) = rest.split_once(' ').unwrap_or((rest, ""));
    let digits = body.trim_end_matches('=');
    !kind.is_empty()
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"@.-".contains(&b))
        && !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        && !comment.contains('\n')
}

/// The rule with `id`.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// `sha256:<64 hex>` or `sha512:<128 hex>`, lower-case.
fn is_checksum(checksum: &str) -> bool {
    let expected = match checksum.split_once(':') {
        Some(("sha256", hex)) => (64, hex),
        Some(("sha512", hex)) => (128, hex),
        _ => return false,
    };
    let (len, hex) = expected;
    hex.len() == len
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Roles compare as the apiserver compares a `x-kubernetes-list-type: map` list: as a map
/// by name, whatever the order.
fn same_roles(a: &[RoleSpec], b: &[RoleSpec]) -> bool {
    fn sorted(roles: &[RoleSpec]) -> Vec<&RoleSpec> {
        let mut v: Vec<&RoleSpec> = roles.iter().collect();
        v.sort_by(|x, y| x.name.cmp(&y.name));
        v
    }
    a.len() == b.len() && sorted(a) == sorted(b)
}

/// Errors of the rules at `at` whose check is selected by `pick`.
pub(super) fn errors_of<T: ?Sized>(
    out: &mut Vec<FieldError>,
    at: &str,
    subject: &T,
    pick: impl Fn(&Check) -> Option<fn(&T) -> bool>,
) {
    for rule in RULES {
        if let Some(holds) = pick(&rule.check)
            && !holds(subject)
        {
            out.push(rule.error_at(at));
        }
    }
}
