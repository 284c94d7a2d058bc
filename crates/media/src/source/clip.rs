//! Camera-like clips for benchmarks: the moving test pattern with sensor-like noise, written
//! once as a Y4M file, so every publisher under test (vidcast's, imagezmq's) encodes the same
//! frames and none pays for making them.

use std::io::Write;
use std::sync::Arc;

use super::pattern::{TestPattern, TestPatternConfig};
use super::yuv::Subsampling;
use crate::{ManualClock, MediaError};

/// What [`write_camera_like_y4m`] writes: colour bars and a grey ramp scrolling opposite
/// ways, a bouncing box, a text box with the frame number and time, the frame-number strip,
/// and uniform noise of ±`noise` per RGB channel drawn from `seed`; 8-bit I420.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraLikeClip {
    /// Width in pixels (64 to 7680).
    pub width: u32,
    /// Height in pixels (64 to 7680).
    pub height: u32,
    /// Number of frames.
    pub frames: u32,
    /// Frame rate written in the header (frames per second).
    pub fps: u32,
    /// Noise amplitude per RGB channel, 0 to 127.
    pub noise: u8,
    /// Which draw of the noise: the same seed, the same file.
    pub seed: u64,
}

impl CameraLikeClip {
    /// The clip issue 18 measured with: 30 fps, noise ±12, seed 1.
    pub fn new(width: u32, height: u32, frames: u32) -> Self {
        Self {
            width,
            height,
            frames,
            fps: 30,
            noise: 12,
            seed: 1,
        }
    }

    /// Bytes of the file: the header, then per frame "FRAME\n" and its I420 planes.
    pub fn file_bytes(&self) -> u64 {
        let (cw, ch) = Subsampling::Half.chroma_size(self.width, self.height);
        let frame = u64::from(self.width) * u64::from(self.height) + 2 * u64::from(cw * ch);
        let header = format!(
            "YUV4MPEG2 W{} H{} F{}:1 C420\n",
            self.width, self.height, self.fps
        );
        header.len() as u64 + u64::from(self.frames) * (6 + frame)
    }
}

/// Writes `clip` to `out` as Y4M (BT.601 limited range, chroma averaged over 2x2 pixels, as
/// [`super::Y4mSource`] reads it back). Frame `i` is stamped `i / fps` seconds after midnight.
pub fn write_camera_like_y4m(
    out: &mut impl Write,
    clip: &CameraLikeClip,
) -> Result<(), MediaError> {
    let mut pattern = TestPattern::new(
        TestPatternConfig {
            width: clip.width,
            height: clip.height,
            fps: f64::from(clip.fps),
            label: format!("camera-like {}x{}", clip.width, clip.height),
            paced: false,
        },
        Arc::new(ManualClock::new(0)),
    )?;
    pattern.set_noise_seeded(clip.noise, clip.seed);
    let err = |e: y4m::Error| MediaError::Input {
        what: "y4m writer".into(),
        reason: e.to_string(),
    };
    let mut encoder = y4m::encode(
        clip.width as usize,
        clip.height as usize,
        y4m::Ratio::new(clip.fps as usize, 1),
    )
    .with_colorspace(y4m::Colorspace::C420)
    .write_header(out)
    .map_err(err)?;
    for i in 0..u64::from(clip.frames) {
        let capture_us = i * 1_000_000 / u64::from(clip.fps.max(1));
        // The pattern draws RGB; the clip holds what a camera gives: I420.
        let frame = pattern.render(i, capture_us).into_i420()?;
        let planes = frame.planes()?.ok_or_else(|| MediaError::Input {
            what: "y4m writer".into(),
            reason: "the pattern did not convert to I420".into(),
        })?;
        encoder
            .write_frame(&y4m::Frame::new([planes.y, planes.u, planes.v], None))
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{read_frame_number, VideoSource, Y4mSource};
    use crate::{psnr, Clock};

    #[test]
    fn a_camera_like_clip_reads_back_frame_by_frame() {
        let clip = CameraLikeClip::new(320, 240, 5);
        let mut bytes = Vec::new();
        write_camera_like_y4m(&mut bytes, &clip).expect("writes");
        assert_eq!(bytes.len() as u64, clip.file_bytes());
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
        let mut source = Y4mSource::new(&bytes[..], "clip.y4m", clock.clone()).expect("opens");
        assert_eq!((source.size(), source.fps()), ((320, 240), 30.0));
        let mut pattern = TestPattern::new(
            TestPatternConfig {
                width: 320,
                height: 240,
                fps: 30.0,
                label: "camera-like 320x240".into(),
                paced: false,
            },
            clock,
        )
        .expect("valid");
        pattern.set_noise_seeded(12, 1);
        let mut n = 0u64;
        while let Some(frame) = source.next_frame().expect("reads") {
            assert_eq!(frame.seq, n);
            assert_eq!(
                read_frame_number(&frame.to_rgb().unwrap(), 320, 240),
                Some(n as u32)
            );
            // 4:2:0 and back loses some chroma detail, nothing more.
            let original = pattern.render(n, n * 1_000_000 / 30);
            let db = psnr(&original.to_rgb().unwrap(), &frame.to_rgb().unwrap());
            assert!(db > 30.0, "frame {n}: {db:.1} dB");
            n += 1;
        }
        assert_eq!(n, 5);
    }

    #[test]
    fn the_same_clip_is_the_same_file() {
        let clip = CameraLikeClip::new(96, 64, 3);
        let write = |clip: &CameraLikeClip| {
            let mut bytes = Vec::new();
            write_camera_like_y4m(&mut bytes, clip).expect("writes");
            bytes
        };
        assert_eq!(write(&clip), write(&clip));
        let other = CameraLikeClip {
            seed: 2,
            ..clip.clone()
        };
        assert_ne!(write(&clip), write(&other));
        let clean = CameraLikeClip {
            noise: 0,
            ..clip.clone()
        };
        assert_ne!(write(&clip), write(&clean));
    }

    #[test]
    fn odd_sizes_round_up_the_chroma() {
        let clip = CameraLikeClip::new(65, 67, 2);
        let mut bytes = Vec::new();
        write_camera_like_y4m(&mut bytes, &clip).expect("writes");
        assert_eq!(bytes.len() as u64, clip.file_bytes());
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
        let mut source = Y4mSource::new(&bytes[..], "odd.y4m", clock).expect("opens");
        assert!(source.next_frame().expect("reads").is_some());
        assert!(source.next_frame().expect("reads").is_some());
        assert!(source.next_frame().expect("reads").is_none());
    }
}
