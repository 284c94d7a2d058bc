//! What both ends of a connection share: decoding, the outbox, heartbeats, clock sync, closing.

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::clock_sync::ClockSync;
use crate::error::ProtocolError;
use crate::framing::Decoder;
use crate::message::{Frame, Goodbye, GoodbyeCode, Message, Ping, Pong, RejectCode, MAGIC};
use crate::outbox::Outbox;
use crate::time::Timestamp;

/// Timing policy of a connection. Defaults: ping every second, peer dead after 3 s of silence,
/// handshake within 5 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How often to ping the peer (heartbeat and clock probe).
    pub heartbeat: Duration,
    /// Silence after which the peer is declared dead.
    pub peer_timeout: Duration,
    /// Time allowed from connect to a completed handshake.
    pub handshake_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(1),
            peer_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a connection ended: the "reason" in the disconnect log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer said goodbye.
    PeerGoodbye {
        /// Its code.
        code: GoodbyeCode,
        /// Its words.
        reason: String,
    },
    /// This side said goodbye (or, on the hub, refused the handshake).
    Local {
        /// The code sent.
        code: GoodbyeCode,
        /// The words sent.
        reason: String,
    },
    /// The hub refused this client.
    Rejected {
        /// The hub's code.
        code: RejectCode,
        /// The hub's words.
        reason: String,
    },
    /// The peer broke the protocol.
    Protocol(ProtocolError),
    /// Nothing arrived for too long after the handshake.
    PeerTimeout {
        /// How long the peer had been silent.
        silent_for: Duration,
    },
    /// The handshake did not complete in time.
    HandshakeTimeout {
        /// The limit that passed.
        after: Duration,
    },
    /// The peer did not read: what this side had to send it went over its bound
    /// ([`MAX_CONTROL_QUEUED_BYTES`](crate::MAX_CONTROL_QUEUED_BYTES)).
    NotReading {
        /// Bytes waiting when this side gave up.
        queued_bytes: usize,
    },
    /// The peer closed the TCP connection without a goodbye.
    PeerClosed {
        /// Whether it stopped in the middle of a message.
        mid_message: bool,
        /// Stream offset where the bytes stopped.
        offset: u64,
    },
}

impl CloseReason {
    /// Whether the peer left on purpose ("left") rather than being lost.
    pub fn is_orderly(&self) -> bool {
        matches!(
            self,
            CloseReason::PeerGoodbye { .. } | CloseReason::Local { .. }
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerGoodbye { code, reason } => {
                write!(f, "peer said goodbye ({code:?}")?;
                if !reason.is_empty() {
                    // The peer wrote it: escaped, so it cannot forge log lines.
                    write!(f, ": {}", crate::text::log_safe(reason))?;
                }
                write!(f, ")")
            }
            CloseReason::Local { code, reason } => write!(f, "closed here ({code:?}: {reason})"),
            CloseReason::Rejected { code, reason } => {
                let reason = crate::text::log_safe(reason);
                write!(f, "rejected by hub ({code:?}: {reason})")
            }
            CloseReason::Protocol(e) => write!(f, "protocol error: {e}"),
            CloseReason::PeerTimeout { silent_for } => {
                write!(f, "peer silent for {} ms", silent_for.as_millis())
            }
            CloseReason::HandshakeTimeout { after } => {
                write!(f, "no handshake within {} ms", after.as_millis())
            }
            CloseReason::NotReading { queued_bytes } => {
                write!(
                    f,
                    "not reading: {queued_bytes} bytes of control messages unsent"
                )
            }
            CloseReason::PeerClosed {
                mid_message: true,
                offset,
            } => write!(f, "connection closed mid-message at byte {offset}"),
            CloseReason::PeerClosed {
                mid_message: false,
                offset,
            } => write!(f, "connection closed without goodbye at byte {offset}"),
        }
    }
}

/// Counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Bytes taken from the peer.
    pub bytes_received: u64,
    /// Bytes handed to the driver to send.
    pub bytes_sent: u64,
    /// Frames handed to the driver to send.
    pub frames_sent: u64,
    /// Frames replaced by a newer one before they left (latest frame wins).
    pub frames_dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Open,
    Closing,
}

/// Pings one peer may send within a second. A live peer pings once per heartbeat (1 s by
/// default); a flood costs a pong each and is closed as a protocol error.
pub const MAX_PINGS_PER_SECOND: u32 = 50;

/// The shared machinery; `HubConnection` and `ClientConnection` add the handshake.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) decoder: Decoder,
    pub(crate) outbox: Outbox,
    pub(crate) clock: ClockSync,
    pub(crate) timing: Timing,
    started_at: Timestamp,
    last_received: Timestamp,
    next_ping: Option<Timestamp>,
    phase: Phase,
    bytes_received: u64,
    /// Pings counted since `ping_window_start` (see [`MAX_PINGS_PER_SECOND`]).
    ping_window_start: Timestamp,
    pings_in_window: u32,
}

/// What the core makes of one incoming message.
pub(crate) enum Handled {
    /// Dealt with here (pings, pongs, skipped kinds).
    Done,
    /// For the role-specific layer.
    Pass(Message, u64),
}

