//! labpods operator: controllers for LabHost, PodRequest and Lease, the scheduler, and the
//! provisioning state machine. The binary `labpods` (src/main.rs) is a thin layer over this.

pub mod cli;
pub mod provisioning;
pub mod scheduler;
