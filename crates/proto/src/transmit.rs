//! Chunks handed out by `poll_transmit` on their way to the socket.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};

/// Small chunks (control messages, a frame's header) are gathered with what follows them into
/// one vectored write, so a frame's header never travels in a packet of its own.
const GATHER_BELOW_BYTES: usize = 256;

/// Outgoing chunks and how far the socket has taken them. Drivers fill it from
/// `poll_transmit`, write [`slices`](Self::slices) with one vectored write, then
/// [`advance`](Self::advance) by what the socket took.
#[derive(Debug, Default)]
pub struct WriteQueue {
    chunks: VecDeque<Bytes>,
    queued_bytes: usize,
}

impl WriteQueue {
    /// Pulls chunks from `next` while what is queued is small. Pulling a frame's header commits
    /// the frame, so this stops as soon as a large chunk (a picture) is queued.
    pub fn fill(&mut self, mut next: impl FnMut() -> Option<Bytes>) {
        while self.queued_bytes < GATHER_BELOW_BYTES {
            match next() {
                Some(chunk) if chunk.is_empty() => {}
                Some(chunk) => {
                    self.queued_bytes += chunk.len();
                    self.chunks.push_back(chunk);
                }
                None => break,
            }
        }
    }

    /// Whether nothing is waiting to be written.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The queued bytes as slices for a vectored write (at most 8).
    pub fn slices(&self) -> Vec<IoSlice<'_>> {
        self.chunks
            .iter()
            .take(8)
            .map(|c| IoSlice::new(c))
            .collect()
    }

    /// Forgets the first `n` bytes, which the socket took.
    pub fn advance(&mut self, mut n: usize) {
        self.queued_bytes = self.queued_bytes.saturating_sub(n);
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if n >= front.len() {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    /// Drops everything queued (the socket is gone).
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.queued_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_small_chunks_and_stops_after_a_picture() {
        let mut source = vec![
            Bytes::from_static(b"pong"),
            Bytes::from_static(b"head"),
            Bytes::from(vec![0u8; 1000]),
            Bytes::from_static(b"next frame head"),
        ]
        .into_iter();
        let mut q = WriteQueue::default();
        q.fill(|| source.next());
        assert_eq!(q.slices().len(), 3);
        q.advance(6);
        assert_eq!(q.slices()[0].len(), 2);
        q.advance(2 + 1000);
        assert!(q.is_empty());
        q.fill(|| source.next());
        assert_eq!(q.slices().len(), 1);
    }
}
