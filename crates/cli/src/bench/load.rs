//! The load `vidcast bench` puts on a hub: pre-encoded frames handed to in-process
//! publishers at --fps, and an optional flood of silent connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};
use vidcast_client::PublishReport;
use vidcast_media::{
    pad_jpeg, Clock, EncodedFrame, Encoder, H264Config, H264Encoder, JpegEncoder, TestPattern,
    TestPatternConfig,
};
use vidcast_proto::{Codec, Frame};

use super::BenchArgs;
use crate::video::{hello, VideoArgs};

/// The publishers (and flood) of one run, running until [`Load::stop`].
pub(super) struct Load {
    stop_tx: watch::Sender<bool>,
    /// Turns true when the run stops; viewers started later follow it too.
    pub(super) stop_rx: watch::Receiver<bool>,
    publishers: JoinSet<Result<(String, PublishReport)>>,
    /// Silent connections the flood opened in all (reopened ones counted again).
    pub(super) flood_opened: Arc<AtomicU64>,
}

/// The name of bench publisher `i` (from 0).
pub(super) fn publisher_name(i: u32) -> String {
    format!("bench-{}", i + 1)
}

impl Load {
    /// Opens the flood (waiting up to 10 s for it), then starts --clients publishers of
    /// `frames` to `hub_addr`, their start phases spread over one frame period.
    pub(super) async fn start(
        args: &BenchArgs,
        codec: Codec,
        hub_addr: SocketAddr,
        frames: Vec<EncodedFrame>,
        clock: &Arc<dyn Clock>,
    ) -> Self {
        let (stop_tx, stop_rx) = watch::channel(false);
        let flood_opened = Arc::new(AtomicU64::new(0));
        if args.flood > 0 {
            tokio::spawn(flood(
                hub_addr,
                args.flood,
                Arc::clone(&flood_opened),
                stop_rx.clone(),
            ));
            let target = u64::from(args.flood);
            let deadline = Instant::now() + Duration::from_secs(10);
            while flood_opened.load(Ordering::Relaxed) < target && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            info!(
                "flood: {} silent connections open",
                flood_opened.load(Ordering::Relaxed)
            );
        }
        let video = VideoArgs {
            width: Some(args.width),
            height: Some(args.height),
            fps: Some(args.fps),
            quality: args.quality,
            noise: args.noise.unwrap_or(0),
        };
        let mut publishers = JoinSet::new();
        let period = (args.fps > 0.0).then(|| Duration::from_secs_f64(1.0 / args.fps));
        for i in 0..args.clients {
            let name = publisher_name(i);
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
                Arc::clone(clock),
                stop_rx.clone(),
            ));
            let clock = Arc::clone(clock);
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
        Load {
            stop_tx,
            stop_rx,
            publishers,
            flood_opened,
        }
    }

    /// Stops everything and collects what each publisher reports (within 10 s).
    pub(super) async fn stop(mut self) -> Vec<(String, PublishReport)> {
        let _ = self.stop_tx.send(true);
        let mut reports = Vec::new();
        let drained = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(joined) = self.publishers.join_next().await {
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
        reports
    }
}

/// Keeps `count` connections open that never say a word, reopening any the hub closes.
async fn flood(hub: SocketAddr, count: u32, opened: Arc<AtomicU64>, stop: watch::Receiver<bool>) {
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::channel::<()>(count as usize + 1);
    let open_one = |closed_tx: tokio::sync::mpsc::Sender<()>,
                    mut stop: watch::Receiver<bool>,
                    opened: Arc<AtomicU64>| async move {
        if let Ok(mut socket) = tokio::net::TcpStream::connect(hub).await {
            opened.fetch_add(1, Ordering::Relaxed);
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
pub(super) fn pre_encode(
    args: &BenchArgs,
    codec: Codec,
    clock: &Arc<dyn Clock>,
) -> Result<Vec<EncodedFrame>> {
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
