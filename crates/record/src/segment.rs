//! One stream's recording as a state machine: frames in, file actions out. It picks the
//! container, starts a segment at the first usable frame, rolls over after the segment length
//! (at a keyframe for H.264, or when the parameter sets change), waits for a keyframe after a
//! gap, and backs off after a write error. Time comes only from the frames.
//!
//! Call order: [`Recorder::handle_frame`] per frame, [`Recorder::handle_write_error`] when
//! applying an output failed, [`Recorder::finish`] at the end; after each call drain
//! [`Recorder::poll_output`] in order.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use vidcast_h264::{ChainGate, Pass};

use crate::h264::{to_length_prefixed, AvcConfig};
use crate::mkv::MkvWriter;
use crate::mp4::Fmp4Writer;
use crate::name::{sanitize, utc_stamp};

/// After a failed write, frames are dropped for this long before a new file is tried (a
/// full disk is not retried 30 times a second).
pub const RETRY_AFTER_ERROR_US: u64 = 5_000_000;

pub use vidcast_h264::Codec;

/// The file extension of a codec's recordings: Matroska (`V_MJPEG`) for JPEG, fragmented MP4
/// for H.264.
pub fn extension(codec: Codec) -> &'static str {
    match codec {
        Codec::Jpeg => "mkv",
        Codec::H264 => "mp4",
    }
}

/// What the recorder knows about a stream before its first frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMeta {
    /// Client name (sanitised into the directory name).
    pub name: String,
    /// Codec.
    pub codec: Codec,
    /// Announced width (H.264 files take the SPS's instead).
    pub width: u16,
    /// Announced height.
    pub height: u16,
}

/// One frame to record.
#[derive(Debug, Clone)]
pub struct RecFrame {
    /// Publisher's sequence number: a gap means frames were lost.
    pub seq: u64,
    /// When it was captured, µs since the Unix epoch on the recording clock.
    pub timestamp_us: u64,
    /// Decodable on its own.
    pub is_keyframe: bool,
    /// JPEG file or Annex B access unit.
    pub data: Bytes,
}

/// A file action, in the order it must happen.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Create a new file at `path` (relative to the recording directory) and make it current.
    Open {
        /// `<sanitised name>/<UTC start>.<ext>`.
        path: PathBuf,
    },
    /// Append to the current file: a header or a whole fragment (sync it: this is what a
    /// crash may lose at most).
    Write(Vec<u8>),
    /// Rewrite bytes already written in the current file.
    Patch {
        /// From the start of the file.
        offset: u64,
        /// The new bytes.
        bytes: Vec<u8>,
    },
    /// Close the current file: it is complete.
    Close,
    /// The stream's publisher should send a keyframe soon (recording waits for one).
    NeedKeyframe,
}

/// What happened to the frames handed in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderCounters {
    /// Frames written to a segment.
    pub frames: u64,
    /// H.264 frames dropped while waiting for a keyframe (at the start, after a gap).
    pub waiting_for_keyframe: u64,
    /// Frames dropped while backing off after a write error.
    pub lost_to_errors: u64,
    /// Segments started.
    pub segments: u64,
}

enum Muxer {
    Mp4(Fmp4Writer),
    Mkv(MkvWriter),
}

struct OpenSegment {
    muxer: Muxer,
    start_us: u64,
}

