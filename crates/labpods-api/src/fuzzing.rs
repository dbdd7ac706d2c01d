//! Fuzz entry point (`fuzz/fuzz_targets/podrequest_validation.rs`) and the replay of its
//! corpus in this crate's unit tests: a tenant's PodRequest spec (JSON, as the apiserver
//! hands it over) through every check the controllers run. Any bytes: no panic, every error
//! names a field under `spec` and says something, access errors never quote the tenant's
//! keys, and a booking length reads back as it is printed.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::PodRequestSpec;
use crate::validation::{
    access_errors, effective_window, format_duration, parse_duration, podrequest_rule_errors,
    rules::is_ssh_public_key_line, validate_podrequest,
};

/// Checks `input`; panics on a broken invariant.
pub fn podrequest(input: &[u8]) {
    if let Ok(text) = std::str::from_utf8(input) {
        if let Some(length) = parse_duration(text) {
            assert!(length > SignedDuration::ZERO);
            assert_eq!(
                parse_duration(&format_duration(length)),
                Some(length),
                "{text:?}"
            );
        }
        let _ = is_ssh_public_key_line(text);
    }
    let Ok(spec) = serde_json::from_slice::<PodRequestSpec>(input) else {
        return;
    };
    let now = Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
    let mut errors = validate_podrequest(&spec, now, SignedDuration::from_hours(24 * 14));
    errors.extend(podrequest_rule_errors(&spec));
    let access = access_errors(&spec);
    for e in &errors {
        assert!(e.field.starts_with("spec"), "{e}");
        assert!(!e.message.is_empty(), "{e}");
    }
    let keys = spec
        .access
        .iter()
        .chain(spec.roles.iter().filter_map(|r| r.access.as_ref()))
        .flat_map(|a| a.ssh_authorized_keys.iter());
    for key in keys.filter(|k| k.len() >= 16) {
        for e in &access {
            assert!(!e.message.contains(key.as_str()), "{e} quotes a key");
        }
    }
    if let Ok(window) = effective_window(&spec, now) {
        assert!(window.end > window.start);
    }
}

#[cfg(test)]
mod tests {
    /// The fuzz corpus (the examples' specs and what the fuzzer kept) still holds.
    #[test]
    fn the_fuzz_corpus_replays_cleanly() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fuzz/corpus/podrequest_validation"
        );
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
            let path = entry.map(|e| e.path()).unwrap_or_default();
            let input = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            super::podrequest(&input);
            n += 1;
        }
        assert!(n >= 5, "only {n} inputs in {dir}");
    }
}
