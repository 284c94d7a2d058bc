//! The publishing side of one RTMP connection, sans-IO: handshake (RTMP spec 1.0 section
//! 5.2, the plain version-3 handshake every server accepts from encoders), then `connect`,
//! `createStream` and `publish` (section 7.2), then video messages; protocol control is
//! answered on the way (acknowledgements, pings, window sizes).

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use crate::amf0::{self, Amf0Value};
use crate::chunk::{ChunkReader, ChunkWriter, RtmpMessage};
use crate::url::RtmpUrl;
use crate::RtmpError;

/// Size of C1/S1/C2/S2 (section 5.2.3).
pub const HANDSHAKE_SIZE: usize = 1536;
/// The chunk size this client announces and sends with: a 30 fps 1.5 Mbit/s stream has
/// ~6 KB frames, so most frames go out in two chunks instead of fifty.
pub const OUT_CHUNK_SIZE: u32 = 4096;

/// Message type ids (section 5.4 and 7.1).
mod msg {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACK: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF0: u8 = 18;
    pub const COMMAND_AMF3: u8 = 17;
    pub const COMMAND_AMF0: u8 = 20;
}

/// Chunk stream ids this client uses (2 is reserved for protocol control).
/// The longest message body a chunk header can announce (a 24-bit length).
const MAX_MESSAGE_LEN: usize = 0xFF_FFFF;
const CSID_CONTROL: u32 = 2;
const CSID_COMMAND: u32 = 3;
const CSID_DATA: u32 = 5;
const CSID_VIDEO: u32 = 6;

/// Transaction ids of the commands that get a `_result`.
const TX_CONNECT: f64 = 1.0;
const TX_CREATE_STREAM: f64 = 2.0;
const TX_PUBLISH: f64 = 3.0;

/// User control event types (section 7.1.7).
const PING_REQUEST: u16 = 6;
const PING_RESPONSE: u16 = 7;

/// What the session tells its driver.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// The server accepted the publish: video may be sent now.
    Publishing,
    /// The server accepted the play request: media messages follow.
    Playing,
    /// An audio (8), video (9) or data (18) message of the stream being played.
    Media {
        /// Message type id.
        type_id: u8,
        /// Timestamp, ms.
        timestamp: u32,
        /// The FLV tag body.
        payload: Bytes,
    },
    /// A status the server sent that needs no action (logged by the driver).
    Status {
        /// e.g. "NetStream.Publish.Start".
        code: String,
        /// The server's text.
        description: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// C0+C1 sent; waiting for S0+S1+S2.
    Handshake,
    Connecting,
    CreatingStream,
    StartingPublish,
    Publishing,
    StartingPlay,
    Playing,
}

/// One RTMP publishing connection: feed it the server's bytes, send what it gives.
///
/// Call order: [`ClientSession::new`] (it queues the first handshake bytes), then in a loop
/// [`ClientSession::handle_bytes`] with whatever the socket read, [`ClientSession::poll_transmit`]
/// until `None` (write all of it), [`ClientSession::poll_event`] until `None`. Once
/// [`ClientEvent::Publishing`] came, [`ClientSession::send_metadata`] and
/// [`ClientSession::send_video`]. Any error ends the connection.
#[derive(Debug)]
pub struct ClientSession {
    url: RtmpUrl,
    state: State,
    /// Server bytes during the handshake.
    handshake: BytesMut,
    reader: ChunkReader,
    writer: ChunkWriter,
    out: BytesMut,
    events: VecDeque<ClientEvent>,
    /// Bytes received since the start, and when we last acknowledged.
    received: u64,
    acked: u64,
    /// The server's Window Acknowledgement Size: acknowledge after this many bytes.
    ack_window: Option<u32>,
    /// What we told the server (answering Set Peer Bandwidth once is enough).
    sent_window: Option<u32>,
    /// The message stream `createStream` gave.
    stream_id: u32,
    /// Play instead of publish (for tests and measurements that read a server's output).
    is_player: bool,
}

