//! The admin HTTP endpoint (separate port): what tests that run the simulator as a separate
//! process use instead of `HostHandle`.
//!
//! - `GET  /admin/hosts`             -> `[{index, endpoint, state}]`
//! - `GET  /admin/hosts/{i}`         -> `{index, endpoint, systemId, faults, state, history}`
//!   (`state.usbStick` is the seed medium; `state.playback` what the host's cloud-init read
//!   from its seed and the phone-home it posted)
//! - `POST /admin/hosts/{i}/faults`  <- `Faults` JSON (replaces; absent fields are healthy)
//! - `DELETE /admin/hosts/{i}/history`
//! - `POST /admin/faults`            <- `Faults` JSON for every host
//! - `GET  /admin/requests`          -> `[n, ...]`: Redfish requests each BMC received, host 1
//!   first (cheap enough to poll a 5,000-BMC fleet: no state or history is copied)
//! - `GET  /admin/hosts/{i}/requests` -> `n`: the same for one host

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::Faults;
use crate::state::{Fleet, Host};

pub(crate) fn router(fleet: Arc<Fleet>) -> Router {
    Router::new()
        .route("/admin/hosts", get(list))
        .route("/admin/hosts/{i}", get(show))
        .route("/admin/hosts/{i}/faults", post(set_faults))
        .route("/admin/hosts/{i}/history", delete(clear_history))
        .route("/admin/faults", post(set_all_faults))
        .route("/admin/requests", get(requests))
        .route("/admin/hosts/{i}/requests", get(host_requests))
        .with_state(fleet)
}

fn find(fleet: &Fleet, i: usize) -> Result<&Host, (StatusCode, String)> {
    fleet.host(i).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            format!("no host {i}; hosts are 1..={}", fleet.hosts.len()),
        )
    })
}

async fn list(State(fleet): State<Arc<Fleet>>) -> Json<Vec<Value>> {
    let now = fleet.now();
    Json(
        fleet
            .hosts
            .iter()
            .map(|h| json!({ "index": h.index, "endpoint": fleet.endpoint(h).as_str(), "state": h.bmc().state(now) }))
            .collect(),
    )
}

async fn show(
    State(fleet): State<Arc<Fleet>>,
    Path(i): Path<usize>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let host = find(&fleet, i)?;
    let faults = host.faults.borrow().clone();
    let mut bmc = host.bmc();
    Ok(Json(json!({
        "index": i,
        "endpoint": fleet.endpoint(host).as_str(),
        "systemId": crate::redfish::SYSTEM_ID,
        "faults": faults,
        "state": bmc.state(fleet.now()),
        "history": bmc.history(),
    })))
}

async fn requests(State(fleet): State<Arc<Fleet>>) -> Json<Vec<u64>> {
    Json(fleet.hosts.iter().map(|h| h.bmc().requests()).collect())
}

async fn host_requests(
    State(fleet): State<Arc<Fleet>>,
    Path(i): Path<usize>,
) -> Result<Json<u64>, (StatusCode, String)> {
    Ok(Json(find(&fleet, i)?.bmc().requests()))
}

async fn set_faults(
    State(fleet): State<Arc<Fleet>>,
    Path(i): Path<usize>,
    Json(faults): Json<Faults>,
) -> Result<Json<Faults>, (StatusCode, String)> {
    find(&fleet, i)?.faults.send_replace(faults.clone());
    Ok(Json(faults))
}

async fn clear_history(
    State(fleet): State<Arc<Fleet>>,
    Path(i): Path<usize>,
) -> Result<StatusCode, (StatusCode, String)> {
    find(&fleet, i)?.bmc().clear_history();
    Ok(StatusCode::NO_CONTENT)
}

async fn set_all_faults(
    State(fleet): State<Arc<Fleet>>,
    Json(faults): Json<Faults>,
) -> Json<Faults> {
    for host in &fleet.hosts {
        host.faults.send_replace(faults.clone());
    }
    Json(faults)
}
