//! What a step handler sees (one pass's observation of the BMC, the stored progress, the
//! clock, the configuration) and what it decides.
//!
//! The BMC vocabulary (power states, reset kinds, boot override values) is the Redfish
//! crate's: those are plain enums and structs, and reusing them spares the adapter a
//! mapping layer. The steps are the API's `ProvisioningStep`, as stored in LabHost status.

use chrono::{DateTime, TimeDelta, Utc};
use labpods_api::v1alpha1::{Operation, ProvisioningStep};
use labpods_redfish::{
    BootEnabled, BootMode, BootOverride, BootTarget, MediaState, PowerState, ResetKind,
};

pub type Step = ProvisioningStep;
pub type Time = DateTime<Utc>;

/// BootProgress.LastState meaning the OS is up.
pub const OS_RUNNING: &str = "OSRunning";

/// What the adapter read from the BMC this pass (before acting).
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub power: PowerState,
    /// BootProgress.LastState; None when the BMC does not report it (sushy-tools, old BMCs).
    pub boot_progress: Option<String>,
    /// The CD/DVD drive.
    pub media: MediaState,
    /// The removable medium beside it, where the seed goes; None when the BMC has none.
    /// Read at EjectMedia and InsertMedia only (None elsewhere).
    pub seed_medium: Option<MediaState>,
    pub boot_override: BootOverride,
    /// The host's phone-home callback arrived since the current step started.
    pub phoned_home: bool,
}

/// How a booted OS is recognised when the BMC reports no BootProgress (per profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The image calls the operator's phone-home endpoint.
    PhoneHome,
    /// Assume the OS is up this long after power-on.
    After(TimeDelta),
}

/// Bounds on the waiting steps, from the operator's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// After a graceful shutdown request, force the power off.
    pub graceful_off: TimeDelta,
    /// After forcing, give up on the attempt.
    pub forced_off: TimeDelta,
    /// From power-on to a running OS, whatever the completion signal.
    pub boot: TimeDelta,
    /// From power-on of the wipe image to its power-off.
    pub wipe: TimeDelta,
    /// How often a waiting step looks again.
    pub poll: TimeDelta,
}

/// The operator's documented defaults (its configuration's defaults are these), so the
/// tests run the state machines as production does.
impl Default for Timeouts {
    fn default() -> Self {
        Self {
            graceful_off: TimeDelta::minutes(2),
            forced_off: TimeDelta::minutes(2),
            boot: TimeDelta::minutes(30),
            wipe: TimeDelta::hours(2),
            poll: TimeDelta::seconds(5),
        }
    }
}

/// Everything one step decision needs.
#[derive(Debug, Clone, PartialEq)]
pub struct StepInput<'a> {
    pub operation: Operation,
    /// Attempts at the current step, 1 for the first (stored with the step).
    pub attempts: u32,
    pub step_started: Time,
    pub now: Time,
    pub observed: &'a Observed,
    /// The lease's image (Provision) or the profile's wipe image (Release; None: no wipe).
    pub image: Option<&'a str>,
    /// The run's NoCloud seed URL, at InsertMedia of a run that delivers one.
    pub seed: Option<&'a str>,
    pub boot_mode: BootMode,
    pub completion: Completion,
    pub timeouts: &'a Timeouts,
}

impl StepInput<'_> {
    pub(crate) fn elapsed(&self) -> TimeDelta {
        self.now - self.step_started
    }
}

/// A call the adapter makes on the BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BmcAction {
    Reset(ResetKind),
    InsertMedia(String),
    EjectMedia,
    /// Inserts the run's seed on the removable medium (the adapter holds its URL: it carries
    /// a token, and actions are logged).
    InsertSeed,
    EjectSeed,
    SetBootOverride {
        target: BootTarget,
        enabled: BootEnabled,
        mode: BootMode,
    },
}

/// What the adapter does after a step handler ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Perform `action`; when it succeeds store `next`. Entering another step restarts its
    /// clock with attempts = 1; `next` equal to the current step keeps the clock and adds 1
    /// to attempts (a follow-up action within the step, e.g. forcing the power off).
    Act { action: BmcAction, next: Step },
    /// The step's effect is already observed: store `next` (fresh clock) and run it now.
    Transition { next: Step },
    /// Nothing to do yet: look again after `recheck_after`.
    Wait {
        reason: String,
        recheck_after: TimeDelta,
    },
    /// The operation finished: clear the progress (Provisioned, or Available after Release).
    Done,
    /// The step failed (timeout, missing input); `failure::after_failure` decides between a
    /// retry and Error. A failed BMC call goes the same way.
    Failed { reason: String },
    /// The booking cannot be served as it asks on this host (its access needs a medium the
    /// BMC lacks): like `Failed`, but giving up ends the booking, not the host.
    BookingFailed { reason: String },
}

/// Both operations start by powering the host off.
pub const FIRST_STEP: Step = Step::PowerOff;