impl ClientSession {
    /// A session that will publish to `url`. `c1_random` fills the handshake's random
    /// field (servers only echo it; the caller picks it so this crate needs no RNG).
    pub fn new(url: RtmpUrl, c1_random: u64) -> Self {
        let mut out = BytesMut::with_capacity(1 + HANDSHAKE_SIZE);
        out.put_u8(3); // C0: RTMP version 3
        out.put_u32(0); // C1 time
        out.put_u32(0); // C1 zero: a plain (non-digest) handshake
        let mut x = c1_random | 1;
        for _ in 0..(HANDSHAKE_SIZE - 8) / 8 {
            // xorshift64: filler the server echoes back; it need not be secure.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.put_u64(x);
        }
        Self {
            url,
            state: State::Handshake,
            handshake: BytesMut::new(),
            reader: ChunkReader::new((1 + 2 * HANDSHAKE_SIZE) as u64),
            writer: ChunkWriter::default(),
            out,
            events: VecDeque::new(),
            received: 0,
            acked: 0,
            ack_window: None,
            sent_window: None,
            stream_id: 0,
            is_player: false,
        }
    }

    /// A session that plays `url` instead: after `createStream` it sends `play`, then hands
    /// every media message out as [`ClientEvent::Media`]. The hub does not use this; tests
    /// and benchmarks read what a media server relays with it.
    pub fn play(url: RtmpUrl, c1_random: u64) -> Self {
        Self {
            is_player: true,
            ..Self::new(url, c1_random)
        }
    }

    /// The address this session publishes to.
    pub fn url(&self) -> &RtmpUrl {
        &self.url
    }

    /// Whether the server accepted the publish.
    pub fn is_publishing(&self) -> bool {
        self.state == State::Publishing
    }

    /// Bytes to write to the socket, in order.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Feeds bytes read from the server.
    pub fn handle_bytes(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        self.received += data.len() as u64;
        let data = if self.state == State::Handshake {
            self.handshake.extend_from_slice(data);
            let need = 1 + 2 * HANDSHAKE_SIZE;
            if self.handshake.len() < need {
                return Ok(());
            }
            if self.handshake[0] != 3 {
                return Err(RtmpError::Handshake {
                    version: self.handshake[0],
                });
            }
            // C2 echoes S1 (section 5.2.4). S2 is not checked: servers that do the digest
            // handshake with Flash clients answer a plain C1 in ways that differ.
            self.out
                .extend_from_slice(&self.handshake[1..=HANDSHAKE_SIZE]);
            self.start_connect();
            let rest = self.handshake.split_off(need);
            self.handshake = BytesMut::new();
            self.reader.push(&rest);
            &[][..]
        } else {
            data
        };
        self.reader.push(data);
        while let Some(message) = self.reader.next_message()? {
            self.on_message(message)?;
        }
        self.maybe_ack();
        Ok(())
    }

    /// Sends `@setDataFrame onMetaData` so players know the picture size before decoding.
    pub fn send_metadata(&mut self, width: u32, height: u32, fps: f64) -> Result<(), RtmpError> {
        self.check_publishing()?;
        let body = amf0::encode_all(&[
            Amf0Value::String("@setDataFrame".into()),
            Amf0Value::String("onMetaData".into()),
            Amf0Value::EcmaArray(vec![
                ("width".into(), Amf0Value::Number(f64::from(width))),
                ("height".into(), Amf0Value::Number(f64::from(height))),
                ("framerate".into(), Amf0Value::Number(fps)),
                ("videocodecid".into(), Amf0Value::Number(7.0)), // AVC
                ("encoder".into(), Amf0Value::String("vidcast".into())),
            ]),
        ]);
        self.write(CSID_DATA, msg::DATA_AMF0, 0, self.stream_id, body.freeze());
        Ok(())
    }

