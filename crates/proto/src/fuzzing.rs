//! Entry points for fuzzers (the `fuzz/` crate) and for property tests: they live here, next
//! to what they exercise, so they never rot.

use std::time::Duration;

use bytes::BytesMut;

use crate::client::{ClientConnection, ClientEvent};
use crate::connection::Timing;
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

/// Where the session fuzzers start the clock.
const START: Timestamp = Timestamp::from_micros(1_000_000);

/// Either end of a connection as the session fuzzers drive it.
trait Session {
    /// Takes received bytes and reacts to what they caused (accepting, acking).
    fn feed(&mut self, now: Timestamp, buf: &mut BytesMut);
    /// Runs timers.
    fn tick(&mut self, now: Timestamp);
    /// The peer closed; drains everything and tells whether the connection is closed.
    fn finish(&mut self, buf: &[u8]) -> bool;
}

/// Feeds `data` in chunks, with time advancing a little per chunk (chosen by the data); the
/// session must never panic and must end closed.
fn run_session(session: &mut impl Session, data: &[u8]) {
    let mut now = START;
    let mut buf = BytesMut::new();
    for piece in data.chunks(97) {
        buf.extend_from_slice(piece);
        session.feed(now, &mut buf);
        now = now.saturating_add(Duration::from_millis(u64::from(piece[0] % 200)));
        session.tick(now);
    }
    assert!(session.finish(&buf));
}

impl Session for HubConnection {
    fn feed(&mut self, now: Timestamp, buf: &mut BytesMut) {
        self.handle_data(now, buf);
        while let Some(event) = self.poll_event() {
            if let HubEvent::Hello(_) = event {
                self.accept(1, now);
            }
        }
        while self.poll_transmit().is_some() {}
    }

    fn tick(&mut self, now: Timestamp) {
        self.handle_timeout(now);
    }

    fn finish(&mut self, buf: &[u8]) -> bool {
        self.handle_eof(buf);
        while self.poll_event().is_some() {}
        while self.poll_transmit().is_some() {}
        self.is_closed()
    }
}

impl Session for ClientConnection {
    fn feed(&mut self, now: Timestamp, buf: &mut BytesMut) {
        self.handle_data(now, buf);
        while let Some(event) = self.poll_event() {
            if let ClientEvent::StreamFrame {
                stream_id, frame, ..
            } = event
            {
                self.ack_frame(stream_id, frame.seq);
            }
        }
        while self.poll_transmit().is_some() {}
    }

    fn tick(&mut self, now: Timestamp) {
        self.handle_timeout(now);
    }

    fn finish(&mut self, buf: &[u8]) -> bool {
        self.handle_eof(buf);
        while self.poll_event().is_some() {}
        while self.poll_transmit().is_some() {}
        self.is_closed()
    }
}

/// Runs the hub's end of a connection on `data`, accepting any hello, with time advancing a
/// little per chunk; it must never panic and must end closed or waiting.
pub fn hub_session(data: &[u8]) {
    let config = HubConfig {
        max_frame_bytes: 1 << 16,
        ..HubConfig::default()
    };
    run_session(&mut HubConnection::new(config, START), data);
}

/// Runs a viewer's end of a connection on `data` as if the hub had sent it, acking every frame,
/// with time advancing a little per chunk; it must never panic and must end closed.
pub fn viewer_session(data: &[u8]) {
    let mut viewer = ClientConnection::viewer("fuzz", "", Timing::default(), START);
    run_session(&mut viewer, data);
}
