//! The scheduler: pure functions of (hosts, calendars, requests, policy, now) -> decisions.
//!
//! - [`plan`]: one pass over the waiting requests: Bind / Reserve / Wait / Unsatisfiable,
//!   FCFS with conservative backfill (see `plan.rs` for the exact rules).
//! - [`check_extension`]: may a running booking end later?
//! - [`find_spare`]: a replacement for a failed host.
//!
//! The types are the scheduler's own (`model.rs`). This crate depends on chrono alone, so
//! that the compiler, not review, keeps it free of IO: `labpods-core`'s `from_api`
//! adapts the CRDs to these types, and `labpods-scheduler-sim` replays synthetic workloads
//! against [`plan`] (the simulation behind `kubectl lab forecast` and
//! `cargo xtask bench scheduler`).

mod calendar;
mod extension;
mod lab;
mod model;
mod plan;
mod quota;
mod selector;
mod spare;

pub use extension::{Extension, ExtensionDecision, check_extension};
pub use model::{
    Assignment, Claim, Decision, Host, Length, Placement, PlanInput, Policy, Request, RequestKey,
    RequestPlan, Reservation, Role, Time,
};
pub use plan::plan;
pub use selector::{Operator, Requirement, Selector};
pub use spare::{SpareQuery, find_spare};

#[cfg(test)]
mod tests;
