//! `vidcast send`: publish a stream.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use tokio::sync::watch;
use tracing::info;
use vidcast_client::Capture;
use vidcast_media::{Clock, JpegEncoder, SystemClock, TestPattern, TestPatternConfig};
use vidcast_proto::{Codec, Hello, Role, Timing, VERSION};

/// Options of `vidcast send`.
#[derive(Args, Debug, Clone)]
pub struct SendArgs {
    /// The hub: host or host:port (default port 9999); with --legacy, the original server.py.
    pub hub: String,
    /// Speak the original Python project's format (u64 length + pickled raw BGR frame) to its
    /// server.py instead of vidcast's protocol, so a hub can be replaced last. That format
    /// carries no name, quality or token: --name only labels the picture, --quality and
    /// --token are unused.
    #[arg(long, conflicts_with = "stats")]
    pub legacy: bool,
    /// Video source: "test" (a moving pattern with frame number and capture time burnt in).
    #[arg(long, default_value = "test")]
    pub source: String,
    /// Name shown on the hub (default: this machine's host name); also burnt into the picture.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub video: VideoArgs,
    /// Stop after this many frames (default: run until Ctrl-C).
    #[arg(long)]
    pub frames: Option<u64>,
    /// Token the hub requires (also VIDCAST_TOKEN); never printed.
    #[arg(long, env = "VIDCAST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Give up when the hub is unreachable or goes away, instead of reconnecting forever.
    #[arg(long)]
    pub no_reconnect: bool,
    /// Longest wait between reconnection attempts.
    #[arg(long, default_value = "5s", value_parser = crate::duration::parse)]
    pub max_backoff: Duration,
    /// Log this side's TCP statistics every second (RTT, cwnd, retransmissions, unsent bytes,
    /// delivery rate) next to frames sent and dropped.
    #[arg(long)]
    pub stats: bool,
    #[command(flatten)]
    pub tls: crate::tls_flags::TlsFlags,
    /// Always send at --quality, --fps and full size, even when the link cannot carry it
    /// (frames are then dropped, latest wins). By default a congested link lowers JPEG quality,
    /// then the frame rate, then the picture size, and climbs back when it recovers.
    #[arg(long)]
    pub no_adapt: bool,
}

/// Picture settings shared by `send`, `demo` and `bench`.
#[derive(Args, Debug, Clone)]
pub struct VideoArgs {
    /// Picture width in pixels.
    #[arg(long, default_value_t = 640, value_parser = clap::value_parser!(u32).range(64..=7680))]
    pub width: u32,
    /// Picture height in pixels.
    #[arg(long, default_value_t = 480, value_parser = clap::value_parser!(u32).range(64..=4320))]
    pub height: u32,
    /// Frames per second.
    #[arg(long, default_value_t = 30.0)]
    pub fps: f64,
    /// JPEG quality, 1 to 100 (unused by `send --legacy`, which sends raw frames).
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,
    /// Sensor-like noise on the test pattern, ±N per colour value (0 to 64). The clean
    /// pattern compresses far better than a camera; 16 gives camera-sized JPEGs (640x480
    /// q80: about 43 kB instead of 18 kB).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=64))]
    pub noise: u8,
}

/// A default client name: the host name, else "vidcast".
pub fn default_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "vidcast".to_owned())
}

/// The hello a publisher of `video` named `name` sends.
pub fn hello(name: &str, video: &VideoArgs) -> Hello {
    Hello {
        version: VERSION,
        role: Role::Publisher,
        codec: Codec::Jpeg,
        width: u16::try_from(video.width).unwrap_or(u16::MAX),
        height: u16::try_from(video.height).unwrap_or(u16::MAX),
        fps_milli: (video.fps * 1000.0).round() as u32,
        name: name.to_owned(),
        token: String::new(),
    }
}

/// Checks a client name the way the hub will, so mistakes show before connecting.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > vidcast_proto::MAX_NAME_LEN {
        bail!(
            "client name must be 1 to {} bytes, got {:?}",
            vidcast_proto::MAX_NAME_LEN,
            name
        );
    }
    if name.chars().any(char::is_control) {
        bail!("client name {name:?} has control characters");
    }
    Ok(())
}

/// A paced test pattern of `video`'s size and rate, labelled `name`.
pub fn test_pattern(name: &str, video: &VideoArgs, clock: Arc<dyn Clock>) -> Result<TestPattern> {
    if !(video.fps > 0.0 && video.fps <= 1000.0) {
        bail!("--fps must be between 0 and 1000, got {}", video.fps);
    }
    let mut pattern = TestPattern::new(
        TestPatternConfig {
            width: video.width,
            height: video.height,
            fps: video.fps,
            label: name.to_owned(),
            paced: true,
        },
        clock,
    )
    .context("cannot start the test pattern")?;
    pattern.set_noise(video.noise);
    Ok(pattern)
}

/// Starts a test-pattern capture thread feeding a new frame slot.
pub fn start_test_pattern(
    name: &str,
    video: &VideoArgs,
    clock: Arc<dyn Clock>,
) -> Result<(Capture, watch::Receiver<Option<vidcast_proto::Frame>>)> {
    let source = test_pattern(name, video, clock)?;
    let encoder = JpegEncoder::new(video.quality).context("cannot start the JPEG encoder")?;
    let (tx, rx) = watch::channel(None);
    let capture = Capture::start(Box::new(source), Box::new(encoder), tx)
        .context("cannot start the capture thread")?;
    Ok((capture, rx))
}

