//! Y4M (YUV4MPEG2) from a file, stdin or a pipe, played at its own frame rate.

use std::io::{Cursor, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::pace::{pts_us, Pacer};
use super::yuv::{i420_from_planes, planar_to_rgb, Planes, Subsampling};
use super::{VideoSource, MAX_DIMENSION, MAX_FPS};
use crate::{Clock, MediaError, PixelFormat, RawFrame};

/// Raw YUV frames from a Y4M stream (8-bit 4:2:0, 4:2:2, 4:4:4 or grey), converted to RGB
/// and played in real time at the header's frame rate.
pub struct Y4mSource<R: Read + Send> {
    decoder: y4m::Decoder<Counting<std::io::Chain<Cursor<Vec<u8>>, R>>>,
    /// Bytes read so far: the y4m crate reports a frame cut short as a clean end, so a
    /// frame that ends with bytes read is told apart by this count.
    read_bytes: Arc<AtomicU64>,
    what: String,
    width: u32,
    height: u32,
    fps: f64,
    subsampling: Subsampling,
    pacer: Pacer,
    next_index: u64,
}

impl<R: Read + Send> std::fmt::Debug for Y4mSource<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Y4mSource")
            .field("what", &self.what)
            .field("size", &(self.width, self.height))
            .field("fps", &self.fps)
            .finish_non_exhaustive()
    }
}

impl<R: Read + Send> Y4mSource<R> {
    /// Reads the Y4M header from `reader`; `what` names the input in errors ("clip.y4m",
    /// "stdin"). Fails on anything that is not an 8-bit Y4M stream of a sane size and rate.
    pub fn new(reader: R, what: &str, clock: Arc<dyn Clock>) -> Result<Self, MediaError> {
        let input = |reason: String| MediaError::Input {
            what: what.to_owned(),
            reason,
        };
        let max = MAX_DIMENSION as usize;
        let limits = y4m::Limits {
            bytes: max * max * 3,
        };
        // The y4m crate multiplies width by height before any check (overflow panic on a
        // hostile header): read and check the header line first, then hand it back.
        let mut reader = reader;
        let header = read_header_line(&mut reader).map_err(|source| MediaError::Io {
            what: what.to_owned(),
            source,
        })?;
        check_header(&header).map_err(input)?;
        let read_bytes = Arc::new(AtomicU64::new(0));
        let reader = Counting {
            inner: Cursor::new(header).chain(reader),
            count: Arc::clone(&read_bytes),
        };
        let decoder = y4m::Decoder::new_with_limits(reader, limits).map_err(|e| match e {
            y4m::Error::EOF => input(
                "not a Y4M stream: no \"YUV4MPEG2 W… H…\" header line (empty or cut short)".into(),
            ),
            y4m::Error::IoError(source) => MediaError::Io {
                what: what.to_owned(),
                source,
            },
            y4m::Error::UnknownColorspace => {
                input("unsupported Y4M colour space (convert with ffmpeg -pix_fmt yuv420p)".into())
            }
            y4m::Error::OutOfMemory => input(format!(
                "Y4M frame larger than {MAX_DIMENSION}x{MAX_DIMENSION}"
            )),
            other => input(format!(
                "not a Y4M stream (it must start with \"YUV4MPEG2 W… H…\"): {other}"
            )),
        })?;
        let (w, h) = (decoder.get_width(), decoder.get_height());
        let (width, height) = match (u32::try_from(w), u32::try_from(h)) {
            (Ok(w), Ok(h)) if w <= MAX_DIMENSION && h <= MAX_DIMENSION => (w, h),
            _ => return Err(input(format!("size {w}x{h} is over {MAX_DIMENSION}"))),
        };
        let rate = decoder.get_framerate();
        let fps = rate.num as f64 / rate.den as f64;
        if !(fps.is_finite() && fps > 0.0 && fps <= MAX_FPS) {
            return Err(input(format!("frame rate {rate} is not in (0, {MAX_FPS}]")));
        }
        let subsampling = match decoder.get_colorspace() {
            y4m::Colorspace::C420
            | y4m::Colorspace::C420jpeg
            | y4m::Colorspace::C420paldv
            | y4m::Colorspace::C420mpeg2 => Subsampling::Half,
            y4m::Colorspace::C422 => Subsampling::HalfWidth,
            y4m::Colorspace::C444 => Subsampling::Full,
            y4m::Colorspace::Cmono => Subsampling::Mono,
            other => {
                return Err(input(format!(
                    "{other:?} ({}-bit) is not supported; convert with ffmpeg -pix_fmt yuv420p",
                    other.get_bit_depth()
                )))
            }
        };
        Ok(Self {
            decoder,
            read_bytes,
            what: what.to_owned(),
            width,
            height,
            fps,
            subsampling,
            pacer: Pacer::new(clock),
            next_index: 0,
        })
    }

