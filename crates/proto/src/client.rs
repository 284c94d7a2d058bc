//! The client's end of one connection: a publisher or a viewer.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::clock_sync::ClockSync;
use crate::connection::{CloseReason, ConnectionStats, Core, Handled, Timing};
use crate::error::ProtocolError;
use crate::message::{
    Codec, Frame, FrameAck, GoodbyeCode, Hello, Message, Role, StreamAnnounce, Welcome,
    MAX_FRAME_BYTES, VERSION,
};
use crate::time::Timestamp;

/// What the client's end of a connection reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The hub accepted; frames may flow.
    Accepted(Welcome),
    /// Viewers: a stream exists or changed (sent for every stream after the welcome).
    Stream(StreamAnnounce),
    /// Viewers: a stream is forgotten.
    StreamRemoved {
        /// Which stream.
        stream_id: u64,
    },
    /// Viewers: a frame of a stream arrived; ack it with
    /// [`ClientConnection::ack_frame`] once taken, or that stream stops after
    /// [`VIEWER_WINDOW`](crate::VIEWER_WINDOW) frames.
    StreamFrame {
        /// Which stream.
        stream_id: u64,
        /// The frame; `capture_us` is on the hub's clock, 0 when unknown.
        frame: Frame,
        /// Local time its last byte was handed in.
        received_at: Timestamp,
    },
    /// A plain frame arrived (viewers only; this hub sends viewers `StreamFrame`s).
    Frame {
        /// The frame.
        frame: Frame,
        /// Local time its last byte was handed in.
        received_at: Timestamp,
    },
    /// The hub asked for a keyframe.
    KeyframeRequested,
    /// The connection is over (the hub refused, left, or went silent); send what is left and
    /// close the socket.
    Closed(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitWelcome,
    Streaming,
    Done,
}

/// The client's end of one connection to a hub, as a state machine.
///
/// Same call order as [`crate::HubConnection`]. Frames handed to
/// [`send_frame`](Self::send_frame) wait in a one-frame slot: a newer frame replaces a waiting
/// one (counted as dropped), so a slow link never builds a backlog. The driver should only ask
/// for the next chunk when the socket can take it.
#[derive(Debug)]
pub struct ClientConnection {
    core: Core,
    state: State,
    role: Role,
    events: VecDeque<ClientEvent>,
}

impl ClientConnection {
    /// Starts a connection at `now`: the magic and `hello` are queued to send.
    pub fn new(hello: Hello, timing: Timing, now: Timestamp) -> Self {
        let mut core = Core::new(MAX_FRAME_BYTES, timing, now);
        let role = hello.role;
        core.outbox.push_control(&Message::Hello(hello));
        Self {
            core,
            state: State::AwaitWelcome,
            role,
            events: VecDeque::new(),
        }
    }

    /// Starts a viewer's connection at `now`: hello with [`Role::Viewer`], `name` (1 to 64
    /// bytes, shown in the hub's log) and `token` (empty when the hub needs none).
    pub fn viewer(name: &str, token: &str, timing: Timing, now: Timestamp) -> Self {
        let hello = Hello {
            version: VERSION,
            role: Role::Viewer,
            codec: Ok(Codec::Jpeg),
            width: 0,
            height: 0,
            fps_milli: 0,
            name: name.to_owned(),
            token: token.to_owned(),
        };
        Self::new(hello, timing, now)
    }

    /// Viewers: acknowledges frame `seq` of `stream_id`, so the hub may send that stream's
    /// next frame (ignored before the welcome or for publishers).
    pub fn ack_frame(&mut self, stream_id: u64, seq: u64) {
        if self.state == State::Streaming && self.role == Role::Viewer {
            self.core
                .outbox
                .push_control(&Message::FrameAck(FrameAck { stream_id, seq }));
        }
    }

    /// Queues a frame to send, replacing (and returning) a frame still waiting.
    pub fn send_frame(&mut self, frame: Frame) -> Option<Frame> {
        self.core.queue_frame(frame)
    }

    /// Queues a report of this side's TCP statistics for the hub (ignored before the welcome).
    pub fn send_report(&mut self, report: crate::message::SenderReport) {
        if self.state == State::Streaming {
            self.core
                .outbox
                .push_control(&Message::SenderReport(report));
        }
    }

