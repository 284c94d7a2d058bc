//! Video4Linux2 cameras via `linuxvideo` (pure Rust ioctls; no libv4l, no libclang).
//!
//! Never tested on a real camera here (the build machines have none): mode choice, the
//! pixel conversions and the H.264 pass-through checks are unit-tested, and the no-device
//! path is tested end to end.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use linuxvideo::format::{FrameIntervals, FrameSizes, PixFormat, PixelFormat};
use linuxvideo::stream::ReadStream;
use linuxvideo::{BufType, CapabilityFlags, Device, Fract};

use super::mjpeg::ensure_huffman_tables;
use super::yuv::{nv12_to_i420, yuyv_to_i420};
use super::{Captured, VideoSource};
use crate::{Clock, Codec, EncodedFrame, MediaError, RawFrame};

/// The camera pixel formats vidcast reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelKind {
    /// Motion JPEG: sent as it is when no resizing is asked for.
    Mjpeg,
    /// Packed 4:2:2 `Y0 U Y1 V`.
    Yuyv,
    /// Planar Y + interleaved UV at 4:2:0.
    Nv12,
    /// H.264 from the camera's own encoder (UVC H.264 cameras, the Raspberry Pi camera):
    /// used only on an H.264 stream, and sent without re-encoding.
    H264,
}

impl PixelKind {
    fn from_v4l2(format: PixelFormat) -> Option<Self> {
        match &format.as_fourcc() {
            b"MJPG" | b"JPEG" => Some(PixelKind::Mjpeg),
            b"YUYV" => Some(PixelKind::Yuyv),
            b"NV12" => Some(PixelKind::Nv12),
            b"H264" => Some(PixelKind::H264),
            _ => None,
        }
    }

    fn v4l2(self, jpeg_fourcc: PixelFormat) -> PixelFormat {
        match self {
            PixelKind::Mjpeg => jpeg_fourcc,
            PixelKind::Yuyv => PixelFormat::YUYV,
            PixelKind::Nv12 => PixelFormat::from_fourcc(*b"NV12"),
            PixelKind::H264 => PixelFormat::from_fourcc(*b"H264"),
        }
    }

    /// Preference when several formats offer the asked size: JPEG costs the least USB
    /// bandwidth and no encoding; NV12 is half of YUYV's bytes.
    fn rank(self) -> u8 {
        match self {
            PixelKind::Mjpeg => 0,
            PixelKind::Nv12 => 1,
            PixelKind::Yuyv => 2,
            PixelKind::H264 => 3,
        }
    }
}

/// One way a camera can deliver frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraMode {
    /// Pixel format.
    pub kind: PixelKind,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: f64,
}

/// A camera and the modes vidcast can use.
#[derive(Debug, Clone)]
pub struct CameraInfo {
    /// Device path, e.g. `/dev/video0`.
    pub path: PathBuf,
    /// The driver's name for it.
    pub name: String,
    /// Usable modes, in the order the driver lists them.
    pub modes: Vec<CameraMode>,
}

/// The mode nearest `width` x `height` at `fps` (640x480 at 30 when not given): closest
/// size first (by area, then shape), then the closest rate not below `fps` if any, then the
/// cheapest pixel format. H.264 modes are left out (see [`pick_mode_for_h264`]).
pub fn pick_mode(
    modes: &[CameraMode],
    width: Option<u32>,
    height: Option<u32>,
    fps: Option<f64>,
) -> Option<CameraMode> {
    let pictures: Vec<CameraMode> = modes
        .iter()
        .copied()
        .filter(|m| m.kind != PixelKind::H264)
        .collect();
    nearest_mode(&pictures, width, height, fps)
}

/// For an H.264 stream: the camera's own H.264 when it has it in a mode that needs no
/// scaling and no dropped frames (exactly the size asked for, if one was, and a rate not
/// above the one asked for) and that is as near the wish as the best picture mode;
/// otherwise [`pick_mode`]'s choice, to be encoded.
pub fn pick_mode_for_h264(
    modes: &[CameraMode],
    width: Option<u32>,
    height: Option<u32>,
    fps: Option<f64>,
) -> Option<CameraMode> {
    let fits = |m: &CameraMode| {
        let (w, h) = crate::output_size(m.width, m.height, width, height);
        (w, h) == (m.width, m.height) && fps.is_none_or(|fps| m.fps <= fps + 0.01)
    };
    let h264: Vec<CameraMode> = modes
        .iter()
        .copied()
        .filter(|m| m.kind == PixelKind::H264 && fits(m))
        .collect();
    let best_h264 = nearest_mode(&h264, width, height, fps);
    let best_picture = pick_mode(modes, width, height, fps);
    match (best_h264, best_picture) {
        (Some(h264), Some(picture))
            if (h264.width, h264.height) != (picture.width, picture.height)
                || h264.fps + 0.01 < picture.fps.min(fps.unwrap_or(f64::INFINITY)) =>
        {
            Some(picture)
        }
        (Some(h264), _) => Some(h264),
        (None, picture) => picture,
    }
}

