//! A decoded legacy frame and the channel swap between OpenCV's BGR and everyone else's RGB.

/// One picture from the original client: what `pickle.loads` gave its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyFrame {
    /// Width in pixels (the array's second axis).
    pub width: u32,
    /// Height in pixels (the array's first axis).
    pub height: u32,
    /// Packed `height x width x 3` bytes in C (row-major) order, **BGR** as OpenCV captures
    /// and numpy holds it; Fortran-ordered arrays are already converted.
    /// `len == width * height * 3`.
    pub bgr: Vec<u8>,
}

impl LegacyFrame {
    /// The pixels as packed RGB (what `vidcast_media` takes), swapped in place.
    pub fn into_rgb(self) -> Vec<u8> {
        let mut pixels = self.bgr;
        swap_red_blue(&mut pixels);
        pixels
    }
}

/// Swaps the first and third byte of every 3-byte pixel: BGR to RGB and RGB to BGR.
/// A trailing partial pixel is left alone.
pub fn swap_red_blue(pixels: &mut [u8]) {
    for px in pixels.chunks_exact_mut(3) {
        px.swap(0, 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_is_its_own_inverse() {
        let mut p = vec![1, 2, 3, 4, 5, 6, 7];
        swap_red_blue(&mut p);
        assert_eq!(p, [3, 2, 1, 6, 5, 4, 7]);
        swap_red_blue(&mut p);
        assert_eq!(p, [1, 2, 3, 4, 5, 6, 7]);
        let f = LegacyFrame {
            width: 1,
            height: 1,
            bgr: vec![10, 20, 30],
        };
        assert_eq!(f.into_rgb(), [30, 20, 10]);
    }
}
