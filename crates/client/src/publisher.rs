//! The publisher's drive loop: owns the socket, feeds the protocol, hands it frames.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info};
use vidcast_media::Clock;
use vidcast_proto::{
    ClientConnection, ClientEvent, CloseReason, ConnectionStats, EncoderReport, Frame, GoodbyeCode,
    Hello, SenderReport, Timestamp, Timing, WriteQueue,
};

use crate::adapt::{AdaptCause, Adaptation, LinkAdaptation, LinkSample, RateModel};
use crate::error::PublishError;
use crate::tls::ClientTls;

/// How often the publisher samples its TCP statistics and reports them to the hub.
const REPORT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// What a publisher reports about itself while it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LiveStats {
    /// This side's kernel TCP statistics.
    pub tcp: Option<vidcast_tcpinfo::TcpStats>,
    /// Frames, bytes, drops so far.
    pub connection: ConnectionStats,
    /// Last RTT measured by pings, µs.
    pub ping_rtt_us: Option<u64>,
}

/// Settings of [`publish`].
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Heartbeat and timeouts.
    pub timing: Timing,
    /// Where to put live statistics (updated a few times a second), if anyone wants them.
    pub stats: Option<watch::Sender<LiveStats>>,
    /// Speak TLS to the hub with this setup (the hub must have TLS on).
    pub tls: Option<ClientTls>,
    /// Adapt the encoder to the link (quality, then rate, then size); `None` sends as set.
    pub adaptation: Option<Arc<LinkAdaptation>>,
    /// Raised when the encoder should make a keyframe: the hub asked, a frame was dropped
    /// here, or a session began (H.264; `None` for all-keyframe codecs like JPEG).
    pub keyframes: Option<Arc<crate::KeyframeFlag>>,
    /// Set to true when the hub accepts the stream, so a file source can wait for its
    /// audience instead of playing its first seconds into the handshake.
    pub accepted: Option<watch::Sender<bool>>,
}

/// How a publishing session ended.
#[derive(Debug, Clone)]
pub struct PublishReport {
    /// The id the hub gave the stream.
    pub stream_id: u64,
    /// Bytes and frames sent, frames dropped in the one-frame slot.
    pub stats: ConnectionStats,
    /// Why it ended.
    pub reason: CloseReason,
    /// Last measured round-trip time to the hub, µs.
    pub rtt_us: Option<u64>,
}

