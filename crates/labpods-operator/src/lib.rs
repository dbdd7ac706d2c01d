//! labpods operator: controllers for LabHost, PodRequest and Lease, the scheduler, and the
//! provisioning state machine. The binary `labpods` (src/main.rs) is a thin layer over this.

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
pub mod provisioning;
pub mod scheduler;
pub mod seed;
pub mod signing;
pub mod startup;
pub mod telemetry;
#[cfg(test)]
mod test_support;
