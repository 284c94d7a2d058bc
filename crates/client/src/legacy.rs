//! Sending in the original Python project's format, to its `server.py` (`vidcast send --legacy`).
//!
//! Per frame: the source's RGB → BGR → [`vidcast_legacy::encode_frame`] (u64 LE length + numpy
//! pickle) → a plain TCP socket. No handshake, heartbeat or timestamp: the original server
//! sends nothing back, so the only signs of life are the socket's own (writes that progress,
//! EOF or an error when the server goes away).
//!
//! Latest frame wins, as in the vidcast publisher: the capture thread overwrites a one-frame
//! slot and the drive loop takes the newest frame each time the previous one is fully written,
//! so frames the socket cannot take in time are dropped (counted), never queued.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use vidcast_media::{MediaError, RawFrame, VideoSource};
use vidcast_proto::Backoff;

use crate::capture::Capture;
use crate::error::{LegacySendError, PublishError};

/// How often, at most, dropped frames are reported while streaming.
const DROP_LOG_EVERY: Duration = Duration::from_secs(5);

/// One frame in the original format, ready for the socket.
#[derive(Debug, Clone)]
pub struct LegacyPacket {
    /// 1 for the first frame the capture thread turned out, then 2, 3, ...: a gap between two
    /// packets the sender takes is frames dropped.
    pub index: u64,
    /// The source's frame number.
    pub seq: u64,
    /// Length prefix and pickle, exactly what the original `client.py` sends for this frame.
    pub bytes: Bytes,
}

/// Turns a raw frame into the `index`th packet: RGB to BGR (OpenCV's order, which the original
/// server shows as it is), then pickled the way `client.py` does it.
pub fn to_packet(index: u64, raw: RawFrame) -> Result<LegacyPacket, MediaError> {
    // The legacy wire format is BGR pixels: a YUV source is converted here, once.
    let mut raw = raw.into_rgb()?;
    vidcast_legacy::swap_red_blue(&mut raw.data);
    let bytes = vidcast_legacy::encode_frame(raw.width, raw.height, &raw.data)
        .map_err(|e| MediaError::Encode(e.to_string()))?;
    Ok(LegacyPacket {
        index,
        seq: raw.seq,
        bytes: Bytes::from(bytes),
    })
}

/// Starts a capture thread that takes at most `limit` frames (all, if `None`) from `source` and
/// puts each, in the original format, into `slot`. Dropping the slot's receivers or
/// [`Capture::stop`] ends it; when it ends it drops `slot`, which tells [`send_legacy`] the
/// video is over.
pub fn start_capture(
    source: Box<dyn VideoSource>,
    limit: Option<u64>,
    slot: watch::Sender<Option<LegacyPacket>>,
) -> io::Result<Capture> {
    let mut index = 0;
    Capture::spawn(source, limit, slot, move |captured| {
        index += 1;
        to_packet(index, captured.into_raw()?)
    })
}

/// Settings of [`send_legacy`].
#[derive(Debug, Clone)]
pub struct LegacyOptions {
    /// Reconnect with backoff after a failed or lost connection, forever, instead of giving up.
    pub reconnect: bool,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// A connection that takes no byte of a frame for this long is given up: with no
    /// heartbeats, a stalled write is the only way to notice a server that is gone.
    pub stall_timeout: Duration,
    /// Seeds the backoff's jitter (e.g. the clock's microseconds), so senders started together
    /// do not knock again in step.
    pub jitter_seed: u64,
}

impl Default for LegacyOptions {
    fn default() -> Self {
        Self {
            reconnect: true,
            max_backoff: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(10),
            jitter_seed: 1,
        }
    }
}

/// Why [`send_legacy`] stopped.
#[derive(Debug)]
pub enum LegacyEnd {
    /// The source ended (e.g. `--frames` reached) and its last frame was sent.
    SourceEnded,
    /// The shutdown future completed.
    Stopped,
    /// A connection failed or was lost, and reconnecting was off.
    Failed(LegacySendError),
}

impl std::fmt::Display for LegacyEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LegacyEnd::SourceEnded => f.write_str("video finished"),
            LegacyEnd::Stopped => f.write_str("stopped"),
            LegacyEnd::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// What [`send_legacy`] did.
