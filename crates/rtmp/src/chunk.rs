//! RTMP chunk streams (RTMP spec 1.0, section 5.3): messages are cut into chunks of at most
//! the sender's chunk size, each with a basic header (format and chunk stream id) and a
//! message header that may reuse fields of the previous chunk on the same chunk stream.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::RtmpError;

/// The chunk size every RTMP peer starts with (section 5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest message the reader accepts from a server: servers send commands and control
/// messages, never media, to a publisher. Checked before anything is allocated.
pub const MAX_INCOMING_MESSAGE: u32 = 1 << 20;
/// Messages the reader reassembles at once, on different chunk streams: a server has one or
/// two in flight; without a cap, 1 MiB messages begun on each of 65 599 chunk streams would
/// hold 64 GiB.
pub const MAX_MESSAGES_IN_PROGRESS: usize = 8;
/// Space reserved for a message when its first chunk arrives; more grows as chunks come, so
/// a header that announces 1 MiB costs memory only once the bytes are really sent.
const RESERVE_AT_START: usize = 16 << 10;
/// A timestamp field of all ones means "the real value is in the 4-byte extended field".
const EXTENDED: u32 = 0x00FF_FFFF;

/// One RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpMessage {
    /// Chunk stream it travelled on.
    pub csid: u32,
    /// Timestamp, ms.
    pub timestamp: u32,
    /// Message type id (1 set chunk size, 4 user control, 9 video, 20 AMF0 command, …).
    pub type_id: u8,
    /// Message stream id.
    pub stream_id: u32,
    /// The body.
    pub payload: Bytes,
}

/// Writes messages as chunks. Each message starts with a full (format 0) header, so no chunk
/// depends on an earlier message; that costs 11 bytes a message and removes a class of bugs.
#[derive(Debug)]
pub struct ChunkWriter {
    chunk_size: u32,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl ChunkWriter {
    /// Uses `size` for later messages (after sending Set Chunk Size to the peer).
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, 0x7FFF_FFFF);
    }

    /// Appends `message` as chunks to `out`.
    pub fn write(&self, message: &RtmpMessage, out: &mut BytesMut) {
        let len = message.payload.len();
        let extended = message.timestamp >= EXTENDED;
        let chunk = self.chunk_size as usize;
        out.reserve(len + 18 + (len / chunk) * 5);
        put_basic_header(out, 0, message.csid);
        out.put_uint(u64::from(message.timestamp.min(EXTENDED)), 3);
        out.put_uint(len as u64, 3);
        out.put_u8(message.type_id);
        out.put_u32_le(message.stream_id);
        if extended {
            out.put_u32(message.timestamp);
        }
        for (i, piece) in message.payload.chunks(chunk).enumerate() {
            if i > 0 {
                put_basic_header(out, 3, message.csid);
                // Format 3 chunks repeat the extended timestamp (what nginx-rtmp and ffmpeg
                // expect; the 2012 spec is ambiguous).
                if extended {
                    out.put_u32(message.timestamp);
                }
            }
            out.put_slice(piece);
        }
    }
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    match csid {
        2..=63 => out.put_u8(fmt << 6 | csid as u8),
        64..=319 => {
            out.put_u8(fmt << 6);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            let id = csid.clamp(320, 65_599) - 64;
            out.put_u8(fmt << 6 | 1);
            out.put_u16_le(id as u16);
        }
    }
}

/// What the reader remembers of a chunk stream: the last header and the message so far.
#[derive(Debug, Default)]
struct ChunkStream {
    timestamp: u32,
    delta: u32,
    len: u32,
    type_id: u8,
    stream_id: u32,
    has_extended: bool,
    /// Set once a header arrived: formats 1-3 reuse it.
    started: bool,
    partial: BytesMut,
}

/// Reassembles messages from the chunks a peer sends.
///
/// Call order: [`ChunkReader::push`] bytes as they arrive, then [`ChunkReader::next_message`]
/// until it gives `Ok(None)` ("need more bytes").
#[derive(Debug)]
pub struct ChunkReader {
    buf: BytesMut,
    chunk_size: u32,
    streams: HashMap<u32, ChunkStream>,
    /// Stream offset of `buf[0]`, for error messages.
    offset: u64,
}

