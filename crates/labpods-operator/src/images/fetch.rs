//! One image download: streamed and hashed as it arrives (never held in memory), bounded in
//! size and time. Knows nothing of caches or requests.

use std::{sync::Arc, time::Duration};

use super::policy::{self, Algorithm};

/// What went wrong with a download, worded by [`Failure::message`] for the request's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server could not be reached or dropped the connection; worth retrying.
    Unreachable(String),
    /// The server answered with this HTTP status; 5xx, 408 and 429 are worth retrying.
    Status(u16),
    /// Larger than `images.maxSize` (announced or counted).
    TooLarge { limit: u64 },
    /// Not downloaded within `images.downloadTimeout`.
    Timeout(Duration),
    /// A redirect to a server `images.allowedHosts` does not admit, or too many redirects.
    Redirect(String),
}

impl Failure {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable(_) => true,
            Self::Status(s) => *s >= 500 || *s == 408 || *s == 429,
            Self::TooLarge { .. } | Self::Timeout(_) | Self::Redirect(_) => false,
        }
    }

    /// Bounded, for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "unreachable",
            Self::Status(_) => "http_status",
            Self::TooLarge { .. } => "too_large",
            Self::Timeout(_) => "timeout",
            Self::Redirect(_) => "redirect",
        }
    }

    /// What the request's owner reads: the field, what happened and the fix. `attempts`: how
    /// many downloads were tried.
    pub fn message(&self, url: &str, attempts: u32) -> String {
        let url = policy::display(url);
        let tried = if attempts > 1 {
            format!(" ({attempts} attempts)")
        } else {
            String::new()
        };
        match self {
            Self::Unreachable(why) => format!(
                "spec.image.url {url} could not be downloaded to verify spec.image.checksum: \
                 {why}{tried}. Check the URL and that its server is up, then book again"
            ),
            Self::Status(status) => format!(
                "spec.image.url {url} could not be downloaded to verify spec.image.checksum: \
                 the server answered HTTP {status}{tried}. Give a URL the server serves, then \
                 book again"
            ),
            Self::TooLarge { limit } => format!(
                "spec.image.url {url} is larger than this lab's limit of {limit} bytes \
                 (operator setting images.maxSize): use a smaller image, or ask the lab's \
                 admins"
            ),
            Self::Timeout(limit) => format!(
                "spec.image.url {url} did not download within {} (operator setting \
                 images.downloadTimeout), so spec.image.checksum could not be verified: use a \
                 faster image server, or ask the lab's admins",
                humantime::format_duration(*limit)
            ),
            Self::Redirect(why) => format!(
                "spec.image.url {url} cannot be verified: {why}. Give the image's final URL \
                 on an allowed server"
            ),
        }
    }
}

/// A finished download: the digest (lower-case hex) and the bytes it covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub hex: String,
    pub bytes: u64,
}

/// Downloads images with one HTTP client (connection reuse, the lab's redirect rule).
#[derive(Debug, Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    max_size: u64,
    timeout: Duration,
}

/// At most this many redirects (what curl and browsers allow is more; images need few).
const MAX_REDIRECTS: usize = 5;

impl Fetcher {
    /// A client that verifies TLS against the system roots and follows redirects only to
    /// servers `allowed_hosts` admits (empty: any).
    pub fn new(
        max_size: u64,
        timeout: Duration,
        allowed_hosts: Vec<String>,
    ) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        // No system roots (a minimal container): http images still verify, https ones fail
        // with the handshake error in the request's condition.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            let url = attempt.url();
            let host = url.host_str().unwrap_or_default().to_owned();
            if !matches!(url.scheme(), "http" | "https") {
                return attempt.error("a redirect to a URL that is not http or https".to_owned());
            }
            if !allowed_hosts.is_empty() && !policy::host_allowed(&host, &allowed_hosts) {
                return attempt.error(format!(
                    "it redirects to {host:?}, a server images.allowedHosts does not allow"
                ));
            }
            attempt.follow()
        });
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(redirects)
            .connect_timeout(Duration::from_secs(30).min(timeout))
            .user_agent(concat!("labpods-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.without_url().to_string())?;
        Ok(Self {
            http,
            max_size,
            timeout,
        })
    }

    /// Downloads `url` and hashes it with `algorithm`; `on_bytes` sees each chunk's length
    /// (for the bytes metric) as it arrives.
    pub async fn fetch(
        &self,
        url: &str,
        algorithm: Algorithm,
        on_bytes: impl Fn(u64),
    ) -> Result<Downloaded, Failure> {
        match tokio::time::timeout(self.timeout, self.stream(url, algorithm, on_bytes)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout(self.timeout)),
        }
    }

    async fn stream(
        &self,
        url: &str,
        algorithm: Algorithm,
        on_bytes: impl Fn(u64),
    ) -> Result<Downloaded, Failure> {
        let mut response = self.http.get(url).send().await.map_err(failure)?;
        let status = response.status();
        if !status.is_success() {
            return Err(Failure::Status(status.as_u16()));
        }
        let too_large = Failure::TooLarge {
            limit: self.max_size,
        };
        if response.content_length().is_some_and(|n| n > self.max_size) {
            return Err(too_large);
        }
        let mut digest = ring::digest::Context::new(algorithm.ring());
        let mut bytes = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(failure)? {
            let n = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
            bytes = bytes.saturating_add(n);
            if bytes > self.max_size {
                return Err(too_large);
            }
            on_bytes(n);
            digest.update(&chunk);
        }
        let hex = digest
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Downloaded { hex, bytes })
    }
}

/// A reqwest error without its URL (it may carry a signature), with the innermost cause,
/// which says what happened ("Connection refused", "invalid peer certificate").
fn failure(error: reqwest::Error) -> Failure {
    if error.is_redirect() {
        let why = std::iter::successors(std::error::Error::source(&error), |e| e.source())
            .last()
            .map_or_else(|| "a redirect failed".to_owned(), ToString::to_string);
        return Failure::Redirect(why);
    }
    let kind = if error.is_connect() {
        "cannot connect"
    } else if error.is_timeout() {
        "the connection timed out"
    } else {
        "the connection failed"
    };
    let cause = std::iter::successors(std::error::Error::source(&error), |e| e.source())
        .last()
        .map(ToString::to_string);
    Failure::Unreachable(match cause {
        Some(cause) => format!("{kind} ({cause})"),
        None => kind.to_owned(),
    })
}
