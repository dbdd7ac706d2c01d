//! The simulator's Redfish behaviour, over HTTP, as a client sees it.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use labpods_sim::{Event, SimConfig};
use reqwest::{Method, StatusCode, header};
use serde_json::json;
use support::*;

#[tokio::test]
async fn power_passes_through_powering_states() {
    let sim = start(SimConfig {
        power_delay: Duration::from_secs(3600),
        ..SimConfig::default()
    })
    .await;
    let c = client();
    assert_eq!(power(&get_json(&c, &sim, 1, SYSTEM).await), "Off");
    assert_eq!(reset(&c, &sim, 1, "On").await, StatusCode::NO_CONTENT);
    assert_eq!(power(&get_json(&c, &sim, 1, SYSTEM).await), "PoweringOn");
    assert_eq!(reset(&c, &sim, 1, "ForceOff").await, StatusCode::NO_CONTENT);
    assert_eq!(power(&get_json(&c, &sim, 1, SYSTEM).await), "Off");
    assert_eq!(reset(&c, &sim, 1, "Explode").await, StatusCode::BAD_REQUEST);
    let system = get_json(&c, &sim, 1, SYSTEM).await;
    let allowed = &system["Actions"]["#ComputerSystem.Reset"]["ResetType@Redfish.AllowableValues"];
    assert!(
        allowed.as_array().unwrap().contains(&json!("ForceRestart")),
        "{allowed}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn reimage_boots_the_media_once_then_the_disk() {
    let sim = start(fast()).await;
    let c = client();
    let image = "http://127.0.0.1:1/os.iso";
    let insert = call(
        &c,
        &sim,
        1,
        Method::POST,
        &format!("{CD}/Actions/VirtualMedia.InsertMedia"),
        Some(json!({ "Image": image, "Inserted": true, "WriteProtected": true })),
    )
    .await;
    assert_eq!(insert.status(), StatusCode::NO_CONTENT);
    let cd = get_json(&c, &sim, 1, CD).await;
    assert_eq!(
        (&cd["Image"], &cd["Inserted"], &cd["ConnectedVia"]),
        (&json!(image), &json!(true), &json!("URI"))
    );

    let etag = call(&c, &sim, 1, Method::GET, SYSTEM, None).await.headers()[header::ETAG]
        .to_str()
        .unwrap()
        .to_owned();
    let patch = c.patch(sim.endpoint(1).join(SYSTEM).unwrap())
        .basic_auth("admin", Some("labpods"))
        .header(header::IF_MATCH, &etag)
        .json(&json!({ "Boot": { "BootSourceOverrideTarget": "Cd", "BootSourceOverrideEnabled": "Once", "BootSourceOverrideMode": "UEFI" } }))
        .send().await.unwrap();
    assert_eq!(patch.status(), StatusCode::NO_CONTENT);
    let stale = c
        .patch(sim.endpoint(1).join(SYSTEM).unwrap())
        .basic_auth("admin", Some("labpods"))
        .header(header::IF_MATCH, &etag)
        .json(&json!({ "Boot": { "BootSourceOverrideTarget": "Pxe" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        stale.status(),
        StatusCode::PRECONDITION_FAILED,
        "a stale ETag must not overwrite"
    );

    assert_eq!(reset(&c, &sim, 1, "On").await, StatusCode::NO_CONTENT);
    wait_for(&c, &sim, 1, SYSTEM, last_state, json!("OSRunning")).await;
    let system = get_json(&c, &sim, 1, SYSTEM).await;
    assert_eq!(
        system["Boot"]["BootSourceOverrideEnabled"], "Disabled",
        "Once is consumed by the boot"
    );
    assert_eq!(system["PowerState"], "On");

    let eject = call(
        &c,
        &sim,
        1,
        Method::POST,
        &format!("{CD}/Actions/VirtualMedia.EjectMedia"),
        Some(json!({})),
    )
    .await;
    assert_eq!(eject.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get_json(&c, &sim, 1, CD).await["ConnectedVia"],
        "NotConnected"
    );
    assert_eq!(
        reset(&c, &sim, 1, "ForceRestart").await,
        StatusCode::NO_CONTENT
    );
    wait_for(&c, &sim, 1, SYSTEM, last_state, json!("OSRunning")).await;

    let host = sim.host(1);
    assert_eq!(
        host.boots(),
        [
            ("Cd".to_owned(), Some(image.to_owned())),
            ("Hdd".to_owned(), Some(image.to_owned()))
        ]
    );
    assert_eq!(host.state().current_image.as_deref(), Some(image));
    let media: Vec<_> = host
        .history()
        .into_iter()
        .filter(|e| matches!(e, Event::MediaInserted { .. } | Event::MediaEjected { .. }))
        .collect();
    assert!(
        matches!(&media[..], [Event::MediaInserted { .. }, Event::MediaEjected { image: Some(i), .. }] if i == image),
        "{media:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn boot_progress_walks_through_the_boot() {
    let sim = start(SimConfig {
        power_delay: Duration::ZERO,
        boot_time: Duration::from_millis(1500),
        ..SimConfig::default()
    })
    .await;
    let c = client();
    assert_eq!(last_state(&get_json(&c, &sim, 1, SYSTEM).await), "None");
    reset(&c, &sim, 1, "On").await;
    // Every state of the walk shows up in order while polling.
    let mut seen: Vec<String> = Vec::new();
    let end = tokio::time::Instant::now() + DEADLINE;
    while seen.last().map(String::as_str) != Some("OSRunning") {
        assert!(tokio::time::Instant::now() < end, "stuck: {seen:?}");
        let state = last_state(&get_json(&c, &sim, 1, SYSTEM).await)
            .as_str()
            .unwrap()
            .to_owned();
        if seen.last() != Some(&state) {
            seen.push(state);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen,
        [
            "PrimaryProcessorInitializationStarted",
            "SystemHardwareInitializationComplete",
            "OSBootStarted",
            "OSRunning"
        ]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn sessions_are_limited_and_logout_frees_them() {
    let sim = start(SimConfig {
        session_limit: 3,
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let sessions = sim
        .endpoint(1)
        .join("/redfish/v1/SessionService/Sessions")
        .unwrap();
    let login = |user: &'static str, password: &'static str| {
        c.post(sessions.clone())
            .json(&json!({ "UserName": user, "Password": password }))
            .send()
    };
    assert_eq!(
        login("admin", "wrong").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let mut opened = Vec::new();
    for _ in 0..3 {
        let resp = login("admin", "labpods").await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let token = resp.headers()["x-auth-token"].to_str().unwrap().to_owned();
        let location = resp.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned();
        opened.push((token, location));
    }
    assert_eq!(
        login("admin", "labpods").await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a 4th session must be refused"
    );

    let system = sim.endpoint(1).join(SYSTEM).unwrap();
    assert_eq!(
        c.get(system.clone()).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let (token, location) = &opened[0];
    assert_eq!(
        c.get(system.clone())
            .header("X-Auth-Token", token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let logout = c
        .delete(sim.endpoint(1).join(location).unwrap())
        .header("X-Auth-Token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        c.get(system)
            .header("X-Auth-Token", token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login("admin", "labpods").await.unwrap().status(),
        StatusCode::CREATED,
        "logout freed a slot"
    );
    assert_eq!(sim.host(1).state().open_sessions, 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn each_bmc_is_its_own_service() {
    let sim = start(SimConfig {
        hosts: 3,
        ..SimConfig::default()
    })
    .await;
    let c = client();
    reset(&c, &sim, 2, "ForceRestart").await;
    assert_eq!(sim.host(2).boots().len(), 1);
    assert!(sim.host(1).history().is_empty() && sim.host(3).history().is_empty());
    let serials: Vec<_> = [1, 2, 3].iter().map(|i| sim.host(*i).endpoint()).collect();
    assert_eq!(serials.len(), 3);
    let a = get_json(&c, &sim, 1, SYSTEM).await;
    let b = get_json(&c, &sim, 3, SYSTEM).await;
    assert_ne!(a["SerialNumber"], b["SerialNumber"]);
    assert_ne!(a["UUID"], b["UUID"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn async_actions_answer_with_a_task_monitor() {
    let sim = start(SimConfig {
        async_actions: true,
        ..fast()
    })
    .await;
    let c = client();
    let body = json!({ "ResetType": "On" });
    let resp = call(
        &c,
        &sim,
        1,
        Method::POST,
        "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
        Some(body),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let monitor = resp.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let status = call(&c, &sim, 1, Method::GET, &monitor, None)
            .await
            .status();
        if status == StatusCode::NO_CONTENT {
            break;
        }
        assert_eq!(status, StatusCode::ACCEPTED);
        assert!(tokio::time::Instant::now() < end, "task never completed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        power(&get_json(&c, &sim, 1, SYSTEM).await),
        "On",
        "the task completes when power has settled"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn tls_is_served_with_the_exposed_ca() {
    let sim = start(SimConfig {
        tls: true,
        ..SimConfig::default()
    })
    .await;
    assert_eq!(sim.endpoint(1).scheme(), "https");
    let ca = reqwest::Certificate::from_pem(sim.ca_pem().unwrap().as_bytes()).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let trusting = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    let root = trusting
        .get(sim.endpoint(1).join("/redfish/v1/").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), StatusCode::OK);
    let untrusting = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([])
        .build()
        .unwrap();
    assert!(
        untrusting
            .get(sim.endpoint(1).join("/redfish/v1/").unwrap())
            .send()
            .await
            .is_err(),
        "an unknown CA must not verify"
    );
    sim.shutdown().await;
}
