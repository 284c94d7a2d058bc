//! A connection from the original Python client (`client.py`): raw BGR pictures in pickles,
//! no handshake, no timestamps. Read with `vidcast-legacy`'s strict reader, transcoded to JPEG
//! so every viewer can show it, and listed like any stream, marked legacy, latency unknown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
use tracing::{info, warn};
use vidcast_legacy::LegacyDecoder;
use vidcast_media::{Encoder, JpegEncoder, RawFrame};
use vidcast_proto::Codec;

use crate::access::limits::{bite, bite_frame, IncomingFrame, HANDSHAKE_LOG};
use crate::human;
use crate::ingest::session::Arrival;
use crate::ingest::IngestContext;
use crate::stream::frames::FrameOutlet;
use crate::stream::registry::{lock, LatestFrame, Owner, StreamHandle, StreamInfo};
use vidcast_pump::{earliest, sleep_until};

/// JPEG quality for transcoded legacy pictures.
const TRANSCODE_QUALITY: u8 = 80;

/// Receive buffer growth, and the spare room below which it grows.
const READ_CHUNK: usize = 256 * 1024;

/// Runs one legacy connection to its end. `inbuf` holds the bytes read while sniffing;
/// `arrival.connected_at` is when the connection was accepted.
///
/// The original format has no handshake and no heartbeat, so the same limits are applied to
/// what it does send: its first whole picture must come within `--handshake-timeout` (until
/// then it is pending, and evicted like a vidcast connection), silence longer than
/// `--peer-timeout` ends it (the original client sends pictures back to back), and each picture
/// is held to the frame budget and minimum rate.
pub(crate) async fn run(
    mut socket: impl AsyncRead + Unpin + Send,
    mut inbuf: BytesMut,
    arrival: Arrival<'_>,
) {
    let Arrival {
        peer,
        ctx,
        mut shutdown,
        mut ticket,
        mut evicted,
        connected_at,
    } = arrival;
    let limits = ctx.access.limits;
    let timing = ctx.connection.timing;
    let mut incoming = IncomingFrame::new(Arc::clone(&ctx.access.frame_budget), &limits);
    let first_picture_due = connected_at + timing.handshake_timeout;
    let mut last_byte_at = Instant::now();
    let mut decoder = LegacyDecoder::new(ctx.connection.max_frame_bytes);
    let name = format!("legacy@{}", peer.ip());
    let mut stream: Option<(StreamHandle, StreamInfo, Instant)> = None;
    let (raw_tx, raw_rx) = watch::channel::<Option<(u64, u64, RawFrame)>>(None);
    let mut encoder_task = None;
    let mut seq = 0u64;
    let reason = loop {
        match decoder.decode(&mut inbuf) {
            Ok(Some(frame)) => {
                let now_us = ctx.clock.now_us();
                if stream.is_none() {
                    match register(ctx, &name, peer, frame.width, frame.height, now_us) {
                        Ok(registered) => {
                            ticket.done();
                            encoder_task = Some(tokio::spawn(encode_loop(
                                raw_rx.clone(),
                                registered.0.frames.clone(),
                                Arc::clone(&registered.0.stats),
                            )));
                            stream = Some(registered);
                        }
                        Err(why) => break why,
                    }
                }
                let (width, height) = (frame.width, frame.height);
                // The newest picture replaces one still waiting for the encoder.
                raw_tx.send_replace(Some((
                    seq,
                    now_us,
                    RawFrame {
                        width,
                        height,
                        format: vidcast_media::PixelFormat::Rgb8,
                        data: frame.into_rgb(),
                        seq,
                        capture_us: now_us,
                    },
                )));
                seq += 1;
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                warn!("legacy client {peer}: {e}; closing (nothing of it is executed)");
                break format!("refused: {e}");
            }
        }
        let now = Instant::now();
        let limit = incoming
            .update(decoder.receiving(&inbuf), &mut inbuf, now)
            .and_then(|()| incoming.check(&inbuf, now));
        if let Err(why) = limit {
            bite_frame(&ctx.access.hits, peer, &why);
            break why.to_string();
        }
        let silent_until = last_byte_at + timing.peer_timeout;
        if now >= silent_until {
            let reason = format!(
                "silent for {} ms (--peer-timeout)",
                timing.peer_timeout.as_millis()
            );
            if stream.is_none() {
                bite(
                    &ctx.access.hits.handshake_timeout,
                    &HANDSHAKE_LOG,
                    peer,
                    &format!("legacy connection {reason}"),
                );
            }
            break reason;
        }
        let mut wake_at = earliest(Some(silent_until), incoming.deadline());
        if stream.is_none() {
            if now >= first_picture_due {
                let reason = format!(
                    "no whole picture within {} ms (--handshake-timeout)",
                    timing.handshake_timeout.as_millis()
                );
                bite(
                    &ctx.access.hits.handshake_timeout,
                    &HANDSHAKE_LOG,
                    peer,
                    &format!("legacy connection: {reason}"),
                );
                break reason;
            }
            wake_at = earliest(wake_at, Some(first_picture_due));
        }
        // A large picture's buffer was sized to it when it began (see `IncomingFrame`).
        if inbuf.capacity() - inbuf.len() < READ_CHUNK / 16 && !incoming.sized(&inbuf) {
            inbuf.reserve(READ_CHUNK);
        }
        tokio::select! {
            read = socket.read_buf(&mut inbuf) => match read {
                Ok(0) if decoder.is_mid_frame(&inbuf) => {
                    break format!("closed mid-frame at byte {}", decoder.consumed() + inbuf.len() as u64);
                }
                Ok(0) => break "closed (the original client says no goodbye)".to_owned(),
                Ok(_) => last_byte_at = Instant::now(),
                Err(e) => break format!("socket error: {e}"),
            },
            _ = sleep_until(wake_at.map(tokio::time::Instant::from_std)) => {}
            _ = &mut evicted, if ticket.is_pending() => {
                break "evicted before its first picture: too many connections pending (--max-pending-per-ip, --max-pending)".to_owned();
            }
            _ = shutdown.changed() => break "hub shutting down".to_owned(),
        }
    };
    drop(raw_tx);
    if let Some(task) = encoder_task {
        let _ = task.await;
    }
    drop(socket);
    match stream {
        Some((handle, info, since)) => {
            ctx.registry
                .disconnect(handle.id, reason.clone(), false, ctx.clock.now_us());
            let (frames, bytes) = {
                let s = lock(&handle.stats);
                (s.frames, s.bytes)
            };
            info!(
                stream_id = handle.id.get(),
                "client {peer} \"{}\" disconnected ({reason}, after {}, {} frames, {}) — {} live",
                info.name,
                human::elapsed(since.elapsed()),
                human::count(frames),
                human::bytes(bytes),
                ctx.registry.live_count(),
            );
        }
        None => info!("legacy connection from {peer} ended before its first picture: {reason}"),
    }
}

