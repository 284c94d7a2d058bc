//! Annex B access units: NAL units, their types, and what a slice header says.

use crate::bits::BitReader;

/// NAL unit type of a slice of a non-IDR picture (H.264 table 7-1).
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of an IDR slice: a picture decodable on its own.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// The type of a NAL unit (its header's low 5 bits); 0 for an empty unit.
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// The NAL units of an Annex B stream, start codes removed.
pub fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &start) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |&next| next - 3);
        // A 4-byte start code leaves its leading zero on the previous unit.
        while end > start && data[end - 1] == 0 && starts.get(k + 1).is_some() {
            end -= 1;
        }
        nals.push(&data[start..end]);
    }
    nals
}

/// True if the access unit holds an IDR slice (a decoder can start there).
pub fn is_keyframe(access_unit: &[u8]) -> bool {
    nal_units(access_unit)
        .iter()
        .any(|nal| nal_type(nal) == NAL_IDR)
}

/// True if a slice of the access unit is a B slice (it may refer to a later picture, so
/// pictures would come out of the decoder in another order than they went in).
pub fn has_b_slices(access_unit: &[u8]) -> bool {
    nal_units(access_unit).into_iter().any(|nal| {
        if !matches!(nal_type(nal), NAL_SLICE | NAL_IDR) {
            return false;
        }
        // Slice header (7.3.3): first_mb_in_slice ue(v), then slice_type ue(v); types 1 and 6
        // are B.
        let mut bits = BitReader::new(&nal[1..]);
        bits.ue()
            .and_then(|_| bits.ue())
            .is_some_and(|t| t % 5 == 1)
    })
}

/// The RFC 6381 codec string (`avc1.PPCCLL`: profile, constraint flags, level in hex) of
/// the first SPS in the access unit, as WebCodecs wants it; `None` without an SPS.
pub fn codec_string(access_unit: &[u8]) -> Option<String> {
    let sps = nal_units(access_unit)
        .into_iter()
        .find(|nal| nal_type(nal) == NAL_SPS)?;
    let [_, profile, constraints, level, ..] = *sps else {
        return None;
    };
    Some(format!("avc1.{profile:02X}{constraints:02X}{level:02X}"))
}

/// Why an access unit from a publisher cannot be what its framing says, or `Ok` when it
/// parses: Annex B from its first byte, every NAL unit with a zero forbidden bit and a type
/// H.264 defines for a byte stream (1-23; 24-31 only exist in RTP payloads), at least one
/// slice whose header starts with a readable first_mb_in_slice and slice_type (0-9), an IDR
/// slice when `is_keyframe` says so, and every SPS readable. It checks the syntax a
/// container relies on, not that the pictures decode.
pub fn check_access_unit(access_unit: &[u8], is_keyframe: bool) -> Result<(), &'static str> {
    if !(access_unit.starts_with(&[0, 0, 1]) || access_unit.starts_with(&[0, 0, 0, 1])) {
        return Err("does not start with an Annex B start code");
    }
    let mut slices = 0;
    let mut idr = false;
    for nal in nal_units(access_unit) {
        let Some(&header) = nal.first() else {
            return Err("an empty NAL unit");
        };
        if header & 0x80 != 0 {
            return Err("a NAL unit's forbidden bit is set");
        }
        match nal_type(nal) {
            kind @ (NAL_SLICE | 2..=4 | NAL_IDR) => {
                let mut bits = BitReader::new(&nal[1..]);
                let slice_type = bits.ue().and_then(|_| bits.ue());
                if slice_type.is_none_or(|t| t > 9) {
                    return Err("a slice header does not parse");
                }
                slices += 1;
                idr |= kind == NAL_IDR;
            }
            NAL_SPS if crate::sps_picture_size(nal).is_none() => {
                return Err("an SPS does not parse");
            }
            0 | 24..=31 => return Err("a NAL unit type that a byte stream cannot carry"),
            _ => {}
        }
    }
    if slices == 0 {
        return Err("no slice");
    }
    if is_keyframe && !idr {
        return Err("marked as a keyframe without an IDR slice");
    }
    Ok(())
}

/// Why length-prefixed NAL units (AVCC) do not add up to the buffer that holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AvccError {
    /// Fewer bytes than a length field are left at `offset`.
    LengthCutShort {
        /// Where the length field starts.
        offset: usize,
    },
    /// The NAL unit whose length is at `offset` is longer than what follows.
    UnitPastEnd {
        /// Where its length field starts.
        offset: usize,
        /// The length it gives.
        len: usize,
        /// The whole buffer's length.
        total: usize,
    },
}

impl std::fmt::Display for AvccError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LengthCutShort { offset } => write!(f, "NAL length cut short at byte {offset}"),
            Self::UnitPastEnd { offset, len, total } => write!(
                f,
                "NAL unit of {len} bytes at byte {offset} runs past the buffer's {total} bytes"
            ),
        }
    }
}

impl std::error::Error for AvccError {}

