//! Sources wrapped in other sources: scaled, rate-capped, looped.

use super::pace::RateCap;
use super::{Captured, VideoSource};
use crate::scale::{output_size, ResizeScaler, Scaler};
use crate::{MediaError, RawFrame};

/// Frames of `inner` resized to a fixed size (the JPEG a camera sent is decoded first).
pub struct Scaled {
    inner: Box<dyn VideoSource>,
    scaler: ResizeScaler,
}

impl Scaled {
    /// `inner` scaled to `width` x `height`.
    pub fn new(inner: Box<dyn VideoSource>, width: u32, height: u32) -> Result<Self, MediaError> {
        Ok(Self {
            inner,
            scaler: ResizeScaler::new(width, height)?,
        })
    }
}

impl VideoSource for Scaled {
    fn size(&self) -> (u32, u32) {
        self.scaler.output_size()
    }
    fn fps(&self) -> f64 {
        self.inner.fps()
    }
    fn describe(&self) -> String {
        let (w, h) = self.size();
        format!("{}, scaled to {w}x{h}", self.inner.describe())
    }
    fn next_frame(&mut self) -> Result<Option<RawFrame>, MediaError> {
        match self.inner.next_captured()? {
            Some(c) => Ok(Some(self.scaler.scale(&c.into_raw()?)?)),
            None => Ok(None),
        }
    }
}

/// `inner` with at most `fps` frames a second: extra frames are dropped, never added.
pub struct Capped {
    inner: Box<dyn VideoSource>,
    cap: RateCap,
    fps: f64,
}

impl Capped {
    /// `inner` capped at `fps` (`> 0`).
    pub fn new(inner: Box<dyn VideoSource>, fps: f64) -> Self {
        Self {
            inner,
            cap: RateCap::new(fps),
            fps,
        }
    }
}

impl VideoSource for Capped {
    fn size(&self) -> (u32, u32) {
        self.inner.size()
    }
    fn fps(&self) -> f64 {
        self.inner.fps().min(self.fps)
    }
    fn describe(&self) -> String {
        format!("{}, capped at {} fps", self.inner.describe(), self.fps)
    }
    fn next_frame(&mut self) -> Result<Option<RawFrame>, MediaError> {
        self.next_captured()?.map(Captured::into_raw).transpose()
    }
    fn next_captured(&mut self) -> Result<Option<Captured>, MediaError> {
        while let Some(frame) = self.inner.next_captured()? {
            if self.cap.admit(frame.capture_us()) {
                return Ok(Some(frame));
            }
        }
        Ok(None)
    }
}

/// Opens a fresh copy of a source (the same file from the start).
pub type Reopen = Box<dyn FnMut() -> Result<Box<dyn VideoSource>, MediaError> + Send>;

/// Plays a source again from the start whenever it ends, numbering frames on across loops
/// (the hub counts a backwards frame number as out of order).
pub struct Looping {
    reopen: Reopen,
    current: Box<dyn VideoSource>,
    seq_offset: u64,
    next_seq: u64,
    loops: u64,
}

impl Looping {
    /// Plays `reopen()`'s source over and over.
    pub fn new(mut reopen: Reopen) -> Result<Self, MediaError> {
        let current = reopen()?;
        Ok(Self {
            reopen,
            current,
            seq_offset: 0,
            next_seq: 0,
            loops: 0,
        })
    }
}

impl VideoSource for Looping {
    fn size(&self) -> (u32, u32) {
        self.current.size()
    }
    fn fps(&self) -> f64 {
        self.current.fps()
    }
    fn describe(&self) -> String {
        format!("{}, looping", self.current.describe())
    }
    fn next_frame(&mut self) -> Result<Option<RawFrame>, MediaError> {
        self.next_captured()?.map(Captured::into_raw).transpose()
    }
    fn next_captured(&mut self) -> Result<Option<Captured>, MediaError> {
        let mut fresh = false;
        loop {
            if let Some(mut frame) = self.current.next_captured()? {
                let seq = self.seq_offset + frame.seq();
                frame.set_seq(seq);
                self.next_seq = seq + 1;
                return Ok(Some(frame));
            }
            if fresh {
                // A reopened source with no frame at all: looping it would spin forever.
                return Ok(None);
            }
            let size = self.current.size();
            self.current = (self.reopen)()?;
            if self.current.size() != size {
                return Err(MediaError::Input {
                    what: self.current.describe(),
                    reason: format!("size changed from {}x{} between loops", size.0, size.1),
                });
            }
            self.seq_offset = self.next_seq;
            self.loops += 1;
            tracing::debug!(loops = self.loops, "source ended, playing it again");
            fresh = true;
        }
    }
}

