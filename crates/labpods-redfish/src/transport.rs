//! HTTP to one BMC endpoint: authentication (one Redfish session, renewed on 401, basic auth
//! when the service has no usable SessionService), per-call timeouts, retries with backoff,
//! a concurrency limit, and Task monitors. Shared by every system behind the endpoint.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, IF_MATCH, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};
use url::Url;

use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::model::{Collection, ErrorBody, ServiceRoot, Task};
use crate::policy::ClientPolicy;
use crate::tls::TlsOptions;

const SERVICE_ROOT: &str = "/redfish/v1/";
const AUTH_TOKEN: &str = "X-Auth-Token";

/// A BMC answer that was not an error.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|source| Error::Decode {
            path: path.to_owned(),
            source,
        })
    }

    /// The ETag header (some BMCs put it in the body as `@odata.etag` instead).
    pub fn etag(&self) -> Option<String> {
        self.headers
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

enum Auth {
    /// No session yet (or it was logged out / expired): the next call logs in.
    Pending,
    Session {
        token: String,
        location: Option<String>,
    },
    Basic,
}

impl std::fmt::Debug for Auth {
    // The token is as good as the password while the session lives.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::Pending => "Pending",
            Auth::Session { .. } => "Session(***)",
            Auth::Basic => "Basic",
        })
    }
}

/// Which credentials a request carries.
#[derive(Clone)]
enum Authorization {
    Token(String),
    Basic,
}

#[derive(Debug)]
pub(crate) struct Transport {
    http: reqwest::Client,
    origin: Url,
    credentials: Credentials,
    policy: ClientPolicy,
    limiter: Semaphore,
    auth: Mutex<Auth>,
    /// Where sessions are created, known after the service root was read (None: no sessions).
    sessions_path: OnceLock<Option<String>>,
    requests: AtomicU64,
}

