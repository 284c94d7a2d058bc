//! Time series per connection direction, collected from verdicts in a second pass: the Stevens
//! graph's segments, ACK, window and SACK lines, throughput per interval, RTT and bytes in flight.
//!
//! Memory stays bounded however long the connection: each series keeps at most
//! [`MAX_POINTS`] points, thinning evenly (every other point, then every fourth, …) when full,
//! and throughput is binned into at most [`MAX_BINS`] intervals chosen from the connection's
//! duration (known from the first pass).

use serde::Serialize;

use crate::flow::{Connection, Dir, Flags, Verdict};
use crate::time::Timestamp;

/// Most points kept per series.
pub const MAX_POINTS: usize = 20_000;
/// Most throughput intervals.
pub const MAX_BINS: usize = 2_000;
/// Intervals in the throughput moving average.
pub const MOVING_AVERAGE_BINS: usize = 10;

/// A series that keeps every `stride`-th point, doubling the stride when full.
#[derive(Debug, Clone, Serialize)]
pub struct Thinned<T> {
    /// The kept points.
    pub points: Vec<T>,
    /// One point kept per this many offered (1 = all).
    pub stride: u64,
    #[serde(skip)]
    offered: u64,
    #[serde(skip)]
    cap: usize,
}

impl<T> Thinned<T> {
    /// A series keeping at most `cap` points (at least 2).
    pub fn new(cap: usize) -> Self {
        Self {
            points: Vec::new(),
            stride: 1,
            offered: 0,
            cap: cap.max(2),
        }
    }

    /// Offers a point.
    pub fn push(&mut self, point: T) {
        if self.offered.is_multiple_of(self.stride) {
            self.points.push(point);
            if self.points.len() >= self.cap {
                let mut i = 0;
                self.points.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                self.stride *= 2;
            }
        }
        self.offered += 1;
    }

    /// Points offered in all.
    pub fn offered(&self) -> u64 {
        self.offered
    }
}

impl<T> Default for Thinned<T> {
    fn default() -> Self {
        Self::new(MAX_POINTS)
    }
}

/// A data segment on the Stevens graph.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SegmentPoint {
    /// Seconds since the connection's first packet.
    pub t_s: f64,
    /// First sequence number.
    pub seq: i64,
    /// Sequence number after its last byte.
    pub end: i64,
}

/// A value at a time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Seconds since the connection's first packet.
    pub t_s: f64,
    /// The value.
    pub v: f64,
}

/// A SACK block reported at a time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SackPoint {
    /// Seconds since the connection's first packet.
    pub t_s: f64,
    /// Left edge.
    pub left: i64,
    /// Right edge.
    pub right: i64,
}

/// One throughput interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ThroughputPoint {
    /// Interval start, seconds since the connection's first packet.
    pub t_s: f64,
    /// Payload bytes sent in the interval.
    pub bytes: u64,
    /// The same as a rate.
    pub mbit_s: f64,
    /// Mean rate over this and the previous intervals (up to [`MOVING_AVERAGE_BINS`]).
    pub moving_avg_mbit_s: f64,
}

/// Everything drawn for one direction (the sender's data and the receiver's answers).
#[derive(Debug, Clone, Serialize)]
pub struct DirectionSeries {
    /// Sender.
    pub from: String,
    /// Receiver.
    pub to: String,
    /// `a_to_b` or `b_to_a`.
    pub direction: &'static str,
    /// The sender's ISN; sequence numbers below are relative to it unless `absolute`.
    pub isn: u32,
    /// Whether sequence numbers are absolute (ISN added, unwrapped to 64 bits).
    pub absolute: bool,
    /// Data segments first sent (neither retransmitted nor out of order).
    pub segments: Thinned<SegmentPoint>,
    /// Retransmitted segments (all kinds).
    pub retransmissions: Thinned<SegmentPoint>,
    /// Out-of-order segments.
    pub out_of_order: Thinned<SegmentPoint>,
    /// Cumulative ACK from the receiver.
    pub acks: Thinned<Point>,
    /// Right edge of the receive window (ACK + scaled window).
    pub window: Thinned<Point>,
    /// SACK blocks from the receiver.
    pub sacks: Thinned<SackPoint>,
    /// Segments from the receiver advertising a zero window, at their ACK.
    pub zero_windows: Thinned<Point>,
    /// RTT samples in ms.
    pub rtt_ms: Thinned<Point>,
    /// Bytes sent and not yet acknowledged.
    pub in_flight: Thinned<Point>,
    /// Interval length for `throughput`.
    pub interval_s: f64,
    /// Payload per interval.
    pub throughput: Vec<ThroughputPoint>,
    #[serde(skip)]
    bins: Vec<u64>,
    #[serde(skip)]
    is_base_known: bool,
}

