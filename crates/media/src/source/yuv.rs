//! YUV pixel layouts and their conversions (BT.601, limited "TV" range): camera and file
//! layouts to I420 (what the encoders take), and I420 ↔ packed RGB8 for what shows pixels.
//!
//! BT.601 limited range is what Y4M from ffmpeg (`-pix_fmt yuv420p`), OpenH264 and UVC
//! cameras' YUYV/NV12 use unless they say otherwise. Integer arithmetic, 8-bit fractions:
//! `R = 1.164(Y-16) + 1.596(V-128)`, `G = 1.164(Y-16) - 0.392(U-128) - 0.813(V-128)`,
//! `B = 1.164(Y-16) + 2.017(U-128)`.

use crate::MediaError;

/// Chroma subsampling of a planar YUV picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subsampling {
    /// 4:2:0: one chroma sample per 2x2 luma block (I420, YV12 order aside).
    Half,
    /// 4:2:2: one chroma sample per 2x1 luma pair.
    HalfWidth,
    /// 4:4:4: one chroma sample per pixel.
    Full,
    /// Greyscale: no chroma planes at all.
    Mono,
}

impl Subsampling {
    /// Chroma plane size `(width, height)` for a `width` x `height` picture (odd sizes round up).
    pub fn chroma_size(self, width: u32, height: u32) -> (u32, u32) {
        match self {
            Subsampling::Half => (width.div_ceil(2), height.div_ceil(2)),
            Subsampling::HalfWidth => (width.div_ceil(2), height),
            Subsampling::Full => (width, height),
            Subsampling::Mono => (0, 0),
        }
    }

    fn shifts(self) -> (u32, u32) {
        match self {
            Subsampling::Half => (1, 1),
            Subsampling::HalfWidth => (1, 0),
            Subsampling::Full | Subsampling::Mono => (0, 0),
        }
    }
}

/// One planar YUV picture borrowed from a decoder or file buffer.
#[derive(Debug, Clone, Copy)]
pub struct Planes<'a> {
    /// Luma, `height` rows of `y_stride` bytes (the last row may be just `width` bytes).
    pub y: &'a [u8],
    /// Cb plane (empty for [`Subsampling::Mono`]).
    pub u: &'a [u8],
    /// Cr plane (empty for [`Subsampling::Mono`]).
    pub v: &'a [u8],
    /// Bytes from one luma row to the next.
    pub y_stride: usize,
    /// Bytes from one chroma row to the next (both chroma planes).
    pub uv_stride: usize,
}

/// One pixel, BT.601 limited range → RGB.
#[inline]
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (i32::from(y) - 16);
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let clip = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clip(c + 409 * e),
        clip(c - 100 * d - 208 * e),
        clip(c + 516 * d),
    ]
}

/// Bytes a plane of `rows` rows needs: all but the last row are `stride` long.
fn plane_len(stride: usize, row: usize, rows: u32) -> usize {
    match rows {
        0 => 0,
        n => stride * (n as usize - 1) + row,
    }
}

fn check_len(
    what: &'static str,
    width: u32,
    height: u32,
    expected: usize,
    actual: usize,
) -> Result<(), MediaError> {
    if actual < expected {
        return Err(MediaError::PlaneLength {
            what,
            width,
            height,
            expected,
            actual,
        });
    }
    Ok(())
}

/// Planar YUV (I420 / 4:2:2 / 4:4:4 / grey) → packed RGB8, `width * height * 3` bytes.
pub fn planar_to_rgb(
    p: &Planes<'_>,
    width: u32,
    height: u32,
    sub: Subsampling,
) -> Result<Vec<u8>, MediaError> {
    let w = width as usize;
    check_len(
        "Y plane",
        width,
        height,
        plane_len(p.y_stride, w, height),
        p.y.len(),
    )?;
    if p.y_stride < w {
        return Err(MediaError::PlaneLength {
            what: "Y row (stride)",
            width,
            height,
            expected: w,
            actual: p.y_stride,
        });
    }
    let (cw, ch) = sub.chroma_size(width, height);
    let chroma_len = plane_len(p.uv_stride, cw as usize, ch);
    check_len("U plane", width, height, chroma_len, p.u.len())?;
    check_len("V plane", width, height, chroma_len, p.v.len())?;
    let (sx, sy) = sub.shifts();
    let mut rgb = Vec::with_capacity(w * height as usize * 3);
    for row in 0..height as usize {
        let y_row = &p.y[row * p.y_stride..row * p.y_stride + w];
        let c_off = (row >> sy) * p.uv_stride;
        for (col, &y) in y_row.iter().enumerate() {
            let (u, v) = if sub == Subsampling::Mono {
                (128, 128)
            } else {
                let i = c_off + (col >> sx);
                (p.u[i], p.v[i])
            };
            rgb.extend_from_slice(&yuv_to_rgb(y, u, v));
        }
    }
    Ok(rgb)
}

