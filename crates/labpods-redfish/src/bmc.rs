//! What the operator needs from a BMC, as a trait it can substitute in its tests.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use url::Url;

use crate::credentials::Credentials;
use crate::error::Result;
use crate::tls::TlsOptions;
use crate::vocabulary::{
    BootEnabled, BootMode, BootOverride, BootTarget, Inventory, MediaState, Medium, PowerState,
    ResetKind,
};

/// One server's BMC, as the operator drives it.
pub trait Bmc: Send + Sync + fmt::Debug {
    fn power_state(&self) -> BoxFuture<'_, Result<PowerState>>;
    fn reset(&self, kind: ResetKind) -> BoxFuture<'_, Result<()>>;
    /// BootProgress.LastState; None when the BMC does not report it.
    fn boot_progress(&self) -> BoxFuture<'_, Result<Option<String>>>;
    fn boot_override(&self) -> BoxFuture<'_, Result<BootOverride>>;
    fn set_boot_override(
        &self,
        target: BootTarget,
        enabled: BootEnabled,
        mode: BootMode,
    ) -> BoxFuture<'_, Result<()>>;
    /// Whether the BMC has a device for `medium` (many have only the CD).
    fn has_medium(&self, medium: Medium) -> BoxFuture<'_, Result<bool>>;
    fn insert_media_on<'a>(&'a self, medium: Medium, image: &'a Url) -> BoxFuture<'a, Result<()>>;
    /// Succeeds when nothing is inserted.
    fn eject_media_on(&self, medium: Medium) -> BoxFuture<'_, Result<()>>;
    fn media_state_on(&self, medium: Medium) -> BoxFuture<'_, Result<MediaState>>;
    /// [`Bmc::insert_media_on`] the CD.
    fn insert_media<'a>(&'a self, image: &'a Url) -> BoxFuture<'a, Result<()>> {
        self.insert_media_on(Medium::Cd, image)
    }
    /// [`Bmc::eject_media_on`] the CD.
    fn eject_media(&self) -> BoxFuture<'_, Result<()>> {
        self.eject_media_on(Medium::Cd)
    }
    /// [`Bmc::media_state_on`] the CD.
    fn media_state(&self) -> BoxFuture<'_, Result<MediaState>> {
        self.media_state_on(Medium::Cd)
    }
    fn inventory(&self) -> BoxFuture<'_, Result<Inventory>>;
    /// Ends the session with the BMC (shared by all systems behind the same endpoint).
    fn logout(&self) -> BoxFuture<'_, Result<()>>;
}

/// Where a BMC is and how to talk to it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BmcTarget {
    pub endpoint: Url,
    /// Id (or UUID) of the ComputerSystem; optional when the BMC manages exactly one.
    pub system_id: Option<String>,
    pub credentials: Credentials,
    pub tls: TlsOptions,
}

/// Hands out BMC clients; the operator holds one, tests substitute their own.
pub trait BmcConnector: Send + Sync + fmt::Debug {
    /// The client for a target, shared by everyone asking for the same target.
    fn connect<'a>(&'a self, target: &'a BmcTarget) -> BoxFuture<'a, Result<Arc<dyn Bmc>>>;
    /// Drops the target's clients and logs out their session (credentials rotated).
    fn disconnect<'a>(&'a self, target: &'a BmcTarget) -> BoxFuture<'a, Result<()>>;
    /// Logs out of every BMC session (on shutdown); returns how many logouts failed.
    fn logout_all(&self) -> BoxFuture<'_, usize>;
}