/// A 1-2-5 interval giving at most about `target` bins over `duration_ns`.
fn interval_ns(duration_ns: i64, target: usize) -> i64 {
    let raw = (duration_ns.max(1) as f64 / target as f64).max(1e5);
    let mut unit = 1e5; // 0.1 ms
    loop {
        for m in [1.0, 2.0, 5.0] {
            if unit * m >= raw {
                return (unit * m) as i64;
            }
        }
        unit *= 10.0;
    }
}

/// The series of one connection, both directions.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionSeries {
    /// Connection index from 1.
    pub id: usize,
    /// First packet.
    pub start: String,
    /// `[a→b, b→a]`.
    pub dirs: [DirectionSeries; 2],
    #[serde(skip)]
    start_ts: Timestamp,
    #[serde(skip)]
    interval_ns: i64,
    /// The time range kept, in ns since the connection's start.
    #[serde(skip)]
    range_ns: (i64, i64),
}

impl ConnectionSeries {
    /// Prepares series for `conn` as the first pass saw it.
    pub fn new(conn: &Connection, is_absolute: bool) -> Self {
        Self::with_range(conn, is_absolute, 0.0, f64::INFINITY)
    }

    /// Series of the part of `conn` from `from_s` to `to_s` seconds after its start (times
    /// stay relative to the start; throughput bins cover only the range, so a short busy part
    /// of a long connection keeps its detail).
    pub fn with_range(conn: &Connection, is_absolute: bool, from_s: f64, to_s: f64) -> Self {
        let whole_ns = conn.last.since_ns(conn.start);
        let from_ns = ((from_s.max(0.0) * 1e9) as i64).min(whole_ns);
        let to_ns = if to_s.is_finite() {
            ((to_s * 1e9) as i64).clamp(from_ns, whole_ns)
        } else {
            whole_ns
        };
        let duration_ns = to_ns - from_ns;
        let interval_ns = interval_ns(duration_ns, 200);
        let bins = usize::try_from(duration_ns / interval_ns + 1)
            .unwrap_or(MAX_BINS)
            .min(MAX_BINS);
        let dir = |from: std::net::SocketAddr, to: std::net::SocketAddr, d: Dir| DirectionSeries {
            from: from.to_string(),
            to: to.to_string(),
            direction: d.name(),
            isn: 0,
            absolute: is_absolute,
            segments: Thinned::default(),
            retransmissions: Thinned::default(),
            out_of_order: Thinned::default(),
            acks: Thinned::default(),
            window: Thinned::default(),
            sacks: Thinned::default(),
            zero_windows: Thinned::default(),
            rtt_ms: Thinned::default(),
            in_flight: Thinned::default(),
            interval_s: interval_ns as f64 / 1e9,
            throughput: Vec::new(),
            bins: vec![0; bins],
            is_base_known: false,
        };
        Self {
            id: conn.id.0 + 1,
            start: conn.start.to_string(),
            dirs: [
                dir(conn.a, conn.b, Dir::AtoB),
                dir(conn.b, conn.a, Dir::BtoA),
            ],
            start_ts: conn.start,
            interval_ns,
            range_ns: (from_ns, to_ns),
        }
    }

    /// Adds one segment of this connection.
    pub fn handle(&mut self, ts: Timestamp, v: &Verdict) {
        let rel_ns = ts.since_ns(self.start_ts);
        if rel_ns < self.range_ns.0 || rel_ns > self.range_ns.1 {
            return;
        }
        let t_s = ts.since_s(self.start_ts);
        let x = v.dir.index();
        let y = v.dir.reverse().index();
        for (i, base) in [(x, v.base), (y, v.peer_base)] {
            let d = &mut self.dirs[i];
            if !d.is_base_known {
                d.isn = base;
                d.is_base_known = true;
            }
        }
        let off_x = self.dirs[x].offset();
        let off_y = self.dirs[y].offset();
        {
            let d = &mut self.dirs[x];
            if v.payload_len > 0 {
                let p = SegmentPoint {
                    t_s,
                    seq: v.seq_rel + off_x,
                    end: v.end_rel + off_x,
                };
                if v.flags.any(Flags::ANY_RETRANSMISSION) {
                    d.retransmissions.push(p);
                } else if v.flags.any(Flags::OUT_OF_ORDER) {
                    d.out_of_order.push(p);
                } else {
                    d.segments.push(p);
                }
                let bin = usize::try_from((rel_ns - self.range_ns.0).max(0) / self.interval_ns)
                    .unwrap_or(usize::MAX)
                    .min(d.bins.len().saturating_sub(1));
                if let Some(b) = d.bins.get_mut(bin) {
                    *b += u64::from(v.payload_len);
                }
            }
            if let Some(f) = v.in_flight {
                d.in_flight.push(Point { t_s, v: f as f64 });
            }
        }
        let d = &mut self.dirs[y];
        if let Some(ack) = v.ack_rel {
            d.acks.push(Point {
                t_s,
                v: (ack + off_y) as f64,
            });
            d.window.push(Point {
                t_s,
                v: (ack + off_y) as f64 + v.window_bytes as f64,
            });
            if v.flags.any(Flags::ZERO_WINDOW) {
                d.zero_windows.push(Point {
                    t_s,
                    v: (ack + off_y) as f64,
                });
            }
        }
        for &(left, right) in &v.sack[..usize::from(v.sack_len)] {
            d.sacks.push(SackPoint {
                t_s,
                left: left + off_y,
                right: right + off_y,
            });
        }
        if let Some(ns) = v.rtt_ns {
            d.rtt_ms.push(Point {
                t_s,
                v: ns as f64 / 1e6,
            });
        }
        if let Some(f) = v.peer_in_flight {
            d.in_flight.push(Point { t_s, v: f as f64 });
        }
    }

