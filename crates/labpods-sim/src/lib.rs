//! labpods-sim: a fleet of simulated Redfish BMCs in one process, for tests, benchmarks and
//! the demo.
//!
//! Each BMC is its own Redfish service on its own listener (own service root, own sessions),
//! serving one ComputerSystem `/redfish/v1/Systems/1`, its Manager `/redfish/v1/Managers/1`
//! with VirtualMedia `Cd` (CD/DVD) and `UsbStick` (USBStick) under the Manager, a Chassis and
//! the SessionService. Host indices
//! are **1-based**: host `i` listens on `port_base + i` (or an OS-assigned port when
//! `port_base` is 0).
//!
//! Image servers under the reserved domain `.invalid` are unreachable: InsertMedia of
//! `http://images.invalid/...` is refused (400, recorded as `Event::MediaRefused`), as a real
//! BMC refuses an image it cannot fetch.
//!
//! A host whose OS is running with a seed on its USB stick plays cloud-init: it fetches and
//! reads the `cidata` image and posts cloud-init's phone-home (see `cloud_init`); what it
//! read and posted is `HostState::playback`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), labpods_sim::SimError> {
//! use labpods_sim::{Sim, SimConfig};
//! let sim = Sim::start(SimConfig { hosts: 4, ..SimConfig::default() }).await?;
//! let url = sim.endpoint(1); // http://127.0.0.1:PORT/
//! sim.host(2).set_power_stuck(true);
//! let booted = sim.host(1).boots(); // [(source, image)]
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod cloud_init;
mod config;
mod error;
pub mod labhosts;
mod limits;
mod listener;
mod model;
mod redfish;
mod sim;
mod state;
mod tls;

pub use config::{Faults, SimConfig, TlsCertificate};
pub use error::SimError;
pub use model::{
    BootOverride, Call, Device, Event, HostState, Media, PhoneHomePost, Playback, PowerState,
    SeedRead, SessionEnd,
};
pub use redfish::SYSTEM_ID;
pub use sim::{HostHandle, Sim, SimHandle};