impl ChunkReader {
    /// A reader whose first byte is at `offset` in the peer's byte stream (after the
    /// handshake), so errors name positions that match a capture.
    pub fn new(offset: u64) -> Self {
        Self {
            buf: BytesMut::new(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            offset,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The peer's Set Chunk Size took effect.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, 0x7FFF_FFFF);
    }

    /// The peer aborted the message in progress on `csid` (Abort Message, type 2).
    pub fn abort(&mut self, csid: u32) {
        if let Some(s) = self.streams.get_mut(&csid) {
            s.partial.clear();
        }
    }

    /// The next complete message, `Ok(None)` if more bytes are needed, or an error naming
    /// the stream offset of the bad chunk.
    pub fn next_message(&mut self) -> Result<Option<RtmpMessage>, RtmpError> {
        loop {
            match self.next_chunk()? {
                None => return Ok(None),
                Some(Some(message)) => return Ok(Some(message)),
                Some(None) => {}
            }
        }
    }

    /// Consumes one chunk if it is all there: `Some(Some(_))` when it completed a message.
    fn next_chunk(&mut self) -> Result<Option<Option<RtmpMessage>>, RtmpError> {
        let at = self.offset;
        let bad = |what: &'static str| RtmpError::Chunk { offset: at, what };
        let buf = &self.buf[..];
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let (csid, mut pos) = match first & 0x3f {
            0 => match buf.get(1) {
                Some(&b) => (64 + u32::from(b), 2),
                None => return Ok(None),
            },
            1 => match buf.get(1..3) {
                Some(b) => (64 + u32::from(u16::from_le_bytes([b[0], b[1]])), 3),
                None => return Ok(None),
            },
            id => (u32::from(id), 1),
        };
        let header_len = [11, 7, 3, 0][usize::from(fmt)];
        let Some(header) = buf.get(pos..pos + header_len) else {
            return Ok(None);
        };
        pos += header_len;
        let stream = self.streams.entry(csid).or_default();
        if fmt != 0 && !stream.started {
            return Err(bad(
                "chunk continues a chunk stream that never had a full header",
            ));
        }
        if fmt != 3 && !stream.partial.is_empty() {
            return Err(bad("new message header before the previous message ended"));
        }
        let u24 = |b: &[u8]| u32::from_be_bytes([0, b[0], b[1], b[2]]);
        let mut next = ChunkStream {
            partial: BytesMut::new(),
            started: true,
            ..*stream
        };
        if fmt <= 2 {
            let ts = u24(&header[0..3]);
            next.has_extended = ts == EXTENDED;
            if fmt == 0 {
                next.timestamp = ts;
                next.delta = 0;
            } else {
                next.delta = ts;
            }
        }
        if fmt <= 1 {
            next.len = u24(&header[3..6]);
            next.type_id = header[6];
            if next.len > MAX_INCOMING_MESSAGE {
                return Err(RtmpError::TooLarge {
                    offset: at,
                    len: next.len,
                    max: MAX_INCOMING_MESSAGE,
                });
            }
        }
        if fmt == 0 {
            next.stream_id = u32::from_le_bytes([header[7], header[8], header[9], header[10]]);
        }
        if next.has_extended {
            let Some(ext) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            let ext = u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]]);
            pos += 4;
            match fmt {
                0 => next.timestamp = ext,
                1 | 2 => next.delta = ext,
                _ => {}
            }
        }
        let starting = stream.partial.is_empty();
        let in_progress = |streams: &HashMap<u32, ChunkStream>| {
            streams.values().filter(|s| !s.partial.is_empty()).count()
        };
        if starting
            && (next.len as usize) > want_first(next.len, self.chunk_size)
            && in_progress(&self.streams) >= MAX_MESSAGES_IN_PROGRESS
        {
            return Err(bad("too many chunk streams with a message in progress"));
        }
        let stream = self.streams.entry(csid).or_default();
        if starting && fmt != 0 {
            next.timestamp = next.timestamp.wrapping_add(next.delta);
        }
        let have = if starting { 0 } else { stream.partial.len() };
        let want = (next.len as usize - have).min(self.chunk_size as usize);
        let Some(piece) = buf.get(pos..pos + want) else {
            return Ok(None);
        };
        // The whole chunk is here: commit the header and consume it.
        let mut partial = std::mem::take(&mut stream.partial);
        if starting {
            partial.reserve((next.len as usize).min(RESERVE_AT_START));
        }
        partial.extend_from_slice(piece);
        let consumed = pos + want;
        let done = partial.len() == next.len as usize;
        let fields = ChunkStream {
            partial: if done {
                BytesMut::new()
            } else {
                partial.split()
            },
            ..next
        };
        *stream = fields;
        self.buf.advance(consumed);
        self.offset += consumed as u64;
        if !done {
            return Ok(Some(None));
        }
        Ok(Some(Some(RtmpMessage {
            csid,
            timestamp: stream.timestamp,
            type_id: stream.type_id,
            stream_id: stream.stream_id,
            payload: partial.freeze(),
        })))
    }
}

/// Bytes of a `len`-byte message that its first chunk carries.
fn want_first(len: u32, chunk_size: u32) -> usize {
    len.min(chunk_size) as usize
}

