//! The labpods API: the `labpods.dev` custom resources, their condition helpers and their
//! validation: one table of rules that the CRDs carry as CEL and the controllers run again in
//! Rust, plus what only the controllers can check (the clock, the lab's policy). Pure types
//! and functions, no IO.
//!
//! Each version lives in its own module (`v1alpha1`) and the current one is re-exported at the
//! crate root, so adding `v1beta1` later means one more module and a `merge_crds` in [`crds()`](crate::crds()).

pub mod conditions;
pub mod crds;
#[cfg(any(fuzzing, test))]
pub mod fuzzing;
pub mod patterns;
pub mod v1alpha1;
pub mod validation;

pub use crds::{CrdFile, crd_files, crds};
pub use v1alpha1::*;

/// The API group of every labpods resource.
pub const GROUP: &str = "labpods.dev";
