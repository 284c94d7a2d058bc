//! Writes one test-pattern frame as a JPEG, to look at it:
//! `cargo run -p vidcast-media --example pattern_jpeg -- out.jpg 640 480`

use std::sync::Arc;

use vidcast_media::{Clock, Encoder, JpegEncoder, SystemClock, TestPattern, TestPatternConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "pattern.jpg".into());
    let width = args.next().map_or(Ok(640), |s| s.parse())?;
    let height = args.next().map_or(Ok(480), |s| s.parse())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let config = TestPatternConfig {
        width,
        height,
        fps: 30.0,
        label: "cam-kitchen".into(),
        paced: false,
    };
    let mut pattern = TestPattern::new(config, Arc::clone(&clock))?;
    let frame = pattern.render(123, clock.now_us());
    let jpeg = JpegEncoder::new(80)?.encode(&frame)?;
    std::fs::write(&path, &jpeg.data)?;
    println!("wrote {path}: {width}x{height}, {} bytes", jpeg.data.len());
    Ok(())
}