    /// Queues one video message (an FLV video tag body, see [`crate::flv`]) at
    /// `timestamp_ms`, which must not go backwards; a body over 16 MiB - 1 is refused
    /// ([`RtmpError::BadVideo`]), as no chunk header can announce it.
    pub fn send_video(&mut self, timestamp_ms: u32, body: Bytes) -> Result<(), RtmpError> {
        self.check_publishing()?;
        // The chunk header holds a message's length in 24 bits.
        if body.len() > MAX_MESSAGE_LEN {
            return Err(RtmpError::BadVideo(
                "a picture over RTMP's 16 MiB message limit",
            ));
        }
        self.write(CSID_VIDEO, msg::VIDEO, timestamp_ms, self.stream_id, body);
        Ok(())
    }

    fn check_publishing(&self) -> Result<(), RtmpError> {
        if self.state == State::Publishing {
            Ok(())
        } else {
            Err(RtmpError::NotPublishing)
        }
    }

    fn write(&mut self, csid: u32, type_id: u8, timestamp: u32, stream_id: u32, payload: Bytes) {
        let message = RtmpMessage {
            csid,
            timestamp,
            type_id,
            stream_id,
            payload,
        };
        self.writer.write(&message, &mut self.out);
    }

    fn command(&mut self, stream_id: u32, values: &[Amf0Value]) {
        let body = amf0::encode_all(values).freeze();
        self.write(CSID_COMMAND, msg::COMMAND_AMF0, 0, stream_id, body);
    }

    fn start_connect(&mut self) {
        self.write(
            CSID_CONTROL,
            msg::SET_CHUNK_SIZE,
            0,
            0,
            Bytes::copy_from_slice(&OUT_CHUNK_SIZE.to_be_bytes()),
        );
        self.writer.set_chunk_size(OUT_CHUNK_SIZE);
        let tc_url = self.url.tc_url();
        let app = self.url.app.clone();
        self.command(
            0,
            &[
                Amf0Value::String("connect".into()),
                Amf0Value::Number(TX_CONNECT),
                Amf0Value::Object(vec![
                    ("app".into(), Amf0Value::String(app)),
                    ("type".into(), Amf0Value::String("nonprivate".into())),
                    (
                        "flashVer".into(),
                        Amf0Value::String("FMLE/3.0 (compatible; vidcast)".into()),
                    ),
                    ("tcUrl".into(), Amf0Value::String(tc_url)),
                ]),
            ],
        );
        self.state = State::Connecting;
    }

