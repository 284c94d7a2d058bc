//! One push: a stream sent to one RTMP server, reconnecting with backoff, its outbox bounded
//! by dropping frames (counted) rather than by waiting.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use vidcast_media::Clock;
use vidcast_proto::{Backoff, Codec};
use vidcast_rtmp::{ClientEvent, ClientSession, RtmpUrl};

use super::check::checked_addrs;
use super::video::Video;
use super::{PushStatus, RestreamError, Target};
use crate::access::budget::RateLog;
use crate::stream::frames::GroupRepeats;
use crate::stream::registry::{LatestFrame, Registry, StreamId, StreamInfo};

/// First wait after a failed or lost connection; doubles up to [`BACKOFF_MAX`] (±25 % jitter).
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A connection that published this long counts as healthy: the next loss retries fast.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// TCP connect plus handshake plus connect/createStream/publish must finish within this.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// A server that takes no bytes for this long is declared gone.
const WRITE_STALL: Duration = Duration::from_secs(5);
/// Bytes queued for one server beyond which new frames are dropped (counted) instead.
const MAX_QUEUED_BYTES: usize = 256 << 10;
/// A frame that reaches the pusher this long after the hub received it is dropped: the
/// server or the transcoder is behind, and a live restream catches up instead of lagging.
const MAX_AGE_US: u64 = 1_000_000;
/// A server that took no byte for this long gets no new frames (they are dropped and
/// counted) until it takes some; after [`WRITE_STALL`] the connection is given up.
const STUCK_AFTER: Duration = Duration::from_secs(1);
/// The kernel keeps at most this much unsent data per push socket, so a slow server's
/// backlog stays in the outbox, where it is bounded and counted (like the publisher's).
const NOTSENT_LOWAT_BYTES: u32 = 64 << 10;
/// Lost-frame reports per pusher at most this often.
const LOSS_REPORT_EVERY: Duration = Duration::from_secs(5);

/// A running push as the supervisor holds it: its task and the switch that stops it.
pub(super) struct Pusher {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// One stream pushed to one URL, reconnecting until told to stop.
struct Push {
    registry: Arc<Registry>,
    status: Arc<PushStatus>,
    /// Whether the target may reach loopback and private addresses.
    allow_private: bool,
    id: StreamId,
    info: StreamInfo,
    url: RtmpUrl,
    clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
}

/// How a connection ended without an error.
struct Stopped;

impl Pusher {
    /// Starts pushing live stream `id` (`info`) to `target`, counting into `status`.
    pub(super) fn start(
        registry: Arc<Registry>,
        status: Arc<PushStatus>,
        target: &Target,
        id: StreamId,
        info: StreamInfo,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let push = Push {
            registry,
            status,
            allow_private: target.allow_private,
            id,
            url: target.template.for_stream(id.get(), &info.name),
            info,
            clock,
            stop: stop_rx,
        };
        Self {
            stop,
            task: tokio::spawn(push.run()),
        }
    }

    /// Tells the push to end (its task finishes on its own).
    pub(super) fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Whether the push's task has ended.
    pub(super) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits up to `limit` for the push's task to end.
    pub(super) async fn join(self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.task).await;
    }
}

