//! The machine-readable frame number: a strip of black/white cells along the bottom edge.
//!
//! Layout (a pure function of the frame size, so the reader needs nothing else):
//! - 50 cells: cell 0 white and cell 1 black (references), then the 32 bits of the frame
//!   number MSB first, then a CRC-16/CCITT-FALSE of its 4 big-endian bytes, MSB first.
//!   White = 1.
//! - A cell is `8 * max(1, width / 640)` pixels square: 8 px up to 1279 wide, 16 at 1280,
//!   24 at 1920. Cells fill rows of `width / cell` from the left, as many rows as needed
//!   (1 row at 640 wide, 3 rows at 160 wide).
//! - The strip's top is the lowest multiple of 16 that fits, so with 4:2:0 JPEG every cell
//!   is whole 8x8 luma blocks and the strip has its own chroma blocks: a flat block
//!   survives JPEG as its DC value (error <= 8 levels at q50).
//! - The strip is drawn only if it takes at most a third of the height (from 160x90 up at
//!   16:9); smaller frames carry no strip and read back `None`.
//!
//! Reading averages the luma of the middle half of each cell. The references must differ
//! by at least [`MIN_CONTRAST`] and every other cell must be within a quarter of the
//! reference range of black or white, else `None`. An image that passes those checks by
//! chance still has to match 16 check bits: a false positive rate of 2^-16 for such images,
//! and in practice `None` for noise, flat and natural images (tested below).

use crate::frame::rgb_len;

/// Cells in the strip: 2 references + 32 data bits + 16 check bits.
const CELLS: u32 = 2 + 32 + 16;
/// Smallest accepted luma difference between the white and the black reference cell.
const MIN_CONTRAST: i32 = 96;

/// Where the strip sits in a frame of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StripLayout {
    /// Cell side in pixels.
    pub cell: u32,
    /// Cells per row.
    pub cols: u32,
    /// Top row of the strip (a multiple of 16).
    pub top: u32,
}

impl StripLayout {
    /// The layout for a `width` x `height` frame, or `None` if the strip does not fit.
    pub fn for_size(width: u32, height: u32) -> Option<Self> {
        let cell = 8 * (width / 640).max(1);
        let cols = width / cell;
        if cols == 0 {
            return None;
        }
        let rows = CELLS.div_ceil(cols);
        let strip_h = rows.checked_mul(cell)?;
        if strip_h > height / 3 {
            return None;
        }
        let top = (height - strip_h) / 16 * 16;
        Some(Self { cell, cols, top })
    }

    /// Top-left corner of cell `i`.
    fn origin(&self, i: u32) -> (u32, u32) {
        (
            (i % self.cols) * self.cell,
            self.top + (i / self.cols) * self.cell,
        )
    }
}

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), bitwise: 4 bytes per frame is nothing.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The 50 cell values (true = white) that encode `number`.
fn cells(number: u32) -> impl Iterator<Item = bool> {
    let check = crc16(&number.to_be_bytes());
    let payload = (u64::from(number) << 16) | u64::from(check);
    [true, false]
        .into_iter()
        .chain((0..48).rev().map(move |bit| payload >> bit & 1 == 1))
}

/// Burn `number` into the strip at the bottom of an RGB8 frame. The band from the strip's
/// top to the bottom edge is painted black first.
///
/// Returns false (and draws nothing) if the frame is too small for the strip or `rgb`
/// is shorter than `width * height * 3`.
pub fn write_frame_number(rgb: &mut [u8], width: u32, height: u32, number: u32) -> bool {
    let Some(layout) = StripLayout::for_size(width, height) else {
        return false;
    };
    if rgb.len() < rgb_len(width, height) {
        return false;
    }
    let band_start = layout.top as usize * width as usize * 3;
    rgb[band_start..rgb_len(width, height)].fill(0);
    for (i, white) in (0..CELLS).zip(cells(number)) {
        if white {
            let (x, y) = layout.origin(i);
            crate::overlay::Picture::rgb(rgb, width, height).fill_rect(
                x,
                y,
                layout.cell,
                layout.cell,
                [255; 3],
            );
        }
    }
    true
}

