//! The sequence parameter set fields a container needs (H.264 7.3.2.1.1).

use crate::bits::BitReader;

/// Chroma format and bit depths of an SPS (H.264 7.3.2.1.1), which High-profile `avcC`
/// boxes repeat (ISO 14496-15 5.3.3.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsFormat {
    /// profile_idc.
    pub profile_idc: u8,
    /// 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u8,
    /// Luma bit depth minus 8.
    pub bit_depth_luma_minus8: u8,
    /// Chroma bit depth minus 8.
    pub bit_depth_chroma_minus8: u8,
}

/// Whether an SPS of this profile carries chroma format and bit depths.
fn has_format_fields(profile_idc: u32) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// Reads the SPS up to and including the bit depths; the reader is left after them.
fn read_format(r: &mut BitReader<'_>) -> Option<SpsFormat> {
    let profile_idc = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut format = SpsFormat {
        profile_idc: u8::try_from(profile_idc).ok()?,
        chroma_format_idc: 1,
        bit_depth_luma_minus8: 0,
        bit_depth_chroma_minus8: 0,
    };
    if has_format_fields(profile_idc) {
        format.chroma_format_idc = u8::try_from(r.ue()?).ok()?;
        if format.chroma_format_idc == 3 {
            r.u1()?; // separate_colour_plane_flag
        }
        format.bit_depth_luma_minus8 = u8::try_from(r.ue()?).ok()?;
        format.bit_depth_chroma_minus8 = u8::try_from(r.ue()?).ok()?;
    }
    Some(format)
}

/// The chroma format and bit depths of an SPS NAL unit.
pub fn sps_format(sps: &[u8]) -> Option<SpsFormat> {
    read_format(&mut BitReader::new(sps.get(1..)?))
}

/// Width and height from an SPS NAL unit (H.264 7.3.2.1.1), frame cropping applied.
pub fn sps_picture_size(sps: &[u8]) -> Option<(u16, u16)> {
    let mut r = BitReader::new(sps.get(1..)?);
    let format = read_format(&mut r)?;
    let chroma_format_idc = u32::from(format.chroma_format_idc);
    if has_format_fields(u32::from(format.profile_idc)) {
        r.u1()?; // qpprime_y_zero_transform_bypass_flag
        if r.u1()? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.u1()? == 1 {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.u1()?;
            r.se()?;
            r.se()?;
            for _ in 0..r.ue()? {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.u1()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue()? + 1;
    let height_units = r.ue()? + 1;
    let frame_mbs_only = r.u1()?;
    if frame_mbs_only == 0 {
        r.u1()?; // mb_adaptive_frame_field_flag
    }
    r.u1()?; // direct_8x8_inference_flag
    let (mut crop_x, mut crop_y) = (0, 0);
    if r.u1()? == 1 {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let field_factor = 2 - frame_mbs_only;
        let (unit_x, unit_y) = match chroma_format_idc {
            1 => (2, 2 * field_factor),
            2 => (2, field_factor),
            _ => (1, field_factor),
        };
        // A hostile SPS may hold any 32-bit values: every product is checked.
        crop_x = left.checked_add(right)?.checked_mul(unit_x)?;
        crop_y = top.checked_add(bottom)?.checked_mul(unit_y)?;
    }
    let width = width_mbs.checked_mul(16)?.checked_sub(crop_x)?;
    let height = height_units
        .checked_mul(16 * (2 - frame_mbs_only))?
        .checked_sub(crop_y)?;
    Some((u16::try_from(width).ok()?, u16::try_from(height).ok()?))
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            next = (last + r.se()?.rem_euclid(256) + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// SPSs from x264: 1920x1080 high profile (cropped from 1088 lines, with emulation
    /// prevention bytes) and 318x178 high 4:4:4 (odd crop units).
    pub(crate) const SPS_1080P: [u8; 27] = [
        0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00,
        0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0x08, 0x3c, 0x60, 0xc6, 0x58,
    ];
    pub(crate) const SPS_444: [u8; 27] = [
        0x67, 0xf4, 0x00, 0x0c, 0x91, 0x9b, 0x28, 0x28, 0x33, 0xdc, 0x7e, 0x02, 0x20, 0x00, 0x00,
        0x03, 0x00, 0x20, 0x00, 0x00, 0x03, 0x00, 0x41, 0xe2, 0x85, 0x32, 0xc0,
    ];

    #[test]
    fn picture_size_comes_from_the_sps_with_cropping() {
        assert_eq!(sps_picture_size(&SPS_1080P), Some((1920, 1080)));
        assert_eq!(sps_picture_size(&SPS_444), Some((318, 178)));
    }

    #[test]
    fn chroma_format_and_bit_depths_come_from_the_sps() {
        let format = |profile_idc, chroma_format_idc| SpsFormat {
            profile_idc,
            chroma_format_idc,
            bit_depth_luma_minus8: 0,
            bit_depth_chroma_minus8: 0,
        };
        assert_eq!(sps_format(&SPS_1080P), Some(format(100, 1)));
        assert_eq!(sps_format(&SPS_444), Some(format(244, 3)));
        assert_eq!(
            sps_format(&[0x67, 0x42, 0xc0, 0x1e, 0xaa]),
            Some(format(66, 1))
        );
    }

    #[test]
    fn truncated_sps_is_refused_not_panicked() {
        for len in 0..SPS_1080P.len() - 2 {
            let _ = sps_picture_size(&SPS_1080P[..len]);
            let _ = sps_format(&SPS_1080P[..len]);
        }
        assert_eq!(sps_picture_size(&[0x67]), None);
    }

    #[test]
    fn huge_field_values_are_refused_not_overflowed() {
        // A Baseline SPS whose pic_width_in_mbs_minus1 is the largest ue(v), 2^32 - 2.
        let mut bits = String::from("1"); // seq_parameter_set_id
        bits += "1"; // log2_max_frame_num_minus4
        bits += "011"; // pic_order_cnt_type 2
        bits += "1"; // max_num_ref_frames
        bits += "0"; // gaps
        bits += &"0".repeat(31);
        bits += "1";
        bits += &"1".repeat(31); // width_mbs - 1 = 2^32 - 2
        bits += "1"; // height 1
        bits += "1"; // frame_mbs_only
        bits += "1"; // direct_8x8
        bits += "0"; // no cropping
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        let mut sps = vec![0x67, 0x42, 0xc0, 0x1e];
        sps.extend(
            bits.as_bytes()
                .chunks(8)
                .map(|byte| u8::from_str_radix(std::str::from_utf8(byte).unwrap(), 2).unwrap()),
        );
        assert_eq!(sps_picture_size(&sps), None);
    }
}
