//! Entry points for fuzzers (the `fuzz/` crate) and for property tests: they live here, next
//! to what they exercise, so they never rot.

use std::time::Duration;

use bytes::BytesMut;

use crate::framing::Decoder;
use crate::hub::{HubConfig, HubConnection, HubEvent};
use crate::message::{HEADER_LEN, MAGIC};
use crate::time::Timestamp;

/// Decodes `data` as one stream, in chunks whose sizes come from the data itself, and checks
/// the invariant that matters for memory: the buffer never holds more than one message's limit.
pub fn decode_stream(data: &[u8], max_frame_bytes: u32) {
    let mut decoder = Decoder::new(max_frame_bytes);
    let limit =
        MAGIC.len() + HEADER_LEN + crate::message::STREAM_FRAME_META_LEN + max_frame_bytes as usize;
    let mut buf = BytesMut::new();
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(
            buf.len() <= limit + chunk,
            "buffer grew to {} past the limit {limit}",
            buf.len()
        );
    }
}

/// Runs the hub's end of a connection on `data`, accepting any hello, with time advancing a
/// little per chunk; it must never panic and must end closed or waiting.
pub fn hub_session(data: &[u8]) {
    let mut now = Timestamp::from_micros(1_000_000);
    let mut conn = HubConnection::new(
        HubConfig {
            max_frame_bytes: 1 << 16,
            ..HubConfig::default()
        },
        now,
    );
    let mut buf = BytesMut::new();
    for piece in data.chunks(97) {
        buf.extend_from_slice(piece);
        conn.handle_data(now, &mut buf);
        while let Some(event) = conn.poll_event() {
            if let HubEvent::Hello(_) = event {
                conn.accept(1, now);
            }
        }
        while conn.poll_transmit().is_some() {}
        now = now.saturating_add(Duration::from_millis(u64::from(piece[0] % 200)));
        conn.handle_timeout(now);
    }
    conn.handle_eof(&buf);
    while conn.poll_event().is_some() {}
    while conn.poll_transmit().is_some() {}
    assert!(conn.is_closed());
}
