//! Fault injection and observation, through the library handle and the admin endpoint.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use labpods_sim::{Event, Faults, SimConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::*;

#[tokio::test]
async fn error_rate_one_fails_every_call_and_zero_none() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    sim.host(1).set_error_rate(1.0);
    for _ in 0..5 {
        let status = call(&c, &sim, 1, Method::GET, SYSTEM, None).await.status();
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    sim.host(1).set_error_rate(0.0);
    assert_eq!(
        call(&c, &sim, 1, Method::GET, SYSTEM, None).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        sim.host(1).state().requests,
        6,
        "failed calls are counted too"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unresponsive_bmc_times_out_until_it_recovers() {
    let sim = start(SimConfig::default()).await;
    let _ = client();
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let url = sim.endpoint(1).join("/redfish/v1/").unwrap();
    sim.host(1).set_unresponsive(true);
    let err = impatient.get(url.clone()).send().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    sim.host(1).set_unresponsive(false);
    assert_eq!(
        impatient.get(url).send().await.unwrap().status(),
        StatusCode::OK
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn timeout_rate_one_never_answers_and_shutdown_releases_the_call() {
    let sim = start(SimConfig::default()).await;
    let _ = client();
    sim.host(1).set_timeout_rate(1.0);
    let url = sim.endpoint(1).join("/redfish/v1/").unwrap();
    let hanging = tokio::spawn(
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(url)
            .send(),
    );
    // The call is in the server when the BMC has counted it.
    let end = tokio::time::Instant::now() + DEADLINE;
    while sim.host(1).state().requests == 0 {
        assert!(tokio::time::Instant::now() < end);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!hanging.is_finished());
    sim.shutdown().await;
    let released = hanging.await.unwrap();
    assert!(released.is_err() || released.unwrap().status() == StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn stuck_power_accepts_resets_without_effect() {
    let sim = start(fast()).await;
    let c = client();
    sim.host(1).set_power_stuck(true);
    assert_eq!(reset(&c, &sim, 1, "On").await, StatusCode::NO_CONTENT);
    assert!(matches!(
        sim.host(1).history()[..],
        [Event::PowerAction { applied: false, .. }]
    ));
    sim.host(1).set_power_stuck(false);
    assert_eq!(reset(&c, &sim, 1, "On").await, StatusCode::NO_CONTENT);
    wait_for(&c, &sim, 1, SYSTEM, power, json!("On")).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_hanging_boot_stays_at_os_boot_started() {
    let sim = start(fast()).await;
    let c = client();
    sim.host(1).set_boot_hangs(true);
    reset(&c, &sim, 1, "On").await;
    wait_for(&c, &sim, 1, SYSTEM, last_state, json!("OSBootStarted")).await;
    // Several boot times later it is still there (fast() boots in 300 ms).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        last_state(&get_json(&c, &sim, 1, SYSTEM).await),
        "OSBootStarted"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_admin_endpoint_shows_history_and_request_counts_and_sets_faults() {
    let sim = start(SimConfig {
        hosts: 2,
        admin_port: Some(0),
        ..fast()
    })
    .await;
    let c = client();
    let admin = sim.admin_url().unwrap();
    let insert = json!({ "Image": "http://127.0.0.1:1/a.iso" });
    call(
        &c,
        &sim,
        2,
        Method::POST,
        &format!("{CD}/Actions/VirtualMedia.InsertMedia"),
        Some(insert),
    )
    .await;
    reset(&c, &sim, 2, "On").await;

    let shown: Value = c
        .get(admin.join("admin/hosts/2").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["systemId"], "1");
    assert_eq!(shown["endpoint"], sim.endpoint(2).as_str());
    assert_eq!(shown["state"]["media"]["image"], "http://127.0.0.1:1/a.iso");
    let events: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["mediaInserted", "powerAction", "boot"]);

    let faults = json!({ "errorRate": 1.0 });
    let set = c
        .post(admin.join("admin/hosts/2/faults").unwrap())
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::OK);
    assert_eq!(
        sim.host(2).faults(),
        Faults {
            error_rate: 1.0,
            ..Faults::default()
        }
    );
    assert_eq!(
        call(&c, &sim, 2, Method::GET, SYSTEM, None).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        call(&c, &sim, 1, Method::GET, SYSTEM, None).await.status(),
        StatusCode::OK,
        "host 1 is unaffected"
    );

    let missing = c
        .get(admin.join("admin/hosts/3").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // The request counters alone, for every host and for one.
    let counted: Vec<u64> = c
        .get(admin.join("admin/requests").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expected = [sim.host(1).state().requests, sim.host(2).state().requests];
    assert_eq!(counted, expected);
    assert!(counted[1] >= 3, "insert, reset, a refused GET: {counted:?}");
    let one: u64 = c
        .get(admin.join("admin/hosts/2/requests").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one, counted[1]);
    sim.shutdown().await;
}
