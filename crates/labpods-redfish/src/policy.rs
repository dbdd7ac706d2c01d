//! How hard the client pushes a BMC: timeouts, retries, concurrency, pacing.

use std::time::Duration;

use rand::Rng;

/// Limits applied to every BMC a client talks to. The defaults suit real BMCs, which are
/// slow, hold few sessions and hang when hammered.
#[derive(Clone, Debug)]
pub struct ClientPolicy {
    /// Whole-request timeout for one HTTP call.
    pub request_timeout: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// An idle connection is closed after this long. A host polled once a minute then holds
    /// no connection (and no buffers: tens of KiB each, most of the operator's memory at
    /// thousands of BMCs) between polls; a host being provisioned, polled every few seconds,
    /// keeps its connection. The BMC session outlives its connections.
    pub idle_connection_timeout: Duration,
    /// Retries after the first attempt for transient failures.
    pub max_retries: u32,
    /// First retry delay; doubled per attempt, with full jitter.
    pub backoff_base: Duration,
    /// Upper bound of one retry delay (also caps a BMC's Retry-After).
    pub backoff_max: Duration,
    /// Calls in flight per BMC endpoint.
    pub max_concurrent_per_bmc: usize,
    /// Minimum time between two power actions on one system.
    pub min_power_action_interval: Duration,
    /// How often a Task monitor is polled after a 202.
    pub task_poll_interval: Duration,
    /// How long a Task may run before the call gives up.
    pub task_timeout: Duration,
    /// Largest response body read from a BMC; a larger one fails the call. Redfish resources
    /// are kilobytes; the bound keeps a broken or hostile BMC from exhausting memory.
    pub max_response_bytes: usize,
    /// Most members of one collection the client follows (systems, NICs, drives, media);
    /// more fails the call rather than making that many requests.
    pub max_collection_members: usize,
    /// The User-Agent every request carries: BMCs log it, so an audit can tell which
    /// client (and which operator replica) sent a call.
    pub user_agent: String,
}

impl Default for ClientPolicy {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            idle_connection_timeout: Duration::from_secs(20),
            max_retries: 4,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_concurrent_per_bmc: 2,
            min_power_action_interval: Duration::from_secs(2),
            task_poll_interval: Duration::from_secs(2),
            task_timeout: Duration::from_secs(600),
            max_response_bytes: 4 << 20,
            max_collection_members: 1024,
            user_agent: concat!("labpods/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl ClientPolicy {
    /// Delay before retry number `attempt` (0-based). A BMC's Retry-After wins when given,
    /// bounded by `backoff_max`; otherwise exponential backoff with full jitter, so a lab of
    /// BMCs that failed together does not retry together.
    pub(crate) fn retry_delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.backoff_max);
        }
        let ceiling = self
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.backoff_max);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = ClientPolicy {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            ..ClientPolicy::default()
        };
        for attempt in 0..10 {
            let ceiling =
                Duration::from_millis(100 * 2u64.pow(attempt)).min(Duration::from_millis(1000));
            for _ in 0..50 {
                assert!(policy.retry_delay(attempt, None) <= ceiling);
            }
        }
        assert_eq!(
            policy.retry_delay(0, Some(Duration::from_secs(120))),
            Duration::from_millis(1000),
            "Retry-After is honoured but bounded"
        );
        assert_eq!(
            policy.retry_delay(3, Some(Duration::from_millis(300))),
            Duration::from_millis(300)
        );
    }
}
