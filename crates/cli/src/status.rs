//! The live status table `demo` prints until the web wall exists.

use std::fmt::Write;

use vidcast_hub::StreamSnapshot;

/// Renders streams as a fixed-width table.
pub fn table(streams: &[StreamSnapshot]) -> String {
    let live = streams.iter().filter(|s| s.live).count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{live} live of {}",
        vidcast_hub::human::plural(streams.len() as u64, "stream")
    );
    let _ = writeln!(
        out,
        "{:>3}  {:<16} {:<21} {:<5} {:>9} {:>6} {:>8} {:>7} {:>8} {:>8} {:>8}",
        "id",
        "name",
        "peer",
        "codec",
        "size",
        "fps",
        "frames",
        "dropped",
        "kbps",
        "lat p50",
        "lat p99"
    );
    for s in streams {
        let kbps = if s.fps > 0.0 && s.frames > 0 {
            (s.bytes as f64 / s.frames as f64) * s.fps * 8.0 / 1000.0
        } else {
            0.0
        };
        let (p50, p99) = match s.latency_ms {
            Some(l) => (format!("{:.1}ms", l.p50), format!("{:.1}ms", l.p99)),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let _ = writeln!(
            out,
            "{:>3}  {:<16} {:<21} {:<5} {:>9} {:>6.1} {:>8} {:>7} {:>8.0} {:>8} {:>8}{}",
            s.id,
            truncate(&s.name, 16),
            s.peer,
            s.codec,
            format!("{}x{}", s.width, s.height),
            s.fps,
            s.frames,
            s.dropped,
            kbps,
            p50,
            p99,
            if s.live { "" } else { "  (offline)" }
        );
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars().take(max - 1).chain(['…']).collect()
    }
}
