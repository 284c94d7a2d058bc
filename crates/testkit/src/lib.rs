//! Helpers for vidcast's tests: a hub on `127.0.0.1:0`, publishers sending known frames, a raw
//! peer that speaks bytes by hand, and polling with deadlines instead of sleeps.
//! Test-only: nothing in the product depends on this crate.

mod browser;
pub mod http;
pub mod netns;
pub mod nginx;
pub mod rtsp_server;
mod tools;

pub use browser::{chromium, Browser};
pub use nginx::Nginx;
pub use rtsp_server::RtspTestServer;
pub use tools::{ffmpeg_player, played_frame_numbers, require_tool};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vidcast_client::PublishReport;
use vidcast_hub::{HubOptions, RunningHub};
use vidcast_media::{Clock, Encoder, JpegEncoder, RawFrame, SystemClock};
use vidcast_proto::{Codec, Decoder, Frame, Hello, Message, Role, MAGIC, VERSION};

/// The clock tests share.
pub fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock::new())
}

/// Starts a hub with `options` on 127.0.0.1:0 (ingest and HTTP).
pub async fn start_hub(options: HubOptions) -> RunningHub {
    let ingest = TcpListener::bind("127.0.0.1:0").await.expect("bind ingest");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    RunningHub::start(ingest, Some(http), options, clock()).expect("start hub")
}

/// Polls `check` every 10 ms until it gives `Some`, or panics with `what` after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `check` every 10 ms until it gives `Some`, or panics with `what` after `limit`: the
/// blocking twin of [`wait_for`], for tests that run a process or a thread rather than a
/// runtime.
pub fn wait_until<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if std::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `check` every `every` until it gives `Ok`, or panics after `limit` with `what` and the
/// last state `check` reported (`Err`): the blocking [`wait_until`] for a test whose failure
/// must say what it saw, or whose polling must stay light (a hub under measured attack).
pub fn wait_until_seen<T, S: std::fmt::Debug>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<T, S>,
) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let seen = match check() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if std::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}; last seen: {seen:?}");
        }
        std::thread::sleep(every);
    }
}

/// A JPEG of a flat grey picture of the given size.
pub fn jpeg(width: u32, height: u32) -> Bytes {
    let mut encoder = JpegEncoder::new(80).expect("quality 80 is valid");
    let frame = RawFrame {
        width,
        height,
        format: vidcast_media::PixelFormat::Rgb8,
        data: vec![100; (width * height * 3) as usize],
        seq: 0,
        capture_us: 0,
    };
    encoder.encode(&frame).expect("encodes").data
}

/// A publisher's hello.
pub fn hello(name: &str, width: u16, height: u16) -> Hello {
    Hello {
        version: VERSION,
        role: Role::Publisher,
        codec: Ok(Codec::Jpeg),
        width,
        height,
        fps_milli: 30_000,
        name: name.to_owned(),
        token: String::new(),
    }
}

/// Starts a 320x240@30 H.264 test-pattern publisher called `name` with a keyframe every
/// `keyint_frames` (300: every 10 s, so a keyframe within a second can only be one the hub
/// asked for). The pattern burns each frame's `seq` in (`read_frame_number`).
pub async fn h264_publisher(
    hub: SocketAddr,
    name: &str,
    keyint_frames: u32,
) -> (vidcast_client::Capture, JoinHandle<()>) {
    let config = vidcast_media::H264Config {
        bitrate_bps: 500_000,
        fps: 30.0,
        keyint_frames,
        level_bitrate_bps: None,
    };
    h264_publisher_with(hub, name, config, 0).await
}

