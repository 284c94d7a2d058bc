//! The publisher's session: feeds the protocol frames and link reports; the pump owns the socket.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use bytes::BytesMut;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};
use vidcast_media::Clock;
use vidcast_proto::{
    ClientConnection, ClientEvent, CloseReason, ConnectionStats, EncoderReport, Frame, GoodbyeCode,
    Hello, ProtocolError, SenderReport, Timestamp, Timing, Welcome,
};
use vidcast_pump::{Pump, Session};

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
    let link = Link {
        addr,
        fd: stream.as_raw_fd(),
    };
    let Some(tls) = options.tls.clone() else {
        return drive(stream, link, hello, options, frames, clock, shutdown).await;
    };
    let stream = tls
        .handshake(stream, addr, options.timing.handshake_timeout)
        .await?;
    drive(stream, link, hello, options, frames, clock, shutdown).await
}

/// The publisher's session over any byte stream (plain TCP or TLS), pumped until it ends.
async fn drive<S>(
    stream: S,
    link: Link,
    hello: Hello,
    options: PublishOptions,
    frames: &mut watch::Receiver<Option<Frame>>,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) -> Result<PublishReport, PublishError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let conn = ClientConnection::new(
        hello,
        options.timing,
        Timestamp::from_micros(clock.now_us()),
    );
    let mut report_ticker = tokio::time::interval(REPORT_EVERY);
    report_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    if let Some(adaptation) = &options.adaptation {
        adaptation.with(|a| a.reset_counters());
    }
    tokio::pin!(shutdown);
    let mut session = PublisherSession {
        conn,
        link,
        options,
        frames,
        clock,
        shutdown,
        report_ticker,
        started: tokio::time::Instant::now(),
        stream_id: None,
        end: None,
        io_error: None,
        frames_open: true,
        stopping: false,
        max_frame_bytes: None,
        last_size_step: None,
        too_large: None,
    };
    Pump::new(stream, BytesMut::with_capacity(READ_CHUNK))
        .run(&mut session)
        .await;
    session.report()
}

/// The hub's address and the TCP socket underneath whatever wraps it (for TCP_INFO).
#[derive(Debug, Clone, Copy)]
struct Link {
    addr: SocketAddr,
    fd: RawFd,
}

/// Receive buffer growth: the hub sends only small control messages to a publisher.
const READ_CHUNK: usize = 4096;

/// A publisher's connection to a hub, driven by the [`Pump`].
struct PublisherSession<'a, F> {
    conn: ClientConnection,
    link: Link,
    options: PublishOptions,
    frames: &'a mut watch::Receiver<Option<Frame>>,
    clock: Arc<dyn Clock>,
    shutdown: Pin<&'a mut F>,
    /// Samples TCP statistics and reports them (and adapts) every [`REPORT_EVERY`].
    report_ticker: tokio::time::Interval,
    started: tokio::time::Instant,
    /// The id the hub gave the stream, once welcomed.
    stream_id: Option<u64>,
    /// Why the connection ended, once it did.
    end: Option<CloseReason>,
    /// The first socket error, if any.
    io_error: Option<std::io::Error>,
    /// Whether the frame source is still running.
    frames_open: bool,
    /// Whether `shutdown` completed (the goodbye is on its way).
    stopping: bool,
    /// The largest frame the hub accepts, from its welcome.
    max_frame_bytes: Option<usize>,
    /// When the encoder was last stepped down for a frame over `max_frame_bytes`.
    last_size_step: Option<tokio::time::Instant>,
    /// A frame (bytes, limit) over the hub's limit that no lower level can avoid: the end.
    too_large: Option<(usize, usize)>,
}

/// What a publisher waits for besides its socket.
enum PublisherWake {
    /// The frame source has a new frame (`true`) or ended (`false`).
    Frame(bool),
    /// Time to sample and report the link.
    Report,
    /// The publisher is to stop.
    Shutdown,
}

