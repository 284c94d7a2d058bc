//! `vidcast bench`: many publishers against one hub; fps, latency, drops and CPU. The
//! `--encode` phase (what a publisher costs, with real `send` processes) is in `bench/encode.rs`.

mod encode;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};
use vidcast_client::PublishReport;
use vidcast_hub::{HubOptions, RunningHub};
use vidcast_media::{
    pad_jpeg, Clock, EncodedFrame, Encoder, H264Config, H264Encoder, JpegEncoder, SystemClock,
    TestPattern, TestPatternConfig,
};
use vidcast_proto::{Codec, Frame};

use crate::duration;
use crate::send::{hello, parse_bitrate, VideoArgs};
use crate::serve::HubArgs;
use crate::viewers;

/// Options of `vidcast bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Number of publishers.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub clients: u32,
    /// Picture width.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    /// Picture height.
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// Frames per second per publisher; 0 sends as fast as the link takes them.
    #[arg(long, default_value_t = 30.0)]
    pub fps: f64,
    /// Measured time (after warm-up).
    #[arg(long, default_value = "10s", value_parser = duration::parse)]
    pub duration: Duration,
    /// Time to let connections settle before measuring.
    #[arg(long, default_value = "2s", value_parser = duration::parse)]
    pub warmup: Duration,
    /// What a publisher costs: runs --clients real `vidcast send` processes per codec
    /// (--no-adapt, --quality, --bitrate), paced at --fps, playing --source into a hub in
    /// this process; reports frames delivered, capture-to-hub latency, each sender's CPU
    /// time per frame and the hub's. Without it, publishers in this process send
    /// pre-encoded frames (the transport and hub alone).
    #[arg(long)]
    pub encode: bool,
    /// With --encode: what the senders play, a Y4M file (looped) or "test" (the test pattern
    /// with --noise, precomputed). Default: a camera-like clip of --width x --height,
    /// --frames frames, made for the run (see --make-y4m).
    #[arg(long, requires = "encode")]
    pub source: Option<String>,
    /// Write the camera-like clip (the test pattern with sensor noise: bars, gradient,
    /// moving box; --width x --height, --frames at --fps, --noise default 12, --seed) to
    /// this Y4M file and exit: the same frames for every system compared.
    #[arg(long, conflicts_with = "encode")]
    pub make_y4m: Option<PathBuf>,
    /// Frames of the camera-like clip.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub frames: u32,
    /// Which draw of the camera-like clip's noise.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Codec of the publishers: jpeg (the heaviest load per stream: --frame-bytes each) or
    /// h264 (at --bitrate, a keyframe every 2 s; pre-encoded, one 2 s group sent in a loop).
    /// With --encode, a list run one after the other: jpeg,h264.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "jpeg")]
    pub codec: Vec<Codec>,
    /// H.264 target bit rate with --codec h264: 1500000, 1.5M, 800k.
    #[arg(long, default_value = "1.5M", value_parser = parse_bitrate)]
    pub bitrate: u32,
    /// Sensor-like noise on the test pattern, ±N per colour value (0 to 64): 16 makes it
    /// compress like a camera, so H.264 uses its whole --bitrate. Default 0, and 12 for
    /// --encode and --make-y4m (issue 18's camera-like content).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=64))]
    pub noise: Option<u8>,
    /// Size of each pre-encoded JPEG frame (padded), e.g. 75000, 75k, 1MiB; 0 keeps the
    /// natural size.
    #[arg(long, default_value = "75000", value_parser = crate::serve::parse_bytes)]
    pub frame_bytes: usize,
    /// JPEG quality, 1 to 100.
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,
    /// Target a running hub instead of starting one in this process.
    #[arg(long)]
    pub hub: Option<SocketAddr>,
    /// With --hub: its HTTP API address, to read what it received.
    #[arg(long, requires = "hub")]
    pub hub_http: Option<SocketAddr>,
    /// MJPEG viewers (`/streams/{id}.mjpg` readers), spread over the streams.
    #[arg(long, default_value_t = 0)]
    pub mjpeg_viewers: u32,
    /// Web wall WebSocket viewers (each acks every frame), spread over the streams.
    #[arg(long, default_value_t = 0)]
    pub ws_viewers: u32,
    /// Viewers that subscribe (WebSocket and MJPEG) and then never read: they must not slow
    /// anyone else.
    #[arg(long, default_value_t = 0)]
    pub stalled_viewers: u32,
    /// Silent connections opened before the publishers (a connection flood); the hub must
    /// keep serving the real publishers.
    #[arg(long, default_value_t = 0)]
    pub flood: u32,
    #[command(flatten)]
    pub record: crate::record::RecordArgs,
    /// Print one JSON object on stdout instead of a report.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub hub_args: HubArgs,
}