    /// Turns the bins into throughput points; call once after the last segment.
    pub fn finish(&mut self) {
        let from_s = self.range_ns.0 as f64 / 1e9;
        for d in &mut self.dirs {
            let mut sum = 0u64;
            let mut window = std::collections::VecDeque::new();
            d.throughput = d
                .bins
                .iter()
                .enumerate()
                .map(|(i, &bytes)| {
                    window.push_back(bytes);
                    sum += bytes;
                    if window.len() > MOVING_AVERAGE_BINS {
                        sum -= window.pop_front().unwrap_or(0);
                    }
                    let per_s = 8.0 / d.interval_s / 1e6;
                    ThroughputPoint {
                        t_s: from_s + i as f64 * d.interval_s,
                        bytes,
                        mbit_s: bytes as f64 * per_s,
                        moving_avg_mbit_s: sum as f64 / window.len() as f64 * per_s,
                    }
                })
                .collect();
        }
    }
}

impl DirectionSeries {
    fn offset(&self) -> i64 {
        if self.absolute {
            i64::from(self.isn)
        } else {
            0
        }
    }

    /// Whether this direction carried data (only those get graphs).
    pub fn has_data(&self) -> bool {
        self.segments.offered() + self.retransmissions.offered() + self.out_of_order.offered() > 0
    }

    /// The flow, for titles: `10.0.0.1:40000 → 10.0.0.2:9999`.
    pub fn flow_name(&self) -> String {
        format!("{} → {}", self.from, self.to)
    }

    /// CSV files for this direction: (name suffix, content).
    pub fn csv_files(&self) -> Vec<(&'static str, String)> {
        use std::fmt::Write as _;
        let mut segments = String::from("t_s,seq,end,len,kind\n");
        for (kind, s) in [
            ("data", &self.segments),
            ("retransmission", &self.retransmissions),
            ("out_of_order", &self.out_of_order),
        ] {
            for p in &s.points {
                let _ = writeln!(
                    segments,
                    "{:.9},{},{},{},{kind}",
                    p.t_s,
                    p.seq,
                    p.end,
                    p.end - p.seq
                );
            }
        }
        let points = |header: &str, s: &Thinned<Point>| {
            let mut out = format!("t_s,{header}\n");
            for p in &s.points {
                let _ = writeln!(out, "{:.9},{}", p.t_s, p.v);
            }
            out
        };
        let mut acks = String::from("t_s,ack,window_edge\n");
        for (a, w) in self.acks.points.iter().zip(&self.window.points) {
            let _ = writeln!(acks, "{:.9},{},{}", a.t_s, a.v, w.v);
        }
        let mut sacks = String::from("t_s,left,right\n");
        for p in &self.sacks.points {
            let _ = writeln!(sacks, "{:.9},{},{}", p.t_s, p.left, p.right);
        }
        let mut throughput = String::from("t_s,bytes,mbit_s,moving_avg_mbit_s\n");
        for p in &self.throughput {
            let _ = writeln!(
                throughput,
                "{:.6},{},{:.6},{:.6}",
                p.t_s, p.bytes, p.mbit_s, p.moving_avg_mbit_s
            );
        }
        vec![
            ("segments", segments),
            ("acks", acks),
            ("sacks", sacks),
            ("throughput", throughput),
            ("rtt", points("rtt_ms", &self.rtt_ms)),
            ("inflight", points("bytes", &self.in_flight)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinned_series_stays_bounded_and_even() {
        let mut s = Thinned::new(100);
        for i in 0..10_000u32 {
            s.push(i);
        }
        assert!(
            s.points.len() < 100 && s.points.len() >= 50,
            "{}",
            s.points.len()
        );
        assert_eq!(s.points[0], 0);
        let gaps: Vec<u32> = s.points.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| u64::from(g) == s.stride), "{gaps:?}");
        assert_eq!(s.offered(), 10_000);
    }

    #[test]
    fn intervals_are_round_numbers() {
        assert_eq!(interval_ns(1_000_000_000, 200), 5_000_000);
        assert_eq!(interval_ns(20_000_000_000, 200), 100_000_000);
        assert_eq!(interval_ns(1, 200), 100_000);
    }
}
