//! Streams addressed by name as well as id, offline streams dismissed, the favicon: the
//! hub's HTTP port on 127.0.0.1.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vidcast_hub::HubOptions;
use vidcast_testkit::{api_streams, start_hub, wait_for, TestPublisher};

const PERIOD: Duration = Duration::from_millis(33);
const LIMIT: Duration = Duration::from_secs(5);

async fn get(http: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    vidcast_testkit::http::get(http, path, LIMIT).await.unwrap()
}

/// `DELETE path`; the status and the body.
async fn delete(http: SocketAddr, path: &str) -> (u16, String) {
    let mut socket = tokio::net::TcpStream::connect(http).await.unwrap();
    let request = format!("DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(LIMIT, socket.read_to_end(&mut answer))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    (status, answer)
}

async fn frames_of(hub: &vidcast_hub::RunningHub, name: &str) -> u64 {
    wait_for(&format!("frames of {name}"), LIMIT, || async {
        api_streams(hub)
            .await
            .iter()
            .find(|s| s["name"] == name)
            .and_then(|s| s["frames"].as_u64())
            .filter(|&f| f > 0)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_reached_by_name_or_id_and_an_id_wins_over_a_name_of_digits() {
    let hub = start_hub(HubOptions::default()).await;
    let http = hub.http_addr.unwrap();
    let _kitchen =
        TestPublisher::start(hub.ingest_addr, "cam-kitchen", 64, 48, PERIOD, 10_000).await;
    frames_of(&hub, "cam-kitchen").await;
    // Stream 2, named "1": "/1" is stream 1 (an id wins); "/2" is itself.
    let _digits = TestPublisher::start(hub.ingest_addr, "1", 32, 32, PERIOD, 10_000).await;
    frames_of(&hub, "1").await;
    // A name of digits no stream has as its id is reached by name.
    let _far = TestPublisher::start(hub.ingest_addr, "4711", 32, 32, PERIOD, 10_000).await;
    frames_of(&hub, "4711").await;

    let one = |path: &'static str| async move {
        let (status, body) = get(http, path).await;
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
    };
    let by_name = one("/api/streams/cam-kitchen").await;
    assert_eq!(
        (by_name["id"].as_u64(), by_name["width"].as_u64()),
        (Some(1), Some(64))
    );
    assert_eq!(one("/api/streams/1").await["name"], "cam-kitchen");
    assert_eq!(one("/api/streams/2").await["name"], "1");
    assert_eq!(one("/api/streams/4711").await["id"], 3);
    assert_eq!(get(http, "/api/streams/nobody").await.0, 404);
    assert_eq!(get(http, "/api/streams/99").await.0, 404);

    // The per-stream URLs take a name too.
    let (status, picture) = get(http, "/streams/cam-kitchen.jpg").await;
    assert_eq!(status, 200);
    assert_eq!(vidcast_hub::jpeg_dimensions(&picture), Some((64, 48)));
    let mut reader = vidcast_client::mjpeg::MjpegReader::open(http, "/streams/cam-kitchen.mjpg")
        .await
        .unwrap();
    let picture = tokio::time::timeout(LIMIT, reader.next_picture())
        .await
        .expect("a picture within 5 s")
        .unwrap();
    assert_eq!(vidcast_hub::jpeg_dimensions(&picture), Some((64, 48)));
    let (status, body) = get(http, "/api/streams/cam-kitchen/net").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(get(http, "/streams/nobody.mjpg").await.0, 404);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_streams_are_dismissed_one_or_all_and_live_ones_stay() {
    let hub = start_hub(HubOptions::default()).await;
    let http = hub.http_addr.unwrap();
    let mut gone = Vec::new();
    for name in ["a", "b", "c"] {
        gone.push(TestPublisher::start(hub.ingest_addr, name, 32, 32, PERIOD, 10_000).await);
        frames_of(&hub, name).await;
    }
    let _stays = TestPublisher::start(hub.ingest_addr, "live", 32, 32, PERIOD, 10_000).await;
    frames_of(&hub, "live").await;
    assert_eq!(delete(http, "/api/streams/live").await.0, 409);
    for publisher in &gone {
        publisher.stop.send_replace(true);
    }
    wait_for("a, b and c offline", LIMIT, || async {
        let streams = api_streams(&hub).await;
        (streams.iter().filter(|s| s["live"] == false).count() == 3).then_some(())
    })
    .await;
    let (status, answer) = delete(http, "/api/streams/a").await;
    assert_eq!(status, 204, "{answer}");
    assert_eq!(delete(http, "/api/streams/a").await.0, 404);
    let (status, answer) = delete(http, "/api/streams").await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("{\"forgotten\":2}"), "{answer}");
    let names: Vec<_> = api_streams(&hub)
        .await
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, ["live"]);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_has_a_favicon() {
    let hub = start_hub(HubOptions::default()).await;
    let http = hub.http_addr.unwrap();
    for path in ["/favicon.ico", "/favicon.svg"] {
        let (status, body) = get(http, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(String::from_utf8_lossy(&body).starts_with("<svg"), "{path}");
    }
    let (_, page) = get(http, "/").await;
    assert!(String::from_utf8_lossy(&page).contains("rel=\"icon\""));
    hub.shutdown().await.unwrap();
}

/// A hub with `state_dir` on 127.0.0.1:0.
async fn hub_remembering(state_dir: &std::path::Path) -> vidcast_hub::RunningHub {
    start_hub(HubOptions {
        state_dir: Some(state_dir.to_owned()),
        ..HubOptions::default()
    })
    .await
}

async fn id_of(hub: &vidcast_hub::RunningHub, name: &str) -> u64 {
    frames_of(hub, name).await;
    let streams = api_streams(hub).await;
    streams.iter().find(|s| s["name"] == name).unwrap()["id"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_client_keeps_its_id_across_a_hub_restart() {
    let state = std::env::temp_dir().join(format!("vidcast-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let hub = hub_remembering(&state).await;
    let first = TestPublisher::start(hub.ingest_addr, "porch", 32, 32, PERIOD, 10_000).await;
    let second = TestPublisher::start(hub.ingest_addr, "yard", 32, 32, PERIOD, 10_000).await;
    assert_eq!(
        (id_of(&hub, "porch").await, id_of(&hub, "yard").await),
        (1, 2)
    );
    drop((first, second));
    hub.shutdown().await.unwrap();
    let file = state.join(vidcast_hub::STREAM_IDS_FILE);
    let saved = wait_for("the state file", LIMIT, || async {
        std::fs::read_to_string(&file)
            .ok()
            .filter(|s| s.lines().count() == 2)
    })
    .await;
    assert_eq!(saved, "1\tporch\n2\tyard\n");

    // The next hub: "yard" comes back first and still is stream 2; a new name gets 3.
    let hub = hub_remembering(&state).await;
    let _yard = TestPublisher::start(hub.ingest_addr, "yard", 32, 32, PERIOD, 10_000).await;
    assert_eq!(id_of(&hub, "yard").await, 2);
    let _new = TestPublisher::start(hub.ingest_addr, "attic", 32, 32, PERIOD, 10_000).await;
    assert_eq!(id_of(&hub, "attic").await, 3);
    let (status, _) = get(hub.http_addr.unwrap(), "/streams/2.jpg").await;
    assert_eq!(status, 200, "the saved URL of yard works");
    hub.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&state);
}
