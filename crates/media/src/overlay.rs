//! Drawing on frames, RGB8 or I420: filled rectangles and 8x8 bitmap text, through the
//! [`Picture`] view.
//!
//! Every method clips to the picture and never panics: a buffer shorter than its layout
//! needs, or a zero size, makes it draw nothing.
//!
//! On I420, rectangles set luma and the chroma samples they touch (a 4:2:0 sample covers
//! 2x2 pixels, so an odd edge colours one pixel more in chroma); text strokes set luma only,
//! so text keeps the colour of the box under it (the label's box, or the picture).

use font8x8::legacy::BASIC_LEGACY;

use crate::source::yuv::rgb_to_yuv;
use crate::{chroma_size, PixelFormat, RawFrame};

/// Glyph cell size of the 8x8 font, in font pixels.
const GLYPH: u64 = 8;

/// The glyph bitmap for `c`: rows top to bottom, bit 0 is the leftmost pixel.
///
/// `BASIC_LEGACY` holds the same ASCII glyphs as font8x8's `BASIC_FONTS`, but is indexed
/// directly (no binary search, no `unicode` feature). Control and non-ASCII characters
/// are drawn as '?'.
fn glyph(c: char) -> [u8; 8] {
    let code = u32::from(c);
    let printable = (0x20..0x7f).contains(&code);
    BASIC_LEGACY[if printable {
        code as usize
    } else {
        usize::from(b'?')
    }]
}

/// The visible `(x, y, w, h)` part of a rectangle, or `None` if it is off-frame or empty.
/// Works in u64 so that no input overflows.
fn clip(
    width: u32,
    height: u32,
    (x, y, w, h): (u64, u64, u64, u64),
) -> Option<(usize, usize, usize, usize)> {
    let (width, height) = (u64::from(width), u64::from(height));
    if x >= width || y >= height || w == 0 || h == 0 {
        return None;
    }
    let w = w.min(width - x);
    let h = h.min(height - y);
    Some((x as usize, y as usize, w as usize, h as usize))
}

/// How [`Picture::draw_text`] draws: each font pixel a `scale` x `scale` square in `fg`;
/// with `bg`, the whole text box is filled first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextStyle {
    /// Size of one font pixel in picture pixels (0 draws nothing).
    pub scale: u32,
    /// Text colour, RGB.
    pub fg: [u8; 3],
    /// Box colour, RGB, if any.
    pub bg: Option<[u8; 3]>,
}

impl TextStyle {
    /// `fg` text at `scale` with no box.
    pub fn new(scale: u32, fg: [u8; 3]) -> Self {
        Self {
            scale,
            fg,
            bg: None,
        }
    }
}

/// A picture to draw on: pixels borrowed mutably from a frame or a canvas, with their size
/// and layout.
#[derive(Debug)]
pub struct Picture<'a> {
    data: &'a mut [u8],
    width: u32,
    height: u32,
    format: PixelFormat,
}

impl<'a> Picture<'a> {
    /// `data` as a `width` x `height` picture in `format` (tightly packed, as in
    /// [`RawFrame`]). A buffer too short for that makes every drawing call a no-op.
    pub fn new(data: &'a mut [u8], width: u32, height: u32, format: PixelFormat) -> Self {
        Self {
            data,
            width,
            height,
            format,
        }
    }

    /// `rgb` as a `width` x `height` packed RGB8 picture.
    pub fn rgb(rgb: &'a mut [u8], width: u32, height: u32) -> Self {
        Self::new(rgb, width, height, PixelFormat::Rgb8)
    }

    /// A frame's pixels, in its layout.
    pub fn of(frame: &'a mut RawFrame) -> Self {
        Self::new(&mut frame.data, frame.width, frame.height, frame.format)
    }

    /// True if the buffer can hold the picture.
    fn fits(&self) -> bool {
        self.width > 0
            && self.height > 0
            && self.data.len() >= self.format.frame_len(self.width, self.height)
    }

    /// Fills a rectangle (already in range or not) with `color`; on I420, chroma too
    /// unless `luma_only`.
    fn fill_clipped(&mut self, rect: (u64, u64, u64, u64), color: [u8; 3], luma_only: bool) {
        let Some((x, y, w, h)) = clip(self.width, self.height, rect) else {
            return;
        };
        let width = self.width as usize;
        match self.format {
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => {
                let color = if self.format == PixelFormat::Bgr8 {
                    [color[2], color[1], color[0]]
                } else {
                    color
                };
                let stride = width * 3;
                for row in y..y + h {
                    let start = row * stride + x * 3;
                    for px in self.data[start..start + w * 3].chunks_exact_mut(3) {
                        px.copy_from_slice(&color);
                    }
                }
            }
            PixelFormat::I420 => {
                let [luma, u, v] = rgb_to_yuv(color[0], color[1], color[2]);
                for row in y..y + h {
                    self.data[row * width + x..][..w].fill(luma);
                }
                if luma_only {
                    return;
                }
                let (cw, ch) = chroma_size(self.width, self.height);
                let (cw, ch) = (cw as usize, ch as usize);
                let (cx, cy) = (x / 2, y / 2);
                let (cx_end, cy_end) = ((x + w).div_ceil(2), (y + h).div_ceil(2));
                let u_start = width * self.height as usize;
                for (plane_start, value) in [(u_start, u), (u_start + cw * ch, v)] {
                    for row in cy..cy_end {
                        self.data[plane_start + row * cw + cx..][..cx_end - cx].fill(value);
                    }
                }
            }
        }
    }

