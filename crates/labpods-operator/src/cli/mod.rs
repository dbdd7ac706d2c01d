//! Subcommands of the `labpods` binary.