fn nearest_mode(
    modes: &[CameraMode],
    width: Option<u32>,
    height: Option<u32>,
    fps: Option<f64>,
) -> Option<CameraMode> {
    let (w, h) = match (width, height) {
        (Some(w), Some(h)) => (w, h),
        (Some(w), None) => (w, w * 3 / 4),
        (None, Some(h)) => (h * 4 / 3, h),
        (None, None) => (640, 480),
    };
    let fps = fps.unwrap_or(30.0);
    let size_cost = |m: &CameraMode| {
        let area =
            (f64::from(m.width) * f64::from(m.height)).ln() - (f64::from(w) * f64::from(h)).ln();
        let shape =
            (f64::from(m.width) / f64::from(m.height)).ln() - (f64::from(w) / f64::from(h)).ln();
        area.abs() + shape.abs()
    };
    let rate_cost = |m: &CameraMode| {
        // Below the asked rate is worse than above it: a cap can drop frames, not add them.
        if m.fps + 0.01 >= fps {
            m.fps - fps
        } else {
            1000.0 + fps - m.fps
        }
    };
    modes.iter().copied().min_by(|a, b| {
        let key = |m: &CameraMode| (size_cost(m), rate_cost(m), m.kind.rank());
        let (ka, kb) = (key(a), key(b));
        ka.0.total_cmp(&kb.0)
            .then(ka.1.total_cmp(&kb.1))
            .then(ka.2.cmp(&kb.2))
    })
}

/// `/dev/videoN` for `camera:N`.
pub fn camera_path(index: u32) -> PathBuf {
    PathBuf::from(format!("/dev/video{index}"))
}

/// Linux errno values (this crate does not link libc for two numbers).
const EBUSY: i32 = 16;
const ENOTTY: i32 = 25;

/// One-line errors that say what to do.
fn camera_error(path: &Path, e: &io::Error) -> MediaError {
    let reason = match (e.kind(), e.raw_os_error()) {
        (io::ErrorKind::NotFound, _) => {
            let none = !Path::new("/dev").read_dir().is_ok_and(|mut d| {
                d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("video")))
            });
            if none {
                "no such device (/dev/video* absent: plug in a camera or load its driver; \
                 `vidcast devices` lists cameras)"
                    .to_owned()
            } else {
                "no such device (`vidcast devices` lists the cameras there are)".to_owned()
            }
        }
        (io::ErrorKind::PermissionDenied, _) => "permission denied (add yourself to the \
             `video` group: sudo usermod -aG video $USER, then log in again)"
            .to_owned(),
        (_, Some(EBUSY)) => {
            "device busy (another program is using the camera: close it and try again)".to_owned()
        }
        (_, Some(ENOTTY)) => "not a V4L2 device (`vidcast devices` lists cameras)".to_owned(),
        _ => e.to_string(),
    };
    MediaError::Camera {
        device: path.display().to_string(),
        reason,
    }
}

/// Every capture device under `/dev/video*` with the modes vidcast can use. Devices that
/// cannot be opened are logged and left out.
pub fn list_cameras() -> Result<Vec<CameraInfo>, MediaError> {
    let mut paths: Vec<PathBuf> = match std::fs::read_dir("/dev") {
        Ok(dir) => dir
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("video"))
            .map(|e| e.path())
            .collect(),
        Err(source) => {
            return Err(MediaError::Io {
                what: "/dev".into(),
                source,
            })
        }
    };
    paths.sort();
    let mut cameras = Vec::new();
    for path in paths {
        match probe(&path) {
            Ok(Some(info)) => cameras.push(info),
            Ok(None) => {}
            Err(e) => tracing::warn!("skipping {}: {e}", path.display()),
        }
    }
    Ok(cameras)
}