    /// Fill the rectangle at `(x, y)` of size `w` x `h` with `color` (RGB), clipped to the
    /// picture.
    pub fn fill_rect(&mut self, x: u32, y: u32, w: u32, h: u32, color: [u8; 3]) {
        if !self.fits() {
            return;
        }
        self.fill_clipped((x.into(), y.into(), w.into(), h.into()), color, false);
    }

    /// Draw `text` on one line with its top-left corner at `(x, y)` in `style`.
    ///
    /// Clipped to the picture; characters outside printable ASCII are drawn as '?'.
    pub fn draw_text(&mut self, x: u32, y: u32, text: &str, style: &TextStyle) {
        if !self.fits() || style.scale == 0 {
            return;
        }
        let (x, y, s) = (u64::from(x), u64::from(y), u64::from(style.scale));
        let cell = GLYPH * s;
        for (i, c) in text.chars().enumerate() {
            let cx = x.saturating_add((i as u64).saturating_mul(cell));
            if cx >= u64::from(self.width) {
                break; // the rest of the line is off-frame
            }
            if let Some(bg) = style.bg {
                self.fill_clipped((cx, y, cell, cell), bg, false);
            }
            for (gy, bits) in glyph(c).iter().enumerate() {
                let py = y + gy as u64 * s;
                // Draw runs of set bits as one rectangle each: fewer calls at large scales.
                let mut gx = 0u64;
                while gx < GLYPH {
                    if bits >> gx & 1 == 0 {
                        gx += 1;
                        continue;
                    }
                    let run_start = gx;
                    while gx < GLYPH && bits >> gx & 1 == 1 {
                        gx += 1;
                    }
                    let rect = (cx + run_start * s, py, (gx - run_start) * s, s);
                    self.fill_clipped(rect, style.fg, true);
                }
            }
        }
    }

    /// Draw `text` in white on a `bg` box in the top-left corner, sized for the picture
    /// height (like the original project's `CLIENT: 10.0.0.5:51234` label).
    pub fn draw_label(&mut self, text: &str, bg: [u8; 3]) {
        let scale = (self.height / 240).max(1);
        let pad = 2 * scale;
        let (tw, th) = text_size(text, scale);
        self.fill_rect(
            0,
            0,
            tw.saturating_add(2 * pad),
            th.saturating_add(2 * pad),
            bg,
        );
        self.draw_text(pad, pad, text, &TextStyle::new(scale, [255, 255, 255]));
    }
}

