//! H.264 access units (Annex B) → RTMP video message bodies, which are FLV `VIDEODATA` tag
//! bodies (FLV spec v10.1, E.4.3): an AVC sequence header (the AVCDecoderConfigurationRecord
//! of ISO/IEC 14496-15 5.2.4.1, built from SPS and PPS) before the first picture and whenever
//! the parameter sets change, then each access unit's NAL units with 4-byte length prefixes.

use bytes::{BufMut, Bytes, BytesMut};
use vidcast_h264::{
    avc_decoder_configuration_record, nal_type, NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS,
};

use crate::RtmpError;

/// FLV `FrameType` << 4 | `CodecID` 7 (AVC): key frame, inter frame.
const KEY_AVC: u8 = 0x17;
const INTER_AVC: u8 = 0x27;
/// `AVCPacketType`: sequence header, NAL units.
const AVC_SEQUENCE_HEADER: u8 = 0;
const AVC_NALU: u8 = 1;

/// The AVCDecoderConfigurationRecord for one SPS and one PPS (ISO/IEC 14496-15 5.3.3.1),
/// High-profile fields included.
pub fn avc_decoder_config(sps: &[u8], pps: &[u8]) -> Result<Bytes, RtmpError> {
    avc_decoder_configuration_record(sps, pps)
        .map(Bytes::from)
        .ok_or(RtmpError::BadVideo(
            "SPS shorter than 4 bytes, or a parameter set over 65535 bytes",
        ))
}

/// The video message body of an AVC sequence header.
pub fn sequence_header_body(config: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + config.len());
    out.put_slice(&[KEY_AVC, AVC_SEQUENCE_HEADER, 0, 0, 0]);
    out.put_slice(config);
    out.freeze()
}

/// The video message body of one picture: its NAL units, each with a 4-byte length.
/// Composition time is 0: constrained baseline has no B-frames, so decode order is
/// presentation order.
pub fn picture_body<'a>(is_keyframe: bool, units: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = BytesMut::new();
    out.put_slice(&[
        if is_keyframe { KEY_AVC } else { INTER_AVC },
        AVC_NALU,
        0,
        0,
        0,
    ]);
    for nal in units {
        out.put_u32(nal.len() as u32);
        out.put_slice(nal);
    }
    out.freeze()
}

/// Turns access units into video message bodies, remembering the parameter sets so the
/// sequence header is sent once and again only when they change.
///
/// Call order: [`AvcPackager::package`] once per access unit in decode order, from a
/// keyframe on; after a gap, [`AvcPackager::reset`] and start again at a keyframe.
#[derive(Debug, Default)]
pub struct AvcPackager {
    /// The configuration record last sent, if any.
    sent_config: Option<Bytes>,
}

impl AvcPackager {
    /// Forgets what was sent (a new connection needs the sequence header again).
    pub fn reset(&mut self) {
        self.sent_config = None;
    }

    /// Whether a sequence header went out (pictures can be sent).
    pub fn is_configured(&self) -> bool {
        self.sent_config.is_some()
    }

    /// The message bodies for one access unit, given as its NAL units (start codes removed):
    /// a sequence header first if the unit carries new SPS/PPS, then the picture. Parameter sets and access unit delimiters are left out
    /// of the picture body: the sequence header carries them. Empty if no picture can be
    /// sent yet (a non-IDR unit before any sequence header).
    pub fn package(&mut self, units: &[&[u8]]) -> Result<Vec<Bytes>, RtmpError> {
        let sps = units.iter().find(|n| nal_type(n) == NAL_SPS);
        let pps = units.iter().find(|n| nal_type(n) == NAL_PPS);
        let mut bodies = Vec::with_capacity(2);
        if let (Some(sps), Some(pps)) = (sps, pps) {
            let config = avc_decoder_config(sps, pps)?;
            if self.sent_config.as_ref() != Some(&config) {
                bodies.push(sequence_header_body(&config));
                self.sent_config = Some(config);
            }
        }
        if self.sent_config.is_none() {
            return Ok(Vec::new());
        }
        let is_keyframe = units.iter().any(|n| nal_type(n) == NAL_IDR);
        let picture: Vec<&[u8]> = units
            .iter()
            .copied()
            .filter(|n| !matches!(nal_type(n), NAL_SPS | NAL_PPS | NAL_AUD))
            .collect();
        if picture.is_empty() {
            return Ok(bodies);
        }
        bodies.push(picture_body(is_keyframe, picture));
        Ok(bodies)
    }
}

