//! Camera MJPEG frames made into standalone JPEG files.
//!
//! Spec (UVC, after AVI MJPEG): each frame is a JPEG that may leave out its Huffman tables
//! (DHT), meaning the "typical" tables of ITU T.81 Annex K.3. What devices do: most
//! webcams omit them. Our choice: insert the Annex K tables when absent, as ffmpeg's
//! `mjpeg2jpeg` does, so browsers and every decoder read the passed-through frame.

use crate::MediaError;

const DC_LUMA_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_CHROMA_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const AC_LUMA_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
const AC_LUMA_VALUES: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5,
    0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];
const AC_CHROMA_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
const AC_CHROMA_VALUES: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0,
    0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26,
    0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
    0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
    0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
    0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

const SOS: u8 = 0xDA;
const DHT: u8 = 0xC4;

/// Where each marker segment before the scan starts: `(marker, offset of its 0xFF)`, and the
/// offset of SOS. Errors name the byte where the structure breaks.
fn header_segments(jpeg: &[u8]) -> Result<(Vec<(u8, usize)>, usize), String> {
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return Err("no SOI marker at byte 0".into());
    }
    let mut segments = Vec::new();
    let mut pos = 2;
    loop {
        if jpeg.get(pos) != Some(&0xFF) {
            return Err(format!("expected a marker at byte {pos}"));
        }
        let start = pos;
        while jpeg.get(pos) == Some(&0xFF) {
            pos += 1; // fill bytes
        }
        let Some(&marker) = jpeg.get(pos) else {
            return Err(format!("cut short at byte {pos}"));
        };
        pos += 1;
        if marker == SOS {
            return Ok((segments, start));
        }
        segments.push((marker, start));
        if (0xD0..=0xD8).contains(&marker) || marker == 0x01 {
            continue; // no length field
        }
        let Some(len) = jpeg.get(pos..pos + 2) else {
            return Err(format!("segment length cut short at byte {pos}"));
        };
        pos += usize::from(u16::from_be_bytes([len[0], len[1]]));
    }
}

/// Whether the JPEG defines its own Huffman tables before the scan.
pub fn has_huffman_tables(jpeg: &[u8]) -> Result<bool, MediaError> {
    let (segments, _) = header_segments(jpeg).map_err(|reason| MediaError::Decode {
        len: jpeg.len(),
        reason,
    })?;
    Ok(segments.iter().any(|&(m, _)| m == DHT))
}

/// The JPEG with the standard Huffman tables inserted before its scan if it has none (a
/// camera's MJPEG frame), unchanged otherwise.
pub fn ensure_huffman_tables(jpeg: &[u8]) -> Result<Vec<u8>, MediaError> {
    let (segments, sos) = header_segments(jpeg).map_err(|reason| MediaError::Decode {
        len: jpeg.len(),
        reason,
    })?;
    if segments.iter().any(|&(m, _)| m == DHT) {
        return Ok(jpeg.to_vec());
    }
    let tables: [(u8, &[u8; 16], &[u8]); 4] = [
        (0x00, &DC_LUMA_BITS, &DC_VALUES),
        (0x10, &AC_LUMA_BITS, &AC_LUMA_VALUES),
        (0x01, &DC_CHROMA_BITS, &DC_VALUES),
        (0x11, &AC_CHROMA_BITS, &AC_CHROMA_VALUES),
    ];
    let len: usize = 2 + tables.iter().map(|(_, _, v)| 17 + v.len()).sum::<usize>();
    let mut out = Vec::with_capacity(jpeg.len() + len + 2);
    out.extend_from_slice(&jpeg[..sos]);
    out.extend_from_slice(&[0xFF, DHT]);
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    for (class_id, bits, values) in tables {
        out.push(class_id);
        out.extend_from_slice(bits);
        out.extend_from_slice(values);
    }
    out.extend_from_slice(&jpeg[sos..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_jpeg, Encoder, JpegEncoder, RawFrame};

    /// A JPEG as jpeg-encoder writes it (Annex K tables), and the same with its DHT
    /// segments cut out, as a UVC camera sends it.
    fn jpeg_and_camera_version() -> (Vec<u8>, Vec<u8>) {
        let frame = RawFrame {
            width: 48,
            height: 32,
            format: crate::PixelFormat::Rgb8,
            data: (0..48 * 32 * 3).map(|i| (i * 7 % 251) as u8).collect(),
            seq: 0,
            capture_us: 0,
        };
        let jpeg = JpegEncoder::new(80)
            .expect("quality")
            .encode(&frame)
            .expect("encodes")
            .data
            .to_vec();
        let (segments, sos) = header_segments(&jpeg).expect("valid");
        let mut stripped = Vec::new();
        let mut bounds: Vec<usize> = segments.iter().map(|&(_, at)| at).collect();
        bounds.push(sos);
        stripped.extend_from_slice(&jpeg[..bounds[0]]);
        for (i, &(marker, at)) in segments.iter().enumerate() {
            if marker != DHT {
                stripped.extend_from_slice(&jpeg[at..bounds[i + 1]]);
            }
        }
        stripped.extend_from_slice(&jpeg[sos..]);
        assert!(stripped.len() < jpeg.len());
        (jpeg, stripped)
    }

    #[test]
    fn camera_jpeg_without_tables_gets_the_standard_ones_and_decodes_the_same() {
        let (jpeg, camera) = jpeg_and_camera_version();
        assert!(has_huffman_tables(&jpeg).expect("valid"));
        assert!(!has_huffman_tables(&camera).expect("valid"));
        let fixed = ensure_huffman_tables(&camera).expect("valid");
        assert!(has_huffman_tables(&fixed).expect("valid"));
        let want = decode_jpeg(&jpeg).expect("original decodes");
        assert_eq!(decode_jpeg(&fixed).expect("fixed decodes"), want);
        // A JPEG that has its tables passes through byte for byte.
        assert_eq!(ensure_huffman_tables(&jpeg).expect("valid"), jpeg);
    }

    #[test]
    fn broken_jpeg_structure_is_an_error() {
        for bad in [
            &b""[..],
            b"\xFF\xD8",
            b"\xFF\xD8\x00",
            b"\xFF\xD8\xFF\xE0\x00",
        ] {
            assert!(ensure_huffman_tables(bad).is_err(), "{bad:?}");
        }
    }
}
