//! `/metrics` in the Prometheus text exposition format (version 0.0.4).
//!
//! Per-stream series are labelled by the stream's id, name and codec, which last across its
//! publisher's reconnections; the publisher's address is only in `vidcast_stream_info`
//! (without its port, which changes at every connection). Latency is a histogram, which
//! Prometheus can aggregate across streams and hubs. Every live stream is exported, and the
//! [`MAX_OFFLINE_STREAMS`] offline ones that left last, so the text stays bounded.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::serve::listing::StreamListing;
use crate::serve::viewers::ViewerCounters;
use crate::stream::registry::StreamSnapshot;
use crate::stream::stats::LATENCY_BUCKETS_US;

/// Escapes a label value: backslash, double quote and newline.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Hub-wide metrics of one unlabelled sample each: name, type, help, value.
fn scalars(out: &mut String, rows: &[(&str, &str, &str, u64)]) {
    for &(name, kind, help, value) in rows {
        family(out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
}

/// Viewers connected now, by kind.
fn viewer_counts(out: &mut String, viewers: &ViewerCounters) {
    family(
        out,
        "vidcast_viewers",
        "gauge",
        "Viewers connected now, by kind.",
    );
    for (kind, count) in [
        ("websocket", &viewers.websockets),
        ("mjpeg", &viewers.mjpeg),
        ("native", &viewers.native),
        ("rtsp", &viewers.rtsp),
    ] {
        let _ = writeln!(
            out,
            "vidcast_viewers{{kind=\"{kind}\"}} {}",
            count.load(Ordering::Relaxed)
        );
    }
}

/// A per-stream metric family: name, type, help, and how to read it off a snapshot.
type PerStream = (
    &'static str,
    &'static str,
    &'static str,
    fn(&StreamSnapshot) -> f64,
);

/// Offline streams exported at most (the most recently disconnected); the rest are counted
/// in `vidcast_metrics_streams_omitted`.
pub(crate) const MAX_OFFLINE_STREAMS: usize = 64;

/// The streams to export: every live one, and the offline ones that left last; and how many
/// were left out.
fn exported(streams: &[StreamListing]) -> (Vec<&StreamListing>, usize) {
    let mut offline: Vec<&StreamListing> = streams.iter().filter(|s| !s.stream.live).collect();
    offline.sort_unstable_by_key(|s| std::cmp::Reverse(s.stream.disconnected_at_us));
    let omitted = offline.len().saturating_sub(MAX_OFFLINE_STREAMS);
    offline.truncate(MAX_OFFLINE_STREAMS);
    let mut chosen: Vec<&StreamListing> = streams.iter().filter(|s| s.stream.live).collect();
    chosen.extend(offline);
    chosen.sort_unstable_by_key(|s| s.stream.id);
    (chosen, omitted)
}

/// Renders hub-level and per-stream metrics.
pub(crate) fn render(
    all_streams: &[StreamListing],
    viewers: &ViewerCounters,
    events: u64,
    pending: usize,
    hits: &crate::access::budget::LimitHits,
) -> String {
    let mut out = String::new();
    let live = all_streams.iter().filter(|s| s.stream.live).count();
    let (listed, omitted) = exported(all_streams);
    let snapshots: Vec<&StreamSnapshot> = listed.iter().map(|l| &l.stream).collect();
    let streams = snapshots.as_slice();
    scalars(
        &mut out,
        &[
            (
                "vidcast_streams_live",
                "gauge",
                "Publishers connected now.",
                live as u64,
            ),
            (
                "vidcast_streams_known",
                "gauge",
                "Streams the hub remembers, live or offline.",
                all_streams.len() as u64,
            ),
            (
                "vidcast_metrics_streams_omitted",
                "gauge",
                "Offline streams left out of this page (only the 64 that left last are shown).",
                omitted as u64,
            ),
        ],
    );
    viewer_counts(&mut out, viewers);
    scalars(
        &mut out,
        &[
            (
                "vidcast_viewer_frames_sent_total",
                "counter",
                "Frames sent to viewers.",
                viewers.frames_sent.load(Ordering::Relaxed),
            ),
            (
                "vidcast_viewer_frames_dropped_total",
                "counter",
                "Frames viewers skipped because they were slower than the stream.",
                viewers.frames_dropped.load(Ordering::Relaxed),
            ),
            (
                "vidcast_events_total",
                "counter",
                "Connect and disconnect events.",
                events,
            ),
            (
                "vidcast_connections_pending",
                "gauge",
                "Connections still in the handshake.",
                pending as u64,
            ),
        ],
    );
    family(
        &mut out,
        "vidcast_limit_hits_total",
        "counter",
        "Times a resource limit refused or closed a peer, by limit.",
    );
    for (limit, _help, count) in hits.entries() {
        let _ = writeln!(out, "vidcast_limit_hits_total{{limit=\"{limit}\"}} {count}");
    }

    let labels = |s: &StreamSnapshot| {
        format!(
            "id=\"{}\",name=\"{}\",codec=\"{}\"",
            s.id,
            label(&s.name),
            s.codec
        )
    };
    family(
        &mut out,
        "vidcast_stream_info",
        "gauge",
        "1 per stream, with the address its publisher connects from (no port: it changes at every connection).",
    );
    for s in streams {
        let address = s
            .peer
            .parse::<std::net::SocketAddr>()
            .map_or_else(|_| s.peer.clone(), |a| a.ip().to_string());
        let _ = writeln!(
            out,
            "vidcast_stream_info{{{},address=\"{}\",browser=\"{}\"}} 1",
            labels(s),
            label(&address),
            s.browser
        );
    }
    let per_stream: [PerStream; 13] = [
        (
            "vidcast_stream_frames_total",
            "counter",
            "Frames received.",
            |s| s.frames as f64,
        ),
        (
            "vidcast_stream_bytes_total",
            "counter",
            "Picture bytes received.",
            |s| s.bytes as f64,
        ),
        (
            "vidcast_stream_dropped_total",
            "counter",
            "Frames captured by the publisher that never arrived.",
            |s| s.dropped as f64,
        ),
        (
            "vidcast_stream_fps",
            "gauge",
            "Frames per second over the last second.",
            |s| s.fps,
        ),
        (
            "vidcast_stream_live",
            "gauge",
            "1 while the publisher is connected.",
            |s| f64::from(u8::from(s.live)),
        ),
        (
            "vidcast_stream_rtt_seconds",
            "gauge",
            "Last round-trip time to the publisher.",
            |s| s.rtt_ms.unwrap_or(f64::NAN) / 1000.0,
        ),
        (
            "vidcast_stream_tcp_rtt_seconds",
            "gauge",
            "Publisher's kernel smoothed TCP RTT.",
            |s| s.tcp.publisher.map_or(f64::NAN, |p| p.rtt_ms / 1000.0),
        ),
        (
            "vidcast_stream_tcp_cwnd_bytes",
            "gauge",
            "Publisher's TCP congestion window.",
            |s| s.tcp.publisher.map_or(f64::NAN, |p| p.cwnd_bytes as f64),
        ),
        (
            "vidcast_stream_tcp_retransmissions_total",
            "counter",
            "Segments the publisher's kernel retransmitted.",
            |s| {
                s.tcp
                    .publisher
                    .map_or(f64::NAN, |p| f64::from(p.retransmissions))
            },
        ),
        (
            "vidcast_stream_tcp_delivery_rate_bits",
            "gauge",
            "Publisher's TCP delivery rate estimate, bits per second (NaN when none, or above 10 Gbit/s: not a link rate).",
            |s| {
                s.tcp
                    .publisher
                    .and_then(|p| p.delivery_mbps)
                    .map_or(f64::NAN, |mbps| mbps * 1e6)
            },
        ),
        (
            "vidcast_stream_rtsp_readers",
            "gauge",
            "RTSP players reading the stream now.",
            |s| s.rtsp.readers as f64,
        ),
        (
            "vidcast_stream_rtsp_transcoding",
            "gauge",
            "1 while the stream's JPEG is encoded to H.264 for RTSP players.",
            |s| f64::from(u8::from(s.rtsp.transcoding)),
        ),
        (
            "vidcast_stream_receive_rate_bits",
            "gauge",
            "Bytes the hub's kernel received per second, in bits.",
            |s| s.tcp.hub.map_or(f64::NAN, |h| h.throughput_mbps * 1e6),
        ),
    ];
    for (name, kind, help, value) in per_stream {
        family(&mut out, name, kind, help);
        for s in streams {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(s), number(value(s)));
        }
    }
    latency_histogram(&mut out, streams, &labels);
    recording_and_restream(&mut out, &listed, &labels);
    out
}

/// Capture-to-hub latency since each stream was first seen, as a histogram: cumulative
/// `_bucket` counts with `le` in seconds, `_sum` and `_count`.
fn latency_histogram(
    out: &mut String,
    streams: &[&StreamSnapshot],
    labels: &dyn Fn(&StreamSnapshot) -> String,
) {
    let name = "vidcast_stream_latency_seconds";
    family(
        out,
        name,
        "histogram",
        "Capture-to-hub latency of frames received (publisher clock mapped onto the hub's).",
    );
    for s in streams {
        let h = &s.latency_histogram;
        let labels = labels(s);
        let mut cumulative = 0u64;
        for (bound, count) in LATENCY_BUCKETS_US.iter().zip(h.buckets) {
            cumulative = cumulative.saturating_add(count);
            let le = *bound as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_us as f64 / 1e6);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
    }
}

/// Per-stream recording counters (with `--record`) and per-push restream counters.
fn recording_and_restream(
    out: &mut String,
    streams: &[&StreamListing],
    labels: &dyn Fn(&StreamSnapshot) -> String,
) {
    type Recorded = (
        &'static str,
        &'static str,
        &'static str,
        fn(&crate::egress::recording::RecordingSnapshot) -> u64,
    );
    let recorded: [Recorded; 5] = [
        ("vidcast_recording_frames_total", "counter", "Frames written to the recording since the stream connected.", |r| r.frames),
        ("vidcast_recording_dropped_total", "counter", "Frames the recording lost (behind the disk, waiting for a keyframe, after a write error).", |r| r.dropped),
        ("vidcast_recording_bytes_total", "counter", "Bytes written to recordings.", |r| r.bytes),
        ("vidcast_recording_segments_total", "counter", "Recording files started.", |r| r.segments),
        ("vidcast_recording_failing", "gauge", "1 while the last write failed (disk full, directory gone).", |r| u64::from(r.error.is_some())),
    ];
    if streams.iter().any(|s| s.recording.is_some()) {
        for (name, kind, help, value) in recorded {
            family(out, name, kind, help);
            for s in streams {
                if let Some(r) = &s.recording {
                    let _ = writeln!(out, "{name}{{{}}} {}", labels(&s.stream), value(r));
                }
            }
        }
    }
    type Pushed = (
        &'static str,
        &'static str,
        &'static str,
        fn(&crate::egress::restream::PushView) -> u64,
    );
    let pushed: [Pushed; 5] = [
        (
            "vidcast_restream_publishing",
            "gauge",
            "1 while the media server takes the stream.",
            |p| u64::from(p.publishing),
        ),
        (
            "vidcast_restream_frames_total",
            "counter",
            "Frames pushed to the media server.",
            |p| p.frames_sent,
        ),
        (
            "vidcast_restream_lost_total",
            "counter",
            "Frames not pushed because the server or the transcoder was slower than the stream.",
            |p| p.frames_lost,
        ),
        (
            "vidcast_restream_bytes_total",
            "counter",
            "RTMP bytes written to the media server.",
            |p| p.bytes_sent,
        ),
        (
            "vidcast_restream_connects_total",
            "counter",
            "Connections that reached publishing.",
            |p| p.connects,
        ),
    ];
    if streams.iter().any(|s| !s.restream.is_empty()) {
        for (name, kind, help, value) in pushed {
            family(out, name, kind, help);
            for s in streams {
                for target in &s.restream {
                    let _ = writeln!(
                        out,
                        "{name}{{{},url=\"{}\"}} {}",
                        labels(&s.stream),
                        label(&target.url),
                        value(&target.status)
                    );
                }
            }
        }
    }
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::serve::viewers::ViewerCounters;
    use crate::stream::registry::{Owner, Registry, StreamInfo};

    /// A registry with `live` streams and `offline` ones, each with a few latency samples.
    fn streams(live: usize, offline: usize) -> Vec<StreamListing> {
        let limits = crate::access::limits::Limits {
            max_publishers_per_ip: 10_000,
            max_offline_streams: 10_000,
            ..Default::default()
        };
        let registry = Registry::with_limits(64, &limits);
        for i in 0..live + offline {
            let info = StreamInfo {
                name: format!("cam-{i}"),
                peer: ([127, 0, 0, 1], 40_000 + i as u16).into(),
                codec: vidcast_proto::Codec::Jpeg,
                width: 64,
                height: 48,
                fps_nominal: 30.0,
                legacy: false,
                browser: false,
            };
            let ip = info.peer.ip();
            let handle = registry.connect(info, Owner::of("", ip), 1).unwrap();
            {
                let mut stats = handle.stats.lock().unwrap();
                for (seq, latency_us) in [3_000, 7_000, 40_000, 20_000_000].into_iter().enumerate()
                {
                    stats.record_frame(seq as u64, 1000, 2, Some(latency_us));
                }
            }
            if i >= live {
                registry.disconnect(handle.id, "gone".into(), true, 10 + i as u64);
            }
        }
        registry
            .snapshot(100)
            .into_iter()
            .map(|stream| StreamListing {
                stream,
                recording: None,
                restream: Vec::new(),
            })
            .collect()
    }

    fn text(streams: &[StreamListing]) -> String {
        render(
            streams,
            &ViewerCounters::default(),
            0,
            0,
            &crate::access::budget::LimitHits::default(),
        )
    }

    #[test]
    fn latency_is_a_histogram_and_no_series_carries_the_peer_port() {
        let text = text(&streams(1, 0));
        assert!(!text.contains("peer="), "{text}");
        assert!(!text.contains("percentile="), "{text}");
        assert!(text.contains("# TYPE vidcast_stream_latency_seconds histogram"));
        assert!(text.contains(
            "vidcast_stream_info{id=\"1\",name=\"cam-0\",codec=\"jpeg\",address=\"127.0.0.1\",browser=\"false\"} 1"
        ), "{text}");
        // Parse the histogram back: cumulative, ending at the count.
        let labels = "id=\"1\",name=\"cam-0\",codec=\"jpeg\"";
        let mut buckets = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(&format!(
                "vidcast_stream_latency_seconds_bucket{{{labels},le=\""
            )) else {
                continue;
            };
            let (le, value) = rest.split_once("\"} ").unwrap();
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            buckets.push((le, value.parse::<u64>().unwrap()));
        }
        assert_eq!(buckets.len(), LATENCY_BUCKETS_US.len() + 1);
        assert!(
            buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{buckets:?}"
        );
        let at = |le: f64| buckets.iter().find(|b| b.0 == le).unwrap().1;
        assert_eq!(
            (at(0.005), at(0.01), at(0.05), at(10.0), at(f64::INFINITY)),
            (1, 2, 3, 3, 4)
        );
        let line = |name: &str| {
            let prefix = format!("vidcast_stream_latency_seconds_{name}{{{labels}}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap()
                .parse::<f64>()
                .unwrap()
        };
        assert_eq!(line("count"), 4.0);
        assert!((line("sum") - 20.05).abs() < 1e-9, "{}", line("sum"));
    }

    #[test]
    fn many_offline_streams_keep_the_text_bounded() {
        let few = text(&streams(10, MAX_OFFLINE_STREAMS)).len();
        let many = text(&streams(10, MAX_OFFLINE_STREAMS + 500));
        assert!(many.contains("vidcast_metrics_streams_omitted 500"));
        let exported = many
            .lines()
            .filter(|l| l.starts_with("vidcast_stream_info{"))
            .count();
        assert_eq!(
            exported,
            10 + MAX_OFFLINE_STREAMS,
            "every live one, the last offline ones"
        );
        assert!(many.contains("name=\"cam-9\""), "live streams stay");
        assert!(many.contains("name=\"cam-573\""), "the last to leave stays");
        assert!(!many.contains("name=\"cam-10\""), "the first to leave goes");
        // What one stream costs, so 1 000 live streams stay a few MB at most.
        let per_stream = (few - text(&[]).len()) / (10 + MAX_OFFLINE_STREAMS);
        assert!(per_stream < 4096, "{per_stream} bytes per stream");
        assert!(
            many.len() < (10 + MAX_OFFLINE_STREAMS) * 4096,
            "{} bytes",
            many.len()
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
