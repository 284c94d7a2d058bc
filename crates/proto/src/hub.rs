//! The hub's end of one connection.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::clock_sync::ClockSync;
use crate::connection::{CloseReason, ConnectionStats, Core, Handled, Timing};
use crate::error::ProtocolError;
use crate::message::{
    Frame, GoodbyeCode, Hello, Message, Reject, RejectCode, Welcome, MAX_FRAME_BYTES, VERSION,
};
use crate::time::Timestamp;

/// Settings for the hub's end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubConfig {
    /// Heartbeat, peer timeout and handshake timeout.
    pub timing: Timing,
    /// Largest frame accepted, in picture bytes.
    pub max_frame_bytes: u32,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            timing: Timing::default(),
            max_frame_bytes: 16 << 20,
        }
    }
}

/// What the hub's end of a connection reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubEvent {
    /// A client introduced itself; call [`HubConnection::accept`] or [`HubConnection::reject`].
    Hello(Hello),
    /// A publisher's frame arrived (whole) at `received_at`.
    Frame {
        /// The frame.
        frame: Frame,
        /// Local time its last byte was handed in.
        received_at: Timestamp,
    },
    /// The publisher reported its side of the TCP connection.
    SenderReport(crate::message::SenderReport),
    /// The publisher's link adaptation changed its encoder settings.
    EncoderReport(crate::message::EncoderReport),
    /// The connection is over; send what is left and close the socket.
    Closed(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitHello,
    AwaitDecision,
    Streaming,
    Done,
}

/// The hub's end of one client connection, as a state machine.
///
/// Call order: feed received bytes with [`handle_data`](Self::handle_data) (which leaves any
/// partial message in the buffer), the end of input with [`handle_eof`](Self::handle_eof), and
/// expired timers with [`handle_timeout`](Self::handle_timeout); after each, drain
/// [`poll_event`](Self::poll_event) and [`poll_transmit`](Self::poll_transmit) (write each chunk
/// whole, in order), then sleep until [`poll_timeout`](Self::poll_timeout). When
/// [`is_closed`](Self::is_closed) is true and nothing is left to transmit, close the socket.
#[derive(Debug)]
pub struct HubConnection {
    core: Core,
    state: State,
    max_frame_bytes: u32,
    events: VecDeque<HubEvent>,
}

impl HubConnection {
    /// A connection that has just been accepted at `now`.
    pub fn new(config: HubConfig, now: Timestamp) -> Self {
        let max_frame_bytes = config.max_frame_bytes.min(MAX_FRAME_BYTES);
        Self {
            core: Core::new(max_frame_bytes, config.timing, now),
            state: State::AwaitHello,
            max_frame_bytes,
            events: VecDeque::new(),
        }
    }

    /// Takes whole messages off the front of `buf`, which holds bytes received from the peer.
    pub fn handle_data(&mut self, now: Timestamp, buf: &mut BytesMut) {
        while self.state != State::Done && self.core.is_open() {
            match self.core.next_message(now, buf) {
                Ok(None) => break,
                Ok(Some(Handled::Done)) => {}
                Ok(Some(Handled::Pass(msg, offset))) => self.on_message(msg, offset, now),
                Err(e) => self.fail(e),
            }
        }
    }

    fn on_message(&mut self, msg: Message, offset: u64, now: Timestamp) {
        let kind = msg.kind_byte();
        match (self.state, msg) {
            (_, Message::Goodbye(g)) => self.finish(
                None,
                CloseReason::PeerGoodbye {
                    code: g.code,
                    reason: g.reason,
                },
            ),
            (State::AwaitHello, Message::Hello(hello)) => {
                self.state = State::AwaitDecision;
                self.events.push_back(HubEvent::Hello(hello));
            }
            (State::Streaming, Message::Frame(frame)) => {
                self.events.push_back(HubEvent::Frame {
                    frame,
                    received_at: now,
                });
            }
            // A publisher has no use for a keyframe request; tolerate it.
            (State::Streaming, Message::KeyframeRequest) => {}
            (State::Streaming, Message::SenderReport(report)) => {
                self.events.push_back(HubEvent::SenderReport(report));
            }
            (State::Streaming, Message::EncoderReport(report)) => {
                self.events.push_back(HubEvent::EncoderReport(report));
            }
            (state, _) => self.fail(ProtocolError::Unexpected {
                offset,
                kind,
                during: match state {
                    State::AwaitHello => "before hello",
                    State::AwaitDecision => "before the hub answered hello",
                    _ => "while streaming",
                },
            }),
        }
    }