    /// Reads and converts the next frame without waiting; `None` at a clean end.
    fn read(&mut self) -> Result<Option<RawFrame>, MediaError> {
        let index = self.next_index;
        let input = |reason: String| MediaError::Input {
            what: self.what.clone(),
            reason,
        };
        let before = self.read_bytes.load(Ordering::Relaxed);
        let frame = match self.decoder.read_frame() {
            Ok(frame) => frame,
            Err(y4m::Error::EOF) if self.read_bytes.load(Ordering::Relaxed) == before => {
                return Ok(None)
            }
            Err(y4m::Error::EOF) => {
                return Err(input(format!("truncated: frame {index} is cut short")))
            }
            Err(y4m::Error::IoError(source)) => {
                return Err(MediaError::Io {
                    what: self.what.clone(),
                    source,
                })
            }
            Err(e) => return Err(input(format!("bad header of frame {index}: {e}"))),
        };
        let (cw, _) = self.subsampling.chroma_size(self.width, self.height);
        let planes = Planes {
            y: frame.get_y_plane(),
            u: frame.get_u_plane(),
            v: frame.get_v_plane(),
            y_stride: self.width as usize,
            uv_stride: cw as usize,
        };
        // 4:2:0 stays as it is (one copy out of the reader's buffer); the rarer 4:2:2,
        // 4:4:4 and grey files become RGB8.
        let (format, data) = match self.subsampling {
            Subsampling::Half => (
                PixelFormat::I420,
                i420_from_planes(&planes, self.width, self.height)?,
            ),
            other => (
                PixelFormat::Rgb8,
                planar_to_rgb(&planes, self.width, self.height, other)?,
            ),
        };
        self.next_index += 1;
        Ok(Some(RawFrame {
            width: self.width,
            height: self.height,
            format,
            data,
            seq: index,
            capture_us: 0,
        }))
    }
}

impl<R: Read + Send> VideoSource for Y4mSource<R> {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn fps(&self) -> f64 {
        self.fps
    }

    fn describe(&self) -> String {
        format!(
            "{} (Y4M {}x{} @ {:.3} fps)",
            self.what, self.width, self.height, self.fps
        )
    }

    /// Frame n plays `n / fps` after frame 0 (see [`Pacer`] for a machine that stalls).
    fn next_frame(&mut self) -> Result<Option<RawFrame>, MediaError> {
        let Some(mut frame) = self.read()? else {
            return Ok(None);
        };
        frame.capture_us = self.pacer.wait(pts_us(frame.seq, self.fps));
        Ok(Some(frame))
    }
}

/// Longest header line read (the y4m crate's own limit).
const MAX_HEADER: usize = 1024;

/// The stream's first line, newline included (or whatever came before the end or the limit).
fn read_header_line(reader: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    while line.len() < MAX_HEADER {
        if reader.read(&mut byte)? == 0 {
            break;
        }
        line.push(byte[0]);
        if byte[0] == b'\n' {
            break;
        }
    }
    Ok(line)
}

/// Width and height within [`MAX_DIMENSION`] (the rest is the y4m crate's to judge); other
/// formats are named, so a user who piped an MP4 learns what to do.
fn check_header(line: &[u8]) -> Result<(), String> {
    if !line.is_empty() && !line.starts_with(b"YUV4MPEG2") {
        let looks_like = match line {
            [_, _, _, _, b'f', b't', b'y', b'p', ..] => " (looks like MP4)",
            [0x1a, 0x45, 0xdf, 0xa3, ..] => " (looks like Matroska/WebM)",
            [0, 0, 0, 1, ..] | [0, 0, 1, ..] => " (looks like raw H.264)",
            [0xff, 0xd8, ..] => " (looks like JPEG)",
            [0x47, ..] => " (looks like MPEG-TS)",
            _ => "",
        };
        return Err(format!(
            "not Y4M{looks_like}: give a file with --source FILE, or convert on the way with \
             `ffmpeg -i INPUT -f yuv4mpegpipe - | vidcast send --source - …`"
        ));
    }
    for field in line.trim_ascii_end().split(|&b| b == b' ').skip(1) {
        if let Some((&tag @ (b'W' | b'H'), value)) = field.split_first() {
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<u64>().ok());
            match n {
                Some(n) if n <= u64::from(MAX_DIMENSION) => {}
                _ => {
                    return Err(format!(
                        "{} {:?} is not a number up to {MAX_DIMENSION}",
                        if tag == b'W' { "width" } else { "height" },
                        String::from_utf8_lossy(value)
                    ))
                }
            }
        }
    }
    Ok(())
}

