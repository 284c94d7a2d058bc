//! Per-connection summaries: the JSON shape, a CSV table, and the human-readable report.

use std::fmt::Write as _;

use serde::Serialize;

use crate::flow::{Connection, DirectionStats};

/// RTT in milliseconds (null when there was no sample).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RttMs {
    /// Smallest.
    pub min: Option<f64>,
    /// Mean.
    pub avg: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
    /// How many samples.
    pub samples: u64,
}

/// One direction of a connection, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectionSummary {
    /// Packets.
    pub packets: u64,
    /// Frame bytes as captured on the wire (original length).
    pub bytes: u64,
    /// TCP payload bytes, retransmissions included.
    pub payload_bytes: u64,
    /// Retransmitted segments (plain, fast and spurious).
    pub retransmissions: u64,
    /// Payload bytes in retransmitted segments.
    pub retransmitted_bytes: u64,
    /// Of the retransmissions, fast retransmissions.
    pub fast_retransmissions: u64,
    /// Of the retransmissions, spurious ones (data already acknowledged).
    pub spurious_retransmissions: u64,
    /// Out-of-order segments.
    pub out_of_order: u64,
    /// Duplicate ACKs sent in this direction.
    pub dup_acks: u64,
    /// Segments advertising a zero receive window.
    pub zero_window: u64,
    /// RTT of this direction's data (Karn: ACKs of retransmitted data are not sampled).
    pub rtt_ms: RttMs,
    /// Payload bits per second over the connection's duration.
    pub throughput_bps: f64,
}

/// One connection, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionSummary {
    /// Index in capture order, from 1 (as in file names and the text report).
    pub id: usize,
    /// The SYN sender when the handshake was seen, else the first sender ("ip:port").
    pub a: String,
    /// The other endpoint.
    pub b: String,
    /// Whether the SYN was captured (so `a` is surely the client).
    pub handshake_seen: bool,
    /// First packet, RFC 3339 UTC.
    pub start: String,
    /// First packet, microseconds since the Unix epoch.
    pub start_epoch_us: i64,
    /// From first to last packet.
    pub duration_s: f64,
    /// a → b.
    pub a_to_b: DirectionSummary,
    /// b → a.
    pub b_to_a: DirectionSummary,
}

fn ms(ns: i64) -> f64 {
    // Microsecond precision is what captures give; more digits are noise.
    (ns as f64 / 1e3).round() / 1e3
}

fn direction(s: &DirectionStats, duration_s: f64) -> DirectionSummary {
    let rtt = &s.rtt;
    DirectionSummary {
        packets: s.packets,
        bytes: s.bytes,
        payload_bytes: s.payload_bytes,
        retransmissions: s.retransmissions,
        retransmitted_bytes: s.retransmitted_bytes,
        fast_retransmissions: s.fast_retransmissions,
        spurious_retransmissions: s.spurious_retransmissions,
        out_of_order: s.out_of_order,
        dup_acks: s.dup_acks,
        zero_window: s.zero_windows,
        rtt_ms: RttMs {
            min: (rtt.samples > 0).then(|| ms(rtt.min_ns)),
            avg: rtt.avg_ns().map(|a| ms(a.round() as i64)),
            max: (rtt.samples > 0).then(|| ms(rtt.max_ns)),
            samples: rtt.samples,
        },
        throughput_bps: if duration_s > 0.0 {
            (s.payload_bytes as f64 * 8.0 / duration_s).round()
        } else {
            0.0
        },
    }
}

impl ConnectionSummary {
    /// Summarises a connection.
    pub fn new(c: &Connection) -> Self {
        let duration_s = (c.duration_s() * 1e6).round() / 1e6;
        Self {
            id: c.id.0 + 1,
            a: c.a.to_string(),
            b: c.b.to_string(),
            handshake_seen: c.stats[0].is_syn_seen,
            start: c.start.to_string(),
            start_epoch_us: i64::try_from(c.start.0.div_euclid(1000)).unwrap_or(i64::MAX),
            duration_s,
            a_to_b: direction(&c.stats[0], duration_s),
            b_to_a: direction(&c.stats[1], duration_s),
        }
    }

    /// Total frame bytes both ways (how "busy" a connection is).
    pub fn total_bytes(&self) -> u64 {
        self.a_to_b.bytes + self.b_to_a.bytes
    }
}

