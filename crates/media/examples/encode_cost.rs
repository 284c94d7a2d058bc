//! What encoding camera-like content costs a publisher, in CPU time per frame: H.264 at
//! 1.5 Mbit/s and JPEG q90, 640x480 and 1280x720 (issue 18's clip: the test pattern with
//! noise ±12, 60 frames, read back from Y4M as `vidcast send --source FILE.y4m` does). Also
//! what rendering the noisy test pattern costs, and whether OpenH264 has its assembly.
//!
//! CPU time is this thread's (`/proc/thread-self/schedstat`; the encoders run on the calling
//! thread), so other work on a shared machine does not count:
//! `cargo run -p vidcast-media --example encode_cost [FRAMES]` (dependencies are optimized
//! in the dev profile too; `OPENH264_NO_ASM=1` or no `nasm` builds OpenH264 without asm).

use std::sync::Arc;

use vidcast_media::source::{write_camera_like_y4m, CameraLikeClip, VideoSource, Y4mSource};
use vidcast_media::{
    h264_simd, Clock, Encoder, H264Config, H264Encoder, JpegEncoder, ManualClock, MediaError,
    RawFrame, TestPattern, TestPatternConfig,
};

/// On-CPU nanoseconds of this thread so far.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The camera-like clip's frames, as the Y4M source hands them to an encoder.
fn clip_frames(width: u32, height: u32) -> Result<Vec<RawFrame>, MediaError> {
    let mut y4m = Vec::new();
    write_camera_like_y4m(&mut y4m, &CameraLikeClip::new(width, height, 60))?;
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
    let mut source = Y4mSource::new(&y4m[..], "clip", clock)?;
    let mut frames = Vec::new();
    while let Some(frame) = source.next_frame()? {
        frames.push(frame);
    }
    Ok(frames)
}

/// CPU ms per frame and mean bytes per frame of encoding `count` frames of `frames` in a loop.
fn encode_cost(
    frames: &[RawFrame],
    encoder: &mut dyn Encoder,
    count: usize,
) -> Result<(f64, f64), MediaError> {
    let mut bytes = 0usize;
    let started = thread_cpu_ns();
    for (seq, frame) in frames.iter().cycle().take(count).enumerate() {
        let frame = RawFrame {
            seq: seq as u64,
            ..frame.clone()
        };
        bytes += encoder.encode(&frame)?.data.len();
    }
    let cpu_ms = (thread_cpu_ns() - started) as f64 / 1e6;
    Ok((cpu_ms / count as f64, bytes as f64 / count as f64))
}

fn main() -> Result<(), MediaError> {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    println!("OpenH264: {}", h264_simd());
    println!(
        "{:<10} {:<16} {:>12} {:>12}",
        "size", "encoder", "CPU ms/frame", "bytes/frame"
    );
    for (width, height) in [(640, 480), (1280, 720)] {
        let frames = clip_frames(width, height)?;
        let size = format!("{width}x{height}");
        let mut h264 = H264Encoder::new(H264Config::live(
            1_500_000,
            30.0,
            std::time::Duration::from_secs(2),
        ))?;
        let (ms, bytes) = encode_cost(&frames, &mut h264, count)?;
        println!("{size:<10} {:<16} {ms:>12.2} {bytes:>12.0}", "H.264 1.5M");
        let mut jpeg = JpegEncoder::new(90)?;
        let (ms, bytes) = encode_cost(&frames, &mut jpeg, count)?;
        println!("{size:<10} {:<16} {ms:>12.2} {bytes:>12.0}", "JPEG q90");

        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
        let mut pattern = TestPattern::new(
            TestPatternConfig {
                width,
                height,
                fps: 30.0,
                label: "cost".into(),
                paced: false,
            },
            clock,
        )?;
        pattern.set_noise(12);
        let started = thread_cpu_ns();
        for seq in 0..count as u64 {
            std::hint::black_box(pattern.render(seq, 0));
        }
        let ms = (thread_cpu_ns() - started) as f64 / 1e6 / count as f64;
        println!(
            "{size:<10} {:<16} {ms:>12.2} {:>12}",
            "render noise 12", "-"
        );
    }
    Ok(())
}
