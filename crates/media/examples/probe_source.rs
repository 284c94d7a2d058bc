//! Opens a source the way `vidcast send --source` does and decodes it to the end as fast as
//! possible (a manual clock skips the real-time waits); prints its description and frame
//! count. `cargo run --release -p vidcast-media --example probe_source -- FILE`
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use vidcast_media::source::{open, OpenOptions, SourceSpec};
use vidcast_media::ManualClock;

fn main() {
    let Some(arg) = std::env::args().nth(1) else {
        eprintln!("usage: probe_source SOURCE");
        std::process::exit(2);
    };
    let options = OpenOptions {
        clock: Arc::new(ManualClock::new(0)),
        looping: false,
        width: None,
        height: None,
        fps: None,
        label: "probe".into(),
        noise: 0,
        h264_passthrough: false,
    };
    let result = SourceSpec::parse(&arg).and_then(|spec| open(&spec, &options));
    let mut source = match result {
        Ok(source) => source,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    println!("{}", source.describe());
    let mut frames = 0u64;
    loop {
        match source.next_frame() {
            Ok(Some(_)) => frames += 1,
            Ok(None) => break,
            Err(e) => {
                println!("{frames} frames, then error: {e}");
                std::process::exit(1);
            }
        }
    }
    println!("{frames} frames");
}
