//! H.264 against JPEG q80 at 640x480@30: bytes per second, picture quality (PSNR after
//! decoding) and encode time per frame, on the test pattern (clean, and with camera-like
//! noise) and on any Y4M clips given (`scripts/bench-clips` makes natural-looking ones).
//! For each input it finds the lowest H.264 bit rate whose PSNR is at least JPEG's.
//!
//! `taskset -c 0 cargo run -p vidcast-media --example codec_bench [CLIP.y4m ...]` (the
//! workspace's dev profile is optimized; `taskset` keeps it to one core).

use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;
use std::time::Instant;

use vidcast_media::source::{VideoSource, Y4mSource};
use vidcast_media::{
    decode_jpeg, psnr, Encoder, H264Config, H264Decoder, H264Encoder, JpegEncoder, ManualClock,
    MediaError, RawFrame, TestPattern, TestPatternConfig,
};

const FRAMES: u64 = 300;
const FPS: f64 = 30.0;
/// H.264 bit rates tried, lowest first.
const BITRATES: [u32; 9] = [
    250_000, 500_000, 750_000, 1_000_000, 1_500_000, 2_000_000, 3_000_000, 4_500_000, 6_000_000,
];

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

/// What one encoder did with a clip.
struct Result1 {
    bytes_per_s: f64,
    psnr_db: f64,
    encode_ms: f64,
}

/// Encodes every frame; mean PSNR of what a viewer decodes, median encode time.
fn run(frames: &[RawFrame], encoder: &mut dyn Encoder) -> Result<Result1, MediaError> {
    let mut h264 = H264Decoder::new()?;
    let (mut bytes, mut db, mut encode_ms) = (0, 0.0, vec![]);
    for frame in frames {
        let t = Instant::now();
        let encoded = encoder.encode(frame)?;
        encode_ms.push(t.elapsed().as_secs_f64() * 1e3);
        bytes += encoded.data.len();
        let rgb = match encoder.codec() {
            vidcast_media::Codec::H264 => match h264.decode(&encoded.data)? {
                Some(f) => Some(f.to_rgb()?.into_owned()),
                None => None,
            },
            _ => Some(decode_jpeg(&encoded.data)?.rgb),
        };
        let reference = frame.to_rgb()?;
        db += rgb.map_or(0.0, |rgb| psnr(&reference, &rgb));
    }
    let seconds = frames.len() as f64 / FPS;
    Ok(Result1 {
        bytes_per_s: bytes as f64 / seconds,
        psnr_db: db / frames.len() as f64,
        encode_ms: median(encode_ms),
    })
}

fn pattern(noise: u8) -> Result<Vec<RawFrame>, MediaError> {
    let config = TestPatternConfig {
        width: 640,
        height: 480,
        fps: FPS,
        label: "CLIENT: 127.0.0.1:51234".into(),
        paced: false,
    };
    let mut pattern = TestPattern::new(config, Arc::new(ManualClock::new(0)))?;
    pattern.set_noise(noise);
    Ok((0..FRAMES)
        .map(|seq| pattern.render(seq, seq * 33_333))
        .collect())
}

fn clip(path: &str) -> Result<Vec<RawFrame>, MediaError> {
    let file = File::open(path).map_err(|source| MediaError::Io {
        what: path.to_owned(),
        source,
    })?;
    let mut source = Y4mSource::new(BufReader::new(file), path, Arc::new(ManualClock::new(0)))?;
    let mut frames = Vec::new();
    while frames.len() < FRAMES as usize {
        match source.next_frame()? {
            Some(frame) => frames.push(frame),
            None => break,
        }
    }
    Ok(frames)
}

fn compare(name: &str, frames: &[RawFrame]) -> Result<(), MediaError> {
    let jpeg = run(frames, &mut JpegEncoder::new(80)?)?;
    println!(
        "{name}: JPEG q80 {:6.0} kB/s, {:.1} dB, encode {:.2} ms ({:.0} fps)",
        jpeg.bytes_per_s / 1e3,
        jpeg.psnr_db,
        jpeg.encode_ms,
        1e3 / jpeg.encode_ms
    );
    for bitrate_bps in BITRATES {
        let mut encoder = H264Encoder::new(H264Config {
            bitrate_bps,
            fps: FPS,
            keyint_frames: 60,
            level_bitrate_bps: None,
        })?;
        let h264 = run(frames, &mut encoder)?;
        let matches = h264.psnr_db >= jpeg.psnr_db;
        println!(
            "{name}: H.264 {:4.2} Mbit/s {:6.0} kB/s, {:.1} dB, encode {:.2} ms ({:.0} fps), 1/{:.1} of JPEG's bytes{}",
            f64::from(bitrate_bps) / 1e6,
            h264.bytes_per_s / 1e3,
            h264.psnr_db,
            h264.encode_ms,
            1e3 / h264.encode_ms,
            jpeg.bytes_per_s / h264.bytes_per_s,
            if matches { "  <- lowest at JPEG's PSNR or better" } else { "" }
        );
        if matches {
            break;
        }
    }
    Ok(())
}

fn main() -> Result<(), MediaError> {
    compare("pattern", &pattern(0)?)?;
    compare("pattern, noise 16", &pattern(16)?)?;
    for path in std::env::args().skip(1) {
        let frames = clip(&path)?;
        compare(&path, &frames)?;
    }
    Ok(())
}