impl<F: Future<Output = ()>> PublisherSession<'_, F> {
    fn on_accepted(&mut self, welcome: &Welcome) {
        let addr = self.link.addr;
        if welcome.name.is_empty() {
            info!("connected to hub {addr} as stream {}", welcome.stream_id);
        } else {
            // A name another client holds is shown with a number (`pi-2`).
            info!(
                "connected to hub {addr} as stream {} \"{}\"",
                welcome.stream_id, welcome.name
            );
        }
        self.stream_id = Some(welcome.stream_id);
        self.max_frame_bytes = usize::try_from(welcome.max_frame_bytes).ok();
        if let Some(adaptation) = &self.options.adaptation {
            self.conn.send_encoder_report(encoder_report(adaptation));
        }
        if let Some(accepted) = &self.options.accepted {
            accepted.send_replace(true);
        }
        // A new session's viewers have nothing to predict from.
        if let Some(keyframes) = &self.options.keyframes {
            keyframes.request();
        }
    }

    fn on_frame_source(&mut self, is_open: bool) {
        if !is_open {
            self.frames_open = false;
            info!(
                "video finished: the source ended; saying goodbye to hub {}",
                self.link.addr
            );
            self.conn.close(GoodbyeCode::EndOfStream, "video finished");
            return;
        }
        let frame = self.frames.borrow_and_update().clone();
        if let Some(frame) = frame {
            if let Some(limit) = self.max_frame_bytes.filter(|&l| frame.data.len() > l) {
                self.on_frame_too_large(frame.data.len(), limit);
                return;
            }
            // A frame dropped from the slot breaks an inter-frame chain: start a new one
            // without waiting for the hub to notice.
            if self.conn.send_frame(frame).is_some() {
                if let Some(keyframes) = &self.options.keyframes {
                    keyframes.request();
                }
            }
        }
    }

    /// Sending a frame over the hub's limit would only get the connection closed (and, with
    /// reconnection, closed again and again): it is not sent. The encoder steps down a level
    /// instead, or, when no level is left, the publisher stops with the reason.
    fn on_frame_too_large(&mut self, bytes: usize, limit: usize) {
        let addr = self.link.addr;
        // The frame is gone, so an inter-frame chain is broken.
        if let Some(keyframes) = &self.options.keyframes {
            keyframes.request();
        }
        let Some(adaptation) = self.options.adaptation.clone() else {
            return self.give_up_too_large(bytes, limit);
        };
        // Frames encoded before the last step are still on their way: one step per report.
        if self
            .last_size_step
            .is_some_and(|at| at.elapsed() < REPORT_EVERY)
        {
            return;
        }
        let now_us = self.started.elapsed().as_micros() as u64;
        let Some(change) = adaptation.with(|a| a.step_down_for_size(now_us)) else {
            return self.give_up_too_large(bytes, limit);
        };
        warn!(
            "frame of {bytes} bytes is over hub {addr}'s limit of {limit} (its \
             --max-frame-bytes); not sent, lowering the encoder"
        );
        self.last_size_step = Some(tokio::time::Instant::now());
        adaptation.control.set(change.settings);
        log_adaptation(addr, &adaptation, &change);
        self.conn.send_encoder_report(encoder_report(&adaptation));
    }

    fn give_up_too_large(&mut self, bytes: usize, limit: usize) {
        error!(
            "{}",
            PublishError::FrameTooLarge {
                addr: self.link.addr,
                bytes,
                limit
            }
        );
        self.too_large = Some((bytes, limit));
        self.conn.close(
            GoodbyeCode::Limit,
            &format!("frame of {bytes} bytes is over the hub's limit of {limit}"),
        );
    }

    /// Samples the socket's TCP statistics: adapts the encoder, reports to the hub, updates
    /// the live statistics.
    fn on_report_tick(&mut self) {
        let tcp = vidcast_tcpinfo::read(self.link.fd);
        let stats = self.conn.stats();
        if let Some(adaptation) = &self.options.adaptation {
            if adaptation.control.saw_passthrough() && adaptation.pass_through() {
                debug!(
                    "the source's own H.264 passes through: its bit rate is the source's, so \
                     link adaptation is off (latest frame still wins)"
                );
                self.conn.send_encoder_report(encoder_report(adaptation));
            }
        }
        if let Some(adaptation) = self
            .options
            .adaptation
            .as_ref()
            .filter(|a| !a.is_passthrough())
        {
            let sample = LinkSample {
                at_us: self.started.elapsed().as_micros() as u64,
                frames_sent: stats.frames_sent,
                frames_dropped: stats.frames_dropped,
                bytes_delivered: tcp.map_or(stats.bytes_sent, |t| t.bytes_acked),
                rtt_us: tcp.map(|t| t.rtt_us),
            };
            if let Some(change) = adaptation.with(|a| a.on_sample(sample)) {
                adaptation.control.set(change.settings);
                log_adaptation(self.link.addr, adaptation, &change);
                self.conn.send_encoder_report(encoder_report(adaptation));
            }
        }
        if let Some(t) = tcp {
            self.conn.send_report(SenderReport {
                sampled_us: self.now().as_micros(),
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
        if let Some(tx) = &self.options.stats {
            tx.send_replace(LiveStats {
                tcp,
                connection: stats,
                ping_rtt_us: self.conn.clock().last_rtt_us(),
            });
        }
    }

    /// How the session ended, once the pump is done with it.
    fn report(self) -> Result<PublishReport, PublishError> {
        let addr = self.link.addr;
        let reason = self.end.unwrap_or(CloseReason::PeerClosed {
            mid_message: false,
            offset: self.conn.stats().bytes_received,
        });
        let Some(stream_id) = self.stream_id else {
            return Err(match (reason, self.io_error) {
                (CloseReason::Rejected { code, reason }, _) => {
                    PublishError::Rejected { addr, code, reason }
                }
                (CloseReason::Protocol(ProtocolError::BadMagic { found }), None) => {
                    PublishError::NotAHub { addr, found }
                }
                (_, Some(source)) => PublishError::Io { addr, source },
                (reason, None) => PublishError::Handshake { addr, reason },
            });
        };
        if let Some((bytes, limit)) = self.too_large {
            return Err(PublishError::FrameTooLarge { addr, bytes, limit });
        }
        if let Some(source) = self.io_error {
            return Err(PublishError::Io { addr, source });
        }
        Ok(PublishReport {
            stream_id,
            stats: self.conn.stats(),
            reason,
            rtt_us: self.conn.clock().last_rtt_us(),
        })
    }
}

impl<F: Future<Output = ()>> Session for PublisherSession<'_, F> {
    type Conn = ClientConnection;
    type Wake = PublisherWake;

    fn conn(&mut self) -> &mut ClientConnection {
        &mut self.conn
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.clock.now_us())
    }

    fn read_chunk(&self, _inbuf: &BytesMut) -> usize {
        READ_CHUNK
    }

    fn on_event(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Accepted(welcome) => self.on_accepted(&welcome),
            ClientEvent::KeyframeRequested => {
                debug!("hub {} asked for a keyframe", self.link.addr);
                if let Some(keyframes) = &self.options.keyframes {
                    keyframes.request();
                }
            }
            ClientEvent::Closed(reason) => {
                debug!("connection to {} closing: {reason}", self.link.addr);
                self.end = Some(reason);
            }
            ClientEvent::Frame { .. }
            | ClientEvent::Stream(_)
            | ClientEvent::StreamRemoved { .. }
            | ClientEvent::StreamFrame { .. } => {}
        }
    }

    fn on_io_error(&mut self, error: std::io::Error) {
        self.io_error.get_or_insert(error);
    }

    async fn wake(&mut self) -> PublisherWake {
        let streaming = self.conn.is_streaming();
        let wants_frames = self.frames_open && streaming;
        tokio::select! {
            changed = self.frames.changed(), if wants_frames => PublisherWake::Frame(changed.is_ok()),
            _ = self.report_ticker.tick(), if streaming => PublisherWake::Report,
            () = self.shutdown.as_mut(), if !self.stopping => PublisherWake::Shutdown,
            else => std::future::pending().await,
        }
    }

    fn on_wake(&mut self, wake: PublisherWake) {
        match wake {
            PublisherWake::Frame(is_open) => self.on_frame_source(is_open),
            PublisherWake::Report => self.on_report_tick(),
            PublisherWake::Shutdown => {
                self.stopping = true;
                self.conn.close(GoodbyeCode::Normal, "publisher stopped");
            }
        }
    }
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
        AdaptCause::FrameTooLarge => "its frames are over the hub's size limit",
    };
    let quality = match adaptation.with(|a| a.model()) {
        RateModel::JpegQuality => format!("quality {}", s.quality),
        RateModel::BitratePercent => format!("{}% of --bitrate", s.quality),
    };
    // The start-up ramp (the ladder starts below full and climbs) is no news.
    if change.cause == AdaptCause::Probe && !adaptation.with(|a| a.has_congested()) {
        debug!(
            "starting up on hub {addr}: level {}: {quality}, {:.1} fps, {width}x{height}",
            change.level, s.fps
        );
        return;
    }
    info!(
        "adapting to hub {addr}: {why} (link {link}) → level {}: {quality}, {:.1} fps, {width}x{height}",
        change.level, s.fps
    );
}

/// A publisher's default name: this machine's host name, else "vidcast" (`vidcast send`
/// and the Python `Sender` without a name).
pub fn default_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "vidcast".to_owned())
}
