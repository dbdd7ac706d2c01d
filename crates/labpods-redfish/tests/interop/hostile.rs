//! A "BMC" that answers too much: an endless body, a body that says it is a gigabyte, a
//! collection of thousands of systems, an error message of megabytes. The client must fail
//! each call with a clear error, without reading it all (a plain axum server on loopback:
//! the simulator is a well-behaved BMC).

use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use labpods_redfish::{BmcTarget, Credentials, Error, RedfishConnector, TlsOptions, Url};
use serde_json::json;

use crate::suite::test_policy;

/// An endless body: if the client read it all, the call would end only at its timeout.
fn endless() -> Body {
    let chunk = Bytes::from(vec![b' '; 64 * 1024]);
    Body::from_stream(futures::stream::repeat_with(move || {
        Ok::<_, std::io::Error>(chunk.clone())
    }))
}

fn root(systems: &str) -> Response {
    axum::Json(json!({
        "@odata.id": "/redfish/v1/",
        "Systems": { "@odata.id": systems },
    }))
    .into_response()
}

async fn serve(router: Router) -> Url {
    let tcp = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = tcp.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(tcp, router).await });
    Url::parse(&format!("http://{addr}/")).unwrap()
}

/// A service root linking to a Systems collection that `systems` answers.
async fn serve_systems(systems: axum::routing::MethodRouter) -> Url {
    serve(
        Router::new()
            .route(
                "/redfish/v1/",
                get(|| async { root("/redfish/v1/Systems") }),
            )
            .route("/redfish/v1/Systems", systems),
    )
    .await
}

async fn connect(endpoint: Url) -> Error {
    let target = BmcTarget {
        endpoint,
        system_id: None,
        credentials: Credentials::new("admin", "hostile-test-pw"),
        tls: TlsOptions::default(),
    };
    RedfishConnector::new(test_policy())
        .client(&target)
        .await
        .expect_err("the hostile BMC's answer is refused")
}

#[tokio::test]
async fn an_endless_body_is_cut_off_at_the_limit() {
    let endpoint =
        serve(Router::new().route("/redfish/v1/", get(|| async { Response::new(endless()) })))
            .await;
    let err = connect(endpoint).await;
    assert_eq!(
        err.to_string(),
        format!(
            "BMC answer from /redfish/v1/ is too large: a body of more than {} bytes",
            4 << 20
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_body_declared_as_a_gigabyte_is_refused_unread() {
    let endpoint = serve(Router::new().route(
        "/redfish/v1/",
        get(|| async { ([(header::CONTENT_LENGTH, "1073741824")], endless()) }),
    ))
    .await;
    let err = connect(endpoint).await;
    assert!(
        matches!(&err, Error::Oversized { path, .. } if path == "/redfish/v1/"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_collection_of_thousands_of_systems_is_refused() {
    let members: Vec<_> = (0..5000)
        .map(|i| json!({ "@odata.id": format!("/redfish/v1/Systems/{i}") }))
        .collect();
    let endpoint = serve_systems(get(move || async move {
        axum::Json(json!({ "Members": members })).into_response()
    }))
    .await;
    let err = connect(endpoint).await;
    assert_eq!(
        err.to_string(),
        "BMC answer from /redfish/v1/Systems is too large: 5000 collection members (at most 1024 are read)",
    );
}

#[tokio::test]
async fn a_huge_error_message_is_truncated() {
    let endpoint = serve_systems(get(|| async {
        let message = "x".repeat(1 << 20);
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": { "message": message } })),
        )
            .into_response()
    }))
    .await;
    let err = connect(endpoint).await;
    let Error::Status {
        status: 400,
        message,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(message, &format!("{} (truncated)", "x".repeat(500)));
}
