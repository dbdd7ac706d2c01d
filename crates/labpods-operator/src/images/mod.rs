//! Image integrity: a PodRequest's `spec.image.checksum` is verified by the operator before any
//! BMC sees the URL. The scheduler asks [`Verifier::check`] for every request it would plan
//! (never blocking: the download runs in a task, and the scheduler's next pass comes when it
//! ends); a request is planned, and so bound and provisioned, only once its image verified.
//!
//! One download per image: results are cached by URL and digest algorithm for
//! `images.cacheTtl` (two checksums of one URL share a download), and concurrent checks of an
//! image wait for the one download in flight. A download that cannot reach the server is
//! retried after a backoff, `images.attempts` times in all; every other failure, and a digest
//! that differs from the checksum, is final for the request (the cache keeps it for the TTL,
//! the request's status for good).
//!
//! The operator fetches from its own network what a tenant names: `images.allowedHosts`
//! restricts where (redirects included). Nothing of the response reaches the tenant but the
//! status code, the size bound and the digest.

pub mod fetch;
pub mod policy;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

use self::{
    fetch::{Failure, Fetcher},
    policy::{Algorithm, Checksum},
};
use crate::{config::ImagesConfig, metrics::Metrics};

/// Where a request's image stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The image's digest is the checksum.
    Verified,
    /// Being downloaded, or waiting to retry; `retry_in`: when the scheduler should look
    /// again (None: [`Verifier::settled`] says when).
    Pending {
        message: String,
        retry_in: Option<Duration>,
    },
    /// Final for this URL and checksum: the message names the field and the fix.
    Refused(String),
}

/// The cache key: one download serves every checksum of its algorithm.
type Key = (String, Algorithm);

#[derive(Debug)]
enum State {
    Running,
    /// Failed `failures` times in a row, each worth retrying; again from `not_before`.
    Retrying {
        failures: u32,
        last: Failure,
        not_before: Instant,
    },
    Done {
        result: Result<String, (Failure, u32)>,
        until: Instant,
    },
}

#[derive(Debug)]
struct Entry {
    state: State,
    /// Requests (by uid) this entry has served; a new one served without a download of its
    /// own is a cache hit.
    requesters: HashSet<String>,
    /// Requests told the final verdict (each refusal is counted once, not once per pass).
    told: HashSet<String>,
}

struct Inner {
    fetcher: Fetcher,
    config: ImagesConfig,
    /// First retry delay after an unreachable server; doubles per attempt.
    backoff: Duration,
    metrics: Arc<Metrics>,
    entries: Mutex<HashMap<Key, Entry>>,
    downloads: tokio::sync::Semaphore,
    settled: Notify,
}

/// Verifies images for the scheduler; one per leadership term.
#[derive(Clone)]
pub struct Verifier(Arc<Inner>);

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

impl Verifier {
    /// `backoff`: the first retry delay after an unreachable server.
    pub fn new(
        config: &ImagesConfig,
        backoff: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let fetcher = Fetcher::new(
            config.max_size,
            config.download_timeout,
            config.allowed_hosts.clone(),
        )?;
        Ok(Self(Arc::new(Inner {
            fetcher,
            config: config.clone(),
            backoff,
            metrics,
            entries: Mutex::new(HashMap::new()),
            downloads: tokio::sync::Semaphore::new(config.concurrent_downloads),
            settled: Notify::new(),
        })))
    }

    /// The verdict on `url` for `checksum` (as in `spec.image.checksum`), asked for the
    /// request `requester` (its uid). Starts the download when none is cached or running;
    /// never waits for it. Needs a Tokio runtime.
    pub fn check(&self, url: &str, checksum: &str, requester: &str) -> Verdict {
        let Some(expected) = Checksum::parse(checksum) else {
            return Verdict::Refused(format!(
                "spec.image.checksum {checksum:?} is not sha256:<64 hex digits> or \
                 sha512:<128 hex digits>: copy the digest from the image's SHA256SUMS or \
                 SHA512SUMS file"
            ));
        };
        let key = (url.to_owned(), expected.algorithm);
        let now = Instant::now();
        let Ok(mut entries) = self.0.entries.lock() else {
            return pending("the image cache is unavailable", Some(self.0.backoff));
        };
        // Expired results go, so the cache holds what the TTL allows and no more.
        entries.retain(|_, e| !matches!(e.state, State::Done { until, .. } if until <= now));
        let start = match entries.get_mut(&key) {
            None => true,
            Some(entry) => {
                let new_requester = entry.requesters.insert(requester.to_owned());
                match &entry.state {
                    State::Running => {
                        if new_requester {
                            self.0.metrics.image_cache_hit();
                        }
                        return downloading(url);
                    }
                    State::Retrying {
                        failures,
                        last,
                        not_before,
                    } => {
                        if *not_before > now {
                            return pending(
                                &format!(
                                    "{} retrying in {}",
                                    last.message(url, *failures),
                                    humantime::format_duration(round(*not_before - now))
                                ),
                                Some(*not_before - now),
                            );
                        }
                        true
                    }
                    State::Done { result, .. } => {
                        if new_requester {
                            self.0.metrics.image_cache_hit();
                        }
                        let verdict = verdict(url, &expected, result);
                        if entry.told.insert(requester.to_owned())
                            && let Err((label, _)) = &verdict
                        {
                            self.0.metrics.image_verification_failed(label);
                        }
                        return verdict.unwrap_or_else(|(_, message)| Verdict::Refused(message));
                    }
                }
            }
        };
        if start {
            let failures = match entries.get(&key).map(|e| &e.state) {
                Some(State::Retrying { failures, .. }) => *failures,
                _ => 0,
            };
            let entry = entries.entry(key.clone()).or_insert_with(|| Entry {
                state: State::Running,
                requesters: HashSet::new(),
                told: HashSet::new(),
            });
            entry.state = State::Running;
            entry.requesters.insert(requester.to_owned());
            drop(entries);
            tokio::spawn(self.clone().download(key, failures));
        }
        downloading(url)
    }

