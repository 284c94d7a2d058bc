//! A real browser on the web wall: headless Chromium (Debian's `chromium`) watches 4 publishers
//! (each its own `vidcast send` process), sees moving video under the right labels, and sees a
//! tile go offline when its publisher is killed; H.264 publishers play through WebCodecs.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::{api, vidcast, Server};
use serde_json::Value;
use vidcast_testkit::{wait_for, Browser};

/// Per tile: label text, offline flag, offline note, and a checksum of a pixel sample.
const TILES_JS: &str = r#"
JSON.stringify([...document.querySelectorAll('.tile')].map((t) => {
  const c = t.querySelector('canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let sum = 0, lit = 0;
  for (let i = 0; i < d.length; i += 4 * 97) { sum = (sum * 31 + d[i] + 7 * d[i + 1] + 13 * d[i + 2]) >>> 0; if (d[i] + d[i + 1] + d[i + 2] > 60) lit++; }
  return { label: t.querySelector('.label').textContent, offline: t.classList.contains('offline'),
           note: t.querySelector('.offline-note').textContent, sum, lit };
}))
"#;

struct Publisher(Child);

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn tiles(browser: &mut Browser) -> Vec<Value> {
    let text = browser.eval(TILES_JS).await;
    serde_json::from_str(text.as_str().unwrap_or("[]")).unwrap_or_default()
}

/// Reads the tiles every 100 ms until `done` accepts them, or panics with `what`.
async fn poll_tiles<T>(
    browser: &mut Browser,
    what: &str,
    limit: Duration,
    mut done: impl FnMut(Vec<Value>) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let now = tiles(browser).await;
        let shown = format!("{now:?}");
        if let Some(v) = done(now) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; tiles: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every tile of `first` shows other pixels than it did then.
async fn wait_until_every_tile_changes(browser: &mut Browser, first: &[Value]) {
    poll_tiles(
        browser,
        "every tile to change",
        Duration::from_secs(15),
        |now| {
            first
                .iter()
                .all(|a| {
                    now.iter()
                        .any(|b| b["label"] == a["label"] && b["sum"] != a["sum"])
                })
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_shows_every_stream_moving_with_labels_and_greys_out_a_dead_one() {
    let Some(chromium) = vidcast_testkit::chromium() else {
        return;
    };
    let mut server = Server::start();
    let ingest = server.addr_after("hub listening for clients on ");
    let http = server.addr_after("web wall on http://");
    let mut publishers: Vec<Publisher> = (1..=4)
        .map(|i| {
            Publisher(
                vidcast()
                    .args([
                        "send",
                        "--name",
                        &format!("wall-cam-{i}"),
                        "--width",
                        "320",
                        "--height",
                        "240",
                    ])
                    .args(["--fps", "15", &ingest.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn send"),
            )
        })
        .collect();
    wait_for("4 live streams", Duration::from_secs(20), || async {
        let streams = tokio::task::spawn_blocking(move || api(http, "/api/streams"))
            .await
            .ok()?;
        (streams
            .as_array()?
            .iter()
            .filter(|s| s["live"] == true)
            .count()
            == 4)
            .then_some(())
    })
    .await;
    let streams = tokio::task::spawn_blocking(move || api(http, "/api/streams"))
        .await
        .unwrap();

    let mut browser = Browser::launch(&chromium).await;
    browser.navigate(&format!("http://{http}/")).await;
    let first = poll_tiles(
        &mut browser,
        "4 tiles with pictures",
        Duration::from_secs(30),
        |t| (t.len() == 4 && t.iter().all(|t| t["lit"].as_u64() > Some(10))).then_some(t),
    )
    .await;
    // Every label names its client's address and name, as the hub knows them.
    for s in streams.as_array().unwrap() {
        let peer = s["peer"].as_str().unwrap();
        let name = s["name"].as_str().unwrap();
        assert!(
            first
                .iter()
                .any(|t| t["label"] == format!("CLIENT: {peer}{name}")),
            "no tile labelled {peer} {name}: {first:?}"
        );
    }
    // The pictures move: every tile's pixels change.
    wait_until_every_tile_changes(&mut browser, &first).await;

    // Clicking a tile enlarges it alone; Escape brings the wall back.
    let enlarged = browser
        .eval(
            "document.querySelector('.tile').click(); \
             [document.getElementById('wall').classList.contains('enlarged'), \
              [...document.querySelectorAll('.tile')].filter(t => getComputedStyle(t).display !== 'none').length]",
        )
        .await;
    assert_eq!(enlarged, serde_json::json!([true, 1]));
    let restored = browser
        .eval(
            "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'})); \
             [document.getElementById('wall').classList.contains('enlarged'), \
              [...document.querySelectorAll('.tile')].filter(t => getComputedStyle(t).display !== 'none').length]",
        )
        .await;
    assert_eq!(restored, serde_json::json!([false, 4]));

    // The network view opens on a tile and draws its four graphs from the hub's TCP samples.
    browser
        .eval("document.querySelector('.tile .net-button').click(); true")
        .await;
    let mut drawn = Value::Null;
    for _ in 0..50 {
        drawn = browser
            .eval(
                "[...document.querySelectorAll('.tile.net-open .net canvas')].map((c) => Number(c.dataset.points || 0))",
            )
            .await;
        let counts: Vec<u64> = drawn
            .as_array()
            .map_or(vec![], |a| a.iter().filter_map(Value::as_u64).collect());
        if counts.len() == 4 && counts.iter().all(|&points| points >= 4) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counts: Vec<u64> = drawn
        .as_array()
        .map_or(vec![], |a| a.iter().filter_map(Value::as_u64).collect());
    assert!(
        counts.len() == 4 && counts.iter().all(|&points| points >= 4),
        "net graphs not drawn: {drawn}"
    );
    browser
        .eval("document.querySelector('.tile .net-button').click(); true")
        .await;

    // Kill one publisher outright: its tile stays, greyed, "offline since …".
    let victim = streams
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "wall-cam-2")
        .unwrap()
        .clone();
    let victim_label = format!(
        "CLIENT: {}{}",
        victim["peer"].as_str().unwrap(),
        "wall-cam-2"
    );
    drop(publishers.remove(1));
    let offline = poll_tiles(
        &mut browser,
        "the killed client's tile to go offline",
        Duration::from_secs(15),
        |now| {
            now.into_iter()
                .find(|t| t["label"] == victim_label && t["offline"] == true)
        },
    )
    .await;
    assert!(
        offline["note"]
            .as_str()
            .unwrap_or("")
            .starts_with("offline since"),
        "{offline}"
    );
    let now = tiles(&mut browser).await;
    assert_eq!(now.len(), 4);
    assert_eq!(
        now.iter().filter(|t| t["offline"] == true).count(),
        1,
        "{now:?}"
    );
    server.wait_line("\"wall-cam-2\" disconnected", Duration::from_secs(5));
}

/// H.264 publishers on the wall: Chromium's WebCodecs decodes them, the tiles move, and no
/// decoder ever fails (the hub only sends an unbroken chain from a keyframe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_plays_h264_streams_with_webcodecs() {
    let Some(chromium) = vidcast_testkit::chromium() else {
        return;
    };
    let mut server = Server::start();
    let ingest = server.addr_after("hub listening for clients on ");
    let http = server.addr_after("web wall on http://");
    let _publishers: Vec<Publisher> = (1..=2)
        .map(|i| {
            Publisher(
                vidcast()
                    .args([
                        "send",
                        "--codec",
                        "h264",
                        "--name",
                        &format!("h264-cam-{i}"),
                    ])
                    .args(["--width", "320", "--height", "240", "--fps", "15"])
                    .arg(ingest.to_string())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn send"),
            )
        })
        .collect();
    wait_for("2 live H.264 streams", Duration::from_secs(20), || async {
        let streams = tokio::task::spawn_blocking(move || api(http, "/api/streams"))
            .await
            .ok()?;
        let streams = streams.as_array()?;
        (streams
            .iter()
            .filter(|s| s["live"] == true && s["codec"] == "h264")
            .count()
            == 2)
            .then_some(())
    })
    .await;
    let mut browser = Browser::launch(&chromium).await;
    browser.navigate(&format!("http://{http}/")).await;
    let first = poll_tiles(
        &mut browser,
        "2 H.264 tiles with pictures",
        Duration::from_secs(30),
        |t| (t.len() == 2 && t.iter().all(|t| t["lit"].as_u64() > Some(10))).then_some(t),
    )
    .await;
    wait_until_every_tile_changes(&mut browser, &first).await;
    // 15 fps for 4 s: most pictures should be drawn, not only keyframes.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let decoded = browser
        .eval("JSON.stringify([...tiles.values()].map((t) => [t.drawn, t.h264Errors || 0]))")
        .await;
    let decoded: Vec<(u64, u64)> = serde_json::from_str(decoded.as_str().unwrap()).unwrap();
    eprintln!("H.264 tiles (pictures drawn, decoder errors): {decoded:?}");
    assert!(
        decoded
            .iter()
            .all(|&(drawn, errors)| drawn >= 40 && errors == 0),
        "{decoded:?}"
    );
    let transcoding = move || async move {
        let streams = tokio::task::spawn_blocking(move || api(http, "/api/streams"))
            .await
            .ok()?;
        let on: Vec<bool> = streams
            .as_array()?
            .iter()
            .map(|s| s["jpeg_transcoding"] == true)
            .collect();
        Some(on)
    };
    assert_eq!(
        transcoding().await,
        Some(vec![false, false]),
        "WebCodecs needs no transcoding"
    );

    // A browser without H.264 (forced here) gets the H.264 streams as JPEG from the hub.
    browser
        .navigate(&format!("http://{http}/?decoder=jpeg"))
        .await;
    let first = poll_tiles(
        &mut browser,
        "2 transcoded tiles with pictures",
        Duration::from_secs(30),
        |t| (t.len() == 2 && t.iter().all(|t| t["lit"].as_u64() > Some(10))).then_some(t),
    )
    .await;
    wait_until_every_tile_changes(&mut browser, &first).await;
    assert_eq!(transcoding().await, Some(vec![true, true]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let drawn = browser
        .eval("JSON.stringify([...tiles.values()].map((t) => [t.drawn, t.h264 ? 1 : 0]))")
        .await;
    let drawn: Vec<(u64, u64)> = serde_json::from_str(drawn.as_str().unwrap()).unwrap();
    eprintln!("transcoded tiles (pictures drawn, H.264 decoders): {drawn:?}");
    assert!(
        drawn
            .iter()
            .all(|&(pictures, decoders)| pictures >= 15 && decoders == 0),
        "15 fps for 2 s, all as JPEG: {drawn:?}"
    );
    // Nobody needs JPEG any more: the hub stops transcoding.
    browser.navigate("about:blank").await;
    wait_for(
        "transcoding to stop with its last viewer",
        Duration::from_secs(10),
        || async { (transcoding().await? == [false, false]).then_some(()) },
    )
    .await;
}

/// A publisher that adapts to a slow link says so on its tile, with the link rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tile_says_when_its_publisher_adapts_to_a_slow_link() {
    let Some(chromium) = vidcast_testkit::chromium() else {
        return;
    };
    let hub = vidcast_testkit::start_hub(vidcast_hub::HubOptions::default()).await;
    let report = vidcast_proto::Message::EncoderReport(vidcast_proto::EncoderReport {
        level: 3,
        quality: 40,
        fps_milli: 20_000,
        width: 64,
        height: 64,
        link_bps: 4_800_000,
    });
    let _peer = publish_one_jpeg(hub.ingest_addr, "slow-link", Some(report)).await;

    let mut browser = Browser::launch(&chromium).await;
    browser
        .navigate(&format!("http://{}/", hub.http_addr.unwrap()))
        .await;
    let js = "(() => { const a = document.querySelector('.tile .adapt'); return a && !a.hidden ? a.textContent : ''; })()";
    eval_until(
        &mut browser,
        js,
        "adapting: link 4.8 Mbit/s",
        "no adapting note on the tile",
    )
    .await;
}

/// A raw publisher that sends `first` (if any) and then one 64x64 JPEG frame; keep it to
/// keep the stream live.
async fn publish_one_jpeg(
    hub: std::net::SocketAddr,
    name: &str,
    first: Option<vidcast_proto::Message>,
) -> vidcast_testkit::RawPeer {
    let mut peer = vidcast_testkit::RawPeer::connect(hub).await;
    peer.handshake(name).await;
    let mut buf = bytes::BytesMut::new();
    if let Some(message) = first {
        message.encode(&mut buf);
    }
    vidcast_proto::Message::Frame(vidcast_proto::Frame {
        seq: 0,
        capture_us: 1,
        is_keyframe: true,
        data: vidcast_testkit::jpeg(64, 64),
    })
    .encode(&mut buf);
    peer.send(&buf).await;
    peer
}

/// Evaluates `js` until it gives `expected`, for at most 20 s.
async fn eval_until(browser: &mut Browser, js: &str, expected: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let value = browser.eval(js).await;
        if value == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: last saw {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With `--record`, each tile has a "rec" button that stops and restarts its recording.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rec_button_stops_and_starts_a_streams_recording() {
    let Some(chromium) = vidcast_testkit::chromium() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("vidcast-rec-button-{}", std::process::id()));
    let options = vidcast_hub::HubOptions {
        record: Some(vidcast_record::RecordConfig {
            dir: dir.clone(),
            segment: Duration::from_secs(600),
            keep: vidcast_record::Keep::default(),
            only: Vec::new(),
        }),
        ..vidcast_hub::HubOptions::default()
    };
    let hub = vidcast_testkit::start_hub(options).await;
    let _peer = publish_one_jpeg(hub.ingest_addr, "rec-button", None).await;

    let http = hub.http_addr.unwrap();
    let mut browser = Browser::launch(&chromium).await;
    browser.navigate(&format!("http://{http}/")).await;
    let button = "(() => { const b = document.querySelector('.tile .rec-button'); return b && !b.hidden ? b.textContent : ''; })()";
    eval_until(
        &mut browser,
        button,
        "\u{25cf} rec",
        "the tile shows recording",
    )
    .await;
    for (shown, on) in [("rec off", false), ("\u{25cf} rec", true)] {
        browser
            .eval("document.querySelector('.tile .rec-button').click(); true")
            .await;
        eval_until(&mut browser, button, shown, "the button toggles recording").await;
        let streams = vidcast_testkit::http::get_json(http, "/api/streams", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(streams[0]["recording"]["on"], on, "{streams}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