/// Per-publisher outcome.
#[derive(Debug, Clone, Serialize)]
struct ClientResult {
    name: String,
    fps_received: f64,
    frames_received: u64,
    dropped: u64,
    latency_ms_p99: Option<f64>,
}

/// The benchmark's result, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
struct BenchResult {
    clients: u32,
    mode: &'static str,
    codec: &'static str,
    width: u32,
    height: u32,
    fps_target: f64,
    duration_s: f64,
    frame_bytes_avg: f64,
    fps_per_client_min: f64,
    fps_per_client_median: f64,
    fps_aggregate: f64,
    fps_aggregate_target: f64,
    latency_ms_p50: Option<f64>,
    latency_ms_p95: Option<f64>,
    latency_ms_p99: Option<f64>,
    latency_ms_max: Option<f64>,
    latency_samples: usize,
    dropped: u64,
    throughput_mbit_s: f64,
    hub_cpu_percent: Option<f64>,
    process_cpu_percent: f64,
    flood_connections: u32,
    flood_connections_opened: u64,
    viewers_mjpeg: u32,
    viewers_ws: u32,
    viewers_stalled: u32,
    viewer_fps_min: Option<f64>,
    viewer_fps_median: Option<f64>,
    per_client: Vec<ClientResult>,
}

pub fn main(args: BenchArgs) -> Result<()> {
    if let Some(path) = &args.make_y4m {
        return encode::make_y4m(&args, path);
    }
    if args.encode {
        return encode::main(&args);
    }
    let [codec] = args.codec[..] else {
        bail!("without --encode, give one --codec");
    };
    if !(args.fps >= 0.0 && args.fps <= 1000.0) {
        bail!(
            "--fps is 0 (unpaced) or a rate up to 1000, e.g. 30; got {}",
            args.fps
        );
    }
    if args.duration.is_zero() {
        bail!("--duration must be more than zero");
    }
    if args.hub.is_some()
        && args.hub_http.is_none()
        && args.mjpeg_viewers + args.ws_viewers + args.stalled_viewers > 0
    {
        bail!("viewers need the hub's HTTP address: add --hub-http");
    }
    if args.hub.is_some() && args.record.record.is_some() {
        bail!("--record applies to the hub bench starts itself; give it to that hub's `serve` instead");
    }
    raise_fd_limit();
    // The hub gets a runtime (and threads) of its own so its CPU time can be told apart.
    let hub_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vidcast-hub")
        .enable_all()
        .build()
        .context("cannot start the hub runtime")?;
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vidcast-pub")
        .enable_all()
        .build()
        .context("cannot start the publisher runtime")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());

    let hub = match args.hub {
        Some(_) => None,
        None => {
            let viewers = (args.mjpeg_viewers + args.ws_viewers + args.stalled_viewers) as usize;
            Some(start_hub(
                &args,
                &hub_runtime,
                Arc::clone(&clock),
                args.clients as usize,
                viewers,
            )?)
        }
    };
    let hub_addr = match (&hub, args.hub) {
        (Some(h), _) => h.ingest_addr,
        (None, Some(addr)) => addr,
        (None, None) => bail!("no hub"),
    };

    let result = client_runtime.block_on(run(
        &args,
        codec,
        hub.as_ref(),
        hub_addr,
        Arc::clone(&clock),
    ));
    if let Some(hub) = hub {
        hub_runtime.block_on(hub.shutdown())?;
    }
    let result = result?;
    if args.json {
        outln!("{}", serde_json::to_string(&result)?);
    } else {
        print_report(&result);
    }
    Ok(())
}

