//! The cargo to start from a cargo-run process (xtask, a test), without what cargo set for
//! that process's crate (CARGO_MANIFEST_DIR, CARGO_PKG_NAME, ...). ring's build script
//! tracks CARGO_MANIFEST_DIR: builds started from a shell, from xtask and from a test saw it
//! differ and rebuilt ring and everything above it each time they alternated.
//!
//! One file for both: xtask includes it (`#[path]`), since it does not depend on this crate.

use std::process::Command;

/// `$CARGO` (as cargo recommends for nested invocations) with those variables removed.
pub fn command() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let set_for_a_crate = name.to_str().is_some_and(|n| {
            n.starts_with("CARGO_PKG_")
                || n.starts_with("CARGO_MANIFEST_")
                || [
                    "CARGO_CRATE_NAME",
                    "CARGO_BIN_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                ]
                .contains(&n)
        });
        if set_for_a_crate {
            command.env_remove(name);
        }
    }
    command
}
