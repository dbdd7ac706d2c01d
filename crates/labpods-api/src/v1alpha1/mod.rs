//! `labpods.dev/v1alpha1`: the first, still-evolving version of the API.

mod common;
mod labhost;
mod lease;
mod podrequest;

pub use common::{ImageSpec, SecretReference};
pub use labhost::*;
pub use lease::*;
pub use podrequest::*;
