//! Chaos: 20 publishers (each its own `vidcast send` process), killed with SIGKILL at random
//! moments and restarted, and the hub restarted twice (once politely, once with SIGKILL). At the
//! end every publisher is streaming again, the hub's event log accounts for every connect and
//! disconnect, and no frame was ever accepted out of order.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{api, vidcast, Server};

const PUBLISHERS: usize = 20;

struct Publisher {
    name: String,
    child: Child,
}

impl Publisher {
    fn start(name: &str, ingest: &str) -> Self {
        let child = vidcast()
            .args([
                "send", "--name", name, "--width", "160", "--height", "120", "--fps", "10",
            ])
            .args(["--max-backoff", "300ms", ingest])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            name: name.to_owned(),
            child,
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL: no goodbye, possibly mid-frame
        let _ = self.child.wait();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Deterministic pseudo-random numbers, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn hub(ingest: &str) -> (Server, SocketAddr) {
    let mut server = Server::start_with(&["serve", "--listen", ingest, "--http", "127.0.0.1:0"]);
    let http = server.addr_after("web wall on http://");
    (server, http)
}

fn wait_live(http: SocketAddr, want: usize, limit: Duration) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let streams = api(http, "/api/streams");
        let live = streams
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["live"] == true)
            .count();
        if live == want {
            return streams;
        }
        assert!(
            Instant::now() < deadline,
            "{live} of {want} live after {limit:?}: {streams}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn chaos_round(publishers: &mut [Publisher], rng: &mut Rng, kills: usize, ingest: &str) {
    for _ in 0..kills {
        let i = rng.below(publishers.len() as u64) as usize;
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        publishers[i].kill9();
        std::thread::sleep(Duration::from_millis(rng.below(200)));
        let name = publishers[i].name.clone();
        publishers[i] = Publisher::start(&name, ingest);
    }
}

#[test]
fn publishers_and_hub_killed_at_random_all_come_back_in_order() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ingest = format!("127.0.0.1:{port}");
    let mut rng = Rng(0x5eed_cafe_f00d);
    let (mut server, mut http) = hub(&ingest);
    let mut publishers: Vec<Publisher> = (0..PUBLISHERS)
        .map(|i| Publisher::start(&format!("chaos-{i}"), &ingest))
        .collect();
    wait_live(http, PUBLISHERS, Duration::from_secs(60));
    chaos_round(&mut publishers, &mut rng, 8, &ingest);

    // Hub restart 1: polite. Hub restart 2: SIGKILL. Publishers must need nothing.
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        server.signal_and_wait(signal, Duration::from_secs(5));
        (server, http) = hub(&ingest);
        wait_live(http, PUBLISHERS, Duration::from_secs(60));
        chaos_round(&mut publishers, &mut rng, 4, &ingest);
    }

    // Three leave for good.
    for p in publishers.iter_mut().take(3) {
        p.kill9();
    }
    let streams = wait_live(http, PUBLISHERS - 3, Duration::from_secs(30));
    let before: Vec<(String, u64)> = streams
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["frames"].as_u64().unwrap(),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let streams = api(http, "/api/streams");
    for s in streams.as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        assert_eq!(
            s["out_of_order"], 0,
            "{name} had a frame accepted out of order"
        );
        if s["live"] == true {
            let earlier = before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, f)| *f);
            assert!(
                s["frames"].as_u64().unwrap() > earlier,
                "{name} is live but not streaming"
            );
        }
    }
    // The event log of this hub accounts for every connect and disconnect.
    let events = api(http, "/api/events");
    let events = events.as_array().unwrap();
    let connects = events.iter().filter(|e| e["kind"] == "connected").count();
    let disconnects = events
        .iter()
        .filter(|e| e["kind"] == "disconnected")
        .count();
    assert_eq!(connects - disconnects, PUBLISHERS - 3, "{events:?}");
    for name in publishers.iter().take(3).map(|p| &p.name) {
        let last = events
            .iter()
            .rev()
            .find(|e| e["name"] == name.as_str())
            .unwrap();
        assert_eq!(last["kind"], "disconnected", "{name}: {last}");
        assert_eq!(last["orderly"], false, "SIGKILL leaves no goodbye: {last}");
    }
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "events are numbered without gaps"
    );
    server.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
}