/// Human-readable rate.
pub fn rate(bps: f64) -> String {
    match bps {
        b if b >= 1e9 => format!("{:.2} Gbit/s", b / 1e9),
        b if b >= 1e6 => format!("{:.2} Mbit/s", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kbit/s", b / 1e3),
        b => format!("{b:.0} bit/s"),
    }
}

/// Human-readable byte count.
pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 10 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 10 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 10 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn rtt_text(r: &RttMs) -> String {
    match (r.min, r.avg, r.max) {
        (Some(min), Some(avg), Some(max)) => {
            format!("{min:.3} / {avg:.3} / {max:.3} ms ({} samples)", r.samples)
        }
        _ => "-".to_owned(),
    }
}

/// The text report for one connection (tcptrace's long output, condensed).
pub fn text(s: &ConnectionSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "connection {}: {} → {}{}",
        s.id,
        s.a,
        s.b,
        if s.handshake_seen {
            ""
        } else {
            "  (handshake not captured: a is the first sender)"
        }
    );
    let _ = writeln!(out, "  start {}  duration {:.6} s", s.start, s.duration_s);
    let _ = writeln!(out, "  {:<24} {:>24} {:>24}", "", "a→b", "b→a");
    let (x, y) = (&s.a_to_b, &s.b_to_a);
    let mut row = |name: &str, l: String, r: String| {
        let _ = writeln!(out, "  {name:<24} {l:>24} {r:>24}");
    };
    row("packets", x.packets.to_string(), y.packets.to_string());
    row("bytes on the wire", bytes(x.bytes), bytes(y.bytes));
    row(
        "payload bytes",
        bytes(x.payload_bytes),
        bytes(y.payload_bytes),
    );
    row(
        "retransmitted segments",
        x.retransmissions.to_string(),
        y.retransmissions.to_string(),
    );
    row(
        "  of them fast/spurious",
        format!("{}/{}", x.fast_retransmissions, x.spurious_retransmissions),
        format!("{}/{}", y.fast_retransmissions, y.spurious_retransmissions),
    );
    row(
        "retransmitted bytes",
        bytes(x.retransmitted_bytes),
        bytes(y.retransmitted_bytes),
    );
    row(
        "out-of-order",
        x.out_of_order.to_string(),
        y.out_of_order.to_string(),
    );
    row(
        "duplicate ACKs sent",
        x.dup_acks.to_string(),
        y.dup_acks.to_string(),
    );
    row(
        "zero-window segments",
        x.zero_window.to_string(),
        y.zero_window.to_string(),
    );
    row(
        "throughput (payload)",
        rate(x.throughput_bps),
        rate(y.throughput_bps),
    );
    let _ = writeln!(out, "  RTT min/avg/max a→b data: {}", rtt_text(&x.rtt_ms));
    let _ = writeln!(out, "  RTT min/avg/max b→a data: {}", rtt_text(&y.rtt_ms));
    out
}

/// The CSV header for [`csv_rows`].
pub const CSV_HEADER: &str = "id,a,b,start,duration_s,direction,packets,bytes,payload_bytes,retransmissions,retransmitted_bytes,fast_retransmissions,spurious_retransmissions,out_of_order,dup_acks,zero_window,rtt_min_ms,rtt_avg_ms,rtt_max_ms,rtt_samples,throughput_bps";

/// Two CSV rows (one per direction) for a connection.
pub fn csv_rows(s: &ConnectionSummary) -> String {
    let opt = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
    let mut out = String::new();
    for (name, d) in [("a_to_b", &s.a_to_b), ("b_to_a", &s.b_to_a)] {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{name},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            s.id,
            s.a,
            s.b,
            s.start,
            s.duration_s,
            d.packets,
            d.bytes,
            d.payload_bytes,
            d.retransmissions,
            d.retransmitted_bytes,
            d.fast_retransmissions,
            d.spurious_retransmissions,
            d.out_of_order,
            d.dup_acks,
            d.zero_window,
            opt(d.rtt_ms.min),
            opt(d.rtt_ms.avg),
            opt(d.rtt_ms.max),
            d.rtt_ms.samples,
            d.throughput_bps
        );
    }
    out
}
