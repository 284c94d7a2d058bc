//! Pulling an IP camera's H.264 over RTSP (retina) as a [`VideoSource`].
//!
//! A thread of its own runs retina on a one-thread tokio runtime: DESCRIBE, SETUP (TCP
//! interleaved unless UDP is asked for), PLAY, then frames until the camera goes quiet for
//! [`DEAD_AFTER`] or the session fails; then it reconnects after a jittered
//! [`Backoff`]. Frames cross to the capture thread through a queue of [`QUEUE_FRAMES`]; a
//! frame that finds it full is dropped and counted. Every frame passes a [`ChainGate`] on
//! the way in: after a lost packet, a dropped frame or a reconnection, P-frames are held back
//! until the camera's next keyframe (RTSP has no way to ask for one), so a viewer never
//! sees a picture smeared over a missing reference.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use retina::client::{PlayOptions, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, ParametersRef};
use tokio::sync::{watch, Notify};
use tracing::warn;
use vidcast_h264::{ChainGate, Codec, ParameterSets, Pass};
use vidcast_media::source::Captured;
use vidcast_media::{Clock, EncodedFrame, H264Decoder, MediaError, RawFrame, VideoSource};
use vidcast_proto::Backoff;

use crate::clock::CaptureClock;
use crate::RtspError;

/// No video frame for this long: the camera is dead (the hub's peer timeout is 3 s; a
/// camera at 1 fps still sends one a second).
pub const DEAD_AFTER: Duration = Duration::from_secs(2);
/// Each of DESCRIBE, SETUP and PLAY must be answered within this.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames waiting for the capture thread (it encodes nothing when passing H.264 through,
/// so a full queue means a stalled consumer: newer frames are dropped and the chain waits
/// for a keyframe).
pub const QUEUE_FRAMES: usize = 8;
/// The first wait before reconnecting; doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between reconnection attempts: a camera that comes back is seen within
/// 1.25 s (jitter included), and one connection attempt a second costs a camera nothing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// RTP over the RTSP connection or over UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RtspTransport {
    /// RTP interleaved in the RTSP TCP connection (RFC 2326 §10.12): works through NAT and
    /// firewalls, loses nothing short of a dead link.
    #[default]
    Tcp,
    /// RTP and RTCP on UDP ports of their own: less delay behind a lost packet, but lost
    /// packets stay lost (the gate then waits for a keyframe).
    Udp,
}

impl std::str::FromStr for RtspTransport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(Self::Tcp),
            "udp" => Ok(Self::Udp),
            _ => Err(format!("{s:?}: expected tcp or udp")),
        }
    }
}

/// How to pull a camera.
#[derive(Clone)]
pub struct PullOptions {
    /// `rtsp://[user:pass@]host[:port]/path`.
    pub url: String,
    /// RTP transport.
    pub transport: RtspTransport,
    /// Hand the camera's H.264 over as it is ([`Captured::H264`]); else decode it.
    pub passthrough: bool,
    /// Capture times.
    pub clock: Arc<dyn Clock>,
    /// How long [`RtspSource::open`] waits for the first frame.
    pub open_timeout: Duration,
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("url", &redact(&self.url))
            .field("transport", &self.transport)
            .field("passthrough", &self.passthrough)
            .finish_non_exhaustive()
    }
}

/// Whether `text` names an RTSP source.
pub fn is_rtsp_url(text: &str) -> bool {
    let lower = text.get(..7).map(str::to_ascii_lowercase);
    lower.as_deref() == Some("rtsp://")
}

/// The URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(an invalid URL)".to_owned(),
    }
}

/// Counters of one pulled camera, shared with its thread.
#[derive(Debug, Default)]
pub struct PullStats {
    /// Frames handed to the capture thread.
    pub frames: AtomicU64,
    /// Frames held back after a loss until the next keyframe.
    pub held_back: AtomicU64,
    /// Frames dropped because the capture thread had [`QUEUE_FRAMES`] waiting.
    pub queue_full: AtomicU64,
    /// RTP packets the camera sent that never arrived (UDP), as retina counts them.
    pub packets_lost: AtomicU64,
    /// Sessions that ended (camera dead, refused, gone) and were started again.
    pub reconnects: AtomicU64,
}

/// What the puller learnt from the first frame.
#[derive(Debug, Clone, Copy)]
struct Format {
    width: u32,
    height: u32,
    fps: f64,
}