impl Core {
    pub(crate) fn new(max_frame_bytes: u32, timing: Timing, now: Timestamp) -> Self {
        let mut outbox = Outbox::default();
        outbox.push_raw(Bytes::from_static(&MAGIC));
        Self {
            decoder: Decoder::new(max_frame_bytes),
            outbox,
            clock: ClockSync::default(),
            timing,
            started_at: now,
            last_received: now,
            next_ping: None,
            phase: Phase::Open,
            bytes_received: 0,
            ping_window_start: now,
            pings_in_window: 0,
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Starts heartbeats; called when the handshake completes.
    pub(crate) fn start_heartbeats(&mut self, now: Timestamp) {
        self.next_ping = Some(now);
    }

    pub(crate) fn handshake_deadline(&self) -> Timestamp {
        self.started_at
            .saturating_add(self.timing.handshake_timeout)
    }

    /// Decodes the next message, answering pings and taking pongs itself.
    pub(crate) fn next_message(
        &mut self,
        now: Timestamp,
        buf: &mut BytesMut,
    ) -> Result<Option<Handled>, ProtocolError> {
        let before = buf.len();
        let decoded = self.decoder.decode(buf);
        // Bytes count as a sign of life even when no whole message is done yet.
        let took = before - buf.len();
        self.bytes_received = self.bytes_received.saturating_add(took as u64);
        if before > 0 {
            self.last_received = now;
        }
        let Some(msg) = decoded? else {
            return Ok(None);
        };
        let offset = self.decoder.last_message_offset();
        let handled = match msg {
            Message::Ping(ping) => {
                if now.saturating_since(self.ping_window_start) >= Duration::from_secs(1) {
                    self.ping_window_start = now;
                    self.pings_in_window = 0;
                }
                self.pings_in_window = self.pings_in_window.saturating_add(1);
                if self.pings_in_window > MAX_PINGS_PER_SECOND {
                    return Err(ProtocolError::PingFlood {
                        offset,
                        max: MAX_PINGS_PER_SECOND,
                    });
                }
                self.outbox.push_control(&Message::Pong(Pong {
                    ping_sent_us: ping.sent_us,
                    ping_received_us: now.as_micros(),
                    sent_us: now.as_micros(),
                }));
                Handled::Done
            }
            Message::Pong(pong) => {
                self.clock.handle_pong(&pong, now);
                Handled::Done
            }
            Message::Skipped { .. } => Handled::Done,
            other => Handled::Pass(other, offset),
        };
        Ok(Some(handled))
    }

    /// Sends a farewell (if any) and stops taking frames. Returns false if already closing.
    pub(crate) fn begin_close(&mut self, farewell: Option<Message>) -> bool {
        if self.phase == Phase::Closing {
            return false;
        }
        self.phase = Phase::Closing;
        self.outbox.discard_waiting_frame();
        if let Some(msg) = farewell {
            self.outbox.push_control(&msg);
        }
        true
    }

    pub(crate) fn goodbye(code: GoodbyeCode, reason: &str) -> Message {
        Message::Goodbye(Goodbye {
            code,
            reason: reason.to_owned(),
        })
    }

    pub(crate) fn queue_frame(&mut self, frame: Frame) -> Option<Frame> {
        if self.phase == Phase::Closing {
            return Some(frame);
        }
        self.outbox.push_frame(frame)
    }

    /// Like `queue_frame`, into stream `stream_id`'s slot of a viewer's connection.
    pub(crate) fn queue_stream_frame(&mut self, stream_id: u64, frame: Frame) -> Option<Frame> {
        if self.phase == Phase::Closing {
            return Some(frame);
        }
        self.outbox.push_stream_frame(stream_id, frame)
    }

    /// Queues a joining viewer's keyframe group (see [`Outbox`]).
    pub(crate) fn queue_stream_catch_up(&mut self, stream_id: u64, frames: Vec<Frame>) {
        if self.phase != Phase::Closing {
            self.outbox.push_stream_catch_up(stream_id, frames);
        }
    }

    /// Whether a frame of `stream_id` is waiting (see [`Outbox`]).
    pub(crate) fn has_waiting_stream_frame(&self, stream_id: u64) -> bool {
        self.outbox.has_waiting_stream_frame(stream_id)
    }

    /// Timers: a due ping is queued; a silent peer gives `Some(reason)`.
    pub(crate) fn handle_timeout(&mut self, now: Timestamp) -> Option<CloseReason> {
        let next_ping = self.next_ping?;
        let silent_for = now.saturating_since(self.last_received);
        if silent_for >= self.timing.peer_timeout {
            return Some(CloseReason::PeerTimeout { silent_for });
        }
        if now >= next_ping && self.phase == Phase::Open {
            self.outbox.push_control(&Message::Ping(Ping {
                sent_us: now.as_micros(),
            }));
            self.next_ping = Some(now.saturating_add(self.timing.heartbeat));
        }
        None
    }

    /// The next time `handle_timeout` has something to do, once heartbeats run.
    pub(crate) fn poll_timeout(&self) -> Option<Timestamp> {
        let next_ping = self.next_ping?;
        let dead_at = self.last_received.saturating_add(self.timing.peer_timeout);
        Some(next_ping.min(dead_at))
    }

    /// What closing on end of input means.
    pub(crate) fn eof_reason(&self, buf: &[u8]) -> CloseReason {
        CloseReason::PeerClosed {
            mid_message: !buf.is_empty(),
            offset: self.decoder.consumed() + buf.len() as u64,
        }
    }

    pub(crate) fn poll_transmit(&mut self, frames_allowed: bool) -> Option<Bytes> {
        self.outbox
            .poll_transmit(frames_allowed && self.phase == Phase::Open)
    }

    /// Closed: nothing more to send and no more to receive.
    pub(crate) fn is_closed(&self) -> bool {
        self.phase == Phase::Closing && self.outbox.is_empty()
    }

    pub(crate) fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            bytes_received: self.bytes_received,
            bytes_sent: self.outbox.bytes_sent,
            frames_sent: self.outbox.frames_sent,
            frames_dropped: self.outbox.frames_dropped,
        }
    }
}