impl Push {
    async fn run(self) {
        let mut stop = self.stop.clone();
        // Jittered: the pushes of a hub that lost its network retry apart, not all at once.
        let mut backoff = Backoff::starting_at(
            BACKOFF_START,
            BACKOFF_MAX,
            self.clock.now_us() ^ self.id.get(),
        );
        let mut attempt: u64 = 0;
        let mut losses = Losses::default();
        // Failures log their details at most once per period (a target that never works
        // would otherwise log every retry, for every stream).
        let failure_log = RateLog::default();
        loop {
            attempt += 1;
            let began = Instant::now();
            let result = tokio::select! {
                r = self.connection(attempt, &mut losses) => r,
                _ = stop.wait_for(|&s| s) => Ok(Stopped),
            };
            let name = &self.info.name;
            let url = &self.url;
            let delay = match result {
                Ok(Stopped) => {
                    self.status.set_down(None);
                    info!("restream \"{name}\" → {url}: stopped (stream offline or hub stopping)");
                    return;
                }
                Err(e) => {
                    self.status.set_down(Some(&e));
                    if began.elapsed() >= HEALTHY_AFTER {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    losses.report(name, url);
                    if let Some(more) = failure_log.allow(Instant::now()) {
                        warn!("restream \"{name}\" → {url}: {e}; retrying in {delay:?} ({more} more failures since the last line)");
                    }
                    delay
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|&s| s) => return,
            }
        }
    }

    /// One connection: set up, then push frames until an error (or the caller's stop).
    async fn connection(
        &self,
        attempt: u64,
        losses: &mut Losses,
    ) -> Result<Stopped, RestreamError> {
        let (name, url) = (&self.info.name, &self.url);
        let seed = self.clock.now_us() ^ self.id.get().rotate_left(32) ^ attempt;
        let mut session = ClientSession::new(url.clone(), seed);
        let setup = async {
            // Checked again now, and connected to the checked addresses: the name may have
            // been re-pointed since the target was added.
            let addrs = checked_addrs(url, self.allow_private)
                .await
                .map_err(RestreamError::Refused)?;
            let stream = TcpStream::connect(&addrs[..])
                .await
                .map_err(RestreamError::Connect)?;
            // Frames are whole messages: send each at once.
            let _ = stream.set_nodelay(true);
            if let Err(e) =
                socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT_BYTES)
            {
                debug!("restream \"{name}\" → {url}: cannot set TCP_NOTSENT_LOWAT: {e}");
            }
            let (mut rd, mut wr) = stream.into_split();
            let mut buf = vec![0u8; 16 << 10];
            loop {
                flush(&mut session, &mut wr).await?;
                while let Some(event) = session.poll_event() {
                    if event == ClientEvent::Publishing {
                        return Ok((rd, wr, buf));
                    }
                }
                let n = rd.read(&mut buf).await.map_err(RestreamError::Io)?;
                if n == 0 {
                    return Err(RestreamError::Closed);
                }
                session.handle_bytes(&buf[..n])?;
            }
        };
        let (mut rd, mut wr, mut buf) = tokio::time::timeout(SETUP_TIMEOUT, setup)
            .await
            .map_err(|_| RestreamError::Timeout("connect, handshake and publish"))??;
        // What goes out is always H.264: JPEG streams are encoded for the push.
        let encoded = match self.info.codec {
            Codec::H264 => "",
            Codec::Jpeg => ", encoded from jpeg",
        };
        info!(
            "restream \"{name}\" → {url}: publishing (h264 {}x{}{encoded})",
            self.info.width, self.info.height
        );
        let fps = if self.info.fps_nominal > 0.0 {
            self.info.fps_nominal
        } else {
            30.0
        };
        session.send_metadata(u32::from(self.info.width), u32::from(self.info.height), fps)?;
        self.status.set_publishing();

        let outlet = self
            .registry
            .frame_outlet(self.id)
            .ok_or(RestreamError::Closed)?;
        // Subscribe before taking the group, so no frame falls between the two.
        let mut frames = outlet.subscribe_in_order();
        let mut video = Video::new(self.info.codec, fps);
        let mut outbox = Outbox::default();
        let group = outlet.keyframe_group();
        let mut repeats = GroupRepeats::of(&group);
        if group.is_empty() && self.info.codec == Codec::H264 {
            self.registry.request_keyframe(self.id);
        }
        // The current group goes out at once, however old: players need it to decode.
        for frame in group {
            self.send(&mut session, &mut video, frame).await?;
        }
        outbox.take_from(&mut session);
        loop {
            // Cheap clone (a reference count): the write future must not borrow the outbox.
            let front = outbox.front();
            let stall_at = outbox.progress_at + WRITE_STALL;
            tokio::select! {
                r = frames.recv() => match r {
                    Ok(frame) => {
                        if repeats.is_repeat(frame.seq) {
                            continue;
                        }
                        let age_us = self.clock.now_us().saturating_sub(frame.received_us);
                        if outbox.len_bytes > MAX_QUEUED_BYTES
                            || age_us > MAX_AGE_US
                            || outbox.is_stuck()
                        {
                            // The server takes less than the stream brings: drop, never queue.
                            losses.lost(1, name, url);
                            PushStatus::add(&self.status.frames_lost, 1);
                            if video.resync() {
                                self.registry.request_keyframe(self.id);
                            }
                            continue;
                        }
                        self.send(&mut session, &mut video, frame).await?;
                        outbox.take_from(&mut session);
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        losses.lost(n, name, url);
                        PushStatus::add(&self.status.frames_lost, n);
                        if video.resync() {
                            self.registry.request_keyframe(self.id);
                        }
                    }
                    // The stream was forgotten by the registry.
                    Err(broadcast::error::RecvError::Closed) => return Ok(Stopped),
                },
                r = wr.write(&front), if !front.is_empty() => {
                    let n = r.map_err(RestreamError::Io)?;
                    if n == 0 {
                        return Err(RestreamError::Closed);
                    }
                    outbox.advance(n);
                    PushStatus::add(&self.status.bytes_sent, n as u64);
                }
                () = tokio::time::sleep_until(stall_at), if !front.is_empty() => {
                    return Err(RestreamError::Timeout("the server stopped reading"));
                }
                // Servers send acknowledgements, pings and status: keep reading them.
                r = rd.read(&mut buf) => {
                    let n = r.map_err(RestreamError::Io)?;
                    if n == 0 {
                        return Err(RestreamError::Closed);
                    }
                    session.handle_bytes(&buf[..n])?;
                    while let Some(event) = session.poll_event() {
                        debug!("restream \"{name}\" → {url}: {event:?}");
                    }
                    outbox.take_from(&mut session);
                }
            }
        }
    }