/// One stream's recording (sans-IO). See the module documentation for the call order.
pub struct Recorder {
    meta: StreamMeta,
    dir_name: String,
    segment_us: u64,
    open: Option<OpenSegment>,
    /// The H.264 chain as written: a file starts at a keyframe, and after a gap the next
    /// frames wait for one.
    chain: ChainGate,
    last_ts: u64,
    retry_at_us: Option<u64>,
    outputs: VecDeque<Output>,
    counters: RecorderCounters,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("meta", &self.meta)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder for one connection of a stream, cutting segments of `segment` length.
    pub fn new(meta: StreamMeta, segment: Duration) -> Self {
        Self {
            dir_name: sanitize(&meta.name),
            meta,
            segment_us: u64::try_from(segment.as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
            open: None,
            chain: ChainGate::new(),
            last_ts: 0,
            retry_at_us: None,
            outputs: VecDeque::new(),
            counters: RecorderCounters::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> RecorderCounters {
        self.counters
    }

    /// The next file action, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Records one frame (or drops it, counted, when it cannot be decoded or after an error).
    pub fn handle_frame(&mut self, frame: RecFrame) {
        let ts = frame.timestamp_us;
        self.last_ts = ts;
        if let Some(retry_at) = self.retry_at_us {
            if ts < retry_at {
                self.counters.lost_to_errors += 1;
                return;
            }
            self.retry_at_us = None;
            self.chain.break_chain();
        }
        let mut avc = None;
        if self.meta.codec == Codec::H264 {
            if frame.is_keyframe {
                avc = AvcConfig::from_access_unit(&frame.data);
            }
            // A keyframe starts a chain only where it can be written: with its parameter
            // sets, or into the file already open.
            let can_start = avc.is_some() || (frame.is_keyframe && self.open.is_some());
            match self.chain.offer(self.meta.codec, frame.seq, can_start) {
                Pass::Use => {}
                // The frame just written, again: nothing new.
                Pass::Repeat => return,
                Pass::Wait { first } => {
                    self.counters.waiting_for_keyframe += 1;
                    if first {
                        self.outputs.push_back(Output::NeedKeyframe);
                    }
                    return;
                }
            }
        }
        if self.should_roll(&frame, avc.as_ref()) {
            self.close_segment();
            self.open_segment(ts, avc);
        }
        let Some(open) = &mut self.open else {
            // Only H.264 without parameter sets can find no file open.
            self.counters.waiting_for_keyframe += 1;
            return;
        };
        let written = match &mut open.muxer {
            Muxer::Mp4(w) => w.push(ts, frame.is_keyframe, to_length_prefixed(&frame.data)),
            Muxer::Mkv(w) => w.push(ts, frame.data),
        };
        if let Some(bytes) = written {
            self.outputs.push_back(Output::Write(bytes));
        }
        self.counters.frames += 1;
    }

    /// Applying an output failed (disk full, directory gone…): the current file is given up,
    /// pending actions are dropped, and frames are dropped for [`RETRY_AFTER_ERROR_US`]
    /// before a new file is tried.
    pub fn handle_write_error(&mut self) {
        self.open = None;
        self.outputs.clear();
        self.retry_at_us = Some(self.last_ts.saturating_add(RETRY_AFTER_ERROR_US));
    }

    /// The stream ended: the last fragment is written and the file closed.
    pub fn finish(&mut self) {
        self.close_segment();
    }

    fn should_roll(&self, frame: &RecFrame, avc: Option<&AvcConfig>) -> bool {
        let Some(open) = &self.open else {
            return true;
        };
        let changed = match (&open.muxer, avc) {
            (Muxer::Mp4(w), Some(avc)) => w.config() != avc,
            _ => false,
        };
        let due = frame.timestamp_us.saturating_sub(open.start_us) >= self.segment_us;
        // A new H.264 file starts at a keyframe that brings its parameter sets (avcC needs
        // them); a keyframe without them continues the file.
        let can_start = match self.meta.codec {
            Codec::H264 => frame.is_keyframe && avc.is_some(),
            Codec::Jpeg => true,
        };
        changed || (due && can_start)
    }

    fn open_segment(&mut self, start_us: u64, avc: Option<AvcConfig>) {
        let mut header = Vec::new();
        let muxer = match (self.meta.codec, avc) {
            (Codec::H264, Some(avc)) => {
                let w = Fmp4Writer::new(avc, start_us);
                header = w.init_segment();
                Muxer::Mp4(w)
            }
            // should_roll only asks for a new H.264 segment at a keyframe with parameter sets.
            (Codec::H264, None) => return,
            (Codec::Jpeg, _) => {
                let mut w = MkvWriter::new(self.meta.width, self.meta.height, start_us);
                header.extend(w.header());
                Muxer::Mkv(w)
            }
        };
        let file = format!("{}.{}", utc_stamp(start_us), extension(self.meta.codec));
        self.outputs.push_back(Output::Open {
            path: PathBuf::from(&self.dir_name).join(file),
        });
        self.outputs.push_back(Output::Write(header));
        self.open = Some(OpenSegment { muxer, start_us });
        self.counters.segments += 1;
    }

    fn close_segment(&mut self) {
        let Some(mut open) = self.open.take() else {
            return;
        };
        match &mut open.muxer {
            Muxer::Mp4(w) => self.outputs.extend(w.finish().map(Output::Write)),
            Muxer::Mkv(w) => {
                let (cluster, patches) = w.finish();
                self.outputs.extend(cluster.map(Output::Write));
                self.outputs
                    .extend(patches.into_iter().map(|p| Output::Patch {
                        offset: p.offset,
                        bytes: p.bytes,
                    }));
            }
        }
        self.outputs.push_back(Output::Close);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: [u8; 27] = [
        0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00,
        0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0x08, 0x3c, 0x60, 0xc6, 0x58,
    ];

    fn h264(seq: u64, ms: u64, key: bool) -> RecFrame {
        let mut data = Vec::new();
        if key {
            data.extend_from_slice(&[0, 0, 0, 1]);
            data.extend_from_slice(&SPS);
            data.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
        }
        data.extend_from_slice(&[0, 0, 0, 1, if key { 0x65 } else { 0x41 }, 0x88]);
        RecFrame {
            seq,
            timestamp_us: 1_795_525_500_000_000 + ms * 1000,
            is_keyframe: key,
            data: Bytes::from(data),
        }
    }

    fn meta(codec: Codec) -> StreamMeta {
        StreamMeta {
            name: "cam 1".into(),
            codec,
            width: 64,
            height: 48,
        }
    }

    /// The outputs as short words: open:<file>, write, patch, close, key.
    fn drain(r: &mut Recorder) -> Vec<String> {
        std::iter::from_fn(|| r.poll_output())
            .map(|o| match o {
                Output::Open { path } => format!("open:{}", path.display()),
                Output::Write(_) => "write".into(),
                Output::Patch { .. } => "patch".into(),
                Output::Close => "close".into(),
                Output::NeedKeyframe => "key".into(),
            })
            .collect()
    }

    #[test]
    fn h264_waits_for_a_keyframe_then_rolls_at_keyframes_after_the_segment_length() {
        let mut r = Recorder::new(meta(Codec::H264), Duration::from_secs(2));
        r.handle_frame(h264(0, 0, false));
        r.handle_frame(h264(1, 33, false));
        assert_eq!(drain(&mut r), ["key"], "asked once");
        r.handle_frame(h264(2, 66, true));
        assert_eq!(
            drain(&mut r),
            ["open:cam_1/2026-11-24T13-05-00Z.mp4", "write"]
        );
        // Past 2 s but not a keyframe: same segment (fragments only).
        r.handle_frame(h264(3, 2100, false));
        assert_eq!(drain(&mut r), ["write"], "the first fragment, cut at 1 s");
        r.handle_frame(h264(4, 2200, true));
        assert_eq!(
            drain(&mut r),
            [
                "write",
                "close",
                "open:cam_1/2026-11-24T13-05-02Z.mp4",
                "write"
            ]
        );
        r.finish();
        assert_eq!(drain(&mut r), ["write", "close"]);
        let c = r.counters();
        assert_eq!((c.frames, c.waiting_for_keyframe, c.segments), (3, 2, 2));
    }

    #[test]
    fn a_due_keyframe_without_parameter_sets_continues_the_file() {
        let mut r = Recorder::new(meta(Codec::H264), Duration::from_secs(2));
        r.handle_frame(h264(0, 0, true));
        let bare_keyframe = RecFrame {
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88]),
            ..h264(1, 2100, true)
        };
        r.handle_frame(bare_keyframe);
        r.handle_frame(h264(2, 2133, false));
        assert_eq!(
            drain(&mut r),
            ["open:cam_1/2026-11-24T13-05-00Z.mp4", "write", "write"],
            "no new file, frames go on"
        );
        assert_eq!(r.counters().frames, 3);
        r.handle_frame(h264(3, 2166, true));
        assert_eq!(
            drain(&mut r)[1..3],
            [
                "close".to_owned(),
                "open:cam_1/2026-11-24T13-05-02Z.mp4".to_owned()
            ]
        );
    }

    #[test]
    fn a_gap_in_h264_skips_to_the_next_keyframe_within_the_segment() {
        let mut r = Recorder::new(meta(Codec::H264), Duration::from_secs(60));
        r.handle_frame(h264(0, 0, true));
        r.handle_frame(h264(1, 33, false));
        r.handle_frame(h264(3, 99, false));
        r.handle_frame(h264(4, 133, false));
        assert_eq!(
            drain(&mut r),
            ["open:cam_1/2026-11-24T13-05-00Z.mp4", "write", "key"]
        );
        r.handle_frame(h264(5, 166, true));
        assert_eq!(
            drain(&mut r),
            ["write"],
            "fragment before the keyframe; no new file"
        );
        assert_eq!(r.counters().waiting_for_keyframe, 2);
    }

    #[test]
    fn jpeg_rolls_on_time_and_finishes_with_patches() {
        let mut r = Recorder::new(meta(Codec::Jpeg), Duration::from_secs(1));
        for i in 0..25u64 {
            let mut f = h264(i, i * 50, false);
            f.data = Bytes::from_static(&[0xff, 0xd8, 0xff, 0xd9]);
            r.handle_frame(f);
        }
        r.finish();
        let out = drain(&mut r);
        let opens: Vec<_> = out.iter().filter(|o| o.starts_with("open:")).collect();
        assert_eq!(opens.len(), 2);
        assert!(opens[0].ends_with(".mkv"), "{opens:?}");
        assert_eq!(out.iter().filter(|o| *o == "close").count(), 2);
        assert_eq!(&out[out.len() - 3..], ["patch", "patch", "close"]);
    }

    #[test]
    fn a_write_error_backs_off_then_starts_a_new_file() {
        let mut r = Recorder::new(meta(Codec::H264), Duration::from_secs(60));
        r.handle_frame(h264(0, 0, true));
        drain(&mut r);
        r.handle_write_error();
        r.handle_frame(h264(1, 1000, false));
        r.handle_frame(h264(2, 4000, true));
        assert_eq!(drain(&mut r), Vec::<String>::new());
        r.handle_frame(h264(3, 5100, false));
        assert_eq!(drain(&mut r), ["key"], "back, but mid-group");
        r.handle_frame(h264(4, 6000, true));
        assert_eq!(
            drain(&mut r),
            ["open:cam_1/2026-11-24T13-05-06Z.mp4", "write"]
        );
        assert_eq!(r.counters().lost_to_errors, 2);
    }
}
