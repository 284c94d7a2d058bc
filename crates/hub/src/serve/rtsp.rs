//! `serve --rtsp ADDR`: every H.264 stream for players as `rtsp://HUB:PORT/{name}` and
//! `/{id}` (OPTIONS, DESCRIBE, SETUP with RTP interleaved in the TCP connection, PLAY,
//! TEARDOWN; the protocol core is `vidcast_rtsp::serve`). A JPEG stream is encoded to H.264
//! once for all its readers ([`RtspTranscoders`]: restream's `Transcoder` on the blocking
//! pool), only while at least one of them holds it, so nothing is encoded while nobody
//! watches.
//!
//! A reader is a viewer like any other: it reads the stream's newest-frame watch (or, for a
//! JPEG stream, the shared encoder's) on its own (latest frame wins: a one-frame slot per
//! reader, never a shared queue), starts at the kept keyframe group, and after a frame it
//! missed waits for a keyframe (`ChainGate`) and asks the publisher (or the shared encoder)
//! for one. Readers per stream are counted in `/api/streams` (`rtsp.readers`) and
//! `/metrics` (`vidcast_stream_rtsp_readers`). Its
//! bounds: a request head must arrive whole within `--http-header-timeout` and fit
//! `MAX_REQUEST_BYTES` (slowloris), connections count against `--max-viewers`, and a reader
//! that takes no frame for `--http-stall-timeout` is dropped (a stalled player costs only its
//! own socket). Tokens: RTSP Basic or Digest (MD5) auth, the password being a view token.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};
use vidcast_h264::{ChainGate, Codec, Pass};
use vidcast_rtsp::serve::{self as core, Incoming, Packetizer, Request};

use crate::egress::restream::Transcoder;
use crate::serve::viewers::ViewContext;
use crate::serve::viewers::ViewerKind;
use crate::stream::registry::{lock, LatestFrame, Registry, StreamId};

/// The realm of Basic and Digest challenges.
const REALM: &str = "vidcast";

/// How long DESCRIBE waits for a keyframe (its SPS and PPS) when the stream has none kept.
const KEYFRAME_WAIT: Duration = Duration::from_secs(3);

/// Accepts RTSP readers until `stop`.
pub(crate) async fn run(
    listener: TcpListener,
    ctx: Arc<ViewContext>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let ctx = Arc::clone(&ctx);
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        let nonce = nonce();
                        let mut conn = Conn { stream, peer, ctx, buf: Vec::new(), encoded: None, nonce };
                        match conn.run(stop).await {
                            Ok(()) => debug!("RTSP reader {peer} left"),
                            Err(why) => info!("RTSP reader {peer} closed: {why}"),
                        }
                    });
                }
                Err(e) => {
                    warn!("RTSP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = stopped(&mut stop) => return,
        }
    }
}

/// Resolves once `stop` says so (the guard `wait_for` returns is dropped here, so a
/// select arm's body may await).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|&s| s).await;
}

/// One reader's connection.
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<ViewContext>,
    /// Bytes read and not yet parsed (at most `MAX_REQUEST_BYTES` + one read).
    buf: Vec<u8>,
    /// A JPEG stream's shared H.264 encoder, held from DESCRIBE (its SPS and PPS go in
    /// the SDP) until the reader leaves.
    encoded: Option<EncodedFeed>,
    /// This connection's Digest nonce (a player answers on the connection it was given
    /// on, so a captured answer is no use on another).
    nonce: String,
}

/// What SETUP chose and PLAY starts.
struct Setup {
    id: StreamId,
    name: String,
    codec: Codec,
    channel: u8,
    session: String,
}

