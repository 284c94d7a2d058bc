//! One table of wire cases that drives the decode tests, the encode tests and the fuzz seeds.

use bytes::Bytes;

use crate::error::ProtocolError;
use crate::message::{
    Codec, Frame, FrameAck, Goodbye, GoodbyeCode, Hello, Message, Ping, Pong, Reject, RejectCode,
    Role, StreamAnnounce, StreamFrame, UnknownCodec, Welcome, MAGIC, VERSION,
};

/// What decoding a case's bytes must give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// These messages, in order, and nothing left over. Encoding them gives the bytes back.
    Messages(Vec<Message>),
    /// These messages, then this error.
    Error(Vec<Message>, ProtocolError),
}

/// A named byte stream (magic included) and what it decodes to.
#[derive(Debug, Clone)]
pub struct WireCase {
    /// Short name for test output and seed file names.
    pub name: &'static str,
    /// The stream, starting with the magic unless the case is about the magic.
    pub bytes: Vec<u8>,
    /// The outcome.
    pub expected: Expected,
}

/// A publisher's hello as the cases use it.
pub fn sample_hello() -> Hello {
    Hello {
        version: VERSION,
        role: Role::Publisher,
        codec: Ok(Codec::Jpeg),
        width: 640,
        height: 480,
        fps_milli: 30_000,
        name: "cam-kitchen".into(),
        token: String::new(),
    }
}

fn stream(messages: &[Message]) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    buf.extend_from_slice(&MAGIC);
    for m in messages {
        m.encode(&mut buf);
    }
    buf.to_vec()
}

fn with_magic(raw: &[u8]) -> Vec<u8> {
    let mut v = MAGIC.to_vec();
    v.extend_from_slice(raw);
    v
}

