//! labpods-core: what the operator decides, as pure functions of what it observed.
//!
//! - [`provisioning`]: the provisioning and release state machines, one BMC action a step;
//! - [`host_plan`]: what to do with a LabHost, from its state and its claim's Lease;
//! - [`lease_plan`]: a Lease's status from its window and its hosts;
//! - [`request_status`]: a PodRequest's status from where it stands after a scheduling pass;
//! - [`from_api`]: the scheduler's model of the lab, read from the API objects;
//! - [`claim`]: whether a host may be claimed for a booking (the claim protocol's check);
//! - [`trust`]: why a Lease the operator did not write is not honoured.
//!
//! The scheduler is its own crate (`labpods-scheduler`). The operator's controllers adapt
//! these to the apiserver and the BMCs; nothing here does IO, and the dependency list keeps
//! it so: no kube client, no tokio, no HTTP stack.

pub mod claim;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod from_api;
pub mod host_plan;
pub mod lease_plan;
pub mod provisioning;
pub mod request_status;
pub mod trust;
