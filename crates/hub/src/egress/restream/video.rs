//! The video a push sends: H.264 passed through behind the chain gate, or JPEG transcoded to
//! H.264; packaged for RTMP with timestamps that never go back.

use std::time::Duration;

use bytes::Bytes;
use vidcast_h264::{ChainGate, Pass};
use vidcast_media::{decode_jpeg, Encoder, H264Config, H264Encoder, MediaError, RawFrame};
use vidcast_proto::Codec;
use vidcast_rtmp::flv::AvcPackager;

use super::RestreamError;
use crate::stream::registry::LatestFrame;

/// Capture times further apart than this between two frames mean the clock changed, not
/// that time passed (frames are at most a few seconds apart on a live stream).
const CLOCK_JUMP_US: u64 = 10_000_000;

/// One connection's video state: the H.264 chain (passed through, or made from JPEG), the
/// packager and the timestamp base.
pub(super) struct Video {
    codec: Codec,
    pub(super) packager: AvcPackager,
    /// H.264 passthrough: the chain as sent (a keyframe first, and again after a gap).
    chain: ChainGate,
    /// A frame was held back for the first time in a wait: ask the publisher for a keyframe.
    keyframe_wanted: bool,
    /// JPEG → H.264, made at the first JPEG frame (on the blocking pool).
    transcoder: Option<Transcoder>,
    fps: f64,
    /// Capture time of the first frame sent, and the last timestamp (never goes back; ms
    /// since `base_us`, sent modulo 2^32 as RTMP timestamps wrap).
    base_us: Option<u64>,
    last_ms: u64,
    /// Frames left out because they could not be sent, on this connection.
    pub(super) unusable_frames: u64,
}

impl Video {
    pub(super) fn new(codec: Codec, fps: f64) -> Self {
        Self {
            codec,
            packager: AvcPackager::default(),
            chain: ChainGate::new(),
            keyframe_wanted: false,
            transcoder: None,
            fps,
            base_us: None,
            last_ms: 0,
            unusable_frames: 0,
        }
    }

    /// Frames were lost: an H.264 chain must restart at a keyframe (true: ask for one).
    /// A transcoded chain goes on: the encoder's own chain has no gap.
    pub(super) fn resync(&mut self) -> bool {
        if self.codec != Codec::H264 {
            return false;
        }
        self.chain.break_chain();
        true
    }

    /// A frame was left out: an H.264 chain restarts at the next keyframe (true: ask for
    /// one); a transcoder whose picture (`encoded`) was not sent makes its next one a keyframe.
    pub(super) fn skip_frame(&mut self, encoded: bool) -> bool {
        if encoded {
            if let Some((encoder, ..)) = self.transcoder.as_mut().and_then(|t| t.encoder.as_mut()) {
                encoder.force_keyframe();
            }
        }
        self.resync()
    }

    /// Whether a keyframe request should go out now (once per wait).
    pub(super) fn wants_keyframe_now(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_wanted)
    }

    /// The frame as an H.264 access unit and its capture time, or `None` to skip it.
    pub(super) async fn h264(
        &mut self,
        frame: &LatestFrame,
    ) -> Result<Option<(Bytes, u64)>, RestreamError> {
        if frame.codec == Codec::H264 {
            return Ok(
                match self.chain.offer(frame.codec, frame.seq, frame.is_keyframe) {
                    Pass::Use => Some((frame.data.clone(), frame.capture_us)),
                    Pass::Repeat => None,
                    Pass::Wait { first } => {
                        self.keyframe_wanted = first;
                        None
                    }
                },
            );
        }
        let transcoder = match self.transcoder.take() {
            Some(t) => t,
            None => Transcoder::new(self.fps),
        };
        let data = frame.data.clone();
        let (transcoder, result) =
            crate::blocking::run_with(transcoder, move |t| t.transcode(&data))
                .await
                .ok_or_else(|| MediaError::Encode("the transcoder panicked".into()))?;
        self.transcoder = Some(transcoder);
        Ok(Some((result?, frame.capture_us)))
    }

    /// RTMP timestamp (ms) of a frame captured at `capture_us`: from the first frame of
    /// this connection, never going back. A capture clock that jumps (back, or over
    /// [`CLOCK_JUMP_US`] ahead: a publisher on another machine took the name over) is
    /// rebased so the timeline goes on one frame later instead of stalling or leaping.
    pub(super) fn timestamp_ms(&mut self, capture_us: u64) -> u32 {
        let base = *self.base_us.get_or_insert(capture_us);
        let mut ms = capture_us.saturating_sub(base) / 1000;
        let last = self.last_ms;
        if capture_us < base || ms > last + CLOCK_JUMP_US / 1000 || ms + CLOCK_JUMP_US / 1000 < last
        {
            let next = last + (1000.0 / self.fps).round() as u64;
            self.base_us = Some(capture_us.saturating_sub(next * 1000));
            ms = next;
        }
        self.last_ms = ms.max(last);
        // RTMP timestamps wrap after 49.7 days; servers follow the wrap.
        (self.last_ms & 0xFFFF_FFFF) as u32
    }
}

/// JPEG → H.264 for one restreamed JPEG stream. The encoder is made at the first picture
/// (its size) and again if the size changes. Also used by RTSP readers of JPEG streams.
pub(crate) struct Transcoder {
    encoder: Option<(H264Encoder, u32, u32)>,
    fps: f64,
    /// The next frame must be a keyframe (a new encoder makes one anyway).
    force_keyframe: bool,
}

