//! The operator's HTTP endpoints, on two listeners: /metrics, /healthz and /readyz for the
//! cluster (metrics address), and the phone-home callback for the lab network (phone-home
//! address), so exposing one does not expose the other.

pub mod phone_home;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Router,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
pub use phone_home::{PhoneHomeError, PhoneHomeSink, PhoneHomeTokens};

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
    axum::serve(listener, router)
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
    tokens: PhoneHomeTokens,
    sink: Arc<dyn PhoneHomeSink>,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// `POST /phone-home/{host}?token=...`; the body (cloud-init's form data) is ignored.
pub fn phone_home_router(tokens: PhoneHomeTokens, sink: Arc<dyn PhoneHomeSink>) -> Router {
    Router::new()
        .route("/phone-home/{host}", post(phone_home_handler))
        .with_state(PhoneHomeState { tokens, sink })
}

async fn phone_home_handler(
    State(state): State<PhoneHomeState>,
    Path(host): Path<String>,
    Query(query): Query<TokenQuery>,
) -> impl IntoResponse {
    let valid = query
        .token
        .as_deref()
        .is_some_and(|t| state.tokens.verify(&host, t));
    if !valid {
        tracing::warn!(%host, "phone-home with a missing or wrong token");
        return (StatusCode::FORBIDDEN, "invalid token".to_string());
    }
    match state.sink.record(&host).await {
        Ok(()) => {
            tracing::info!(%host, "host phoned home");
            (StatusCode::OK, "recorded".to_string())
        }
        Err(e @ PhoneHomeError::UnknownHost(_)) => (StatusCode::NOT_FOUND, e.to_string()),
        // cloud-init retries on errors; a host that is not waiting needs no retry.
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

    #[derive(Default)]
    struct RecordingSink(Mutex<Vec<String>>);

    impl PhoneHomeSink for RecordingSink {
        fn record<'a>(
            &'a self,
            host: &'a str,
        ) -> Pin<Box<dyn Future<Output = Result<(), PhoneHomeError>> + Send + 'a>> {
            Box::pin(async move {
                if host == "ghost" {
                    return Err(PhoneHomeError::UnknownHost(host.into()));
                }
                self.0.lock().unwrap().push(host.to_string());
                Ok(())
            })
        }
    }

    use std::{future::Future, pin::Pin};

    #[tokio::test]
    async fn phone_home_accepts_cloud_init_form_post_with_a_valid_token_only() {
        let tokens = PhoneHomeTokens::new(b"secret");
        let sink = Arc::new(RecordingSink::default());
        let addr = start(phone_home_router(tokens.clone(), sink.clone())).await;
        let form = "instance_id=i-1&hostname=node-01&fqdn=node-01.lab";

        let url = tokens.url(&url::Url::parse("http://x/").unwrap(), "node-01");
        let path = format!("{}?{}", url.path(), url.query().unwrap());
        assert_eq!(request(addr, "POST", &path, form).await.0, 200);

        let wrong = format!("/phone-home/node-02?token={}", tokens.token("node-01"));
        assert_eq!(request(addr, "POST", &wrong, form).await.0, 403);
        assert_eq!(
            request(addr, "POST", "/phone-home/node-01", form).await.0,
            403
        );

        let ghost = format!("/phone-home/ghost?token={}", tokens.token("ghost"));
        assert_eq!(request(addr, "POST", &ghost, form).await.0, 404);

        assert_eq!(*sink.0.lock().unwrap(), vec!["node-01".to_string()]);
    }
}
