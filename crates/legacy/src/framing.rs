//! Cutting the original client's byte stream into frames: `len: u64 LE | pickle[len]`, again
//! and again, with no header, handshake or end marker.

use bytes::{Buf, BytesMut};

use crate::error::LegacyError;
use crate::frame::LegacyFrame;
use crate::unpickle::Unpickler;

/// Bytes of the length prefix (`struct.pack("Q", len)`).
pub const LEN_PREFIX: usize = 8;

/// Incremental decoder for one legacy connection.
///
/// Feed it the connection's receive buffer after every read, appending to the buffer between
/// calls and never touching the bytes already in it; it takes whole frames off the front.
/// The length prefix is checked against the limit as soon as its 8 bytes are present, so a
/// peer cannot make this side buffer more than `max_frame_bytes + 8`. The pickle is read
/// opcode by opcode as it arrives, so a forbidden global is refused at its own bytes, not
/// after the whole frame; a frame's pixels are allocated once, when its STOP arrives, and
/// never exceed the pickle's size. After an `Err` the connection must close.
#[derive(Debug, Clone)]
pub struct LegacyDecoder {
    max_frame_bytes: u32,
    consumed: u64,
    last_frame_offset: u64,
    current: Option<InFlight>,
}

#[derive(Debug, Clone)]
struct InFlight {
    pickle_len: usize,
    unpickler: Unpickler,
}

impl LegacyDecoder {
    /// A decoder for frames whose pickle (the length prefix's value) is at most
    /// `max_frame_bytes`. The pixels are never more than the pickle, so this bounds them too:
    /// 16 MiB fits a 1920x1080 BGR frame in any protocol (protocol 2 spends up to 2 bytes a
    /// pixel byte).
    pub fn new(max_frame_bytes: u32) -> Self {
        Self {
            max_frame_bytes,
            consumed: 0,
            last_frame_offset: 0,
            current: None,
        }
    }

    /// Bytes consumed so far: the stream offset of whatever the buffer starts with.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Stream offset of the last frame returned (its length prefix).
    pub fn last_frame_offset(&self) -> u64 {
        self.last_frame_offset
    }

    /// How many more bytes the frame at the front of `buf` needs (0 if its length prefix is
    /// incomplete). Drivers use it to size reads; it is never more than the limit allows.
    pub fn bytes_wanted(&self, buf: &[u8]) -> usize {
        match &self.current {
            Some(f) => (LEN_PREFIX + f.pickle_len).saturating_sub(buf.len()),
            None => 0,
        }
    }

    /// The frame at the front of `buf` not yet whole (after `decode`), once its length prefix
    /// was checked: its stream offset and whole length (prefix included).
    pub fn receiving(&self, buf: &[u8]) -> Option<(u64, usize)> {
        let f = self.current.as_ref()?;
        let total = LEN_PREFIX + f.pickle_len;
        (buf.len() < total).then_some((self.consumed, total))
    }

    /// True while a frame has started but not finished: EOF now is "closed mid-frame".
    pub fn is_mid_frame(&self, buf: &[u8]) -> bool {
        self.current.is_some() || !buf.is_empty()
    }

    /// Takes the next whole frame off the front of `buf`.
    ///
    /// `Ok(None)`: more bytes are needed. `Err`: the stream is bad at the offset the error
    /// names; the connection must close.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<LegacyFrame>, LegacyError> {
        if self.current.is_none() {
            let Some(prefix) = buf.first_chunk::<LEN_PREFIX>() else {
                return Ok(None);
            };
            let len = u64::from_le_bytes(*prefix);
            if len > u64::from(self.max_frame_bytes) {
                return Err(LegacyError::TooLarge {
                    offset: self.consumed,
                    len,
                    max: self.max_frame_bytes,
                });
            }
            self.current = Some(InFlight {
                pickle_len: len as usize, // <= u32::MAX
                unpickler: Unpickler::new(self.consumed + LEN_PREFIX as u64),
            });
        }
        let f = self.current.as_mut().expect("set above");
        let end = buf.len().min(LEN_PREFIX + f.pickle_len);
        let pickle = &buf[LEN_PREFIX..end];
        let Some(image) = f.unpickler.run(pickle, f.pickle_len)? else {
            return Ok(None);
        };
        let frame = LegacyFrame {
            width: image.width,
            height: image.height,
            bgr: image.pixels(pickle),
        };
        let total = LEN_PREFIX + f.pickle_len;
        buf.advance(total);
        self.last_frame_offset = self.consumed;
        self.consumed += total as u64;
        self.current = None;
        Ok(Some(frame))
    }
}