fn register(
    ctx: &IngestContext,
    name: &str,
    peer: SocketAddr,
    width: u32,
    height: u32,
    now_us: u64,
) -> Result<(StreamHandle, StreamInfo, Instant), String> {
    let limits = &ctx.access.limits;
    let live = ctx.registry.live_count();
    if live >= limits.max_clients {
        warn!("legacy client {peer} refused: hub full ({live} clients)");
        return Err(format!("hub full: {live} clients"));
    }
    let (Ok(w), Ok(h)) = (u16::try_from(width), u16::try_from(height)) else {
        return Err(format!("picture {width}x{height} is too large"));
    };
    let info = StreamInfo {
        name: name.to_owned(),
        peer,
        codec: Codec::Jpeg,
        width: w,
        height: h,
        fps_nominal: 0.0,
        legacy: true,
        browser: false,
    };
    let handle = ctx
        .registry
        .connect(info.clone(), Owner::of("", peer.ip()), now_us)
        .map_err(|refused| refused.to_string())?;
    let info = StreamInfo {
        name: handle.name.clone(),
        ..info
    };
    info!(
        stream_id = handle.id.get(),
        "client {peer} \"{name}\" connected (original Python client, {width}x{height} BGR, transcoded to JPEG; latency unknown) — {} live",
        ctx.registry.live_count()
    );
    Ok((handle, info, Instant::now()))
}

/// Encodes the newest raw picture on a blocking thread and publishes it; pictures that arrive
/// meanwhile replace each other (counted as drops through the sequence gaps).
async fn encode_loop(
    mut raw: watch::Receiver<Option<(u64, u64, RawFrame)>>,
    latest: FrameOutlet,
    stats: Arc<std::sync::Mutex<crate::stream::stats::StreamStats>>,
) {
    let Ok(mut encoder) = JpegEncoder::new(TRANSCODE_QUALITY) else {
        return;
    };
    while raw.changed().await.is_ok() {
        let Some((seq, received_us, frame)) = raw.borrow_and_update().clone() else {
            continue;
        };
        let done = tokio::task::spawn_blocking(move || {
            let result = encoder.encode(&frame);
            (encoder, result)
        })
        .await;
        let Ok((back, result)) = done else {
            return;
        };
        encoder = back;
        let Ok(jpeg) = result else {
            continue;
        };
        // The original format has no timestamps: latency is unknown, not invented.
        lock(&stats).record_frame(seq, jpeg.data.len(), received_us, None);
        latest.publish(LatestFrame {
            seq,
            capture_us: received_us,
            received_us,
            codec: Codec::Jpeg,
            capture_local_us: None,
            data: jpeg.data,
            is_keyframe: true,
            wall_message: Default::default(),
        });
    }
}