    /// Queues a report of the encoder settings the link adaptation chose (ignored before the
    /// welcome).
    pub fn send_encoder_report(&mut self, report: crate::message::EncoderReport) {
        if self.state == State::Streaming {
            self.core
                .outbox
                .push_control(&Message::EncoderReport(report));
        }
    }

    /// Whether a frame is waiting for the socket.
    pub fn has_waiting_frame(&self) -> bool {
        self.core.outbox.has_waiting_frame()
    }

    /// Takes whole messages off the front of `buf`, which holds bytes received from the hub.
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
            (State::AwaitWelcome, Message::Reject(r)) => self.finish(
                None,
                CloseReason::Rejected {
                    code: r.code,
                    reason: r.reason,
                },
            ),
            (State::AwaitWelcome, Message::Welcome(w)) => {
                self.state = State::Streaming;
                self.core.start_heartbeats(now);
                self.events.push_back(ClientEvent::Accepted(w));
            }
            (State::Streaming, Message::Frame(frame)) if self.role == Role::Viewer => {
                self.events.push_back(ClientEvent::Frame {
                    frame,
                    received_at: now,
                });
            }
            (State::Streaming, Message::StreamAnnounce(a)) if self.role == Role::Viewer => {
                self.events.push_back(ClientEvent::Stream(a));
            }
            (State::Streaming, Message::StreamRemoved { stream_id })
                if self.role == Role::Viewer =>
            {
                self.events
                    .push_back(ClientEvent::StreamRemoved { stream_id });
            }
            (State::Streaming, Message::StreamFrame(f)) if self.role == Role::Viewer => {
                self.events.push_back(ClientEvent::StreamFrame {
                    stream_id: f.stream_id,
                    frame: f.frame,
                    received_at: now,
                });
            }
            (State::Streaming, Message::KeyframeRequest) => {
                self.events.push_back(ClientEvent::KeyframeRequested);
            }
            (state, _) => self.fail(ProtocolError::Unexpected {
                offset,
                kind,
                during: if state == State::AwaitWelcome {
                    "before welcome"
                } else {
                    "while streaming"
                },
            }),
        }
    }

    /// Says goodbye (for example [`GoodbyeCode::EndOfStream`] when a file ends) and closes.
    pub fn close(&mut self, code: GoodbyeCode, reason: &str) {
        self.finish(
            Some(Core::goodbye(code, reason)),
            CloseReason::Local {
                code,
                reason: reason.to_owned(),
            },
        );
    }

    /// The hub closed its end; `buf` is whatever partial message was left.
    pub fn handle_eof(&mut self, buf: &[u8]) {
        let reason = self.core.eof_reason(buf);
        self.finish(None, reason);
    }

    /// Runs expired timers.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        match self.state {
            State::AwaitWelcome if now >= self.core.handshake_deadline() => {
                let after = self.core.timing.handshake_timeout;
                self.finish(None, CloseReason::HandshakeTimeout { after });
            }
            State::Streaming => {
                if let Some(reason) = self.core.handle_timeout(now) {
                    self.finish(
                        Some(Core::goodbye(GoodbyeCode::Timeout, "hub silent")),
                        reason,
                    );
                }
            }
            _ => {}
        }
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match self.state {
            State::AwaitWelcome => Some(self.core.handshake_deadline()),
            State::Streaming => self.core.poll_timeout(),
            State::Done => None,
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The next chunk to write to the socket, if any. Frames go only after the welcome.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.core.poll_transmit(self.state == State::Streaming)
    }

    /// Whether the connection is over and everything it had to say was handed out.
    pub fn is_closed(&self) -> bool {
        self.state == State::Done && self.core.is_closed()
    }

    /// Whether the hub accepted and the connection is still open.
    pub fn is_streaming(&self) -> bool {
        self.state == State::Streaming
    }

    /// Clock offset and RTT estimates for the hub.
    pub fn clock(&self) -> &ClockSync {
        &self.core.clock
    }

    /// Counters of this connection.
    pub fn stats(&self) -> ConnectionStats {
        self.core.stats()
    }

    fn fail(&mut self, error: ProtocolError) {
        let farewell = Core::goodbye(GoodbyeCode::ProtocolError, &error.to_string());
        self.finish(Some(farewell), CloseReason::Protocol(error));
    }

    fn finish(&mut self, farewell: Option<Message>, reason: CloseReason) {
        if self.state == State::Done {
            return;
        }
        self.state = State::Done;
        self.core.begin_close(farewell);
        self.events.push_back(ClientEvent::Closed(reason));
    }
}
