//! The operator's HTTP endpoints, on two listeners: /metrics, /healthz and /readyz for the
//! cluster (metrics address), and the phone-home callback and the hosts' seeds for the lab
//! network (phone-home address), so exposing one does not expose the other.

pub mod phone_home;
pub mod seeds;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Router,
    body::Bytes,
    extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State},
    http::{StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
pub use phone_home::{PhoneHomeError, PhoneHomeSink, PhoneHomeTokens, Report, Run};
pub use seeds::{SeedError, SeedSource};

/// Readiness, shared between the runtime (which sets it) and /readyz (which reads it).
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

/// Errors of the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {address}: {error}")]
    Bind {
        address: SocketAddr,
        error: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

impl HttpError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Bind { .. } => "http_bind",
            Self::Serve(_) => "http_serve",
        }
    }
}

/// Binds early so that a port clash is a startup error, not a log line.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(address)
        .await
        .map_err(|error| HttpError::Bind { address, error })
}

/// Serves a router until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    // The peer address: phone-home records where the host called from.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(HttpError::Serve)
}

#[derive(Clone)]
struct OpsState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// /metrics, /healthz (the process answers) and /readyz (startup checks passed and, when
/// leading, the controllers' caches are synced; a follower is ready as a warm standby).
pub fn ops_router(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz_handler))
        .with_state(OpsState { metrics, health })
}

async fn metrics_handler(State(state): State<OpsState>) -> impl IntoResponse {
    match state.metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn readyz_handler(State(state): State<OpsState>) -> impl IntoResponse {
    if state.health.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: caches not synced yet",
        )
    }
}

