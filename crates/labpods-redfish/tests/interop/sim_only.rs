//! Behaviour only the simulator can provoke or observe: session lifecycle as the BMC sees it,
//! and injected faults (5xx, hangs) against the retry and timeout policy.

use std::sync::Arc;
use std::time::Duration;

use labpods_redfish::{BmcConnector, ClientPolicy, Error, RedfishConnector, Url};
use labpods_sim::{Event, SessionEnd, SimConfig};

use crate::suite::test_policy;
use crate::{PASSWORD, USER, sim};

fn sessions_opened(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::SessionOpened { .. }))
        .count()
}

/// Concurrent callers and repeated connects share one session; logout closes it on the BMC.
#[tokio::test]
async fn one_session_per_bmc_and_logout_closes_it() {
    let (sim, peer) = sim(SimConfig::default()).await;
    let connector = RedfishConnector::new(test_policy());
    let first = connector.connect(&peer.target).await.unwrap();
    let second = connector.connect(&peer.target).await.unwrap();
    assert!(Arc::ptr_eq(&first, &second), "one client per target");
    let calls = (0..8).map(|_| first.power_state());
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    let host = sim.host(2);
    assert_eq!(host.state().open_sessions, 1);
    let shown = format!("{first:?}");
    assert!(
        shown.contains("Session(***)"),
        "the token is redacted: {shown}"
    );
    assert_eq!(sessions_opened(&host.history()), 1);

    first.logout().await.unwrap();
    assert_eq!(host.state().open_sessions, 0);
    assert!(host.history().iter().any(|e| matches!(
        e,
        Event::SessionClosed {
            reason: SessionEnd::LoggedOut,
            ..
        }
    )));
    sim.shutdown().await;
}

/// A session deleted behind the client's back (expired, or an admin cleared it) is renewed
/// transparently on the next call.
#[tokio::test]
async fn session_renewed_after_bmc_drops_it() {
    let (sim, peer) = sim(SimConfig::default()).await;
    let connector = RedfishConnector::new(test_policy());
    let bmc = connector.connect(&peer.target).await.unwrap();
    bmc.power_state().await.unwrap();

    delete_all_sessions(&peer.target.endpoint).await;
    assert_eq!(sim.host(2).state().open_sessions, 0);

    bmc.power_state().await.expect("the client logs in again");
    assert_eq!(sim.host(2).state().open_sessions, 1);
    assert_eq!(sessions_opened(&sim.host(2).history()), 2);
    assert_eq!(connector.logout_all().await, 0);
    sim.shutdown().await;
}

/// What a BMC admin does: list the sessions (basic auth) and delete them.
async fn delete_all_sessions(endpoint: &Url) {
    // A plain HTTP client; reqwest still wants a rustls provider chosen.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let sessions: serde_json::Value = http
        .get(
            endpoint
                .join("/redfish/v1/SessionService/Sessions")
                .unwrap(),
        )
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let members = sessions["Members"].as_array().unwrap();
    assert!(!members.is_empty());
    for member in members {
        let path = member["@odata.id"].as_str().unwrap();
        http.delete(endpoint.join(path).unwrap())
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }
}

/// With a session limit of 3, twenty connect/logout rounds only work if no session leaks.
#[tokio::test]
async fn sessions_do_not_leak() {
    let (sim, peer) = sim(SimConfig {
        session_limit: 3,
        ..SimConfig::default()
    })
    .await;
    for round in 0..20 {
        let connector = RedfishConnector::new(test_policy());
        let bmc = connector
            .connect(&peer.target)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        bmc.power_state().await.unwrap();
        assert_eq!(connector.logout_all().await, 0);
    }
    assert_eq!(sim.host(2).state().open_sessions, 0);
    sim.shutdown().await;
}