impl Conn {
    async fn run(&mut self, mut stop: watch::Receiver<bool>) -> Result<(), String> {
        let limits = &self.ctx.access.limits;
        if self.ctx.counters.total() >= limits.max_viewers {
            let reply = core::response(503, "Service Unavailable", "0", &[], b"");
            let _ = self.stream.write_all(&reply).await;
            return Err(format!(
                "too many viewers (--max-viewers {})",
                limits.max_viewers
            ));
        }
        let _guard = self.ctx.counters.enter(ViewerKind::Rtsp);
        let mut setup: Option<Setup> = None;
        loop {
            let req = tokio::select! {
                req = self.next_request() => req?,
                () = stopped(&mut stop) => return Ok(()),
            };
            let Some(req) = req else { return Ok(()) };
            let cseq = req.cseq().to_owned();
            if let Err(reply) = self.authorize(&req).await {
                self.send(&reply).await?;
                continue;
            }
            match req.method.as_str() {
                "OPTIONS" => {
                    let methods = (
                        "Public",
                        "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER".to_owned(),
                    );
                    self.send(&core::response(200, "OK", &cseq, &[methods], b""))
                        .await?;
                }
                "DESCRIBE" => {
                    let reply = self.describe(&req).await;
                    self.send(&reply).await?;
                }
                "SETUP" => {
                    let (reply, chosen) = self.setup(&req);
                    self.send(&reply).await?;
                    if chosen.is_some() {
                        setup = chosen;
                    }
                }
                "PLAY" => {
                    let Some(chosen) = setup.take() else {
                        self.send(&core::response(
                            455,
                            "Method Not Valid in This State",
                            &cseq,
                            &[],
                            b"",
                        ))
                        .await?;
                        continue;
                    };
                    let headers = [
                        ("Session", chosen.session.clone()),
                        ("Range", "npt=now-".to_owned()),
                    ];
                    self.send(&core::response(200, "OK", &cseq, &headers, b""))
                        .await?;
                    info!(
                        "RTSP reader {} plays \"{}\" (stream {})",
                        self.peer, chosen.name, chosen.id
                    );
                    return self.play(chosen, stop).await;
                }
                "TEARDOWN" => {
                    self.send(&core::response(200, "OK", &cseq, &[], b""))
                        .await?;
                    return Ok(());
                }
                "GET_PARAMETER" | "SET_PARAMETER" => {
                    self.send(&core::response(200, "OK", &cseq, &[], b""))
                        .await?;
                }
                _ => {
                    self.send(&core::response(501, "Not Implemented", &cseq, &[], b""))
                        .await?;
                }
            }
        }
    }

    /// The next request (interleaved frames skipped); `None` at a clean end of stream.
    /// Each request must be whole within `--http-header-timeout` (slowloris), counted from
    /// when it is awaited.
    async fn next_request(&mut self) -> Result<Option<Request>, String> {
        let limit = self.ctx.access.limits.http_header_timeout;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match core::parse(&self.buf).map_err(|e| e.to_string())? {
                Some((Incoming::Request(req), used)) => {
                    self.buf.drain(..used);
                    return Ok(Some(req));
                }
                Some((Incoming::Interleaved { .. }, used)) => {
                    self.buf.drain(..used);
                    continue;
                }
                None => {}
            }
            let mut chunk = [0u8; 2048];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .map_err(|_| format!("no whole request within {limit:?} (slowloris)"))?
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let stall = self.ctx.access.limits.http_stall_timeout;
        tokio::time::timeout(stall, self.stream.write_all(bytes))
            .await
            .map_err(|_| format!("took nothing for {stall:?} (stalled reader)"))?
            .map_err(|e| e.to_string())
    }

    /// `Ok` when the hub is open, the Basic password is a view token, or the Digest answer
    /// was made with one (any user name); else the 401 offering both (players take Digest).
    /// Wrong answers count towards the address's lockout like wrong tokens.
    async fn authorize(&self, req: &Request) -> Result<(), Vec<u8>> {
        let auth = &self.ctx.access.auth;
        if !auth.is_enabled() {
            return Ok(());
        }
        let token = match req.digest() {
            Some(digest) => auth
                .view_token_matching(|token| {
                    digest.is_made_with(&req.method, REALM, &self.nonce, token)
                })
                // Not a token: refused, and counted as a guess.
                .unwrap_or_else(|| format!("digest:{}", digest.response)),
            None => req.basic_password().unwrap_or_default(),
        };
        match crate::access::auth::check_web(&self.ctx.access, self.peer, &token, "RTSP reader") {
            Ok(()) => Ok(()),
            Err(_) => Err(core::response(
                401,
                "Unauthorized",
                req.cseq(),
                &[
                    (
                        "WWW-Authenticate",
                        core::digest_challenge(REALM, &self.nonce),
                    ),
                    ("WWW-Authenticate", format!("Basic realm=\"{REALM}\"")),
                ],
                b"",
            )),
        }
    }