/// A reader that counts the bytes it hands out.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Writes `frames` flat-colour I420 frames as Y4M: frame `i` has luma `16 + i % 200`. For
/// tests (here and in the CLI's), so they need no tool to make a video file.
pub fn write_test_y4m(
    out: &mut impl std::io::Write,
    width: u32,
    height: u32,
    fps: (usize, usize),
    frames: u32,
) -> Result<(), MediaError> {
    let err = |e: y4m::Error| MediaError::Input {
        what: "y4m writer".into(),
        reason: e.to_string(),
    };
    let mut enc = y4m::encode(
        width as usize,
        height as usize,
        y4m::Ratio::new(fps.0, fps.1),
    )
    .with_colorspace(y4m::Colorspace::C420)
    .write_header(out)
    .map_err(err)?;
    let (cw, ch) = Subsampling::Half.chroma_size(width, height);
    let chroma = vec![128u8; (cw * ch) as usize];
    for i in 0..frames {
        let luma = vec![16 + (i % 200) as u8; (width * height) as usize];
        enc.write_frame(&y4m::Frame::new([&luma, &chroma, &chroma], None))
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn y4m_bytes(width: u32, height: u32, fps: (usize, usize), frames: u32) -> Vec<u8> {
        let mut out = Vec::new();
        write_test_y4m(&mut out, width, height, fps, frames).expect("writes");
        out
    }

    #[test]
    fn plays_every_frame_at_the_file_rate_then_ends() {
        let clock = Arc::new(ManualClock::new(5_000_000));
        let data = y4m_bytes(33, 17, (25, 1), 10);
        let mut s = Y4mSource::new(&data[..], "clip.y4m", clock.clone()).expect("opens");
        assert_eq!((s.size(), s.fps()), ((33, 17), 25.0));
        let mut n = 0;
        while let Some(f) = s.next_frame().expect("reads") {
            assert_eq!((f.width, f.height, f.seq), (33, 17, n));
            assert_eq!(f.capture_us, 5_000_000 + n * 40_000, "frame {n}");
            // 4:2:0 stays I420: the file's own samples, odd size with chroma rounded up.
            assert_eq!(f.format, crate::PixelFormat::I420);
            assert_eq!(f.data.len(), 33 * 17 + 2 * 17 * 9);
            assert_eq!(f.data[0], 16 + n as u8);
            let grey = f.to_rgb().expect("valid")[0];
            let want = super::super::yuv::yuv_to_rgb(16 + n as u8, 128, 128)[0];
            assert_eq!(grey, want);
            n += 1;
        }
        assert_eq!(n, 10);
        assert!(s.next_frame().expect("still fine").is_none());
    }

    #[test]
    fn garbage_and_truncation_are_clear_errors() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
        for (bytes, needle) in [
            (&b""[..], "not a Y4M stream"),
            (b"hello world, not a video\n", "not Y4M"),
            (b"YUV4MPEG2 W0 H0 F25:1\n", "not a Y4M stream"),
            (b"\0\0\0\x20ftypisom\0\0\x02\0", "not Y4M (looks like MP4)"),
            (b"YUV4MPEG2 W64 H64 F0:1\n", "frame rate"),
            (b"YUV4MPEG2 W64 H64 F25:1 C420p10\n", "not supported"),
            (
                b"YUV4MPEG2 W99999 H99 F25:1\n",
                "width \"99999\" is not a number up to",
            ),
            (
                b"YUV4MPEG2 W99999999999 H99999999999 F25:1\n",
                "not a number up to",
            ),
            (b"YUV4MPEG2 W64 H-1 F25:1\n", "height \"-1\""),
        ] {
            let err = Y4mSource::new(bytes, "x.y4m", clock.clone()).expect_err("refused");
            assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
            assert!(err.to_string().starts_with("x.y4m: "), "{err}");
        }
        let mut data = y4m_bytes(16, 16, (30, 1), 3);
        data.truncate(data.len() - 10);
        let mut s = Y4mSource::new(&data[..], "cut.y4m", clock.clone()).expect("header ok");
        assert!(s.next_frame().expect("frame 0").is_some());
        assert!(s.next_frame().expect("frame 1").is_some());
        let err = s.next_frame().expect_err("frame 2 is cut");
        assert_eq!(err.to_string(), "cut.y4m: truncated: frame 2 is cut short");
        let mut data = y4m_bytes(16, 16, (30, 1), 2);
        let second = data.len() - (16 * 16 * 3 / 2) - 6;
        data[second..second + 5].copy_from_slice(b"FRAMX");
        let mut s = Y4mSource::new(&data[..], "bad.y4m", clock).expect("header ok");
        assert!(s.next_frame().expect("frame 0").is_some());
        let err = s.next_frame().expect_err("frame 1 header is bad");
        assert!(err.to_string().contains("bad header of frame 1"), "{err}");
    }
}
