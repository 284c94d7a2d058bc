//! The network view of each stream: the hub's own TCP_INFO samples of the connection and the
//! publisher's reports of its sending side, with a bounded history for graphs.

use std::collections::VecDeque;

use serde::Serialize;
use vidcast_proto::SenderReport;
use vidcast_tcpinfo::TcpStats;

/// Samples kept per side: a minute at four samples a second.
pub(crate) const HISTORY: usize = 240;

/// The newest network figures of a stream, as `/api/streams` shows them under `tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NetNow {
    /// The hub's (receiving) side.
    pub hub: Option<HubSide>,
    /// The publisher's (sending) side, as it reported it.
    pub publisher: Option<PublisherSide>,
}

/// The receiving side, from the hub's kernel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HubSide {
    /// The kernel's receive-side estimate (`tcpi_rcv_rtt`), ms; null before its first
    /// sample. Not a round-trip time for a video stream: the kernel times how long a whole
    /// receive window takes to arrive, which for a sender that sends less than the link
    /// carries is seconds. Shown neither on the tiles nor in the wall's RTT graph; use
    /// the stream's `rtt`.
    pub rcv_rtt_ms: Option<f64>,
    /// Bytes received on the connection.
    pub bytes_received: u64,
    /// Receive throughput over the last sampling interval, Mbit/s.
    pub throughput_mbps: f64,
}

/// The sending side, from the publisher's kernel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PublisherSide {
    /// Smoothed RTT, ms.
    pub rtt_ms: f64,
    /// RTT variance, ms.
    pub rttvar_ms: f64,
    /// Congestion window, segments.
    pub cwnd: u32,
    /// Congestion window, bytes.
    pub cwnd_bytes: u64,
    /// Bytes in flight.
    pub in_flight_bytes: u64,
    /// Retransmitted segments so far.
    pub retransmissions: u32,
    /// Bytes the publisher's kernel holds unsent.
    pub notsent_bytes: u32,
    /// The publisher's kernel delivery-rate estimate, Mbit/s; null when it has none or
    /// when it is above [`DELIVERY_CAP_MBPS`] (a burst within one host or over loopback, not
    /// a link rate).
    pub delivery_mbps: Option<f64>,
    /// Frames the publisher dropped (latest frame wins).
    pub frames_dropped: u64,
}

/// Delivery rates above this (10 Gbit/s) are not shown: they are bursts over loopback or
/// within a host, not the rate of a link a camera sends over.
pub(crate) const DELIVERY_CAP_MBPS: f64 = 10_000.0;

/// A kernel delivery rate (bytes per second) as Mbit/s, if it is a measurement of a link.
fn delivery_mbps(bytes_per_second: u64) -> Option<f64> {
    let mbps = bytes_per_second as f64 * 8.0 / 1e6;
    (mbps > 0.0 && mbps <= DELIVERY_CAP_MBPS).then_some(mbps)
}

/// A round-trip time a user should believe, and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rtt {
    /// Milliseconds.
    pub ms: f64,
    /// "app ping": the hub's own Ping/Pong with the publisher, through the same connection
    /// (so it includes any queue in front of it, as frames do); "tcp srtt": the publisher
    /// kernel's smoothed RTT, used only before the first pong (a delayed ACK can add up to
    /// 40 ms to it on an idle link).
    pub source: &'static str,
}

impl Rtt {
    /// The app ping's RTT when there is one, else the publisher kernel's smoothed RTT when
    /// it has a sample; `None` when neither.
    pub fn choose(ping_us: Option<u64>, publisher: Option<&PublisherSide>) -> Option<Self> {
        if let Some(us) = ping_us {
            return Some(Self {
                ms: us as f64 / 1000.0,
                source: "app ping",
            });
        }
        publisher.filter(|p| p.rtt_ms > 0.0).map(|p| Self {
            ms: p.rtt_ms,
            source: "tcp srtt",
        })
    }
}