impl Transcoder {
    pub(crate) fn new(fps: f64) -> Self {
        Self {
            encoder: None,
            fps,
            force_keyframe: false,
        }
    }

    /// Makes the next frame a keyframe (an RTSP reader joined or missed a frame).
    pub(crate) fn force_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    pub(crate) fn transcode(&mut self, jpeg: &[u8]) -> Result<Bytes, MediaError> {
        let image = decode_jpeg(jpeg)?;
        // 4:2:0 needs even sizes: drop an odd last column or row.
        let (width, height) = (image.width & !1, image.height & !1);
        let rgb = if (width, height) == (image.width, image.height) {
            image.rgb
        } else {
            let row = image.width as usize * 3;
            image
                .rgb
                .chunks_exact(row)
                .take(height as usize)
                .flat_map(|r| &r[..width as usize * 3])
                .copied()
                .collect()
        };
        let encoder = match &mut self.encoder {
            Some((e, w, h)) if (*w, *h) == (width, height) => e,
            slot => {
                // About 0.1 bit per pixel per frame: 1.1 Mbit/s at 640x480@30.
                let bps = (f64::from(width * height) * self.fps * 0.12).clamp(300e3, 8e6);
                let encoder = H264Encoder::new(H264Config::live(
                    bps as u32,
                    self.fps,
                    Duration::from_secs(2),
                ))?;
                &mut slot.insert((encoder, width, height)).0
            }
        };
        let raw = RawFrame {
            width,
            height,
            format: vidcast_media::PixelFormat::Rgb8,
            data: rgb,
            seq: 0,
            capture_us: 0,
        };
        if std::mem::take(&mut self.force_keyframe) {
            encoder.force_keyframe();
        }
        Ok(encoder.encode(&raw)?.data)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn h264(seq: u64, is_keyframe: bool) -> LatestFrame {
        LatestFrame {
            seq,
            capture_us: 1_000_000 + seq * 33_333,
            received_us: 0,
            codec: Codec::H264,
            data: Bytes::from_static(&[0, 0, 1, 0x41, 0x9A]),
            is_keyframe,
            capture_local_us: None,
            wall_message: Arc::default(),
        }
    }

    #[tokio::test]
    async fn h264_passthrough_starts_at_a_keyframe_and_restarts_at_one_after_a_gap() {
        let mut video = Video::new(Codec::H264, 30.0);
        let mut sent = Vec::new();
        for (seq, key) in [
            (1, false),
            (2, true),
            (3, false),
            (5, false),
            (6, true),
            (7, false),
        ] {
            if video.h264(&h264(seq, key)).await.unwrap().is_some() {
                sent.push(seq);
            }
        }
        assert_eq!(
            sent,
            [2, 3, 6, 7],
            "1 precedes any keyframe; 5 follows a gap"
        );
        assert!(
            video.resync(),
            "frames lost: wait for a keyframe and ask for one"
        );
        assert!(video.h264(&h264(8, false)).await.unwrap().is_none());
    }

    #[test]
    fn timestamps_count_from_the_first_frame_and_never_go_back() {
        const T0: u64 = 1_700_000_000_000_000;
        let mut video = Video::new(Codec::H264, 30.0);
        assert_eq!(video.timestamp_ms(T0), 0);
        assert_eq!(video.timestamp_ms(T0 + 33_400), 33);
        assert_eq!(video.timestamp_ms(T0 + 66_700), 66);
        assert_eq!(
            video.timestamp_ms(T0 + 10_000),
            66,
            "a small step back is held"
        );
        // Another machine took the name over, its clock 10 minutes behind: the timeline
        // goes on a frame later, then follows the new clock.
        let other = T0 - 600_000_000;
        assert_eq!(video.timestamp_ms(other), 99);
        assert_eq!(video.timestamp_ms(other + 33_333), 132);
        // And a clock an hour ahead.
        assert_eq!(video.timestamp_ms(other + 3_600_033_333), 165);
        // A connection up for 50 days: the timestamp wraps and goes on.
        let mut video = Video::new(Codec::H264, 30.0);
        let wrap_ms = 1u64 << 32;
        video.timestamp_ms(T0);
        for ms in (0..wrap_ms).step_by(5_000) {
            video.timestamp_ms(T0 + ms * 1000);
        }
        assert_eq!(video.timestamp_ms(T0 + (wrap_ms - 1) * 1000), u32::MAX);
        assert_eq!(video.timestamp_ms(T0 + (wrap_ms + 33) * 1000), 33);
        assert_eq!(video.timestamp_ms(T0 + (wrap_ms + 66) * 1000), 66);
    }

    #[test]
    fn jpeg_transcodes_to_a_decodable_keyframe_even_at_odd_sizes() {
        let jpeg = vidcast_testkit::jpeg(161, 121);
        let mut t = Transcoder::new(30.0);
        let au = t.transcode(&jpeg).unwrap();
        assert!(vidcast_h264::is_keyframe(&au));
        let picture = vidcast_media::H264Decoder::new()
            .unwrap()
            .decode(&au)
            .unwrap()
            .unwrap();
        assert_eq!((picture.width, picture.height), (160, 120));
    }
}