impl Transport {
    pub fn new(
        endpoint: &Url,
        credentials: Credentials,
        tls: &TlsOptions,
        policy: ClientPolicy,
    ) -> Result<Self> {
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(Error::InvalidEndpoint(format!(
                "scheme {} (want http or https)",
                endpoint.scheme()
            )));
        }
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            // Refuse rather than strip: credentials in URLs end up in logs.
            return Err(Error::InvalidEndpoint(
                "credentials in the URL; pass them separately".into(),
            ));
        }
        let origin = endpoint
            .join("/")
            .map_err(|e| Error::InvalidEndpoint(e.to_string()))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls.client_config()?)
            .timeout(policy.request_timeout)
            .connect_timeout(policy.connect_timeout)
            .pool_idle_timeout(policy.idle_connection_timeout)
            .user_agent(policy.user_agent.clone())
            // Redirects could carry the session token elsewhere; Redfish needs none.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Tls(e.to_string()))?;
        Ok(Self {
            http,
            origin,
            credentials,
            limiter: Semaphore::new(policy.max_concurrent_per_bmc.max(1)),
            policy,
            auth: Mutex::new(Auth::Pending),
            sessions_path: OnceLock::new(),
            requests: AtomicU64::new(0),
        })
    }

    pub fn policy(&self) -> &ClientPolicy {
        &self.policy
    }

    /// HTTP requests sent so far (logins, retries and task polls included).
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Reads the service root and learns where sessions live. The root is read with basic
    /// auth: the spec leaves it open, but some services (sushy-tools with an htpasswd) guard it.
    pub async fn service_root(&self) -> Result<ServiceRoot> {
        let response = self
            .send_with_retries(
                Method::GET,
                SERVICE_ROOT,
                None,
                None,
                Some(Authorization::Basic),
            )
            .await?;
        let root: ServiceRoot = response.json(SERVICE_ROOT)?;
        let sessions = root
            .links
            .as_ref()
            .and_then(|l| l.sessions.as_ref())
            .map(|l| l.odata_id.clone())
            .or_else(|| {
                root.session_service
                    .as_ref()
                    .map(|s| format!("{}/Sessions", s.odata_id.trim_end_matches('/')))
            });
        // A second discovery (another system on the same endpoint) finds the same answer.
        let _ = self.sessions_path.set(sessions);
        Ok(root)
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<(T, Option<String>)> {
        let response = self.request(Method::GET, path, None, None).await?;
        Ok((response.json(path)?, response.etag()))
    }

    /// The member paths of the collection at `path`. More members than the policy allows
    /// fail the call: each would be another request to a BMC that is broken or hostile.
    pub async fn members(&self, path: &str) -> Result<Vec<String>> {
        let (collection, _) = self.get::<Collection>(path).await?;
        let max = self.policy.max_collection_members;
        if collection.members.len() > max {
            return Err(Error::Oversized {
                path: path.to_owned(),
                what: format!(
                    "{} collection members (at most {max} are read)",
                    collection.members.len()
                ),
            });
        }
        Ok(collection.members.into_iter().map(|m| m.odata_id).collect())
    }

    /// POST an action or PATCH a resource; a 202 is followed to the end of its Task.
    pub async fn act(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<Response> {
        let response = self.request(method, path, Some(body), if_match).await?;
        if response.status != StatusCode::ACCEPTED {
            return Ok(response);
        }
        match response.headers.get(LOCATION).and_then(|v| v.to_str().ok()) {
            Some(monitor) => self.wait_for_task(monitor).await,
            None => Ok(response),
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Response> {
        self.send_with_retries(method, path, body, if_match, None)
            .await
    }

    /// Deletes the session, if there is one. Later calls would log in again.
    pub async fn logout(&self) -> Result<()> {
        let mut auth = self.auth.lock().await;
        let Auth::Session { token, location } = &*auth else {
            return Ok(());
        };
        let Some(location) = location.clone() else {
            *auth = Auth::Pending;
            return Ok(());
        };
        let result = self
            .send_raw(
                Method::DELETE,
                &location,
                None,
                None,
                Some(&Authorization::Token(token.clone())),
            )
            .await;
        *auth = Auth::Pending;
        match result {
            Ok(_) => Ok(()),
            // Already gone (expired or deleted by someone else): the goal is reached.
            Err(Failure {
                error: Error::Status { status: 404, .. } | Error::Unauthorized { .. },
                ..
            }) => Ok(()),
            Err(failure) => Err(failure.error),
        }
    }

    async fn wait_for_task(&self, monitor: &str) -> Result<Response> {
        let deadline = tokio::time::Instant::now() + self.policy.task_timeout;
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::TaskTimeout {
                    path: monitor.to_owned(),
                    waited: self.policy.task_timeout,
                });
            }
            tokio::time::sleep(self.policy.task_poll_interval).await;
            let response = match self.request(Method::GET, monitor, None, None).await {
                Ok(r) => r,
                // A service may drop the monitor once the task is done.
                Err(Error::Status {
                    status: 404 | 410, ..
                }) => {
                    return Ok(Response {
                        status: StatusCode::NO_CONTENT,
                        headers: HeaderMap::new(),
                        body: Vec::new(),
                    });
                }
                Err(e) => return Err(e),
            };
            if response.status == StatusCode::ACCEPTED {
                continue;
            }
            let Ok(task) = serde_json::from_slice::<Task>(&response.body) else {
                // The monitor answered with the operation's own result.
                return Ok(response);
            };
            match task.task_state.as_deref() {
                None | Some("Completed") => return Ok(response),
                Some(state @ ("Exception" | "Killed" | "Cancelled")) => {
                    return Err(Error::TaskFailed {
                        path: monitor.to_owned(),
                        state: state.to_owned(),
                        message: crate::model::bounded(
                            task.messages
                                .into_iter()
                                .find_map(|m| m.message)
                                .unwrap_or_default(),
                        ),
                    });
                }
                Some(_) => continue,
            }
        }
    }

    async fn send_with_retries(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
        fixed_auth: Option<Authorization>,
    ) -> Result<Response> {
        let mut attempt = 0;
        let mut renewed_session = false;
        loop {
            let auth = match &fixed_auth {
                Some(auth) => Ok(auth.clone()),
                None => self.authorization().await,
            };
            let outcome = match auth {
                Ok(auth) => {
                    let outcome = self
                        .send_raw(method.clone(), path, body, if_match, Some(&auth))
                        .await;
                    if let (
                        Err(Failure {
                            error: Error::Unauthorized { .. },
                            ..
                        }),
                        Authorization::Token(token),
                    ) = (&outcome, &auth)
                        && !renewed_session
                    {
                        // The session expired or was deleted: log in again, once.
                        renewed_session = true;
                        self.forget_session(token).await;
                        continue;
                    }
                    outcome
                }
                Err(error) => Err(Failure {
                    error,
                    retry_after: None,
                    sent: false,
                }),
            };
            let failure = match outcome {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            if attempt >= self.policy.max_retries || !failure.retryable(&method) {
                return Err(failure.error);
            }
            let delay = self.policy.retry_delay(attempt, failure.retry_after);
            tracing::debug!(%method, path, attempt, ?delay, error = %failure.error, "retrying BMC call");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// The credentials for the next request, logging in first if there is no session yet.
    /// The lock is held during login so concurrent callers share one session.
    async fn authorization(&self) -> Result<Authorization> {
        let mut auth = self.auth.lock().await;
        if matches!(*auth, Auth::Pending) {
            *auth = match self.sessions_path.get().cloned().flatten() {
                Some(path) => match self.login(&path).await {
                    Ok(session) => session,
                    // Every session slot is taken (a crashed predecessor's sessions hold
                    // them until they time out): this request goes with basic auth, and a
                    // later one tries for a session again.
                    Err(Error::Status { status: 503, .. }) => {
                        tracing::debug!("no free BMC session; this request uses basic auth");
                        return Ok(Authorization::Basic);
                    }
                    Err(error) => return Err(error),
                },
                None => Auth::Basic,
            };
        }
        Ok(match &*auth {
            Auth::Session { token, .. } => Authorization::Token(token.clone()),
            Auth::Pending | Auth::Basic => Authorization::Basic,
        })
    }

    async fn login(&self, sessions_path: &str) -> Result<Auth> {
        let body = serde_json::json!({
            "UserName": self.credentials.username(),
            "Password": self.credentials.password(),
        });
        // Sent without credentials: a rejected login must say so, not pass on basic auth.
        let response = match self
            .send_raw(Method::POST, sessions_path, Some(&body), None, None)
            .await
        {
            Ok(response) => response,
            Err(Failure {
                error: error @ Error::Unauthorized { .. },
                ..
            }) => return Err(error),
            Err(Failure { error, .. }) if error.is_transient() => return Err(error),
            Err(Failure { error, .. }) => {
                tracing::debug!(error = %error, "no usable SessionService; using basic auth");
                return Ok(Auth::Basic);
            }
        };
        let token = response
            .headers
            .get(AUTH_TOKEN)
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            tracing::debug!("session login answered without a token; using basic auth");
            return Ok(Auth::Basic);
        };
        let location = response
            .headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        tracing::debug!("opened Redfish session");
        Ok(Auth::Session {
            token: token.to_owned(),
            location,
        })
    }

    /// Drops the session a request was refused with, unless another caller already renewed it.
    async fn forget_session(&self, refused: &str) {
        let mut auth = self.auth.lock().await;
        if matches!(&*auth, Auth::Session { token, .. } if token == refused) {
            *auth = Auth::Pending;
        }
    }

    async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
        auth: Option<&Authorization>,
    ) -> Result<Response, Failure> {
        let url = self.resolve(path).map_err(Failure::unsent)?;
        let mut request = self.http.request(method.clone(), url);
        request = match auth {
            Some(Authorization::Token(token)) => request.header(AUTH_TOKEN, token),
            Some(Authorization::Basic) => request.basic_auth(
                self.credentials.username(),
                Some(self.credentials.password()),
            ),
            None => request,
        };
        if let Some(etag) = if_match {
            let value = HeaderValue::from_str(etag).map_err(|_| {
                Failure::unsent(Error::Unsupported(
                    "an ETag that is not a valid header".into(),
                ))
            })?;
            request = request.header(IF_MATCH, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }

        let _permit =
            self.limiter.acquire().await.map_err(|_| {
                Failure::unsent(Error::Unsupported("calls on a closed client".into()))
            })?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = request.send().await.map_err(|source| {
            let error = if source.is_timeout() {
                Error::Timeout {
                    method: method.to_string(),
                    path: path.to_owned(),
                }
            } else if let Some(why) = crate::tls::certificate_problem(&source) {
                // Not transient: someone has to change the certificate or the settings.
                Error::Certificate(why)
            } else {
                Error::Connect {
                    path: path.to_owned(),
                    source: source.without_url(),
                }
            };
            Failure {
                sent: !matches!(&error, Error::Connect { source, .. } if source.is_connect()),
                error,
                retry_after: None,
            }
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = self.read_body(response, &method, path).await?;
        tracing::debug!(%method, path, status = status.as_u16(), "BMC call");

        if status.is_success() {
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
        let error = if status == StatusCode::UNAUTHORIZED {
            Error::Unauthorized {
                method: method.to_string(),
                path: path.to_owned(),
            }
        } else {
            Error::Status {
                status: status.as_u16(),
                method: method.to_string(),
                path: path.to_owned(),
                message: ErrorBody::summary(&body),
            }
        };
        Err(Failure {
            error,
            retry_after: headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .map(Duration::from_secs),
            sent: true,
        })
    }

    /// Reads a response body, at most `policy.max_response_bytes` of it: a BMC that answers
    /// with a gigabyte (broken, or not a BMC) must not exhaust the operator's memory. Streamed,
    /// so a body without Content-Length is cut off at the limit too.
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        method: &Method,
        path: &str,
    ) -> Result<Vec<u8>, Failure> {
        let limit = self.policy.max_response_bytes;
        let too_large = || Failure {
            error: Error::Oversized {
                path: path.to_owned(),
                what: format!("a body of more than {limit} bytes"),
            },
            retry_after: None,
            sent: true,
        };
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        loop {
            let chunk = response.chunk().await.map_err(|source| Failure {
                error: if source.is_timeout() {
                    Error::Timeout {
                        method: method.to_string(),
                        path: path.to_owned(),
                    }
                } else {
                    Error::Connect {
                        path: path.to_owned(),
                        source: source.without_url(),
                    }
                },
                retry_after: None,
                sent: true,
            })?;
            let Some(chunk) = chunk else {
                return Ok(body);
            };
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
    }

    /// Resolves a path or URL from the BMC against the endpoint, refusing other hosts: a
    /// Location header must not be able to send our token elsewhere.
    fn resolve(&self, path: &str) -> Result<Url> {
        let url = self
            .origin
            .join(path)
            .map_err(|e| Error::InvalidEndpoint(format!("bad path {path}: {e}")))?;
        if url.origin() != self.origin.origin() {
            return Err(Error::InvalidEndpoint(format!(
                "BMC pointed to another host ({})",
                url.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }
}

/// A failed attempt, with what the retry decision needs.
struct Failure {
    error: Error,
    retry_after: Option<Duration>,
    /// Whether the BMC may have received (and acted on) the request.
    sent: bool,
}

impl Failure {
    fn unsent(error: Error) -> Self {
        Self {
            error,
            retry_after: None,
            sent: false,
        }
    }

    /// Transient failures are retried, except that an action (POST) is repeated only when
    /// the BMC cannot have carried it out: not sent, or refused with 429/503. Power-cycling
    /// a host twice because an answer was slow is worse than reporting the timeout.
    fn retryable(&self, method: &Method) -> bool {
        if !self.error.is_transient() {
            return false;
        }
        if *method != Method::POST || !self.sent {
            return true;
        }
        matches!(
            self.error,
            Error::Status {
                status: 429 | 503,
                ..
            }
        )
    }
}