/// [`h264_publisher`] with encoder settings and sensor-like noise (±`noise`), for streams
/// as heavy as a camera's.
pub async fn h264_publisher_with(
    hub: SocketAddr,
    name: &str,
    h264: vidcast_media::H264Config,
    noise: u8,
) -> (vidcast_client::Capture, JoinHandle<()>) {
    let clock = Arc::new(SystemClock::new());
    let config = vidcast_media::TestPatternConfig {
        width: 320,
        height: 240,
        fps: 30.0,
        label: "h264".into(),
        paced: true,
    };
    let mut source = vidcast_media::TestPattern::new(config, clock.clone()).expect("valid pattern");
    source.set_noise(noise);
    let encoder = vidcast_media::H264Encoder::new(h264).expect("encoder");
    let keyframes = Arc::new(vidcast_client::KeyframeFlag::default());
    let (tx, mut frames) = watch::channel(None);
    let capture = vidcast_client::Capture::start_with_keyframes(
        Box::new(source),
        Box::new(encoder),
        tx,
        keyframes.clone(),
    )
    .expect("capture starts");
    let mut hello = hello(name, 320, 240);
    hello.codec = Ok(Codec::H264);
    let stream = TcpStream::connect(hub).await.expect("connect");
    let options = vidcast_client::PublishOptions {
        keyframes: Some(keyframes),
        ..vidcast_client::PublishOptions::default()
    };
    let task = tokio::spawn(async move {
        let _ = vidcast_client::publish(
            stream,
            hello,
            options,
            &mut frames,
            clock,
            std::future::pending(),
        )
        .await;
    });
    (capture, task)
}

/// A publisher sending one JPEG of its size every `period`, `count` times (or until the
/// returned stop sender is used), then saying goodbye.
pub struct TestPublisher {
    /// The publisher's own address: the hub sees it as the peer.
    pub local_addr: SocketAddr,
    /// Send `true` to stop early.
    pub stop: watch::Sender<bool>,
    /// The publishing task.
    pub task: JoinHandle<Result<PublishReport, vidcast_client::PublishError>>,
}

impl TestPublisher {
    /// Connects to `hub` and starts sending.
    pub async fn start(
        hub: SocketAddr,
        name: &str,
        width: u16,
        height: u16,
        period: Duration,
        count: u64,
    ) -> Self {
        let options = vidcast_client::PublishOptions::default();
        Self::start_with(hub, name, (width, height), period, count, options).await
    }

    /// Like [`TestPublisher::start`], with publish options (TLS, for one).
    pub async fn start_with(
        hub: SocketAddr,
        name: &str,
        (width, height): (u16, u16),
        period: Duration,
        count: u64,
        options: vidcast_client::PublishOptions,
    ) -> Self {
        Self::start_as(hub, hello(name, width, height), period, count, options).await
    }

    /// Like [`TestPublisher::start_with`], saying `hello` (a token, another codec…).
    pub async fn start_as(
        hub: SocketAddr,
        hello: Hello,
        period: Duration,
        count: u64,
        options: vidcast_client::PublishOptions,
    ) -> Self {
        let (width, height) = (hello.width, hello.height);
        let stream = vidcast_client::connect(&[hub], Duration::from_secs(5))
            .await
            .expect("connect");
        let local_addr = stream.local_addr().expect("local addr");
        let (tx, mut rx) = watch::channel(None);
        let (stop, mut stop_rx) = watch::channel(false);
        let data = jpeg(u32::from(width), u32::from(height));
        let clock = clock();
        let pacer_clock = Arc::clone(&clock);
        let mut pacer_stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            for seq in 0..count {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = pacer_stop.wait_for(|&s| s) => break,
                }
                tx.send_replace(Some(Frame {
                    seq,
                    capture_us: pacer_clock.now_us(),
                    is_keyframe: true,
                    data: data.clone(),
                }));
            }
            // Dropping tx ends the stream with a goodbye.
        });
        let task = tokio::spawn(async move {
            vidcast_client::publish(stream, hello, options, &mut rx, clock, async move {
                let _ = stop_rx.wait_for(|&s| s).await;
            })
            .await
        });
        Self {
            local_addr,
            stop,
            task,
        }
    }
}

/// A peer that writes bytes by hand and reads what the hub answers.
pub struct RawPeer {
    /// The socket.
    pub stream: TcpStream,
    /// Its local address.
    pub local_addr: SocketAddr,
    decoder: Decoder,
    inbuf: BytesMut,
}

