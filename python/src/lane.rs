//! One H.264 stream's decoding on a thread of its own (`vidcast-h264-ID`), so a `Receiver`'s
//! streams decode side by side on every core instead of one after another on the network
//! thread (at 16 × 30 fps that one thread was the bottleneck).
//!
//! A decoder needs every frame of its chain, in order: the mailbox keeps them in order and
//! never drops one alone. When it is full (this thread fell behind) it drops everything it
//! holds; the decoder sees the sequence gap, counts it as skipped and waits for the next
//! keyframe ([`StreamDecoder`]), so no picture is ever decoded against a missing reference.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use vidcast_proto::{Codec, Frame, Timestamp};
use vidcast_viewer::decode::{Arrival, StreamDecoder};

use crate::lock;

/// Frames a lane holds before it drops its backlog: one second at 30 fps. A thread that far
/// behind would hand out pictures a second old; starting again at a keyframe is better.
const MAX_QUEUED_FRAMES: usize = 30;

/// A compressed frame as it arrived, with what the receiver reports about it.
#[derive(Debug)]
pub(crate) struct Arrived {
    pub frame: Frame,
    pub received_at: Timestamp,
    pub latency_us: Option<u64>,
}

#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Arrived>,
    is_closed: bool,
}

#[derive(Debug, Default)]
struct Mailbox {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Mailbox {
    /// The next frame in order; `None` once closed (frames still queued are dropped).
    fn next(&self) -> Option<Arrived> {
        let mut queue = lock(&self.queue);
        loop {
            if queue.is_closed {
                return None;
            }
            if let Some(arrived) = queue.frames.pop_front() {
                return Some(arrived);
            }
            queue = self.wake.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A decoding thread for one H.264 stream, fed in arrival order with [`DecodeLane::post`].
/// Dropping it ends the thread (and waits for the frame it is decoding).
#[derive(Debug)]
pub(crate) struct DecodeLane {
    mailbox: Arc<Mailbox>,
    thread: Option<JoinHandle<()>>,
}

impl DecodeLane {
    /// Starts the thread for stream `stream_id`; `deliver` is called on it with each frame
    /// and what decoding it gave, in order.
    pub fn spawn(
        stream_id: u64,
        mut deliver: impl FnMut(Arrived, Arrival) + Send + 'static,
    ) -> std::io::Result<Self> {
        let mailbox = Arc::new(Mailbox::default());
        let inbox = Arc::clone(&mailbox);
        let thread = std::thread::Builder::new()
            .name(format!("vidcast-h264-{stream_id}"))
            .spawn(move || {
                let mut decoder = StreamDecoder::default();
                while let Some(arrived) = inbox.next() {
                    let frame = &arrived.frame;
                    let arrival = decoder.offer(
                        stream_id,
                        Some(Codec::H264),
                        frame.seq,
                        frame.is_keyframe,
                        &frame.data,
                    );
                    deliver(arrived, arrival);
                }
            })?;
        Ok(Self {
            mailbox,
            thread: Some(thread),
        })
    }

    /// Queues a frame for decoding; returns how many queued frames it dropped to make room
    /// (all of them: the chain is broken anyway).
    pub fn post(&self, arrived: Arrived) -> usize {
        let mut queue = lock(&self.mailbox.queue);
        let dropped = if queue.frames.len() >= MAX_QUEUED_FRAMES {
            let n = queue.frames.len();
            queue.frames.clear();
            n
        } else {
            0
        };
        queue.frames.push_back(arrived);
        drop(queue);
        self.mailbox.wake.notify_one();
        dropped
    }
}

impl Drop for DecodeLane {
    fn drop(&mut self) {
        lock(&self.mailbox.queue).is_closed = true;
        self.mailbox.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            // A panic in the decoder ends only this stream's pictures; nothing to pass on.
            let _ = thread.join();
        }
    }
}
