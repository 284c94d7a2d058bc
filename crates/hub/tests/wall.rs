//! The web wall as a person sees it: headless Chromium shows 1, 5 and 9 tiles at two window
//! sizes. No tile's name is clipped (measured in the DOM), the tiles cover most of the wall
//! (no empty half-screen), each event is listed once, and a screenshot of each goes to
//! `target/tmp/wall-screenshots/` for a human to look at. Chromium is required under CI=true.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use serde_json::Value;
use vidcast_hub::HubOptions;
use vidcast_testkit::{start_hub, Browser, TestPublisher};

const PERIOD: Duration = Duration::from_millis(100);
/// Names as people give cameras; the longest fits a narrow tile once the address gives way.
const NAMES: [&str; 9] = [
    "cam-kitchen",
    "front-door",
    "garage",
    "garden-north",
    "pi-livingroom",
    "office",
    "baby",
    "driveway-east",
    "shed",
];
const SIZES: [(u32, u32); 2] = [(1280, 720), (800, 1000)];

/// Every tile's name and whether it is cut (scrollWidth over clientWidth), and how much of
/// the wall the tiles cover.
const MEASURE: &str = r#"(() => {
  const wallEl = document.getElementById('wall');
  if (!wallEl || document.readyState !== 'complete') return '{}';
  const wall = wallEl.getBoundingClientRect();
  const tiles = [...document.querySelectorAll('.tile')].map((t) => {
    const name = t.querySelector('.label b');
    const r = t.getBoundingClientRect();
    return { name: name.textContent, clipped: name.scrollWidth > name.clientWidth,
             area: r.width * r.height, drawn: t.querySelector('canvas').width > 0 };
  });
  const covered = tiles.reduce((sum, t) => sum + t.area, 0) / (wall.width * wall.height);
  const events = document.querySelectorAll('#event-list li').length;
  return JSON.stringify({ tiles, covered, events });
})()"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_with_1_5_and_9_tiles_clips_no_name_and_fills_the_window() {
    let Some(chromium) = vidcast_testkit::chromium() else {
        return;
    };
    let hub = start_hub(HubOptions::default()).await;
    let http = hub.http_addr.unwrap();
    let mut browser = Browser::launch(&chromium).await;
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("wall-screenshots");
    let mut publishers = Vec::new();
    for count in [1, 5, 9] {
        while publishers.len() < count {
            let name = NAMES[publishers.len()];
            publishers
                .push(TestPublisher::start(hub.ingest_addr, name, 64, 48, PERIOD, 100_000).await);
        }
        for (width, height) in SIZES {
            browser.set_viewport(width, height).await;
            browser.navigate(&format!("http://{http}/")).await;
            let seen = measure_when(&mut browser, count, &format!("{width}x{height}")).await;
            let path = shots.join(format!("wall-{count}-{width}x{height}.png"));
            browser.screenshot(&path).await;
            let at = format!("{count} tiles at {width}x{height} ({})", path.display());
            for tile in seen["tiles"].as_array().unwrap() {
                assert_eq!(tile["clipped"], false, "{at}: name cut: {tile}");
            }
            // One "connected" line per publisher: none shown twice.
            assert_eq!(seen["events"], count, "{at}: events listed {seen}");
            let covered = seen["covered"].as_f64().unwrap();
            // 5 tiles on a 3x2 grid leave one cell of six empty, less the gaps.
            assert!(
                covered > 0.6,
                "{at}: tiles cover {:.0} % of the wall",
                covered * 100.0
            );
        }
    }
    hub.shutdown().await.unwrap();
}

/// Measures the wall once it shows `count` tiles (polled every 100 ms for at most 15 s).
async fn measure_when(browser: &mut Browser, count: usize, size: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = browser.eval(MEASURE).await;
        let seen: Value = serde_json::from_str(text.as_str().unwrap()).unwrap();
        let events = seen["events"].as_u64().unwrap_or(0) as usize;
        if seen["tiles"].as_array().map(Vec::len) == Some(count) && events >= count {
            return seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{count} tiles at {size} not shown within 15 s; last saw {seen}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
