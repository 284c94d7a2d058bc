//! `serve --pull NAME=rtsp://…`: the hub pulls IP cameras itself.
//!
//! Each camera runs the same pipeline as `vidcast send --source rtsp://…` (the camera's H.264
//! passed through, keyframe gate, reconnects) inside the hub's process, and publishes to the
//! hub's own ingest port over loopback with the vidcast protocol. So a pulled camera is a
//! publisher like any other: registry entry, name, label, events, recording, restream,
//! limits, all with no second code path in the hub. The cost is one loopback TCP hop.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};
use vidcast_client::{Capture, KeyframeFlag};
use vidcast_media::{Clock, H264Config, H264Encoder, VideoSource};
use vidcast_proto::{Backoff, Codec, Timing};
use vidcast_rtsp::{PullOptions, RtspSource, RtspTransport};

/// One `--pull NAME=URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSpec {
    /// The stream's name on the hub.
    pub name: String,
    /// `rtsp://[user:pass@]host[:port]/path`.
    pub url: String,
}

/// Parses `NAME=rtsp://…`.
pub fn parse_pull(text: &str) -> Result<PullSpec, String> {
    let Some((name, url)) = text.split_once('=') else {
        return Err("expected NAME=rtsp://[user:pass@]host[:port]/path".into());
    };
    crate::video::check_name(name).map_err(|e| e.to_string())?;
    if !vidcast_rtsp::is_rtsp_url(url) {
        return Err(format!(
            "{}: only rtsp:// cameras can be pulled",
            vidcast_rtsp::redact(url)
        ));
    }
    Ok(PullSpec {
        name: name.to_owned(),
        url: url.to_owned(),
    })
}

/// Where the hub's own publishers reach it: the listening address, with a wildcard
/// replaced by loopback.
pub fn loopback(ingest: SocketAddr) -> SocketAddr {
    let ip = match ingest.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, ingest.port())
}

/// Wait before trying a camera that gave no first frame again: up to 10 s between attempts
/// (each attempt itself waits [`crate::send::RTSP_OPEN_TIMEOUT`]).
const OPEN_BACKOFF_CAP: Duration = Duration::from_secs(10);

/// Pulls `spec` into the hub at `hub` until `stop` turns true.
pub async fn run(
    spec: PullSpec,
    hub: SocketAddr,
    token: Option<String>,
    transport: RtspTransport,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let what = format!(
        "pull \"{}\" ({})",
        spec.name,
        vidcast_rtsp::redact(&spec.url)
    );
    let mut backoff =
        Backoff::starting_at(Duration::from_secs(1), OPEN_BACKOFF_CAP, clock.now_us());
    loop {
        let options = PullOptions {
            url: spec.url.clone(),
            transport,
            passthrough: true,
            clock: Arc::clone(&clock),
            open_timeout: crate::send::RTSP_OPEN_TIMEOUT,
        };
        let opened = tokio::select! {
            opened = tokio::task::spawn_blocking(move || RtspSource::open(options)) => opened,
            _ = stop.wait_for(|&s| s) => return,
        };
        match opened {
            Ok(Ok(source)) => {
                backoff.reset();
                info!("{what}: {}", source.describe());
                publish(
                    &what,
                    &spec.name,
                    source,
                    hub,
                    token.clone(),
                    &clock,
                    &mut stop,
                )
                .await;
                if *stop.borrow() {
                    return;
                }
            }
            Ok(Err(e)) => warn!("{what}: {e}"),
            Err(e) => warn!("{what}: the opening thread failed: {e}"),
        }
        let delay = backoff.next_delay();
        warn!("{what}: trying again in {delay:.1?}");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|&s| s) => return,
        }
    }
}