/// Streams frames to a hub over `stream` until the frame source ends (goodbye "video
/// finished"), `shutdown` completes (goodbye "publisher stopped"), or the connection fails.
///
/// `frames` carries the newest encoded frame; the loop moves each new one into the
/// connection's one-frame slot, so a slow link drops old frames instead of queueing them.
pub async fn publish(
    stream: TcpStream,
    hello: Hello,
    options: PublishOptions,
    frames: &mut watch::Receiver<Option<Frame>>,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) -> Result<PublishReport, PublishError> {
    let addr = stream.peer_addr().map_err(|source| PublishError::Io {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    // TCP_INFO is read from the socket itself, whatever wraps it; the stream outlives every read.
    let fd = stream.as_raw_fd();
    let Some(tls) = options.tls.clone() else {
        return drive(stream, fd, addr, hello, options, frames, clock, shutdown).await;
    };
    let stream = tls
        .handshake(stream, addr, options.timing.handshake_timeout)
        .await?;
    drive(stream, fd, addr, hello, options, frames, clock, shutdown).await
}

/// The drive loop over any byte stream (plain TCP or TLS); `fd` is the TCP socket underneath.
#[allow(clippy::too_many_arguments)]
async fn drive<S>(
    stream: S,
    fd: RawFd,
    addr: SocketAddr,
    hello: Hello,
    options: PublishOptions,
    frames: &mut watch::Receiver<Option<Frame>>,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) -> Result<PublishReport, PublishError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let now = || Timestamp::from_micros(clock.now_us());
    let mut conn = ClientConnection::new(hello, options.timing, now());
    let mut report_ticker = tokio::time::interval(REPORT_EVERY);
    report_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut inbuf = BytesMut::with_capacity(4096);
    let mut out = WriteQueue::default();
    let mut stream_id = None;
    let mut end: Option<CloseReason> = None;
    let mut io_error = None;
    let mut reading = true;
    let mut frames_open = true;
    let mut stopping = false;
    let started = tokio::time::Instant::now();
    if let Some(adaptation) = &options.adaptation {
        adaptation.with(|a| a.reset_counters());
    }
    tokio::pin!(shutdown);

    loop {
        while let Some(event) = conn.poll_event() {
            match event {
                ClientEvent::Accepted(welcome) => {
                    if welcome.name.is_empty() {
                        info!("connected to hub {addr} as stream {}", welcome.stream_id);
                    } else {
                        // A name another client holds is shown with a number (`pi-2`).
                        info!(
                            "connected to hub {addr} as stream {} \"{}\"",
                            welcome.stream_id, welcome.name
                        );
                    }
                    stream_id = Some(welcome.stream_id);
                    if let Some(adaptation) = &options.adaptation {
                        conn.send_encoder_report(encoder_report(adaptation));
                    }
                    if let Some(accepted) = &options.accepted {
                        accepted.send_replace(true);
                    }
                    // A new session's viewers have nothing to predict from.
                    if let Some(keyframes) = &options.keyframes {
                        keyframes.request();
                    }
                }
                ClientEvent::KeyframeRequested => {
                    debug!("hub {addr} asked for a keyframe");
                    if let Some(keyframes) = &options.keyframes {
                        keyframes.request();
                    }
                }
                ClientEvent::Closed(reason) => {
                    debug!("connection to {addr} closing: {reason}");
                    end = Some(reason);
                }
                ClientEvent::Frame { .. }
                | ClientEvent::Stream(_)
                | ClientEvent::StreamRemoved { .. }
                | ClientEvent::StreamFrame { .. } => {}
            }
        }
        if io_error.is_none() {
            out.fill(|| conn.poll_transmit());
        }
        if out.is_empty() && conn.is_closed() {
            break;
        }
        let wake_at = conn
            .poll_timeout()
            .map(|t| tokio::time::Instant::now() + t.saturating_since(now()));
        if inbuf.capacity() - inbuf.len() < 1024 {
            inbuf.reserve(4096);
        }
        let has_output = !out.is_empty();
        let wants_frames = frames_open && conn.is_streaming();

        tokio::select! {
            read = reader.read_buf(&mut inbuf), if reading => match read {
                Ok(0) => {
                    reading = false;
                    conn.handle_eof(&inbuf);
                }
                Ok(_) => conn.handle_data(now(), &mut inbuf),
                Err(e) => {
                    reading = false;
                    io_error = Some(e);
                    conn.handle_eof(&inbuf);
                }
            },
            written = async {
                let slices = out.slices();
                writer.write_vectored(&slices).await
            }, if has_output => match written {
                Ok(n) => out.advance(n),
                Err(e) => {
                    out.clear();
                    io_error = Some(e);
                    conn.handle_eof(&inbuf);
                }
            },
            changed = frames.changed(), if wants_frames => match changed {
                Ok(()) => {
                    let frame = frames.borrow_and_update().clone();
                    if let Some(frame) = frame {
                        // A frame dropped from the slot breaks an inter-frame chain: start
                        // a new one without waiting for the hub to notice.
                        if conn.send_frame(frame).is_some() {
                            if let Some(keyframes) = &options.keyframes {
                                keyframes.request();
                            }
                        }
                    }
                }
                Err(_) => {
                    frames_open = false;
                    info!("video finished: the source ended; saying goodbye to hub {addr}");
                    conn.close(GoodbyeCode::EndOfStream, "video finished");
                }
            },
            _ = async {
                match wake_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => conn.handle_timeout(now()),
            _ = report_ticker.tick(), if conn.is_streaming() => {
                let tcp = vidcast_tcpinfo::read(fd);
                let stats = conn.stats();
                if let Some(adaptation) = &options.adaptation {
                    let sample = LinkSample {
                        at_us: started.elapsed().as_micros() as u64,
                        frames_sent: stats.frames_sent,
                        frames_dropped: stats.frames_dropped,
                        bytes_delivered: tcp.map_or(stats.bytes_sent, |t| t.bytes_acked),
                        rtt_us: tcp.map(|t| t.rtt_us),
                    };
                    if let Some(change) = adaptation.with(|a| a.on_sample(sample)) {
                        adaptation.control.set(change.settings);
                        log_adaptation(addr, adaptation, &change);
                        conn.send_encoder_report(encoder_report(adaptation));
                    }
                }
                if let Some(t) = tcp {
                    conn.send_report(SenderReport {
                        sampled_us: now().as_micros(),
                        rtt_us: t.rtt_us,
                        rttvar_us: t.rttvar_us,
                        cwnd_segments: t.cwnd_segments,
                        mss: t.mss,
                        unacked_segments: t.unacked_segments,
                        total_retrans: t.total_retrans,
                        notsent_bytes: t.notsent_bytes,
                        delivery_rate: t.delivery_rate,
                        bytes_acked: t.bytes_acked,
                        frames_dropped: stats.frames_dropped,
                    });
                }
                if let Some(tx) = &options.stats {
                    tx.send_replace(LiveStats { tcp, connection: stats, ping_rtt_us: conn.clock().last_rtt_us() });
                }
            }
            () = &mut shutdown, if !stopping => {
                stopping = true;
                conn.close(GoodbyeCode::Normal, "publisher stopped");
            }
        }
        if io_error.is_some() && !reading {
            // Nothing more can be said or heard.
            while conn.poll_transmit().is_some() {}
        }
    }
    let _ = writer.shutdown().await;

    let reason = end.unwrap_or(CloseReason::PeerClosed {
        mid_message: false,
        offset: conn.stats().bytes_received,
    });
    let Some(stream_id) = stream_id else {
        return Err(match (reason, io_error) {
            (CloseReason::Rejected { code, reason }, _) => {
                PublishError::Rejected { addr, code, reason }
            }
            (_, Some(source)) => PublishError::Io { addr, source },
            (reason, None) => PublishError::Handshake { addr, reason },
        });
    };
    if let Some(source) = io_error {
        return Err(PublishError::Io { addr, source });
    }
    Ok(PublishReport {
        stream_id,
        stats: conn.stats(),
        reason,
        rtt_us: conn.clock().last_rtt_us(),
    })
}

/// What `adaptation` now sends, for the hub.
fn encoder_report(adaptation: &LinkAdaptation) -> EncoderReport {
    let (level, link_bps) = adaptation.with(|a| (a.level(), a.link_bps()));
    let settings = adaptation.control.get();
    let (width, height) = adaptation.size_at(settings.scale);
    EncoderReport {
        level: u8::try_from(level).unwrap_or(u8::MAX),
        quality: settings.quality,
        fps_milli: (settings.fps * 1000.0).round() as u32,
        width: u16::try_from(width).unwrap_or(u16::MAX),
        height: u16::try_from(height).unwrap_or(u16::MAX),
        link_bps: link_bps.map_or(0, |bps| bps.round() as u64),
    }
}

fn log_adaptation(addr: SocketAddr, adaptation: &LinkAdaptation, change: &Adaptation) {
    let s = change.settings;
    let (width, height) = adaptation.size_at(s.scale);
    let link = change.link_bps.map_or_else(
        || "unknown".to_owned(),
        |bps| format!("{:.1} Mbit/s", bps / 1e6),
    );
    let why = match change.cause {
        AdaptCause::Congested => "link to the hub is congested",
        AdaptCause::Probe => "link has been clear; trying better",
        AdaptCause::ProbeFailed => "the better level congested the link again",
    };
    let quality = match adaptation.with(|a| a.model()) {
        RateModel::JpegQuality => format!("quality {}", s.quality),
        RateModel::BitratePercent => format!("{}% of --bitrate", s.quality),
    };
    info!(
        "adapting to hub {addr}: {why} (link {link}) → level {}: {quality}, {:.1} fps, {width}x{height}",
        change.level, s.fps
    );
}