/// Every session slot held by sessions nobody will log out (an operator SIGKILLed again
/// and again): the BMC is still driven, with basic auth, and a session again once one is
/// free.
#[tokio::test]
async fn a_bmc_with_every_session_slot_taken_is_driven_with_basic_auth() {
    let (sim, peer) = sim(SimConfig {
        session_limit: 2,
        ..SimConfig::default()
    })
    .await;
    let crashed: Vec<RedfishConnector> = (0..2)
        .map(|_| RedfishConnector::new(test_policy()))
        .collect();
    for connector in &crashed {
        connector.connect(&peer.target).await.unwrap();
    }
    let host = sim.host(2);
    assert_eq!(host.state().open_sessions, 2);

    let connector = RedfishConnector::new(test_policy());
    let bmc = connector.connect(&peer.target).await.unwrap();
    bmc.power_state().await.unwrap();
    assert_eq!(host.state().open_sessions, 2, "no slot was free");

    assert_eq!(crashed[0].logout_all().await, 0);
    bmc.power_state().await.unwrap();
    assert_eq!(host.state().open_sessions, 2, "a session again");
    assert_eq!(connector.logout_all().await, 0);
    assert_eq!(crashed[1].logout_all().await, 0);
    assert_eq!(host.state().open_sessions, 0);
    sim.shutdown().await;
}

/// 5xx is retried (max_retries more times), then reported as a transient error; the BMC
/// works again once healthy.
#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let (sim, peer) = sim(SimConfig::default()).await;
    let policy = test_policy();
    let connector = RedfishConnector::new(policy.clone());
    let bmc = connector.connect(&peer.target).await.unwrap();
    let host = sim.host(2);

    host.set_error_rate(1.0);
    let before = host.state().requests;
    let err = bmc.power_state().await.expect_err("every call fails");
    assert!(matches!(err, Error::Status { status: 500, .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(err.metric_label(), "http_status");
    assert_eq!(
        host.state().requests - before,
        1 + u64::from(policy.max_retries)
    );

    host.set_error_rate(0.0);
    bmc.power_state().await.unwrap();
    connector.logout_all().await;
    sim.shutdown().await;
}

/// A 4xx is the BMC's final word: one request, no retry.
#[tokio::test]
async fn client_errors_are_not_retried() {
    let (sim, peer) = sim(SimConfig::default()).await;
    let connector = RedfishConnector::new(test_policy());
    let bmc = connector.connect(&peer.target).await.unwrap();
    let image = Url::parse("http://images.example/a.iso").unwrap();
    bmc.insert_media(&image).await.unwrap();

    let before = sim.host(2).state().requests;
    let err = bmc
        .insert_media(&image)
        .await
        .expect_err("the drive is full");
    assert!(matches!(err, Error::Status { status: 409, .. }), "{err:?}");
    assert!(!err.is_transient());
    assert_eq!(sim.host(2).state().requests - before, 1);
    connector.logout_all().await;
    sim.shutdown().await;
}

/// A BMC that stops answering produces a Timeout, not a hang.
#[tokio::test]
async fn unresponsive_bmc_times_out() {
    let (sim, peer) = sim(SimConfig::default()).await;
    let connector = RedfishConnector::new(ClientPolicy {
        request_timeout: Duration::from_millis(500),
        max_retries: 1,
        ..test_policy()
    });
    let bmc = connector.connect(&peer.target).await.unwrap();
    sim.host(2).set_unresponsive(true);
    let err = bmc.power_state().await.expect_err("no answer");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(err.metric_label(), "timeout");
    sim.host(2).set_unresponsive(false);
    bmc.power_state().await.unwrap();
    connector.logout_all().await;
    sim.shutdown().await;
}

/// A BMC that streams an endless answer: the call fails at the body limit, with an error
/// that says so, long before the request timeout; the client works again once it stops.
#[tokio::test]
async fn endless_body_is_cut_off_at_the_limit() {
    let (sim, peer) = sim(SimConfig::default()).await;
    let connector = RedfishConnector::new(ClientPolicy {
        // Were the body read to its end, the call would end in a Timeout instead.
        request_timeout: Duration::from_secs(60),
        ..test_policy()
    });
    let bmc = connector.connect(&peer.target).await.unwrap();
    sim.host(2).set_endless_body(true);
    let err = bmc.power_state().await.expect_err("an endless answer");
    assert!(
        matches!(&err, Error::Oversized { path, what }
            if path == "/redfish/v1/Systems/1" && what == "a body of more than 4194304 bytes"),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert_eq!(err.metric_label(), "oversized");
    sim.host(2).set_endless_body(false);
    bmc.power_state().await.unwrap();
    connector.logout_all().await;
    sim.shutdown().await;
}
