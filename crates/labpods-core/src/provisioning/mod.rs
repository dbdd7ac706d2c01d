//! The provisioning and release state machines, pure: (stored step, BMC observation, clock,
//! config) -> [`Outcome`]. The LabHost controller is the adapter: it reads the BMC, calls
//! [`handle`], performs the [`BmcAction`], stores the next step in LabHost status (so a
//! restarted operator resumes there), and turns failures into retries or Error with
//! [`after_failure`]. The step order is documented in `steps.rs`.

mod failure;
mod model;
mod steps;

pub use failure::{AfterFailure, RetryPolicy, after_failure};
pub use model::{
    BmcAction, Completion, FIRST_STEP, OS_RUNNING, Observed, Outcome, Step, StepInput, Time,
    Timeouts,
};
pub use steps::handle;

#[cfg(test)]
mod tests;
