//! The messages and their payload encoding. Layouts are in PROTOCOL.md; this file is the truth.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::ProtocolError;

/// The 8 bytes each side sends first. Like PNG's signature: the high first byte and the CR LF
/// catch 7-bit and newline-mangling channels, and no byte is zero, so read as the original
/// project's little-endian u64 frame length it is absurdly large and cannot be mistaken for one.
pub const MAGIC: [u8; 8] = *b"\x89VCAST\r\n";
/// The protocol version this implementation speaks.
pub const VERSION: u16 = 1;
/// Bytes before every payload: kind (u8) and payload length (u32, big-endian).
pub const HEADER_LEN: usize = 5;
/// Largest payload of any message but a frame.
pub const MAX_CONTROL_PAYLOAD: u32 = 4096;
/// Bytes of a frame payload before the picture: seq, capture time, flags.
pub const FRAME_META_LEN: usize = 17;
/// Bytes of a viewer's frame payload before the picture: stream id, then a frame's metadata.
pub const STREAM_FRAME_META_LEN: usize = 8 + FRAME_META_LEN;
/// The protocol's ceiling on one frame's picture bytes; deployments set lower limits.
pub const MAX_FRAME_BYTES: u32 = 64 << 20;
/// Longest client name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 64;
/// Longest authentication token, in bytes.
pub const MAX_TOKEN_LEN: usize = 255;

/// Message kinds. Kinds from 0x80 up are optional: a peer that does not know one skips it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Client → hub: who I am and what I send.
    Hello = 0x01,
    /// Hub → client: accepted.
    Welcome = 0x02,
    /// Hub → client: refused, with a reason; the hub then closes.
    Reject = 0x03,
    /// One encoded picture.
    Frame = 0x10,
    /// Heartbeat and clock probe; the peer answers with a pong.
    Ping = 0x20,
    /// Answer to a ping.
    Pong = 0x21,
    /// Leaving, with a reason; the sender then closes.
    Goodbye = 0x30,
    /// Hub → viewer: a stream exists, or what is known of it changed (live, peer, size).
    StreamAnnounce = 0x40,
    /// Hub → viewer: a stream is forgotten; its tile goes.
    StreamRemoved = 0x41,
    /// Hub → viewer: one picture of one stream.
    StreamFrame = 0x42,
    /// Viewer → hub: a stream's frame was taken; the next may come.
    FrameAck = 0x43,
    /// Hub → publisher: please send a keyframe soon (optional, so old publishers may ignore it).
    KeyframeRequest = 0x81,
    /// Publisher → hub: the publisher's view of its TCP connection (optional).
    SenderReport = 0x82,
    /// Publisher → hub: what the publisher's link adaptation chose (optional).
    EncoderReport = 0x83,
}

impl Kind {
    /// The kind for a byte, if this side knows it.
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            0x01 => Kind::Hello,
            0x02 => Kind::Welcome,
            0x03 => Kind::Reject,
            0x10 => Kind::Frame,
            0x20 => Kind::Ping,
            0x21 => Kind::Pong,
            0x30 => Kind::Goodbye,
            0x40 => Kind::StreamAnnounce,
            0x41 => Kind::StreamRemoved,
            0x42 => Kind::StreamFrame,
            0x43 => Kind::FrameAck,
            0x81 => Kind::KeyframeRequest,
            0x82 => Kind::SenderReport,
            0x83 => Kind::EncoderReport,
            _ => return None,
        })
    }

    /// Whether a peer that does not know this kind byte may skip the message.
    pub fn is_optional(kind_byte: u8) -> bool {
        kind_byte >= 0x80
    }
}

/// What a connecting client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends frames of one stream.
    Publisher,
    /// Receives every stream's frames and the list of streams.
    Viewer,
}

impl Role {
    fn to_u8(self) -> u8 {
        match self {
            Role::Publisher => 1,
            Role::Viewer => 2,
        }
    }
}

pub use vidcast_h264::Codec;

