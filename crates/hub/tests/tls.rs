//! TLS end to end on 127.0.0.1: a hub with a certificate made like `vidcast cert` does, pinned
//! publishers, a wrong pin, and a plain-TCP client knocking on the TLS port.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vidcast_client::{ClientTls, Fingerprint, PublishError, PublishOptions, TlsTrust};
use vidcast_hub::{HubOptions, RunningHub, SelfSigned};
use vidcast_testkit::{start_hub, wait_for, TestPublisher};

const PERIOD: Duration = Duration::from_millis(33);

/// Every warning or error the hub logs in this test binary.
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct CaptureWarnings;

impl Write for CaptureWarnings {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        WARNINGS
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_warnings() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_writer(|| CaptureWarnings)
            .init();
    });
}

/// A hub with TLS on, and the fingerprint of its certificate.
async fn tls_hub() -> (RunningHub, Fingerprint) {
    let made = SelfSigned::generate(&["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let options = HubOptions {
        tls: Some(made.identity().unwrap()),
        ..HubOptions::default()
    };
    (start_hub(options).await, Fingerprint::of(&made.cert_der))
}

fn pinned(fingerprint: Fingerprint) -> PublishOptions {
    PublishOptions {
        tls: Some(ClientTls::new(TlsTrust::Pinned(fingerprint), "127.0.0.1").unwrap()),
        ..PublishOptions::default()
    }
}

/// A bare HTTP/1.1 GET over TLS, pinned like a publisher; returns the whole response.
async fn https_get(addr: SocketAddr, fingerprint: Fingerprint, path: &str) -> String {
    let tls = ClientTls::new(TlsTrust::Pinned(fingerprint), "127.0.0.1").unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut stream = tls.connect(tcp).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // The hub may close without a TLS close_notify; what arrived is what counts.
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

fn frames_of(hub: &RunningHub, name: &str) -> u64 {
    hub.registry
        .snapshot(0)
        .iter()
        .find(|s| s.name == name)
        .map_or(0, |s| s.frames)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_publisher_streams_over_tls_and_the_api_answers_over_https() {
    capture_warnings();
    let (hub, fingerprint) = tls_hub().await;
    let publisher = TestPublisher::start_with(
        hub.ingest_addr,
        "tls-cam",
        (64, 48),
        PERIOD,
        10_000,
        pinned(fingerprint),
    )
    .await;
    wait_for("20 frames over TLS", Duration::from_secs(20), || async {
        (frames_of(&hub, "tls-cam") >= 20).then_some(())
    })
    .await;
    let http = hub.http_addr.unwrap();
    let response = https_get(http, fingerprint, "/api/streams").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"tls-cam\""), "{response}");
    // TCP_INFO still comes from the sockets under TLS, on both sides.
    wait_for(
        "TCP samples from both sides",
        Duration::from_secs(10),
        || async {
            let snapshot = hub.registry.snapshot(0);
            let id = snapshot.iter().find(|s| s.name == "tls-cam")?.id;
            let series = hub.registry.net_series(id, 0)?;
            (!series.hub_bytes_received.is_empty() && !series.pub_rtt_ms.is_empty()).then_some(())
        },
    )
    .await;
    publisher.stop.send_replace(true);
    let report = publisher.task.await.unwrap().unwrap();
    assert!(report.stats.frames_sent >= 20);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_fingerprint_is_refused_naming_both_and_not_retried() {
    capture_warnings();
    let (hub, right) = tls_hub().await;
    let wrong = Fingerprint::of(b"some other certificate");
    let (_tx, mut frames) = tokio::sync::watch::channel(None);
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        vidcast_client::publish_with_reconnect(
            &[hub.ingest_addr],
            vidcast_testkit::hello("impostor-check", 64, 48),
            pinned(wrong),
            &mut frames,
            vidcast_testkit::clock(),
            Some(Duration::from_secs(1)),
            std::future::pending(),
        ),
    )
    .await
    .expect("a mismatch ends reconnection instead of spinning");
    let error = result.expect_err("refused");
    assert!(
        matches!(error, PublishError::FingerprintMismatch { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&right.to_string()), "{message}");
    assert!(message.contains(&wrong.to_string()), "{message}");
    assert_eq!(hub.registry.live_count(), 0);
    hub.shutdown().await.unwrap();
    let warnings = WARNINGS.lock().unwrap().clone();
    assert!(
        warnings
            .iter()
            .all(|w| !w.contains("impostor-check") && !w.contains("TLS")),
        "{warnings:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_client_on_a_tls_hub_is_cut_off_and_others_keep_streaming() {
    capture_warnings();
    let (hub, fingerprint) = tls_hub().await;
    let good = TestPublisher::start_with(
        hub.ingest_addr,
        "tls-good",
        (64, 48),
        PERIOD,
        10_000,
        pinned(fingerprint),
    )
    .await;
    wait_for(
        "the TLS publisher streams",
        Duration::from_secs(20),
        || async { (frames_of(&hub, "tls-good") >= 5).then_some(()) },
    )
    .await;
    let plain = TestPublisher::start(hub.ingest_addr, "plain", 64, 48, PERIOD, 10_000).await;
    let result = tokio::time::timeout(Duration::from_secs(20), plain.task)
        .await
        .expect("the plain client is cut off")
        .unwrap();
    assert!(result.is_err(), "{result:?}");
    let before = frames_of(&hub, "tls-good");
    wait_for(
        "the TLS publisher still streams",
        Duration::from_secs(20),
        || async { (frames_of(&hub, "tls-good") >= before + 10).then_some(()) },
    )
    .await;
    assert!(hub.registry.snapshot(0).iter().all(|s| s.name != "plain"));
    good.stop.send_replace(true);
    let _ = good.task.await;
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_viewer_watches_a_tls_hub() {
    let (hub, fingerprint) = tls_hub().await;
    let _cam = TestPublisher::start_with(
        hub.ingest_addr,
        "tls-cam",
        (64, 48),
        PERIOD,
        100_000,
        pinned(fingerprint),
    )
    .await;
    let tls = ClientTls::new(TlsTrust::Pinned(fingerprint), "127.0.0.1").unwrap();
    let viewer = vidcast_testkit::TestViewer::start_with(hub.ingest_addr, "", Some(tls)).await;
    wait_for("frames over TLS", Duration::from_secs(10), || async {
        (viewer.snapshot().frames_of("tls-cam") >= 10).then_some(())
    })
    .await;
    hub.shutdown().await.unwrap();
}