    /// Accepts the client whose hello was reported, as stream `stream_id`.
    pub fn accept(&mut self, stream_id: u64, now: Timestamp) {
        if self.state != State::AwaitDecision {
            return;
        }
        self.core.outbox.push_control(&Message::Welcome(Welcome {
            version: VERSION,
            stream_id,
            heartbeat_ms: u32::try_from(self.core.timing.heartbeat.as_millis()).unwrap_or(u32::MAX),
            max_frame_bytes: self.max_frame_bytes,
        }));
        self.state = State::Streaming;
        self.core.start_heartbeats(now);
    }

    /// Refuses the client with a reason it will see.
    pub fn reject(&mut self, code: RejectCode, reason: &str) {
        let farewell = Message::Reject(Reject {
            code,
            reason: reason.to_owned(),
        });
        self.finish(
            Some(farewell),
            CloseReason::Local {
                code: GoodbyeCode::Other(0xFF),
                reason: format!("rejected: {reason}"),
            },
        );
    }

    /// Says goodbye and closes.
    pub fn close(&mut self, code: GoodbyeCode, reason: &str) {
        self.finish(
            Some(Core::goodbye(code, reason)),
            CloseReason::Local {
                code,
                reason: reason.to_owned(),
            },
        );
    }

    /// The peer closed its end; `buf` is whatever partial message was left.
    pub fn handle_eof(&mut self, buf: &[u8]) {
        let reason = self.core.eof_reason(buf);
        self.finish(None, reason);
    }

    /// Runs expired timers: handshake deadline, heartbeats, peer timeout.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        match self.state {
            State::AwaitHello | State::AwaitDecision => {
                if now >= self.core.handshake_deadline() {
                    let after = self.core.timing.handshake_timeout;
                    let farewell = Message::Reject(Reject {
                        code: RejectCode::Timeout,
                        reason: format!("no hello within {} ms", after.as_millis()),
                    });
                    self.finish(Some(farewell), CloseReason::HandshakeTimeout { after });
                }
            }
            State::Streaming => {
                if let Some(reason) = self.core.handle_timeout(now) {
                    self.finish(
                        Some(Core::goodbye(GoodbyeCode::Timeout, "peer silent")),
                        reason,
                    );
                }
            }
            State::Done => {}
        }
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match self.state {
            State::AwaitHello | State::AwaitDecision => Some(self.core.handshake_deadline()),
            State::Streaming => self.core.poll_timeout(),
            State::Done => None,
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<HubEvent> {
        self.events.pop_front()
    }

    /// The next chunk to write to the socket, if any.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.core.poll_transmit(false)
    }

    /// Whether the connection is over and everything it had to say was handed out.
    pub fn is_closed(&self) -> bool {
        self.state == State::Done && self.core.is_closed()
    }

    /// Clock offset and RTT estimates for this peer.
    pub fn clock(&self) -> &ClockSync {
        &self.core.clock
    }

    /// Counters of this connection.
    pub fn stats(&self) -> ConnectionStats {
        self.core.stats()
    }

    fn fail(&mut self, error: ProtocolError) {
        let farewell = match self.state {
            State::AwaitHello | State::AwaitDecision => {
                let code = match error {
                    ProtocolError::UnsupportedVersion { .. } => RejectCode::Version,
                    _ => RejectCode::BadHello,
                };
                Message::Reject(Reject {
                    code,
                    reason: error.to_string(),
                })
            }
            _ => Core::goodbye(GoodbyeCode::ProtocolError, &error.to_string()),
        };
        self.finish(Some(farewell), CloseReason::Protocol(error));
    }

    fn finish(&mut self, farewell: Option<Message>, reason: CloseReason) {
        if self.state == State::Done {
            return;
        }
        self.state = State::Done;
        self.core.begin_close(farewell);
        self.events.push_back(HubEvent::Closed(reason));
    }
}
