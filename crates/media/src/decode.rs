//! JPEG decoding via `zune-jpeg`.

use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::{MediaError, RawFrame};

/// Largest width or height `decode_jpeg` accepts, so a forged header cannot make it
/// allocate more than 7680 * 7680 * 3 bytes (177 MB).
pub const MAX_DECODE_DIMENSION: u32 = 7680;

/// A decoded image: packed RGB8, rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Packed RGB8 pixels, `len == width * height * 3`.
    pub rgb: Vec<u8>,
}

/// Decode a whole JPEG file (baseline or progressive, any chroma layout) to RGB8.
///
/// Strict mode: data the decoder would otherwise paper over (e.g. a truncated scan filled
/// with grey) is an error. Never panics on arbitrary input.
pub fn decode_jpeg(data: &[u8]) -> Result<DecodedImage, MediaError> {
    let err = |reason: String| MediaError::Decode {
        len: data.len(),
        reason,
    };
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_strict_mode(true)
        .set_max_width(MAX_DECODE_DIMENSION as usize)
        .set_max_height(MAX_DECODE_DIMENSION as usize);
    // T.81 B.2.1: a file ends with EOI. zune-jpeg, even in strict mode, fills a truncated
    // scan with grey and succeeds; a cut frame must be an error here, so demand EOI. Inside
    // entropy-coded data 0xFF is always followed by 0x00 or RSTn, so a trailing FF D9 is a
    // real EOI. (Some cameras append bytes after EOI; relax this when a source needs it.)
    if !data.ends_with(&[0xFF, 0xD9]) {
        return Err(err("does not end with an EOI marker (truncated?)".into()));
    }
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(data), options);
    decoder.decode_headers().map_err(|e| err(e.to_string()))?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| err("no dimensions after headers".into()))?;
    let size = decoder
        .output_buffer_size()
        .ok_or_else(|| err("output size overflows".into()))?;
    let mut rgb = vec![0; size];
    decoder
        .decode_into(&mut rgb)
        .map_err(|e| err(e.to_string()))?;
    let (width, height) = (
        u32::try_from(width).map_err(|_| err("width overflows u32".into()))?,
        u32::try_from(height).map_err(|_| err("height overflows u32".into()))?,
    );
    if rgb.len() != crate::frame::rgb_len(width, height) {
        return Err(err(format!(
            "decoder gave {} bytes, not RGB8 {width}x{height}",
            rgb.len()
        )));
    }
    Ok(DecodedImage { width, height, rgb })
}