#[derive(Debug)]
pub struct LegacySummary {
    /// Connections made.
    pub connections: u64,
    /// Frames written whole.
    pub frames_sent: u64,
    /// Frames the socket could not take in time (replaced in the slot while a frame was being
    /// written or while disconnected), plus frames cut short by a failed connection.
    pub frames_dropped: u64,
    /// Bytes written, length prefixes included.
    pub bytes_sent: u64,
    /// Why it stopped.
    pub end: LegacyEnd,
}

/// Streams the packets from `frames` to the original server at `addrs` until the source ends,
/// `shutdown` completes, or (without `options.reconnect`) a connection fails.
pub async fn send_legacy(
    addrs: &[SocketAddr],
    frames: &mut watch::Receiver<Option<LegacyPacket>>,
    options: &LegacyOptions,
    shutdown: impl Future<Output = ()>,
) -> LegacySummary {
    tokio::pin!(shutdown);
    let mut sender = Sender {
        frames,
        stall_timeout: options.stall_timeout,
        summary: LegacySummary {
            connections: 0,
            frames_sent: 0,
            frames_dropped: 0,
            bytes_sent: 0,
            end: LegacyEnd::Stopped,
        },
        last_index: 0,
        unreported_drops: 0,
        last_drop_log: None,
    };
    let mut backoff = Backoff::new(options.max_backoff, options.jitter_seed);
    let mut outage_logged = false;
    loop {
        let connected = tokio::select! {
            connected = crate::socket::connect(addrs, options.connect_timeout) => connected,
            () = &mut shutdown => return sender.finish(LegacyEnd::Stopped),
        };
        let error = match connected {
            Ok(stream) => {
                sender.summary.connections += 1;
                outage_logged = false;
                match sender.stream(stream, shutdown.as_mut()).await {
                    Ok(end) => return sender.finish(end),
                    Err(e) => {
                        backoff.reset();
                        e
                    }
                }
            }
            Err(e) => LegacySendError::from_connect(e),
        };
        if !options.reconnect {
            return sender.finish(LegacyEnd::Failed(error));
        }
        if outage_logged {
            debug!("still no server: {error}");
        } else {
            warn!(
                "{error}; reconnecting with backoff (up to {:?} between tries)",
                options.max_backoff
            );
            outage_logged = true;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = &mut shutdown => return sender.finish(LegacyEnd::Stopped),
        }
        if sender.frames.has_changed().is_err() {
            info!("source ended while the server was away");
            return sender.finish(LegacyEnd::SourceEnded);
        }
    }
}

/// The drive loop's state across connections.
struct Sender<'a> {
    frames: &'a mut watch::Receiver<Option<LegacyPacket>>,
    stall_timeout: Duration,
    summary: LegacySummary,
    /// Index of the last packet taken from the slot.
    last_index: u64,
    unreported_drops: u64,
    last_drop_log: Option<Instant>,
}