impl RawPeer {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::from_stream(TcpStream::connect(addr).await.expect("connect"))
    }

    /// A peer over an already connected socket (e.g. one made in a test namespace).
    pub fn from_stream(stream: TcpStream) -> Self {
        let local_addr = stream.local_addr().expect("local addr");
        Self {
            stream,
            local_addr,
            decoder: Decoder::new(1 << 20),
            inbuf: BytesMut::new(),
        }
    }

    /// Writes `bytes`.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Magic and a hello, then waits for the welcome.
    pub async fn handshake(&mut self, name: &str) -> Vec<Message> {
        let mut buf = BytesMut::from(&MAGIC[..]);
        Message::Hello(hello(name, 64, 64)).encode(&mut buf);
        self.send(&buf).await;
        let mut seen = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let n = self.stream.read_buf(&mut self.inbuf).await.expect("read");
                assert!(n > 0, "hub closed during handshake; saw {seen:?}");
                while let Some(m) = self
                    .decoder
                    .decode(&mut self.inbuf)
                    .expect("hub speaks the protocol")
                {
                    let welcomed = matches!(m, Message::Welcome(_));
                    seen.push(m);
                    if welcomed {
                        return;
                    }
                }
            }
        })
        .await
        .expect("welcome within 5 s");
        seen
    }

    /// Reads until the hub closes (or `limit` passes) and decodes what it said.
    pub async fn read_until_closed(&mut self, limit: Duration) -> (Vec<Message>, bool) {
        let closed = tokio::time::timeout(limit, async {
            loop {
                match self.stream.read_buf(&mut self.inbuf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok();
        let mut messages = Vec::new();
        while let Ok(Some(m)) = self.decoder.decode(&mut self.inbuf) {
            messages.push(m);
        }
        (messages, closed)
    }
}

/// `/api/streams` of a running hub.
pub async fn api_streams(hub: &RunningHub) -> Vec<serde_json::Value> {
    let http = hub.http_addr.expect("hub has an HTTP address");
    let json = crate::http::get_json(http, "/api/streams", Duration::from_secs(5))
        .await
        .expect("API answers");
    json.as_array().expect("an array").clone()
}

/// `/api/events` of a running hub.
pub async fn api_events(hub: &RunningHub) -> Vec<serde_json::Value> {
    let http = hub.http_addr.expect("hub has an HTTP address");
    let json = crate::http::get_json(http, "/api/events", Duration::from_secs(5))
        .await
        .expect("API answers");
    json.as_array().expect("an array").clone()
}

/// What a [`TestViewer`] has seen so far.
#[derive(Debug, Clone, Default)]
pub struct ViewerLog {
    /// Whether the hub welcomed it.
    pub welcomed: bool,
    /// Every stream as last announced, by id.
    pub streams: std::collections::BTreeMap<u64, vidcast_proto::StreamAnnounce>,
    /// Streams announced removed, in order.
    pub removed: Vec<u64>,
    /// Sequence numbers of the frames received, per stream.
    pub frames: std::collections::BTreeMap<u64, Vec<u64>>,
    /// Latency of the last frame of each stream, µs, when known.
    pub latency_us: std::collections::BTreeMap<u64, u64>,
    /// Why the connection ended, once it has.
    pub closed: Option<vidcast_proto::CloseReason>,
}

impl ViewerLog {
    /// The stream announced with this client name.
    pub fn stream_named(&self, name: &str) -> Option<&vidcast_proto::StreamAnnounce> {
        self.streams.values().find(|s| s.name == name)
    }

    /// Frames received of the stream with this client name.
    pub fn frames_of(&self, name: &str) -> usize {
        self.stream_named(name)
            .and_then(|s| self.frames.get(&s.stream_id))
            .map_or(0, Vec::len)
    }
}

struct LogSink(Arc<std::sync::Mutex<ViewerLog>>);

impl LogSink {
    fn log(&self) -> std::sync::MutexGuard<'_, ViewerLog> {
        self.0.lock().expect("viewer log lock")
    }
}

impl vidcast_client::viewer::ViewerSink for LogSink {
    fn welcomed(&mut self, _: &vidcast_proto::Welcome) {
        self.log().welcomed = true;
    }

    fn stream(&mut self, announce: vidcast_proto::StreamAnnounce) {
        self.log().streams.insert(announce.stream_id, announce);
    }

    fn removed(&mut self, stream_id: u64) {
        let mut log = self.log();
        log.streams.remove(&stream_id);
        log.removed.push(stream_id);
    }

    fn frame(
        &mut self,
        stream_id: u64,
        frame: Frame,
        _: vidcast_proto::Timestamp,
        latency_us: Option<u64>,
    ) {
        let mut log = self.log();
        log.frames.entry(stream_id).or_default().push(frame.seq);
        if let Some(us) = latency_us {
            log.latency_us.insert(stream_id, us);
        }
    }
}

/// Runs the viewer drive loop over `stream` (plain or TLS) until it ends; why it ended.
async fn watch_as_viewer<S>(
    stream: S,
    hub: SocketAddr,
    hello: &vidcast_client::viewer::ViewerHello,
    sink: &mut LogSink,
    stop: &mut watch::Receiver<bool>,
) -> vidcast_proto::CloseReason
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    vidcast_client::viewer::view(stream, hub, hello, sink, &clock(), stop)
        .await
        .1
}

/// A viewer (the protocol's viewer role, `vidcast_client::viewer`) that records what it sees.
pub struct TestViewer {
    /// What it has seen.
    pub log: Arc<std::sync::Mutex<ViewerLog>>,
    /// Send `true` to say goodbye and stop.
    pub stop: watch::Sender<bool>,
    /// The viewing task.
    pub task: JoinHandle<()>,
}

impl TestViewer {
    /// Connects to `hub` as a viewer presenting `token` (empty for none).
    pub async fn start(hub: SocketAddr, token: &str) -> Self {
        Self::start_with(hub, token, None).await
    }

    /// Like [`TestViewer::start`], over TLS when `tls` is given.
    pub async fn start_with(
        hub: SocketAddr,
        token: &str,
        tls: Option<vidcast_client::ClientTls>,
    ) -> Self {
        let stream = vidcast_client::connect(&[hub], Duration::from_secs(5))
            .await
            .expect("connect");
        let log = Arc::new(std::sync::Mutex::new(ViewerLog::default()));
        let (stop, mut stop_rx) = watch::channel(false);
        let hello = vidcast_client::viewer::ViewerHello {
            name: "test-viewer".into(),
            token: token.to_owned(),
            timing: vidcast_proto::Timing::default(),
        };
        let mut sink = LogSink(Arc::clone(&log));
        let task = tokio::spawn(async move {
            let reason = match tls {
                Some(tls) => {
                    let stream = tls
                        .handshake(stream, hub, Duration::from_secs(5))
                        .await
                        .expect("TLS handshake");
                    watch_as_viewer(stream, hub, &hello, &mut sink, &mut stop_rx).await
                }
                None => watch_as_viewer(stream, hub, &hello, &mut sink, &mut stop_rx).await,
            };
            sink.log().closed = Some(reason);
        });
        Self { log, stop, task }
    }

    /// A copy of what it has seen.
    pub fn snapshot(&self) -> ViewerLog {
        self.log.lock().expect("viewer log lock").clone()
    }
}

/// Prints one benchmark line of latency percentiles (`ms`, any order) for 320x240@30 H.264
/// and returns the median; at least 500 samples are required.
pub fn latency_line_ms(what: &str, mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    assert!(ms.len() >= 500, "{what}: only {} frames measured", ms.len());
    let pct = |p: f64| ms[((ms.len() - 1) as f64 * p) as usize];
    println!(
        "{what} ({} frames, 320x240@30 H.264): p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms.len(),
        pct(0.5),
        pct(0.95),
        pct(0.99),
        pct(1.0)
    );
    pct(0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_seen_returns_the_value_or_names_the_last_state_seen() {
        let mut tries = 0;
        let value = wait_until_seen("3 tries", Duration::from_secs(5), Duration::ZERO, || {
            tries += 1;
            if tries == 3 {
                Ok("done")
            } else {
                Err(tries)
            }
        });
        assert_eq!((value, tries), ("done", 3));

        let mut seen = 0;
        let gave_up = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until_seen(
                "a count that never comes",
                Duration::from_millis(20),
                Duration::from_millis(1),
                || {
                    seen += 1;
                    Err::<(), _>(seen)
                },
            )
        }))
        .expect_err("gives up after its limit");
        let message = gave_up.downcast_ref::<String>().expect("a formatted panic");
        assert!(
            message.ends_with(&format!("a count that never comes; last seen: {seen}")),
            "{message}"
        );
    }
}
