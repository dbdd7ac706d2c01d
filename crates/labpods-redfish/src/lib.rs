//! labpods-redfish: a small async Redfish client for what the labpods operator does to a
//! server (power, boot override, virtual media, boot progress, inventory). Knows nothing of
//! Kubernetes. The operator uses it through the [`Bmc`] and [`BmcConnector`] traits.
//!
//! Without its default feature `client` it is only the BMC vocabulary (power states, boot
//! overrides, media, inventory): plain data for code that must not carry an HTTP stack.

#[cfg(feature = "client")]
mod bmc;
#[cfg(feature = "client")]
mod client;
#[cfg(feature = "client")]
mod connector;
#[cfg(feature = "client")]
mod credentials;
#[cfg(feature = "client")]
mod error;
#[cfg(all(feature = "client", any(fuzzing, test)))]
pub mod fuzzing;
#[cfg(feature = "client")]
mod model;
#[cfg(feature = "client")]
mod policy;
#[cfg(feature = "client")]
mod tls;
#[cfg(feature = "client")]
mod transport;
mod vocabulary;

#[cfg(feature = "client")]
pub use self::{
    bmc::{Bmc, BmcConnector, BmcTarget},
    client::RedfishClient,
    connector::RedfishConnector,
    credentials::Credentials,
    error::{Error, Result},
    policy::ClientPolicy,
    tls::{Fingerprint, SettingNames, TlsOptions},
};
/// Re-exported so callers name endpoint and image URLs without depending on `url` themselves.
#[cfg(feature = "client")]
pub use url::Url;
pub use vocabulary::{
    BootEnabled, BootMode, BootOverride, BootTarget, Disk, Inventory, MediaState, Medium,
    PowerState, ResetKind,
};