    /// The stream a URI names, by name (live first) or id.
    fn find(&self, key: &str) -> Option<(StreamId, String, Codec, f64)> {
        let infos = self.ctx.registry.stream_infos();
        let by_name = infos
            .iter()
            .filter(|(_, info, _)| info.name == key)
            .max_by_key(|(_, _, live)| *live);
        let found = by_name.or_else(|| {
            let id = key.parse::<StreamId>().ok()?;
            infos.iter().find(|(sid, _, _)| *sid == id)
        })?;
        Some((
            found.0,
            found.1.name.clone(),
            found.1.codec,
            found.1.fps_nominal,
        ))
    }

    async fn describe(&mut self, req: &Request) -> Vec<u8> {
        let cseq = req.cseq();
        let Some((id, name, codec, fps)) = self.find(req.stream_key()) else {
            return core::response(404, "Not Found", cseq, &[], b"");
        };
        let sets = match codec {
            Codec::H264 => self.parameter_sets(id).await,
            // RFC 2435 could carry the JPEG as it is, but players handle it poorly (8-bit
            // quantisation tables only, no 4:2:0 restart markers): H.264 for every reader.
            Codec::Jpeg => self.transcoded_parameter_sets(id, fps).await,
        };
        let Some((sps, pps)) = sets else {
            return core::response(503, "Service Unavailable", cseq, &[], b"");
        };
        let body = core::sdp(&name, &sps, &pps);
        let base = format!("{}/", req.uri.trim_end_matches('/'));
        core::response(
            200,
            "OK",
            cseq,
            &[
                ("Content-Type", "application/sdp".to_owned()),
                ("Content-Base", base),
            ],
            body.as_bytes(),
        )
    }

