//! labpods operator: controllers for LabHost, PodRequest and Lease, and what connects them to
//! the apiserver and the BMCs. What they decide is pure and lives apart: the scheduler in
//! `labpods-scheduler`, the provisioning state machines and the LabHost and Lease plans in
//! `labpods-core`. The binary `labpods` (src/main.rs) is a thin layer over this.

pub mod cli;
pub mod config;
pub mod context;
pub mod controllers;
pub mod error;
pub mod history;
pub mod http;
pub mod images;
pub mod leader;
pub mod metrics;
pub mod scheduler;
pub mod seed;
pub mod signing;
pub mod startup;
pub mod telemetry;

/// The pure state machines, where the adapters name them.
pub use labpods_core::provisioning;
