//! The codecs vidcast carries and H.264 bitstream syntax, without a codec implementation:
//! the [`Codec`] type every crate shares, the reference-chain rule ([`ChainGate`]: after a
//! lost frame, wait for a keyframe), the Annex B NAL units of an access unit, the SPS fields a
//! container needs (picture size, chroma format, bit depths), slice types, and the
//! AVCDecoderConfigurationRecord that MP4 (`avcC`) and RTMP/FLV (the AVC sequence header)
//! carry. Pure functions and state machines over numbers and bytes, no I/O, no clock, no
//! vidcast dependency: the wire protocol, the encoder and sources (vidcast-media), the
//! recorder (vidcast-record), the RTMP packager (vidcast-rtmp), the hub and the viewers share
//! them.

mod bits;
mod chain;
mod codec;
mod config;
mod nal;
mod sps;

pub use chain::{ChainGate, Pass};
pub use codec::Codec;
pub use config::{avc_decoder_configuration_record, ParameterSets};
pub use nal::{
    avcc_to_annex_b, check_access_unit, codec_string, has_b_slices, is_keyframe, nal_type,
    nal_units, AvccError, NAL_AUD, NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS,
};
pub use sps::{sps_format, sps_picture_size, SpsFormat};

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// Whatever a publisher sends, reading it never panics.
        #[test]
        fn any_bytes_are_read_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = crate::has_b_slices(&bytes);
            let _ = crate::codec_string(&bytes);
            let _ = crate::check_access_unit(&bytes, true);
            let _ = crate::sps_picture_size(&bytes);
            let _ = crate::sps_format(&bytes);
            let _ = crate::ParameterSets::default().complete(&bytes);
            for nal in crate::nal_units(&bytes) {
                let _ = crate::avc_decoder_configuration_record(nal, nal);
            }
        }
    }
}
