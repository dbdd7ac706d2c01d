//! What happens before a handler runs: find the BMC, count the call, inject faults and
//! latency, authenticate.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rand::Rng;

use super::error::RfError;
use crate::listener::HostConn;
use crate::state::{Fleet, Host};

/// The BMC a request is for; handlers take it as an extension.
#[derive(Clone, Debug)]
pub(crate) struct Bmc {
    pub fleet: Arc<Fleet>,
    pub index: usize,
}

impl Bmc {
    pub fn host(&self) -> &Host {
        // Set by `gate` only for an index it found.
        &self.fleet.hosts[self.index - 1]
    }
}

/// Resources anyone may read, and session login (Redfish spec, "Authentication").
fn is_public(method: &Method, path: &str) -> bool {
    matches!(
        (method, path),
        (
            &Method::GET,
            "/redfish" | "/redfish/" | "/redfish/v1" | "/redfish/v1/"
        ) | (&Method::POST, "/redfish/v1/SessionService/Sessions")
    )
}

pub(crate) async fn gate(
    State(fleet): State<Arc<Fleet>>,
    ConnectInfo(conn): ConnectInfo<HostConn>,
    request: Request,
    next: Next,
) -> Response {
    let Some(host) = fleet.host(conn.index) else {
        return RfError::not_found().into_response();
    };
    let caller = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let call = {
        let mut bmc = host.bmc();
        bmc.count_request();
        bmc.call_received(
            fleet.now(),
            caller,
            request.method().to_string(),
            request.uri().path().to_owned(),
        )
    };
    let response = answer(&fleet, host, conn.index, request, next).await;
    host.bmc()
        .call_answered(call, fleet.now(), response.status().as_u16());
    response
}

/// Faults, latency, authentication, then the handler.
async fn answer(
    fleet: &Arc<Fleet>,
    host: &Host,
    index: usize,
    mut request: Request,
    next: Next,
) -> Response {
    let mut faults = host.faults.subscribe();
    let current = faults.borrow_and_update().clone();
    let mut shutdown = fleet.shutdown.clone();
    if current.unresponsive {
        tokio::select! {
            _ = faults.wait_for(|f| !f.unresponsive) => {}
            _ = shutdown.wait_for(|stop| *stop) => return unavailable(),
        }
    }
    if current.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(current.latency_ms)).await;
    }
    let (hang, fail) = {
        let mut rng = rand::rng();
        (
            rng.random_bool(current.timeout_rate.clamp(0.0, 1.0)),
            rng.random_bool(current.error_rate.clamp(0.0, 1.0)),
        )
    };
    if hang {
        let _ = shutdown.wait_for(|stop| *stop).await;
        return unavailable();
    }
    if fail {
        return RfError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "injected fault",
        )
        .into_response();
    }

    if !is_public(request.method(), request.uri().path())
        && !authenticated(fleet, host, request.headers())
    {
        return RfError::unauthorized().into_response();
    }
    if current.endless_body {
        return endless_body();
    }
    request.extensions_mut().insert(Bmc {
        fleet: fleet.clone(),
        index,
    });
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert("OData-Version", HeaderValue::from_static("4.0"));
    response
}

/// JSON-looking whitespace, forever, in 64 KiB chunks.
fn endless_body() -> Response {
    let chunk = axum::body::Bytes::from(vec![b' '; 64 * 1024]);
    let body = axum::body::Body::from_stream(futures::stream::repeat_with(move || {
        Ok::<_, std::io::Error>(chunk.clone())
    }));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn unavailable() -> Response {
    RfError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceShuttingDown",
        "the simulator is stopping",
    )
    .into_response()
}

fn authenticated(fleet: &Fleet, host: &Host, headers: &axum::http::HeaderMap) -> bool {
    if let Some(token) = headers.get("X-Auth-Token").and_then(|v| v.to_str().ok()) {
        return host.bmc().touch_session(fleet.now(), token).is_some();
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .is_some_and(|pair| fleet.credentials_match(&pair))
}