/// A codec number this side does not know (a newer peer's); the hub rejects a publisher
/// that announces one politely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("unsupported codec {0}")]
pub struct UnknownCodec(pub u8);

/// A codec as a hello or an announcement carries it: known, or a number kept for the reply.
pub type WireCodec = Result<Codec, UnknownCodec>;

/// The codec's wire number (PROTOCOL.md: 1 JPEG, 2 H.264), also used by the web wall's frames.
pub fn codec_number(codec: Codec) -> u8 {
    match codec {
        Codec::Jpeg => 1,
        Codec::H264 => 2,
    }
}

/// The codec for a wire number.
pub fn codec_from_number(number: u8) -> WireCodec {
    match number {
        1 => Ok(Codec::Jpeg),
        2 => Ok(Codec::H264),
        other => Err(UnknownCodec(other)),
    }
}

fn wire_codec_number(codec: WireCodec) -> u8 {
    codec.map_or_else(|UnknownCodec(n)| n, codec_number)
}

/// Client → hub, first message after the magic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version the client speaks.
    pub version: u16,
    /// Publisher or viewer.
    pub role: Role,
    /// Codec of the frames a publisher will send.
    pub codec: WireCodec,
    /// Picture width in pixels (0 for viewers).
    pub width: u16,
    /// Picture height in pixels (0 for viewers).
    pub height: u16,
    /// Nominal frame rate in thousandths of a frame per second (29.97 fps = 29970).
    pub fps_milli: u32,
    /// The client's name as people will see it: 1 to 64 bytes of UTF-8, no control, format
    /// (bidi, zero-width) or line-separator characters ([`crate::name_problem`]).
    pub name: String,
    /// Authentication token; empty when none (room reserved for the auth issue).
    pub token: String,
}

/// Hub → client: the handshake succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// Protocol version the hub will speak.
    pub version: u16,
    /// The id the hub gave this stream; shown in the API and logs.
    pub stream_id: u64,
    /// How often the hub pings, in milliseconds.
    pub heartbeat_ms: u32,
    /// Largest frame the hub accepts, in bytes of picture data.
    pub max_frame_bytes: u32,
    /// The name the hub shows the stream under: the hello's, or a distinct one (`pi-2`) when
    /// another client holds it. Appended field: empty from hubs that do not send it.
    pub name: String,
}

/// Why a hub refused a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectCode {
    /// The hello did not parse or named something unsupported.
    BadHello,
    /// A version this hub does not speak.
    Version,
    /// Missing or wrong token.
    Unauthorized,
    /// A limit was reached (clients, connections per address…).
    Busy,
    /// The handshake took too long.
    Timeout,
    /// A code this side does not know.
    Other(u8),
}

impl RejectCode {
    fn to_u8(self) -> u8 {
        match self {
            RejectCode::BadHello => 1,
            RejectCode::Version => 2,
            RejectCode::Unauthorized => 3,
            RejectCode::Busy => 4,
            RejectCode::Timeout => 5,
            RejectCode::Other(b) => b,
        }
    }

    fn from_u8(b: u8) -> Self {
        match b {
            1 => RejectCode::BadHello,
            2 => RejectCode::Version,
            3 => RejectCode::Unauthorized,
            4 => RejectCode::Busy,
            5 => RejectCode::Timeout,
            other => RejectCode::Other(other),
        }
    }
}

/// Hub → client: refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Machine-readable reason.
    pub code: RejectCode,
    /// Human-readable reason, for the client's log.
    pub reason: String,
}

/// One encoded picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Publisher's frame counter; increases by one per captured frame (gaps are drops).
    pub seq: u64,
    /// Capture time on the publisher's clock, microseconds since the Unix epoch.
    pub capture_us: u64,
    /// Whether a decoder can start here (every JPEG frame is one).
    pub is_keyframe: bool,
    /// The encoded picture.
    pub data: Bytes,
}

