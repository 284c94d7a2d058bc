//! Where a stream's frames go once the session accepted them: the newest frame for viewers
//! that skip (latest wins), every frame in order for consumers that must not (recording,
//! restreaming), and the frames since the last keyframe so an H.264 viewer starts at once.

use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

use crate::registry::{lock, LatestFrame};

/// How many frames an in-order consumer may fall behind before it loses some (it is told
/// how many, and an H.264 consumer then waits for the next keyframe). About 4 s at 30 fps.
pub const IN_ORDER_BACKLOG: usize = 128;

/// Frames kept from the last keyframe on; past this the group is dropped (a publisher
/// with very long keyframe intervals makes joiners wait for a requested keyframe instead).
const KEYFRAME_GROUP_MAX_FRAMES: usize = 300;
/// The same limit in bytes, so a high-bitrate stream cannot pin much memory.
const KEYFRAME_GROUP_MAX_BYTES: usize = 16 << 20;

/// One stream's frame outputs. Cheap to clone; a session and a transcoder publish through it.
#[derive(Clone)]
pub struct FrameOutlet {
    latest: watch::Sender<Option<LatestFrame>>,
    in_order: broadcast::Sender<LatestFrame>,
    group: Arc<Mutex<KeyframeGroup>>,
}

impl std::fmt::Debug for FrameOutlet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameOutlet")
            .field("in_order_receivers", &self.in_order.receiver_count())
            .finish_non_exhaustive()
    }
}

/// The frames since the newest keyframe, in order (empty until a keyframe came).
#[derive(Debug, Default)]
struct KeyframeGroup {
    frames: Vec<LatestFrame>,
    bytes: usize,
}

impl Default for FrameOutlet {
    fn default() -> Self {
        Self {
            latest: watch::channel(None).0,
            in_order: broadcast::channel(IN_ORDER_BACKLOG).0,
            group: Arc::default(),
        }
    }
}

impl FrameOutlet {
    /// Hands `frame` to every consumer. Never waits: the newest replaces the last, in-order
    /// consumers that fell behind lose their oldest frames.
    pub fn publish(&self, frame: LatestFrame) {
        {
            let mut group = lock(&self.group);
            let follows = group
                .frames
                .last()
                .is_some_and(|last| last.seq.checked_add(1) == Some(frame.seq));
            if frame.is_keyframe {
                group.frames.clear();
                group.bytes = 0;
            }
            if frame.is_keyframe || follows {
                group.bytes += frame.data.len();
                group.frames.push(frame.clone());
                if group.frames.len() > KEYFRAME_GROUP_MAX_FRAMES
                    || group.bytes > KEYFRAME_GROUP_MAX_BYTES
                {
                    group.frames.clear();
                    group.bytes = 0;
                }
            } else {
                // A gap: what follows cannot be decoded from the kept keyframe.
                group.frames.clear();
                group.bytes = 0;
            }
        }
        // No receivers is the normal case when nothing records or restreams.
        let _ = self.in_order.send(frame.clone());
        self.latest.send_replace(Some(frame));
    }

    /// The newest frame, as a watch (latest wins; never queues).
    pub fn watch(&self) -> watch::Receiver<Option<LatestFrame>> {
        self.latest.subscribe()
    }

    /// Every frame from now on, in order, with a bounded backlog of [`IN_ORDER_BACKLOG`].
    pub fn subscribe_in_order(&self) -> broadcast::Receiver<LatestFrame> {
        self.in_order.subscribe()
    }

    /// The newest keyframe and every frame after it, in order: decoding them all gives the
    /// current picture. Empty when no unbroken group is kept.
    pub fn keyframe_group(&self) -> Vec<LatestFrame> {
        lock(&self.group).frames.clone()
    }
}

/// Tells which frames of an in-order subscription repeat a keyframe group taken after
/// subscribing: those numbered within the group, until the first frame past it. Only until
/// then, because a publisher that came back numbers its frames from 0 again, and those are new.
#[derive(Debug, Clone)]
pub struct GroupRepeats(Option<std::ops::RangeInclusive<u64>>);

impl GroupRepeats {
    /// The repeats of `group` (a [`FrameOutlet::keyframe_group`]).
    pub fn of(group: &[LatestFrame]) -> Self {
        Self(group.first().zip(group.last()).map(|(a, b)| a.seq..=b.seq))
    }

    /// Whether the subscription's next frame, numbered `seq`, was in the group.
    pub fn is_repeat(&mut self, seq: u64) -> bool {
        if self.0.as_ref().is_some_and(|seqs| seqs.contains(&seq)) {
            return true;
        }
        self.0 = None;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, is_keyframe: bool) -> LatestFrame {
        LatestFrame {
            seq,
            capture_us: seq,
            received_us: seq,
            codec: 2,
            data: bytes::Bytes::from(vec![0u8; 10]),
            is_keyframe,
            capture_local_us: None,
            wall_message: Default::default(),
        }
    }

    fn seqs(outlet: &FrameOutlet) -> Vec<u64> {
        outlet.keyframe_group().iter().map(|f| f.seq).collect()
    }

    #[test]
    fn the_group_starts_at_the_newest_keyframe_and_breaks_at_a_gap() {
        let outlet = FrameOutlet::default();
        outlet.publish(frame(1, false));
        assert!(
            seqs(&outlet).is_empty(),
            "nothing before the first keyframe"
        );
        for (seq, key) in [(2, true), (3, false), (4, false)] {
            outlet.publish(frame(seq, key));
        }
        assert_eq!(seqs(&outlet), [2, 3, 4]);
        outlet.publish(frame(5, true));
        outlet.publish(frame(6, false));
        assert_eq!(seqs(&outlet), [5, 6]);
        outlet.publish(frame(8, false));
        assert!(
            seqs(&outlet).is_empty(),
            "7 is missing: 8 cannot be decoded"
        );
        outlet.publish(frame(9, false));
        assert!(seqs(&outlet).is_empty());
    }

    #[test]
    fn the_group_is_bounded() {
        let outlet = FrameOutlet::default();
        outlet.publish(frame(0, true));
        for seq in 1..=KEYFRAME_GROUP_MAX_FRAMES as u64 {
            outlet.publish(frame(seq, false));
        }
        assert!(seqs(&outlet).is_empty());
    }

    #[test]
    fn in_order_consumers_see_every_frame_and_are_told_of_losses() {
        let outlet = FrameOutlet::default();
        let mut rx = outlet.subscribe_in_order();
        for seq in 0..(IN_ORDER_BACKLOG as u64 + 5) {
            outlet.publish(frame(seq, seq == 0));
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(5))
        ));
        assert_eq!(rx.try_recv().map(|f| f.seq).ok(), Some(5));
    }

    #[test]
    fn group_repeats_end_at_the_first_new_frame() {
        let group: Vec<LatestFrame> = (100..=130).map(|seq| frame(seq, seq == 100)).collect();
        let mut repeats = GroupRepeats::of(&group);
        assert!(repeats.is_repeat(120) && repeats.is_repeat(130));
        assert!(!repeats.is_repeat(131));
        // The publisher came back and counts from 0: new frames, even inside the old range.
        assert!(!repeats.is_repeat(0) && !repeats.is_repeat(110));
        assert!(!GroupRepeats::of(&[]).is_repeat(0));
    }
}
