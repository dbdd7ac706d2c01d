//! A fresh namespace per test, deleted when the test ends (passing or not).

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::cleanup::DeleteOnDrop;
use crate::error::Result;

/// Label on every test namespace, to find leftovers.
pub const TEST_NAMESPACE_LABEL: &str = "labpods.dev/test";

#[derive(Debug)]
pub struct TestNamespace {
    name: String,
    /// The namespace controller deletes what is in it.
    _delete: DeleteOnDrop,
}

impl TestNamespace {
    /// Creates `<prefix>-<random suffix>`.
    pub(crate) async fn create(client: &Client, kubeconfig: PathBuf, prefix: &str) -> Result<Self> {
        let name = namespace_name(prefix);
        create_namespace(client, &name, &[(TEST_NAMESPACE_LABEL, "true")]).await?;
        let delete = DeleteOnDrop::new(kubeconfig, format!("namespace/{name}"));
        Ok(Self {
            name,
            _delete: delete,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Creates namespace `name` with `labels`.
pub async fn create_namespace(client: &Client, name: &str, labels: &[(&str, &str)]) -> Result<()> {
    let labels = labels
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()));
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels.collect()).filter(|l: &BTreeMap<_, _>| !l.is_empty()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    Ok(())
}

/// A DNS label: the prefix cut to leave room for the suffix, lowercase, with a random suffix.
fn namespace_name(prefix: &str) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    let clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(50)
        .collect();
    let clean = clean.trim_matches('-');
    let suffix = Alphanumeric
        .sample_string(&mut rand::rng(), 6)
        .to_ascii_lowercase();
    if clean.is_empty() {
        format!("test-{suffix}")
    } else {
        format!("{clean}-{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::namespace_name;

    #[test]
    fn names_are_dns_labels_with_a_fresh_suffix() {
        let name =
            namespace_name("Validation::rejects_Bad_input_with_a_very_long_test_name_indeed");
        assert!(name.len() <= 63, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}"
        );
        assert!(!name.starts_with('-') && !name.ends_with('-'), "{name}");
        assert_ne!(namespace_name("same"), namespace_name("same"));
    }
}