/// Heartbeat and clock probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// Sender's clock when sent.
    pub sent_us: u64,
}

/// Answer to a ping: the three timestamps of an NTP exchange that the pinger needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    /// The ping's `sent_us`, echoed.
    pub ping_sent_us: u64,
    /// Answerer's clock when the ping arrived.
    pub ping_received_us: u64,
    /// Answerer's clock when the pong left.
    pub sent_us: u64,
}

/// Why a side is leaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoodbyeCode {
    /// The user stopped it.
    Normal,
    /// The hub is shutting down.
    Shutdown,
    /// The source ended (a video file finished).
    EndOfStream,
    /// The peer broke the protocol.
    ProtocolError,
    /// The peer went silent too long.
    Timeout,
    /// A limit was exceeded.
    Limit,
    /// The token this session was admitted with lost its right (the hub's token file changed).
    Revoked,
    /// A code this side does not know.
    Other(u8),
}

impl GoodbyeCode {
    fn to_u8(self) -> u8 {
        match self {
            GoodbyeCode::Normal => 0,
            GoodbyeCode::Shutdown => 1,
            GoodbyeCode::EndOfStream => 2,
            GoodbyeCode::ProtocolError => 3,
            GoodbyeCode::Timeout => 4,
            GoodbyeCode::Limit => 5,
            GoodbyeCode::Revoked => 6,
            GoodbyeCode::Other(b) => b,
        }
    }

    fn from_u8(b: u8) -> Self {
        match b {
            0 => GoodbyeCode::Normal,
            1 => GoodbyeCode::Shutdown,
            2 => GoodbyeCode::EndOfStream,
            3 => GoodbyeCode::ProtocolError,
            4 => GoodbyeCode::Timeout,
            5 => GoodbyeCode::Limit,
            6 => GoodbyeCode::Revoked,
            other => GoodbyeCode::Other(other),
        }
    }
}

/// Leaving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goodbye {
    /// Machine-readable reason.
    pub code: GoodbyeCode,
    /// Human-readable reason.
    pub reason: String,
}

/// Publisher → hub, a few times a second: the sending side's kernel TCP statistics, which the
/// hub cannot see from its receiving end (congestion window, retransmissions, unsent bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderReport {
    /// When sampled, publisher clock, µs since the Unix epoch.
    pub sampled_us: u64,
    /// Smoothed RTT, µs.
    pub rtt_us: u32,
    /// RTT variance, µs.
    pub rttvar_us: u32,
    /// Congestion window, segments.
    pub cwnd_segments: u32,
    /// Segment size, bytes.
    pub mss: u32,
    /// Segments in flight.
    pub unacked_segments: u32,
    /// Retransmitted segments over the connection's life.
    pub total_retrans: u32,
    /// Bytes written but not yet sent by the kernel.
    pub notsent_bytes: u32,
    /// Delivery rate estimate, bytes per second.
    pub delivery_rate: u64,
    /// Bytes acknowledged by the hub.
    pub bytes_acked: u64,
    /// Frames the publisher dropped so far (latest frame wins).
    pub frames_dropped: u64,
}

/// Publisher → hub, whenever its link adaptation changes the encoder's settings (and once
/// after connecting): lets the hub and its viewers say why a picture got worse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncoderReport {
    /// Adaptation level: 0 is the quality, rate and size the user asked for; higher is
    /// further reduced.
    pub level: u8,
    /// JPEG quality now in use (1–100).
    pub quality: u8,
    /// Frame rate now sent, frames per 1000 s.
    pub fps_milli: u32,
    /// Picture width now sent.
    pub width: u16,
    /// Picture height now sent.
    pub height: u16,
    /// The link rate the publisher measured, bits per second; 0 when it has no estimate.
    pub link_bps: u64,
}