/// Appends the NAL units of `data`, each behind a `len_bytes`-byte big-endian length (AVCC:
/// MP4 samples, retina's RTSP frames), to `out`, each behind a 4-byte start code (Annex B,
/// what the rest of vidcast carries). On an error `out` may hold the units before it.
pub fn avcc_to_annex_b(
    mut data: &[u8],
    len_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), AvccError> {
    let total = data.len();
    while !data.is_empty() {
        let offset = total - data.len();
        let Some((len, rest)) = data.split_at_checked(len_bytes) else {
            return Err(AvccError::LengthCutShort { offset });
        };
        let len = len.iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
        let Some((nal, rest)) = rest.split_at_checked(len) else {
            return Err(AvccError::UnitPastEnd { offset, len, total });
        };
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
        data = rest;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixed_units_become_annex_b_and_bad_lengths_say_where() {
        let mut out = Vec::new();
        avcc_to_annex_b(&[0, 0, 0, 2, 0x65, 0xAA, 0, 0, 0, 1, 0x41], 4, &mut out).expect("ok");
        assert_eq!(out, [0, 0, 0, 1, 0x65, 0xAA, 0, 0, 0, 1, 0x41]);
        let mut out = Vec::new();
        avcc_to_annex_b(&[0, 2, 0x65, 0xAA], 2, &mut out).expect("two-byte lengths");
        assert_eq!(out, [0, 0, 0, 1, 0x65, 0xAA]);
        let err = avcc_to_annex_b(&[0, 0, 0, 2, 0x65, 0xAA, 0, 0, 0, 9, 1], 4, &mut Vec::new())
            .expect_err("too long");
        assert_eq!(
            err,
            AvccError::UnitPastEnd {
                offset: 6,
                len: 9,
                total: 11
            }
        );
        assert!(err.to_string().contains("at byte 6"), "{err}");
        assert_eq!(
            avcc_to_annex_b(&[0, 0], 4, &mut Vec::new()),
            Err(AvccError::LengthCutShort { offset: 0 })
        );
    }

    #[test]
    fn access_units_that_cannot_be_h264_are_told_apart() {
        // P slice: first_mb 0 ("1"), slice_type 0 ("1").
        assert_eq!(
            check_access_unit(&[0, 0, 0, 1, 0x41, 0b1100_0000], false),
            Ok(())
        );
        assert_eq!(
            check_access_unit(&[0, 0, 1, 0x65, 0b1100_0000], true),
            Ok(())
        );
        for (bad, key) in [
            (&[0x12, 0x34, 0, 0, 1, 0x41, 0xc0][..], false), // bytes before the start code
            (&[0, 0, 1, 0xc1, 0xc0], false),                 // forbidden bit
            (&[0, 0, 1, 0x41], false),                       // no slice header
            (&[0, 0, 1, 0x41, 0b0000_0000, 0], false),       // unreadable Exp-Golomb
            (&[0, 0, 1, 0x68, 0xce], false),                 // a PPS alone: no slice
            (&[0, 0, 1, 0x41, 0xc0], true),                  // "keyframe" without IDR
            (&[0, 0, 1, 0x5c, 0xc0, 0, 0, 1, 0x41, 0xc0], false), // type 28: RTP only
            (&[0, 0, 1, 0x67, 0xff, 0, 0, 1, 0x65, 0xc0], true), // broken SPS
            (&[][..], false),
        ] {
            assert!(check_access_unit(bad, key).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn units_split_at_three_and_four_byte_start_codes() {
        let au = [
            0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88,
        ];
        assert_eq!(
            nal_units(&au),
            [&[0x67, 0x42][..], &[0x68, 0xce], &[0x65, 0x88]]
        );
        assert!(is_keyframe(&au));
        assert!(!is_keyframe(&[0, 0, 1, 0x41, 0x9a]));
        assert_eq!(nal_units(&[1, 2, 3]), Vec::<&[u8]>::new());
    }

    #[test]
    fn slice_types_tell_b_slices_apart() {
        // first_mb_in_slice 0 ("1"), slice_type ue: P = 0 ("1"), B = 1 ("010"), B = 6.
        assert!(!has_b_slices(&[0, 0, 1, 0x41, 0b1100_0000]));
        assert!(has_b_slices(&[0, 0, 1, 0x01, 0b1010_0000]));
        // slice_type 6 = 00111: "1" then "00111".
        assert!(has_b_slices(&[0, 0, 1, 0x01, 0b1001_1100]));
        assert!(!has_b_slices(&[0, 0, 1, 0x01]), "no header bits: not B");
        // An SPS is no slice, whatever its bits.
        assert!(!has_b_slices(&[0, 0, 1, 0x67, 0b1010_0000]));
    }

    #[test]
    fn codec_string_names_profile_constraints_and_level() {
        let au = [0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda];
        assert_eq!(codec_string(&au).as_deref(), Some("avc1.42C01F"));
        assert_eq!(codec_string(&[0, 0, 1, 0x65, 0x88]), None);
    }
}