#[derive(Clone)]
struct PhoneHomeState {
    sink: Arc<dyn PhoneHomeSink>,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// `POST /phone-home/{host}?token=...` with cloud-init's form (at most
/// [`phone_home::MAX_BODY_BYTES`]); the sink checks the token against the host's current run.
pub fn phone_home_router(sink: Arc<dyn PhoneHomeSink>) -> Router {
    Router::new()
        .route("/phone-home/{host}", post(phone_home_handler))
        .layer(DefaultBodyLimit::max(phone_home::MAX_BODY_BYTES))
        .with_state(PhoneHomeState { sink })
}

async fn phone_home_handler(
    State(state): State<PhoneHomeState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(host): Path<String>,
    Query(query): Query<TokenQuery>,
    body: Bytes,
) -> impl IntoResponse {
    let Some(token) = query.token else {
        tracing::warn!(%host, "phone-home without a token");
        return (StatusCode::FORBIDDEN, "invalid token".to_string());
    };
    let report = match Report::from_form(&body, Some(peer.ip())) {
        Ok(r) => r,
        // The field and why, never its value: the body is the caller's.
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()),
    };
    match state.sink.record(&host, &token, report).await {
        Ok(()) => {
            tracing::info!(%host, %peer, "host phoned home");
            (StatusCode::OK, "recorded".to_string())
        }
        Err(e @ PhoneHomeError::InvalidToken) => {
            tracing::warn!(%host, %peer, "phone-home with a wrong or stale token");
            (StatusCode::FORBIDDEN, e.to_string())
        }
        Err(e @ PhoneHomeError::UnknownHost(_)) => (StatusCode::NOT_FOUND, e.to_string()),
        // cloud-init retries on errors; a host that is not in a booking needs no retry.
        Err(e @ PhoneHomeError::NotWaiting(_)) => (StatusCode::CONFLICT, e.to_string()),
        Err(e) => {
            tracing::warn!(%host, error = %e, "cannot record phone-home");
            (StatusCode::SERVICE_UNAVAILABLE, "try again".to_string())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::sync::Mutex;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A minimal HTTP/1.1 client: enough to see what a caller sees.
    async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        let status = out[9..12].parse().unwrap();
        let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
        (status, body)
    }

    async fn start(router: Router) -> SocketAddr {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, router, std::future::pending()));
        addr
    }

    #[tokio::test]
    async fn readyz_follows_health_and_metrics_are_exposed() {
        let metrics = Arc::new(Metrics::new());
        metrics.set_leader(true);
        let health = Arc::new(Health::default());
        let addr = start(ops_router(metrics, health.clone())).await;
        assert_eq!(request(addr, "GET", "/healthz", "").await.0, 200);
        assert_eq!(request(addr, "GET", "/readyz", "").await.0, 503);
        health.set_ready(true);
        assert_eq!(request(addr, "GET", "/readyz", "").await.0, 200);
        let (status, body) = request(addr, "GET", "/metrics", "").await;
        assert_eq!(status, 200);
        assert!(body.contains("labpods_leader 1"), "{body}");
    }

    /// Accepts the token of one run of `node-01`, as the LabHost sink does.
    struct RecordingSink {
        tokens: PhoneHomeTokens,
        reports: Mutex<Vec<(String, Report)>>,
    }

    const RUN: Run<'static> = Run {
        host: "node-01",
        booking: "uid-1",
        started: 1_800_000_000,
    };

    impl PhoneHomeSink for RecordingSink {
        fn record<'a>(
            &'a self,
            host: &'a str,
            token: &'a str,
            report: Report,
        ) -> Pin<Box<dyn Future<Output = Result<(), PhoneHomeError>> + Send + 'a>> {
            Box::pin(async move {
                if host != RUN.host {
                    return Err(PhoneHomeError::UnknownHost(host.into()));
                }
                if !self.tokens.verify(&RUN, token) {
                    return Err(PhoneHomeError::InvalidToken);
                }
                self.reports
                    .lock()
                    .unwrap()
                    .push((host.to_string(), report));
                Ok(())
            })
        }
    }

    use std::{future::Future, pin::Pin};

    #[tokio::test]
    async fn phone_home_accepts_cloud_init_form_post_with_a_valid_token_only() {
        let tokens = PhoneHomeTokens::new(b"secret");
        let sink = Arc::new(RecordingSink {
            tokens: tokens.clone(),
            reports: Mutex::default(),
        });
        let addr = start(phone_home_router(sink.clone())).await;
        let form = "instance_id=i-1&hostname=node-01&fqdn=node-01.lab";

        let url = tokens.url(&url::Url::parse("http://x/").unwrap(), &RUN);
        let path = format!("{}?{}", url.path(), url.query().unwrap());
        assert_eq!(request(addr, "POST", &path, form).await.0, 200);

        let earlier = Run {
            started: RUN.started - 1,
            ..RUN
        };
        let stale = format!("/phone-home/node-01?token={}", tokens.token(&earlier));
        assert_eq!(request(addr, "POST", &stale, form).await.0, 403);
        assert_eq!(
            request(addr, "POST", "/phone-home/node-01", form).await.0,
            403
        );
        let ghost = format!("/phone-home/ghost?token={}", tokens.token(&RUN));
        assert_eq!(request(addr, "POST", &ghost, form).await.0, 404);

        let (status, body) = request(addr, "POST", &path, "pub_key_ed25519=oops").await;
        assert_eq!(
            (status, body.contains("pub_key_ed25519")),
            (400, true),
            "{body}"
        );
        let huge = format!("fqdn={}", "x".repeat(phone_home::MAX_BODY_BYTES));
        assert_eq!(request(addr, "POST", &path, &huge).await.0, 413);

        let reports = sink.reports.lock().unwrap();
        assert_eq!(reports.len(), 1);
        let (host, report) = &reports[0];
        assert_eq!(host, "node-01");
        assert_eq!(report.instance_id.as_deref(), Some("i-1"));
        assert_eq!(report.fqdn.as_deref(), Some("node-01.lab"));
        assert_eq!(report.peer, Some(addr.ip()));
    }
}