/// Starts a hub in this process on 127.0.0.1:0 (its tasks on `runtime`, whose threads are
/// named "vidcast-hub" so their CPU time can be told apart), with the limits lifted that a
/// load generator on one address would otherwise (rightly) hit: `publishers` streams and
/// `viewers` HTTP viewers from 127.0.0.1.
fn start_hub(
    args: &BenchArgs,
    runtime: &tokio::runtime::Runtime,
    clock: Arc<dyn Clock>,
    publishers: usize,
    viewers: usize,
) -> Result<RunningHub> {
    let _guard = runtime.enter();
    let ingest = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind the hub")?;
    ingest.set_nonblocking(true)?;
    let ingest = tokio::net::TcpListener::from_std(ingest)?;
    let mut options = HubOptions {
        latency_window: 16_384,
        record: args.record.config()?,
        ..args.hub_args.options()?
    };
    // The load generator is one address sending as fast as asked: lift the limits that
    // would otherwise (rightly) bite.
    options.limits.max_fps = f64::INFINITY;
    options.limits.max_clients = options.limits.max_clients.max(publishers);
    options.limits.max_publishers_per_ip = options.limits.max_publishers_per_ip.max(publishers);
    options.limits.max_viewers = options.limits.max_viewers.max(viewers + 1);
    // Every viewer is one HTTP connection from 127.0.0.1.
    options.limits.max_http_connections_per_ip =
        options.limits.max_http_connections_per_ip.max(viewers + 16);
    options.limits.max_http_connections = options.limits.max_http_connections.max(viewers + 16);
    // Room for the publishers' own handshakes; a --flood beyond it is evicted, as it
    // would be in production.
    options.limits.max_pending_per_ip = options.limits.max_pending_per_ip.max(publishers + 16);
    options.limits.max_pending = options
        .limits
        .max_pending
        .max(options.limits.max_pending_per_ip);
    let http = if viewers > 0 {
        let http = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind HTTP")?;
        http.set_nonblocking(true)?;
        Some(tokio::net::TcpListener::from_std(http)?)
    } else {
        None
    };
    Ok(RunningHub::start(ingest, http, options, clock)?)
}

