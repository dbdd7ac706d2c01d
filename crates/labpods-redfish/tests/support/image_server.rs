//! A small HTTP server on 127.0.0.1 serving an "ISO" for virtual media (sushy downloads the
//! image before it answers InsertMedia).

use axum::Router;
use axum::routing::get;
use labpods_redfish::Url;

#[derive(Debug)]
pub struct ImageServer {
    pub url: Url,
    task: tokio::task::JoinHandle<()>,
}

impl ImageServer {
    pub async fn start() -> Self {
        // Any name under /images/ (a second one for the removable medium beside the CD).
        let app = Router::new().route("/images/{name}", get(|| async { vec![0x42u8; 4096] }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url: Url::parse(&format!("http://127.0.0.1:{port}/images/labpods-test.iso")).unwrap(),
            task,
        }
    }
}

impl Drop for ImageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