/// Mean luma (BT.601 weights, 0..=255) of the middle half of cell `i`.
fn cell_luma(rgb: &[u8], width: u32, layout: &StripLayout, i: u32) -> i32 {
    let (x, y) = layout.origin(i);
    let q = layout.cell / 4;
    let (x0, y0, side) = (
        (x + q) as usize,
        (y + q) as usize,
        (layout.cell - 2 * q) as usize,
    );
    let stride = width as usize * 3;
    let mut sum: u64 = 0;
    for row in y0..y0 + side {
        let start = row * stride + x0 * 3;
        for px in rgb[start..start + side * 3].chunks_exact(3) {
            sum += 77 * u64::from(px[0]) + 150 * u64::from(px[1]) + 29 * u64::from(px[2]);
        }
    }
    // side >= 4, so the divisor is never 0; the mean is <= 255 * 256 / 256.
    (sum / (256 * (side * side) as u64)) as i32
}

/// Read back the number burnt in by [`write_frame_number`] (and so by
/// [`super::TestPattern`]), from raw or JPEG-decoded pixels of the same size.
///
/// `None` if the frame carries no strip, a cell is ambiguous, or the check bits do not
/// match (see the module docs for the false-positive rate).
pub fn read_frame_number(rgb: &[u8], width: u32, height: u32) -> Option<u32> {
    let layout = StripLayout::for_size(width, height)?;
    if rgb.len() < rgb_len(width, height) {
        return None;
    }
    let white = cell_luma(rgb, width, &layout, 0);
    let black = cell_luma(rgb, width, &layout, 1);
    let range = white - black;
    if range < MIN_CONTRAST {
        return None;
    }
    let margin = range / 4;
    let mut payload: u64 = 0;
    for i in 2..CELLS {
        let luma = cell_luma(rgb, width, &layout, i);
        let bit = if luma >= white - margin {
            1
        } else if luma <= black + margin {
            0
        } else {
            return None;
        };
        payload = payload << 1 | bit;
    }
    let number = (payload >> 16) as u32;
    let check = (payload & 0xFFFF) as u16;
    (crc16(&number.to_be_bytes()) == check).then_some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_ccitt_false_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn layout_fits_common_sizes_and_skips_tiny_frames() {
        let l = StripLayout::for_size(160, 120).expect("160x120 carries a strip");
        assert_eq!((l.cell, l.cols, l.top), (8, 20, 96));
        let l = StripLayout::for_size(1920, 1080).expect("1080p carries a strip");
        assert_eq!((l.cell, l.cols), (24, 80));
        assert!(StripLayout::for_size(160, 90).is_some());
        assert_eq!(StripLayout::for_size(64, 64), None);
    }

    #[test]
    fn written_number_reads_back_on_a_blank_frame() {
        let (w, h) = (320u32, 240u32);
        let mut rgb = vec![128u8; rgb_len(w, h)];
        assert!(write_frame_number(&mut rgb, w, h, 0x1234_5678));
        assert_eq!(read_frame_number(&rgb, w, h), Some(0x1234_5678));
        assert_eq!(read_frame_number(&rgb[1..], w, h), None);
    }

    #[test]
    fn one_flipped_cell_reads_back_none() {
        let (w, h) = (640u32, 480u32);
        let mut rgb = vec![0u8; rgb_len(w, h)];
        write_frame_number(&mut rgb, w, h, 42);
        let layout = StripLayout::for_size(w, h).expect("640x480 carries a strip");
        // Flip the last data cell (LSB of the number): the CRC no longer matches.
        let (x, y) = layout.origin(33);
        let old = rgb[(y as usize * w as usize + x as usize) * 3];
        let new = 255 - old;
        crate::overlay::Picture::rgb(&mut rgb, w, h).fill_rect(x, y, 8, 8, [new; 3]);
        assert_eq!(read_frame_number(&rgb, w, h), None);
    }
}
