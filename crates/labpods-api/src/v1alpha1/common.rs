//! Types shared by more than one kind.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::patterns;

/// The operating-system image to boot, as an ISO the BMC mounts as virtual media.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// URL of the ISO image, `http://` or `https://`; the BMC fetches it itself, so it must be
    /// reachable from the lab's management network.
    #[schemars(pattern(patterns::IMAGE_URL), length(max = 2048))]
    pub url: String,
    /// Expected digest of the image, `sha256:<hex>` or `sha512:<hex>`; when set, an image that
    /// does not match is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::CHECKSUM), length(max = patterns::CHECKSUM_MAX_LENGTH))]
    pub checksum: Option<String>,
}

impl ImageSpec {
    /// An image without a checksum.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            checksum: None,
        }
    }

    /// The same image, with an expected checksum such as `sha256:<hex>`.
    #[must_use]
    pub fn with_checksum(mut self, checksum: impl Into<String>) -> Self {
        self.checksum = Some(checksum.into());
        self
    }
}

/// A reference to a Secret in a given namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the Secret.
    #[schemars(pattern(patterns::DNS_LABEL), length(max = 63))]
    pub namespace: String,
}

impl SecretReference {
    /// A reference to Secret `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
        }
    }
}