/// Byte order of a packed 3-byte picture made from I420.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackedOrder {
    /// Red first (RGB8: what windows, PNG and the encoders' RGB input take).
    Rgb,
    /// Blue first (BGR8: OpenCV's and numpy users' order).
    Bgr,
}

/// I420 planes → packed RGB8 or BGR8, `width * height * 3` bytes: the matrix of
/// [`planar_to_rgb`] (BT.601 limited range, each chroma sample used by its 2x2 block) in
/// yuvutils-rs's SIMD (SSE4.1/AVX2 picked at run time), about 10x faster per frame. Its
/// fixed point differs from ours by at most 3 per channel on legal-range codes; luma below
/// black (Y < 16) is clamped to black before the chroma terms are added.
pub fn i420_to_packed(
    p: &Planes<'_>,
    width: u32,
    height: u32,
    order: PackedOrder,
) -> Result<Vec<u8>, MediaError> {
    check_i420(p, width, height)?;
    let stride = |s: usize| {
        u32::try_from(s).map_err(|_| MediaError::InvalidSize {
            width,
            height,
            reason: "plane stride above 4 GiB",
        })
    };
    let (y_stride, uv_stride) = (stride(p.y_stride)?, stride(p.uv_stride)?);
    // yuvutils-rs wants every row whole, the last one included; ours may end at `width`.
    let (_, ch) = Subsampling::Half.chroma_size(width, height);
    let whole = |plane: &[u8], stride: usize, rows: u32| plane.len() >= stride * rows as usize;
    if !(whole(p.y, p.y_stride, height)
        && whole(p.u, p.uv_stride, ch)
        && whole(p.v, p.uv_stride, ch))
    {
        let rgb = planar_to_rgb(p, width, height, Subsampling::Half)?;
        return Ok(match order {
            PackedOrder::Rgb => rgb,
            PackedOrder::Bgr => crate::frame::swap_red_blue(&rgb),
        });
    }
    let image = yuvutils_rs::YuvPlanarImage {
        y_plane: p.y,
        y_stride,
        u_plane: p.u,
        u_stride: uv_stride,
        v_plane: p.v,
        v_stride: uv_stride,
        width,
        height,
    };
    let row = stride(width as usize * 3)?;
    let mut out = vec![0u8; width as usize * height as usize * 3];
    let (range, matrix) = (
        yuvutils_rs::YuvRange::Limited,
        yuvutils_rs::YuvStandardMatrix::Bt601,
    );
    match order {
        PackedOrder::Rgb => yuvutils_rs::yuv420_to_rgb(&image, &mut out, row, range, matrix),
        PackedOrder::Bgr => yuvutils_rs::yuv420_to_bgr(&image, &mut out, row, range, matrix),
    }
    .map_err(|e| MediaError::Convert {
        width,
        height,
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// One pixel, RGB → BT.601 limited range `(Y, U, V)` (the inverse of [`yuv_to_rgb`]).
#[inline]
pub fn rgb_to_yuv(r: u8, g: u8, b: u8) -> [u8; 3] {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    // In range by construction (the coefficients keep Y in 16..=235, U, V in 16..=240).
    [y as u8, u as u8, v as u8]
}

/// Packed RGB8 (`width * height * 3` bytes) → tightly packed I420, BT.601 limited range;
/// each chroma sample is converted from the mean RGB of its 2x2 block (the pixels that
/// exist, at an odd right or bottom edge).
pub fn rgb_to_i420(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, MediaError> {
    crate::frame::check_rgb_len(rgb.len(), width, height)?;
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = Subsampling::Half.chroma_size(width, height);
    let (cw, ch) = (cw as usize, ch as usize);
    let mut out = vec![0u8; w * h + 2 * cw * ch];
    let (y_plane, chroma) = out.split_at_mut(w * h);
    let (u_plane, v_plane) = chroma.split_at_mut(cw * ch);
    for (row, y_row) in y_plane.chunks_exact_mut(w).enumerate() {
        let src = &rgb[row * w * 3..(row + 1) * w * 3];
        for (y, px) in y_row.iter_mut().zip(src.chunks_exact(3)) {
            *y = rgb_to_yuv(px[0], px[1], px[2])[0];
        }
    }
    for cy in 0..ch {
        let rows = (2 * cy..(2 * cy + 2).min(h)).collect::<Vec<_>>();
        for cx in 0..cw {
            let cols = 2 * cx..(2 * cx + 2).min(w);
            let (mut sum, mut n) = ([0u32; 3], 0u32);
            for &r in &rows {
                for c in cols.clone() {
                    let i = (r * w + c) * 3;
                    for (s, &x) in sum.iter_mut().zip(&rgb[i..i + 3]) {
                        *s += u32::from(x);
                    }
                    n += 1;
                }
            }
            let mean = sum.map(|s| ((s + n / 2) / n) as u8);
            let [_, u, v] = rgb_to_yuv(mean[0], mean[1], mean[2]);
            u_plane[cy * cw + cx] = u;
            v_plane[cy * cw + cx] = v;
        }
    }
    Ok(out)
}

/// Checks that `p` holds a `width` x `height` 4:2:0 picture: strides at least a row, planes
/// long enough.
pub fn check_i420(p: &Planes<'_>, width: u32, height: u32) -> Result<(), MediaError> {
    let (cw, ch) = Subsampling::Half.chroma_size(width, height);
    if p.y_stride < width as usize || p.uv_stride < cw as usize {
        return Err(MediaError::PlaneLength {
            what: "I420 row (stride)",
            width,
            height,
            expected: width as usize,
            actual: p.y_stride.min(p.uv_stride),
        });
    }
    check_len(
        "I420 Y plane",
        width,
        height,
        plane_len(p.y_stride, width as usize, height),
        p.y.len(),
    )?;
    let chroma_len = plane_len(p.uv_stride, cw as usize, ch);
    check_len("I420 U plane", width, height, chroma_len, p.u.len())?;
    check_len("I420 V plane", width, height, chroma_len, p.v.len())
}

/// 4:2:0 planes with any strides (a decoder's or a file's) → one tightly packed I420
/// buffer, the layout of [`crate::PixelFormat::I420`]. One copy.
pub fn i420_from_planes(p: &Planes<'_>, width: u32, height: u32) -> Result<Vec<u8>, MediaError> {
    check_i420(p, width, height)?;
    let (cw, ch) = Subsampling::Half.chroma_size(width, height);
    let (w, cw) = (width as usize, cw as usize);
    let mut out = Vec::with_capacity(crate::frame::i420_len(width, height));
    for (plane, stride, row, rows) in [
        (p.y, p.y_stride, w, height),
        (p.u, p.uv_stride, cw, ch),
        (p.v, p.uv_stride, cw, ch),
    ] {
        for r in 0..rows as usize {
            out.extend_from_slice(&plane[r * stride..r * stride + row]);
        }
    }
    Ok(out)
}

/// NV12 (a Y plane, then one plane of interleaved U,V pairs at half resolution both ways,
/// a common camera format) → tightly packed I420: Y copied, chroma de-interleaved. `stride`
/// is the bytes per row of both planes.
pub fn nv12_to_i420(
    y: &[u8],
    uv: &[u8],
    width: u32,
    height: u32,
    stride: usize,
) -> Result<Vec<u8>, MediaError> {
    let w = width as usize;
    let (cw, ch) = Subsampling::Half.chroma_size(width, height);
    let cw = cw as usize;
    if stride < 2 * cw {
        return Err(MediaError::PlaneLength {
            what: "NV12 row (stride)",
            width,
            height,
            expected: 2 * cw,
            actual: stride,
        });
    }
    check_len(
        "NV12 Y plane",
        width,
        height,
        plane_len(stride, w, height),
        y.len(),
    )?;
    check_len(
        "NV12 UV plane",
        width,
        height,
        plane_len(stride, 2 * cw, ch),
        uv.len(),
    )?;
    let mut out = Vec::with_capacity(crate::frame::i420_len(width, height));
    for r in 0..height as usize {
        out.extend_from_slice(&y[r * stride..r * stride + w]);
    }
    let rows = || (0..ch as usize).map(|r| &uv[r * stride..r * stride + 2 * cw]);
    for row in rows() {
        out.extend(row.chunks_exact(2).map(|p| p[0]));
    }
    for row in rows() {
        out.extend(row.chunks_exact(2).map(|p| p[1]));
    }
    Ok(out)
}

/// YUYV 4:2:2 (`Y0 U Y1 V` per pixel pair, the usual uncompressed webcam format) → tightly
/// packed I420; each chroma sample is the mean of the two rows it covers. `stride` is the
/// bytes per row (at least `2 * width`, rounded up to whole pairs).
pub fn yuyv_to_i420(
    data: &[u8],
    width: u32,
    height: u32,
    stride: usize,
) -> Result<Vec<u8>, MediaError> {
    let (w, h) = (width as usize, height as usize);
    let row_bytes = 4 * w.div_ceil(2);
    if stride < row_bytes {
        return Err(MediaError::PlaneLength {
            what: "YUYV row (stride)",
            width,
            height,
            expected: row_bytes,
            actual: stride,
        });
    }
    check_len(
        "YUYV",
        width,
        height,
        plane_len(stride, row_bytes, height),
        data.len(),
    )?;
    let (cw, ch) = Subsampling::Half.chroma_size(width, height);
    let (cw, ch) = (cw as usize, ch as usize);
    let mut out = vec![0u8; w * h + 2 * cw * ch];
    let (y_plane, chroma) = out.split_at_mut(w * h);
    let (u_plane, v_plane) = chroma.split_at_mut(cw * ch);
    let line = |r: usize| &data[r * stride..r * stride + row_bytes];
    for (r, y_row) in y_plane.chunks_exact_mut(w).enumerate() {
        for (x, y) in y_row.iter_mut().enumerate() {
            *y = line(r)[2 * x];
        }
    }
    for cy in 0..ch {
        let (a, b) = (line(2 * cy), line((2 * cy + 1).min(h - 1)));
        for cx in 0..cw {
            let mean = |i: usize| (u16::from(a[i]) + u16::from(b[i])).div_ceil(2) as u8;
            u_plane[cy * cw + cx] = mean(4 * cx + 1);
            v_plane[cy * cw + cx] = mean(4 * cx + 3);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawFrame;

    fn i420_to_rgb(yuv: Vec<u8>, width: u32, height: u32) -> Vec<u8> {
        let frame = RawFrame::i420(width, height, yuv, 0, 0);
        frame.to_rgb().expect("valid I420").into_owned()
    }

    /// A converter's I420 output as RGB8, for checking colours.
    fn rgb_of(yuv: Result<Vec<u8>, MediaError>, size: (u32, u32)) -> Result<Vec<u8>, MediaError> {
        Ok(i420_to_rgb(yuv?, size.0, size.1))
    }

    /// BT.601 limited-range codes of 100 % colours (ITU-R BT.601 / EBU bars), and the RGB they
    /// must come back as (within 1 for rounding).
    const KNOWN: [([u8; 3], [u8; 3]); 8] = [
        ([16, 128, 128], [0, 0, 0]),
        ([235, 128, 128], [255, 255, 255]),
        ([126, 128, 128], [128, 128, 128]),
        ([81, 90, 240], [255, 0, 0]),
        ([145, 54, 34], [0, 255, 0]),
        ([41, 240, 110], [0, 0, 255]),
        ([210, 16, 146], [255, 255, 0]),
        ([170, 166, 16], [0, 255, 255]),
    ];

    fn close(a: [u8; 3], b: [u8; 3]) -> bool {
        a.iter().zip(b).all(|(&x, y)| x.abs_diff(y) <= 1)
    }

    #[test]
    fn known_colours_convert_to_their_rgb() {
        for (yuv, rgb) in KNOWN {
            let got = yuv_to_rgb(yuv[0], yuv[1], yuv[2]);
            assert!(close(got, rgb), "{yuv:?} → {got:?}, want {rgb:?}");
        }
        // Out-of-range codes clip instead of wrapping.
        assert_eq!(yuv_to_rgb(0, 128, 128), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(255, 128, 128), [255, 255, 255]);
    }

    #[test]
    fn i420_2x2_blocks_share_one_chroma_sample() {
        // 4x2 picture: left 2x2 block red, right 2x2 block blue.
        let (red, blue) = (KNOWN[3].0, KNOWN[5].0);
        let y = [
            red[0], red[0], blue[0], blue[0], red[0], red[0], blue[0], blue[0],
        ];
        let (u, v) = ([red[1], blue[1]], [red[2], blue[2]]);
        let planes = Planes {
            y: &y,
            u: &u,
            v: &v,
            y_stride: 4,
            uv_stride: 2,
        };
        let rgb = planar_to_rgb(&planes, 4, 2, Subsampling::Half).expect("valid");
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            let want = if i % 4 < 2 { [255, 0, 0] } else { [0, 0, 255] };
            assert!(close([px[0], px[1], px[2]], want), "pixel {i}: {px:?}");
        }
    }

    #[test]
    fn odd_sizes_strides_and_other_subsamplings() {
        // 3x3 I420 with padded strides: chroma is 2x2; the last column/row use the last sample.
        let y = [
            235, 235, 16, 0, 235, 235, 16, 0, 16, 16, 16, // 3 rows, stride 4, last row short
        ];
        let u = [128, 128, 9, 128, 128];
        let v = [128, 128, 9, 128, 128];
        let planes = Planes {
            y: &y,
            u: &u,
            v: &v,
            y_stride: 4,
            uv_stride: 3,
        };
        let rgb = planar_to_rgb(&planes, 3, 3, Subsampling::Half).expect("valid");
        assert_eq!(rgb.len(), 27);
        assert_eq!(&rgb[..3], &[255, 255, 255]);
        assert_eq!(&rgb[6..9], &[0, 0, 0]);
        // 4:4:4 and grey.
        let green = KNOWN[4].0;
        let planes = Planes {
            y: &[green[0]],
            u: &[green[1]],
            v: &[green[2]],
            y_stride: 1,
            uv_stride: 1,
        };
        let rgb = planar_to_rgb(&planes, 1, 1, Subsampling::Full).expect("valid");
        assert!(close([rgb[0], rgb[1], rgb[2]], [0, 255, 0]), "{rgb:?}");
        let planes = Planes {
            y: &[235, 16],
            u: &[],
            v: &[],
            y_stride: 2,
            uv_stride: 0,
        };
        let rgb = planar_to_rgb(&planes, 2, 1, Subsampling::Mono).expect("valid");
        assert_eq!(rgb, [255, 255, 255, 0, 0, 0]);
        // 4:2:2: one chroma pair per two pixels, full height.
        let planes = Planes {
            y: &[81, 81, 41, 41],
            u: &[90, 240],
            v: &[240, 110],
            y_stride: 2,
            uv_stride: 1,
        };
        let rgb = planar_to_rgb(&planes, 2, 2, Subsampling::HalfWidth).expect("valid");
        assert!(close([rgb[3], rgb[4], rgb[5]], [255, 0, 0]), "{rgb:?}");
        assert!(close([rgb[9], rgb[10], rgb[11]], [0, 0, 255]), "{rgb:?}");
    }

    #[test]
    fn yuyv_pairs_share_chroma() {
        // One row: red pair, then white + black pair (neutral chroma).
        let red = KNOWN[3].0;
        let data = [red[0], red[1], red[0], red[2], 235, 128, 16, 128];
        let rgb = rgb_of(yuyv_to_i420(&data, 4, 1, 8), (4, 1)).expect("valid");
        assert!(close([rgb[0], rgb[1], rgb[2]], [255, 0, 0]));
        assert!(close([rgb[3], rgb[4], rgb[5]], [255, 0, 0]));
        assert_eq!(&rgb[6..], &[255, 255, 255, 0, 0, 0]);
        // Odd width: the last pair's second luma is padding and is not output.
        let rgb = rgb_of(yuyv_to_i420(&data, 3, 1, 8), (3, 1)).expect("valid");
        assert_eq!(rgb.len(), 9);
        assert_eq!(&rgb[6..], &[255, 255, 255]);
        // Two rows with a padded stride.
        let mut two = data.to_vec();
        two.extend_from_slice(&[0, 0]); // padding
        two.extend_from_slice(&data);
        let rgb = rgb_of(yuyv_to_i420(&two, 4, 2, 10), (4, 2)).expect("valid");
        assert_eq!(&rgb[..12], &rgb[12..]);
    }

    #[test]
    fn nv12_interleaved_chroma() {
        // 2x2 blue, then 2x2 yellow: 4x2 picture, stride 4.
        let (blue, yellow) = (KNOWN[5].0, KNOWN[6].0);
        let y = [
            blue[0], blue[0], yellow[0], yellow[0], blue[0], blue[0], yellow[0], yellow[0],
        ];
        let uv = [blue[1], blue[2], yellow[1], yellow[2]];
        let rgb = rgb_of(nv12_to_i420(&y, &uv, 4, 2, 4), (4, 2)).expect("valid");
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            let want = if i % 4 < 2 {
                [0, 0, 255]
            } else {
                [255, 255, 0]
            };
            assert!(close([px[0], px[1], px[2]], want), "pixel {i}: {px:?}");
        }
    }

    #[test]
    fn camera_layouts_become_i420_of_the_right_length_at_odd_sizes() {
        // 3x3: chroma 2x2. YUYV rows are 2 pairs (8 bytes); NV12 UV rows 2 pairs.
        let yuyv: Vec<u8> = (0..3 * 8).map(|i| i as u8).collect();
        let out = yuyv_to_i420(&yuyv, 3, 3, 8).expect("valid");
        assert_eq!(out.len(), 9 + 2 * 4);
        assert_eq!(&out[..3], &[0, 2, 4], "luma of row 0, padding luma dropped");
        // Chroma row 1 covers only picture row 2 (no row 3): its own samples.
        assert_eq!(out[9 + 2], yuyv[16 + 1]);
        let (y, uv) = ([7u8; 6 * 2 + 3], [1u8, 2, 3, 4, 0, 0, 5, 6, 7, 8]);
        let out = nv12_to_i420(&y, &uv, 3, 3, 6).expect("valid");
        assert_eq!(out, [7, 7, 7, 7, 7, 7, 7, 7, 7, 1, 3, 5, 7, 2, 4, 6, 8]);
        // Strides shorter than a row are errors.
        assert!(yuyv_to_i420(&yuyv, 3, 3, 7).is_err());
        assert!(nv12_to_i420(&y, &uv, 3, 3, 3).is_err());
        // Planes with padding are copied out tight.
        let planes = Planes {
            y: &[1, 2, 0, 3, 4],
            u: &[5],
            v: &[6],
            y_stride: 3,
            uv_stride: 4,
        };
        assert_eq!(
            i420_from_planes(&planes, 2, 2).expect("valid"),
            [1, 2, 3, 4, 5, 6]
        );
        assert!(i420_from_planes(&Planes { v: &[], ..planes }, 2, 2).is_err());
        assert!(rgb_to_i420(&[0; 8], 3, 1).is_err());
    }

    /// Planes of `width` x `height` filled from a fixed pseudo-random sequence, with `pad`
    /// bytes after each row.
    fn noise_planes(width: u32, height: u32, pad: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let mut state = 0x2545_f491_u32 ^ width.wrapping_mul(31) ^ height;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        };
        let (cw, ch) = Subsampling::Half.chroma_size(width, height);
        let mut plane = |w: u32, h: u32, top: u8| -> Vec<u8> {
            (0..(w as usize + pad) * h as usize)
                .map(|_| next().clamp(16, top))
                .collect()
        };
        (
            plane(width, height, 235),
            plane(cw, ch, 240),
            plane(cw, ch, 240),
        )
    }

    #[test]
    fn simd_rgb_and_bgr_match_the_scalar_conversion_within_3_at_any_size() {
        // Legal-range codes (Y 16..=235, U/V 16..=240), what a decoder gives for camera
        // content: yuvutils-rs's fixed point is within 3 of ours there. Below-black luma (Y <
        // 16) it clamps to black first, where ours goes negative before the chroma terms.
        let sizes = [
            (1, 1),
            (2, 2),
            (3, 3),
            (5, 2),
            (17, 9),
            (33, 31),
            (640, 480),
            (641, 481),
        ];
        for (width, height) in sizes {
            for pad in [0, 3] {
                let (y, u, v) = noise_planes(width, height, pad);
                let cw = Subsampling::Half.chroma_size(width, height).0 as usize;
                let planes = Planes {
                    y: &y,
                    u: &u,
                    v: &v,
                    y_stride: width as usize + pad,
                    uv_stride: cw + pad,
                };
                let scalar =
                    planar_to_rgb(&planes, width, height, Subsampling::Half).expect("valid");
                let rgb = i420_to_packed(&planes, width, height, PackedOrder::Rgb).expect("valid");
                let bgr = i420_to_packed(&planes, width, height, PackedOrder::Bgr).expect("valid");
                assert_eq!(rgb.len(), scalar.len(), "{width}x{height}");
                let worst = rgb.iter().zip(&scalar).map(|(a, b)| a.abs_diff(*b)).max();
                assert!(
                    worst <= Some(3),
                    "{width}x{height} pad {pad}: off by {worst:?}"
                );
                assert_eq!(
                    bgr,
                    crate::frame::swap_red_blue(&rgb),
                    "{width}x{height} BGR"
                );
            }
        }
        // The known colours come out as the scalar path gives them.
        for (yuv, want) in KNOWN {
            let planes = Planes {
                y: &[yuv[0]; 4],
                u: &[yuv[1]],
                v: &[yuv[2]],
                y_stride: 2,
                uv_stride: 1,
            };
            let rgb = i420_to_packed(&planes, 2, 2, PackedOrder::Rgb).expect("valid");
            for px in rgb.chunks_exact(3) {
                let got = [px[0], px[1], px[2]];
                assert!(
                    got.iter().zip(want).all(|(&g, w)| g.abs_diff(w) <= 2),
                    "{yuv:?} → {got:?}, want {want:?}"
                );
            }
        }
        // A last row that ends at the picture's width (a decoder's buffer) still converts.
        let (y, u, v) = noise_planes(4, 4, 2);
        let planes = Planes {
            y: &y[..y.len() - 2],
            u: &u[..u.len() - 2],
            v: &v[..v.len() - 2],
            y_stride: 6,
            uv_stride: 4,
        };
        let scalar = planar_to_rgb(&planes, 4, 4, Subsampling::Half).expect("valid");
        assert_eq!(
            i420_to_packed(&planes, 4, 4, PackedOrder::Rgb).expect("valid"),
            scalar
        );
        assert!(i420_to_packed(&Planes { v: &[], ..planes }, 4, 4, PackedOrder::Bgr).is_err());
    }

    #[test]
    fn rgb_to_yuv_inverts_yuv_to_rgb_on_known_colours() {
        for (yuv, rgb) in KNOWN {
            let got = rgb_to_yuv(rgb[0], rgb[1], rgb[2]);
            assert!(close(got, yuv), "{rgb:?} -> {got:?}, want {yuv:?}");
        }
    }

    #[test]
    fn short_buffers_are_errors_not_panics() {
        assert!(matches!(
            rgb_of(yuyv_to_i420(&[0; 7], 4, 1, 8), (4, 1)),
            Err(MediaError::PlaneLength { .. })
        ));
        assert!(matches!(
            rgb_of(nv12_to_i420(&[0; 8], &[0; 3], 4, 2, 4), (4, 2)),
            Err(MediaError::PlaneLength { .. })
        ));
        let planes = Planes {
            y: &[0; 8],
            u: &[0; 2],
            v: &[0; 1],
            y_stride: 4,
            uv_stride: 2,
        };
        assert!(planar_to_rgb(&planes, 4, 2, Subsampling::Half).is_err());
        let planes = Planes {
            y: &[0; 8],
            u: &[0; 2],
            v: &[0; 2],
            y_stride: 3,
            uv_stride: 2,
        };
        assert!(planar_to_rgb(&planes, 4, 2, Subsampling::Half).is_err());
    }
}