/// Publishes one opened camera until `stop`. The camera reconnects by itself; while it is
/// down (its session ended, or it sent nothing for `vidcast_rtsp::pull::DEAD_AFTER`), the
/// loopback publisher says goodbye, so the stream goes offline with the usual event and log
/// line within the hub's dead-peer deadline, and connects again under the same name when the
/// camera's next session delivers its first keyframe.
async fn publish(
    what: &str,
    name: &str,
    source: RtspSource,
    hub: SocketAddr,
    token: Option<String>,
    clock: &Arc<dyn Clock>,
    stop: &mut watch::Receiver<bool>,
) {
    let mut hello = crate::video::hello_for(name, source.size(), source.fps());
    hello.codec = Ok(Codec::H264);
    hello.token = token.unwrap_or_default();
    let mut live = source.liveness();
    // Only used if the camera ever handed over pictures; its own H.264 goes out as it is.
    let encoder = match H264Encoder::new(H264Config::live(
        1_500_000,
        source.fps(),
        Duration::from_secs(2),
    )) {
        Ok(encoder) => encoder,
        Err(e) => {
            warn!("{what}: cannot start the H.264 encoder: {e}");
            return;
        }
    };
    let keyframes = Arc::<KeyframeFlag>::default();
    let (tx, mut frames) = watch::channel(None);
    let capture = match Capture::start_with_keyframes(
        Box::new(source),
        Box::new(encoder),
        tx,
        Arc::clone(&keyframes),
    ) {
        Ok(capture) => capture,
        Err(e) => {
            warn!("{what}: cannot start the capture thread: {e}");
            return;
        }
    };
    let options = vidcast_client::PublishOptions {
        timing: Timing::default(),
        stats: None,
        tls: None,
        adaptation: None,
        keyframes: Some(keyframes),
        accepted: None,
    };
    loop {
        // Wait for the camera (it is up at first: `open` returned with a frame).
        tokio::select! {
            up = live.wait_for(|&l| l) => if up.is_err() {
                warn!("{what}: the camera's puller stopped");
                break;
            },
            _ = stop.wait_for(|&s| s) => break,
        }
        let mut stopped = stop.clone();
        let mut down = live.clone();
        let summary = vidcast_client::publish_with_reconnect(
            &[hub],
            hello.clone(),
            options.clone(),
            &mut frames,
            Arc::clone(clock),
            Some(Duration::from_secs(2)),
            async move {
                tokio::select! {
                    _ = stopped.wait_for(|&s| s) => {}
                    _ = down.wait_for(|&l| !l) => {}
                }
            },
        )
        .await;
        match summary {
            Ok(summary) => info!(
                "{what}: stopped publishing after {} session(s), {} frames sent",
                summary.sessions, summary.frames_sent
            ),
            Err(e) => {
                warn!("{what}: publishing to the hub failed: {e}");
                break;
            }
        }
        if *stop.borrow() {
            break;
        }
        if *live.borrow() {
            // The publisher ended on its own (the source finished): nothing more to send.
            break;
        }
        info!("{what}: the camera is down; its stream is offline until it comes back");
    }
    // The capture thread ends within a second of being told (its source polls the queue).
    capture.stop();
    drop(capture);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_flags_need_a_name_and_an_rtsp_url() {
        assert_eq!(
            parse_pull("door=rtsp://u:p@127.0.0.1:8554/live").expect("ok"),
            PullSpec {
                name: "door".into(),
                url: "rtsp://u:p@127.0.0.1:8554/live".into()
            }
        );
        assert!(parse_pull("rtsp://127.0.0.1/x").is_err());
        assert!(parse_pull("=rtsp://127.0.0.1/x").is_err());
        assert!(parse_pull("door=clip.mp4").is_err());
        let err = parse_pull("door=http://u:secret@127.0.0.1/x").expect_err("not rtsp");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn wildcard_listen_addresses_are_reached_over_loopback() {
        let v4: SocketAddr = "0.0.0.0:9999".parse().expect("addr");
        assert_eq!(loopback(v4), "127.0.0.1:9999".parse().expect("addr"));
        let v6: SocketAddr = "[::]:9999".parse().expect("addr");
        assert_eq!(loopback(v6), "[::1]:9999".parse().expect("addr"));
        let own: SocketAddr = "127.0.0.2:1".parse().expect("addr");
        assert_eq!(loopback(own), own);
    }
}
