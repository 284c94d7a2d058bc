//! From what the user typed (`test`, `camera:1`, `clip.mp4`, `-`) to a ready source.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::adapt::{fit, Looping};
use super::camera::{camera_path, Camera, PixelKind};
use super::ffmpeg::FfmpegSource;
use super::mp4::{Mp4Open, Mp4Source};
use super::y4m::Y4mSource;
use super::{TestPattern, TestPatternConfig, VideoSource};
use crate::scale::output_size;
use crate::{Clock, MediaError};

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The synthetic moving pattern.
    TestPattern,
    /// A V4L2 camera device.
    Camera(PathBuf),
    /// Y4M on standard input.
    Stdin,
    /// A video file: Y4M and H.264 MP4 natively, anything else through ffmpeg.
    File(PathBuf),
}

impl SourceSpec {
    /// `test`, `camera` (= `/dev/video0`), `camera:N`, `/dev/videoN`, `-` (stdin), or a path.
    pub fn parse(text: &str) -> Result<Self, MediaError> {
        Ok(match text {
            "test" => SourceSpec::TestPattern,
            "camera" => SourceSpec::Camera(camera_path(0)),
            "-" => SourceSpec::Stdin,
            "" => {
                return Err(MediaError::Input {
                    what: "--source".into(),
                    reason: "empty (use test, camera, camera:N, a file or -)".into(),
                })
            }
            _ => match text.strip_prefix("camera:") {
                Some(n) => {
                    SourceSpec::Camera(camera_path(n.parse().map_err(|_| MediaError::Input {
                        what: "--source".into(),
                        reason: format!("{text:?}: camera:N needs a number, like camera:1"),
                    })?))
                }
                None if text.starts_with("/dev/video") => SourceSpec::Camera(text.into()),
                None => SourceSpec::File(text.into()),
            },
        })
    }

    /// Whether the source runs on its own clock (camera, pattern) rather than playing
    /// something from its beginning (file, stdin), which should wait for its audience.
    pub fn is_live(&self) -> bool {
        matches!(self, SourceSpec::TestPattern | SourceSpec::Camera(_))
    }
}

/// How to open a source.
#[derive(Clone)]
pub struct OpenOptions {
    /// Capture times and file pacing.
    pub clock: Arc<dyn Clock>,
    /// Play files again from the start when they end.
    pub looping: bool,
    /// Output width; alone it keeps the aspect ratio. Default: the source's (640 for the
    /// test pattern).
    pub width: Option<u32>,
    /// Output height; alone it keeps the aspect ratio. Default: the source's (480 for the
    /// test pattern).
    pub height: Option<u32>,
    /// Rate cap (frames are dropped, never added). Default: the source's rate (30 for the
    /// test pattern).
    pub fps: Option<f64>,
    /// Text burnt into the test pattern.
    pub label: String,
    /// Sensor-like noise on the test pattern (see [`TestPattern::set_noise`]); 0 = none.
    pub noise: u8,
    /// The caller sends H.264: a file that already holds H.264 the viewers decode (an MP4
    /// without B-frames) is handed over as [`Captured::H264`], not decoded and re-encoded,
    /// unless a size or rate change is asked for.
    pub h264_passthrough: bool,
}

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOptions")
            .field("looping", &self.looping)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("fps", &self.fps)
            .field("label", &self.label)
            .field("noise", &self.noise)
            .finish_non_exhaustive()
    }
}

/// Opens `spec`, scaled and capped as `options` ask.
pub fn open(spec: &SourceSpec, options: &OpenOptions) -> Result<Box<dyn VideoSource>, MediaError> {
    let clock = Arc::clone(&options.clock);
    // Resizing or dropping frames needs pictures, so it rules out passing H.264 through.
    let passthrough = options.h264_passthrough
        && options.width.is_none()
        && options.height.is_none()
        && options.fps.is_none();
    let source: Box<dyn VideoSource> = match spec {
        SourceSpec::TestPattern => {
            let (width, height) = output_size(640, 480, options.width, options.height);
            let mut pattern = TestPattern::new(
                TestPatternConfig {
                    width,
                    height,
                    fps: options.fps.unwrap_or(30.0),
                    label: options.label.clone(),
                    paced: true,
                },
                clock,
            )?;
            pattern.set_noise(options.noise);
            return Ok(Box::new(pattern));
        }
        SourceSpec::Camera(path) => {
            // The size and rate pick the camera's mode; its own H.264 is used only in a mode
            // that needs no scaling or dropping, so `fit` below leaves it alone.
            let camera = Camera::open_for(
                path,
                options.width,
                options.height,
                options.fps,
                options.h264_passthrough,
                clock,
            )?;
            if camera.mode().kind == PixelKind::H264 {
                return Ok(Box::new(camera));
            }
            Box::new(camera)
        }
        SourceSpec::Stdin => {
            if options.looping {
                return Err(MediaError::Input {
                    what: "stdin".into(),
                    reason: "cannot be looped (it can be read only once); drop --loop".into(),
                });
            }
            Box::new(Y4mSource::new(
                BufReader::new(std::io::stdin()),
                "stdin",
                clock,
            )?)
        }
        SourceSpec::File(path) if options.looping => {
            let path = path.clone();
            // The first opening says how the file is read; each loop's reopening says the
            // same, so only at debug level.
            let mut opened = false;
            Box::new(Looping::new(Box::new(move || {
                let source = open_file(&path, Arc::clone(&clock), passthrough, opened);
                opened = true;
                source
            }))?)
        }
        SourceSpec::File(path) => open_file(path, clock, passthrough, false)?,
    };
    fit(source, options.width, options.height, options.fps)
}

