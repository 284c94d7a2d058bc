//! `vidcast send`: publish a stream.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use tokio::sync::watch;
use tracing::info;
use vidcast_client::{Capture, KeyframeFlag};
use vidcast_media::{
    Clock, Encoder, H264Config, H264Encoder, JpegEncoder, OpenOptions, SourceSpec, SystemClock,
    VideoSource,
};
use vidcast_proto::{Codec, Timing};

use crate::video::{check_name, default_name, hello_for, parse_bitrate, VideoArgs};

/// Options of `vidcast send`.
#[derive(Args, Debug, Clone)]
pub struct SendArgs {
    /// The hub: host or host:port (default port 9999); with --legacy, the original server.py.
    #[arg(value_parser = crate::addr::parse_hub)]
    pub hub: String,
    /// Video source: "test" (a moving pattern with frame number and capture time burnt in);
    /// "camera", "camera:N" or /dev/videoN (V4L2; `vidcast devices` lists them); a video
    /// file (.y4m and H.264 .mp4 natively, anything else through ffmpeg if installed),
    /// played at its own frame rate from the moment the hub accepts the stream; "-" for
    /// Y4M on stdin (e.g. `ffmpeg -i x.mkv -f yuv4mpegpipe - | vidcast send --source - HUB`);
    /// or an IP camera, rtsp://[user:pass@]host[:port]/path (its H.264 is sent as it is
    /// unless --width, --height, --fps or --codec jpeg ask for pictures; reconnects on its own).
    #[arg(help_heading = "Source", long, default_value = "test")]
    pub source: String,
    /// How an rtsp:// source carries RTP: tcp (interleaved in the RTSP connection; works
    /// through NAT and firewalls) or udp (less delay behind a lost packet; lost ones stay lost).
    #[arg(help_heading = "Source", long, default_value = "tcp")]
    pub rtsp_transport: vidcast_rtsp::RtspTransport,
    /// Play the file again from the start each time it ends (not for stdin or cameras).
    #[arg(help_heading = "Source", long = "loop")]
    pub looping: bool,
    /// Stop after this many frames (default: run until Ctrl-C, or the end of the file).
    #[arg(help_heading = "Source", long)]
    pub frames: Option<u64>,
    #[command(flatten, next_help_heading = "Picture")]
    pub video: VideoArgs,
    /// Video codec: h264 (constrained baseline at --bitrate: a tenth to a fifteenth of JPEG's
    /// bytes for the same picture on camera-like content) or jpeg (every frame stands alone;
    /// costs less CPU, and an MJPEG camera's own frames go out without re-encoding).
    #[arg(help_heading = "Encoding", long, value_enum, default_value_t = Codec::H264)]
    pub codec: Codec,
    /// H.264 target bitrate in bits per second: 1500000, 1.5M, 800k.
    #[arg(help_heading = "Encoding", long, default_value = "1.5M", value_parser = parse_bitrate)]
    pub bitrate: u32,
    /// H.264 keyframe interval: a viewer who joins waits at most this long (the hub also
    /// asks for a keyframe when one joins).
    #[arg(help_heading = "Encoding", long, default_value = "2s", value_parser = crate::duration::parse)]
    pub keyint: Duration,
    /// Always send at --quality, --fps and full size (H.264: --bitrate), even when the link
    /// cannot carry it (frames are then dropped, latest wins). By default a congested link
    /// lowers JPEG quality, then the frame rate, then the picture size (H.264: the bit rate,
    /// then the frame rate), and climbs back when it recovers.
    #[arg(help_heading = "Encoding", long)]
    pub no_adapt: bool,
    /// Name shown on the hub (default: this machine's host name); also burnt into the picture.
    #[arg(help_heading = "Network", long)]
    pub name: Option<String>,
    /// Token the hub requires (also VIDCAST_TOKEN); never printed.
    #[arg(
        help_heading = "Network",
        long,
        env = "VIDCAST_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Give up when the hub is unreachable or goes away, instead of reconnecting forever.
    #[arg(help_heading = "Network", long)]
    pub no_reconnect: bool,
    /// Longest wait between reconnection attempts.
    #[arg(help_heading = "Network", long, default_value = "5s", value_parser = crate::duration::parse)]
    pub max_backoff: Duration,
    /// Log this side's TCP statistics every second (RTT, cwnd, retransmissions, unsent bytes,
    /// delivery rate) next to frames sent and dropped.
    #[arg(help_heading = "Network", long)]
    pub stats: bool,
    /// Speak the original Python project's format (u64 length + pickled raw BGR frame) to its
    /// server.py instead of vidcast's protocol, so a hub can be replaced last. Any --source
    /// works (frames go raw). That format carries no name, quality or token: --name only
    /// labels the test pattern, --quality and --token are unused.
    #[arg(help_heading = "Network", long, conflicts_with = "stats")]
    pub legacy: bool,
    #[command(flatten, next_help_heading = "TLS")]
    pub tls: crate::tls_flags::TlsFlags,
}