/// The inverse of the packager, for players and tests: a video message body back to an
/// Annex B access unit (a sequence header gives its SPS and PPS). `None` for bodies that are
/// not AVC, or malformed.
pub fn body_to_annex_b(body: &[u8]) -> Option<Vec<u8>> {
    let (&[tag, kind, ..], rest) = (body, body.get(5..)?) else {
        return None;
    };
    if tag & 0x0f != 7 {
        return None;
    }
    let mut out = Vec::with_capacity(rest.len() + 16);
    let mut put = |nal: &[u8]| {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    };
    match kind {
        AVC_SEQUENCE_HEADER => {
            // version, profile, compat, level, length size, then SPS count and SPSs, PPSs.
            let mut pos = 5;
            for _ in 0..2 {
                let count = usize::from(*rest.get(pos)? & 0x1f);
                pos += 1;
                for _ in 0..count {
                    let len =
                        usize::from(u16::from_be_bytes([*rest.get(pos)?, *rest.get(pos + 1)?]));
                    put(rest.get(pos + 2..pos + 2 + len)?);
                    pos += 2 + len;
                }
            }
        }
        AVC_NALU => {
            let mut pos = 0;
            while pos < rest.len() {
                let len = u32::from_be_bytes(rest.get(pos..pos + 4)?.try_into().ok()?) as usize;
                put(rest.get(pos + 4..pos + 4 + len)?);
                pos += 4 + len;
            }
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: [u8; 6] = [0x67, 0x42, 0xC0, 0x1F, 0xDA, 0x01];
    const PPS: [u8; 4] = [0x68, 0xCE, 0x3C, 0x80];

    const IDR_SLICE: [u8; 4] = [0x65, 0x88, 0x84, 0x00];

    fn idr() -> [&'static [u8]; 3] {
        [&SPS, &PPS, &IDR_SLICE]
    }

    #[test]
    fn decoder_config_record_is_byte_exact() {
        let config = avc_decoder_config(&SPS, &PPS).unwrap();
        let expected: &[u8] = &[
            0x01, 0x42, 0xC0, 0x1F, 0xFF,
            0xE1, // version, profile, compat, level, 4-byte lengths, 1 SPS
            0x00, 0x06, 0x67, 0x42, 0xC0, 0x1F, 0xDA, 0x01, // SPS
            0x01, 0x00, 0x04, 0x68, 0xCE, 0x3C, 0x80, // 1 PPS
        ];
        assert_eq!(&config[..], expected);
        assert!(avc_decoder_config(&[0x67, 0x42], &PPS).is_err());
    }

    #[test]
    fn a_high_profile_sequence_header_carries_chroma_format_and_bit_depths() {
        // x264's 1920x1080 High profile SPS: 4:2:0, 8 bits.
        let sps = [
            0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00,
            0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0x08, 0x3c, 0x60, 0xc6, 0x58,
        ];
        let mut packager = AvcPackager::default();
        let bodies = packager.package(&[&sps, &PPS, &IDR_SLICE]).unwrap();
        let header = &bodies[0];
        assert_eq!(header[5..9], [1, 0x64, 0x00, 0x28]);
        assert_eq!(header[header.len() - 4..], [0xfd, 0xf8, 0xf8, 0x00]);
    }

    #[test]
    fn first_keyframe_gives_sequence_header_then_length_prefixed_slice() {
        let mut packager = AvcPackager::default();
        assert!(
            packager.package(&[&[0x41, 0x9A]]).unwrap().is_empty(),
            "a P-frame before any parameter sets cannot be sent"
        );
        let bodies = packager.package(&idr()).unwrap();
        assert_eq!(bodies.len(), 2);
        assert_eq!(&bodies[0][..5], &[0x17, 0, 0, 0, 0]);
        assert_eq!(
            &bodies[0][5..],
            &avc_decoder_config(&SPS, &PPS).unwrap()[..]
        );
        assert_eq!(
            &bodies[1][..],
            &[0x17, 1, 0, 0, 0, 0, 0, 0, 4, 0x65, 0x88, 0x84, 0x00]
        );
        let p = packager.package(&[&[0x09, 0xF0], &[0x41, 0x9A]]).unwrap();
        assert_eq!(
            p,
            [Bytes::from_static(&[
                0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9A
            ])]
        );
        // The same parameter sets again: no second sequence header.
        assert_eq!(packager.package(&idr()).unwrap().len(), 1);
        packager.reset();
        let bodies = packager.package(&idr()).unwrap();
        assert_eq!(bodies.len(), 2);
        // And back: what a player rebuilds is the access unit in Annex B.
        let mut annex_b = body_to_annex_b(&bodies[0]).unwrap();
        annex_b.extend(body_to_annex_b(&bodies[1]).unwrap());
        let mut expected = Vec::new();
        for nal in idr() {
            expected.extend([0, 0, 0, 1]);
            expected.extend(nal);
        }
        assert_eq!(annex_b, expected);
        assert_eq!(body_to_annex_b(&[0x17, 1, 0, 0, 0, 0, 0, 0, 9, 1]), None);
    }
}