    /// The SPS and PPS of the stream's kept keyframe, or of one asked for.
    async fn parameter_sets(&self, id: StreamId) -> Option<(Vec<u8>, Vec<u8>)> {
        let outlet = self.ctx.registry.frame_outlet(id)?;
        let from = |frame: &LatestFrame| parameter_sets_of(&frame.data);
        if let Some(sets) = outlet.keyframe_group().first().and_then(from) {
            return Some(sets);
        }
        self.ctx.registry.request_keyframe(id);
        let mut rx = outlet.watch();
        tokio::time::timeout(KEYFRAME_WAIT, async {
            loop {
                rx.changed().await.ok()?;
                let frame = rx.borrow_and_update().clone();
                if let Some(sets) = frame.as_ref().filter(|f| f.is_keyframe).and_then(from) {
                    return Some(sets);
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// The SPS and PPS of a JPEG stream's shared H.264 encoder (joined, or started, here and
    /// held until the reader leaves), from the keyframe it is asked for.
    async fn transcoded_parameter_sets(
        &mut self,
        id: StreamId,
        fps: f64,
    ) -> Option<(Vec<u8>, Vec<u8>)> {
        let feed = self.encoded_feed(id, fps)?;
        feed.request_keyframe();
        let mut rx = feed.watch();
        tokio::time::timeout(KEYFRAME_WAIT, async {
            loop {
                let sets = rx
                    .borrow_and_update()
                    .as_ref()
                    .filter(|f| f.is_keyframe)
                    .and_then(|f| parameter_sets_of(&f.data));
                if sets.is_some() {
                    return sets;
                }
                rx.changed().await.ok()?;
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// This reader's hold on stream `id`'s shared JPEG → H.264 encoder.
    fn encoded_feed(&mut self, id: StreamId, fps: f64) -> Option<EncodedFeed> {
        if let Some(feed) = self.encoded.as_ref().filter(|f| f.running.id == id) {
            return Some(feed.clone());
        }
        let feed = self
            .ctx
            .rtsp_transcoders
            .subscribe(&self.ctx.registry, id, fps)?;
        self.encoded = Some(feed.clone());
        Some(feed)
    }

    fn setup(&self, req: &Request) -> (Vec<u8>, Option<Setup>) {
        let cseq = req.cseq();
        let Some((id, name, codec, _)) = self.find(req.stream_key()) else {
            return (core::response(404, "Not Found", cseq, &[], b""), None);
        };
        let transport = req.header("Transport").unwrap_or("");
        // Only interleaved TCP: a player asked for UDP retries with TCP after a 461
        // (ffmpeg, VLC and GStreamer all do).
        if !transport.contains("TCP") {
            return (
                core::response(461, "Unsupported Transport", cseq, &[], b""),
                None,
            );
        }
        let channel = transport
            .split(';')
            .find_map(|p| p.trim().strip_prefix("interleaved="))
            .and_then(|v| v.split('-').next())
            .and_then(|v| v.parse::<u8>().ok())
            .unwrap_or(0);
        let session = format!(
            "{:08x}",
            self.ctx.clock.now_us() as u32 ^ u32::from(self.peer.port()) << 16
        );
        let headers = [
            (
                "Transport",
                format!(
                    "RTP/AVP/TCP;unicast;interleaved={}-{}",
                    channel,
                    channel.saturating_add(1)
                ),
            ),
            ("Session", format!("{session};timeout=60")),
        ];
        (
            core::response(200, "OK", cseq, &headers, b""),
            Some(Setup {
                id,
                name,
                codec,
                channel,
                session,
            }),
        )
    }

    /// Sends the stream until the reader leaves, stalls, the stream goes or the hub stops.
    async fn play(&mut self, setup: Setup, mut stop: watch::Receiver<bool>) -> Result<(), String> {
        let Some(outlet) = self.ctx.registry.frame_outlet(setup.id) else {
            return Err("the stream went away".into());
        };
        let _reader = ReaderCount::enter(&self.ctx.registry, setup.id);
        // A JPEG stream's frames come from its shared H.264 encoder; keyframes are asked of
        // it rather than of the publisher.
        let encoded = match setup.codec {
            Codec::H264 => None,
            Codec::Jpeg => {
                let fps = self.find(&setup.id.to_string()).map_or(30.0, |f| f.3);
                Some(
                    self.encoded_feed(setup.id, fps)
                        .ok_or("the stream went away")?,
                )
            }
        };
        let registry = Arc::clone(&self.ctx.registry);
        let request_keyframe = || match &encoded {
            Some(feed) => feed.request_keyframe(),
            None => registry.request_keyframe(setup.id),
        };
        let mut rx = encoded
            .as_ref()
            .map_or_else(|| outlet.watch(), EncodedFeed::watch);
        let seed = self.ctx.clock.now_us();
        let mut packetizer = Packetizer::new(
            seed as u32 ^ 0x5EED_0000,
            (seed >> 16) as u16,
            setup.channel,
        );
        let mut gate = ChainGate::new();
        let mut first_capture: Option<u64> = None;
        let rtp_base = (seed >> 8) as u32;
        let mut out = Vec::new();
        // Start at once from the kept keyframe group (the encoder's newest frame if it is a
        // keyframe); then the newest frame each time.
        let mut pending: Vec<LatestFrame> = match &encoded {
            None => outlet.keyframe_group(),
            Some(_) => rx
                .borrow()
                .clone()
                .filter(|f| f.is_keyframe)
                .into_iter()
                .collect(),
        };
        drop(outlet);
        if pending.is_empty() {
            request_keyframe();
        }
        rx.borrow_and_update();
        let mut read_chunk = [0u8; 2048];
        loop {
            for frame in pending.drain(..) {
                match gate.offer(frame.codec, frame.seq, frame.is_keyframe) {
                    Pass::Use => {}
                    Pass::Repeat => continue,
                    Pass::Wait { first } => {
                        if first {
                            request_keyframe();
                        }
                        continue;
                    }
                }
                let data = &frame.data;
                let start = *first_capture.get_or_insert(frame.capture_us);
                let elapsed_us = frame.capture_us.saturating_sub(start);
                let ts = rtp_base.wrapping_add((elapsed_us * 9 / 100) as u32);
                out.clear();
                packetizer.packetize(data, ts, &mut out);
                let stall = self.ctx.access.limits.http_stall_timeout;
                match tokio::time::timeout(stall, self.stream.write_all(&out)).await {
                    Ok(Ok(())) => self.ctx.counters.sent(0),
                    Ok(Err(e)) => return Err(e.to_string()),
                    Err(_) => {
                        return Err(format!(
                            "took nothing for {stall:?}: dropped (stalled reader)"
                        ))
                    }
                }
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return Err("the stream went away".into());
                    }
                    let newest = rx.borrow_and_update().clone();
                    if let Some(frame) = newest {
                        if let Some(last) = gate.last_seq() {
                            let skipped = frame.seq.saturating_sub(last + 1);
                            if skipped > 0 {
                                self.ctx.counters.frames_dropped.fetch_add(skipped, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                        pending.push(frame);
                    }
                }
                read = self.stream.read(&mut read_chunk) => {
                    let n = read.map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Ok(());
                    }
                    self.buf.extend_from_slice(&read_chunk[..n]);
                    while let Some((unit, used)) = core::parse(&self.buf).map_err(|e| e.to_string())? {
                        self.buf.drain(..used);
                        if let Incoming::Request(req) = unit {
                            let reply = core::response(200, "OK", req.cseq(), &[], b"");
                            self.send(&reply).await?;
                            if req.method == "TEARDOWN" {
                                return Ok(());
                            }
                        }
                    }
                }
                () = stopped(&mut stop) => return Ok(()),
            }
        }
    }
}

/// Counts one RTSP reader of a stream (the API's `rtsp.readers`) while it lives.
struct ReaderCount {
    registry: Arc<Registry>,
    id: StreamId,
}

impl ReaderCount {
    fn enter(registry: &Arc<Registry>, id: StreamId) -> Self {
        registry.update_rtsp_use(id, |u| u.readers += 1);
        Self {
            registry: Arc::clone(registry),
            id,
        }
    }
}

impl Drop for ReaderCount {
    fn drop(&mut self) {
        self.registry
            .update_rtsp_use(self.id, |u| u.readers = u.readers.saturating_sub(1));
    }
}

/// The running JPEG → H.264 encoders for RTSP readers, by stream: one per JPEG stream,
/// shared by all its readers, running while at least one holds an [`EncodedFeed`].
#[derive(Default)]
pub(crate) struct RtspTranscoders {
    running: Mutex<HashMap<StreamId, Weak<Running>>>,
}

/// A reader's hold on a JPEG stream's shared encoder; it stops when the last is dropped.
#[derive(Clone)]
pub(crate) struct EncodedFeed {
    running: Arc<Running>,
}

impl EncodedFeed {
    /// The newest H.264 access unit (its own `seq`, one per frame encoded, so a reader's
    /// gate sees the frames it missed; capture times of the JPEG).
    fn watch(&self) -> watch::Receiver<Option<LatestFrame>> {
        self.running.frames.subscribe()
    }

    /// Makes the next frame encoded a keyframe (a reader joined or missed a frame).
    fn request_keyframe(&self) {
        self.running.keyframe.store(true, Ordering::Relaxed);
    }
}

struct Running {
    id: StreamId,
    frames: watch::Sender<Option<LatestFrame>>,
    keyframe: Arc<AtomicBool>,
    task: AbortHandle,
    registry: Arc<Registry>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
        self.registry
            .update_rtsp_use(self.id, |u| u.transcoding = false);
        info!(
            stream_id = self.id.get(),
            "stream {}: no RTSP reader left; JPEG → H.264 encoding stopped", self.id
        );
    }
}

impl RtspTranscoders {
    /// Joins (or starts) stream `id`'s encoder at `fps`; `None` if the stream is unknown.
    fn subscribe(&self, registry: &Arc<Registry>, id: StreamId, fps: f64) -> Option<EncodedFeed> {
        let mut running = lock(&self.running);
        running.retain(|_, r| r.strong_count() > 0);
        if let Some(existing) = running.get(&id).and_then(Weak::upgrade) {
            return Some(EncodedFeed { running: existing });
        }
        let jpegs = registry.watch_frames(id)?;
        let (frames, _) = watch::channel(None);
        let keyframe = Arc::new(AtomicBool::new(true));
        let fps = if fps > 0.0 { fps } else { 30.0 };
        let task = tokio::spawn(encode(
            id,
            jpegs,
            frames.clone(),
            Arc::clone(&keyframe),
            Transcoder::new(fps),
        ));
        let started = Arc::new(Running {
            id,
            frames,
            keyframe,
            task: task.abort_handle(),
            registry: Arc::clone(registry),
        });
        registry.update_rtsp_use(id, |u| u.transcoding = true);
        info!(
            stream_id = id.get(),
            "stream {id}: encoding JPEG to H.264 once for its RTSP readers"
        );
        running.insert(id, Arc::downgrade(&started));
        Some(EncodedFeed { running: started })
    }
}

/// Encodes the newest JPEG each time (latest wins: a slow encoder skips pictures, and
/// every picture is a reference, so nothing smears) until aborted or the stream is
/// forgotten.
async fn encode(
    id: StreamId,
    mut jpegs: watch::Receiver<Option<LatestFrame>>,
    frames: watch::Sender<Option<LatestFrame>>,
    keyframe: Arc<AtomicBool>,
    mut transcoder: Transcoder,
) {
    let mut seq = 0u64;
    // The newest picture at once (a DESCRIBE waits for its parameter sets), then each new one.
    let mut newest = jpegs.borrow_and_update().clone();
    loop {
        if let Some(jpeg) = newest.take().filter(|f| f.codec == Codec::Jpeg) {
            let force = keyframe.swap(false, Ordering::Relaxed);
            let data = jpeg.data.clone();
            let Some((back, result)) = crate::blocking::run_with(transcoder, move |t| {
                if force {
                    t.force_keyframe();
                }
                t.transcode(&data)
            })
            .await
            else {
                warn!("stream {id}: the JPEG → H.264 encoder panicked; RTSP readers stop");
                return;
            };
            transcoder = back;
            match result {
                Ok(access_unit) => {
                    seq += 1;
                    frames.send_replace(Some(LatestFrame {
                        seq,
                        codec: Codec::H264,
                        is_keyframe: vidcast_h264::is_keyframe(&access_unit),
                        data: access_unit,
                        wall_message: Arc::default(),
                        ..jpeg
                    }));
                }
                Err(e) => debug!("stream {id}: frame {} not encoded: {e}", jpeg.seq),
            }
        }
        if jpegs.changed().await.is_err() {
            return;
        }
        newest = jpegs.borrow_and_update().clone();
    }
}

/// A Digest nonce nobody can guess: 16 random bytes in hex (from the system's generator;
/// the clock's microseconds if it fails, which only makes replays across connections
/// guessable, not tokens).
fn nonce() -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        bytes[..16].copy_from_slice(&now.as_nanos().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SPS and PPS of an Annex B access unit.
fn parameter_sets_of(access_unit: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let nals = vidcast_h264::nal_units(access_unit);
    let sps = nals.iter().find(|n| vidcast_h264::nal_type(n) == 7)?;
    let pps = nals.iter().find(|n| vidcast_h264::nal_type(n) == 8)?;
    Some((sps.to_vec(), pps.to_vec()))
}
