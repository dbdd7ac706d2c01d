//! File descriptors: every BMC is a listener, so a big fleet needs a high `ulimit -n`. Raising
//! the limit needs setrlimit (unsafe FFI, which this workspace forbids), so check and explain.

use crate::SimError;

/// Descriptors beyond the listeners: connections in flight, the admin port, the runtime.
const HEADROOM: u64 = 512;

pub(crate) fn check_fds(hosts: usize) -> Result<(), SimError> {
    let needed = u64::try_from(hosts)
        .unwrap_or(u64::MAX)
        .saturating_add(HEADROOM);
    match soft_nofile() {
        Some(soft) if soft < needed => Err(SimError::FdLimit {
            hosts,
            needed,
            soft,
        }),
        _ => Ok(()),
    }
}

/// The soft RLIMIT_NOFILE from /proc (Linux); `None` where that is not available.
fn soft_nofile() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
