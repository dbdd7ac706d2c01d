//! The scheduler (`labpods-scheduler`) replayed on synthetic workloads, in simulated time.
//!
//! - [`simulate`] / [`simulate_year`]: a synthetic year of bookings served by the planner with
//!   backfill, by plain FCFS, and an offline bound on both (utilization and waits); used by
//!   `kubectl lab forecast` (hosts needed for a wait target), `cargo xtask bench forecast`
//!   and `cargo xtask bench scheduler`.
//! - [`synthetic_workload`] / [`bench_plan`]: one busy planning pass, deterministic for a seed.
//!
//! Why a crate of its own rather than a cargo feature of `labpods-scheduler`: cargo unifies
//! features across everything one command builds, so with a feature a workspace build
//! (`cargo build`, `cargo xtask test`) would compile the simulation into the scheduler the
//! operator links, as soon as kubectl-lab or xtask enabled it. A separate crate that the
//! operator does not depend on keeps it out of the operator whatever is built together, and
//! keeps `rand` out of the scheduler's dependencies; its tests need no feature flag to run.

mod simulation;
mod synthetic;

pub use simulation::{
    Discipline, PolicyOutcome, Progress, SimulationConfig, SimulationReport, simulate,
    simulate_with_progress, simulate_year,
};
pub use synthetic::{PlanSummary, bench_plan, synthetic_workload};
