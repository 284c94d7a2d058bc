//! Cutting a byte stream into messages: magic, then `kind u8 | len u32be | payload`.

use bytes::BytesMut;

use crate::error::ProtocolError;
use crate::message::{
    decode_payload, Kind, Message, FRAME_META_LEN, HEADER_LEN, MAGIC, MAX_CONTROL_PAYLOAD,
    MAX_FRAME_BYTES,
};

/// Incremental decoder for one direction of one connection.
///
/// Feed it the connection's receive buffer; it takes whole messages off the front and leaves a
/// partial one in place. Every length is checked against its kind's limit before the buffer is
/// allowed to grow for it, so a peer cannot make this side allocate past the limit.
#[derive(Debug, Clone)]
pub struct Decoder {
    magic_seen: bool,
    consumed: u64,
    last_message_offset: u64,
    max_frame_payload: u32,
}

impl Decoder {
    /// A decoder that expects the magic first and accepts frames of up to `max_frame_bytes`
    /// picture bytes (capped at the protocol's [`MAX_FRAME_BYTES`]).
    pub fn new(max_frame_bytes: u32) -> Self {
        let max_frame_bytes = max_frame_bytes.min(MAX_FRAME_BYTES);
        Self {
            magic_seen: false,
            consumed: 0,
            last_message_offset: 0,
            max_frame_payload: max_frame_bytes + FRAME_META_LEN as u32,
        }
    }

    /// Bytes consumed so far: the stream offset of whatever `buf` starts with.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Stream offset of the last message returned.
    pub fn last_message_offset(&self) -> u64 {
        self.last_message_offset
    }

    /// How many more bytes the message at the front of `buf` needs (0 if none is started, or if
    /// its header is incomplete). Drivers use it to size their reads.
    pub fn bytes_wanted(&self, buf: &[u8]) -> usize {
        if !self.magic_seen || buf.len() < HEADER_LEN {
            return 0;
        }
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        (HEADER_LEN + len).saturating_sub(buf.len())
    }

    /// The message at the front of `buf` that is not whole yet, once its header is in: its
    /// stream offset and whole length (header included). Drivers use it to budget the memory
    /// and time a large frame may take. `None` before the magic or with no header yet.
    pub fn receiving(&self, buf: &[u8]) -> Option<(u64, usize)> {
        if !self.magic_seen || buf.len() < HEADER_LEN {
            return None;
        }
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        let total = HEADER_LEN.saturating_add(len);
        (buf.len() < total).then_some((self.consumed, total))
    }

    /// Takes the next whole message off the front of `buf`.
    ///
    /// `Ok(None)`: more bytes are needed (nothing was consumed past the magic). `Err`: the stream
    /// is bad at the offset the error names; the connection must close.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ProtocolError> {
        if !self.magic_seen {
            let seen = buf.len().min(MAGIC.len());
            // Refuse garbage as soon as one byte differs: a stranger never gets to park bytes.
            if let Some(bad) = (0..seen).find(|&i| buf[i] != MAGIC[i]) {
                return Err(ProtocolError::BadMagic {
                    found: buf[..=bad].to_vec(),
                });
            }
            if seen < MAGIC.len() {
                return Ok(None);
            }
            let _ = buf.split_to(MAGIC.len());
            self.consumed += MAGIC.len() as u64;
            self.magic_seen = true;
        }
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let offset = self.consumed;
        let kind = buf[0];
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        let max = self.limit_for(kind, offset)?;
        if len > max {
            return Err(ProtocolError::TooLarge {
                offset,
                kind,
                len,
                max,
            });
        }
        let total = HEADER_LEN + len as usize;
        if buf.len() < total {
            return Ok(None);
        }
        let mut message = buf.split_to(total);
        let payload = message.split_off(HEADER_LEN).freeze();
        self.consumed += total as u64;
        self.last_message_offset = offset;
        decode_payload(kind, payload, offset).map(Some)
    }

    fn limit_for(&self, kind: u8, offset: u64) -> Result<u32, ProtocolError> {
        match Kind::from_u8(kind) {
            Some(Kind::Frame) => Ok(self.max_frame_payload),
            Some(Kind::StreamFrame) => Ok(self.max_frame_payload + 8),
            Some(_) => Ok(MAX_CONTROL_PAYLOAD),
            None if Kind::is_optional(kind) => Ok(MAX_CONTROL_PAYLOAD),
            None => Err(ProtocolError::UnknownKind { offset, kind }),
        }
    }
}
