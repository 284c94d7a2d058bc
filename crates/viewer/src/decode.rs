//! A stream's frames as they arrive: sequence gaps counted, and H.264 decoded in order.
//!
//! H.264 cannot skip: each frame needs the one before, so every frame is decoded as it
//! arrives, and after a gap nothing is decoded until the next keyframe (a picture is never
//! decoded against a missing reference). JPEG frames stand alone: they are left for whoever
//! shows them to decode, newest only. Shared by the window's [`crate::Scene`] and the Python
//! package's receiver.

use tracing::debug;
use vidcast_h264::{ChainGate, Pass};
use vidcast_media::{H264Decoder, RawFrame};
use vidcast_proto::Codec;

/// One stream's decoding state.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    /// H.264 decoder, present while the chain since the last keyframe is unbroken.
    h264: Option<H264Decoder>,
    /// The stream's frames as they arrive: sequence gaps, and the H.264 chain decoded.
    chain: ChainGate,
}

/// What one frame gave.
#[derive(Debug, Default)]
pub struct Arrival {
    /// Frames of the stream skipped just before this one (sequence gap).
    pub skipped: u64,
    /// The decoded picture (I420) of an H.264 frame; `None` for JPEG, for a frame after a
    /// gap (waiting for a keyframe), and while the decoder has no picture yet.
    pub picture: Option<RawFrame>,
}

impl StreamDecoder {
    /// Takes frame `seq` of stream `id` (for logs), of `codec` (`None`: one this viewer does
    /// not know, only counted).
    pub fn offer(
        &mut self,
        id: u64,
        codec: Option<Codec>,
        seq: u64,
        is_keyframe: bool,
        data: &[u8],
    ) -> Arrival {
        let skipped = match self.chain.last_seq() {
            Some(last) if seq > last => seq - last - 1,
            _ => 0,
        };
        // A codec this viewer does not know keeps no chain: its frames are only counted.
        let pass = self
            .chain
            .offer(codec.unwrap_or(Codec::Jpeg), seq, is_keyframe);
        if codec != Some(Codec::H264) {
            return Arrival {
                skipped,
                picture: None,
            };
        }
        match pass {
            Pass::Use if is_keyframe && self.h264.is_none() => {
                self.h264 = H264Decoder::new().ok();
            }
            Pass::Use | Pass::Repeat => {}
            Pass::Wait { .. } => self.h264 = None, // broken chain: wait for a keyframe
        }
        let decoded = match pass {
            Pass::Use => self.h264.as_mut().map(|d| d.decode(data)),
            Pass::Repeat | Pass::Wait { .. } => None, // already decoded, or undecodable
        };
        let picture = match decoded {
            Some(Ok(picture)) => picture,
            Some(Err(e)) => {
                debug!("stream {id}: H.264 frame {seq} not decoded ({e}); waiting for a keyframe");
                self.h264 = None;
                self.chain.break_chain();
                None
            }
            None => None,
        };
        Arrival { skipped, picture }
    }
}
