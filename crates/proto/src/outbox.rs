//! What a connection has to send: control messages first, then at most one frame waiting
//! (per stream, on a viewer's connection).

use std::collections::{BTreeMap, VecDeque};

use bytes::{Bytes, BytesMut};

use crate::message::{encode_frame_head, encode_stream_frame_head, Frame, Message};

/// Control bytes a connection may have queued and not yet handed to the driver. A peer that
/// does not read makes them pile up (announcements, goodbyes; pings and pongs are coalesced,
/// below): past this the connection gives up on it. Far above what a live peer leaves queued
/// (a viewer joining a full hub gets about 1 000 announcements of under 300 bytes).
pub const MAX_CONTROL_QUEUED_BYTES: usize = 1 << 20;

/// Frames of one stream a viewer may have unacknowledged: one being drawn, one on the way.
/// More would only queue in socket buffers, where a newer frame cannot replace them.
pub const VIEWER_WINDOW: usize = 2;

/// One stream of a viewer's connection: the newest frame not yet sent, and what is unacked.
#[derive(Debug, Default)]
struct StreamSlot {
    /// A joining viewer's keyframe group: sent in order ahead of `waiting`, outside the
    /// window, because a decoder needs every one of them to show the current picture.
    catch_up: VecDeque<Frame>,
    waiting: Option<Frame>,
    unacked: VecDeque<u64>,
}

/// Outgoing bytes of one connection, in the order they must hit the wire.
///
/// Latest frame wins: one frame may wait; a newer one replaces it and the older is counted as
/// dropped. A frame whose header was handed out is in flight and must be finished, so its body
/// is always the very next chunk.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    control: VecDeque<Bytes>,
    /// Bytes in `control` (bounded by [`MAX_CONTROL_QUEUED_BYTES`]).
    control_bytes: usize,
    /// The newest ping and pong not yet handed out: a newer one replaces the older (only the
    /// newest carries useful clock information), so a ping flood queues one pong, not millions.
    ping: Option<Bytes>,
    pong: Option<Bytes>,
    /// Set when the control queue went over its bound; the connection must close.
    pub(crate) overflowed: bool,
    waiting_frame: Option<Frame>,
    body_in_flight: Option<Bytes>,
    /// A viewer's streams, by id; sent round-robin from `next_stream` on.
    streams: BTreeMap<u64, StreamSlot>,
    next_stream: u64,
    /// Frames handed to the driver.
    pub(crate) frames_sent: u64,
    /// Frames replaced by a newer one before they were sent.
    pub(crate) frames_dropped: u64,
    /// Bytes handed to the driver.
    pub(crate) bytes_sent: u64,
}

impl Outbox {
    /// Queues a control message. Pings and pongs replace their own kind still waiting; anything
    /// else is refused past [`MAX_CONTROL_QUEUED_BYTES`] and sets [`overflowed`](Self::overflowed)
    /// (returns false): the peer does not read, and the connection must close.
    pub(crate) fn push_control(&mut self, msg: &Message) -> bool {
        let mut buf = BytesMut::with_capacity(64);
        msg.encode(&mut buf);
        match msg {
            Message::Ping(_) => self.ping = Some(buf.freeze()),
            Message::Pong(_) => self.pong = Some(buf.freeze()),
            _ => return self.push_raw(buf.freeze()),
        }
        true
    }

    /// Queues raw bytes (the magic, a control message) after the control bytes already queued;
    /// refused past [`MAX_CONTROL_QUEUED_BYTES`] (see [`push_control`](Self::push_control)).
    pub(crate) fn push_raw(&mut self, bytes: Bytes) -> bool {
        if self.control_bytes.saturating_add(bytes.len()) > MAX_CONTROL_QUEUED_BYTES {
            self.overflowed = true;
            return false;
        }
        self.control_bytes += bytes.len();
        self.control.push_back(bytes);
        true
    }

    /// Control bytes queued and not yet handed out.
    pub(crate) fn control_bytes(&self) -> usize {
        self.control_bytes
            + self.ping.as_ref().map_or(0, Bytes::len)
            + self.pong.as_ref().map_or(0, Bytes::len)
    }

    /// Queues a frame; returns the frame it replaced, if any.
    pub(crate) fn push_frame(&mut self, frame: Frame) -> Option<Frame> {
        let replaced = self.waiting_frame.replace(frame);
        if replaced.is_some() {
            self.frames_dropped = self.frames_dropped.saturating_add(1);
        }
        replaced
    }