impl Sender<'_> {
    fn finish(mut self, end: LegacyEnd) -> LegacySummary {
        self.summary.end = end;
        self.summary
    }

    /// One connection: the newest frame whenever the last one is written, until the source
    /// ends (`Ok`), shutdown (`Ok`), or the connection fails (`Err`).
    async fn stream<F: Future<Output = ()>>(
        &mut self,
        stream: TcpStream,
        mut shutdown: Pin<&mut F>,
    ) -> Result<LegacyEnd, LegacySendError> {
        let addr = stream.peer_addr().map_err(|source| LegacySendError::Io {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            cause: source,
        })?;
        info!("connected to {addr}; sending in the original format (the server answers nothing)");
        let (reader, mut writer) = stream.into_split();
        let mut peer = Peer {
            addr,
            reader,
            is_chatter_logged: false,
        };
        loop {
            let packet = tokio::select! {
                changed = self.frames.changed() => match changed {
                    Ok(()) => self.frames.borrow_and_update().clone(),
                    Err(_) => {
                        close(&mut writer, addr).await;
                        return Ok(LegacyEnd::SourceEnded);
                    }
                },
                read = peer.read() => {
                    read?;
                    continue;
                }
                () = shutdown.as_mut() => {
                    close(&mut writer, addr).await;
                    return Ok(LegacyEnd::Stopped);
                }
            };
            let Some(packet) = packet else { continue };
            self.count_drops(packet.index);
            // A frame once started is finished even on shutdown: the original server, given
            // a cut frame, spins forever on `recv` returning b"" (its inner loop has no EOF
            // check). Only a failed or stalled connection leaves one unfinished.
            let mut is_stopping = false;
            let mut written = 0;
            let mut deadline = Instant::now() + self.stall_timeout;
            while written < packet.bytes.len() {
                let result = tokio::select! {
                    w = tokio::time::timeout_at(deadline, writer.write(&packet.bytes[written..])) => match w {
                        Ok(Ok(0)) => Err(LegacySendError::Io {
                            addr,
                            cause: io::ErrorKind::WriteZero.into(),
                        }),
                        Ok(Ok(n)) => {
                            written += n;
                            self.summary.bytes_sent += n as u64;
                            deadline = Instant::now() + self.stall_timeout;
                            Ok(())
                        }
                        Ok(Err(cause)) => Err(LegacySendError::Io { addr, cause }),
                        Err(_) => Err(LegacySendError::Stalled {
                            addr,
                            waited: self.stall_timeout,
                        }),
                    },
                    read = peer.read() => read,
                    () = shutdown.as_mut(), if !is_stopping => {
                        is_stopping = true;
                        Ok(())
                    }
                };
                if let Err(e) = result {
                    self.summary.frames_dropped += 1;
                    if is_stopping {
                        // `shutdown` has completed and must not be polled again.
                        warn!("{e} while finishing the last frame");
                        return Ok(LegacyEnd::Stopped);
                    }
                    return Err(e);
                }
            }
            self.summary.frames_sent += 1;
            if is_stopping {
                close(&mut writer, addr).await;
                return Ok(LegacyEnd::Stopped);
            }
        }
    }

    /// Counts the frames between the last packet taken and `index` as dropped; reports them
    /// at most every [`DROP_LOG_EVERY`].
    fn count_drops(&mut self, index: u64) {
        let dropped = index.saturating_sub(self.last_index + 1);
        self.last_index = index;
        if dropped == 0 {
            return;
        }
        self.summary.frames_dropped += dropped;
        self.unreported_drops += dropped;
        let now = Instant::now();
        if self
            .last_drop_log
            .is_none_or(|last| now.duration_since(last) >= DROP_LOG_EVERY)
        {
            info!(
                "dropped {} frame(s) since the last report: the connection is slower than the source (latest frame wins)",
                self.unreported_drops
            );
            self.unreported_drops = 0;
            self.last_drop_log = Some(now);
        }
    }
}

/// The read side: the original server never writes, so reading only notices it leaving.
struct Peer {
    addr: SocketAddr,
    reader: OwnedReadHalf,
    is_chatter_logged: bool,
}

impl Peer {
    /// Waits for the server to close (`Err(Closed)`), fail (`Err(Io)`) or, unexpectedly,
    /// send something (`Ok`, logged once per connection and ignored). Cancel-safe.
    async fn read(&mut self) -> Result<(), LegacySendError> {
        let mut scratch = [0u8; 512];
        match self.reader.read(&mut scratch).await {
            Ok(0) => Err(LegacySendError::Closed { addr: self.addr }),
            Ok(n) => {
                if !self.is_chatter_logged {
                    warn!(
                        "server {} sent {n} byte(s); the original server.py sends nothing, so they are ignored (is this the right address?)",
                        self.addr
                    );
                    self.is_chatter_logged = true;
                }
                Ok(())
            }
            Err(cause) => Err(LegacySendError::Io {
                addr: self.addr,
                cause,
            }),
        }
    }
}

/// Ends the stream with a FIN, as the original client's exit does.
async fn close(writer: &mut OwnedWriteHalf, addr: SocketAddr) {
    if let Err(e) = writer.shutdown().await {
        debug!("closing the connection to {addr}: {e}");
    }
}

