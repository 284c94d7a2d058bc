//! Entry points for fuzzers (the `fuzz/` crate) and for property tests: they live here, next
//! to what they exercise, so they never rot.

use bytes::BytesMut;

use crate::detect::detect;
use crate::framing::{LegacyDecoder, LEN_PREFIX};

/// Decodes `data` as one legacy stream, in chunks whose sizes come from the data itself, and
/// checks the invariants that matter for memory: the buffer never holds more than one frame's
/// limit, the decoder never asks for more, and no frame is larger than the limit.
pub fn decode_stream(data: &[u8], max_frame_bytes: u32) {
    let _ = detect(data);
    let mut decoder = LegacyDecoder::new(max_frame_bytes);
    let limit = LEN_PREFIX + max_frame_bytes as usize;
    let mut buf = BytesMut::new();
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    let len = frame.width as usize * frame.height as usize * 3;
                    assert_eq!(frame.bgr.len(), len, "frame size disagrees with its shape");
                    assert!(len <= max_frame_bytes as usize, "frame past the limit");
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(
            buf.len() <= limit + chunk,
            "buffer grew to {} past the limit {limit}",
            buf.len()
        );
        assert!(
            decoder.bytes_wanted(&buf) <= limit,
            "decoder wants past the limit"
        );
    }
}
