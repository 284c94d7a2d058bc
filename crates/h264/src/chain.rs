//! The reference-chain rule, once for every consumer of H.264 frames.
//!
//! A JPEG frame stands alone, so any frame will do. An H.264 P-frame decodes only on top of
//! the frame just before it: once a consumer missed one (skipped, replaced in a slot, lost
//! upstream, not decoded, not written), everything up to the next keyframe would decode
//! against a missing reference, a smeared picture. A [`ChainGate`] lets such frames through
//! only in an unbroken run from a keyframe, and says when the wait for a keyframe began, so
//! the consumer can ask the publisher for one.

use crate::Codec;

/// What to do with a frame offered to a [`ChainGate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Use it (send, decode, write): it decodes on what came before.
    Use,
    /// The frame offered last, again (a re-subscription replays the current frame): leave
    /// it out; the chain is not broken.
    Repeat,
    /// Leave it out: the chain is broken until a keyframe. `first`: the first frame held
    /// back in this wait (the moment to ask the publisher for a keyframe, for a consumer
    /// that asks once per wait).
    Wait {
        /// No frame was held back since the chain broke.
        first: bool,
    },
}

/// One consumer's view of one stream's reference chain (sans-IO: sequence numbers and
/// keyframe flags in, a [`Pass`] out).
///
/// Call [`ChainGate::offer`] for each frame as it reaches the consumer, in order; the gap
/// in `seq` is how the gate learns of frames lost before that point. Call
/// [`ChainGate::break_chain`] when a frame is lost after it (replaced before delivery, not
/// decoded, not written).
#[derive(Debug, Clone)]
pub struct ChainGate {
    /// The last frame offered.
    last_seq: Option<u64>,
    /// Frames since the last keyframe are all there: the next one decodes if it follows.
    synced: bool,
    /// A frame was held back since the chain broke.
    waited: bool,
    /// Frames held back because the chain was broken (for counters and tests).
    held_back: u64,
}

impl Default for ChainGate {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainGate {
    /// A gate for a consumer that joins a stream: H.264 waits for a keyframe first.
    pub fn new() -> Self {
        Self {
            last_seq: None,
            synced: false,
            waited: false,
            held_back: 0,
        }
    }

    /// A gate that trusts the first frame it sees to continue the chain (a publisher's
    /// first frame: nothing was lost before the hub saw it). Gaps after it count as usual.
    pub fn trusting_first_frame() -> Self {
        Self {
            synced: true,
            ..Self::new()
        }
    }

    /// Offers frame `seq` of a stream of `codec`; see [`Pass`].
    pub fn offer(&mut self, codec: Codec, seq: u64, is_keyframe: bool) -> Pass {
        let last = self.last_seq.replace(seq);
        if !codec.has_reference_chain() {
            // A codec change (a new publisher under the name) starts a new chain.
            self.synced = false;
            return Pass::Use;
        }
        if last == Some(seq) {
            return Pass::Repeat;
        }
        // Checked: a publisher may number a frame u64::MAX.
        let follows = match last {
            Some(last) => last.checked_add(1) == Some(seq),
            None => self.synced,
        };
        if is_keyframe || (self.synced && follows) {
            self.synced = true;
            self.waited = false;
            return Pass::Use;
        }
        self.synced = false;
        self.held_back = self.held_back.saturating_add(1);
        let first = !self.waited;
        self.waited = true;
        Pass::Wait { first }
    }

    /// A frame after the last one offered was lost: the next frame waits for a keyframe.
    pub fn break_chain(&mut self) {
        self.synced = false;
    }

