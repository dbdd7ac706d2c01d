//! What must never leave the operator: the BMC passwords of a run and what tenants hand it in
//! confidence (issue 9, test 5). [`crate::e2e::E2e::shutdown`] looks for them in everything
//! the operator says: every log in target/e2e-logs/<test>/, every Event, every object's
//! status, the ConfigMaps it keeps, and each running replica's /metrics.

use base64::Engine;

/// A value that must never appear in the operator's output, with the spellings it could
/// take there.
#[derive(Debug, Clone)]
pub struct Confidential {
    /// What it is, for the report (never the value itself).
    label: String,
    spellings: Vec<String>,
}

impl Confidential {
    /// A BMC login: the password as is, and inside an HTTP Basic `Authorization` header
    /// (base64 of `user:password`), as a logged request would show it.
    pub fn bmc_login(label: impl Into<String>, username: &str, password: &str) -> Self {
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        Self {
            label: label.into(),
            spellings: vec![password.to_string(), basic],
        }
    }

    /// Any other value (a password a tenant put in an image URL, ...), spelled as is.
    pub fn value(label: impl Into<String>, value: &str) -> Self {
        Self {
            label: label.into(),
            spellings: vec![value.to_string()],
        }
    }
}

/// Something the operator wrote: where (a file, `Events`, `LabHost x status`) and the text.
#[derive(Debug, Clone)]
pub struct Output {
    pub source: String,
    pub text: String,
}

/// Every place a confidential value appears, as `label in source, line n`. The values are
/// never printed: the report may end up in a CI log.
pub fn find(confidential: &[Confidential], outputs: &[Output]) -> Vec<String> {
    let mut found = Vec::new();
    for secret in confidential {
        for output in outputs {
            let lines: Vec<usize> = output
                .text
                .lines()
                .enumerate()
                .filter(|(_, line)| {
                    secret
                        .spellings
                        .iter()
                        .any(|s| !s.is_empty() && line.contains(s.as_str()))
                })
                .map(|(i, _)| i + 1)
                .collect();
            if !lines.is_empty() {
                found.push(format!(
                    "{} in {}, line(s) {lines:?}",
                    secret.label, output.source
                ));
            }
        }
    }
    found
}

/// A password unique to one run, so that finding it anywhere means it leaked from this run
/// (a fixed one like `labpods` would be found in every log line naming the operator).
pub fn unique_password() -> String {
    format!("pw-{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(source: &str, text: &str) -> Output {
        Output {
            source: source.into(),
            text: text.into(),
        }
    }

    #[test]
    fn a_password_is_found_as_is_and_inside_a_basic_authorization() {
        let login = Confidential::bmc_login("the BMC password", "admin", "s3cret-value");
        let outputs = [
            output("a.log", "ok\nconnecting with s3cret-value\n"),
            // base64("admin:s3cret-value")
            output("b.log", "authorization: Basic YWRtaW46czNjcmV0LXZhbHVl"),
            output("Events", "nothing to see"),
        ];
        let found = find(&[login], &outputs);
        assert_eq!(
            found,
            [
                "the BMC password in a.log, line(s) [2]",
                "the BMC password in b.log, line(s) [1]"
            ]
        );
        assert!(found.iter().all(|f| !f.contains("s3cret")), "{found:?}");
    }

    #[test]
    fn clean_output_reports_nothing() {
        let secrets = [
            Confidential::bmc_login("bmc", "admin", &unique_password()),
            Confidential::value("tenant", "hunter2"),
        ];
        let outputs = [output("a.log", "admin logged in; password ***")];
        assert!(find(&secrets, &outputs).is_empty());
    }

    #[test]
    fn passwords_differ_per_run() {
        assert_ne!(unique_password(), unique_password());
    }
}