/// Opens the source the flags name, at the size and rate they ask for.
pub fn open_source(
    args: &SendArgs,
    spec: &SourceSpec,
    name: &str,
    clock: Arc<dyn Clock>,
) -> Result<Box<dyn VideoSource>> {
    if let Some(fps) = args.video.fps {
        if !(fps > 0.0 && fps <= 1000.0) {
            bail!("--fps must be above 0 and at most 1000, got {fps}");
        }
    }
    if args.looping && !matches!(spec, SourceSpec::File(_)) {
        bail!("--loop repeats a video file; {:?} is not one", args.source);
    }
    let options = OpenOptions {
        clock,
        looping: args.looping,
        width: args.video.width,
        height: args.video.height,
        fps: args.video.fps,
        label: name.to_owned(),
        noise: args.video.noise,
        h264_passthrough: args.codec == Codec::H264 && !args.legacy,
    };
    let source = vidcast_media::source::open(spec, &options)?;
    // The test pattern says all it has to say in its picture; files and cameras say here
    // what was found (format, size, rate), which is what one checks first when in doubt.
    if *spec != SourceSpec::TestPattern {
        info!("source: {}", source.describe());
    }
    Ok(source)
}

/// The capture thread, started now (live sources) or once the hub accepts the stream
/// (files and stdin play from their start for whoever watches).
enum Starter {
    Now(Capture),
    Later(tokio::task::JoinHandle<Result<Option<Capture>>>),
}

impl Starter {
    /// The capture thread if it was started; a pending start is called off.
    async fn into_capture(self) -> Result<Option<Capture>> {
        match self {
            Starter::Now(capture) => Ok(Some(capture)),
            Starter::Later(task) if task.is_finished() => task.await?,
            Starter::Later(task) => {
                task.abort();
                Ok(None)
            }
        }
    }
}

/// Opens an rtsp:// camera: its own H.264 passed through unless the flags ask for pictures
/// (a size, a rate, JPEG or the legacy format), then decoded and fitted like any source.
pub fn open_rtsp(args: &SendArgs, clock: Arc<dyn Clock>) -> Result<Box<dyn VideoSource>> {
    if args.looping {
        bail!("--loop repeats a video file; an RTSP camera is live");
    }
    if let Some(fps) = args.video.fps {
        if !(fps > 0.0 && fps <= 1000.0) {
            bail!("--fps must be above 0 and at most 1000, got {fps}");
        }
    }
    let passthrough = args.codec == Codec::H264
        && !args.legacy
        && args.video.width.is_none()
        && args.video.height.is_none()
        && args.video.fps.is_none();
    let camera = vidcast_rtsp::RtspSource::open(vidcast_rtsp::PullOptions {
        url: args.source.clone(),
        transport: args.rtsp_transport,
        passthrough,
        clock,
        open_timeout: RTSP_OPEN_TIMEOUT,
    })?;
    let source = vidcast_media::source::fit(
        Box::new(camera),
        args.video.width,
        args.video.height,
        args.video.fps,
    )?;
    info!("source: {}", source.describe());
    Ok(source)
}

/// How long `send` waits for a camera's first frame before giving up (it reconnects on its
/// own once it had one).
pub const RTSP_OPEN_TIMEOUT: Duration = Duration::from_secs(10);

pub fn main(args: SendArgs) -> Result<()> {
    let name = args.name.clone().unwrap_or_else(default_name);
    check_name(&name)?;
    if args.legacy && args.tls.is_requested() {
        bail!("--legacy speaks the original plain-TCP format, which has no TLS; drop the --tls options");
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let (source, is_live) = if vidcast_rtsp::is_rtsp_url(&args.source) {
        (open_rtsp(&args, Arc::clone(&clock))?, true)
    } else {
        let spec = SourceSpec::parse(&args.source)?;
        let source = open_source(&args, &spec, &name, Arc::clone(&clock))?;
        (source, spec.is_live())
    };
    if args.legacy {
        return crate::legacy_send::main(&args, source, clock);
    }
    let h264_config = H264Config::live(args.bitrate, source.fps(), args.keyint);
    let encoder: Box<dyn Encoder> = match args.codec {
        Codec::Jpeg => {
            Box::new(JpegEncoder::new(args.video.quality).context("cannot start the JPEG encoder")?)
        }
        Codec::H264 => {
            Box::new(H264Encoder::new(h264_config).context("cannot start the H.264 encoder")?)
        }
    };
    let mut hello = hello_for(&name, source.size(), source.fps());
    hello.codec = Ok(encoder.codec());
    let keyframes = (args.codec == Codec::H264).then(Arc::<KeyframeFlag>::default);
    // Link adaptation steers JPEG quality, rate and size, or the H.264 bit rate and rate.
    let adaptation = (!args.no_adapt).then(|| {
        Arc::new(match args.codec {
            Codec::Jpeg => vidcast_client::adapt::LinkAdaptation::new(
                args.video.quality,
                source.fps(),
                source.size(),
            ),
            Codec::H264 => {
                vidcast_client::adapt::LinkAdaptation::for_h264(source.fps(), source.size())
            }
        })
    });
    crate::runtime()?.block_on(async {
        let addrs = vidcast_client::resolve(&args.hub).await?;
        let (tx, mut frames) = watch::channel(None);
        let (accepted_tx, mut accepted_rx) = watch::channel(false);
        let control = adaptation.as_ref().map(|a| Arc::clone(&a.control));
        let capture_keyframes = keyframes.clone().unwrap_or_default();
        let codec = args.codec;
        let start = move || {
            match control {
                Some(control) if codec == Codec::H264 => Capture::start_adaptive_h264(
                    source,
                    control,
                    h264_config,
                    tx,
                    capture_keyframes,
                ),
                Some(control) => Capture::start_adaptive(source, control, tx),
                None => Capture::start_with_keyframes(source, encoder, tx, capture_keyframes),
            }
            .context("cannot start the capture thread")
        };
        let starter = if is_live {
            Starter::Now(start()?)
        } else {
            Starter::Later(tokio::spawn(async move {
                if accepted_rx.wait_for(|&accepted| accepted).await.is_err() {
                    return Ok(None);
                }
                start().map(Some)
            }))
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
            keyframes,
            accepted: Some(accepted_tx),
        };
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
            (!args.no_reconnect).then_some(args.max_backoff),
            crate::shutdown::signal(),
        )
        .await;
        let capture = starter.into_capture().await?;
        let captured = capture
            .as_ref()
            .map_or(0, |c| c.stats.captured.load(std::sync::atomic::Ordering::Relaxed));
        let source_error = match capture {
            Some(capture) => join_capture(capture).await.err(),
            None => None,
        };
        let summary = summary?;
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
        match source_error {
            Some(e) => Err(anyhow::Error::new(e).context("the source failed")),
            None => Ok(()),
        }
    })
}

