//! Helpers shared by the simulator's integration tests: a Redfish-speaking HTTP client and
//! polling with a deadline (no fixed sleeps, no timing assertions).

#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use labpods_sim::{Sim, SimConfig, SimHandle};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub async fn start(config: SimConfig) -> SimHandle {
    Sim::start(config).await.unwrap()
}

/// Fast timing for tests that walk through a whole boot.
pub fn fast() -> SimConfig {
    SimConfig {
        power_delay: Duration::from_millis(50),
        boot_time: Duration::from_millis(300),
        ..SimConfig::default()
    }
}

/// Basic-auth request to host `i`.
pub async fn call(
    c: &Client,
    sim: &SimHandle,
    i: usize,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    let url = sim.endpoint(i).join(path).unwrap();
    let mut req = c
        .request(method, url)
        .basic_auth(sim.username(), Some(sim.password()));
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

pub async fn get_json(c: &Client, sim: &SimHandle, i: usize, path: &str) -> Value {
    let resp = call(c, sim, i, Method::GET, path, None).await;
    assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
    resp.json().await.unwrap()
}

pub async fn reset(c: &Client, sim: &SimHandle, i: usize, kind: &str) -> StatusCode {
    let body = json!({ "ResetType": kind });
    call(
        c,
        sim,
        i,
        Method::POST,
        "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
        Some(body),
    )
    .await
    .status()
}

/// Polls `path` until `pick(json)` equals `want`, or fails after DEADLINE with the last value.
pub async fn wait_for(
    c: &Client,
    sim: &SimHandle,
    i: usize,
    path: &str,
    pick: fn(&Value) -> Value,
    want: Value,
) {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let got = pick(&get_json(c, sim, i, path).await);
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "{path}: still {got} after {DEADLINE:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn power(v: &Value) -> Value {
    v["PowerState"].clone()
}

pub fn last_state(v: &Value) -> Value {
    v["BootProgress"]["LastState"].clone()
}

pub const SYSTEM: &str = "/redfish/v1/Systems/1";
pub const CD: &str = "/redfish/v1/Managers/1/VirtualMedia/Cd";
