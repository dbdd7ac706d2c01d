//! The scheduler lives in the `labpods-scheduler` crate, which depends on neither kube nor an
//! HTTP stack; it is re-exported here so that `crate::scheduler::...` names it, next to
//! [`from_api`], the adapters from the CRDs (pure too, in `labpods-core`).

pub use labpods_core::from_api;
pub use labpods_scheduler::*;
