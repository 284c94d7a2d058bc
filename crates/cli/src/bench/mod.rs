//! `vidcast bench`: many publishers against one hub; fps, latency, drops and CPU. One file per
//! phase: the hub it starts (`hub`), the load (`load`), the viewers (`viewers`), the measured
//! window (`measure`) and the result (`report`); the `--encode` phase (what a publisher costs,
//! with real `send` processes) is in `encode`.

mod encode;
mod hub;
mod load;
mod measure;
mod report;
mod viewers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use tracing::info;
use vidcast_hub::RunningHub;
use vidcast_media::{Clock, SystemClock};
use vidcast_proto::Codec;

use self::report::BenchResult;
use crate::duration;
use crate::serve::HubArgs;
use crate::video::parse_bitrate;

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
    hub::raise_fd_limit();
    let hub_runtime = hub::runtime()?;
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
            Some(hub::start(
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
        report::print_report(&result);
    }
    Ok(())
}

/// One pre-encoded run: load, viewers, warm-up, the measured window, then the result.
async fn run(
    args: &BenchArgs,
    codec: Codec,
    hub: Option<&RunningHub>,
    hub_addr: SocketAddr,
    clock: Arc<dyn Clock>,
) -> Result<BenchResult> {
    let frames = load::pre_encode(args, codec, &clock)?;
    let frame_bytes_avg =
        frames.iter().map(|f| f.data.len()).sum::<usize>() as f64 / frames.len().max(1) as f64;
    info!(
        "bench: {} publishers, {}x{} @ {} fps, pre-encoded {frame_bytes_avg:.0}-byte frames, \
         {:?} warm-up + {:?} measured, hub {hub_addr}",
        args.clients, args.width, args.height, args.fps, args.warmup, args.duration
    );
    let load = load::Load::start(args, codec, hub_addr, frames, &clock).await;
    let expected: Vec<String> = (0..args.clients).map(load::publisher_name).collect();
    let window = async {
        measure::wait_all_live(hub, args, &expected).await?;
        let viewers = start_viewers(args, hub, &expected, &load.stop_rx).await?;
        tokio::time::sleep(args.warmup).await;
        measure::window(args, hub, &viewers, &expected).await
    }
    .await;
    let flood_opened = load.flood_opened.load(std::sync::atomic::Ordering::Relaxed);
    // Stop the publishers whether or not the window could be measured.
    let reports = load.stop().await;
    Ok(report::summarise(
        args,
        codec,
        frame_bytes_avg,
        window?,
        &reports,
        flood_opened,
    ))
}

/// Starts --mjpeg-viewers, --ws-viewers and --stalled-viewers, spread over the bench streams
/// (none without an HTTP address to reach).
async fn start_viewers(
    args: &BenchArgs,
    hub: Option<&RunningHub>,
    expected: &[String],
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<viewers::Viewer>> {
    let Some(http) = hub.and_then(|h| h.http_addr).or(args.hub_http) else {
        return Ok(Vec::new());
    };
    let ids = measure::stream_ids(hub, http, expected).await?;
    let kinds = std::iter::repeat_n(viewers::ViewerKind::Mjpeg, args.mjpeg_viewers as usize)
        .chain(std::iter::repeat_n(
            viewers::ViewerKind::WebSocket,
            args.ws_viewers as usize,
        ))
        .chain(std::iter::repeat_n(
            viewers::ViewerKind::Stalled,
            args.stalled_viewers as usize,
        ));
    Ok(kinds
        .enumerate()
        .map(|(i, kind)| viewers::spawn(kind, http, ids[i % ids.len()], stop.clone()))
        .collect())
}
