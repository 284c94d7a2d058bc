//! H.264 against JPEG q80 on the 640x480@30 test pattern, clean and with camera-like noise:
//! bytes per second, picture quality (PSNR after decoding) and encode time; prints medians.
//!
//! `taskset -c 0 cargo run -p vidcast-media --example codec_bench` (the workspace's dev
//! profile is optimized; `taskset` keeps it to one core).

use std::sync::Arc;
use std::time::Instant;

use vidcast_media::{
    decode_jpeg, psnr, Encoder, H264Config, H264Decoder, H264Encoder, JpegEncoder, ManualClock,
    MediaError, TestPattern, TestPatternConfig,
};

const FRAMES: u64 = 300;
const FPS: f64 = 30.0;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Encodes FRAMES frames of the pattern; returns (bytes/s, mean PSNR dB, median encode ms).
fn run(noise: u8, encoder: &mut dyn Encoder) -> Result<(f64, f64, f64), MediaError> {
    let config = TestPatternConfig {
        width: 640,
        height: 480,
        fps: FPS,
        label: "CLIENT: 10.0.0.5:51234".into(),
        paced: false,
    };
    let mut pattern = TestPattern::new(config, Arc::new(ManualClock::new(0)))?;
    pattern.set_noise(noise);
    let mut h264 = H264Decoder::new()?;
    let (mut bytes, mut db, mut encode_ms) = (0, 0.0, vec![]);
    for seq in 0..FRAMES {
        let frame = pattern.render(seq, seq * 33_333);
        let t = Instant::now();
        let encoded = encoder.encode(&frame)?;
        encode_ms.push(t.elapsed().as_secs_f64() * 1e3);
        bytes += encoded.data.len();
        let rgb = match encoder.codec() {
            vidcast_media::Codec::H264 => h264.decode(&encoded.data)?.map(|f| f.rgb),
            _ => Some(decode_jpeg(&encoded.data)?.rgb),
        };
        db += rgb.map_or(0.0, |rgb| psnr(&frame.rgb, &rgb));
    }
    let seconds = FRAMES as f64 / FPS;
    Ok((
        bytes as f64 / seconds,
        db / FRAMES as f64,
        median(encode_ms),
    ))
}

fn main() -> Result<(), MediaError> {
    for noise in [0, 16] {
        let mut jpeg = JpegEncoder::new(80)?;
        let (jpeg_bps, jpeg_db, jpeg_ms) = run(noise, &mut jpeg)?;
        println!(
            "noise {noise:2}: JPEG q80       {:7.0} kB/s, {jpeg_db:.1} dB, encode {jpeg_ms:.2} ms ({:.0} fps)",
            jpeg_bps / 1e3,
            1e3 / jpeg_ms
        );
        for bitrate_bps in [1_500_000, 3_000_000] {
            let mut h264 = H264Encoder::new(H264Config {
                bitrate_bps,
                fps: FPS,
                keyint_frames: 60,
            })?;
            let (bps, db, ms) = run(noise, &mut h264)?;
            println!(
                "noise {noise:2}: H.264 {:.1} Mbit/s {:7.0} kB/s, {db:.1} dB, encode {ms:.2} ms ({:.0} fps), 1/{:.1} of JPEG's bytes",
                f64::from(bitrate_bps) / 1e6,
                bps / 1e3,
                1e3 / ms,
                jpeg_bps / bps
            );
        }
    }
    Ok(())
}