/// A file by its first bytes: Y4M, H.264 MP4, else ffmpeg. `is_reopen`: a looping source
/// opening it again, which logs how it is read at debug level only.
fn open_file(
    path: &Path,
    clock: Arc<dyn Clock>,
    h264_passthrough: bool,
    is_reopen: bool,
) -> Result<Box<dyn VideoSource>, MediaError> {
    let what = path.display().to_string();
    let io = |source| MediaError::Io {
        what: what.clone(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.is_dir() {
        return Err(MediaError::Input {
            what,
            reason: "is a directory, not a video file".into(),
        });
    }
    let mut head = [0u8; 12];
    let mut len = 0;
    while len < head.len() {
        match file.read(&mut head[len..]).map_err(io)? {
            0 => break,
            n => len += n,
        }
    }
    let head = &head[..len];
    let is_y4m_name = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("y4m"));
    if head.starts_with(b"YUV4MPEG2") || is_y4m_name {
        // Reopen rather than seek: the header is read from the start either way.
        let file = File::open(path).map_err(io)?;
        return Ok(Box::new(Y4mSource::new(
            BufReader::new(file),
            &what,
            clock,
        )?));
    }
    let mut why = "is neither Y4M nor H.264 MP4 (the formats vidcast reads itself)";
    if head.get(4..8) == Some(b"ftyp") {
        match Mp4Source::open(path, Arc::clone(&clock))? {
            Mp4Open::Native(mut mp4) => {
                if h264_passthrough {
                    mp4.pass_h264_through();
                }
                return Ok(mp4);
            }
            Mp4Open::NeedsFfmpeg(reason) => {
                if is_reopen {
                    tracing::debug!("{what} {reason}; decoding it with ffmpeg");
                } else {
                    tracing::info!("{what} {reason}; decoding it with ffmpeg");
                }
                why = reason;
            }
        }
    }
    Ok(Box::new(FfmpegSource::open(path, why, clock)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn source_names_parse() {
        assert_eq!(
            SourceSpec::parse("test").expect("ok"),
            SourceSpec::TestPattern
        );
        assert_eq!(
            SourceSpec::parse("camera").expect("ok"),
            SourceSpec::Camera("/dev/video0".into())
        );
        assert_eq!(
            SourceSpec::parse("camera:2").expect("ok"),
            SourceSpec::Camera("/dev/video2".into())
        );
        assert_eq!(
            SourceSpec::parse("/dev/video3").expect("ok"),
            SourceSpec::Camera("/dev/video3".into())
        );
        assert_eq!(SourceSpec::parse("-").expect("ok"), SourceSpec::Stdin);
        assert_eq!(
            SourceSpec::parse("a b.mkv").expect("ok"),
            SourceSpec::File("a b.mkv".into())
        );
        assert!(SourceSpec::parse("camera:x").is_err());
        assert!(SourceSpec::parse("").is_err());
    }

    fn options() -> OpenOptions {
        OpenOptions {
            clock: Arc::new(ManualClock::new(0)),
            looping: false,
            width: None,
            height: None,
            fps: None,
            label: "t".into(),
            noise: 0,
            h264_passthrough: false,
        }
    }

    #[test]
    fn test_pattern_defaults_and_width_alone_keeps_4_to_3() {
        let s = open(&SourceSpec::TestPattern, &options()).expect("opens");
        assert_eq!((s.size(), s.fps()), ((640, 480), 30.0));
        let o = OpenOptions {
            width: Some(380),
            ..options()
        };
        assert_eq!(
            open(&SourceSpec::TestPattern, &o).expect("opens").size(),
            (380, 286)
        );
    }

    #[test]
    fn files_are_told_apart_by_content_and_bad_ones_say_why() {
        let dir = std::env::temp_dir().join(format!("vidcast-open-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let y4m = dir.join("clip.video"); // no telling extension: found by its header
        let mut bytes = Vec::new();
        super::super::y4m::write_test_y4m(&mut bytes, 64, 48, (30, 1), 3).expect("writes");
        std::fs::write(&y4m, &bytes).expect("write");
        let o = OpenOptions {
            width: Some(32),
            looping: true,
            ..options()
        };
        let mut s = open(&SourceSpec::File(y4m), &o).expect("opens");
        assert_eq!(s.size(), (32, 24));
        for seq in 0..7 {
            assert_eq!(s.next_frame().expect("ok").expect("loops").seq, seq);
        }
        let missing = open(&SourceSpec::File(dir.join("nope.y4m")), &options())
            .err()
            .expect("missing file");
        assert!(
            missing.to_string().contains("nope.y4m: No such file"),
            "{missing}"
        );
        let garbage = dir.join("garbage.y4m");
        std::fs::write(&garbage, b"this is not video at all").expect("write");
        let err = open(&SourceSpec::File(garbage), &options())
            .err()
            .expect("garbage");
        assert!(err.to_string().contains("not Y4M"), "{err}");
        let looped_stdin = OpenOptions {
            looping: true,
            ..options()
        };
        assert!(open(&SourceSpec::Stdin, &looped_stdin).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
