//! Sensor-like noise that costs next to nothing per frame: one table of random offsets made
//! once, laid over each frame in pieces that start at places drawn from the frame number.
//!
//! Drawing a fresh random number per byte cost 8 ms per 640x480 frame (issue 18), so
//! benchmarks on a noisy test pattern measured the generator instead of the encoder. Adding a
//! precomputed table is one saturating add per byte (vectorised): about a hundredth of that.

/// Length of the table of offsets, whatever the picture size: the memory bound.
pub const NOISE_TABLE_BYTES: usize = 256 * 1024;
/// A frame takes its noise in pieces of this many bytes, each from its own place in the table.
/// Short enough that no two frames and no two pieces of a frame line up (the table has
/// `NOISE_TABLE_BYTES - PIECE_BYTES` start places), long enough that picking places costs
/// nothing: 225 picks for a 640x480 RGB frame.
const PIECE_BYTES: usize = 4096;

/// Uniform noise in `-amplitude..=amplitude` per byte, the same for the same amplitude, seed
/// and frame number. Holds [`NOISE_TABLE_BYTES`] and nothing else.
#[derive(Clone)]
pub struct NoiseTable {
    amplitude: u8,
    seed: u64,
    offsets: Vec<i8>,
}

impl std::fmt::Debug for NoiseTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseTable")
            .field("amplitude", &self.amplitude)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl NoiseTable {
    /// Makes the table for noise of up to ±`amplitude` (at most 127: the offsets are `i8`,
    /// larger amplitudes are clamped to it), drawn from `seed`.
    pub fn new(amplitude: u8, seed: u64) -> Self {
        let amplitude = amplitude.min(127);
        let span = 2 * u16::from(amplitude) + 1;
        let mut state = seed;
        let mut offsets = Vec::with_capacity(NOISE_TABLE_BYTES);
        while offsets.len() < NOISE_TABLE_BYTES {
            let random = splitmix64(&mut state).to_le_bytes();
            // Bytes at or over the last whole multiple of `span` are dropped, so `% span`
            // is exactly uniform (a plain `% 25` would lean 0.2 towards the negative side).
            offsets.extend(
                random
                    .iter()
                    .filter(|&&r| u16::from(r) < 256 - 256 % span)
                    .map(|&r| ((u16::from(r) % span) as i16 - i16::from(amplitude)) as i8)
                    .take(NOISE_TABLE_BYTES - offsets.len()),
            );
        }
        Self {
            amplitude,
            seed,
            offsets,
        }
    }

    /// The largest offset this table adds or takes away.
    pub fn amplitude(&self) -> u8 {
        self.amplitude
    }

    /// Bytes this table holds.
    pub fn memory_bytes(&self) -> usize {
        self.offsets.capacity()
    }

    /// Adds frame `frame`'s noise to `bytes`, saturating at 0 and 255.
    pub fn apply(&self, bytes: &mut [u8], frame: u64) {
        let places = (NOISE_TABLE_BYTES - PIECE_BYTES) as u64;
        let mut state = self.seed ^ frame.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for piece in bytes.chunks_mut(PIECE_BYTES) {
            let start = (splitmix64(&mut state) % places) as usize;
            let offsets = &self.offsets[start..start + piece.len()];
            for (byte, &offset) in piece.iter_mut().zip(offsets) {
                *byte = byte.saturating_add_signed(offset);
            }
        }
    }
}

/// SplitMix64: a fast, well-mixed sequence from any seed (0 included).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(table: &NoiseTable, len: usize, frame: u64) -> Vec<u8> {
        let mut bytes = vec![128u8; len];
        table.apply(&mut bytes, frame);
        bytes
    }

    #[test]
    fn same_amplitude_seed_and_frame_give_the_same_noise() {
        let a = NoiseTable::new(12, 7);
        let b = NoiseTable::new(12, 7);
        assert_eq!(noisy(&a, 100_000, 3), noisy(&b, 100_000, 3));
        assert_ne!(
            noisy(&a, 100_000, 3),
            noisy(&a, 100_000, 4),
            "frames differ"
        );
        assert_ne!(
            noisy(&a, 100_000, 3),
            noisy(&NoiseTable::new(12, 8), 100_000, 3),
            "seeds differ"
        );
    }

    #[test]
    fn noise_is_uniform_within_the_amplitude() {
        let table = NoiseTable::new(12, 1);
        let bytes = noisy(&table, 640 * 480 * 3, 9);
        let mut counts = [0u64; 25];
        for &b in &bytes {
            let offset = i16::from(b) - 128;
            assert!((-12..=12).contains(&offset), "offset {offset}");
            counts[(offset + 12) as usize] += 1;
        }
        // Each of the 25 values is expected 36 864 times; allow ±10 %.
        let expected = bytes.len() as u64 / 25;
        for (i, &n) in counts.iter().enumerate() {
            assert!(
                n.abs_diff(expected) < expected / 10,
                "offset {}: {n}",
                i as i64 - 12
            );
        }
        let mean = bytes.iter().map(|&b| f64::from(b) - 128.0).sum::<f64>() / bytes.len() as f64;
        assert!(mean.abs() < 0.1, "mean {mean}");
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let table = NoiseTable::new(64, 2);
        for edge in [0u8, 255] {
            let mut bytes = vec![edge; 50_000];
            table.apply(&mut bytes, 0);
            let (lo, hi) = if edge == 0 { (0, 64) } else { (191, 255) };
            assert!(bytes.iter().all(|&b| (lo..=hi).contains(&b)), "edge {edge}");
            assert!(bytes.iter().any(|&b| b != edge), "edge {edge} got no noise");
        }
    }

    #[test]
    fn memory_is_one_table_whatever_the_picture_size() {
        let table = NoiseTable::new(16, 0);
        assert_eq!(table.memory_bytes(), NOISE_TABLE_BYTES);
        // An 8K RGB frame is far larger than the table; it still gets noise everywhere.
        let mut frame = vec![100u8; 7680 * 4320 * 3];
        table.apply(&mut frame, 5);
        assert_eq!(table.memory_bytes(), NOISE_TABLE_BYTES);
        let tail = &frame[frame.len() - 10_000..];
        assert!(tail.iter().filter(|&&b| b != 100).count() > 9_000);
        assert_eq!(NoiseTable::new(200, 0).amplitude(), 127);
    }
}