impl LegacySendError {
    fn from_connect(error: PublishError) -> Self {
        match error {
            PublishError::Connect { addr, source } => LegacySendError::Connect {
                addr,
                cause: source,
            },
            PublishError::Resolve { hub, source } => {
                LegacySendError::Resolve { hub, cause: source }
            }
            // `connect` returns nothing else.
            PublishError::Rejected { addr, .. }
            | PublishError::Handshake { addr, .. }
            | PublishError::Io { addr, .. }
            | PublishError::Tls { addr, .. }
            | PublishError::FingerprintMismatch { addr, .. }
            | PublishError::Certificate { addr, .. }
            | PublishError::FrameTooLarge { addr, .. }
            | PublishError::NotAHub { addr, .. } => LegacySendError::Io {
                addr,
                cause: io::Error::other(error.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use vidcast_legacy::LegacyDecoder;

    /// Far more than loopback's socket buffers hold, so writing it takes a reader.
    const BIG: usize = 64 << 20;

    fn packet(index: u64, len: usize) -> Option<LegacyPacket> {
        Some(LegacyPacket {
            index,
            seq: index,
            bytes: Bytes::from(vec![index as u8; len]),
        })
    }

    fn once() -> LegacyOptions {
        LegacyOptions {
            reconnect: false,
            ..LegacyOptions::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_replaced_while_one_is_written_are_dropped_never_queued() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (slot, mut frames) = watch::channel(None);
        let sender = tokio::spawn(async move {
            send_legacy(&[addr], &mut frames, &once(), std::future::pending()).await
        });
        let (mut server, _) = listener.accept().await.unwrap();
        slot.send_replace(packet(1, BIG));
        // Once its first byte is here the sender is inside frame 1, which cannot fit the
        // socket buffers while nobody reads: frames 2 to 4 replace each other in the slot.
        let mut first = [0u8; 1];
        server.read_exact(&mut first).await.unwrap();
        for index in 2..=4 {
            slot.send_replace(packet(index, 1000));
        }
        drop(slot);
        let mut received = Vec::new();
        server.read_to_end(&mut received).await.unwrap();
        let summary = sender.await.unwrap();
        assert!(matches!(summary.end, LegacyEnd::SourceEnded), "{summary:?}");
        assert_eq!((summary.frames_sent, summary.frames_dropped), (2, 2));
        assert_eq!(
            1 + received.len(),
            BIG + 1000,
            "frame 1 and frame 4, nothing else"
        );
        assert!(received[BIG - 1..].iter().all(|&b| b == 4));
        assert_eq!(summary.bytes_sent, (BIG + 1000) as u64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_reads_nothing_is_given_up_after_the_stall_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (slot, mut frames) = watch::channel(packet(1, BIG));
        frames.mark_changed();
        let options = LegacyOptions {
            stall_timeout: Duration::from_millis(300),
            ..once()
        };
        let sender = tokio::spawn(async move {
            send_legacy(&[addr], &mut frames, &options, std::future::pending()).await
        });
        let (_server, _) = listener.accept().await.unwrap();
        let summary = sender.await.unwrap();
        drop(slot);
        assert!(
            matches!(
                summary.end,
                LegacyEnd::Failed(LegacySendError::Stalled { .. })
            ),
            "{summary:?}"
        );
        assert_eq!((summary.frames_sent, summary.frames_dropped), (0, 1));
    }

    fn raw(width: u32, height: u32) -> RawFrame {
        let rgb = (0..width * height * 3).map(|i| (i % 251) as u8).collect();
        RawFrame {
            width,
            height,
            format: vidcast_media::PixelFormat::Rgb8,
            data: rgb,
            seq: 7,
            capture_us: 0,
        }
    }

    #[test]
    fn packet_is_the_frame_in_bgr_with_its_length_prefix() {
        let frame = raw(5, 3);
        let packet = to_packet(1, frame.clone()).expect("encodes");
        assert_eq!(packet.seq, 7);
        let len = u64::from_le_bytes(packet.bytes[..8].try_into().expect("8 bytes"));
        assert_eq!(len as usize, packet.bytes.len() - 8);
        let mut decoder = LegacyDecoder::new(1 << 20);
        let mut buf = bytes::BytesMut::from(&packet.bytes[..]);
        let decoded = decoder
            .decode(&mut buf)
            .expect("valid")
            .expect("a whole frame");
        assert_eq!((decoded.width, decoded.height), (5, 3));
        assert_eq!(decoded.into_rgb(), frame.data);
    }
}