    /// Packages one frame (transcoding JPEG first) and queues its messages. A frame that
    /// cannot be sent (a JPEG the decoder refuses, a malformed SPS, an access unit over
    /// RTMP's message limit) is lost and counted: it costs that frame, never the connection
    /// and with it the server's viewers.
    async fn send(
        &self,
        session: &mut ClientSession,
        video: &mut Video,
        frame: LatestFrame,
    ) -> Result<(), RestreamError> {
        let seq = frame.seq;
        match self.package(session, video, frame).await {
            Err(e) if e.is_about_one_frame() => {
                PushStatus::add(&self.status.frames_lost, 1);
                video.unusable_frames += 1;
                if video.unusable_frames == 1 || video.unusable_frames.is_multiple_of(100) {
                    warn!(
                        "restream of stream {}: frame {seq} left out: {e} ({} so far)",
                        self.id, video.unusable_frames
                    );
                }
                // A JPEG that did not transcode left the encoder's chain whole.
                let encoded = !matches!(e, RestreamError::Transcode(_));
                if video.skip_frame(encoded) {
                    self.registry.request_keyframe(self.id);
                }
                Ok(())
            }
            other => other,
        }
    }

    /// [`Self::send`] without the care for unusable frames.
    async fn package(
        &self,
        session: &mut ClientSession,
        video: &mut Video,
        frame: LatestFrame,
    ) -> Result<(), RestreamError> {
        let Some((access_unit, capture_us)) = video.h264(&frame).await? else {
            if video.wants_keyframe_now() {
                self.registry.request_keyframe(self.id);
            }
            return Ok(());
        };
        let units = vidcast_h264::nal_units(&access_unit);
        let bodies = video.packager.package(&units)?;
        let timestamp = video.timestamp_ms(capture_us);
        for body in bodies {
            session.send_video(timestamp, body)?;
        }
        PushStatus::add(&self.status.frames_sent, 1);
        Ok(())
    }
}

/// Writes everything the session has queued; a server that takes nothing for
/// [`WRITE_STALL`] is gone.
async fn flush(session: &mut ClientSession, wr: &mut OwnedWriteHalf) -> Result<(), RestreamError> {
    while let Some(bytes) = session.poll_transmit() {
        tokio::time::timeout(WRITE_STALL, wr.write_all(&bytes))
            .await
            .map_err(|_| RestreamError::Timeout("the server stopped reading"))?
            .map_err(RestreamError::Io)?;
    }
    Ok(())
}

/// What the session produced and the socket has not taken yet: bounded by dropping frames
/// (see [`MAX_QUEUED_BYTES`]), never by waiting.
struct Outbox {
    chunks: VecDeque<Bytes>,
    len_bytes: usize,
    /// When the socket last took bytes, or the outbox last became non-empty.
    progress_at: tokio::time::Instant,
}

impl Default for Outbox {
    fn default() -> Self {
        Self {
            chunks: VecDeque::new(),
            len_bytes: 0,
            progress_at: tokio::time::Instant::now(),
        }
    }
}

impl Outbox {
    fn take_from(&mut self, session: &mut ClientSession) {
        while let Some(bytes) = session.poll_transmit() {
            if self.chunks.is_empty() {
                self.progress_at = tokio::time::Instant::now();
            }
            self.len_bytes += bytes.len();
            self.chunks.push_back(bytes);
        }
    }

    /// Whether the socket has taken nothing for [`STUCK_AFTER`] while bytes wait: new frames
    /// would only queue behind them.
    fn is_stuck(&self) -> bool {
        !self.chunks.is_empty() && self.progress_at.elapsed() >= STUCK_AFTER
    }

    /// The bytes to write next (empty when there are none).
    fn front(&self) -> Bytes {
        self.chunks.front().cloned().unwrap_or_default()
    }

    fn advance(&mut self, n: usize) {
        self.len_bytes -= n;
        self.progress_at = tokio::time::Instant::now();
        if let Some(front) = self.chunks.front_mut() {
            front.advance(n);
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
    }
}

/// Frames lost on the way to one server, reported at a limited rate.
#[derive(Default)]
struct Losses {
    total: u64,
    unreported: u64,
    last_report: Option<Instant>,
}

impl Losses {
    fn lost(&mut self, n: u64, name: &str, url: &RtmpUrl) {
        self.total += n;
        self.unreported += n;
        if self
            .last_report
            .is_none_or(|t| t.elapsed() >= LOSS_REPORT_EVERY)
        {
            self.report(name, url);
        }
    }

    /// Logs the losses not reported yet, if any.
    fn report(&mut self, name: &str, url: &RtmpUrl) {
        if self.unreported > 0 {
            warn!(
                "restream \"{name}\" → {url}: {} frames lost (server or transcoder slower than the stream; {} in all)",
                self.unreported, self.total
            );
            self.unreported = 0;
            self.last_report = Some(Instant::now());
        }
    }
}
