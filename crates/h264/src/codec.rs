//! The codecs a vidcast stream can carry: the one domain type every crate shares. The wire
//! number belongs to the wire protocol (`vidcast-proto` encodes and decodes it), the file
//! extension to the recorder, the encoder to `vidcast-media`.

/// A stream's compressed video format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Codec {
    /// Baseline JPEG, every frame a complete picture (MJPEG).
    Jpeg,
    /// H.264, one Annex B access unit per frame; a P-frame decodes only on top of the frame
    /// before it (see [`crate::ChainGate`]).
    H264,
}

impl Codec {
    /// Short lower-case name, as logs, metrics labels and the API show it.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Jpeg => "jpeg",
            Codec::H264 => "h264",
        }
    }

    /// Whether frames depend on the ones before them, so a lost frame breaks the pictures
    /// that follow until the next keyframe.
    pub fn has_reference_chain(self) -> bool {
        matches!(self, Codec::H264)
    }
}
