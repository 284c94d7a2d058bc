//! What a publisher's encode costs from a YUV source, before and after frames stayed I420:
//! CPU time per frame (this thread's, from `CLOCK_THREAD_CPUTIME_ID`: the machine is shared
//! and noisy) and PSNR, for JPEG q90 and H.264 1.5 Mbit/s, candidates interleaved.
//!
//! Input: 60 camera-like frames (the test pattern's colour bars, moving gradient and box,
//! uniform noise ±12 per channel), made once before timing and held as I420, as a Y4M file
//! or a camera gives them. "via RGB" is the path before this change (I420 → RGB8 in scalar
//! code, then the encoder converts back); "I420" hands the planes to the encoder.
//!
//! `cargo run --release -p vidcast-media --example yuv_bench [WIDTHxHEIGHT] [ROUNDS]`
//! (defaults 640x480, 7 rounds; prints the median of the rounds).

use vidcast_media::{
    decode_jpeg, psnr, Encoder, H264Config, H264Decoder, H264Encoder, JpegBackend, JpegEncoder,
    MediaError, RawFrame, TestPattern,
};

const FRAMES: u64 = 60;

mod common;
use common::{median, thread_cpu_ms};

/// One way of encoding a frame from the I420 source.
struct Candidate {
    name: &'static str,
    via_rgb: bool,
    make: fn() -> Result<Box<dyn Encoder>, MediaError>,
    ms: Vec<f64>,
    bytes: usize,
    db: f64,
}

fn jpeg() -> Result<Box<dyn Encoder>, MediaError> {
    Ok(Box::new(JpegEncoder::with_backend(
        90,
        JpegBackend::JpegEncoder,
    )?))
}

fn mozjpeg() -> Result<Box<dyn Encoder>, MediaError> {
    Ok(Box::new(JpegEncoder::with_backend(
        90,
        JpegBackend::Mozjpeg,
    )?))
}

fn h264() -> Result<Box<dyn Encoder>, MediaError> {
    Ok(Box::new(H264Encoder::new(H264Config::default())?))
}

fn main() -> Result<(), MediaError> {
    let mut args = std::env::args().skip(1);
    let (width, height) = args
        .next()
        .and_then(|s| {
            let (w, h) = s.split_once('x')?;
            Some((w.parse().ok()?, h.parse().ok()?))
        })
        .unwrap_or((640u32, 480u32));
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(7);

    let mut pattern = TestPattern::camera_like(width, height)?;
    let frames = (0..FRAMES)
        .map(|seq| pattern.render(seq, seq * 33_333).into_i420())
        .collect::<Result<Vec<RawFrame>, _>>()?;
    // What the viewer should see: the I420 source shown as RGB (the same reference for
    // every candidate, and what the encoder got before this change).
    let reference = frames
        .iter()
        .map(|f| f.to_rgb().map(|rgb| rgb.into_owned()))
        .collect::<Result<Vec<_>, _>>()?;

    let mut candidates = [
        ("JPEG q90 via RGB", true, jpeg as fn() -> _),
        ("JPEG q90 I420", false, jpeg),
        ("JPEG q90 I420 mozjpeg", false, mozjpeg),
        ("H.264 1.5M via RGB", true, h264),
        ("H.264 1.5M I420", false, h264),
    ]
    .map(|(name, via_rgb, make)| Candidate {
        name,
        via_rgb,
        make,
        ms: Vec::new(),
        bytes: 0,
        db: 0.0,
    });

    for round in 0..rounds {
        for c in &mut candidates {
            let mut encoder = (c.make)()?;
            let mut encoded = Vec::with_capacity(frames.len());
            let start = thread_cpu_ms();
            for frame in &frames {
                let out = if c.via_rgb {
                    // What the Y4M source did per frame before: convert to a new RGB8 buffer.
                    let rgb = frame.to_rgb()?.into_owned();
                    let (w, h) = (frame.width, frame.height);
                    encoder.encode(&RawFrame::rgb(w, h, rgb, frame.seq, frame.capture_us))?
                } else {
                    encoder.encode(frame)?
                };
                encoded.push(out);
            }
            c.ms.push((thread_cpu_ms() - start) / frames.len() as f64);
            if round == 0 {
                let mut decoder = H264Decoder::new()?;
                for (out, want) in encoded.iter().zip(&reference) {
                    c.bytes += out.data.len();
                    let got = match out.codec {
                        vidcast_media::Codec::Jpeg => Some(decode_jpeg(&out.data)?.rgb),
                        _ => match decoder.decode(&out.data)? {
                            Some(f) => Some(f.to_rgb()?.into_owned()),
                            None => None,
                        },
                    };
                    c.db += got.map_or(0.0, |rgb| psnr(want, &rgb)) / frames.len() as f64;
                }
            }
        }
    }
    println!("JPEG: {}", JpegBackend::best().describe());
    println!("{width}x{height}, {FRAMES} camera-like frames, median of {rounds} interleaved rounds, CPU ms/frame:");
    for c in &candidates {
        println!(
            "{:20} {:6.3} ms/frame  {:7.0} B/frame  PSNR {:.2} dB",
            c.name,
            median(c.ms.clone()),
            c.bytes as f64 / frames.len() as f64,
            c.db
        );
    }
    Ok(())
}
