//! Entry points for fuzzers (the `fuzz/` crate) and the seed replay test: they live here, next
//! to what they exercise, so they never rot.

use crate::chunk::{ChunkReader, MAX_MESSAGES_IN_PROGRESS};
use crate::{ClientSession, RtmpUrl, HANDSHAKE_SIZE};

/// Feeds `data` to a chunk reader as a server's bytes after the handshake, in pieces of 61
/// bytes, applying Set Chunk Size as a client does. Never panics, and what it holds stays
/// within a small multiple of what it was given plus the room of the messages in progress.
pub fn chunk_reader(data: &[u8]) {
    let mut reader = ChunkReader::new(0);
    let bound = 4 * data.len() + MAX_MESSAGES_IN_PROGRESS * (64 << 10) + (64 << 10);
    for piece in data.chunks(61) {
        reader.push(piece);
        loop {
            match reader.next_message() {
                Ok(Some(message)) => {
                    if message.type_id == 1 {
                        if let Some(size) = message.payload.get(..4) {
                            let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]);
                            reader.set_chunk_size(size & 0x7FFF_FFFF);
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
            assert!(
                reader.held_bytes() <= bound,
                "{} bytes held for {} bytes of input",
                reader.held_bytes(),
                data.len()
            );
        }
    }
}

/// A publishing session that completes the handshake, then is fed `data` as everything the
/// server says (commands, control messages, anything), in pieces whose size comes from the
/// data. Never panics; video sent once it publishes is accepted or refused with an error.
pub fn client_session(data: &[u8]) {
    let Ok(url) = RtmpUrl::parse("rtmp://127.0.0.1/live/fuzz") else {
        return;
    };
    let mut session = ClientSession::new(url, 7);
    let mut c0c1 = Vec::new();
    while let Some(bytes) = session.poll_transmit() {
        c0c1.extend_from_slice(&bytes);
    }
    let mut s0s1s2 = vec![3];
    s0s1s2.extend(std::iter::repeat_n(0x5A, HANDSHAKE_SIZE));
    s0s1s2.extend_from_slice(c0c1.get(1..).unwrap_or_default());
    if session.handle_bytes(&s0s1s2).is_err() {
        return;
    }
    let piece = usize::from(data.first().copied().unwrap_or(1)).max(1);
    for chunk in data.chunks(piece) {
        if session.handle_bytes(chunk).is_err() {
            return;
        }
        while session.poll_transmit().is_some() {}
        while session.poll_event().is_some() {}
        if session.is_publishing() {
            let _ = session.send_metadata(640, 480, 30.0);
            let _ = session.send_video(0, bytes::Bytes::from_static(&[0x17, 0, 0, 0, 0]));
        }
    }
}
