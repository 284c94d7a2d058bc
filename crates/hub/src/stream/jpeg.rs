//! Reading a JPEG's picture size from its frame header, without decoding it.

/// Width and height from the first SOF marker, or `None` if the bytes are not a JPEG that
/// reaches one. Walks marker segments only; never allocates; any input is safe.
pub fn dimensions(data: &[u8]) -> Option<(u16, u16)> {
    if data.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut i = 2;
    loop {
        // Markers may be preceded by fill bytes (0xFF).
        while *data.get(i)? == 0xFF && *data.get(i + 1)? == 0xFF {
            i += 1;
        }
        if *data.get(i)? != 0xFF {
            return None;
        }
        let marker = *data.get(i + 1)?;
        let len = usize::from(u16::from_be_bytes([*data.get(i + 2)?, *data.get(i + 3)?]));
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            let h = u16::from_be_bytes([*data.get(i + 5)?, *data.get(i + 6)?]);
            let w = u16::from_be_bytes([*data.get(i + 7)?, *data.get(i + 8)?]);
            return Some((w, h));
        }
        if marker == 0xDA || len < 2 {
            return None; // start of scan before any frame header, or a broken length
        }
        i += 2 + len;
    }
}

/// Whether `data` can be a whole JPEG picture of a stream announced as `width`x`height`: a
/// start-of-image, a frame header before the first scan, a picture size neither zero nor
/// larger than announced (a publisher adapting to its link sends smaller pictures), and an
/// end-of-image at the end (trailing zero padding, which some cameras add, allowed). The
/// entropy-coded data is not decoded. Never allocates; any input is safe.
pub(crate) fn check(data: &[u8], width: u16, height: u16) -> Result<(), &'static str> {
    let (w, h) = dimensions(data).ok_or("no start of image and frame header")?;
    if w == 0 || h == 0 || w > width || h > height {
        return Err("its frame header's picture size is not the stream's");
    }
    let end = data.len() - data.iter().rev().take_while(|&&b| b == 0).count();
    if !data[..end].ends_with(&[0xFF, 0xD9]) {
        return Err("no end of image");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_size_and_refuses_garbage() {
        let mut enc = vidcast_media::JpegEncoder::new(80).expect("quality");
        let frame = vidcast_media::RawFrame {
            width: 96,
            height: 64,
            format: vidcast_media::PixelFormat::Rgb8,
            data: vec![128; 96 * 64 * 3],
            seq: 0,
            capture_us: 0,
        };
        use vidcast_media::Encoder;
        let jpeg = enc.encode(&frame).expect("encode");
        assert_eq!(dimensions(&jpeg.data), Some((96, 64)));
        assert_eq!(dimensions(b"not a jpeg"), None);
        assert_eq!(dimensions(&jpeg.data[..20]), None);
        assert_eq!(dimensions(&[0xFF, 0xD8, 0xFF]), None);

        assert_eq!(check(&jpeg.data, 96, 64), Ok(()));
        assert_eq!(check(&jpeg.data, 128, 64), Ok(()), "smaller than announced");
        assert!(check(&jpeg.data, 64, 64).is_err(), "larger than announced");
        assert!(
            check(&jpeg.data[..jpeg.data.len() - 2], 96, 64).is_err(),
            "cut"
        );
        let mut padded = jpeg.data.to_vec();
        padded.extend_from_slice(&[0; 7]);
        assert_eq!(check(&padded, 96, 64), Ok(()));
        let mut garbage = jpeg.data[..40].to_vec();
        garbage.resize(1 << 16, 0x5A);
        assert!(check(&garbage, 96, 64).is_err());
        assert!(check(b"", 96, 64).is_err());
    }
}
