//! YUV → packed RGB8 conversion (BT.601, limited "TV" range), for file and camera frames.
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

/// NV12 (a Y plane, then one plane of interleaved U,V pairs at half resolution both ways) →
/// packed RGB8. A common camera format.
pub fn nv12_to_rgb(
    y: &[u8],
    uv: &[u8],
    width: u32,
    height: u32,
    stride: usize,
) -> Result<Vec<u8>, MediaError> {
    let w = width as usize;
    check_len(
        "NV12 Y plane",
        width,
        height,
        plane_len(stride, w, height),
        y.len(),
    )?;
    let uv_row = 2 * width.div_ceil(2) as usize;
    let uv_len = plane_len(stride, uv_row, height.div_ceil(2));
    check_len("NV12 UV plane", width, height, uv_len, uv.len())?;
    let mut rgb = Vec::with_capacity(w * height as usize * 3);
    for row in 0..height as usize {
        let uv_off = (row / 2) * stride;
        for col in 0..w {
            let i = uv_off + (col / 2) * 2;
            rgb.extend_from_slice(&yuv_to_rgb(y[row * stride + col], uv[i], uv[i + 1]));
        }
    }
    Ok(rgb)
}

/// YUYV 4:2:2 (`Y0 U Y1 V` per pixel pair, the usual uncompressed webcam format) → packed
/// RGB8. `stride` is the bytes per row (at least `2 * width`, rounded up to whole pairs).
pub fn yuyv_to_rgb(
    data: &[u8],
    width: u32,
    height: u32,
    stride: usize,
) -> Result<Vec<u8>, MediaError> {
    let w = width as usize;
    let row_bytes = 4 * w.div_ceil(2);
    check_len(
        "YUYV",
        width,
        height,
        plane_len(stride, row_bytes, height),
        data.len(),
    )?;
    let mut rgb = Vec::with_capacity(w * height as usize * 3);
    for row in 0..height as usize {
        let line = &data[row * stride..row * stride + row_bytes];
        for (pair, px) in line.chunks_exact(4).enumerate() {
            let (u, v) = (px[1], px[3]);
            rgb.extend_from_slice(&yuv_to_rgb(px[0], u, v));
            if 2 * pair + 1 < w {
                rgb.extend_from_slice(&yuv_to_rgb(px[2], u, v));
            }
        }
    }
    Ok(rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let rgb = yuyv_to_rgb(&data, 4, 1, 8).expect("valid");
        assert!(close([rgb[0], rgb[1], rgb[2]], [255, 0, 0]));
        assert!(close([rgb[3], rgb[4], rgb[5]], [255, 0, 0]));
        assert_eq!(&rgb[6..], &[255, 255, 255, 0, 0, 0]);
        // Odd width: the last pair's second luma is padding and is not output.
        let rgb = yuyv_to_rgb(&data, 3, 1, 8).expect("valid");
        assert_eq!(rgb.len(), 9);
        assert_eq!(&rgb[6..], &[255, 255, 255]);
        // Two rows with a padded stride.
        let mut two = data.to_vec();
        two.extend_from_slice(&[0, 0]); // padding
        two.extend_from_slice(&data);
        let rgb = yuyv_to_rgb(&two, 4, 2, 10).expect("valid");
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
        let rgb = nv12_to_rgb(&y, &uv, 4, 2, 4).expect("valid");
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
    fn short_buffers_are_errors_not_panics() {
        assert!(matches!(
            yuyv_to_rgb(&[0; 7], 4, 1, 8),
            Err(MediaError::PlaneLength { .. })
        ));
        assert!(matches!(
            nv12_to_rgb(&[0; 8], &[0; 3], 4, 2, 4),
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