/// Hub → viewer: a stream and what is known of it. Sent for every stream when the viewer is
/// welcomed, and again whenever any field changes (a client goes offline, comes back from
/// another address, announces another size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAnnounce {
    /// The hub's id of the stream (the publisher's `Welcome::stream_id`).
    pub stream_id: u64,
    /// Codec of its frames.
    pub codec: WireCodec,
    /// Picture width in pixels.
    pub width: u16,
    /// Picture height in pixels.
    pub height: u16,
    /// Nominal frame rate in thousandths of a frame per second.
    pub fps_milli: u32,
    /// Whether its publisher is connected now.
    pub is_live: bool,
    /// Whether it is the original Python client's stream, transcoded by the hub.
    pub is_legacy: bool,
    /// The publisher's name (1 to 64 bytes).
    pub name: String,
    /// The publisher's address as the hub sees it, "ip:port".
    pub peer: String,
}

/// Hub → viewer: one frame of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFrame {
    /// Which stream.
    pub stream_id: u64,
    /// The frame. `seq` is the publisher's; `capture_us` is on the hub's clock (the
    /// publisher's capture time corrected by the hub's offset estimate), 0 when unknown.
    pub frame: Frame,
}

/// Viewer → hub: the viewer took frame `seq` of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameAck {
    /// Which stream.
    pub stream_id: u64,
    /// The `seq` of the frame taken.
    pub seq: u64,
}

/// Any message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Welcome`].
    Welcome(Welcome),
    /// See [`Reject`].
    Reject(Reject),
    /// See [`Frame`].
    Frame(Frame),
    /// See [`Ping`].
    Ping(Ping),
    /// See [`Pong`].
    Pong(Pong),
    /// See [`Goodbye`].
    Goodbye(Goodbye),
    /// See [`StreamAnnounce`].
    StreamAnnounce(StreamAnnounce),
    /// Hub → viewer: this stream is forgotten.
    StreamRemoved {
        /// Which stream.
        stream_id: u64,
    },
    /// See [`StreamFrame`].
    StreamFrame(StreamFrame),
    /// See [`FrameAck`].
    FrameAck(FrameAck),
    /// Hub → publisher: send a keyframe soon.
    KeyframeRequest,
    /// See [`SenderReport`].
    SenderReport(SenderReport),
    /// See [`EncoderReport`].
    EncoderReport(EncoderReport),
    /// An optional kind this side does not know, skipped.
    Skipped {
        /// The kind byte.
        kind: u8,
    },
}

impl Message {
    /// The kind byte this message is sent with.
    pub fn kind_byte(&self) -> u8 {
        match self {
            Message::Hello(_) => Kind::Hello as u8,
            Message::Welcome(_) => Kind::Welcome as u8,
            Message::Reject(_) => Kind::Reject as u8,
            Message::Frame(_) => Kind::Frame as u8,
            Message::Ping(_) => Kind::Ping as u8,
            Message::Pong(_) => Kind::Pong as u8,
            Message::Goodbye(_) => Kind::Goodbye as u8,
            Message::StreamAnnounce(_) => Kind::StreamAnnounce as u8,
            Message::StreamRemoved { .. } => Kind::StreamRemoved as u8,
            Message::StreamFrame(_) => Kind::StreamFrame as u8,
            Message::FrameAck(_) => Kind::FrameAck as u8,
            Message::KeyframeRequest => Kind::KeyframeRequest as u8,
            Message::SenderReport(_) => Kind::SenderReport as u8,
            Message::EncoderReport(_) => Kind::EncoderReport as u8,
            Message::Skipped { kind } => *kind,
        }
    }

