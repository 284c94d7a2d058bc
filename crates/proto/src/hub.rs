//! The hub's end of one connection.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::clock_sync::ClockSync;
use crate::connection::{CloseReason, ConnectionStats, Core, Handled, Timing};
use crate::error::ProtocolError;
use crate::message::{
    Frame, GoodbyeCode, Hello, Message, Reject, RejectCode, Role, StreamAnnounce, Welcome,
    MAX_FRAME_BYTES, VERSION,
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
///
/// A viewer (its hello said [`Role::Viewer`]) is fed with
/// [`announce_stream`](Self::announce_stream), [`remove_stream`](Self::remove_stream) and
/// [`send_stream_frame`](Self::send_stream_frame) once accepted. Each stream has a one-frame
/// slot (a newer frame replaces a waiting one, counted as dropped) and at most
/// [`VIEWER_WINDOW`](crate::VIEWER_WINDOW) frames unacknowledged, so a slow viewer gets the
/// newest frames of every stream and never a backlog.
#[derive(Debug)]
pub struct HubConnection {
    core: Core,
    state: State,
    role: Option<Role>,
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
            role: None,
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

    /// The message at the front of `buf` not yet whole (after `handle_data`), as its stream
    /// offset and whole length in bytes; `None` if none, or once the connection is over. Its
    /// length was checked against the limits.
    pub fn receiving(&self, buf: &[u8]) -> Option<(u64, usize)> {
        if self.state == State::Done || !self.core.is_open() {
            return None;
        }
        self.core.decoder.receiving(buf)
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
                self.role = Some(hello.role);
                self.events.push_back(HubEvent::Hello(hello));
            }
            (State::Streaming, Message::FrameAck(ack)) if self.is_viewer() => {
                self.core.outbox.ack_stream_frame(ack.stream_id, ack.seq);
            }
            (State::Streaming, Message::Frame(frame)) if !self.is_viewer() => {
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
        self.accept_as(stream_id, "", now);
    }

    /// Accepts the client as stream `stream_id` shown under `name` (told to the client when it
    /// differs from its hello's: the name was taken by another client).
    pub fn accept_as(&mut self, stream_id: u64, name: &str, now: Timestamp) {
        if self.state != State::AwaitDecision {
            return;
        }
        self.core.outbox.push_control(&Message::Welcome(Welcome {
            version: VERSION,
            stream_id,
            heartbeat_ms: u32::try_from(self.core.timing.heartbeat.as_millis()).unwrap_or(u32::MAX),
            max_frame_bytes: self.max_frame_bytes,
            name: name.to_owned(),
        }));
        self.state = State::Streaming;
        self.core.start_heartbeats(now);
    }

    /// Whether the client said it is a viewer.
    pub fn is_viewer(&self) -> bool {
        self.role == Some(Role::Viewer)
    }

    /// Tells an accepted viewer about a stream, new or changed (ignored for publishers).
    pub fn announce_stream(&mut self, announce: StreamAnnounce) {
        if self.state == State::Streaming && self.is_viewer() {
            self.core
                .outbox
                .push_control(&Message::StreamAnnounce(announce));
        }
    }

    /// Tells an accepted viewer a stream is gone, and drops its waiting frame.
    pub fn remove_stream(&mut self, stream_id: u64) {
        if self.state == State::Streaming && self.is_viewer() {
            self.core.outbox.forget_stream(stream_id);
            self.core
                .outbox
                .push_control(&Message::StreamRemoved { stream_id });
        }
    }

    /// Queues a frame of stream `stream_id` for an accepted viewer, replacing (and returning)
    /// that stream's frame still waiting. `frame.capture_us` must be on the hub's clock (0 when
    /// unknown). Returns the frame itself when this is not a viewer or it is closing.
    pub fn send_stream_frame(&mut self, stream_id: u64, frame: Frame) -> Option<Frame> {
        if self.state != State::Streaming || !self.is_viewer() {
            return Some(frame);
        }
        self.core.queue_stream_frame(stream_id, frame)
    }

    /// Queues the frames from stream `stream_id`'s newest keyframe to its newest frame for an
    /// accepted viewer that just started watching: all are sent, in order, ahead of the
    /// stream's next frame and regardless of its window, so its decoder shows the current
    /// picture at once instead of waiting for the next keyframe. Ignored unless streaming
    /// to a viewer.
    pub fn send_stream_catch_up(&mut self, stream_id: u64, frames: Vec<Frame>) {
        if self.state == State::Streaming && self.is_viewer() {
            self.core.queue_stream_catch_up(stream_id, frames);
        }
    }

    /// Whether a frame of `stream_id` still waits for the viewer: a frame sent now would
    /// replace it, which an inter-frame codec cannot afford for a non-keyframe.
    pub fn has_waiting_stream_frame(&self, stream_id: u64) -> bool {
        self.core.has_waiting_stream_frame(stream_id)
    }

    /// Asks the publisher for a keyframe (ignored unless streaming from a publisher).
    pub fn request_keyframe(&mut self) {
        if self.state == State::Streaming && !self.is_viewer() {
            self.core.outbox.push_control(&Message::KeyframeRequest);
        }
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
        if self.core.outbox.overflowed && self.state != State::Done {
            let queued_bytes = self.core.outbox.control_bytes();
            self.finish(None, CloseReason::NotReading { queued_bytes });
        }
        self.events.pop_front()
    }

    /// The next chunk to write to the socket, if any. Call it only when the socket can take
    /// more: a viewer's frames are picked (newest per stream) at this moment.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        let frames_allowed = self.state == State::Streaming && self.is_viewer();
        self.core.poll_transmit(frames_allowed)
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