impl ChunkReader {
    /// Bytes held: unread input plus the space of messages in progress (for tests and
    /// fuzzers that check memory stays bounded).
    pub fn held_bytes(&self) -> usize {
        self.buf.capacity()
            + self
                .streams
                .values()
                .map(|s| s.partial.capacity())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(csid: u32, timestamp: u32, len: usize) -> RtmpMessage {
        RtmpMessage {
            csid,
            timestamp,
            type_id: 9,
            stream_id: 1,
            payload: Bytes::from((0..len).map(|i| i as u8).collect::<Vec<_>>()),
        }
    }

    #[test]
    fn a_message_longer_than_the_chunk_size_is_cut_with_format_3_headers() {
        let mut out = BytesMut::new();
        ChunkWriter::default().write(&message(6, 40, 300), &mut out);
        assert_eq!(&out[..12], &[0x06, 0, 0, 40, 0, 0x01, 0x2C, 9, 1, 0, 0, 0]);
        assert_eq!(out[12 + 128], 0xC6, "format 3, chunk stream 6");
        assert_eq!(out[12 + 128 + 1 + 128], 0xC6);
        assert_eq!(out.len(), 12 + 300 + 2);
    }

    #[test]
    fn written_chunks_read_back_whatever_the_split() {
        let mut writer = ChunkWriter::default();
        let mut out = BytesMut::new();
        let messages = [
            message(3, 0, 20),
            message(6, 33, 300),
            message(70, 0x0100_0000, 260), // two-byte basic header, extended timestamp
            message(400, 5, 0),            // three-byte basic header, empty body
        ];
        writer.set_chunk_size(100);
        for m in &messages {
            writer.write(m, &mut out);
        }
        for split in 0..=out.len() {
            let mut reader = ChunkReader::new(0);
            reader.set_chunk_size(100);
            let mut got = Vec::new();
            for part in [&out[..split], &out[split..]] {
                reader.push(part);
                while let Some(m) = reader.next_message().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, messages, "split at {split}");
        }
    }

    #[test]
    fn compressed_headers_reuse_the_previous_chunk_stream_state() {
        // Format 0 (ts 1000, len 4, type 20, stream 0), then format 2 (delta 10) and format 3.
        let mut bytes = vec![
            0x03, 0, 0x03, 0xE8, 0, 0, 4, 20, 0, 0, 0, 0, b'a', b'b', b'c', b'd',
        ];
        bytes.extend([0x83, 0, 0, 10, 1, 2, 3, 4]);
        bytes.extend([0xC3, 5, 6, 7, 8]);
        let mut reader = ChunkReader::new(0);
        reader.push(&bytes);
        let stamps: Vec<(u32, Bytes)> = std::iter::from_fn(|| reader.next_message().unwrap())
            .map(|m| (m.timestamp, m.payload))
            .collect();
        assert_eq!(stamps[0], (1000, Bytes::from_static(b"abcd")));
        assert_eq!(stamps[1], (1010, Bytes::from_static(&[1, 2, 3, 4])));
        assert_eq!(stamps[2], (1020, Bytes::from_static(&[5, 6, 7, 8])));
    }

    #[test]
    fn announced_sizes_cost_memory_only_as_bytes_arrive_and_few_messages_may_be_open() {
        // Each chunk stream starts a 1 MiB message and sends its first 128-byte chunk.
        let first_chunk = |csid: u8| {
            let mut chunk = vec![csid, 0, 0, 0, 0x10, 0, 0, 9, 1, 0, 0, 0];
            chunk.extend([0xAB; 128]);
            chunk
        };
        let mut reader = ChunkReader::new(0);
        for csid in 3..3 + MAX_MESSAGES_IN_PROGRESS as u8 {
            reader.push(&first_chunk(csid));
            assert_eq!(reader.next_message(), Ok(None));
        }
        let open = MAX_MESSAGES_IN_PROGRESS * RESERVE_AT_START;
        assert!(
            reader.held_bytes() <= open + 4096,
            "{}",
            reader.held_bytes()
        );
        reader.push(&first_chunk(3 + MAX_MESSAGES_IN_PROGRESS as u8));
        let offset = (MAX_MESSAGES_IN_PROGRESS * 140) as u64;
        assert_eq!(
            reader.next_message(),
            Err(RtmpError::Chunk {
                offset,
                what: "too many chunk streams with a message in progress"
            })
        );
        // Short messages on other chunk streams still pass while those are open.
        let mut reader = ChunkReader::new(0);
        for csid in 3..3 + MAX_MESSAGES_IN_PROGRESS as u8 {
            reader.push(&first_chunk(csid));
        }
        let mut out = BytesMut::new();
        ChunkWriter::default().write(&message(40, 0, 100), &mut out);
        reader.push(&out);
        assert_eq!(reader.next_message(), Ok(Some(message(40, 0, 100))));
    }

    #[test]
    fn bad_chunks_are_refused_with_their_offset() {
        let mut reader = ChunkReader::new(3073);
        reader.push(&[0x43, 0, 0, 0, 0, 0, 4, 20]);
        assert_eq!(
            reader.next_message().unwrap_err(),
            RtmpError::Chunk {
                offset: 3073,
                what: "chunk continues a chunk stream that never had a full header"
            }
        );
        let mut reader = ChunkReader::new(0);
        reader.push(&[0x03, 0, 0, 0, 0x10, 0, 1, 20, 0, 0, 0, 0]);
        assert!(matches!(
            reader.next_message(),
            Err(RtmpError::TooLarge {
                len: 0x10_0000..,
                ..
            })
        ));
    }
}