    /// The sequence number of the last frame offered.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// Whether frames that follow the last one are used (the chain is whole).
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Frames held back so far because the chain was broken.
    pub fn held_back(&self) -> u64 {
        self.held_back
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H264: Codec = Codec::H264;

    #[test]
    fn jpeg_frames_always_pass() {
        let mut gate = ChainGate::new();
        for seq in [5, 9, 2, 2] {
            assert_eq!(gate.offer(Codec::Jpeg, seq, false), Pass::Use);
        }
        assert_eq!(gate.last_seq(), Some(2));
    }

    #[test]
    fn h264_waits_for_a_keyframe_at_start_and_after_any_gap() {
        let mut gate = ChainGate::new();
        let first = Pass::Wait { first: true };
        let again = Pass::Wait { first: false };
        assert_eq!(gate.offer(H264, 3, false), first, "joined mid-group");
        assert_eq!(gate.offer(H264, 4, true), Pass::Use);
        assert_eq!(gate.offer(H264, 5, false), Pass::Use);
        assert_eq!(gate.offer(H264, 7, false), first, "6 was skipped");
        assert_eq!(gate.offer(H264, 8, false), again, "still broken");
        assert_eq!(gate.offer(H264, 9, true), Pass::Use);
        gate.break_chain();
        assert_eq!(gate.offer(H264, 10, false), first, "9 was lost downstream");
        assert_eq!(gate.offer(H264, 11, false), again);
        assert_eq!(gate.offer(H264, 12, true), Pass::Use);
        assert_eq!(
            gate.offer(H264, 12, true),
            Pass::Repeat,
            "a replay is not a gap"
        );
        assert_eq!(gate.offer(H264, 13, false), Pass::Use);
        assert_eq!(gate.held_back(), 5);
    }

    #[test]
    fn a_trusted_first_frame_continues_the_chain() {
        let mut gate = ChainGate::trusting_first_frame();
        assert_eq!(gate.offer(H264, 7, false), Pass::Use);
        assert_eq!(gate.offer(H264, 8, false), Pass::Use);
        assert_eq!(gate.offer(H264, 10, false), Pass::Wait { first: true });
    }

    #[test]
    fn the_last_sequence_number_does_not_overflow() {
        let mut gate = ChainGate::new();
        assert_eq!(gate.offer(H264, u64::MAX, true), Pass::Use);
        assert_eq!(gate.offer(H264, 0, false), Pass::Wait { first: true });
    }

    #[test]
    fn a_codec_change_starts_a_new_chain() {
        let mut gate = ChainGate::new();
        assert_eq!(gate.offer(H264, 1, true), Pass::Use);
        assert_eq!(gate.offer(Codec::Jpeg, 2, false), Pass::Use);
        assert_eq!(gate.offer(H264, 3, false), Pass::Wait { first: true });
    }

    /// A frame offered to the gate, and whether one was lost right after it.
    fn frames() -> impl Strategy<Value = Vec<(u64, bool, bool)>> {
        proptest::collection::vec(
            (0u64..3, any::<bool>(), proptest::bool::weighted(0.1)),
            0..80,
        )
        .prop_map(|steps| {
            // Sequence numbers go up by a step of 0 (a replay), 1 or 2 (a gap).
            let mut seq = 0;
            steps
                .into_iter()
                .map(|(step, key, lost)| {
                    seq += step;
                    (seq, key, lost)
                })
                .collect()
        })
    }

    proptest! {
        /// Every frame used is a keyframe or the frame right after one used, with nothing
        /// lost between; a keyframe is always used (unless a replay); exactly one `first`
        /// per wait.
        #[test]
        fn only_unbroken_runs_from_a_keyframe_are_used(frames in frames()) {
            let mut gate = ChainGate::new();
            let mut used: Option<u64> = None;
            let mut lost_since_used = false;
            let mut waiting = false;
            let mut held = 0;
            for (seq, key, lost) in frames {
                let was_last = gate.last_seq() == Some(seq);
                match gate.offer(H264, seq, key) {
                    Pass::Use => {
                        prop_assert!(key || (used.map(|u| u + 1) == Some(seq) && !lost_since_used));
                        used = Some(seq);
                        lost_since_used = false;
                        waiting = false;
                    }
                    Pass::Repeat => prop_assert!(was_last),
                    Pass::Wait { first } => {
                        prop_assert!(!key, "a keyframe is used");
                        prop_assert_eq!(first, !waiting);
                        waiting = true;
                        held += 1;
                        used = None;
                    }
                }
                if lost {
                    gate.break_chain();
                    lost_since_used = true;
                }
            }
            prop_assert_eq!(gate.held_back(), held);
        }
    }
}
