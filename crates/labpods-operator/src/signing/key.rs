//! The Lease signing key: a Secret in the operator's namespace (`leaderElection.leaseNamespace`,
//! where the history lives too), named by `leases.signingKeySecret`. Every replica reads the
//! same key, and a restarted operator verifies what it signed before.
//!
//! The operator creates the Secret with 32 random bytes on first start. It never replaces a
//! lost one silently: if the Secret is missing while signed Leases exist, a new key would
//! make every running booking untrusted (and released), so startup fails and says how to
//! recover.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, ObjectMeta, PostParams},
};
use labpods_api::v1alpha1::Lease;
use ring::rand::{SecureRandom, SystemRandom};

use super::{LeaseSigner, SIGNATURE};

/// The key's entry in the Secret.
pub const KEY: &str = "key";
/// Shortest key accepted (HMAC-SHA256 wants 32 bytes).
const MIN_KEY_BYTES: usize = 32;

/// Why the key cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the Lease signing key Secret {namespace}/{name} is missing, but Lease {lease} (and maybe others) is signed with it; a new key would make every running booking untrusted and release its hosts. Restore the Secret from your backup, or, to give up every current booking, delete the Leases (kubectl delete leases.labpods.dev --all -A) and start again"
    )]
    Lost {
        namespace: String,
        name: String,
        lease: String,
    },
    #[error(
        "the Lease signing key Secret {namespace}/{name} has no usable `{KEY}` entry (at least {MIN_KEY_BYTES} bytes): {problem}"
    )]
    Unusable {
        namespace: String,
        name: String,
        problem: String,
    },
    #[error("no system randomness to make a Lease signing key")]
    Randomness,
    #[error("reading or creating the Lease signing key Secret: {0}")]
    Kube(#[from] kube::Error),
}

impl KeyError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Lost { .. } => "signing_key_lost",
            Self::Unusable { .. } => "signing_key_unusable",
            Self::Randomness => "randomness",
            Self::Kube(_) => "kube",
        }
    }
}

/// The key in `secret`, if it holds a usable one (pure).
pub fn key_of(secret: &Secret) -> Result<Vec<u8>, String> {
    let key = secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEY))
        .ok_or_else(|| format!("no `{KEY}` entry"))?;
    if key.0.len() < MIN_KEY_BYTES {
        return Err(format!("`{KEY}` holds {} bytes", key.0.len()));
    }
    Ok(key.0.clone())
}

/// A new Secret holding a random key.
fn new_secret(namespace: &str, name: &str) -> Result<Secret, KeyError> {
    let mut key = vec![0u8; MIN_KEY_BYTES];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| KeyError::Randomness)?;
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/part-of".to_owned(),
                "labpods".to_owned(),
            )])),
            annotations: Some(BTreeMap::from([(
                "labpods.dev/purpose".to_owned(),
                "signs the Leases the operator writes; losing it releases every booking".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(KEY.to_owned(), ByteString(key))])),
        ..Secret::default()
    })
}

/// Reads the key, creating it on first start (see the module doc for when it refuses).
pub async fn load_or_create(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<LeaseSigner, KeyError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let unusable = |problem: String| KeyError::Unusable {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        problem,
    };
    if let Some(secret) = secrets.get_opt(name).await? {
        return key_of(&secret)
            .map(|k| LeaseSigner::new(&k))
            .map_err(unusable);
    }
    if let Some(lease) = some_signed_lease(client).await? {
        return Err(KeyError::Lost {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            lease,
        });
    }
    let secret = match secrets
        .create(&PostParams::default(), &new_secret(namespace, name)?)
        .await
    {
        Ok(created) => {
            tracing::info!(%namespace, %name, "created the Lease signing key");
            created
        }
        // Another replica created it first: use theirs.
        Err(kube::Error::Api(s)) if s.code == 409 => secrets.get(name).await?,
        Err(e) => return Err(e.into()),
    };
    key_of(&secret)
        .map(|k| LeaseSigner::new(&k))
        .map_err(unusable)
}

/// `namespace/name` of one Lease that carries a signature, if any.
async fn some_signed_lease(client: &Client) -> Result<Option<String>, kube::Error> {
    let leases: Api<Lease> = Api::all(client.clone());
    let mut params = ListParams::default().limit(500);
    loop {
        let page = leases.list_metadata(&params).await?;
        if let Some(signed) = page
            .items
            .iter()
            .find(|l| l.annotations().contains_key(SIGNATURE))
        {
            return Ok(Some(format!(
                "{}/{}",
                signed.namespace().unwrap_or_default(),
                signed.name_any()
            )));
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(None),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn a_new_secret_holds_a_random_usable_key() {
        let a = new_secret("labpods-system", "labpods-lease-signing").unwrap();
        let b = new_secret("labpods-system", "labpods-lease-signing").unwrap();
        assert_eq!(key_of(&a).unwrap().len(), MIN_KEY_BYTES);
        assert_ne!(key_of(&a).unwrap(), key_of(&b).unwrap());
        assert_eq!(a.metadata.namespace.as_deref(), Some("labpods-system"));
    }

    #[test]
    fn short_or_missing_keys_are_refused() {
        let mut secret = new_secret("ns", "s").unwrap();
        secret.data = Some(BTreeMap::from([(KEY.to_owned(), ByteString(vec![1; 8]))]));
        assert_eq!(key_of(&secret).unwrap_err(), "`key` holds 8 bytes");
        secret.data = None;
        assert_eq!(key_of(&secret).unwrap_err(), "no `key` entry");
    }

    #[test]
    fn the_lost_key_message_says_how_to_recover() {
        let e = KeyError::Lost {
            namespace: "labpods-system".into(),
            name: "labpods-lease-signing".into(),
            lease: "team-a/ci-pod".into(),
        };
        let m = e.to_string();
        assert!(m.contains("labpods-system/labpods-lease-signing"), "{m}");
        assert!(m.contains("team-a/ci-pod"), "{m}");
        assert!(m.contains("Restore the Secret"), "{m}");
    }
}
