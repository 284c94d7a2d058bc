//! What the MP4 muxer needs from an H.264 access unit: the parameter sets (and the picture
//! size they describe) and the slices as length-prefixed NAL units.

use vidcast_h264::{
    avc_decoder_configuration_record, nal_type, nal_units, sps_picture_size, NAL_AUD, NAL_PPS,
    NAL_SPS,
};

/// The decoder configuration of an H.264 track (what `avcC` carries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// The sequence parameter set NAL unit (header byte included, no start code).
    pub sps: Vec<u8>,
    /// The picture parameter set NAL unit.
    pub pps: Vec<u8>,
    /// Picture width from the SPS, cropping applied.
    pub width: u16,
    /// Picture height from the SPS, cropping applied.
    pub height: u16,
}

impl AvcConfig {
    /// The first SPS and PPS of an Annex B access unit (an IDR from the hub carries both);
    /// `None` when either is missing, the SPS cannot be parsed or the two do not fit a
    /// decoder configuration record.
    pub fn from_access_unit(access_unit: &[u8]) -> Option<Self> {
        let nals = nal_units(access_unit);
        let find = |kind: u8| {
            nals.iter()
                .find(|n| nal_type(n) == kind)
                .map(|n| n.to_vec())
        };
        let (sps, pps) = (find(NAL_SPS)?, find(NAL_PPS)?);
        let (width, height) = sps_picture_size(&sps)?;
        avc_decoder_configuration_record(&sps, &pps)?;
        Some(Self {
            sps,
            pps,
            width,
            height,
        })
    }
}

/// An Annex B access unit as MP4 wants a sample: each NAL unit behind a 4-byte big-endian
/// length. Parameter sets and delimiters are left out: `avcC` carries them (ISO 14496-15
/// allows them in-band for `avc1`, but players follow `avcC`, so a change starts a segment).
pub fn to_length_prefixed(access_unit: &[u8]) -> Vec<u8> {
    let nals = nal_units(access_unit);
    let mut out = Vec::with_capacity(access_unit.len() + 4 * nals.len());
    for nal in nals {
        if nal.is_empty() || matches!(nal_type(nal), NAL_SPS | NAL_PPS | NAL_AUD) {
            continue;
        }
        // A NAL unit over 4 GiB cannot exist here: frames are capped far lower by the hub.
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An SPS from x264: 1920x1080 high profile (cropped from 1088 lines, with emulation
    /// prevention bytes).
    const SPS_1080P: [u8; 27] = [
        0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00,
        0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0x08, 0x3c, 0x60, 0xc6, 0x58,
    ];

    #[test]
    fn parameter_sets_leave_the_samples_and_lengths_prefix_the_rest() {
        let mut au = vec![0, 0, 0, 1];
        au.extend_from_slice(&SPS_1080P);
        au.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
        au.extend_from_slice(&[0, 0, 1, 0x65, 0x88, 0x84]);
        let config = AvcConfig::from_access_unit(&au).expect("SPS and PPS present");
        assert_eq!((config.width, config.height), (1920, 1080));
        assert_eq!(config.pps, [0x68, 0xce, 0x3c, 0x80]);
        assert_eq!(to_length_prefixed(&au), [0, 0, 0, 3, 0x65, 0x88, 0x84]);
    }
}