/// Stops the capture thread and returns its error, if it had one. A thread blocked in a read
/// that may never return (a silent stdin pipe) is left behind after a moment rather than
/// holding up the exit.
async fn join_capture(capture: Capture) -> Result<(), vidcast_media::MediaError> {
    capture.stop();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A plain thread, not spawn_blocking: the runtime waits for its blocking tasks on exit.
    let joiner = std::thread::Builder::new()
        .name("capture-join".into())
        .spawn(move || {
            let _ = tx.send(capture.join());
        });
    if joiner.is_err() {
        return Ok(());
    }
    match tokio::time::timeout(Duration::from_secs(2), rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) | Err(_) => {
            tracing::warn!("the source did not stop within 2 s (blocked reading?); leaving it");
            Ok(())
        }
    }
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
        let sent = format!(
            "sent {} frames ({} dropped), {mbps:.1} Mbit/s",
            s.connection.frames_sent, s.connection.frames_dropped
        );
        match s.tcp {
            Some(t) => info!(
                "{sent}; {}, cwnd {} ({} kB), in flight {} kB, unsent {} kB, retrans {}{}",
                believable_rtt(s.ping_rtt_us, t.rtt_us),
                t.cwnd_segments,
                t.cwnd_bytes() / 1000,
                t.in_flight_bytes() / 1000,
                t.notsent_bytes / 1000,
                t.total_retrans,
                delivery(t.delivery_rate),
            ),
            None => info!("{sent}"),
        }
    }
}

/// The RTT a user should believe, with its source named: the app-level ping when there is
/// one (the kernel's srtt is inflated by delayed ACKs on a one-way video stream), else srtt.
fn believable_rtt(ping_rtt_us: Option<u64>, srtt_us: u32) -> String {
    match ping_rtt_us.filter(|&us| us > 0) {
        Some(us) => format!("rtt {:.2} ms (app ping)", us as f64 / 1000.0),
        None => format!("rtt {:.1} ms (tcp srtt)", f64::from(srtt_us) / 1000.0),
    }
}

/// The kernel's delivery rate, when it is a link rate: 0 (no sample yet) and loopback
/// bursts above 10 Gbit/s say nothing about the link, so they are left out.
fn delivery(bytes_per_s: u64) -> String {
    let mbps = bytes_per_s as f64 * 8.0 / 1e6;
    if mbps > 0.0 && mbps <= 10_000.0 {
        format!(", delivery {mbps:.1} Mbit/s")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_names_its_rtt_and_leaves_out_rates_that_are_not_the_links() {
        assert_eq!(believable_rtt(Some(40), 28_000), "rtt 0.04 ms (app ping)");
        assert_eq!(believable_rtt(None, 28_000), "rtt 28.0 ms (tcp srtt)");
        assert_eq!(delivery(0), "");
        assert_eq!(delivery(9_354_625_000), "");
        assert_eq!(delivery(625_000), ", delivery 5.0 Mbit/s");
    }

    #[test]
    fn bitrates_take_k_and_m_suffixes() {
        assert_eq!(parse_bitrate("1.5M"), Ok(1_500_000));
        assert_eq!(parse_bitrate("800k"), Ok(800_000));
        assert_eq!(parse_bitrate("250000"), Ok(250_000));
        assert!(parse_bitrate("5").is_err());
        assert!(parse_bitrate("fast").is_err());
    }
}