/// An RTSP camera as a [`VideoSource`]; the pulling thread stops when this is dropped.
pub struct RtspSource {
    what: String,
    transport: RtspTransport,
    format: Format,
    frames: Receiver<EncodedFrame>,
    passthrough: bool,
    decoder: Option<H264Decoder>,
    stop: Arc<Notify>,
    stats: Arc<PullStats>,
    live: watch::Receiver<bool>,
}

impl std::fmt::Debug for RtspSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspSource")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl RtspSource {
    /// Starts pulling and waits (up to `options.open_timeout`) for the first frame, which
    /// gives the picture size and rate. The thread reconnects on its own from then on.
    pub fn open(options: PullOptions) -> Result<Self, RtspError> {
        let what = redact(&options.url);
        let (url, creds) = split_credentials(&options.url)?;
        let (frames_tx, frames) = sync_channel(QUEUE_FRAMES);
        let (format_tx, format_rx) = sync_channel(1);
        let stop = Arc::new(Notify::new());
        let stats = Arc::new(PullStats::default());
        let last_failure = Arc::new(Mutex::new(None));
        let (live_tx, live) = watch::channel(false);
        let puller = Puller {
            live: live_tx,
            last_failure: Arc::clone(&last_failure),
            what: what.clone(),
            url,
            creds,
            transport: options.transport,
            clock: Arc::clone(&options.clock),
            frames: frames_tx,
            format: Some(format_tx),
            stats: Arc::clone(&stats),
            seq: 0,
            gate: ChainGate::new(),
            capture_clock: CaptureClock::new(),
            sets: ParameterSets::default(),
            size: (0, 0),
        };
        let thread_stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("vidcast-rtsp".into())
            .spawn(move || puller.run(thread_stop))
            .map_err(|source| RtspError::Io {
                what: what.clone(),
                source,
            })?;
        let format = match format_rx.recv_timeout(options.open_timeout) {
            Ok(Ok(format)) => format,
            Ok(Err(reason)) => {
                stop.notify_one();
                return Err(RtspError::Open { what, reason });
            }
            Err(_) => {
                stop.notify_one();
                let last = last_failure.lock().map(|l| l.clone()).unwrap_or_default();
                return Err(RtspError::Open {
                    what,
                    reason: format!(
                        "no H.264 frame within {:?}{}",
                        options.open_timeout,
                        last.map_or_else(
                            || " (is the camera up and the path right?)".to_owned(),
                            |l| format!("; last attempt: {l}")
                        )
                    ),
                });
            }
        };
        let decoder = if options.passthrough {
            None
        } else {
            Some(H264Decoder::new().map_err(|e| RtspError::Open {
                what: what.clone(),
                reason: e.to_string(),
            })?)
        };
        Ok(Self {
            what,
            transport: options.transport,
            format,
            frames,
            passthrough: options.passthrough,
            decoder,
            stop,
            stats,
            live,
        })
    }

    /// The camera's counters.
    pub fn stats(&self) -> Arc<PullStats> {
        Arc::clone(&self.stats)
    }

    /// Whether the camera is up: `true` from the first frame of a session that passed the
    /// gate (so a keyframe), `false` from the moment that session ends (the camera closed
    /// it, failed, or sent nothing for [`DEAD_AFTER`]) until the next one delivers. The
    /// sender is dropped when the pulling thread stops.
    pub fn liveness(&self) -> watch::Receiver<bool> {
        self.live.clone()
    }

    /// The next access unit that passed the gate; `None` once the puller stopped.
    fn next_access_unit(&mut self) -> Option<EncodedFrame> {
        loop {
            match self.frames.recv_timeout(Duration::from_secs(1)) {
                Ok(frame) => return Some(frame),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }
}

impl Drop for RtspSource {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

impl VideoSource for RtspSource {
    fn size(&self) -> (u32, u32) {
        (self.format.width, self.format.height)
    }

    fn fps(&self) -> f64 {
        self.format.fps
    }

    fn describe(&self) -> String {
        format!(
            "{} (RTSP over {}, H.264 {}x{} @ {:.3} fps{})",
            self.what,
            match self.transport {
                RtspTransport::Tcp => "TCP",
                RtspTransport::Udp => "UDP",
            },
            self.format.width,
            self.format.height,
            self.format.fps,
            if self.passthrough {
                "; sent as it is, without re-encoding"
            } else {
                "; decoded"
            }
        )
    }

    fn next_frame(&mut self) -> Result<Option<RawFrame>, MediaError> {
        loop {
            let Some(unit) = self.next_access_unit() else {
                return Ok(None);
            };
            let Some(decoder) = self.decoder.as_mut() else {
                return Err(MediaError::Decode {
                    len: unit.data.len(),
                    reason: "this RTSP source passes H.264 through; it decodes nothing".into(),
                });
            };
            match decoder.decode(&unit.data) {
                Ok(Some(mut frame)) => {
                    frame.seq = unit.seq;
                    frame.capture_us = unit.capture_us;
                    return Ok(Some(frame));
                }
                Ok(None) => continue,
                Err(e) => {
                    // The gate lets only whole chains through, so this is the camera's
                    // bitstream; one bad frame should not end the stream.
                    warn!("{}: frame {} does not decode: {e}", self.what, unit.seq);
                    continue;
                }
            }
        }
    }

    fn next_captured(&mut self) -> Result<Option<Captured>, MediaError> {
        if !self.passthrough {
            return Ok(self.next_frame()?.map(Captured::Raw));
        }
        Ok(self.next_access_unit().map(Captured::H264))
    }
}

/// `rtsp://user:pass@host/path` → the URL without them (retina takes credentials apart)
/// and the credentials, percent-decoded.
fn split_credentials(
    text: &str,
) -> Result<(url::Url, Option<retina::client::Credentials>), RtspError> {
    let mut url = url::Url::parse(text).map_err(|e| RtspError::Url {
        what: redact(text),
        reason: e.to_string(),
    })?;
    if url.scheme() != "rtsp" {
        return Err(RtspError::Url {
            what: redact(text),
            reason: "only rtsp:// is supported".into(),
        });
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(RtspError::Url {
            what: redact(text),
            reason: "no host".into(),
        });
    }
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let creds = (!url.username().is_empty()).then(|| retina::client::Credentials {
        username: decode(url.username()),
        password: decode(url.password().unwrap_or("")),
    });
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url, creds))
}