/// Size in pixels of `text` drawn on one line at `scale` (8 * scale pixels per character).
pub fn text_size(text: &str, scale: u32) -> (u32, u32) {
    let chars = u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
    let w = chars.saturating_mul(GLYPH).saturating_mul(scale.into());
    let h = GLYPH * u64::from(scale);
    (
        u32::try_from(w).unwrap_or(u32::MAX),
        u32::try_from(h).unwrap_or(u32::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn count_color(rgb: &[u8], color: [u8; 3]) -> usize {
        rgb.chunks_exact(3).filter(|p| *p == color).count()
    }

    #[test]
    fn fill_rect_is_clipped_to_the_frame() {
        let mut rgb = vec![0u8; 10 * 10 * 3];
        Picture::rgb(&mut rgb, 10, 10).fill_rect(8, 8, 100, 100, [1, 2, 3]);
        assert_eq!(count_color(&rgb, [1, 2, 3]), 4);
    }

    #[test]
    fn text_size_is_eight_pixels_per_char_times_scale() {
        assert_eq!(text_size("#000123", 2), (7 * 16, 16));
        assert_eq!(text_size("", 3), (0, 24));
    }

    #[test]
    fn draw_text_sets_fg_inside_text_box_only() {
        let (w, h) = (64u32, 32u32);
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        let style = TextStyle {
            scale: 2,
            fg: [255, 0, 0],
            bg: Some([0, 0, 255]),
        };
        Picture::rgb(&mut rgb, w, h).draw_text(4, 4, "Hi", &style);
        let (tw, th) = text_size("Hi", 2);
        for yy in 0..h {
            for xx in 0..w {
                let i = ((yy * w + xx) * 3) as usize;
                let inside = (4..4 + tw).contains(&xx) && (4..4 + th).contains(&yy);
                let px = [rgb[i], rgb[i + 1], rgb[i + 2]];
                if inside {
                    assert!(px == [255, 0, 0] || px == [0, 0, 255]);
                } else {
                    assert_eq!(px, [0, 0, 0]);
                }
            }
        }
        assert!(count_color(&rgb, [255, 0, 0]) > 0);
    }

    #[test]
    fn non_ascii_is_drawn_as_question_mark() {
        let mut a = vec![0u8; 16 * 8 * 3];
        let mut b = a.clone();
        Picture::rgb(&mut a, 16, 8).draw_text(0, 0, "é\n", &TextStyle::new(1, [255; 3]));
        Picture::rgb(&mut b, 16, 8).draw_text(0, 0, "??", &TextStyle::new(1, [255; 3]));
        assert_eq!(a, b);
    }

    #[test]
    fn short_buffer_draws_nothing() {
        let mut rgb = vec![0u8; 5];
        let style = TextStyle {
            bg: Some([1; 3]),
            ..TextStyle::new(1, [255; 3])
        };
        for format in [PixelFormat::Rgb8, PixelFormat::I420, PixelFormat::Bgr8] {
            let mut picture = Picture::new(&mut rgb, 100, 100, format);
            picture.draw_text(0, 0, "X", &style);
            picture.fill_rect(0, 0, 10, 10, [255; 3]);
            picture.draw_label("CLIENT: 10.0.0.5:51234", [0, 0, 128]);
        }
        assert_eq!(rgb, vec![0u8; 5]);
    }

    #[test]
    fn label_sits_in_top_left_corner() {
        let (w, h) = (320u32, 240u32);
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        Picture::rgb(&mut rgb, w, h).draw_label("CLIENT: 10.0.0.5:51234", [0, 0, 128]);
        assert_eq!(&rgb[0..3], &[0, 0, 128]);
        let (tw, _) = text_size("CLIENT: 10.0.0.5:51234", 1);
        let right_of_box = ((tw + 10) * 3) as usize;
        assert_eq!(&rgb[right_of_box..right_of_box + 3], &[0, 0, 0]);
        assert!(count_color(&rgb, [255, 255, 255]) > 50);
    }

    #[test]
    fn on_bgr_colours_are_written_blue_first() {
        let (w, h) = (16u32, 8u32);
        let mut bgr = vec![0u8; (w * h * 3) as usize];
        Picture::new(&mut bgr, w, h, PixelFormat::Bgr8).fill_rect(0, 0, 2, 2, [10, 20, 30]);
        assert_eq!(&bgr[0..3], &[30, 20, 10]);
        assert_eq!(&bgr[6..9], &[0, 0, 0]);
    }

    #[test]
    fn on_i420_text_sets_luma_and_the_box_sets_chroma() {
        // 9x7: odd, so chroma is 5x4 and the box's right/bottom edges round outward.
        let (w, h) = (9u32, 7u32);
        let mut frame = RawFrame::i420(w, h, vec![128; PixelFormat::I420.frame_len(w, h)], 0, 0);
        let blue = [0, 0, 255];
        Picture::of(&mut frame).fill_rect(1, 1, 3, 3, blue);
        let [by, bu, bv] = rgb_to_yuv(0, 0, 255);
        let planes = frame.planes().expect("valid").expect("I420");
        assert_eq!(planes.y[w as usize + 1], by);
        assert_eq!(planes.y[0], 128);
        // Pixels 1..4 touch chroma columns and rows 0..2.
        for (cy, cx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            assert_eq!((planes.u[cy * 5 + cx], planes.v[cy * 5 + cx]), (bu, bv));
        }
        assert_eq!((planes.u[2], planes.u[5 * 2]), (128, 128));
        // White text on it changes luma only.
        let before = frame.data.clone();
        Picture::of(&mut frame).draw_text(0, 0, "#", &TextStyle::new(1, [255; 3]));
        let y_len = (w * h) as usize;
        assert_eq!(frame.data[y_len..], before[y_len..]);
        assert!(frame.data[..y_len].contains(&235));
    }

    proptest! {
        #[test]
        fn draw_text_never_panics_partly_or_wholly_off_frame(
            w in 1u32..200, h in 1u32..200,
            x in prop_oneof![0u32..250, Just(u32::MAX - 3), any::<u32>()],
            y in prop_oneof![0u32..250, Just(u32::MAX - 3), any::<u32>()],
            scale in 1u32..8,
            text in ".{0,20}",
            with_bg in any::<bool>(),
        ) {
            let mut rgb = vec![7u8; (w * h * 3) as usize];
            let bg = with_bg.then_some([1, 2, 3]);
            let style = TextStyle { scale, fg: [9, 9, 9], bg };
            let mut picture = Picture::rgb(&mut rgb, w, h);
            picture.draw_text(x, y, &text, &style);
            picture.fill_rect(x, y, scale * 50, u32::MAX, [4, 4, 4]);
            picture.draw_label(&text, [5, 5, 5]);
            prop_assert_eq!(rgb.len(), (w * h * 3) as usize);
            let mut yuv = vec![7u8; PixelFormat::I420.frame_len(w, h)];
            let mut picture = Picture::new(&mut yuv, w, h, PixelFormat::I420);
            picture.draw_text(x, y, &text, &style);
            picture.fill_rect(x, y, scale * 50, u32::MAX, [4, 4, 4]);
            picture.draw_label(&text, [5, 5, 5]);
            prop_assert_eq!(yuv.len(), PixelFormat::I420.frame_len(w, h));
        }
    }
}