    fn on_message(&mut self, m: RtmpMessage) -> Result<(), RtmpError> {
        let u32_at = |p: &[u8], i: usize| {
            p.get(i..i + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match m.type_id {
            msg::SET_CHUNK_SIZE => {
                if let Some(size) = u32_at(&m.payload, 0) {
                    self.reader.set_chunk_size(size & 0x7FFF_FFFF);
                }
            }
            msg::ABORT => {
                if let Some(csid) = u32_at(&m.payload, 0) {
                    self.reader.abort(csid);
                }
            }
            msg::WINDOW_ACK_SIZE => self.ack_window = u32_at(&m.payload, 0).filter(|&w| w > 0),
            msg::SET_PEER_BANDWIDTH => {
                // Section 5.4.5: answer with our Window Acknowledgement Size if it changed.
                if let Some(size) = u32_at(&m.payload, 0) {
                    if self.sent_window != Some(size) {
                        self.sent_window = Some(size);
                        let body = Bytes::copy_from_slice(&size.to_be_bytes());
                        self.write(CSID_CONTROL, msg::WINDOW_ACK_SIZE, 0, 0, body);
                    }
                }
            }
            msg::USER_CONTROL => {
                let event = m
                    .payload
                    .get(0..2)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]));
                if let (Some(PING_REQUEST), Some(stamp)) = (event, u32_at(&m.payload, 2)) {
                    let mut body = BytesMut::with_capacity(6);
                    body.put_u16(PING_RESPONSE);
                    body.put_u32(stamp);
                    self.write(CSID_CONTROL, msg::USER_CONTROL, 0, 0, body.freeze());
                }
            }
            msg::AUDIO | msg::VIDEO | msg::DATA_AMF0 if self.state == State::Playing => {
                self.events.push_back(ClientEvent::Media {
                    type_id: m.type_id,
                    timestamp: m.timestamp,
                    payload: m.payload,
                });
            }
            msg::COMMAND_AMF0 => self.on_command(m.type_id, &m.payload)?,
            // An AMF3 command is an AMF0 one behind a format byte (section 7.1.1).
            msg::COMMAND_AMF3 => self.on_command(m.type_id, m.payload.get(1..).unwrap_or(&[]))?,
            // Acknowledgements, bandwidth checks, data: nothing a publisher must act on.
            _ => {}
        }
        Ok(())
    }

    fn on_command(&mut self, type_id: u8, body: &[u8]) -> Result<(), RtmpError> {
        let values = amf0::decode_all(body).map_err(|source| RtmpError::Amf { type_id, source })?;
        let name = values.first().and_then(Amf0Value::as_str).unwrap_or("");
        let tx = values.get(1).and_then(Amf0Value::as_f64).unwrap_or(-1.0);
        let status = |values: &[Amf0Value]| {
            // _result/_error/onStatus carry the info object last.
            let info = values.iter().rev().find(|v| v.get("code").is_some());
            let field = |k| {
                info.and_then(|i| i.get(k))
                    .and_then(Amf0Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            (field("level"), field("code"), field("description"))
        };
        let stage = match tx {
            TX_CONNECT => "connect",
            TX_CREATE_STREAM => "createStream",
            _ => "publish",
        };
        match name {
            "_result" if tx == TX_CONNECT && self.state == State::Connecting => {
                self.command(
                    0,
                    &[
                        Amf0Value::String("createStream".into()),
                        Amf0Value::Number(TX_CREATE_STREAM),
                        Amf0Value::Null,
                    ],
                );
                self.state = State::CreatingStream;
            }
            "_result" if tx == TX_CREATE_STREAM && self.state == State::CreatingStream => {
                let id = values.get(3).and_then(Amf0Value::as_f64).unwrap_or(1.0);
                self.stream_id = id as u32;
                let stream = Amf0Value::String(self.url.stream.clone());
                let (verb, last, next) = if self.is_player {
                    // Start -1000: live, or recorded if there is no live stream (7.2.2.1).
                    ("play", Amf0Value::Number(-1000.0), State::StartingPlay)
                } else {
                    (
                        "publish",
                        Amf0Value::String("live".into()),
                        State::StartingPublish,
                    )
                };
                self.command(
                    self.stream_id,
                    &[
                        Amf0Value::String(verb.into()),
                        Amf0Value::Number(TX_PUBLISH),
                        Amf0Value::Null,
                        stream,
                        last,
                    ],
                );
                self.state = next;
            }
            "_error" => {
                let (_, code, description) = status(&values);
                return Err(RtmpError::Refused {
                    stage,
                    code,
                    description,
                });
            }
            "onStatus" => {
                let (level, code, description) = status(&values);
                if level == "error" {
                    return Err(RtmpError::Refused {
                        stage: "publish",
                        code,
                        description,
                    });
                }
                if code == "NetStream.Publish.Start" && self.state == State::StartingPublish {
                    self.state = State::Publishing;
                    self.events.push_back(ClientEvent::Publishing);
                } else if code == "NetStream.Play.Start" && self.state == State::StartingPlay {
                    self.state = State::Playing;
                    self.events.push_back(ClientEvent::Playing);
                } else {
                    self.events
                        .push_back(ClientEvent::Status { code, description });
                }
            }
            // onBWDone, onFCPublish, _result of calls we did not make: nothing to do.
            _ => {}
        }
        Ok(())
    }

    /// Section 5.4.3: acknowledge once a window's worth of bytes arrived since the last ack.
    fn maybe_ack(&mut self) {
        let Some(window) = self.ack_window else {
            return;
        };
        if self.received - self.acked >= u64::from(window) {
            self.acked = self.received;
            // The sequence number wraps at 2^32 like the counter it reports.
            let body = Bytes::copy_from_slice(&(self.received as u32).to_be_bytes());
            self.write(CSID_CONTROL, msg::ACK, 0, 0, body);
        }
    }
}