pub fn main(args: SendArgs) -> Result<()> {
    if args.source != "test" {
        bail!(
            "source {:?} is not available yet; this build has \"test\" (camera, file and stdin sources are on the way)",
            args.source
        );
    }
    let name = args.name.clone().unwrap_or_else(default_name);
    check_name(&name)?;
    if args.legacy {
        if args.tls.is_requested() {
            bail!("--legacy speaks the original plain-TCP format, which has no TLS; drop the --tls options");
        }
        return crate::legacy_send::main(&args, &name);
    }
    crate::runtime()?.block_on(async {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        let addrs = vidcast_client::resolve(&args.hub).await?;
        let adaptation = (!args.no_adapt).then(|| {
            Arc::new(vidcast_client::adapt::LinkAdaptation::new(
                args.video.quality,
                args.video.fps,
                (args.video.width, args.video.height),
            ))
        });
        let (capture, mut frames) = match &adaptation {
            Some(adaptation) => {
                let source = test_pattern(&name, &args.video, Arc::clone(&clock))?;
                let (tx, rx) = watch::channel(None);
                let capture = Capture::start_adaptive(
                    Box::new(source),
                    Arc::clone(&adaptation.control),
                    tx,
                )
                .context("cannot start the capture thread")?;
                (capture, rx)
            }
            None => start_test_pattern(&name, &args.video, Arc::clone(&clock))?,
        };
        // With --frames, a forwarder ends the stream after N frames (a "video finished").
        if let Some(limit) = args.frames {
            let (tx, rx) = watch::channel(None);
            let mut upstream = frames;
            tokio::spawn(async move {
                let mut forwarded = 0;
                while forwarded < limit && upstream.changed().await.is_ok() {
                    let frame = upstream.borrow_and_update().clone();
                    tx.send_replace(frame);
                    forwarded += 1;
                }
            });
            frames = rx;
        }
        let (stats_tx, stats_rx) = watch::channel(vidcast_client::LiveStats::default());
        if args.stats {
            tokio::spawn(log_stats(stats_rx));
        }
        let options = vidcast_client::PublishOptions {
            timing: Timing::default(),
            stats: Some(stats_tx),
            tls: args.tls.client_tls(&args.hub)?,
            adaptation,
        };
        let mut hello = hello(&name, &args.video);
        hello.token = args.token.clone().unwrap_or_default();
        if hello.token.len() > vidcast_proto::MAX_TOKEN_LEN {
            bail!("--token is longer than {} bytes", vidcast_proto::MAX_TOKEN_LEN);
        }
        let summary = vidcast_client::publish_with_reconnect(
            &addrs,
            hello,
            options,
            &mut frames,
            Arc::clone(&clock),
            !args.no_reconnect,
            args.max_backoff,
            crate::shutdown::signal(),
        )
        .await;
        let stats = Arc::clone(&capture.stats);
        if let Err(e) = capture.join() {
            tracing::warn!("capture stopped with an error: {e}");
        }
        let summary = summary?;
        let captured = stats.captured.load(std::sync::atomic::Ordering::Relaxed);
        info!(
            "done after {} session(s): {}; captured {captured}, sent {}, dropped {} (latest frame wins), {} bytes",
            summary.sessions,
            summary
                .last_reason
                .map_or_else(|| "stopped".to_owned(), |r| r.to_string()),
            summary.frames_sent,
            captured.saturating_sub(summary.frames_sent),
            summary.bytes_sent
        );
        Ok(())
    })
}

/// Logs the publisher's own view of its connection once a second.
async fn log_stats(mut stats: watch::Receiver<vidcast_client::LiveStats>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut last_bytes = 0;
    loop {
        ticker.tick().await;
        if stats.has_changed().is_err() {
            return;
        }
        let s = *stats.borrow_and_update();
        let mbps = (s.connection.bytes_sent - last_bytes) as f64 * 8.0 / 1e6;
        last_bytes = s.connection.bytes_sent;
        match s.tcp {
            Some(t) => info!(
                "sent {} frames ({} dropped), {mbps:.1} Mbit/s; tcp rtt {:.1} ms ± {:.1}, cwnd {} ({} kB), in flight {} kB, unsent {} kB, retrans {}, delivery {:.1} Mbit/s",
                s.connection.frames_sent,
                s.connection.frames_dropped,
                f64::from(t.rtt_us) / 1000.0,
                f64::from(t.rttvar_us) / 1000.0,
                t.cwnd_segments,
                t.cwnd_bytes() / 1000,
                t.in_flight_bytes() / 1000,
                t.notsent_bytes / 1000,
                t.total_retrans,
                t.delivery_rate as f64 * 8.0 / 1e6,
            ),
            None => info!(
                "sent {} frames ({} dropped), {mbps:.1} Mbit/s",
                s.connection.frames_sent, s.connection.frames_dropped
            ),
        }
    }
}