/// `source` scaled to the size asked for and capped at `fps`, whichever of those apply.
///
/// `width` alone keeps the aspect ratio (so does `height` alone); both give exactly that
/// size; neither keeps the source's size. The JPEG a camera sends passes through untouched
/// when no scaling is asked for.
pub fn fit(
    source: Box<dyn VideoSource>,
    width: Option<u32>,
    height: Option<u32>,
    fps: Option<f64>,
) -> Result<Box<dyn VideoSource>, MediaError> {
    let (sw, sh) = source.size();
    let (w, h) = output_size(sw, sh, width, height);
    let mut source = if (w, h) == (sw, sh) {
        source
    } else {
        Box::new(Scaled::new(source, w, h)?)
    };
    if let Some(fps) = fps {
        if !(fps.is_finite() && fps > 0.0) {
            return Err(MediaError::InvalidFps {
                fps,
                max: super::MAX_FPS,
            });
        }
        if fps < source.fps() {
            source = Box::new(Capped::new(source, fps));
        }
    }
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use std::sync::Arc;

    /// `n` flat frames at `fps`, timestamped on a manual clock, then the end.
    struct Counted {
        n: u64,
        next: u64,
        fps: f64,
        clock: Arc<ManualClock>,
    }

    impl VideoSource for Counted {
        fn size(&self) -> (u32, u32) {
            (8, 6)
        }
        fn fps(&self) -> f64 {
            self.fps
        }
        fn describe(&self) -> String {
            "counted".into()
        }
        fn next_frame(&mut self) -> Result<Option<RawFrame>, MediaError> {
            if self.next == self.n {
                return Ok(None);
            }
            let seq = self.next;
            self.next += 1;
            self.clock.advance((1e6 / self.fps) as u64);
            Ok(Some(RawFrame {
                width: 8,
                height: 6,
                format: crate::PixelFormat::Rgb8,
                data: vec![seq as u8; 8 * 6 * 3],
                seq,
                capture_us: crate::Clock::now_us(&*self.clock),
            }))
        }
    }

    fn counted(n: u64, fps: f64, clock: &Arc<ManualClock>) -> Box<dyn VideoSource> {
        Box::new(Counted {
            n,
            next: 0,
            fps,
            clock: clock.clone(),
        })
    }

    fn drain(s: &mut dyn VideoSource, max: usize) -> Vec<RawFrame> {
        let mut out = Vec::new();
        while out.len() < max {
            match s.next_frame().expect("no error") {
                Some(f) => out.push(f),
                None => break,
            }
        }
        out
    }

    #[test]
    fn looping_replays_and_numbers_frames_on() {
        let clock = Arc::new(ManualClock::new(0));
        let c = clock.clone();
        let mut s = Looping::new(Box::new(move || Ok(counted(3, 30.0, &c)))).expect("opens");
        let seqs: Vec<u64> = drain(&mut s, 8).iter().map(|f| f.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4, 5, 6, 7]);
        let pixels: Vec<u8> = drain(&mut s, 3).iter().map(|f| f.data[0]).collect();
        assert_eq!(pixels, [2, 0, 1], "frames 8..11 are file frames 2, 0, 1");
    }

    #[test]
    fn looping_an_empty_source_ends_instead_of_spinning() {
        let clock = Arc::new(ManualClock::new(0));
        let c = clock.clone();
        let mut s = Looping::new(Box::new(move || Ok(counted(0, 30.0, &c)))).expect("opens");
        assert!(s.next_frame().expect("ok").is_none());
    }

    #[test]
    fn fit_scales_keeping_aspect_and_caps_the_rate() {
        let clock = Arc::new(ManualClock::new(0));
        let mut s = fit(counted(30, 30.0, &clock), Some(4), None, Some(10.0)).expect("fits");
        assert_eq!(
            s.size(),
            (4, 4),
            "8x6 at width 4 is 4x3, rounded to even 4x4"
        );
        assert_eq!(s.fps(), 10.0);
        let frames = drain(&mut *s, 100);
        assert_eq!(frames.len(), 10);
        assert!(frames.iter().all(|f| (f.width, f.height) == (4, 4)));
        // Nothing asked: the very same source.
        let s = fit(counted(1, 30.0, &clock), None, None, Some(60.0)).expect("fits");
        assert_eq!((s.size(), s.describe()), ((8, 6), "counted".to_owned()));
        assert!(fit(counted(1, 30.0, &clock), None, None, Some(0.0)).is_err());
    }
}
