//! Render, JPEG-encode and decode timings for the test pattern; prints medians.
//!
//! `taskset -c 0 cargo run --release -p vidcast-media --example media_bench`
//!
//! "render alone" renders and drops frames in a loop, so the allocator reuses one buffer;
//! in the pipeline each fresh multi-MB buffer can cost page faults (see the crate docs).

use std::sync::Arc;
use std::time::Instant;

use vidcast_media::{
    decode_jpeg, Encoder, JpegEncoder, ManualClock, MediaError, TestPattern, TestPatternConfig,
};

const FRAMES: u64 = 300;

fn median_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() -> Result<(), MediaError> {
    for (width, height) in [(160, 120), (640, 480), (1280, 720), (1920, 1080)] {
        let config = TestPatternConfig {
            width,
            height,
            fps: 30.0,
            label: "CLIENT: 10.0.0.5:51234".into(),
            paced: false,
        };
        let mut pattern = TestPattern::new(config, Arc::new(ManualClock::new(0)))?;
        let mut alone = vec![];
        for seq in 0..FRAMES {
            let t = Instant::now();
            let frame = pattern.render(seq, seq * 33_333);
            alone.push(t.elapsed().as_secs_f64() * 1e3);
            drop(frame);
        }
        let mut encoder = JpegEncoder::new(80)?;
        let (mut render, mut encode, mut decode, mut bytes) = (vec![], vec![], vec![], 0);
        for seq in 0..FRAMES {
            let t = Instant::now();
            let frame = pattern.render(seq, seq * 33_333);
            render.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let jpeg = encoder.encode(&frame)?;
            encode.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            decode_jpeg(&jpeg.data)?;
            decode.push(t.elapsed().as_secs_f64() * 1e3);
            bytes += jpeg.data.len();
        }
        println!(
            "{width}x{height}: render alone {:.3} ms, in pipeline {:.3} ms; JPEG q80 encode {:.2} ms, {} bytes/frame; decode {:.2} ms (medians of {FRAMES})",
            median_ms(alone),
            median_ms(render),
            median_ms(encode),
            bytes / FRAMES as usize,
            median_ms(decode),
        );
    }
    Ok(())
}