/// The camera at `path`, or `None` if it is some other kind of V4L2 device.
fn probe(path: &Path) -> Result<Option<CameraInfo>, MediaError> {
    let device = Device::open(path).map_err(|e| camera_error(path, &e))?;
    let caps = device.capabilities().map_err(|e| camera_error(path, &e))?;
    if !caps
        .device_capabilities()
        .contains(CapabilityFlags::VIDEO_CAPTURE)
    {
        return Ok(None);
    }
    Ok(Some(CameraInfo {
        path: path.to_owned(),
        name: caps.card().to_owned(),
        modes: modes(&device).map_err(|e| camera_error(path, &e))?,
    }))
}

fn modes(device: &Device) -> io::Result<Vec<CameraMode>> {
    let mut modes = Vec::new();
    for desc in device.formats(BufType::VIDEO_CAPTURE) {
        let format = desc?.pixel_format();
        let Some(kind) = PixelKind::from_v4l2(format) else {
            continue;
        };
        let sizes: Vec<(u32, u32)> = match device.frame_sizes(format)? {
            FrameSizes::Discrete(list) => list.iter().map(|s| (s.width(), s.height())).collect(),
            // Any size in a range: offer the ends and the common sizes in between.
            FrameSizes::Stepwise(s) | FrameSizes::Continuous(s) => {
                [(320, 240), (640, 480), (1280, 720), (1920, 1080)]
                    .into_iter()
                    .filter(|&(w, h)| {
                        (s.min_width()..=s.max_width()).contains(&w)
                            && (s.min_height()..=s.max_height()).contains(&h)
                    })
                    .chain([(s.max_width(), s.max_height())])
                    .collect()
            }
        };
        for (width, height) in sizes {
            let fps = |f: &Fract| f64::from(f.denominator()) / f64::from(f.numerator().max(1));
            let rates: Vec<f64> = match device.frame_intervals(format, width, height) {
                Ok(FrameIntervals::Discrete(list)) => list.iter().map(|i| fps(i.fract())).collect(),
                Ok(FrameIntervals::Stepwise(i) | FrameIntervals::Continuous(i)) => {
                    vec![fps(i.min()), fps(i.max())]
                }
                Err(_) => vec![30.0], // some drivers do not enumerate intervals
            };
            for fps in rates {
                modes.push(CameraMode {
                    kind,
                    width,
                    height,
                    fps,
                });
            }
        }
    }
    Ok(modes)
}

/// A live camera. JPEG frames (with their Huffman tables completed) come out of
/// [`VideoSource::next_captured`] untouched; YUYV and NV12 are converted to RGB.
pub struct Camera {
    stream: ReadStream,
    path: PathBuf,
    name: String,
    mode: CameraMode,
    stride: usize,
    clock: Arc<dyn Clock>,
    next_seq: u64,
    h264: H264Passthrough,
    keyframe_control: Option<KeyframeControl>,
}

/// The camera's "Force Key Frame" control (V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME), when its
/// driver has one (the Raspberry Pi's does; most UVC drivers do not).
struct KeyframeControl {
    device: Device,
    id: linuxvideo::controls::Cid,
}

impl KeyframeControl {
    /// `linuxvideo` has no constant for the codec-class controls, so the control is found by
    /// the name the kernel gives it.
    fn find(device: Device, path: &Path) -> Option<Self> {
        let id = device
            .controls()
            .filter_map(Result::ok)
            .find(|desc| desc.name().eq_ignore_ascii_case("Force Key Frame"))
            .map(|desc| desc.id());
        match id {
            Some(id) => Some(Self { device, id }),
            None => {
                tracing::info!(
                    "camera {}: no keyframe control; late viewers wait for the camera's next \
                     keyframe",
                    path.display()
                );
                None
            }
        }
    }
}

/// Checks and completes a camera's own H.264 before it is sent as it is: frames before the
/// first keyframe are left out (nothing could decode them), keyframes get the parameter sets
/// when the camera sent them only once, and B-frames are refused (OpenH264 and the wall's
/// in-order pipeline cannot play them).
#[derive(Debug, Default)]
pub struct H264Passthrough {
    sets: vidcast_h264::ParameterSets,
    started: bool,
}

