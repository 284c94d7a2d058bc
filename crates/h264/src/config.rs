//! What a decoder needs before the first picture: the parameter sets, kept by
//! [`ParameterSets`] and packed by [`avc_decoder_configuration_record`].

use crate::nal::{nal_type, nal_units, NAL_IDR, NAL_PPS, NAL_SPS};
use crate::sps::sps_format;

/// The AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) of one SPS and one PPS (NAL
/// units, header byte included): what MP4 puts in `avcC` and RTMP sends as the AVC sequence
/// header. Profile, compatibility and level are copied from the SPS, NAL lengths are 4 bytes,
/// and profiles other than Baseline, Main and Extended repeat the chroma format and bit
/// depths, as players expect. `None` for an SPS shorter than 4 bytes or a parameter set over
/// the record's 65535-byte limit.
pub fn avc_decoder_configuration_record(sps: &[u8], pps: &[u8]) -> Option<Vec<u8>> {
    let [_, profile, compatibility, level, ..] = *sps else {
        return None;
    };
    let sps_len = u16::try_from(sps.len()).ok()?;
    let pps_len = u16::try_from(pps.len()).ok()?;
    let mut out = Vec::with_capacity(15 + sps.len() + pps.len());
    out.extend_from_slice(&[1, profile, compatibility, level]); // configurationVersion 1
    out.push(0xfc | 3); // 6 reserved bits, lengthSizeMinusOne = 3
    out.push(0xe0 | 1); // 3 reserved bits, one SPS
    out.extend_from_slice(&sps_len.to_be_bytes());
    out.extend_from_slice(sps);
    out.push(1); // one PPS
    out.extend_from_slice(&pps_len.to_be_bytes());
    out.extend_from_slice(pps);
    if !matches!(profile, 66 | 77 | 88) {
        if let Some(format) = sps_format(sps) {
            out.push(0xfc | (format.chroma_format_idc & 3));
            out.push(0xf8 | (format.bit_depth_luma_minus8 & 7));
            out.push(0xf8 | (format.bit_depth_chroma_minus8 & 7));
            out.push(0); // numOfSequenceParameterSetExt
        }
    }
    Some(out)
}

/// Keeps the latest SPS and PPS of a stream and puts them in front of keyframes that come
/// without them: some cameras send parameter sets only once, but every keyframe must be a
/// place where a viewer, a recording or a restream can start.
#[derive(Debug, Default, Clone)]
pub struct ParameterSets {
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

impl ParameterSets {
    /// The access unit, completed: an IDR without an SPS or PPS gets the last ones seen
    /// (each after a 4-byte start code). Other access units come back unchanged.
    pub fn complete(&mut self, access_unit: &[u8]) -> Vec<u8> {
        let (mut has_sps, mut has_pps, mut idr) = (false, false, false);
        for nal in nal_units(access_unit) {
            match nal_type(nal) {
                NAL_SPS => {
                    self.sps = Some(nal.to_vec());
                    has_sps = true;
                }
                NAL_PPS => {
                    self.pps = Some(nal.to_vec());
                    has_pps = true;
                }
                NAL_IDR => idr = true,
                _ => {}
            }
        }
        let mut out = Vec::with_capacity(access_unit.len() + 64);
        if idr {
            for (present, set) in [(has_sps, &self.sps), (has_pps, &self.pps)] {
                if let (false, Some(set)) = (present, set) {
                    out.extend_from_slice(&[0, 0, 0, 1]);
                    out.extend_from_slice(set);
                }
            }
        }
        out.extend_from_slice(access_unit);
        out
    }

    /// True once an SPS and a PPS have been seen.
    pub fn known(&self) -> bool {
        self.sps.is_some() && self.pps.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sps::tests::{SPS_1080P, SPS_444};

    const PPS: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];

    #[test]
    fn baseline_record_is_byte_exact() {
        let sps = [0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01];
        let expected: &[u8] = &[
            0x01, 0x42, 0xc0, 0x1f, 0xff,
            0xe1, // version, profile, compat, level, lengths, 1 SPS
            0x00, 0x06, 0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, // SPS
            0x01, 0x00, 0x04, 0x68, 0xce, 0x3c, 0x80, // 1 PPS
        ];
        assert_eq!(
            avc_decoder_configuration_record(&sps, &PPS).as_deref(),
            Some(expected)
        );
    }

    #[test]
    fn high_profiles_repeat_chroma_format_and_bit_depths() {
        let high = avc_decoder_configuration_record(&SPS_1080P, &PPS).unwrap();
        assert_eq!(high.len(), 11 + SPS_1080P.len() + PPS.len() + 4);
        assert_eq!(high[high.len() - 4..], [0xfd, 0xf8, 0xf8, 0]); // 4:2:0, 8 bits
        let high_444 = avc_decoder_configuration_record(&SPS_444, &PPS).unwrap();
        assert_eq!(high_444[high_444.len() - 4..], [0xff, 0xf8, 0xf8, 0]); // 4:4:4
    }

    #[test]
    fn unusable_parameter_sets_give_no_record() {
        assert_eq!(avc_decoder_configuration_record(&[0x67, 0x42], &PPS), None);
        let huge = vec![0x68; 70_000];
        assert_eq!(avc_decoder_configuration_record(&SPS_1080P, &huge), None);
    }

    #[test]
    fn keyframes_without_parameter_sets_get_the_last_ones_seen() {
        let mut sets = ParameterSets::default();
        let p_frame = [0, 0, 1, 0x41, 0x9a];
        assert_eq!(sets.complete(&p_frame), p_frame, "no IDR: unchanged");
        let mut first = vec![0, 0, 0, 1];
        first.extend_from_slice(&SPS_1080P);
        first.extend_from_slice(&[0, 0, 0, 1]);
        first.extend_from_slice(&PPS);
        first.extend_from_slice(&[0, 0, 1, 0x65, 0x88]);
        assert_eq!(sets.complete(&first), first);
        assert!(sets.known());
        let bare_idr = [0, 0, 1, 0x65, 0x88];
        let completed = sets.complete(&bare_idr);
        assert_eq!(
            nal_units(&completed),
            [&SPS_1080P[..], &PPS[..], &[0x65, 0x88][..]]
        );
    }
}
