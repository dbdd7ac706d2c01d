//! labpods-redfish: a small async Redfish client for what the labpods operator does to a
//! server (power, boot override, virtual media, boot progress, inventory). Knows nothing of
//! Kubernetes. The operator uses it through the [`Bmc`] and [`BmcConnector`] traits.

mod bmc;
mod client;
mod connector;
mod credentials;
mod error;
#[cfg(any(fuzzing, test))]
pub mod fuzzing;
mod model;
mod policy;
mod tls;
mod transport;

pub use bmc::{
    Bmc, BmcConnector, BmcTarget, BootEnabled, BootMode, BootOverride, BootTarget, Disk, Inventory,
    MediaState, Medium, PowerState, ResetKind,
};
pub use client::RedfishClient;
pub use connector::RedfishConnector;
pub use credentials::Credentials;
pub use error::{Error, Result};
pub use policy::ClientPolicy;
pub use tls::{Fingerprint, SettingNames, TlsOptions};
/// Re-exported so callers name endpoint and image URLs without depending on `url` themselves.
pub use url::Url;
