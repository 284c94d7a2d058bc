//! What a BGR picture from Python (OpenCV's layout) costs per frame, stage by stage: CPU time
//! per frame (this thread's, from `CLOCK_THREAD_CPUTIME_ID`: the machine is shared and noisy),
//! the median of the rounds.
//!
//! Sender: "before" is the Python package's path until BGR8 frames existed (reorder BGR →
//! RGB8 in a per-pixel loop, then the JPEG encoder from RGB8: jpeg-encoder); "BGR8" hands the
//! rows to the encoder as they are (H.264 reorders them to RGB8 inside, for OpenH264's AVX2
//! conversion). Receiver: JPEG → BGR (zune-jpeg to RGB then a reordering
//! pass, against `decode_jpeg_bgr`), and an H.264 picture (I420) → BGR: before, the scalar
//! I420 → RGB8 and a reordering pass; now `RawFrame::to_bgr` (yuvutils-rs SIMD, one pass).
//! The last line adds up an H.264 frame's CPU from sender to numpy array, the budget a
//! machine must have for N streams at F fps.
//!
//! Input: 60 camera-like frames (colour bars, moving gradient and box, noise ±12), as BGR.
//!
//! `cargo run --release -p vidcast-media --example bgr_bench [WIDTHxHEIGHT] [ROUNDS]`
//! (defaults 640x480, 5 rounds).

use std::time::Duration;

use vidcast_media::source::yuv::{planar_to_rgb, Subsampling};
use vidcast_media::{
    decode_jpeg, decode_jpeg_bgr, Encoder, H264Config, H264Decoder, H264Encoder, JpegBackend,
    JpegEncoder, RawFrame, TestPattern,
};

const FRAMES: u64 = 60;

mod common;
use common::{median, thread_cpu_ms};

/// Packed 3-byte pixels with the first and third swapped, as the old Python path did.
fn swapped(pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pixels.len());
    for px in pixels.chunks_exact(3) {
        out.extend_from_slice(&[px[2], px[1], px[0]]);
    }
    out
}

/// An I420 picture → BGR the way the Python receiver did before `to_bgr`: the scalar
/// conversion to RGB8, then a reordering pass.
fn scalar_i420_to_bgr(picture: &RawFrame) -> Option<Vec<u8>> {
    let planes = picture.planes().ok()??;
    let rgb = planar_to_rgb(&planes, picture.width, picture.height, Subsampling::Half).ok()?;
    Some(swapped(&rgb))
}

/// Median CPU ms per frame of `stage` over every frame, `rounds` times.
fn time(rounds: usize, frames: usize, mut stage: impl FnMut(usize)) -> f64 {
    let samples = (0..rounds)
        .map(|_| {
            let start = thread_cpu_ms();
            for i in 0..frames {
                stage(i);
            }
            (thread_cpu_ms() - start) / frames as f64
        })
        .collect();
    median(samples)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (width, height) = match args.next() {
        Some(size) => {
            let (w, h) = size.split_once('x').ok_or("size is WIDTHxHEIGHT")?;
            (w.parse()?, h.parse()?)
        }
        None => (640, 480),
    };
    let rounds: usize = args.next().map_or(Ok(5), |r| r.parse())?;
    let mut pattern = TestPattern::camera_like(width, height)?;
    let bgr: Vec<RawFrame> = (0..FRAMES)
        .map(|seq| {
            let rgb = pattern.render(seq, 0).into_rgb()?;
            Ok(RawFrame::bgr(width, height, swapped(&rgb.data), seq, 0))
        })
        .collect::<Result<_, vidcast_media::MediaError>>()?;
    let n = bgr.len();
    println!(
        "{width}x{height}, {n} camera-like frames, median of {rounds} rounds, CPU ms per frame"
    );
    println!("JPEG backend: {}", JpegBackend::best().describe());

    let mut old = JpegEncoder::with_backend(90, JpegBackend::JpegEncoder)?;
    let before = time(rounds, n, |i| {
        let f = &bgr[i];
        let rgb = RawFrame::rgb(width, height, swapped(&f.data), f.seq, 0);
        let _ = old.encode(&rgb);
    });
    let reorder = time(rounds, n, |i| drop(swapped(&bgr[i].data)));
    let copy = time(rounds, n, |i| {
        drop(std::hint::black_box(bgr[i].data.clone()))
    });
    let mut jpeg = JpegEncoder::new(90)?;
    let direct = time(rounds, n, |i| drop(jpeg.encode(&bgr[i])));
    println!("sender JPEG q90: before (reorder + jpeg-encoder) {before:.2}, of it the reorder {reorder:.2}; now BGR8 {direct:.2} plus the copy in send() {copy:.2}");

    let live = || H264Encoder::new(H264Config::live(1_500_000, 30.0, Duration::from_secs(2)));
    let mut h264 = live()?;
    let h264_bgr = time(rounds, n, |i| drop(h264.encode(&bgr[i])));
    let mut h264 = live()?;
    let h264_rgb = time(rounds, n, |i| {
        let f = &bgr[i];
        drop(h264.encode(&RawFrame::rgb(width, height, swapped(&f.data), f.seq, 0)));
    });
    println!(
        "sender H.264 1.5 Mbit/s: BGR8 {h264_bgr:.2}; reordered to RGB8 in Python first {h264_rgb:.2}"
    );

    let jpegs: Vec<_> = bgr
        .iter()
        .map(|f| jpeg.encode(f).map(|e| e.data))
        .collect::<Result<_, _>>()?;
    let zune = time(rounds, n, |i| {
        if let Ok(image) = decode_jpeg(&jpegs[i]) {
            drop(swapped(&image.rgb));
        }
    });
    let turbo = time(rounds, n, |i| drop(decode_jpeg_bgr(&jpegs[i])));
    println!("receiver JPEG → BGR: zune-jpeg + reorder {zune:.2}; decode_jpeg_bgr {turbo:.2}");

    let mut h264 = live()?;
    let stream: Vec<_> = bgr
        .iter()
        .map(|f| h264.encode(f).map(|e| e.data))
        .collect::<Result<_, _>>()?;
    let mut pictures = Vec::new();
    let mut decoder = H264Decoder::new()?;
    let decode = time(1, n, |i| {
        if let Ok(Some(p)) = decoder.decode(&stream[i]) {
            pictures.push(p);
        }
    });
    let picture_count = pictures.len().max(1);
    let scalar_bgr = time(rounds, picture_count, |i| {
        if let Some(p) = pictures.get(i) {
            drop(scalar_i420_to_bgr(p));
        }
    });
    let to_rgb = time(rounds, picture_count, |i| {
        drop(pictures.get(i).map(RawFrame::to_rgb));
    });
    let to_bgr = time(rounds, picture_count, |i| {
        drop(pictures.get(i).map(RawFrame::to_bgr));
    });
    println!(
        "receiver H.264: decode to I420 {decode:.2} (one round); I420 → BGR: before (scalar → RGB, then reorder) {scalar_bgr:.2}, now to_bgr {to_bgr:.2} (to_rgb {to_rgb:.2})"
    );
    let total = h264_bgr + decode + to_bgr;
    println!(
        "H.264 per frame, sender encode + receiver decode + to BGR: {total:.2} ms CPU; 16 x 30 fps = {:.2} cores",
        total * 480.0 / 1000.0
    );
    Ok(())
}
