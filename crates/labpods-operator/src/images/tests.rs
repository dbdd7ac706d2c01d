#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};

use super::*;

/// 1 MiB, the body of `/os.iso` and each chunk of the streamed bodies.
const CHUNK: usize = 1 << 20;

fn chunk() -> Vec<u8> {
    (0..CHUNK).map(|i| (i % 251) as u8).collect()
}

/// The digest of `chunks` repetitions of [`chunk`], computed here piece by piece.
fn digest_of(algorithm: Algorithm, chunks: usize) -> String {
    let mut d = ring::digest::Context::new(algorithm.ring());
    let c = chunk();
    for _ in 0..chunks {
        d.update(&c);
    }
    d.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An image server on loopback that counts GETs per path. Paths: `/os.iso` (1 MiB with a
/// Content-Length), `/big` (`BIG_CHUNKS` MiB, no length: ends when the connection closes),
/// `/endless` (never ends), `/stall` (headers, then nothing), `/missing` (404), `/down` (503).
/// While `gate` has no permits, `/os.iso` waits before answering.
struct Server {
    addr: SocketAddr,
    gets: Arc<Mutex<HashMap<String, usize>>>,
    gate: Arc<Semaphore>,
    /// Bytes of `/endless` written before the client hung up.
    endless_sent: Arc<AtomicUsize>,
}

const BIG_CHUNKS: usize = 256;

impl Server {
    async fn start(gated: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gets = Arc::new(Mutex::new(HashMap::new()));
        let gate = Arc::new(Semaphore::new(if gated { 0 } else { 1_000 }));
        let endless_sent = Arc::new(AtomicUsize::new(0));
        let (g, gt, sent) = (gets.clone(), gate.clone(), endless_sent.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, g.clone(), gt.clone(), sent.clone()));
            }
        });
        Self {
            addr,
            gets,
            gate,
            endless_sent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn gets(&self, path: &str) -> usize {
        self.gets.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn serve(
    mut stream: TcpStream,
    gets: Arc<Mutex<HashMap<String, usize>>>,
    gate: Arc<Semaphore>,
    endless_sent: Arc<AtomicUsize>,
) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.ends_with(b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let target = text.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_owned();
    *gets.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
    let body = chunk();
    let ok = "HTTP/1.1 200 OK\r\nConnection: close\r\n";
    let _ = match path.as_str() {
        "/os.iso" => {
            let _permit = gate.acquire().await;
            let head = format!("{ok}Content-Length: {}\r\n\r\n", body.len());
            stream.write_all(head.as_bytes()).await.ok();
            stream.write_all(&body).await
        }
        "/big" | "/endless" => {
            stream.write_all(format!("{ok}\r\n").as_bytes()).await.ok();
            let mut written = 0;
            loop {
                if path == "/big" && written == BIG_CHUNKS {
                    break Ok(());
                }
                if let Err(e) = stream.write_all(&body).await {
                    break Err(e);
                }
                written += 1;
                endless_sent.fetch_add(body.len(), Ordering::Relaxed);
            }
        }
        "/stall" => {
            stream.write_all(format!("{ok}\r\n").as_bytes()).await.ok();
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
        "/down" => {
            let head = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            stream.write_all(head.as_bytes()).await
        }
        _ => {
            let head = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            stream.write_all(head.as_bytes()).await
        }
    };
    let _ = stream.shutdown().await;
}

fn config() -> ImagesConfig {
    ImagesConfig {
        max_size: 1 << 30,
        download_timeout: Duration::from_secs(60),
        ..ImagesConfig::default()
    }
}

fn verifier(config: &ImagesConfig) -> (Verifier, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let v = Verifier::new(config, Duration::from_millis(50), metrics.clone()).unwrap();
    (v, metrics)
}

fn sha256(hex: &str) -> String {
    format!("sha256:{hex}")
}

/// Asks until the verdict is final (each download's end wakes the loop, as it wakes the
/// scheduler).
async fn final_verdict(v: &Verifier, url: &str, checksum: &str, requester: &str) -> Verdict {
    let wait = async {
        loop {
            match v.check(url, checksum, requester) {
                Verdict::Pending { retry_in, .. } => {
                    let retry = retry_in.unwrap_or(Duration::from_secs(3600));
                    tokio::select! {
                        () = v.settled() => {}
                        () = tokio::time::sleep(retry) => {}
                    }
                }
                done => return done,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), wait)
        .await
        .unwrap()
}

fn metric(metrics: &Metrics, line_start: &str) -> u64 {
    let text = metrics.encode().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_large_body_is_hashed_as_it_streams_and_verified() {
    let server = Server::start(false).await;
    let (v, metrics) = verifier(&config());
    let url = server.url("/big");
    let good = sha256(&digest_of(Algorithm::Sha256, BIG_CHUNKS));
    assert_eq!(final_verdict(&v, &url, &good, "a").await, Verdict::Verified);
    // sha512 of the same URL is another download (another digest), and verifies too.
    let sha512 = format!("sha512:{}", digest_of(Algorithm::Sha512, BIG_CHUNKS));
    assert_eq!(
        final_verdict(&v, &url, &sha512, "a").await,
        Verdict::Verified
    );
    assert_eq!(server.gets("/big"), 2);
    assert_eq!(
        metric(&metrics, "labpods_image_download_bytes_total"),
        2 * (BIG_CHUNKS * CHUNK) as u64
    );
}

#[tokio::test]
async fn a_body_without_end_stops_at_the_size_bound() {
    let server = Server::start(false).await;
    let limit = 8 * CHUNK as u64;
    let (v, metrics) = verifier(&ImagesConfig {
        max_size: limit,
        ..config()
    });
    let verdict = final_verdict(&v, &server.url("/endless"), &sha256(&"0".repeat(64)), "a").await;
    let Verdict::Refused(message) = verdict else {
        panic!("{verdict:?}")
    };
    assert!(
        message.starts_with("spec.image.url ") && message.contains("images.maxSize"),
        "{message}"
    );
    // Counted as it arrived: at most the bound was hashed, and the server could write little
    // more than that and what sockets buffer before the client hung up (an endless body held
    // in memory would never end).
    assert!(metric(&metrics, "labpods_image_download_bytes_total") <= limit);
    assert!(server.endless_sent.load(Ordering::Relaxed) < 64 * CHUNK);
    assert_eq!(
        metric(
            &metrics,
            "labpods_image_verification_failures_total{reason=\"too_large\"}"
        ),
        1
    );
}

#[tokio::test]
async fn a_wrong_checksum_is_refused_naming_the_field_and_the_actual_digest() {
    let server = Server::start(false).await;
    let (v, metrics) = verifier(&config());
    let url = format!("{}?X-Amz-Signature=secret", server.url("/os.iso"));
    let wrong = sha256(&"ab".repeat(32));
    let Verdict::Refused(message) = final_verdict(&v, &url, &wrong, "a").await else {
        panic!("not refused")
    };
    let actual = digest_of(Algorithm::Sha256, 1);
    assert!(
        message.starts_with(&format!("spec.image.checksum {wrong} does not match"))
            && message.contains(&actual),
        "{message}"
    );
    assert!(
        !message.contains("secret"),
        "the query is not shown: {message}"
    );
    // Asked again (every scheduling pass asks): the same verdict, no new download, one
    // failure counted.
    assert_eq!(v.check(&url, &wrong, "a"), Verdict::Refused(message));
    assert_eq!(server.gets("/os.iso"), 1);
    assert_eq!(
        metric(
            &metrics,
            "labpods_image_verification_failures_total{reason=\"mismatch\"}"
        ),
        1
    );
}

#[tokio::test]
async fn a_stalled_download_ends_at_the_time_bound() {
    let server = Server::start(false).await;
    let (v, _) = verifier(&ImagesConfig {
        download_timeout: Duration::from_millis(300),
        ..config()
    });
    let Verdict::Refused(message) =
        final_verdict(&v, &server.url("/stall"), &sha256(&"0".repeat(64)), "a").await
    else {
        panic!("not refused")
    };
    assert!(message.contains("images.downloadTimeout"), "{message}");
    // A timeout is final: not retried.
    assert_eq!(server.gets("/stall"), 1);
}

#[tokio::test]
async fn an_unavailable_server_is_retried_a_bounded_number_of_times() {
    let server = Server::start(false).await;
    let (v, metrics) = verifier(&ImagesConfig {
        attempts: 3,
        ..config()
    });
    let Verdict::Refused(message) =
        final_verdict(&v, &server.url("/down"), &sha256(&"0".repeat(64)), "a").await
    else {
        panic!("not refused")
    };
    assert!(
        message.starts_with("spec.image.url ") && message.contains("HTTP 503 (3 attempts)"),
        "{message}"
    );
    assert_eq!(server.gets("/down"), 3);
    assert_eq!(
        metric(
            &metrics,
            "labpods_image_downloads_total{outcome=\"http_status\"}"
        ),
        3
    );
    // Not found is final at once.
    let Verdict::Refused(message) =
        final_verdict(&v, &server.url("/missing"), &sha256(&"0".repeat(64)), "a").await
    else {
        panic!("not refused")
    };
    assert!(message.contains("HTTP 404"), "{message}");
    assert_eq!(server.gets("/missing"), 1);
}

#[tokio::test]
async fn concurrent_checks_of_one_image_share_one_download() {
    let server = Server::start(true).await;
    let (v, metrics) = verifier(&config());
    let url = server.url("/os.iso");
    let good = sha256(&digest_of(Algorithm::Sha256, 1));
    // Ten requests ask while the one download is held by the server.
    for i in 0..10 {
        assert!(
            matches!(
                v.check(&url, &good, &format!("r{i}")),
                Verdict::Pending { .. }
            ),
            "request {i}"
        );
    }
    server.gate.add_permits(1_000);
    let verdicts = futures::future::join_all((0..10).map(|i| {
        let (v, url, good) = (v.clone(), url.clone(), good.clone());
        async move { final_verdict(&v, &url, &good, &format!("r{i}")).await }
    }))
    .await;
    assert!(
        verdicts.iter().all(|x| *x == Verdict::Verified),
        "{verdicts:?}"
    );
    // A later booking of the image: from the cache.
    assert_eq!(v.check(&url, &good, "later"), Verdict::Verified);
    assert_eq!(server.gets("/os.iso"), 1);
    assert_eq!(
        metric(
            &metrics,
            "labpods_image_downloads_total{outcome=\"downloaded\"}"
        ),
        1
    );
    assert_eq!(metric(&metrics, "labpods_image_cache_hits_total"), 10);
}

#[tokio::test]
async fn a_result_is_reused_only_for_the_ttl() {
    let server = Server::start(false).await;
    let (v, _) = verifier(&ImagesConfig {
        cache_ttl: Duration::from_millis(200),
        ..config()
    });
    let url = server.url("/os.iso");
    let good = sha256(&digest_of(Algorithm::Sha256, 1));
    assert_eq!(final_verdict(&v, &url, &good, "a").await, Verdict::Verified);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(final_verdict(&v, &url, &good, "b").await, Verdict::Verified);
    assert_eq!(server.gets("/os.iso"), 2);
}

#[test]
fn checksums_in_another_form_are_refused_without_a_download() {
    // No runtime needed: nothing is spawned.
    let (v, _) = verifier(&config());
    let Verdict::Refused(message) = v.check("http://x.test/a.iso", "md5:abc", "a") else {
        panic!("not refused")
    };
    assert!(message.starts_with("spec.image.checksum"), "{message}");
}
