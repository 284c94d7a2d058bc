//! Hostile peers against a real `vidcast serve` process: one test per attack the outside
//! attack run found (issue "one bad peer must never take the hub down"), each asserting that
//! the hub stays up, its memory stays under a stated bound during the attack, the attacker's
//! connections are closed (counted in `/metrics`), and four real publishers (`vidcast send`
//! processes, 320x240 JPEG at 30 fps) keep at least 25 fps on the same two cores throughout.
//!
//! Attackers connect from 127.0.0.2 and up, real clients from 127.0.0.1, so per-address limits
//! bite the attacker only. Descriptor attacks run the hub under `prlimit --nofile=1024`. Every
//! loop is bounded in count and time. The cases run one at a time (they measure each other's
//! CPU otherwise).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{vidcast, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use vidcast_proto::{Frame, Message, Ping, Role, MAGIC};
use vidcast_testkit::wait_until_seen;

/// One case at a time: each measures the publishers' frame rate on a shared machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const PUBLISHERS: usize = 4;
/// The frame rate every real publisher must keep during an attack (they send 30).
const MIN_FPS: f64 = 25.0;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A `vidcast serve` process under a descriptor limit, and what it costs.
struct Hub {
    server: Server,
    ingest: SocketAddr,
    http: SocketAddr,
    pid: u32,
}

impl Hub {
    /// `prlimit --nofile=NOFILE vidcast serve` on 127.0.0.1 with `extra` arguments.
    fn start(nofile: u32, extra: &[&str]) -> Self {
        let prlimit = which("prlimit");
        let limit = format!("--nofile={nofile}:{nofile}");
        let child = std::process::Command::new(prlimit)
            .arg(&limit)
            .arg(env!("CARGO_BIN_EXE_vidcast"))
            .args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn prlimit vidcast serve");
        let pid = child.id();
        let mut server = {
            let mut child = child;
            let stderr = child.stderr.take().unwrap();
            Server::follow(child, stderr)
        };
        let http = server.addr_after("web wall on http://");
        let ingest = server.addr_after("hub listening for clients on ");
        Self {
            server,
            ingest,
            http,
            pid,
        }
    }

    fn rss_mib(&self) -> f64 {
        rss_kib(self.pid).unwrap_or(0) as f64 / 1024.0
    }

    fn assert_alive(&mut self) {
        assert!(
            self.server.child.try_wait().unwrap().is_none(),
            "the hub died; its log:\n{}",
            self.server.log()
        );
    }

