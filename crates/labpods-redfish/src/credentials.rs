//! BMC credentials. The password never leaves this module except into an auth header or the
//! session login body, and Debug prints `***`.

use std::fmt;

/// User name and password for a BMC.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    pub(crate) fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The user name is redacted too: on many BMCs it is half of the secret.
        f.write_str("Credentials(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_both_fields() {
        let shown = format!(
            "{:?} {:#?}",
            Credentials::new("root", "s3cret-pw"),
            Credentials::new("root", "s3cret-pw")
        );
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(!shown.contains("root"), "{shown}");
        assert!(shown.contains("***"));
    }
}