    /// Appends the whole message (header and payload) to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u8(self.kind_byte());
        out.put_u32(0); // patched below, once the payload length is known
        match self {
            Message::Hello(h) => {
                out.put_u16(h.version);
                out.put_u8(h.role.to_u8());
                out.put_u8(wire_codec_number(h.codec));
                out.put_u16(h.width);
                out.put_u16(h.height);
                out.put_u32(h.fps_milli);
                put_short_str(out, &h.name);
                put_short_str(out, &h.token);
            }
            Message::Welcome(w) => {
                out.put_u16(w.version);
                out.put_u64(w.stream_id);
                out.put_u32(w.heartbeat_ms);
                out.put_u32(w.max_frame_bytes);
                put_short_str(out, &w.name);
            }
            Message::Reject(r) => {
                out.put_u8(r.code.to_u8());
                put_tail_str(out, &r.reason);
            }
            Message::Ping(p) => out.put_u64(p.sent_us),
            Message::Pong(p) => {
                out.put_u64(p.ping_sent_us);
                out.put_u64(p.ping_received_us);
                out.put_u64(p.sent_us);
            }
            Message::Goodbye(g) => {
                out.put_u8(g.code.to_u8());
                put_tail_str(out, &g.reason);
            }
            Message::Frame(f) => {
                put_frame_meta(f, out);
                out.extend_from_slice(&f.data);
            }
            Message::StreamAnnounce(a) => {
                out.put_u64(a.stream_id);
                out.put_u8(wire_codec_number(a.codec));
                out.put_u16(a.width);
                out.put_u16(a.height);
                out.put_u32(a.fps_milli);
                out.put_u8(u8::from(a.is_live) | u8::from(a.is_legacy) << 1);
                put_short_str(out, &a.name);
                put_short_str(out, &a.peer);
            }
            Message::StreamRemoved { stream_id } => out.put_u64(*stream_id),
            Message::StreamFrame(f) => {
                out.put_u64(f.stream_id);
                put_frame_meta(&f.frame, out);
                out.extend_from_slice(&f.frame.data);
            }
            Message::FrameAck(a) => {
                out.put_u64(a.stream_id);
                out.put_u64(a.seq);
            }
            Message::SenderReport(r) => {
                out.put_u64(r.sampled_us);
                out.put_u32(r.rtt_us);
                out.put_u32(r.rttvar_us);
                out.put_u32(r.cwnd_segments);
                out.put_u32(r.mss);
                out.put_u32(r.unacked_segments);
                out.put_u32(r.total_retrans);
                out.put_u32(r.notsent_bytes);
                out.put_u64(r.delivery_rate);
                out.put_u64(r.bytes_acked);
                out.put_u64(r.frames_dropped);
            }
            Message::EncoderReport(r) => {
                out.put_u8(r.level);
                out.put_u8(r.quality);
                out.put_u32(r.fps_milli);
                out.put_u16(r.width);
                out.put_u16(r.height);
                out.put_u64(r.link_bps);
            }
            Message::KeyframeRequest | Message::Skipped { .. } => {}
        }
        let payload_len = out.len() - start - HEADER_LEN;
        let len = u32::try_from(payload_len).unwrap_or(u32::MAX);
        out[start + 1..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    }
}

/// Appends a frame's header and metadata, everything but the picture bytes, so a driver can
/// send the picture from its own buffer without copying it.
pub fn encode_frame_head(frame: &Frame, out: &mut BytesMut) {
    let payload_len = FRAME_META_LEN + frame.data.len();
    out.put_u8(Kind::Frame as u8);
    out.put_u32(u32::try_from(payload_len).unwrap_or(u32::MAX));
    put_frame_meta(frame, out);
}

/// Like [`encode_frame_head`], for a viewer's frame of stream `stream_id`.
pub fn encode_stream_frame_head(stream_id: u64, frame: &Frame, out: &mut BytesMut) {
    let payload_len = STREAM_FRAME_META_LEN + frame.data.len();
    out.put_u8(Kind::StreamFrame as u8);
    out.put_u32(u32::try_from(payload_len).unwrap_or(u32::MAX));
    out.put_u64(stream_id);
    put_frame_meta(frame, out);
}

fn put_frame_meta(frame: &Frame, out: &mut BytesMut) {
    out.put_u64(frame.seq);
    out.put_u64(frame.capture_us);
    out.put_u8(u8::from(frame.is_keyframe));
}