    /// Resolves when a download has ended (a verdict may have changed).
    pub async fn settled(&self) {
        self.0.settled.notified().await;
    }

    async fn download(self, key: Key, failures: u32) {
        let inner = &self.0;
        let result = match inner.downloads.acquire().await {
            Ok(_permit) => {
                let metrics = inner.metrics.clone();
                let (url, algorithm) = (&key.0, key.1);
                tracing::info!(url = %policy::display(url), algorithm = algorithm.name(), "downloading an image to verify its checksum");
                let result = inner
                    .fetcher
                    .fetch(url, algorithm, |n| metrics.image_bytes(n))
                    .await;
                let outcome = result
                    .as_ref()
                    .map_or_else(Failure::metric_label, |_| "downloaded");
                metrics.image_downloaded(outcome);
                result
            }
            // Closed only when the verifier is dropped: nobody is waiting for this result.
            Err(_) => return,
        };
        let now = Instant::now();
        let failures = failures.saturating_add(u32::from(result.is_err()));
        let state = match result {
            Ok(downloaded) => {
                tracing::info!(url = %policy::display(&key.0), bytes = downloaded.bytes, "image downloaded and hashed");
                State::Done {
                    result: Ok(downloaded.hex),
                    until: now + inner.config.cache_ttl,
                }
            }
            Err(failure) if failure.is_transient() && failures < inner.config.attempts => {
                let delay = crate::context::backoff_delay(
                    failures,
                    inner.backoff,
                    inner.config.download_timeout,
                );
                tracing::info!(url = %policy::display(&key.0), error = %failure.message(&key.0, failures), retry_in = ?delay, "image download failed; retrying");
                State::Retrying {
                    failures,
                    last: failure,
                    not_before: now + delay,
                }
            }
            Err(failure) => {
                tracing::warn!(url = %policy::display(&key.0), error = %failure.message(&key.0, failures), "image download failed");
                State::Done {
                    result: Err((failure, failures)),
                    until: now + inner.config.cache_ttl,
                }
            }
        };
        if let Ok(mut entries) = inner.entries.lock()
            && let Some(entry) = entries.get_mut(&key)
        {
            entry.state = state;
        }
        // Every waiter now, and (a stored permit) the scheduler if it is mid-pass.
        inner.settled.notify_waiters();
        inner.settled.notify_one();
    }
}

fn pending(message: &str, retry_in: Option<Duration>) -> Verdict {
    Verdict::Pending {
        message: message.to_owned(),
        retry_in,
    }
}

fn downloading(url: &str) -> Verdict {
    pending(
        &format!(
            "downloading spec.image.url {} to verify spec.image.checksum",
            policy::display(url)
        ),
        None,
    )
}

/// Whole seconds, for messages that should not change on every pass.
fn round(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().max(1))
}

/// Verified, or the refusal's metric label and message.
fn verdict(
    url: &str,
    expected: &Checksum,
    result: &Result<String, (Failure, u32)>,
) -> Result<Verdict, (&'static str, String)> {
    match result {
        Ok(hex) if *hex == expected.hex => Ok(Verdict::Verified),
        Ok(hex) => {
            let name = expected.algorithm.name();
            Err((
                "mismatch",
                format!(
                    "spec.image.checksum {name}:{} does not match the image at spec.image.url {} \
                 (its {name} is {hex}): copy the checksum from the image's {}SUMS file, or fix \
                 the URL, then book again",
                    expected.hex,
                    policy::display(url),
                    name.to_ascii_uppercase()
                ),
            ))
        }
        Err((failure, attempts)) => Err((failure.metric_label(), failure.message(url, *attempts))),
    }
}

#[cfg(test)]
mod tests;
