//! Codec-aware latest-frame-wins: which frames a viewer that skips frames may still be sent.
//!
//! A JPEG frame stands alone, so any newest frame will do. An H.264 P-frame decodes only on
//! top of the frame just before it: once a viewer missed one (skipped for it, replaced in
//! its slot, lost upstream), everything up to the next keyframe would decode against a
//! missing reference, a smeared picture. The gate lets such frames pass only in an unbroken
//! run from a keyframe, and says when to ask the publisher for a fresh keyframe.

use vidcast_proto::Codec;

/// What to do with a frame offered to a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send it.
    Send,
    /// Hold it back; if `ask_keyframe`, the viewer waits for a keyframe: ask the publisher.
    Skip {
        /// The chain is broken for this viewer.
        ask_keyframe: bool,
    },
}

/// One viewer's view of one stream's reference chain. Call [`KeyframeGate::offer`] for each
/// frame about to be committed to the viewer (not for frames skipped before that point: the
/// gap in `seq` is how the gate learns of them).
#[derive(Debug, Default, Clone)]
pub(crate) struct KeyframeGate {
    /// The last frame sent, if the viewer can decode what follows it.
    synced_at: Option<u64>,
    /// Frames held back because the chain was broken (for the viewer's counters and tests).
    pub(crate) held_back: u64,
}

impl KeyframeGate {
    /// `replaces_waiting`: sending would replace a frame not yet delivered to the viewer.
    pub(crate) fn offer(
        &mut self,
        codec: Codec,
        seq: u64,
        is_keyframe: bool,
        replaces_waiting: bool,
    ) -> Verdict {
        if codec != Codec::H264 {
            return Verdict::Send;
        }
        if self.synced_at == Some(seq) {
            // The same frame again (a re-subscription replays the current one).
            return Verdict::Skip {
                ask_keyframe: false,
            };
        }
        // A keyframe needs nothing before it, so it may also replace a waiting frame.
        let follows = self
            .synced_at
            .is_some_and(|last| last.checked_add(1) == Some(seq));
        if is_keyframe || (follows && !replaces_waiting) {
            self.synced_at = Some(seq);
            return Verdict::Send;
        }
        self.synced_at = None;
        self.held_back += 1;
        Verdict::Skip { ask_keyframe: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H264: Codec = Codec::H264;

    #[test]
    fn jpeg_frames_always_pass() {
        let mut gate = KeyframeGate::default();
        for seq in [5, 9, 2] {
            assert_eq!(gate.offer(Codec::Jpeg, seq, false, true), Verdict::Send);
        }
    }

    #[test]
    fn h264_waits_for_a_keyframe_at_start_and_after_any_gap() {
        let mut gate = KeyframeGate::default();
        let skip = Verdict::Skip { ask_keyframe: true };
        assert_eq!(gate.offer(H264, 3, false, false), skip, "joined mid-group");
        assert_eq!(gate.offer(H264, 4, true, false), Verdict::Send);
        assert_eq!(gate.offer(H264, 5, false, false), Verdict::Send);
        assert_eq!(gate.offer(H264, 7, false, false), skip, "6 was skipped");
        assert_eq!(gate.offer(H264, 8, false, false), skip, "still broken");
        assert_eq!(gate.offer(H264, 9, true, true), Verdict::Send);
        assert_eq!(gate.offer(H264, 10, false, true), skip, "would drop 9");
        assert_eq!(gate.offer(H264, 11, false, false), skip);
        assert_eq!(gate.offer(H264, 12, true, false), Verdict::Send);
        assert_eq!(
            gate.offer(H264, 12, true, false),
            Verdict::Skip {
                ask_keyframe: false
            },
            "a replay is not a gap"
        );
        assert_eq!(gate.offer(H264, 13, false, false), Verdict::Send);
        assert_eq!(gate.held_back, 5);
    }
}