/// Decode a whole JPEG to packed BGR8 (blue first, what OpenCV takes), as a frame with
/// `seq` and `capture_us` zero. With mozjpeg's SIMD code in this build (see
/// [`crate::JpegBackend::best`]) libjpeg-turbo decodes straight into BGR, as simplejpeg does
/// (deps.md §1, 640x480 photo: 0.61 ms against zune-jpeg's 0.77–0.89 to RGB, before a
/// reordering pass); otherwise [`decode_jpeg`] and the reordering.
///
/// Checks as [`decode_jpeg`] does: EOI at the end and [`MAX_DECODE_DIMENSION`] before
/// allocating, never panics on arbitrary input. libjpeg repairs damage inside the scan
/// (where zune-jpeg's strict mode refuses), so use [`decode_jpeg`] where a picture must be
/// exactly what was sent.
pub fn decode_jpeg_bgr(data: &[u8]) -> Result<RawFrame, MediaError> {
    if !crate::mozjpeg::has_simd() {
        let image = decode_jpeg(data)?;
        let bgr = crate::frame::swap_red_blue(&image.rgb);
        return Ok(RawFrame::bgr(image.width, image.height, bgr, 0, 0));
    }
    if !data.ends_with(&[0xFF, 0xD9]) {
        return Err(MediaError::Decode {
            len: data.len(),
            reason: "does not end with an EOI marker (truncated?)".into(),
        });
    }
    let (width, height, bgr) =
        crate::mozjpeg::decode_bgr(data, MAX_DECODE_DIMENSION).map_err(|reason| {
            MediaError::Decode {
                len: data.len(),
                reason,
            }
        })?;
    Ok(RawFrame::bgr(width, height, bgr, 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Encoder, JpegEncoder, RawFrame};
    use proptest::prelude::*;

    fn sample_jpeg() -> Vec<u8> {
        let frame = RawFrame {
            width: 64,
            height: 48,
            format: crate::PixelFormat::Rgb8,
            data: (0..64 * 48 * 3).map(|i| (i * 7 % 256) as u8).collect(),
            seq: 0,
            capture_us: 0,
        };
        JpegEncoder::new(80)
            .expect("valid")
            .encode(&frame)
            .expect("encodes")
            .data
            .to_vec()
    }

    #[test]
    fn garbage_is_an_error() {
        for data in [&b""[..], b"\xff", b"\xff\xd8", b"hello world", &[0u8; 1000]] {
            assert!(matches!(decode_jpeg(data), Err(MediaError::Decode { .. })));
            assert!(matches!(
                decode_jpeg_bgr(data),
                Err(MediaError::Decode { .. })
            ));
        }
    }

    #[test]
    fn bgr_decode_is_the_rgb_picture_blue_first() {
        // Two decoders (libjpeg-turbo's and zune-jpeg's IDCT and upsampling) give nearly
        // the same picture, whichever this build uses for BGR.
        let camera = crate::encode::tests::camera_like_crop(640, 480);
        let camera = JpegEncoder::new(90)
            .expect("valid")
            .encode(&camera)
            .expect("encodes")
            .data
            .to_vec();
        for jpeg in [sample_jpeg(), camera] {
            let rgb = decode_jpeg(&jpeg).expect("decodes");
            let bgr = decode_jpeg_bgr(&jpeg).expect("decodes");
            assert_eq!(
                (bgr.width, bgr.height, bgr.format),
                (rgb.width, rgb.height, crate::PixelFormat::Bgr8)
            );
            let db = crate::psnr(&bgr.to_rgb().expect("valid"), &rgb.rgb);
            assert!(db > 45.0, "{}x{}: {db:.1} dB", rgb.width, rgb.height);
        }
    }

    #[test]
    fn truncated_jpeg_is_an_error_at_every_cut() {
        let jpeg = sample_jpeg();
        assert!(decode_jpeg(&jpeg).is_ok());
        for cut in 0..jpeg.len() {
            assert!(decode_jpeg(&jpeg[..cut]).is_err(), "cut at {cut} decoded");
            assert!(
                decode_jpeg_bgr(&jpeg[..cut]).is_err(),
                "cut at {cut} decoded"
            );
        }
    }

    #[test]
    fn oversized_header_is_rejected_before_allocating() {
        let mut jpeg = sample_jpeg();
        // Patch SOF0 to claim 60000x60000.
        let sof = jpeg
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("baseline JPEG has SOF0");
        jpeg[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
        assert!(matches!(decode_jpeg(&jpeg), Err(MediaError::Decode { .. })));
        assert!(matches!(
            decode_jpeg_bgr(&jpeg),
            Err(MediaError::Decode { .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode_jpeg(&data);
            let _ = decode_jpeg_bgr(&data);
        }

        #[test]
        fn corrupted_jpeg_never_panics(pos in 0usize..10_000, byte in any::<u8>(), cut in 0usize..10_000) {
            let mut jpeg = sample_jpeg();
            let pos = pos % jpeg.len();
            jpeg[pos] = byte;
            jpeg.truncate(cut.max(1));
            let _ = decode_jpeg(&jpeg);
            let _ = decode_jpeg_bgr(&jpeg);
            // With the end kept, libjpeg decodes the damaged scan to the end.
            let mut whole = sample_jpeg();
            let at = pos.min(whole.len() - 3);
            whole[at] = byte;
            let _ = decode_jpeg_bgr(&whole);
        }
    }
}