/// Why one session ended.
enum End {
    /// The source was dropped.
    Stopped,
    /// The camera failed; reconnect.
    Failed(String),
}

/// The pulling thread's state.
struct Puller {
    what: String,
    url: url::Url,
    creds: Option<retina::client::Credentials>,
    transport: RtspTransport,
    clock: Arc<dyn Clock>,
    frames: SyncSender<EncodedFrame>,
    /// Whether a session is delivering frames (see [`RtspSource::liveness`]).
    live: watch::Sender<bool>,
    /// Why the last session ended, for `open`'s error.
    last_failure: Arc<Mutex<Option<String>>>,
    /// Told the first frame's format (or why there was none), then `None`.
    format: Option<SyncSender<Result<Format, String>>>,
    stats: Arc<PullStats>,
    /// Our frame number: one per frame received, plus one per loss, so the gate sees gaps.
    seq: u64,
    gate: ChainGate,
    capture_clock: CaptureClock,
    sets: ParameterSets,
    /// The picture size the camera's SPS gives.
    size: (u32, u32),
}

impl Puller {
    fn run(mut self, stop: Arc<Notify>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                self.tell_format(Err(format!("cannot start its runtime: {e}")));
                return;
            }
        };
        runtime.block_on(async {
            let seed = self.clock.now_us() ^ u64::from(std::process::id());
            let mut backoff = Backoff::starting_at(FIRST_BACKOFF, MAX_BACKOFF, seed);
            loop {
                let before = self.stats.frames.load(Ordering::Relaxed);
                let end = tokio::select! {
                    end = self.session() => end,
                    () = stop.notified() => End::Stopped,
                };
                let reason = match end {
                    End::Stopped => return,
                    End::Failed(reason) => reason,
                };
                self.live.send_replace(false);
                if self.stats.frames.load(Ordering::Relaxed) > before {
                    backoff.reset();
                }
                // A new session is a new RTP timeline and a broken reference chain.
                self.gate.break_chain();
                self.capture_clock.reset();
                self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                let delay = backoff.next_delay();
                warn!("{}: {reason}; reconnecting in {delay:.1?}", self.what);
                // `open`, if still waiting, names the reason when its own deadline passes.
                if let Ok(mut last) = self.last_failure.lock() {
                    *last = Some(reason);
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.notified() => return,
                }
            }
        });
    }

    fn tell_format(&mut self, format: Result<Format, String>) {
        if let Some(tx) = self.format.take() {
            let _ = tx.try_send(format);
        }
    }

    /// One RTSP session, from DESCRIBE to its failure.
    async fn session(&mut self) -> End {
        let step =
            |what: &'static str| move |_| format!("{what}: no answer within {STEP_TIMEOUT:?}");
        let options = SessionOptions::default()
            .creds(self.creds.clone())
            .user_agent(format!("vidcast/{}", env!("CARGO_PKG_VERSION")));
        let mut session = match tokio::time::timeout(
            STEP_TIMEOUT,
            retina::client::Session::describe(self.url.clone(), options),
        )
        .await
        .map_err(step("DESCRIBE"))
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return End::Failed(format!("DESCRIBE failed: {e}")),
            Err(e) => return End::Failed(e),
        };
        let Some(index) = session
            .streams()
            .iter()
            .position(|s| s.media() == "video" && s.encoding_name().eq_ignore_ascii_case("h264"))
        else {
            let found: Vec<String> = session
                .streams()
                .iter()
                .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
                .collect();
            let reason = format!("no H.264 video stream (found {})", found.join(", "));
            self.tell_format(Err(reason.clone()));
            return End::Failed(reason);
        };
        let transport = match self.transport {
            RtspTransport::Tcp => Transport::Tcp(Default::default()),
            RtspTransport::Udp => Transport::Udp(Default::default()),
        };
        match tokio::time::timeout(
            STEP_TIMEOUT,
            session.setup(index, SetupOptions::default().transport(transport)),
        )
        .await
        .map_err(step("SETUP"))
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return End::Failed(format!("SETUP failed: {e}")),
            Err(e) => return End::Failed(e),
        }
        let playing = match tokio::time::timeout(STEP_TIMEOUT, session.play(PlayOptions::default()))
            .await
            .map_err(step("PLAY"))
        {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return End::Failed(format!("PLAY failed: {e}")),
            Err(e) => return End::Failed(e),
        };
        let mut demuxed = match playing.demuxed() {
            Ok(d) => d,
            Err(e) => return End::Failed(format!("cannot depacketize: {e}")),
        };
        let mut seeded = false;
        let mut deadline = tokio::time::Instant::now() + DEAD_AFTER;
        loop {
            let item = match tokio::time::timeout_at(deadline, demuxed.next()).await {
                Err(_) => {
                    return End::Failed(format!("no frame for {DEAD_AFTER:?}: the camera is gone"))
                }
                Ok(None) => return End::Failed("the camera ended the session".into()),
                Ok(Some(Err(e))) => return End::Failed(e.to_string()),
                Ok(Some(Ok(item))) => item,
            };
            match item {
                CodecItem::VideoFrame(frame) if frame.stream_id() == index => {
                    deadline = tokio::time::Instant::now() + DEAD_AFTER;
                    let params = demuxed.streams()[index].parameters();
                    let Some(ParametersRef::Video(params)) = params else {
                        continue; // no SPS yet: nothing decodes without one
                    };
                    if !seeded || frame.has_new_parameters() {
                        seed_parameter_sets(&mut self.sets, params.extra_data());
                        seeded = true;
                    }
                    self.size = params.pixel_dimensions();
                    if self.format.is_some() {
                        let (width, height) = self.size;
                        let fps = params
                            .frame_rate()
                            .filter(|&(n, d)| n > 0 && d > 0)
                            .map(|(n, d)| f64::from(d) / f64::from(n))
                            .or_else(|| demuxed.streams()[index].framerate().map(f64::from))
                            .filter(|f| (0.1..=1000.0).contains(f))
                            .unwrap_or(30.0);
                        self.tell_format(Ok(Format { width, height, fps }));
                    }
                    if let Err(reason) = self.handle_frame(frame) {
                        return reason;
                    }
                }
                CodecItem::Rtcp(rtcp) => {
                    let Some(rtp) = rtcp.rtp_timestamp() else {
                        continue;
                    };
                    for pkt in rtcp.pkts() {
                        if let Ok(Some(sr)) = pkt.as_sender_report() {
                            self.capture_clock
                                .handle_sender_report(sr.ntp_timestamp().0, rtp.timestamp());
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Gates, converts and queues one frame; `Err` ends the session.
    fn handle_frame(&mut self, frame: retina::codec::VideoFrame) -> Result<(), End> {
        let arrival = self.clock.now_us();
        let loss = frame.loss();
        if loss > 0 {
            self.stats
                .packets_lost
                .fetch_add(u64::from(loss), Ordering::Relaxed);
            self.seq += 1; // a gap: the gate waits for a keyframe
        }
        self.seq += 1;
        let ts = frame.timestamp();
        let capture_us =
            self.capture_clock
                .capture_us(ts.timestamp(), ts.clock_rate().get(), arrival);
        let mut annex_b = Vec::with_capacity(frame.data().len() + 16);
        // retina hands frames over as NAL units behind 4-byte lengths.
        if let Err(reason) = vidcast_h264::avcc_to_annex_b(frame.data(), 4, &mut annex_b) {
            warn!("{}: frame {} is malformed: {reason}", self.what, self.seq);
            self.seq += 1;
            return Ok(());
        }
        let data = self.sets.complete(&annex_b);
        let is_keyframe = vidcast_h264::is_keyframe(&data);
        match self.gate.offer(Codec::H264, self.seq, is_keyframe) {
            Pass::Use => {}
            Pass::Repeat => return Ok(()),
            Pass::Wait { first } => {
                self.stats.held_back.fetch_add(1, Ordering::Relaxed);
                if first && loss > 0 {
                    warn!(
                        "{}: {loss} RTP packet(s) lost; waiting for the camera's next keyframe",
                        self.what
                    );
                }
                return Ok(());
            }
        }
        let (width, height) = self.size;
        let unit = EncodedFrame {
            codec: Codec::H264,
            width,
            height,
            data: data.into(),
            seq: self.seq,
            capture_us,
            is_keyframe,
        };
        match self.frames.try_send(unit) {
            Ok(()) => {
                self.stats.frames.fetch_add(1, Ordering::Relaxed);
                self.live
                    .send_if_modified(|live| !std::mem::replace(live, true));
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
                self.gate.break_chain();
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err(End::Stopped),
        }
    }
}

/// The SPS and PPS of an AVCDecoderConfigurationRecord (ISO 14496-15 §5.2.4.1), given to
/// `sets` so that keyframes sent without them in-band get them.
fn seed_parameter_sets(sets: &mut ParameterSets, avcc: &[u8]) {
    let mut out = Vec::new();
    let mut at = 5;
    for _ in 0..2 {
        let Some(&count) = avcc.get(at) else { return };
        at += 1;
        for _ in 0..(count & 0x1F) {
            let Some(len) = avcc.get(at..at + 2) else {
                return;
            };
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let Some(nal) = avcc.get(at + 2..at + 2 + len) else {
                return;
            };
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
            at += 2 + len;
        }
    }
    let _ = sets.complete(&out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtsp_urls_are_recognised_and_passwords_never_logged() {
        assert!(is_rtsp_url("rtsp://cam/x"));
        assert!(is_rtsp_url("RTSP://cam/x"));
        assert!(!is_rtsp_url("clip.mp4"));
        assert!(!is_rtsp_url("rtsp"));
        let shown = redact("rtsp://admin:s3cret@127.0.0.1:554/live");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("admin"), "{shown}");
    }

    #[test]
    fn credentials_come_out_of_the_url_decoded() {
        let (url, creds) =
            split_credentials("rtsp://ad%40min:p%3Ass@127.0.0.1:8554/cam").expect("ok");
        assert_eq!(url.as_str(), "rtsp://127.0.0.1:8554/cam");
        let creds = creds.expect("creds");
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("ad@min", "p:ss")
        );
        assert!(split_credentials("rtsp://127.0.0.1/x")
            .expect("ok")
            .1
            .is_none());
        assert!(split_credentials("http://127.0.0.1/x").is_err());
        assert!(split_credentials("rtsp:///x").is_err());
    }

    #[test]
    fn parameter_sets_from_the_decoder_record_complete_a_bare_keyframe() {
        let sps = [0x67, 0x42, 0xC0, 0x1E, 0x8C];
        let pps = [0x68, 0xCE, 0x3C, 0x80];
        let avcc = vidcast_h264::avc_decoder_configuration_record(&sps, &pps).expect("record");
        let mut sets = ParameterSets::default();
        seed_parameter_sets(&mut sets, &avcc);
        assert!(sets.known());
        let idr = [0, 0, 0, 1, 0x65, 0x88];
        let full = sets.complete(&idr);
        assert_eq!(vidcast_h264::nal_units(&full).len(), 3);
        // Cut short anywhere: nothing learnt, no panic.
        for cut in 0..avcc.len() {
            seed_parameter_sets(&mut ParameterSets::default(), &avcc[..cut]);
        }
    }
}