/// Strings that must fit a control message are cut at a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn put_short_str(out: &mut BytesMut, s: &str) {
    let s = truncate_utf8(s, 255);
    out.put_u8(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

/// A string that fills the rest of the payload; kept short enough for any control limit.
fn put_tail_str(out: &mut BytesMut, s: &str) {
    out.extend_from_slice(truncate_utf8(s, 1024).as_bytes());
}

/// Reads one payload; every error names the message's stream offset.
struct PayloadReader<'a> {
    buf: &'a [u8],
    offset: u64,
    kind: u8,
}

impl<'a> PayloadReader<'a> {
    fn malformed(&self, what: &'static str) -> ProtocolError {
        ProtocolError::Malformed {
            offset: self.offset,
            kind: self.kind,
            what,
        }
    }

    fn need(&self, n: usize, what: &'static str) -> Result<(), ProtocolError> {
        if self.buf.remaining() < n {
            Err(self.malformed(what))
        } else {
            Ok(())
        }
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, ProtocolError> {
        self.need(1, what)?;
        Ok(self.buf.get_u8())
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, ProtocolError> {
        self.need(2, what)?;
        Ok(self.buf.get_u16())
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, ProtocolError> {
        self.need(4, what)?;
        Ok(self.buf.get_u32())
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, ProtocolError> {
        self.need(8, what)?;
        Ok(self.buf.get_u64())
    }

    fn short_str(&mut self, what: &'static str) -> Result<String, ProtocolError> {
        let len = usize::from(self.u8(what)?);
        self.need(len, what)?;
        let (s, rest) = self.buf.split_at(len);
        self.buf = rest;
        String::from_utf8(s.to_vec()).map_err(|_| self.malformed("string is not UTF-8"))
    }

    /// A frame's metadata; the picture is the rest of `payload` from `meta_len` on.
    fn frame(&mut self, payload: &Bytes, meta_len: usize) -> Result<Frame, ProtocolError> {
        let seq = self.u64("frame header too short")?;
        let capture_us = self.u64("frame header too short")?;
        let flags = self.u8("frame header too short")?;
        if flags & !1 != 0 {
            return Err(self.malformed("unknown frame flags"));
        }
        Ok(Frame {
            seq,
            capture_us,
            is_keyframe: flags & 1 == 1,
            data: payload.slice(meta_len..),
        })
    }

    fn tail_str(&mut self) -> Result<String, ProtocolError> {
        let s = String::from_utf8(self.buf.to_vec())
            .map_err(|_| self.malformed("reason is not UTF-8"))?;
        self.buf = &[];
        Ok(s)
    }
}

/// Decodes one payload of a known `kind`. `payload` excludes the 5-byte header; `offset` is the
/// stream offset of the header, for errors.
pub(crate) fn decode_payload(
    kind_byte: u8,
    payload: Bytes,
    offset: u64,
) -> Result<Message, ProtocolError> {
    let Some(kind) = Kind::from_u8(kind_byte) else {
        return if Kind::is_optional(kind_byte) {
            Ok(Message::Skipped { kind: kind_byte })
        } else {
            Err(ProtocolError::UnknownKind {
                offset,
                kind: kind_byte,
            })
        };
    };
    let mut r = PayloadReader {
        buf: &payload,
        offset,
        kind: kind_byte,
    };
    // Fields a later minor revision appends are ignored: new required fields bump VERSION.
    let msg = match kind {
        Kind::Hello => {
            let version = r.u16("hello too short")?;
            if version != VERSION {
                return Err(ProtocolError::UnsupportedVersion {
                    offset,
                    version,
                    supported: VERSION,
                });
            }
            let role = match r.u8("hello too short")? {
                1 => Role::Publisher,
                2 => Role::Viewer,
                _ => return Err(r.malformed("unknown role")),
            };
            let codec = codec_from_number(r.u8("hello too short")?);
            let width = r.u16("hello too short")?;
            let height = r.u16("hello too short")?;
            let fps_milli = r.u32("hello too short")?;
            let name = r.short_str("hello name cut short")?;
            if let Some(problem) = crate::text::name_problem(&name) {
                return Err(r.malformed(problem));
            }
            let token = r.short_str("hello token cut short")?;
            Message::Hello(Hello {
                version,
                role,
                codec,
                width,
                height,
                fps_milli,
                name,
                token,
            })
        }
        Kind::Welcome => Message::Welcome(Welcome {
            version: r.u16("welcome too short")?,
            stream_id: r.u64("welcome too short")?,
            heartbeat_ms: r.u32("welcome too short")?,
            max_frame_bytes: r.u32("welcome too short")?,
            name: if r.buf.is_empty() {
                String::new()
            } else {
                r.short_str("welcome name too short")?
            },
        }),
        Kind::Reject => Message::Reject(Reject {
            code: RejectCode::from_u8(r.u8("reject too short")?),
            reason: r.tail_str()?,
        }),
        Kind::Frame => Message::Frame(r.frame(&payload, FRAME_META_LEN)?),
        Kind::StreamFrame => {
            let stream_id = r.u64("stream frame header too short")?;
            let frame = r.frame(&payload, STREAM_FRAME_META_LEN)?;
            Message::StreamFrame(StreamFrame { stream_id, frame })
        }
        Kind::StreamAnnounce => {
            let short = "stream announce too short";
            let stream_id = r.u64(short)?;
            let codec = codec_from_number(r.u8(short)?);
            let width = r.u16(short)?;
            let height = r.u16(short)?;
            let fps_milli = r.u32(short)?;
            let flags = r.u8(short)?;
            let name = r.short_str("stream name cut short")?;
            let peer = r.short_str("stream peer cut short")?;
            Message::StreamAnnounce(StreamAnnounce {
                stream_id,
                codec,
                width,
                height,
                fps_milli,
                // Unknown flag bits are for later revisions: ignored like appended fields.
                is_live: flags & 1 == 1,
                is_legacy: flags & 2 == 2,
                name,
                peer,
            })
        }
        Kind::StreamRemoved => Message::StreamRemoved {
            stream_id: r.u64("stream removed too short")?,
        },
        Kind::FrameAck => Message::FrameAck(FrameAck {
            stream_id: r.u64("frame ack too short")?,
            seq: r.u64("frame ack too short")?,
        }),
        Kind::Ping => Message::Ping(Ping {
            sent_us: r.u64("ping too short")?,
        }),
        Kind::Pong => Message::Pong(Pong {
            ping_sent_us: r.u64("pong too short")?,
            ping_received_us: r.u64("pong too short")?,
            sent_us: r.u64("pong too short")?,
        }),
        Kind::Goodbye => Message::Goodbye(Goodbye {
            code: GoodbyeCode::from_u8(r.u8("goodbye too short")?),
            reason: r.tail_str()?,
        }),
        Kind::KeyframeRequest => Message::KeyframeRequest,
        Kind::SenderReport => {
            let short = "sender report too short";
            Message::SenderReport(SenderReport {
                sampled_us: r.u64(short)?,
                rtt_us: r.u32(short)?,
                rttvar_us: r.u32(short)?,
                cwnd_segments: r.u32(short)?,
                mss: r.u32(short)?,
                unacked_segments: r.u32(short)?,
                total_retrans: r.u32(short)?,
                notsent_bytes: r.u32(short)?,
                delivery_rate: r.u64(short)?,
                bytes_acked: r.u64(short)?,
                frames_dropped: r.u64(short)?,
            })
        }
        Kind::EncoderReport => {
            let short = "encoder report too short";
            Message::EncoderReport(EncoderReport {
                level: r.u8(short)?,
                quality: r.u8(short)?,
                fps_milli: r.u32(short)?,
                width: r.u16(short)?,
                height: r.u16(short)?,
                link_bps: r.u64(short)?,
            })
        }
    };
    Ok(msg)
}
