//! What a connection has to send: control messages first, then at most one frame waiting.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::message::{encode_frame_head, Frame, Message};

/// Outgoing bytes of one connection, in the order they must hit the wire.
///
/// Latest frame wins: one frame may wait; a newer one replaces it and the older is counted as
/// dropped. A frame whose header was handed out is in flight and must be finished, so its body
/// is always the very next chunk.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    control: VecDeque<Bytes>,
    waiting_frame: Option<Frame>,
    body_in_flight: Option<Bytes>,
    /// Frames handed to the driver.
    pub(crate) frames_sent: u64,
    /// Frames replaced by a newer one before they were sent.
    pub(crate) frames_dropped: u64,
    /// Bytes handed to the driver.
    pub(crate) bytes_sent: u64,
}

impl Outbox {
    pub(crate) fn push_control(&mut self, msg: &Message) {
        let mut buf = BytesMut::with_capacity(64);
        msg.encode(&mut buf);
        self.control.push_back(buf.freeze());
    }

    /// Queues raw bytes (the magic) ahead of everything else not yet handed out.
    pub(crate) fn push_raw(&mut self, bytes: Bytes) {
        self.control.push_back(bytes);
    }

    /// Queues a frame; returns the frame it replaced, if any.
    pub(crate) fn push_frame(&mut self, frame: Frame) -> Option<Frame> {
        let replaced = self.waiting_frame.replace(frame);
        if replaced.is_some() {
            self.frames_dropped += 1;
        }
        replaced
    }

    /// Forgets a waiting frame (on close); an in-flight body is still sent.
    pub(crate) fn discard_waiting_frame(&mut self) {
        self.waiting_frame = None;
    }

    pub(crate) fn has_waiting_frame(&self) -> bool {
        self.waiting_frame.is_some()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.control.is_empty() && self.waiting_frame.is_none() && self.body_in_flight.is_none()
    }

    pub(crate) fn poll_transmit(&mut self, frames_allowed: bool) -> Option<Bytes> {
        let chunk = if let Some(body) = self.body_in_flight.take() {
            body
        } else if let Some(control) = self.control.pop_front() {
            control
        } else if frames_allowed {
            let frame = self.waiting_frame.take()?;
            let mut head = BytesMut::with_capacity(32);
            encode_frame_head(&frame, &mut head);
            self.frames_sent += 1;
            if !frame.data.is_empty() {
                self.body_in_flight = Some(frame.data);
            }
            head.freeze()
        } else {
            return None;
        };
        self.bytes_sent += chunk.len() as u64;
        Some(chunk)
    }
}