    /// One sample of `vidcast_limit_hits_total{limit="NAME"}` (0 when absent).
    fn hits(&self, limit: &str) -> u64 {
        let text = metrics(self.http);
        let needle = format!("vidcast_limit_hits_total{{limit=\"{limit}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&needle))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }
}

fn which(tool: &str) -> String {
    for dir in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        let path = format!("{dir}/{tool}");
        if std::path::Path::new(&path).exists() {
            return path;
        }
    }
    panic!("{tool} is needed (util-linux)");
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Samples a process's RSS every 50 ms and keeps the peak, until dropped.
struct RssPeak {
    stop: Arc<AtomicBool>,
    peak_kib: Arc<AtomicU64>,
}

impl RssPeak {
    fn watch(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_kib = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
        let (s, p) = (Arc::clone(&stop), Arc::clone(&peak_kib));
        std::thread::spawn(move || {
            // Bounded: at most ten minutes of samples.
            for _ in 0..12_000 {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                if let Some(kib) = rss_kib(pid) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Self { stop, peak_kib }
    }

    fn peak_mib(&self) -> f64 {
        self.peak_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for RssPeak {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `GET path` on the web port from 127.0.0.1: status and body.
fn http_get(http: SocketAddr, path: &str, limit: Duration) -> io::Result<(u16, Vec<u8>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(vidcast_testkit::http::get(http, path, limit))
}

fn metrics(http: SocketAddr) -> String {
    let (status, body) = http_get(http, "/metrics", Duration::from_secs(5)).expect("/metrics");
    assert_eq!(status, 200);
    String::from_utf8_lossy(&body).into_owned()
}

fn streams(http: SocketAddr) -> Vec<serde_json::Value> {
    let (status, body) =
        http_get(http, "/api/streams", Duration::from_secs(5)).expect("/api/streams answers");
    assert_eq!(status, 200);
    serde_json::from_slice(&body).expect("JSON")
}

/// Frames received so far per live stream whose name starts with "real-".
fn real_frames(http: SocketAddr) -> HashMap<String, u64> {
    streams(http)
        .iter()
        .filter(|s| s["live"] == true)
        .filter_map(|s| {
            let name = s["name"].as_str()?;
            name.starts_with("real-")
                .then(|| (name.to_owned(), s["frames"].as_u64().unwrap_or(0)))
        })
        .collect()
}

/// `vidcast send` processes (the four real publishers, or one newcomer), killed on drop.
struct Publishers {
    children: Vec<Child>,
}

impl Publishers {
    fn start(hub: &Hub) -> Self {
        let ingest = hub.ingest.to_string();
        let children = (0..PUBLISHERS)
            .map(|i| {
                vidcast()
                    .args(["send", "--name", &format!("real-{i}"), "--codec", "jpeg"])
                    .args(["--width", "320", "--height", "240", "--fps", "30"])
                    .args(["--no-adapt", "--max-backoff", "300ms", &ingest])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn vidcast send")
            })
            .collect();
        let publishers = Self { children };
        wait_until_seen(
            "the publishers to start (30 frames each)",
            Duration::from_secs(20),
            Duration::from_millis(200),
            || {
                let frames = real_frames(hub.http);
                if frames.len() == PUBLISHERS && frames.values().all(|&f| f >= 30) {
                    Ok(())
                } else {
                    Err(frames)
                }
            },
        );
        publishers
    }
}

impl Drop for Publishers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `attack` while measuring the real publishers; asserts each kept `MIN_FPS` over the
/// attack and the hub's RSS stayed below `baseline + max_growth_mib`. Returns the attack's value.
fn under_attack<T>(
    hub: &mut Hub,
    max_growth_mib: f64,
    what: &str,
    attack: impl FnOnce(&Hub) -> T,
) -> T {
    let baseline = hub.rss_mib();
    let peak = RssPeak::watch(hub.pid);
    let before = real_frames(hub.http);
    let started = Instant::now();
    let value = attack(hub);
    // At least three seconds of publishing to measure, however quickly the hub won.
    let window = Duration::from_secs(3);
    if let Some(rest) = window.checked_sub(started.elapsed()) {
        std::thread::sleep(rest);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = real_frames(hub.http);
    hub.assert_alive();
    let peak_mib = peak.peak_mib();
    eprintln!(
        "{what}: hub RSS {baseline:.0} MiB before, peak {peak_mib:.0} MiB; over {elapsed:.1} s publishers went {before:?} -> {after:?}"
    );
    assert!(
        peak_mib <= baseline + max_growth_mib,
        "{what}: hub RSS peaked at {peak_mib:.0} MiB, baseline {baseline:.0} MiB, bound +{max_growth_mib} MiB"
    );
    for (name, start) in &before {
        let end = after.get(name).copied().unwrap_or(0);
        let fps = end.saturating_sub(*start) as f64 / elapsed;
        assert!(
            fps >= MIN_FPS,
            "{what}: publisher {name} got {fps:.1} fps during the attack (want >= {MIN_FPS})"
        );
    }
    value
}

/// Connects from `source` (any 127/8 address) to `to`.
async fn connect_from(source: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    tokio::time::timeout(Duration::from_secs(3), socket.connect(to))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
}

fn attacker(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

/// Whether the hub closes `stream` within `limit` (reads until EOF or an error; what it
/// reads is thrown away).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// How many of `streams` the hub closes within `limit` (all watched at once).
async fn count_closed(streams: Vec<TcpStream>, limit: Duration) -> usize {
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|mut s| tokio::spawn(async move { closed_within(&mut s, limit).await }))
        .collect();
    let mut closed = 0;
    for task in tasks {
        if task.await.unwrap_or(false) {
            closed += 1;
        }
    }
    closed
}

fn hello_bytes(name: &str, role: Role) -> BytesMut {
    let mut hello = vidcast_testkit::hello(name, 64, 64);
    hello.role = role;
    if role == Role::Viewer {
        hello.width = 0;
        hello.height = 0;
    }
    let mut buf = BytesMut::from(&MAGIC[..]);
    Message::Hello(hello).encode(&mut buf);
    buf
}

/// Magic + hello as `role`, and the welcome read (anything else: `Err`).
async fn handshake(
    source: IpAddr,
    to: SocketAddr,
    name: &str,
    role: Role,
) -> io::Result<TcpStream> {
    let mut stream = connect_from(source, to).await?;
    stream.write_all(&hello_bytes(name, role)).await?;
    let mut decoder = vidcast_proto::Decoder::new(1 << 20);
    let mut inbuf = BytesMut::new();
    let welcomed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if stream.read_buf(&mut inbuf).await? == 0 {
                return Err(io::Error::other("closed during the handshake"));
            }
            while let Some(m) = decoder.decode(&mut inbuf).map_err(io::Error::other)? {
                match m {
                    Message::Welcome(_) => return Ok(()),
                    Message::Reject(r) => return Err(io::Error::other(r.reason)),
                    _ => {}
                }
            }
        }
    })
    .await;
    match welcomed {
        Ok(Ok(())) => Ok(stream),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no welcome")),
    }
}

/// A real publisher can still join (a fifth `vidcast send`, live within `limit`).
fn a_new_publisher_gets_in(hub: &Hub, name: &str, limit: Duration) {
    a_new_publisher_joins(hub.ingest, hub.http, name, limit);
}

fn a_new_publisher_joins(ingest: SocketAddr, http: SocketAddr, name: &str, limit: Duration) {
    let child = vidcast()
        .args(["send", "--name", name, "--codec", "jpeg", "--width", "160"])
        .args(["--height", "120", "--fps", "10", &ingest.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed on return or on the wait's panic.
    let _publisher = Publishers {
        children: vec![child],
    };
    wait_until_seen(
        &format!("a new publisher {name:?} to get in (live, over 3 frames)"),
        limit,
        Duration::from_millis(200),
        || match http_get(http, "/api/streams", Duration::from_secs(3)) {
            Ok((200, body)) => {
                let list: Vec<serde_json::Value> =
                    serde_json::from_slice(&body).unwrap_or_default();
                let entry = list.into_iter().find(|s| s["name"] == name);
                match entry {
                    Some(s) if s["live"] == true && s["frames"].as_u64() > Some(3) => Ok(()),
                    Some(s) => Err(s.to_string()),
                    None => Err("not listed".to_owned()),
                }
            }
            Ok((status, _)) => Err(format!("/api/streams answered HTTP {status}")),
            Err(e) => Err(format!("/api/streams: {e}")),
        },
    );
}

fn healthz_answers(hub: &Hub) {
    let answered = http_get(hub.http, "/healthz", Duration::from_secs(5));
    assert!(
        matches!(answered, Ok((200, _))),
        "/healthz did not answer during the attack: {answered:?}"
    );
}

// 1. Control replies without bound.
#[test]
fn peers_that_ping_and_never_read_are_closed_without_costing_memory() {
    let _serial = serial();
    let mut hub = Hub::start(1024, &[]);
    let _publishers = Publishers::start(&hub);
    let rt = runtime();
    let closed = under_attack(&mut hub, 150.0, "ping flood, never reading", |hub| {
        rt.block_on(async {
            let mut conns = Vec::new();
            for i in 0..8 {
                let role = if i % 2 == 0 {
                    Role::Publisher
                } else {
                    Role::Viewer
                };
                conns.push(
                    handshake(attacker(2), hub.ingest, &format!("pinger-{i}"), role)
                        .await
                        .unwrap(),
                );
            }
            let mut pings = BytesMut::new();
            for n in 0..2000u64 {
                Message::Ping(Ping { sent_us: n }).encode(&mut pings);
            }
            let pings = pings.freeze();
            // Each writes pings for at most 6 s and never reads; a write error means closed.
            let tasks: Vec<_> = conns
                .into_iter()
                .map(|mut s| {
                    let pings = pings.clone();
                    tokio::spawn(async move {
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
                        for _ in 0..1_000_000 {
                            let write = tokio::time::timeout_at(deadline, s.write_all(&pings));
                            match write.await {
                                Ok(Ok(())) => {}
                                Ok(Err(_)) => return true,
                                Err(_) => return false,
                            }
                        }
                        false
                    })
                })
                .collect();
            let mut closed = 0;
            for t in tasks {
                closed += usize::from(t.await.unwrap_or(false));
            }
            closed
        })
    });
    if closed != 8 {
        let log = hub.server.log();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("pinger")).collect();
        panic!("only {closed} of 8 pingers that never read were disconnected; hub log: {lines:#?}");
    }
    // Each is closed with a reason in the log (a ping flood, or not reading).
    let log = hub.server.log();
    let reasons = log
        .lines()
        .filter(|l| l.contains("pinger") && (l.contains("ping flood") || l.contains("not reading")))
        .count();
    assert_eq!(reasons, 8, "a logged reason for each pinger:\n{log}");
}

// 2. Legacy connections that say ten bytes and go silent.
#[test]
fn silent_legacy_connections_are_closed_and_cannot_lock_out_anyone() {
    let _serial = serial();
    let mut hub = Hub::start(1024, &[]);
    let _publishers = Publishers::start(&hub);
    let rt = runtime();
    // Length 100 (u64 LE) + PROTO 4: the original client's first ten bytes.
    let mut first = 100u64.to_le_bytes().to_vec();
    first.extend_from_slice(&[0x80, 0x04]);
    let (opened, closed) =
        under_attack(&mut hub, 150.0, "1 100 silent legacy connections", |hub| {
            rt.block_on(async {
                let mut conns = Vec::new();
                for _ in 0..1100 {
                    if let Ok(mut s) = connect_from(attacker(2), hub.ingest).await {
                        if s.write_all(&first).await.is_ok() {
                            conns.push(s);
                        }
                    }
                }
                let opened = conns.len();
                // While they are held: the web side and a new publisher still get in.
                let hub_http = hub.http;
                tokio::task::spawn_blocking(move || {
                    let answered = http_get(hub_http, "/healthz", Duration::from_secs(5));
                    assert!(matches!(answered, Ok((200, _))), "/healthz: {answered:?}");
                })
                .await
                .unwrap();
                let closed = count_closed(conns, Duration::from_secs(20)).await;
                (opened, closed)
            })
        });
    a_new_publisher_gets_in(&hub, "late-legacy", Duration::from_secs(15));
    assert_eq!(closed, opened, "every silent legacy connection is closed");
}

// 3. Unfinished frames: legacy and vidcast, plus memory given back afterwards (9).
#[test]
fn unfinished_frames_cannot_pin_memory_and_memory_returns_after() {
    let _serial = serial();
    let mut hub = Hub::start(1024, &[]);
    let _publishers = Publishers::start(&hub);
    let baseline = hub.rss_mib();
    let rt = runtime();
    // A real 2560x2048 picture in the original format (15 MiB), all but its last MiB.
    let whole = vidcast_legacy::encode_frame(2560, 2048, &vec![7u8; 2560 * 2048 * 3]).unwrap();
    let partial = bytes::Bytes::from(whole[..whole.len() - (1 << 20)].to_vec());
    let closed = under_attack(
        &mut hub,
        400.0,
        "64 unfinished 15 MiB frames + trickles",
        |hub| {
            rt.block_on(async {
                let mut tasks = Vec::new();
                for i in 0..64u8 {
                    let partial = partial.clone();
                    let ingest = hub.ingest;
                    tasks.push(tokio::spawn(async move {
                        let Ok(mut s) = connect_from(attacker(2 + i % 8), ingest).await else {
                            return true; // refused: fine
                        };
                        let sent =
                            tokio::time::timeout(Duration::from_secs(20), s.write_all(&partial))
                                .await;
                        if !matches!(sent, Ok(Ok(()))) {
                            return true; // closed while sending
                        }
                        closed_within(&mut s, Duration::from_secs(40)).await
                    }));
                }
                // vidcast: a 16 MiB frame announced, then one byte every 2 s.
                for i in 0..16u8 {
                    let ingest = hub.ingest;
                    tasks.push(tokio::spawn(async move {
                        let Ok(mut s) = handshake(
                            attacker(20 + i % 4),
                            ingest,
                            &format!("trickle-{i}"),
                            Role::Publisher,
                        )
                        .await
                        else {
                            return true;
                        };
                        let frame = Frame {
                            seq: 1,
                            capture_us: 0,
                            is_keyframe: true,
                            data: bytes::Bytes::from(vec![0u8; (16 << 20) - 4096]),
                        };
                        let mut head = BytesMut::new();
                        Message::Frame(frame).encode(&mut head);
                        let start = head.split_to(64 * 1024);
                        if s.write_all(&start).await.is_err() {
                            return true;
                        }
                        let (mut r, mut w) = s.into_split();
                        let reader = tokio::spawn(async move {
                            let mut buf = vec![0u8; 4096];
                            loop {
                                match r.read(&mut buf).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(_) => {}
                                }
                            }
                        });
                        // At most 45 s of trickling.
                        for k in 0..23usize {
                            if reader.is_finished() {
                                return true;
                            }
                            if w.write_all(&head[k..=k]).await.is_err() {
                                return true;
                            }
                            tokio::time::sleep(Duration::from_secs(2)).await;
                        }
                        reader.is_finished()
                    }));
                }
                let mut closed = 0;
                for t in tasks {
                    closed += usize::from(t.await.unwrap_or(false));
                }
                closed
            })
        },
    );
    assert_eq!(closed, 80, "every unfinished frame's connection is closed");
    // Memory goes back near its baseline within a minute.
    let rss = wait_until_seen(
        &format!(
            "RSS back within 60 MiB of its {baseline:.0} MiB baseline a minute after the attack"
        ),
        Duration::from_secs(70),
        Duration::from_secs(1),
        || {
            let rss = hub.rss_mib();
            if rss <= baseline + 60.0 {
                Ok(rss)
            } else {
                Err(format!("{rss:.0} MiB"))
            }
        },
    );
    eprintln!("RSS back to {rss:.0} MiB (baseline {baseline:.0} MiB)");
    hub.assert_alive();
}

// 4. Slowloris on the web port.
#[test]
fn slowloris_http_connections_are_closed_and_cannot_lock_out_anyone() {
    let _serial = serial();
    let mut hub = Hub::start(1024, &[]);
    let _publishers = Publishers::start(&hub);
    let rt = runtime();
    let (opened, closed) = under_attack(&mut hub, 150.0, "1 100 slowloris connections", |hub| {
        rt.block_on(async {
            let mut conns = Vec::new();
            // One attacking address, as on a LAN (several addresses together can fill the
            // total cap for the header timeout: hostile_web.rs covers the caps themselves).
            for _ in 0..1100u32 {
                if let Ok(mut s) = connect_from(attacker(2), hub.http).await {
                    let head = "GET /api/streams HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ";
                    if s.write_all(head.as_bytes()).await.is_ok() {
                        conns.push(s);
                    }
                }
            }
            let opened = conns.len();
            // Keep dribbling a byte a second on each (at most 30 s), and see who is closed.
            let tasks: Vec<_> = conns
                .into_iter()
                .map(|mut s| {
                    tokio::spawn(async move {
                        let mut buf = [0u8; 1024];
                        for _ in 0..30 {
                            if s.write_all(b"x").await.is_err() {
                                return true;
                            }
                            match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf))
                                .await
                            {
                                Ok(Ok(0)) | Ok(Err(_)) => return true,
                                Ok(Ok(_)) | Err(_) => {}
                            }
                        }
                        false
                    })
                })
                .collect();
            let hub_http = hub.http;
            tokio::time::sleep(Duration::from_secs(2)).await;
            tokio::task::spawn_blocking(move || {
                let answered = http_get(hub_http, "/healthz", Duration::from_secs(5));
                assert!(matches!(answered, Ok((200, _))), "/healthz: {answered:?}");
            })
            .await
            .unwrap();
            let mut closed = 0;
            for t in tasks {
                closed += usize::from(t.await.unwrap_or(false));
            }
            (opened, closed)
        })
    });
    a_new_publisher_gets_in(&hub, "late-slowloris", Duration::from_secs(15));
    healthz_answers(&hub);
    assert_eq!(closed, opened, "every slowloris connection is closed");
}

/// Connects and says goodbye at once, as `count` distinct names (at most 50 at a time).
async fn fake_names(hub: SocketAddr, source: IpAddr, prefix: &str, count: usize) -> usize {
    let mut done = 0;
    for batch in (0..count).collect::<Vec<_>>().chunks(50) {
        let tasks: Vec<_> = batch
            .iter()
            .map(|&i| {
                let name = format!("{prefix}-{i}");
                tokio::spawn(
                    async move { handshake(source, hub, &name, Role::Publisher).await.is_ok() },
                )
            })
            .collect();
        for t in tasks {
            done += usize::from(t.await.unwrap_or(false));
        }
    }
    done
}

// 5 and 8. Thousands of names, 200 wall sockets; the registry stays bounded.
#[test]
fn thousands_of_names_and_wall_sockets_cannot_starve_publishers() {
    let _serial = serial();
    let mut hub = Hub::start(4096, &[]);
    let _publishers = Publishers::start(&hub);
    let rt = runtime();
    let per_socket_bytes = under_attack(&mut hub, 300.0, "3 000 names, 200 wall sockets", |hub| {
        rt.block_on(async {
            let mut made = 0;
            for a in 0..6u8 {
                made += fake_names(hub.ingest, attacker(2 + a), &format!("fake{a}"), 500).await;
            }
            assert!(made > 0, "no fake name got in at all");
            let url = format!("ws://{}/ws", hub.http);
            let mut readers = Vec::new();
            for i in 0..200u32 {
                let Ok(tcp) = connect_from(attacker(10 + (i % 8) as u8), hub.http).await else {
                    continue;
                };
                let Ok((ws, _)) = tokio_tungstenite::client_async(url.as_str(), tcp).await else {
                    continue;
                };
                readers.push(tokio::spawn(async move {
                    use futures_util::StreamExt;
                    let (_sink, mut source) = ws.split();
                    let mut bytes = 0usize;
                    let until = tokio::time::Instant::now() + Duration::from_secs(8);
                    while let Ok(Some(Ok(msg))) =
                        tokio::time::timeout_at(until, source.next()).await
                    {
                        bytes += msg.len();
                    }
                    bytes
                }));
            }
            assert!(!readers.is_empty(), "no wall socket opened at all");
            let n = readers.len();
            let mut total = 0;
            for r in readers {
                total += r.await.unwrap_or(0);
            }
            total / n
        })
    });
    let list = streams(hub.http);
    eprintln!(
        "a wall socket received {per_socket_bytes} bytes in 8 s; /api/streams lists {} entries",
        list.len()
    );
    assert!(
        per_socket_bytes < 2_000_000,
        "each wall socket got {per_socket_bytes} bytes in 8 s: the whole list every second"
    );
    assert!(
        list.len() <= 300,
        "the registry kept {} entries",
        list.len()
    );
}

// 6. Stalled viewers do not hold the viewer slots.
#[test]
fn stalled_mjpeg_readers_are_dropped_and_a_real_viewer_gets_in() {
    let _serial = serial();
    let mut hub = Hub::start(4096, &[]);
    let _publishers = Publishers::start(&hub);
    let id = streams(hub.http)[0]["id"].as_u64().unwrap();
    let rt = runtime();
    under_attack(
        &mut hub,
        300.0,
        "1 000 MJPEG readers that never read",
        |hub| {
            rt.block_on(async {
                let mut held = Vec::new();
                for i in 0..1000u32 {
                    let source = attacker(2 + (i % 20) as u8);
                    let socket = TcpSocket::new_v4().unwrap();
                    let _ = socket.set_recv_buffer_size(4096);
                    if socket.bind(SocketAddr::new(source, 0)).is_err() {
                        continue;
                    }
                    let Ok(Ok(mut s)) =
                        tokio::time::timeout(Duration::from_secs(3), socket.connect(hub.http))
                            .await
                    else {
                        continue;
                    };
                    let req = format!("GET /streams/{id}.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
                    if s.write_all(req.as_bytes()).await.is_ok() {
                        held.push(s);
                    }
                }
                // Within 30 s the stalled readers' slots are freed and a real viewer gets
                // its stream (an .mjpg, which needs a viewer slot).
                let hub_http = hub.http;
                tokio::task::spawn_blocking(move || {
                    let (mut freed, mut got) = (false, false);
                    wait_until_seen(
                        "the stalled MJPEG readers' slots freed and a real viewer in",
                        Duration::from_secs(30),
                        Duration::from_millis(500),
                        || {
                            let viewers = mjpeg_viewers(hub_http);
                            freed = freed || viewers < 10.0;
                            got = got || mjpeg_answers(hub_http, id);
                            if freed && got {
                                Ok(())
                            } else {
                                Err(format!(
                                    "slots freed: {freed} ({viewers} MJPEG viewers), real viewer in: {got}"
                                ))
                            }
                        },
                    );
                })
                .await
                .unwrap();
                drop(held);
            })
        },
    );
    assert!(hub.hits("http_stalled") > 0, "stalled viewers are counted");
}

/// The MJPEG viewer gauge, or NaN while the hub refuses the request (its web port is full).
fn mjpeg_viewers(http: SocketAddr) -> f64 {
    let Ok((200, body)) = http_get(http, "/metrics", Duration::from_secs(3)) else {
        return f64::NAN;
    };
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("vidcast_viewers{kind=\"mjpeg\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

/// Whether `GET /streams/{id}.mjpg` from 127.0.0.1 answers 200 and a first part.
fn mjpeg_answers(http: SocketAddr, id: u64) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&http, Duration::from_secs(3)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let req = format!("GET /streams/{id}.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    for _ in 0..100 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        if seen.starts_with(b"HTTP/1.1 200") && seen.windows(2).any(|w| w == [0xff, 0xd8]) {
            return true;
        }
    }
    false
}

// 7. The recorder does not trust or queue garbage.
#[test]
fn garbage_frames_are_not_recorded_and_do_not_pile_up() {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("vidcast-hostile-rec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut hub = Hub::start(1024, &["--record", dir.to_str().unwrap()]);
    let _publishers = Publishers::start(&hub);
    let rt = runtime();
    under_attack(
        &mut hub,
        400.0,
        "30 garbage 16 MiB JPEG frames, recorded hub",
        |hub| {
            rt.block_on(async {
                let mut s = handshake(attacker(2), hub.ingest, "garbage", Role::Publisher)
                    .await
                    .unwrap();
                let junk = bytes::Bytes::from(vec![0x5au8; (16 << 20) - 4096]);
                for seq in 1..=30u64 {
                    let mut buf = BytesMut::new();
                    Message::Frame(Frame {
                        seq,
                        capture_us: 0,
                        is_keyframe: true,
                        data: junk.clone(),
                    })
                    .encode(&mut buf);
                    let sent =
                        tokio::time::timeout(Duration::from_secs(10), s.write_all(&buf)).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            })
        },
    );
    let garbage_bytes: u64 = walk(&dir)
        .iter()
        .filter(|p| p.to_string_lossy().contains("garbage"))
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        garbage_bytes < 1 << 20,
        "{garbage_bytes} bytes of garbage were recorded"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    for _ in 0..10_000 {
        let Some(d) = todo.pop() else { break };
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

// 8. Squatters that ping but send no frame cannot fill --max-clients.
#[test]
fn frameless_squatters_cannot_fill_the_hub() {
    let _serial = serial();
    let mut hub = Hub::start(4096, &[]);
    let _publishers = Publishers::start(&hub);
    let rt = runtime();
    under_attack(&mut hub, 300.0, "996 ping-only squatters", |hub| {
        rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..996u32 {
                let ingest = hub.ingest;
                tasks.push(tokio::spawn(async move {
                    let source = attacker(2 + (i % 20) as u8);
                    let Ok(s) =
                        handshake(source, ingest, &format!("squat-{i}"), Role::Publisher).await
                    else {
                        return;
                    };
                    let (mut r, mut w) = s.into_split();
                    let reader = tokio::spawn(async move {
                        let mut buf = vec![0u8; 4096];
                        loop {
                            match r.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(_) => {}
                            }
                        }
                    });
                    // Ping once a second for at most 40 s, as long as the hub keeps us.
                    for n in 0..40u64 {
                        let mut ping = BytesMut::new();
                        Message::Ping(Ping { sent_us: n }).encode(&mut ping);
                        if reader.is_finished() || w.write_all(&ping).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }));
            }
            let (ingest, http) = (hub.ingest, hub.http);
            tokio::time::sleep(Duration::from_secs(3)).await;
            tokio::task::spawn_blocking(move || {
                a_new_publisher_joins(ingest, http, "late-squat", Duration::from_secs(20));
            })
            .await
            .unwrap();
            for t in tasks {
                t.abort();
            }
        })
    });
}

// 10. A sequence jump to u64::MAX keeps every counter sane.
#[test]
fn a_sequence_jump_to_the_top_keeps_counters_sane() {
    let _serial = serial();
    let mut hub = Hub::start(1024, &[]);
    let rt = runtime();
    let jpeg = vidcast_testkit::jpeg(64, 64);
    rt.block_on(async {
        let mut s = handshake(attacker(2), hub.ingest, "jumper", Role::Publisher)
            .await
            .unwrap();
        for seq in [1, 2, u64::MAX - 1, u64::MAX, 3, 4] {
            let mut buf = BytesMut::new();
            Message::Frame(Frame {
                seq,
                capture_us: 0,
                is_keyframe: true,
                data: jpeg.clone(),
            })
            .encode(&mut buf);
            s.write_all(&buf).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
    hub.assert_alive();
    let jumper = streams(hub.http)
        .into_iter()
        .find(|s| s["name"] == "jumper")
        .expect("jumper listed");
    let dropped = jumper["dropped"].as_u64().unwrap();
    assert!(dropped < 1000, "dropped reads {dropped}");
}

// Issue 16, item 7: 10 000 wrong tokens cost a bounded number of log lines, and a real client
// with the right token still gets in.
#[test]
fn ten_thousand_wrong_tokens_log_a_few_lines_and_lock_out_only_the_guesser() {
    let _serial = serial();
    let mut hub = Hub::start(1024, &["--token", "right-token"]);
    let rt = runtime();
    let tried = rt.block_on(async {
        let mut tried = 0usize;
        // 10 000 guesses, 100 connections at a time, each saying hello with a wrong token.
        for batch in 0..100u32 {
            let tasks: Vec<_> = (0..100u32)
                .map(|i| {
                    let ingest = hub.ingest;
                    tokio::spawn(async move {
                        let Ok(mut s) = connect_from(attacker(2), ingest).await else {
                            return false;
                        };
                        let mut hello = vidcast_testkit::hello(&format!("g{batch}-{i}"), 64, 64);
                        hello.token = format!("guess-{batch}-{i}");
                        let mut buf = BytesMut::from(&MAGIC[..]);
                        Message::Hello(hello).encode(&mut buf);
                        if s.write_all(&buf).await.is_err() {
                            return false;
                        }
                        closed_within(&mut s, Duration::from_secs(5)).await
                    })
                })
                .collect();
            for t in tasks {
                tried += usize::from(t.await.unwrap_or(false));
            }
        }
        tried
    });
    assert!(tried >= 9_000, "only {tried} guesses were answered");
    // A real client from another address gets in at once.
    let rt2 = runtime();
    let welcomed = rt2.block_on(async {
        let mut s = connect_from(IpAddr::from([127, 0, 0, 1]), hub.ingest)
            .await
            .unwrap();
        let mut hello = vidcast_testkit::hello("real", 64, 64);
        hello.token = "right-token".into();
        let mut buf = BytesMut::from(&MAGIC[..]);
        Message::Hello(hello).encode(&mut buf);
        s.write_all(&buf).await.unwrap();
        let mut decoder = vidcast_proto::Decoder::new(1 << 20);
        let mut inbuf = BytesMut::new();
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if s.read_buf(&mut inbuf).await.unwrap_or(0) == 0 {
                    return false;
                }
                while let Ok(Some(m)) = decoder.decode(&mut inbuf) {
                    if matches!(m, Message::Welcome(_)) {
                        return true;
                    }
                }
            }
        })
        .await
        .unwrap_or(false)
    });
    assert!(welcomed, "the right token from another address is welcomed");
    hub.assert_alive();
    let log = hub.server.log();
    let token_lines = log
        .lines()
        .filter(|l| l.contains("WARN") && (l.contains("token") || l.contains("locked out")))
        .count();
    eprintln!("{tried} wrong tokens: {token_lines} WARN lines about tokens");
    assert!(
        token_lines <= 20,
        "{token_lines} WARN lines for 10 000 wrong tokens:\n{log}"
    );
}
