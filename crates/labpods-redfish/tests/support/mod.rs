//! Peers for the interop suite and the helpers that start them.

pub mod certs;
pub mod image_server;
pub mod log_capture;
pub mod python;
pub mod sushy;
