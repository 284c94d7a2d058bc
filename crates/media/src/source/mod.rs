//! Video sources: the [`VideoSource`] trait, the synthetic [`TestPattern`], files (Y4M,
//! H.264 MP4, anything else through ffmpeg), Y4M on stdin and V4L2 cameras, plus adapters
//! that scale, cap the frame rate and loop.
//!
//! [`SourceSpec::parse`] reads what the user typed, [`open`] turns it into a source, and
//! [`fit`] adds scaling and a rate cap when asked for.

mod adapt;
mod camera;
mod clip;
mod ffmpeg;
mod mjpeg;
mod mp4;
mod noise;
mod open;
mod pace;
mod pattern;
mod strip;
mod y4m;
pub mod yuv;

pub use adapt::{fit, Capped, Looping, Scaled};
pub use camera::{
    camera_frame, camera_path, list_cameras, pick_mode, pick_mode_for_h264, Camera, CameraInfo,
    CameraMode, H264Passthrough, PixelKind,
};
pub use clip::{write_camera_like_y4m, CameraLikeClip};
pub use ffmpeg::FfmpegSource;
pub use mjpeg::{ensure_huffman_tables, has_huffman_tables};
pub use mp4::{write_test_mp4, Mp4Open, Mp4Source};
pub use noise::{NoiseTable, NOISE_TABLE_BYTES};
pub use open::{open, OpenOptions, SourceSpec};
pub use pace::{Pacer, RateCap};
pub use pattern::{TestPattern, TestPatternConfig, MAX_DIMENSION, MAX_FPS, MIN_DIMENSION};
pub use strip::{read_frame_number, write_frame_number};
pub use y4m::{write_test_y4m, Y4mSource};

use crate::{decode_jpeg, EncodedFrame, MediaError, RawFrame};

/// A frame as a source delivers it: raw pixels, or a JPEG the camera already compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Captured {
    /// Pixels to encode.
    Raw(RawFrame),
    /// A complete JPEG (a camera's MJPEG frame), to send as it is.
    Jpeg(EncodedFrame),
    /// An H.264 access unit (Annex B) from a source that already has H.264, to send as it
    /// is on an H.264 stream. It decodes only in order, after its keyframe.
    H264(EncodedFrame),
}

impl Captured {
    /// Capture time, µs since the Unix epoch.
    pub fn capture_us(&self) -> u64 {
        match self {
            Captured::Raw(f) => f.capture_us,
            Captured::Jpeg(f) | Captured::H264(f) => f.capture_us,
        }
    }

    /// Frame number.
    pub fn seq(&self) -> u64 {
        match self {
            Captured::Raw(f) => f.seq,
            Captured::Jpeg(f) | Captured::H264(f) => f.seq,
        }
    }

    /// Renumbers the frame.
    pub fn set_seq(&mut self, seq: u64) {
        match self {
            Captured::Raw(f) => f.seq = seq,
            Captured::Jpeg(f) | Captured::H264(f) => f.seq = seq,
        }
    }

    /// The pixels, decoding a JPEG if need be. An H.264 access unit cannot be decoded on
    /// its own: an error (sources hand those over only when asked to).
    pub fn into_raw(self) -> Result<RawFrame, MediaError> {
        match self {
            Captured::Raw(f) => Ok(f),
            Captured::H264(f) => Err(MediaError::Decode {
                len: f.data.len(),
                reason: "an H.264 access unit passed through cannot be decoded alone".into(),
            }),
            Captured::Jpeg(f) => {
                let img = decode_jpeg(&f.data)?;
                Ok(RawFrame::rgb(
                    img.width,
                    img.height,
                    img.rgb,
                    f.seq,
                    f.capture_us,
                ))
            }
        }
    }
}

/// Something that produces raw frames, like a camera.
///
/// `next_frame` blocks, as a camera would, until the next frame is due; a caller on an
/// async runtime runs it on a blocking thread.
pub trait VideoSource: Send {
    /// Frame size in pixels, `(width, height)`; every frame has this size.
    fn size(&self) -> (u32, u32);
    /// Nominal frame rate.
    fn fps(&self) -> f64;
    /// A one-line human description, for logs and the UI.
    fn describe(&self) -> String;
    /// The next frame, `Ok(None)` at the end of the stream.
    fn next_frame(&mut self) -> Result<Option<RawFrame>, MediaError>;
    /// The next frame in whatever form is cheapest: sources that receive JPEG (MJPEG
    /// cameras) hand it over undecoded so it can be sent without re-encoding. The default
    /// wraps [`VideoSource::next_frame`].
    fn next_captured(&mut self) -> Result<Option<Captured>, MediaError> {
        Ok(self.next_frame()?.map(Captured::Raw))
    }
    /// Asks a source that hands over its own H.264 ([`Captured::H264`]) for a keyframe soon
    /// (a viewer joined, or a frame was lost); `false` if it cannot (a file, a camera
    /// without the control). Sources of pictures have nothing to do: the encoder makes it.
    fn request_keyframe(&mut self) -> bool {
        false
    }
}

impl<S: VideoSource + ?Sized> VideoSource for Box<S> {
    fn size(&self) -> (u32, u32) {
        (**self).size()
    }
    fn fps(&self) -> f64 {
        (**self).fps()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn next_frame(&mut self) -> Result<Option<RawFrame>, MediaError> {
        (**self).next_frame()
    }
    fn next_captured(&mut self) -> Result<Option<Captured>, MediaError> {
        (**self).next_captured()
    }
    fn request_keyframe(&mut self) -> bool {
        (**self).request_keyframe()
    }
}
