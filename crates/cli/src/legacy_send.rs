//! `vidcast send --legacy`: any source in the original Python project's format, to its
//! `server.py` (the work is in `vidcast_client::legacy`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::watch;
use tracing::{info, warn};
use vidcast_client::legacy::{send_legacy, start_capture, LegacyEnd, LegacyOptions};
use vidcast_media::{Clock, VideoSource};

use crate::send::SendArgs;

/// Streams until the video ends, Ctrl-C, or (with `--no-reconnect`) the server is lost.
pub fn main(args: &SendArgs, source: Box<dyn VideoSource>, clock: Arc<dyn Clock>) -> Result<()> {
    if args.token.is_some() {
        warn!("the token is not sent: the original format has no authentication");
    }
    crate::runtime()?.block_on(async {
        let addrs = vidcast_client::resolve(&args.hub).await?;
        let (slot, mut frames) = watch::channel(None);
        let capture =
            start_capture(source, args.frames, slot).context("cannot start the capture thread")?;
        let options = LegacyOptions {
            reconnect: !args.no_reconnect,
            max_backoff: args.max_backoff,
            jitter_seed: clock.now_us(),
            ..LegacyOptions::default()
        };
        let summary = send_legacy(&addrs, &mut frames, &options, crate::shutdown::signal()).await;
        drop(frames);
        let stats = Arc::clone(&capture.stats);
        if let Err(e) = capture.join() {
            warn!("capture stopped with an error: {e}");
        }
        // Nothing was sent when the first connection failed: the error alone says it all.
        let is_failed = matches!(summary.end, LegacyEnd::Failed(_));
        if !(is_failed && summary.connections == 0) {
            log_summary(&addrs[0], &summary, stats.captured.load(Ordering::Relaxed));
        }
        match summary.end {
            LegacyEnd::Failed(e) => Err(e.into()),
            LegacyEnd::SourceEnded | LegacyEnd::Stopped => Ok(()),
        }
    })
}

fn log_summary(
    addr: &std::net::SocketAddr,
    summary: &vidcast_client::legacy::LegacySummary,
    captured: u64,
) {
    info!(
        "legacy stream to {addr} done after {} connection(s): {}; captured {captured}, sent {}, dropped {} (latest frame wins), {} bytes",
        summary.connections,
        summary.end,
        summary.frames_sent,
        summary.frames_dropped,
        summary.bytes_sent
    );
}
