//! Waiting for what a controller does: poll a condition until a deadline, never a fixed sleep.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

const POLL: Duration = Duration::from_millis(200);

/// Polls `check` until it yields `Some`, failing after `timeout` with `what` was awaited.
/// Errors from `check` end the wait at once.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_string(),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