/// All cases.
pub fn all() -> Vec<WireCase> {
    let hello = Message::Hello(sample_hello());
    let frame = Message::Frame(Frame {
        seq: 7,
        capture_us: 1_764_000_000_123_456,
        is_keyframe: true,
        data: Bytes::from_static(b"\xff\xd8 jpeg bytes \xff\xd9"),
    });
    let empty_frame = Message::Frame(Frame {
        seq: 8,
        capture_us: 1,
        is_keyframe: false,
        data: Bytes::new(),
    });
    let valid = |name, messages: Vec<Message>| WireCase {
        name,
        bytes: stream(&messages),
        expected: Expected::Messages(messages),
    };
    let mut cases = vec![
        valid("hello", vec![hello.clone()]),
        valid(
            "hello_viewer_with_token",
            vec![Message::Hello(Hello {
                role: Role::Viewer,
                codec: Err(UnknownCodec(0)),
                width: 0,
                height: 0,
                fps_milli: 0,
                name: "wall-1 ✓".into(),
                token: "s3cret".into(),
                ..sample_hello()
            })],
        ),
        valid(
            "welcome",
            vec![Message::Welcome(Welcome {
                version: VERSION,
                stream_id: 42,
                heartbeat_ms: 1000,
                max_frame_bytes: 16 << 20,
                name: String::new(),
            })],
        ),
        valid(
            "reject",
            vec![Message::Reject(Reject {
                code: RejectCode::Unauthorized,
                reason: "wrong token".into(),
            })],
        ),
        valid(
            "hello_frames",
            vec![hello.clone(), frame.clone(), empty_frame],
        ),
        valid(
            "ping_pong",
            vec![
                Message::Ping(Ping { sent_us: 1 }),
                Message::Pong(Pong {
                    ping_sent_us: 1,
                    ping_received_us: 2,
                    sent_us: 3,
                }),
            ],
        ),
        valid(
            "goodbye",
            vec![Message::Goodbye(Goodbye {
                code: GoodbyeCode::EndOfStream,
                reason: "video finished".into(),
            })],
        ),
        valid("keyframe_request", vec![Message::KeyframeRequest]),
        valid(
            "sender_report",
            vec![Message::SenderReport(crate::message::SenderReport {
                sampled_us: 1_764_000_000_000_000,
                rtt_us: 2_500,
                rttvar_us: 400,
                cwnd_segments: 10,
                mss: 1448,
                unacked_segments: 3,
                total_retrans: 1,
                notsent_bytes: 9000,
                delivery_rate: 625_000,
                bytes_acked: 123_456_789,
                frames_dropped: 4,
            })],
        ),
        valid(
            "encoder_report",
            vec![Message::EncoderReport(crate::message::EncoderReport {
                level: 3,
                quality: 40,
                fps_milli: 20_000,
                width: 640,
                height: 480,
                link_bps: 4_800_000,
            })],
        ),
        valid(
            "viewer_stream_list",
            vec![
                Message::StreamAnnounce(StreamAnnounce {
                    stream_id: 3,
                    codec: Ok(Codec::Jpeg),
                    width: 640,
                    height: 480,
                    fps_milli: 30_000,
                    is_live: true,
                    is_legacy: false,
                    name: "cam-kitchen".into(),
                    peer: "10.0.0.5:51234".into(),
                }),
                Message::StreamAnnounce(StreamAnnounce {
                    stream_id: 4,
                    codec: Ok(Codec::Jpeg),
                    width: 380,
                    height: 286,
                    fps_milli: 0,
                    is_live: false,
                    is_legacy: true,
                    name: "legacy@[::1]".into(),
                    peer: "[::1]:40000".into(),
                }),
                Message::StreamRemoved { stream_id: 4 },
            ],
        ),
        valid(
            "viewer_frames_and_acks",
            vec![
                Message::StreamFrame(StreamFrame {
                    stream_id: 3,
                    frame: Frame {
                        seq: 7,
                        capture_us: 1_764_000_000_123_456,
                        is_keyframe: true,
                        data: Bytes::from_static(b"\xff\xd8 jpeg bytes \xff\xd9"),
                    },
                }),
                Message::StreamFrame(StreamFrame {
                    stream_id: 9,
                    frame: Frame {
                        seq: 0,
                        capture_us: 0,
                        is_keyframe: false,
                        data: Bytes::new(),
                    },
                }),
                Message::FrameAck(FrameAck {
                    stream_id: 3,
                    seq: 7,
                }),
            ],
        ),
        valid(
            "optional_unknown_kind",
            vec![Message::Skipped { kind: 0x9a }],
        ),
    ];
    let err = |name, bytes, before: Vec<Message>, e| WireCase {
        name,
        bytes,
        expected: Expected::Error(before, e),
    };
    cases.extend([
        err(
            "bad_magic_http",
            b"GET / HTTP/1.1\r\n".to_vec(),
            vec![],
            ProtocolError::BadMagic {
                found: b"G".to_vec(),
            },
        ),
        err(
            // The original Python client's first bytes: a little-endian u64 length.
            "bad_magic_legacy_length",
            vec![0x9f, 0x86, 0x01, 0, 0, 0, 0, 0, 0x80, 0x04],
            vec![],
            ProtocolError::BadMagic { found: vec![0x9f] },
        ),
        err(
            "magic_one_byte_off",
            b"\x89VCASX\r\n".to_vec(),
            vec![],
            ProtocolError::BadMagic {
                found: b"\x89VCASX".to_vec(),
            },
        ),
        err(
            "unknown_required_kind",
            with_magic(&[0x55, 0, 0, 0, 0]),
            vec![],
            ProtocolError::UnknownKind {
                offset: 8,
                kind: 0x55,
            },
        ),
        err(
            "oversize_control",
            with_magic(&[0x20, 0, 0, 0x10, 0x01]),
            vec![],
            ProtocolError::TooLarge {
                offset: 8,
                kind: 0x20,
                len: 4097,
                max: 4096,
            },
        ),
        err(
            "oversize_frame_after_hello",
            {
                let mut v = stream(std::slice::from_ref(&hello));
                v.extend_from_slice(&[0x10, 0xff, 0xff, 0xff, 0xff]);
                v
            },
            vec![hello.clone()],
            ProtocolError::TooLarge {
                offset: 8 + 5 + 25,
                kind: 0x10,
                len: u32::MAX,
                max: crate::message::MAX_FRAME_BYTES + 17,
            },
        ),
        err(
            "hello_wrong_version",
            with_magic(&[0x01, 0, 0, 0, 2, 0, 9]),
            vec![],
            ProtocolError::UnsupportedVersion {
                offset: 8,
                version: 9,
                supported: VERSION,
            },
        ),
        err(
            "hello_truncated_payload",
            with_magic(&[0x01, 0, 0, 0, 3, 0, 1, 1]),
            vec![],
            ProtocolError::Malformed {
                offset: 8,
                kind: 0x01,
                what: "hello too short",
            },
        ),
        err(
            "hello_empty_name",
            with_magic(&[0x01, 0, 0, 0, 14, 0, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0]),
            vec![],
            ProtocolError::Malformed {
                offset: 8,
                kind: 0x01,
                what: "client name must be 1 to 64 bytes",
            },
        ),
        err(
            "frame_short_header",
            with_magic(&[0x10, 0, 0, 0, 3, 1, 2, 3]),
            vec![],
            ProtocolError::Malformed {
                offset: 8,
                kind: 0x10,
                what: "frame header too short",
            },
        ),
        err(
            "stream_frame_short_header",
            with_magic(&[0x42, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1]),
            vec![],
            ProtocolError::Malformed {
                offset: 8,
                kind: 0x42,
                what: "frame header too short",
            },
        ),
        err(
            "stream_announce_name_cut_short",
            with_magic(&[
                0x40, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 3, 1, 0, 64, 0, 48, 0, 0, 0, 0, 1, 9, b'c',
            ]),
            vec![],
            ProtocolError::Malformed {
                offset: 8,
                kind: 0x40,
                what: "stream name cut short",
            },
        ),
        err(
            "oversize_stream_frame",
            with_magic(&[0x42, 0xff, 0xff, 0xff, 0xff]),
            vec![],
            ProtocolError::TooLarge {
                offset: 8,
                kind: 0x42,
                len: u32::MAX,
                max: crate::message::MAX_FRAME_BYTES + 25,
            },
        ),
        err(
            "goodbye_reason_not_utf8",
            with_magic(&[0x30, 0, 0, 0, 3, 0, 0xff, 0xfe]),
            vec![],
            ProtocolError::Malformed {
                offset: 8,
                kind: 0x30,
                what: "reason is not UTF-8",
            },
        ),
    ]);
    cases
}