async fn run(
    args: &BenchArgs,
    codec: Codec,
    hub: Option<&RunningHub>,
    hub_addr: SocketAddr,
    clock: Arc<dyn Clock>,
) -> Result<BenchResult> {
    let video = VideoArgs {
        width: Some(args.width),
        height: Some(args.height),
        fps: Some(args.fps),
        quality: args.quality,
        noise: args.noise.unwrap_or(0),
    };
    let frames = pre_encode(args, codec, &clock)?;
    let frame_bytes_avg =
        frames.iter().map(|f| f.data.len()).sum::<usize>() as f64 / frames.len().max(1) as f64;
    info!(
        "bench: {} publishers, {}x{} @ {} fps, pre-encoded {frame_bytes_avg:.0}-byte frames, \
         {:?} warm-up + {:?} measured, hub {hub_addr}",
        args.clients, args.width, args.height, args.fps, args.warmup, args.duration
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let flood_opened = Arc::new(std::sync::atomic::AtomicU64::new(0));
    if args.flood > 0 {
        tokio::spawn(flood(
            hub_addr,
            args.flood,
            Arc::clone(&flood_opened),
            stop_rx.clone(),
        ));
        let target = u64::from(args.flood);
        let deadline = Instant::now() + Duration::from_secs(10);
        while flood_opened.load(std::sync::atomic::Ordering::Relaxed) < target
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        info!(
            "flood: {} silent connections open",
            flood_opened.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    let mut publishers: JoinSet<Result<(String, PublishReport)>> = JoinSet::new();
    let period = (args.fps > 0.0).then(|| Duration::from_secs_f64(1.0 / args.fps));
    for i in 0..args.clients {
        let name = format!("bench-{}", i + 1);
        let (tx, mut rx) = watch::channel(None);
        // Spread start phases over one period, as independent cameras would be.
        let phase = period.map_or(Duration::ZERO, |p| {
            p.mul_f64(f64::from(i) / f64::from(args.clients))
        });
        tokio::spawn(pace(
            tx,
            frames.clone(),
            period,
            phase,
            Arc::clone(&clock),
            stop_rx.clone(),
        ));
        let clock = Arc::clone(&clock);
        let hello = vidcast_proto::Hello {
            token: args.hub_args.token.clone().unwrap_or_default(),
            codec: Ok(codec),
            ..hello(&name, &video)
        };
        // A pre-encoded loop has keyframes of its own: requests go nowhere.
        let options = vidcast_client::PublishOptions::default();
        let mut stop = stop_rx.clone();
        publishers.spawn(async move {
            let stream = vidcast_client::connect(&[hub_addr], Duration::from_secs(10)).await?;
            let report =
                vidcast_client::publish(stream, hello, options, &mut rx, clock, async move {
                    let _ = stop.wait_for(|&s| s).await;
                })
                .await?;
            Ok((name, report))
        });
    }

    let expected: Vec<String> = (1..=args.clients).map(|i| format!("bench-{i}")).collect();
    wait_all_live(hub, args, &expected).await?;
    let http_addr = hub.and_then(|h| h.http_addr).or(args.hub_http);
    let mut viewer_list = Vec::new();
    if let Some(http) = http_addr {
        let ids = stream_ids(hub, http, &expected).await?;
        let kinds = std::iter::repeat_n(viewers::ViewerKind::Mjpeg, args.mjpeg_viewers as usize)
            .chain(std::iter::repeat_n(
                viewers::ViewerKind::WebSocket,
                args.ws_viewers as usize,
            ))
            .chain(std::iter::repeat_n(
                viewers::ViewerKind::Stalled,
                args.stalled_viewers as usize,
            ));
        for (i, kind) in kinds.enumerate() {
            viewer_list.push(viewers::spawn(
                kind,
                http,
                ids[i % ids.len()],
                stop_rx.clone(),
            ));
        }
    }
    tokio::time::sleep(args.warmup).await;
    let viewer_frames_before: Vec<u64> = viewer_list
        .iter()
        .map(|v| v.frames.load(std::sync::atomic::Ordering::Relaxed))
        .collect();

    let api_before = match (hub, args.hub_http) {
        (None, Some(http)) => Some(frames_by_name(http).await?),
        _ => None,
    };
    if let Some(hub) = hub {
        hub.registry.reset_stats();
    }
    let cpu_before = CpuTimes::read();
    let started = Instant::now();
    tokio::time::sleep(args.duration).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = CpuTimes::read();
    let mut viewer_fps: Vec<f64> = viewer_list
        .iter()
        .zip(&viewer_frames_before)
        .filter(|(v, _)| v.kind != viewers::ViewerKind::Stalled)
        .map(|(v, before)| {
            (v.frames.load(std::sync::atomic::Ordering::Relaxed) - before) as f64 / elapsed
        })
        .collect();
    viewer_fps.sort_by(f64::total_cmp);

    let mut per_client = Vec::new();
    let mut samples = Vec::new();
    let mut total_bytes = 0u64;
    if let Some(hub) = hub {
        let snapshot = hub.registry.snapshot(clock.now_us());
        samples = hub.registry.all_latency_samples();
        for s in snapshot.iter().filter(|s| s.name.starts_with("bench-")) {
            total_bytes += s.bytes;
            per_client.push(ClientResult {
                name: s.name.clone(),
                fps_received: s.frames as f64 / elapsed,
                frames_received: s.frames,
                dropped: s.dropped,
                latency_ms_p99: s.latency_ms.map(|l| l.p99),
            });
        }
    } else if let (Some(before), Some(http)) = (api_before, args.hub_http) {
        let after = frames_by_name(http).await?;
        for name in &expected {
            let (f0, b0, d0, _) = before.get(name).copied().unwrap_or_default();
            let (f1, b1, d1, p99) = after.get(name).copied().unwrap_or_default();
            total_bytes += b1 - b0;
            per_client.push(ClientResult {
                name: name.clone(),
                fps_received: (f1 - f0) as f64 / elapsed,
                frames_received: f1 - f0,
                dropped: d1 - d0,
                latency_ms_p99: p99,
            });
        }
    }

    let _ = stop_tx.send(true);
    let mut reports = Vec::new();
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(joined) = publishers.join_next().await {
            match joined {
                Ok(Ok(r)) => reports.push(r),
                Ok(Err(e)) => warn!("publisher failed: {e:#}"),
                Err(e) => warn!("publisher task failed: {e}"),
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!("some publishers did not stop within 10 s");
    }
    if per_client.is_empty() {
        // Without a hub to ask, report what the publishers sent.
        for (name, r) in &reports {
            per_client.push(ClientResult {
                name: name.clone(),
                fps_received: r.stats.frames_sent as f64 / (elapsed + args.warmup.as_secs_f64()),
                frames_received: r.stats.frames_sent,
                dropped: r.stats.frames_dropped,
                latency_ms_p99: None,
            });
        }
    }
    per_client.sort_by_key(|c| natural_key(&c.name));

    let mut fps: Vec<f64> = per_client.iter().map(|c| c.fps_received).collect();
    fps.sort_by(f64::total_cmp);
    let latency = vidcast_hub::percentiles(samples.clone());
    let latency_ms_p99_fallback = per_client
        .iter()
        .filter_map(|c| c.latency_ms_p99)
        .max_by(f64::total_cmp);
    let clk_tck = clock_ticks_per_second();
    Ok(BenchResult {
        clients: args.clients,
        mode: "pre-encoded",
        codec: codec.name(),
        width: args.width,
        height: args.height,
        fps_target: args.fps,
        duration_s: elapsed,
        frame_bytes_avg: if frame_bytes_avg > 0.0 {
            frame_bytes_avg
        } else {
            total_bytes as f64
                / per_client
                    .iter()
                    .map(|c| c.frames_received)
                    .sum::<u64>()
                    .max(1) as f64
        },
        fps_per_client_min: fps.first().copied().unwrap_or(0.0),
        fps_per_client_median: fps.get(fps.len() / 2).copied().unwrap_or(0.0),
        fps_aggregate: fps.iter().sum(),
        fps_aggregate_target: args.fps * f64::from(args.clients),
        latency_ms_p50: latency.map(|l| l.p50),
        latency_ms_p95: latency.map(|l| l.p95),
        latency_ms_p99: latency.map(|l| l.p99).or(latency_ms_p99_fallback),
        latency_ms_max: samples.iter().max().map(|&us| us as f64 / 1000.0),
        latency_samples: samples.len(),
        dropped: per_client.iter().map(|c| c.dropped).sum(),
        throughput_mbit_s: total_bytes as f64 * 8.0 / elapsed / 1e6,
        hub_cpu_percent: hub.map(|_| {
            (cpu_after.hub_ticks - cpu_before.hub_ticks) as f64 / clk_tck / elapsed * 100.0
        }),
        flood_connections: args.flood,
        flood_connections_opened: flood_opened.load(std::sync::atomic::Ordering::Relaxed),
        viewers_mjpeg: args.mjpeg_viewers,
        viewers_ws: args.ws_viewers,
        viewers_stalled: args.stalled_viewers,
        viewer_fps_min: viewer_fps.first().copied(),
        viewer_fps_median: viewer_fps.get(viewer_fps.len() / 2).copied(),
        process_cpu_percent: (cpu_after.all_ticks - cpu_before.all_ticks) as f64
            / clk_tck
            / elapsed
            * 100.0,
        per_client,
    })
}

/// Keeps `count` connections open that never say a word, reopening any the hub closes.
async fn flood(
    hub: SocketAddr,
    count: u32,
    opened: Arc<std::sync::atomic::AtomicU64>,
    stop: watch::Receiver<bool>,
) {
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::channel::<()>(count as usize + 1);
    let open_one = |closed_tx: tokio::sync::mpsc::Sender<()>,
                    mut stop: watch::Receiver<bool>,
                    opened: Arc<std::sync::atomic::AtomicU64>| async move {
        if let Ok(mut socket) = tokio::net::TcpStream::connect(hub).await {
            opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut sink = [0u8; 512];
            tokio::select! {
                // Read (and discard) until the hub hangs up.
                _ = async { while matches!(tokio::io::AsyncReadExt::read(&mut socket, &mut sink).await, Ok(n) if n > 0) {} } => {}
                _ = stop.wait_for(|&s| s) => return,
            }
        }
        let _ = closed_tx.send(()).await;
    };
    for _ in 0..count {
        tokio::spawn(open_one(
            closed_tx.clone(),
            stop.clone(),
            Arc::clone(&opened),
        ));
    }
    let mut stop_main = stop.clone();
    while !*stop_main.borrow() {
        tokio::select! {
            closed = closed_rx.recv() => {
                if closed.is_none() {
                    return;
                }
                // Reopen after a short pause: bounded, and stops with the run.
                tokio::time::sleep(Duration::from_millis(5)).await;
                tokio::spawn(open_one(closed_tx.clone(), stop.clone(), Arc::clone(&opened)));
            }
            _ = stop_main.changed() => {}
        }
    }
}

/// The H.264 settings of every bench publisher: --bitrate, a keyframe every 2 s.
fn h264_config(args: &BenchArgs) -> H264Config {
    let fps = if args.fps > 0.0 { args.fps } else { 30.0 };
    H264Config::live(args.bitrate, fps, Duration::from_secs(2))
}

/// Renders test-pattern frames once and encodes them: for JPEG a few distinct frames padded
/// to --frame-bytes, for H.264 one group of pictures (a keyframe, then 2 s of inter frames),
/// which can be sent in a loop because each pass starts at its keyframe.
fn pre_encode(args: &BenchArgs, codec: Codec, clock: &Arc<dyn Clock>) -> Result<Vec<EncodedFrame>> {
    let mut pattern = TestPattern::new(
        TestPatternConfig {
            width: args.width,
            height: args.height,
            fps: args.fps.max(1.0),
            label: "bench".into(),
            paced: false,
        },
        Arc::clone(clock),
    )?;
    pattern.set_noise(args.noise.unwrap_or(0));
    if codec == Codec::H264 {
        let config = h264_config(args);
        let mut encoder = H264Encoder::new(config)?;
        let mut frames = Vec::new();
        for seq in 0..u64::from(config.keyint_frames) {
            frames.push(encoder.encode(&pattern.render(seq, clock.now_us()))?);
        }
        if !frames.first().is_some_and(|f| f.is_keyframe) {
            bail!("the H.264 encoder did not start with a keyframe");
        }
        return Ok(frames);
    }
    let mut encoder = JpegEncoder::new(args.quality)?;
    let mut frames = Vec::new();
    for seq in 0..8 {
        let raw = pattern.render(seq, clock.now_us());
        let mut jpeg = encoder.encode(&raw)?;
        if args.frame_bytes > jpeg.data.len() {
            jpeg.data = Bytes::from(pad_jpeg(&jpeg.data, args.frame_bytes)?);
        }
        frames.push(jpeg);
    }
    Ok(frames)
}

/// Hands a pre-encoded frame to the publisher every period (or as fast as it goes).
async fn pace(
    tx: watch::Sender<Option<Frame>>,
    frames: Vec<EncodedFrame>,
    period: Option<Duration>,
    phase: Duration,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = period.map(|p| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + phase, p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        t
    });
    let mut seq = 0u64;
    loop {
        match ticker.as_mut() {
            Some(t) => {
                tokio::select! {
                    _ = t.tick() => {}
                    _ = stop.wait_for(|&s| s) => return,
                }
            }
            None => {
                if *stop.borrow() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        }
        let frame = &frames[(seq % frames.len() as u64) as usize];
        tx.send_replace(Some(Frame {
            seq,
            capture_us: clock.now_us(),
            is_keyframe: frame.is_keyframe,
            data: frame.data.clone(),
        }));
        seq += 1;
    }
}

/// The hub's ids of the bench streams, in publisher order.
async fn stream_ids(
    hub: Option<&RunningHub>,
    http: SocketAddr,
    expected: &[String],
) -> Result<Vec<u64>> {
    let snapshot: Vec<(String, u64)> = match hub {
        Some(hub) => hub
            .registry
            .snapshot(0)
            .into_iter()
            .map(|s| (s.name, s.id))
            .collect(),
        None => vidcast_client::api::get_json(http, "/api/streams", Duration::from_secs(5))
            .await?
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| Some((s["name"].as_str()?.to_owned(), s["id"].as_u64()?)))
            .collect(),
    };
    let ids: Vec<u64> = expected
        .iter()
        .filter_map(|name| snapshot.iter().find(|(n, _)| n == name).map(|(_, id)| *id))
        .collect();
    if ids.is_empty() {
        bail!("the hub lists none of the bench streams");
    }
    Ok(ids)
}

async fn wait_all_live(
    hub: Option<&RunningHub>,
    args: &BenchArgs,
    expected: &[String],
) -> Result<()> {
    let Some(hub) = hub else {
        return Ok(());
    };
    let deadline =
        Instant::now() + Duration::from_secs(10) + Duration::from_millis(20) * args.clients;
    loop {
        let live = hub.registry.live_count();
        if live >= expected.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "only {live} of {} publishers connected in time",
                expected.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Frames, bytes, drops and p99 latency per stream name, from a hub's API.
async fn frames_by_name(http: SocketAddr) -> Result<HashMap<String, (u64, u64, u64, Option<f64>)>> {
    let json = vidcast_client::api::get_json(http, "/api/streams", Duration::from_secs(5))
        .await
        .with_context(|| format!("cannot read the hub's API on {http}"))?;
    let mut out = HashMap::new();
    for s in json.as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or_default().to_owned();
        let n = |k: &str| s[k].as_u64().unwrap_or(0);
        out.insert(
            name,
            (
                n("frames"),
                n("bytes"),
                n("dropped"),
                s["latency_ms"]["p99"].as_f64(),
            ),
        );
    }
    Ok(out)
}

fn natural_key(name: &str) -> (usize, String) {
    let digits: String = name
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect();
    let n = digits
        .chars()
        .rev()
        .collect::<String>()
        .parse()
        .unwrap_or(0);
    (n, name.to_owned())
}

fn print_report(r: &BenchResult) {
    outln!(
        "vidcast bench: {} clients, {}x{} @ {} fps, {} {} ({:.0} B/frame), {:.1} s measured",
        r.clients,
        r.width,
        r.height,
        r.fps_target,
        r.mode,
        r.codec,
        r.frame_bytes_avg,
        r.duration_s
    );
    let show: Vec<&ClientResult> = if r.per_client.len() <= 20 {
        r.per_client.iter().collect()
    } else {
        let mut worst: Vec<&ClientResult> = r.per_client.iter().collect();
        worst.sort_by(|a, b| a.fps_received.total_cmp(&b.fps_received));
        outln!("(showing the 10 slowest of {})", r.per_client.len());
        worst.into_iter().take(10).collect()
    };
    outln!(
        "  {:<12} {:>8} {:>8} {:>8} {:>10}",
        "client",
        "fps",
        "frames",
        "dropped",
        "p99 ms"
    );
    for c in show {
        outln!(
            "  {:<12} {:>8.2} {:>8} {:>8} {:>10}",
            c.name,
            c.fps_received,
            c.frames_received,
            c.dropped,
            c.latency_ms_p99
                .map_or("-".to_owned(), |v| format!("{v:.2}"))
        );
    }
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2} ms"));
    outln!(
        "fps per client: min {:.2}, median {:.2}; aggregate {:.1} of {:.0} target",
        r.fps_per_client_min,
        r.fps_per_client_median,
        r.fps_aggregate,
        r.fps_aggregate_target
    );
    outln!(
        "latency (capture → hub): p50 {}, p95 {}, p99 {}, max {} ({} samples)",
        ms(r.latency_ms_p50),
        ms(r.latency_ms_p95),
        ms(r.latency_ms_p99),
        ms(r.latency_ms_max),
        r.latency_samples
    );
    outln!(
        "dropped: {}; throughput {:.1} Mbit/s",
        r.dropped,
        r.throughput_mbit_s
    );
    if r.flood_connections > 0 {
        outln!(
            "flood: {} silent connections held open ({} opened in all, as the hub evicted or timed them out)",
            r.flood_connections, r.flood_connections_opened
        );
    }
    if r.viewers_mjpeg + r.viewers_ws + r.viewers_stalled > 0 {
        outln!(
            "viewers: {} MJPEG + {} WebSocket (+ {} stalled, never reading): fps per viewer min {}, median {}",
            r.viewers_mjpeg,
            r.viewers_ws,
            r.viewers_stalled,
            r.viewer_fps_min.map_or("-".to_owned(), |v| format!("{v:.2}")),
            r.viewer_fps_median.map_or("-".to_owned(), |v| format!("{v:.2}")),
        );
    }
    match r.hub_cpu_percent {
        Some(hub) => outln!(
            "CPU: hub {hub:.1}% of one core, whole process {:.1}%",
            r.process_cpu_percent
        ),
        None => outln!(
            "CPU: whole process {:.1}% (hub is elsewhere)",
            r.process_cpu_percent
        ),
    }
}

/// CPU ticks of this process's hub threads and of all its threads.
struct CpuTimes {
    hub_ticks: u64,
    all_ticks: u64,
}

impl CpuTimes {
    fn read() -> Self {
        let mut times = CpuTimes {
            hub_ticks: 0,
            all_ticks: 0,
        };
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            times.all_ticks = stat_ticks(&stat).map_or(0, |(_, t)| t);
        }
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return times;
        };
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            if let Some((comm, ticks)) = stat_ticks(&stat) {
                if comm.starts_with("vidcast-hub") {
                    times.hub_ticks += ticks;
                }
            }
        }
        times
    }
}

/// The command name and utime + stime from a /proc stat line.
fn stat_ticks(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = &stat[open + 1..close];
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // After the comm: state is field 3 of the man page, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Many publishers need many sockets: lift the soft descriptor limit to the hard one.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass, which lives on the stack.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_stat_lines_with_odd_names() {
        let line = "1234 (vidcast-hub (x)) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0";
        assert_eq!(stat_ticks(line), Some(("vidcast-hub (x)", 175)));
        assert_eq!(stat_ticks("garbage"), None);
    }
}