    /// Queues a frame of stream `stream_id` (viewer connections); returns the frame of that
    /// stream it replaced, if any.
    pub(crate) fn push_stream_frame(&mut self, stream_id: u64, frame: Frame) -> Option<Frame> {
        let replaced = self
            .streams
            .entry(stream_id)
            .or_default()
            .waiting
            .replace(frame);
        if replaced.is_some() {
            self.frames_dropped = self.frames_dropped.saturating_add(1);
        }
        replaced
    }

    /// Queues `frames` of `stream_id` to go before anything else of that stream, all of them
    /// (a joining viewer's keyframe group). Replaces an earlier catch-up not yet sent.
    pub(crate) fn push_stream_catch_up(&mut self, stream_id: u64, frames: Vec<Frame>) {
        let slot = self.streams.entry(stream_id).or_default();
        self.frames_dropped += slot.catch_up.len() as u64;
        slot.catch_up = frames.into();
    }

    /// Whether a frame of `stream_id` waits for the viewer's window (a new one would replace it).
    pub(crate) fn has_waiting_stream_frame(&self, stream_id: u64) -> bool {
        self.streams
            .get(&stream_id)
            .is_some_and(|slot| slot.waiting.is_some())
    }

    /// The viewer took frame `seq` of `stream_id`: it and every frame of that stream sent
    /// before it are acknowledged. An ack for a frame not in flight changes nothing.
    pub(crate) fn ack_stream_frame(&mut self, stream_id: u64, seq: u64) {
        if let Some(slot) = self.streams.get_mut(&stream_id) {
            if let Some(pos) = slot.unacked.iter().position(|&s| s == seq) {
                slot.unacked.drain(..=pos);
            }
        }
    }

    /// Forgets a stream's waiting frame and window (the stream is gone).
    pub(crate) fn forget_stream(&mut self, stream_id: u64) {
        self.streams.remove(&stream_id);
    }

    /// Forgets waiting frames (on close); an in-flight body is still sent.
    pub(crate) fn discard_waiting_frame(&mut self) {
        self.waiting_frame = None;
        self.streams.clear();
    }

    /// The next stream whose frame may go, round-robin so one busy stream cannot starve the
    /// others of the socket.
    fn next_stream_frame(&mut self) -> Option<(u64, Frame)> {
        let ready = |slot: &StreamSlot| {
            !slot.catch_up.is_empty()
                || (slot.waiting.is_some() && slot.unacked.len() < VIEWER_WINDOW)
        };
        let id = self
            .streams
            .range(self.next_stream..)
            .chain(self.streams.range(..self.next_stream))
            .find(|(_, slot)| ready(slot))
            .map(|(&id, _)| id)?;
        let slot = self.streams.get_mut(&id)?;
        let frame = match slot.catch_up.pop_front() {
            Some(frame) => frame,
            None => slot.waiting.take()?,
        };
        slot.unacked.push_back(frame.seq);
        self.next_stream = id.wrapping_add(1);
        Some((id, frame))
    }

    pub(crate) fn has_waiting_frame(&self) -> bool {
        self.waiting_frame.is_some()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.control.is_empty()
            && self.ping.is_none()
            && self.pong.is_none()
            && self.waiting_frame.is_none()
            && self.body_in_flight.is_none()
            && self
                .streams
                .values()
                .all(|s| s.waiting.is_none() && s.catch_up.is_empty())
    }

    pub(crate) fn poll_transmit(&mut self, frames_allowed: bool) -> Option<Bytes> {
        let chunk = if let Some(body) = self.body_in_flight.take() {
            body
        } else if let Some(control) = self.control.pop_front() {
            self.control_bytes -= control.len();
            control
        } else if let Some(pong) = self.pong.take() {
            // After the queue, so never ahead of the magic or the welcome.
            pong
        } else if let Some(ping) = self.ping.take() {
            ping
        } else if frames_allowed {
            let mut head = BytesMut::with_capacity(40);
            let frame = match self.waiting_frame.take() {
                Some(frame) => {
                    encode_frame_head(&frame, &mut head);
                    frame
                }
                None => {
                    let (stream_id, frame) = self.next_stream_frame()?;
                    encode_stream_frame_head(stream_id, &frame, &mut head);
                    frame
                }
            };
            self.frames_sent = self.frames_sent.saturating_add(1);
            if !frame.data.is_empty() {
                self.body_in_flight = Some(frame.data);
            }
            head.freeze()
        } else {
            return None;
        };
        self.bytes_sent = self.bytes_sent.saturating_add(chunk.len() as u64);
        Some(chunk)
    }
}
