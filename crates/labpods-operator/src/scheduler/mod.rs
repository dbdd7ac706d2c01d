//! The scheduler: pure functions of (hosts, calendars, requests, policy, now) -> decisions.
//!
//! - [`plan`]: one pass over the waiting requests: Bind / Reserve / Wait / Unsatisfiable,
//!   FCFS with conservative backfill (see `plan.rs` for the exact rules).
//! - [`check_extension`]: may a running booking end later?
//! - [`find_spare`]: a replacement for a failed host.
//! - [`synthetic_workload`] / [`bench_plan`] and [`simulate_year`]: the benchmark and the
//!   scheduling-quality simulation behind `cargo xtask bench scheduler`.
//!
//! The types are the scheduler's own (`model.rs`); [`from_api`] adapts the CRDs.

mod calendar;
mod extension;
pub mod from_api;
mod lab;
mod model;
mod plan;
mod quota;
mod selector;
mod simulation;
mod spare;
mod synthetic;

pub use extension::{Extension, ExtensionDecision, check_extension};
pub use model::{
    Assignment, Claim, Decision, Host, Length, Placement, PlanInput, Policy, Request, RequestKey,
    RequestPlan, Reservation, Role, Time,
};
pub use plan::plan;
pub use selector::{Operator, Requirement, Selector};
pub use simulation::{PolicyOutcome, SimulationConfig, SimulationReport, simulate, simulate_year};
pub use spare::{SpareQuery, find_spare};
pub use synthetic::{PlanSummary, bench_plan, synthetic_workload};

#[cfg(test)]
mod tests;
