//! Drawing on packed RGB8 frames: filled rectangles and 8x8 bitmap text.
//!
//! Every function clips to the frame and never panics: a buffer shorter than
//! `width * height * 3` or a zero size makes it draw nothing.

use font8x8::legacy::BASIC_LEGACY;

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
    x: u64,
    y: u64,
    w: u64,
    h: u64,
) -> Option<(usize, usize, usize, usize)> {
    let (width, height) = (u64::from(width), u64::from(height));
    if x >= width || y >= height || w == 0 || h == 0 {
        return None;
    }
    let w = w.min(width - x);
    let h = h.min(height - y);
    Some((x as usize, y as usize, w as usize, h as usize))
}

/// True if `rgb` can hold a `width` x `height` RGB8 image.
fn fits(rgb: &[u8], width: u32, height: u32) -> bool {
    width > 0 && height > 0 && rgb.len() >= crate::frame::rgb_len(width, height)
}

fn fill_clipped(
    rgb: &mut [u8],
    width: u32,
    height: u32,
    rect: (u64, u64, u64, u64),
    color: [u8; 3],
) {
    let Some((x, y, w, h)) = clip(width, height, rect.0, rect.1, rect.2, rect.3) else {
        return;
    };
    let stride = width as usize * 3;
    for row in y..y + h {
        let start = row * stride + x * 3;
        for px in rgb[start..start + w * 3].chunks_exact_mut(3) {
            px.copy_from_slice(&color);
        }
    }
}

/// Fill the rectangle at `(x, y)` of size `w` x `h` with `color`, clipped to the frame.
#[allow(clippy::too_many_arguments)] // mirrors draw_text; a Rect type would not be clearer
pub fn fill_rect(
    rgb: &mut [u8],
    width: u32,
    height: u32,
    x: u32,
    y: u32,
    w: u32,
    h: u32,
    color: [u8; 3],
) {
    if !fits(rgb, width, height) {
        return;
    }
    fill_clipped(
        rgb,
        width,
        height,
        (x.into(), y.into(), w.into(), h.into()),
        color,
    );
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

/// Draw `text` on one line with its top-left corner at `(x, y)`, each font pixel a
/// `scale` x `scale` square. With `bg`, the whole text box is filled first.
///
/// Clipped to the frame; characters outside printable ASCII are drawn as '?'; `scale == 0`
/// draws nothing.
#[allow(clippy::too_many_arguments)] // the contract the other crates code against
pub fn draw_text(
    rgb: &mut [u8],
    width: u32,
    height: u32,
    x: u32,
    y: u32,
    text: &str,
    scale: u32,
    fg: [u8; 3],
    bg: Option<[u8; 3]>,
) {
    if !fits(rgb, width, height) || scale == 0 {
        return;
    }
    let (x, y, s) = (u64::from(x), u64::from(y), u64::from(scale));
    let cell = GLYPH * s;
    for (i, c) in text.chars().enumerate() {
        let cx = x.saturating_add((i as u64).saturating_mul(cell));
        if cx >= u64::from(width) {
            break; // the rest of the line is off-frame
        }
        if let Some(bg) = bg {
            fill_clipped(rgb, width, height, (cx, y, cell, cell), bg);
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
                fill_clipped(rgb, width, height, rect, fg);
            }
        }
    }
}

/// Draw `text` in white on a `bg` box in the top-left corner, sized for the frame height
/// (like the original project's `CLIENT: 10.0.0.5:51234` label).
pub fn draw_label(rgb: &mut [u8], width: u32, height: u32, text: &str, bg: [u8; 3]) {
    let scale = (height / 240).max(1);
    let pad = 2 * scale;
    let (tw, th) = text_size(text, scale);
    fill_rect(
        rgb,
        width,
        height,
        0,
        0,
        tw.saturating_add(2 * pad),
        th.saturating_add(2 * pad),
        bg,
    );
    draw_text(
        rgb,
        width,
        height,
        pad,
        pad,
        text,
        scale,
        [255, 255, 255],
        None,
    );
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
        fill_rect(&mut rgb, 10, 10, 8, 8, 100, 100, [1, 2, 3]);
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
        draw_text(
            &mut rgb,
            w,
            h,
            4,
            4,
            "Hi",
            2,
            [255, 0, 0],
            Some([0, 0, 255]),
        );
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
        draw_text(&mut a, 16, 8, 0, 0, "é\n", 1, [255; 3], None);
        draw_text(&mut b, 16, 8, 0, 0, "??", 1, [255; 3], None);
        assert_eq!(a, b);
    }

    #[test]
    fn short_buffer_draws_nothing() {
        let mut rgb = vec![0u8; 5];
        draw_text(&mut rgb, 100, 100, 0, 0, "X", 1, [255; 3], Some([1; 3]));
        fill_rect(&mut rgb, 100, 100, 0, 0, 10, 10, [255; 3]);
        draw_label(&mut rgb, 100, 100, "CLIENT: 10.0.0.5:51234", [0, 0, 128]);
        assert_eq!(rgb, vec![0u8; 5]);
    }

    #[test]
    fn label_sits_in_top_left_corner() {
        let (w, h) = (320u32, 240u32);
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        draw_label(&mut rgb, w, h, "CLIENT: 10.0.0.5:51234", [0, 0, 128]);
        assert_eq!(&rgb[0..3], &[0, 0, 128]);
        let (tw, _) = text_size("CLIENT: 10.0.0.5:51234", 1);
        let right_of_box = ((tw + 10) * 3) as usize;
        assert_eq!(&rgb[right_of_box..right_of_box + 3], &[0, 0, 0]);
        assert!(count_color(&rgb, [255, 255, 255]) > 50);
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
            draw_text(&mut rgb, w, h, x, y, &text, scale, [9, 9, 9], bg);
            fill_rect(&mut rgb, w, h, x, y, scale * 50, u32::MAX, [4, 4, 4]);
            draw_label(&mut rgb, w, h, &text, [5, 5, 5]);
            prop_assert_eq!(rgb.len(), (w * h * 3) as usize);
        }
    }
}