/// Bounded histories of both sides.
#[derive(Debug, Clone, Default)]
pub struct NetHistory {
    /// The hub's TCP_INFO samples, with the app ping's RTT (µs) known then.
    hub: VecDeque<(u64, TcpStats, Option<u64>)>,
    publisher: VecDeque<(u64, SenderReport)>,
}

fn push<T>(q: &mut VecDeque<T>, item: T) {
    if q.len() == HISTORY {
        q.pop_front();
    }
    q.push_back(item);
}

fn ms(us: u32) -> f64 {
    f64::from(us) / 1000.0
}

/// Series for graphs: parallel arrays, times in seconds relative to `t0_us` (hub clock).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NetSeries {
    /// Sample times of the hub side, s.
    pub hub_t: Vec<f64>,
    /// Bytes received by then (the time-sequence graph).
    pub hub_bytes_received: Vec<u64>,
    /// Receive throughput, Mbit/s.
    pub hub_throughput_mbps: Vec<f64>,
    /// The kernel's receive-side estimate, ms (0: none yet); not a round-trip time for a
    /// video stream (see [`HubSide::rcv_rtt_ms`]), kept for completeness.
    pub hub_rcv_rtt_ms: Vec<f64>,
    /// Times of the app ping's RTT samples, s.
    pub ping_t: Vec<f64>,
    /// The app ping's RTT (hub ↔ publisher Ping/Pong), ms.
    pub ping_rtt_ms: Vec<f64>,
    /// Report times of the publisher side (arrival on the hub clock), s.
    pub pub_t: Vec<f64>,
    /// RTT, ms.
    pub pub_rtt_ms: Vec<f64>,
    /// Congestion window, segments.
    pub pub_cwnd: Vec<u32>,
    /// Bytes in flight.
    pub pub_in_flight_bytes: Vec<u64>,
    /// Retransmitted segments so far.
    pub pub_retransmissions: Vec<u32>,
    /// Unsent bytes in the publisher's kernel.
    pub pub_notsent_bytes: Vec<u32>,
    /// Delivery rate, Mbit/s; null where not a link rate (see [`PublisherSide::delivery_mbps`]).
    pub pub_delivery_mbps: Vec<Option<f64>>,
}

impl NetHistory {
    /// Adds a sample of the hub's side taken at `at_us`, with the app ping's newest RTT.
    pub fn record_hub(&mut self, at_us: u64, stats: TcpStats, ping_rtt_us: Option<u64>) {
        push(&mut self.hub, (at_us, stats, ping_rtt_us));
    }

    /// Adds a publisher report that arrived at `at_us`.
    pub fn record_publisher(&mut self, at_us: u64, report: SenderReport) {
        push(&mut self.publisher, (at_us, report));
    }

    /// Forgets everything (a new connection starts new counters).
    pub fn clear(&mut self) {
        self.hub.clear();
        self.publisher.clear();
    }

    fn throughput(
        prev: Option<&(u64, TcpStats, Option<u64>)>,
        now: &(u64, TcpStats, Option<u64>),
    ) -> f64 {
        match prev {
            Some((t0, s0, _)) if now.0 > *t0 => {
                let bytes = now.1.bytes_received.saturating_sub(s0.bytes_received);
                bytes as f64 * 8.0 / ((now.0 - t0) as f64 / 1e6) / 1e6
            }
            _ => 0.0,
        }
    }

    /// The newest figures of both sides.
    pub fn now(&self) -> NetNow {
        let n = self.hub.len();
        let hub = self.hub.back().map(|last| HubSide {
            rcv_rtt_ms: (last.1.rcv_rtt_us > 0).then(|| ms(last.1.rcv_rtt_us)),
            bytes_received: last.1.bytes_received,
            throughput_mbps: Self::throughput(n.checked_sub(2).and_then(|i| self.hub.get(i)), last),
        });
        let publisher = self.publisher.back().map(|(_, r)| PublisherSide {
            rtt_ms: ms(r.rtt_us),
            rttvar_ms: ms(r.rttvar_us),
            cwnd: r.cwnd_segments,
            cwnd_bytes: u64::from(r.cwnd_segments) * u64::from(r.mss),
            in_flight_bytes: u64::from(r.unacked_segments) * u64::from(r.mss),
            retransmissions: r.total_retrans,
            notsent_bytes: r.notsent_bytes,
            delivery_mbps: delivery_mbps(r.delivery_rate),
            frames_dropped: r.frames_dropped,
        });
        NetNow { hub, publisher }
    }