impl H264Passthrough {
    /// The access unit to send, `Ok(None)` while waiting for the first keyframe.
    pub fn accept(
        &mut self,
        device: &Path,
        frame: EncodedFrame,
    ) -> Result<Option<EncodedFrame>, MediaError> {
        if vidcast_h264::has_b_slices(&frame.data) {
            return Err(MediaError::Camera {
                device: device.display().to_string(),
                reason: "its H.264 has B-frames, which vidcast's low-latency viewers cannot \
                         play; use --codec jpeg, or a size the camera does not encode itself"
                    .into(),
            });
        }
        let data = self.sets.complete(&frame.data);
        let is_keyframe = vidcast_h264::is_keyframe(&data);
        self.started |= is_keyframe && self.sets.known();
        if !self.started {
            return Ok(None);
        }
        Ok(Some(EncodedFrame {
            data: data.into(),
            is_keyframe,
            ..frame
        }))
    }
}

impl std::fmt::Debug for Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Camera")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Camera {
    /// Opens the camera at `path` in the mode nearest the wish (see [`pick_mode`]).
    pub fn open(
        path: &Path,
        width: Option<u32>,
        height: Option<u32>,
        fps: Option<f64>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, MediaError> {
        Self::open_for(path, width, height, fps, false, clock)
    }

    /// Like [`Camera::open`]; with `h264_passthrough` (the caller sends H.264), a camera
    /// that encodes H.264 itself in a fitting mode is read in that mode (see
    /// [`pick_mode_for_h264`]) and its access units come out as [`Captured::H264`].
    pub fn open_for(
        path: &Path,
        width: Option<u32>,
        height: Option<u32>,
        fps: Option<f64>,
        h264_passthrough: bool,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, MediaError> {
        let err = |e: io::Error| camera_error(path, &e);
        let Some(info) = probe(path)? else {
            return Err(MediaError::Camera {
                device: path.display().to_string(),
                reason: "not a video capture device (`vidcast devices` lists cameras)".into(),
            });
        };
        let wanted = if h264_passthrough {
            pick_mode_for_h264(&info.modes, width, height, fps)
        } else {
            pick_mode(&info.modes, width, height, fps)
        };
        let Some(wanted) = wanted else {
            return Err(MediaError::Camera {
                device: path.display().to_string(),
                reason: "offers none of MJPEG, YUYV or NV12 (`vidcast devices` shows its modes)"
                    .into(),
            });
        };
        let device = Device::open(path).map_err(err)?;
        let jpeg_fourcc = device
            .formats(BufType::VIDEO_CAPTURE)
            .filter_map(Result::ok)
            .map(|d| d.pixel_format())
            .find(|&f| f == PixelFormat::MJPG || f == PixelFormat::JPEG)
            .unwrap_or(PixelFormat::MJPG);
        let format = PixFormat::new(wanted.width, wanted.height, wanted.kind.v4l2(jpeg_fourcc));
        let capture = device.video_capture(format).map_err(err)?;
        let got = capture.format();
        let (got_width, got_height, got_stride) =
            (got.width(), got.height(), got.bytes_per_line() as usize);
        let Some(kind) = PixelKind::from_v4l2(got.pixel_format()) else {
            return Err(MediaError::Camera {
                device: path.display().to_string(),
                reason: format!(
                    "driver switched to unsupported format {}",
                    got.pixel_format()
                ),
            });
        };
        let rate = wanted.fps.round().clamp(1.0, 1000.0) as u32;
        let actual = capture
            .set_frame_interval(Fract::new(1, rate))
            .map_err(err)?;
        let mode = CameraMode {
            kind,
            width: got_width,
            height: got_height,
            fps: f64::from(actual.denominator()) / f64::from(actual.numerator().max(1)),
        };
        // Quirk: some drivers report bytesperline 0 for compressed formats (and a few for
        // YUYV); fall back to the packed row size.
        let stride = match (got_stride, kind) {
            (0, PixelKind::Yuyv) => 2 * mode.width.next_multiple_of(2) as usize,
            (0, _) => mode.width as usize,
            (n, _) => n,
        };
        let stream = capture.into_stream().map_err(err)?;
        // Controls go through a second handle: the stream owns the first. Only H.264 needs
        // one (to ask the camera's encoder for a keyframe).
        let keyframe_control = if kind == PixelKind::H264 {
            Device::open(path)
                .ok()
                .and_then(|device| KeyframeControl::find(device, path))
        } else {
            None
        };
        tracing::info!(
            "camera {} \"{}\": {:?} {}x{} @ {} fps",
            path.display(),
            info.name,
            mode.kind,
            mode.width,
            mode.height,
            mode.fps
        );
        Ok(Self {
            stream,
            path: path.to_owned(),
            name: info.name,
            mode,
            stride,
            clock,
            next_seq: 0,
            h264: H264Passthrough::default(),
            keyframe_control,
        })
    }

    /// The mode the driver agreed to.
    pub fn mode(&self) -> CameraMode {
        self.mode
    }
}

/// One camera buffer as a frame: JPEG and H.264 passed through, YUYV/NV12 made I420 in one
/// copy out of the driver's buffer.
pub fn camera_frame(
    kind: PixelKind,
    data: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    seq: u64,
    capture_us: u64,
) -> Result<Captured, MediaError> {
    let raw = |yuv| Captured::Raw(RawFrame::i420(width, height, yuv, seq, capture_us));
    Ok(match kind {
        PixelKind::Mjpeg => Captured::Jpeg(EncodedFrame {
            codec: Codec::Jpeg,
            width,
            height,
            data: ensure_huffman_tables(data)?.into(),
            seq,
            capture_us,
            is_keyframe: true,
        }),
        PixelKind::Yuyv => raw(yuyv_to_i420(data, width, height, stride)?),
        PixelKind::Nv12 => {
            let y_len = stride * height as usize;
            let (y, uv) = data.split_at(y_len.min(data.len()));
            raw(nv12_to_i420(y, uv, width, height, stride)?)
        }
        PixelKind::H264 => Captured::H264(EncodedFrame {
            codec: Codec::H264,
            width,
            height,
            data: data.to_vec().into(),
            seq,
            capture_us,
            is_keyframe: vidcast_h264::is_keyframe(data),
        }),
    })
}

impl VideoSource for Camera {
    fn size(&self) -> (u32, u32) {
        (self.mode.width, self.mode.height)
    }

    fn fps(&self) -> f64 {
        self.mode.fps
    }

    fn describe(&self) -> String {
        format!(
            "camera {} \"{}\" ({:?} {}x{} @ {} fps)",
            self.path.display(),
            self.name,
            self.mode.kind,
            self.mode.width,
            self.mode.height,
            self.mode.fps
        )
    }

    fn next_frame(&mut self) -> Result<Option<RawFrame>, MediaError> {
        self.next_captured()?.map(Captured::into_raw).transpose()
    }

    fn next_captured(&mut self) -> Result<Option<Captured>, MediaError> {
        let (kind, width, height, stride) = (
            self.mode.kind,
            self.mode.width,
            self.mode.height,
            self.stride,
        );
        loop {
            let seq = self.next_seq;
            self.next_seq += 1;
            let capture_us = self.clock.now_us();
            let frame = self
                .stream
                .dequeue(|buf| {
                    // The driver flags a damaged frame: skip it (its number stays a gap).
                    Ok((!buf.is_error())
                        .then(|| camera_frame(kind, &buf, width, height, stride, seq, capture_us)))
                })
                .map_err(|e| camera_error(&self.path, &e))?;
            match frame.transpose()? {
                Some(Captured::H264(access_unit)) => {
                    if let Some(access_unit) = self.h264.accept(&self.path, access_unit)? {
                        return Ok(Some(Captured::H264(access_unit)));
                    }
                    // Nothing before the first keyframe can be decoded: ask for one.
                    self.request_keyframe();
                }
                Some(other) => return Ok(Some(other)),
                None => {}
            }
        }
    }

    fn request_keyframe(&mut self) -> bool {
        let Some(control) = &mut self.keyframe_control else {
            return false;
        };
        match control.device.write_control_raw(control.id, 1) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(
                    "camera {}: keyframe request refused ({e}); not asking again",
                    self.path.display()
                );
                self.keyframe_control = None;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(kind: PixelKind, width: u32, height: u32, fps: f64) -> CameraMode {
        CameraMode {
            kind,
            width,
            height,
            fps,
        }
    }

    #[test]
    fn picks_the_nearest_size_then_rate_then_mjpeg() {
        use PixelKind::*;
        let modes = [
            mode(Yuyv, 640, 480, 30.0),
            mode(Yuyv, 1280, 720, 10.0),
            mode(Mjpeg, 1280, 720, 30.0),
            mode(Mjpeg, 640, 480, 30.0),
            mode(Mjpeg, 320, 240, 30.0),
            mode(Mjpeg, 320, 240, 15.0),
        ];
        assert_eq!(pick_mode(&modes, None, None, None), Some(modes[3]));
        assert_eq!(
            pick_mode(&modes, Some(1280), Some(720), None),
            Some(modes[2])
        );
        // Same size: the exact rate beats the cheaper format.
        assert_eq!(
            pick_mode(&modes, Some(1200), None, Some(10.0)),
            Some(modes[1])
        );
        assert_eq!(
            pick_mode(&modes, Some(1200), None, Some(25.0)),
            Some(modes[2])
        );
        assert_eq!(
            pick_mode(&modes, Some(300), None, Some(10.0)),
            Some(modes[5])
        );
        assert_eq!(
            pick_mode(&modes, None, Some(240), Some(20.0)),
            Some(modes[4])
        );
        assert_eq!(
            pick_mode(&modes[..2], Some(1280), Some(720), Some(30.0)),
            Some(modes[1])
        );
        assert_eq!(pick_mode(&[], None, None, None), None);
    }

    #[test]
    fn an_h264_stream_uses_the_cameras_own_h264_only_where_it_fits() {
        use PixelKind::*;
        let modes = [
            mode(Mjpeg, 1280, 720, 30.0),
            mode(Mjpeg, 640, 480, 30.0),
            mode(H264, 1280, 720, 30.0),
            mode(H264, 640, 480, 15.0),
            mode(Yuyv, 320, 240, 30.0),
        ];
        // A JPEG stream never gets H.264.
        assert_eq!(
            pick_mode(&modes, Some(1280), Some(720), None),
            Some(modes[0])
        );
        assert_eq!(
            pick_mode_for_h264(&modes, Some(1280), Some(720), None),
            Some(modes[2])
        );
        assert_eq!(
            pick_mode_for_h264(&modes, Some(1280), None, Some(30.0)),
            Some(modes[2])
        );
        // 640x480 H.264 is at 15 fps only, MJPEG has the asked 30: encode MJPEG's pictures.
        assert_eq!(
            pick_mode_for_h264(&modes, Some(640), Some(480), None),
            Some(modes[1])
        );
        // Unless 15 fps is what was asked for.
        assert_eq!(
            pick_mode_for_h264(&modes, Some(640), Some(480), Some(15.0)),
            Some(modes[3])
        );
        // 1280x720 H.264 at 30 would have to drop frames for 25 fps; a size it lacks would
        // need scaling: pictures then.
        assert_eq!(
            pick_mode_for_h264(&modes, Some(1280), Some(720), Some(25.0)),
            Some(modes[0])
        );
        assert_eq!(
            pick_mode_for_h264(&modes, Some(320), Some(240), None),
            Some(modes[4])
        );
        // The default wish (640x480 at 30) on an H.264-only camera.
        assert_eq!(
            pick_mode_for_h264(&modes[2..4], None, None, None),
            Some(modes[3])
        );
        assert_eq!(pick_mode(&modes[2..4], None, None, None), None);
    }

    #[test]
    fn a_cameras_h264_starts_at_a_keyframe_with_parameter_sets_and_refuses_b_frames() {
        let mut encoder = crate::H264Encoder::new(crate::H264Config {
            keyint_frames: 4,
            ..crate::H264Config::default()
        })
        .expect("encoder");
        let config = crate::TestPatternConfig {
            width: 160,
            height: 120,
            fps: 30.0,
            label: "cam".into(),
            paced: false,
        };
        let clock = Arc::new(crate::ManualClock::new(0));
        let mut pattern = crate::TestPattern::new(config, clock).expect("pattern");
        let units: Vec<Vec<u8>> = (0..10)
            .map(|seq| {
                let frame =
                    crate::Encoder::encode(&mut encoder, &pattern.render(seq, 0)).expect("encodes");
                frame.data.to_vec()
            })
            .collect();
        let strip_sets = |unit: &[u8]| -> Vec<u8> {
            vidcast_h264::nal_units(unit)
                .into_iter()
                .filter(|nal| !matches!(nal[0] & 0x1f, 7 | 8))
                .flat_map(|nal| [&[0, 0, 0, 1][..], nal].concat())
                .collect()
        };
        let device = Path::new("/dev/video9");
        let mut passthrough = H264Passthrough::default();
        let mut decoder = crate::H264Decoder::new().expect("decoder");
        let mut sent = Vec::new();
        // The camera's stream is joined at frame 2: frames 2 and 3 cannot be decoded.
        for (seq, unit) in units.iter().enumerate().skip(2) {
            // Parameter sets only with the first keyframe (frame 4).
            let unit = if seq == 4 {
                unit.clone()
            } else {
                strip_sets(unit)
            };
            let Captured::H264(frame) =
                camera_frame(PixelKind::H264, &unit, 160, 120, 0, seq as u64, 0).expect("ok")
            else {
                panic!("H.264 passes through");
            };
            if let Some(frame) = passthrough.accept(device, frame).expect("no B-frames") {
                assert!(decoder.decode(&frame.data).expect("decodes").is_some());
                sent.push((frame.seq, frame.is_keyframe));
            }
        }
        assert_eq!(
            sent,
            [
                (4, true),
                (5, false),
                (6, false),
                (7, false),
                (8, true),
                (9, false)
            ]
        );
        // Frame 8's keyframe had its parameter sets put back: a new viewer starts there.
        let b_slice = [0, 0, 0, 1, 0x01, 0b1010_0000, 0x80];
        let Captured::H264(frame) =
            camera_frame(PixelKind::H264, &b_slice, 160, 120, 0, 10, 0).expect("ok")
        else {
            panic!("H.264 passes through");
        };
        let err = passthrough.accept(device, frame).expect_err("B-frames");
        assert!(err.to_string().contains("--codec jpeg"), "{err}");
    }

    #[test]
    fn camera_buffers_become_frames() {
        // YUYV: a red pair, stride padded to 8 bytes.
        let yuyv = [81, 90, 81, 240, 0, 0, 0, 0];
        let Captured::Raw(f) = camera_frame(PixelKind::Yuyv, &yuyv, 2, 1, 8, 4, 9).expect("ok")
        else {
            panic!("YUYV gives raw pixels");
        };
        assert_eq!((f.width, f.height, f.seq, f.capture_us), (2, 1, 4, 9));
        assert_eq!(f.format, crate::PixelFormat::I420, "one copy, no RGB");
        assert_eq!(f.data, [81, 81, 90, 240]);
        assert_eq!(*f.to_rgb().expect("valid"), [255, 0, 0, 255, 0, 0]);
        // NV12: 2x2 white, then the UV pair.
        let nv12 = [235, 235, 235, 235, 128, 128];
        let Captured::Raw(f) = camera_frame(PixelKind::Nv12, &nv12, 2, 2, 2, 0, 0).expect("ok")
        else {
            panic!("NV12 gives raw pixels");
        };
        assert_eq!(f.data, [235, 235, 235, 235, 128, 128]);
        assert_eq!(*f.to_rgb().expect("valid"), [255; 12]);
        assert!(camera_frame(PixelKind::Nv12, &nv12[..5], 2, 2, 2, 0, 0).is_err());
    }

    #[test]
    fn mjpeg_passes_through_with_tables_completed() {
        let frame = RawFrame {
            width: 32,
            height: 16,
            format: crate::PixelFormat::Rgb8,
            data: [200u8, 30, 60].repeat(32 * 16),
            seq: 0,
            capture_us: 0,
        };
        let jpeg = crate::Encoder::encode(&mut crate::JpegEncoder::new(90).expect("q"), &frame)
            .expect("encodes")
            .data;
        let Captured::Jpeg(out) =
            camera_frame(PixelKind::Mjpeg, &jpeg, 32, 16, 0, 3, 7).expect("ok")
        else {
            panic!("MJPEG passes through");
        };
        assert_eq!(out.data, jpeg, "a complete JPEG is not touched");
        assert_eq!(
            (out.width, out.height, out.seq, out.capture_us),
            (32, 16, 3, 7)
        );
        let raw = Captured::Jpeg(out).into_raw().expect("decodes");
        assert!(raw.data.chunks_exact(3).all(|p| p
            .iter()
            .zip([200u8, 30, 60])
            .all(|(a, b)| a.abs_diff(b) <= 3)));
    }

    #[test]
    fn a_missing_device_is_a_one_line_error_that_says_what_to_do() {
        let clock: Arc<dyn Clock> = Arc::new(crate::ManualClock::new(0));
        let err = Camera::open(Path::new("/dev/video-none-such"), None, None, None, clock)
            .expect_err("no such camera");
        let text = err.to_string();
        assert!(
            text.starts_with("camera /dev/video-none-such: no such device"),
            "{text}"
        );
        assert!(text.contains("vidcast devices"), "{text}");
        assert!(!text.contains('\n'));
    }
}