    /// The whole history as series, times relative to `t0_us`.
    pub fn series(&self, t0_us: u64) -> NetSeries {
        let secs = |t: u64| (t as f64 - t0_us as f64) / 1e6;
        let mut out = NetSeries::default();
        let mut prev = None;
        for sample in &self.hub {
            out.hub_t.push(secs(sample.0));
            out.hub_bytes_received.push(sample.1.bytes_received);
            out.hub_throughput_mbps.push(Self::throughput(prev, sample));
            out.hub_rcv_rtt_ms.push(ms(sample.1.rcv_rtt_us));
            if let Some(rtt_us) = sample.2 {
                out.ping_t.push(secs(sample.0));
                out.ping_rtt_ms.push(rtt_us as f64 / 1000.0);
            }
            prev = Some(sample);
        }
        for (t, r) in &self.publisher {
            out.pub_t.push(secs(*t));
            out.pub_rtt_ms.push(ms(r.rtt_us));
            out.pub_cwnd.push(r.cwnd_segments);
            out.pub_in_flight_bytes
                .push(u64::from(r.unacked_segments) * u64::from(r.mss));
            out.pub_retransmissions.push(r.total_retrans);
            out.pub_notsent_bytes.push(r.notsent_bytes);
            out.pub_delivery_mbps.push(delivery_mbps(r.delivery_rate));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_bounded_and_throughput_comes_from_deltas() {
        let mut h = NetHistory::default();
        for i in 0..(HISTORY as u64 + 10) {
            let stats = TcpStats {
                bytes_received: i * 125_000,
                ..TcpStats::default()
            };
            h.record_hub(i * 250_000, stats, Some(200));
        }
        let s = h.series(0);
        assert_eq!(s.hub_t.len(), HISTORY);
        // 125 kB per 250 ms = 4 Mbit/s.
        assert!((h.now().hub.unwrap().throughput_mbps - 4.0).abs() < 1e-9);
        assert!(h.now().publisher.is_none());
        assert_eq!(s.ping_rtt_ms.len(), HISTORY);
        assert_eq!(s.ping_rtt_ms[0], 0.2);
        assert_eq!(
            h.now().hub.unwrap().rcv_rtt_ms,
            None,
            "no sample is not 0 ms"
        );
    }

    #[test]
    fn delivery_rates_that_are_not_link_rates_are_left_out() {
        assert_eq!(delivery_mbps(0), None);
        assert_eq!(delivery_mbps(1_250_000), Some(10.0));
        // 74 837 Mbit/s: loopback.
        assert_eq!(delivery_mbps(9_354_625_000), None);
    }

    #[test]
    fn the_app_ping_is_the_rtt_shown_and_the_kernels_only_without_one() {
        let kernel = PublisherSide {
            rtt_ms: 28.0,
            rttvar_ms: 0.0,
            cwnd: 10,
            cwnd_bytes: 0,
            in_flight_bytes: 0,
            retransmissions: 0,
            notsent_bytes: 0,
            delivery_mbps: None,
            frames_dropped: 0,
        };
        let ping = Rtt::choose(Some(40), Some(&kernel)).unwrap();
        assert_eq!((ping.ms, ping.source), (0.04, "app ping"));
        let srtt = Rtt::choose(None, Some(&kernel)).unwrap();
        assert_eq!((srtt.ms, srtt.source), (28.0, "tcp srtt"));
        let no_sample = PublisherSide {
            rtt_ms: 0.0,
            ..kernel
        };
        assert_eq!(Rtt::choose(None, Some(&no_sample)), None);
    }
}
