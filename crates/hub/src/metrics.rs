//! `/metrics` in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::registry::StreamSnapshot;
use crate::viewers::ViewerCounters;

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

/// A per-stream metric family: name, type, help, and how to read it off a snapshot.
type PerStream = (
    &'static str,
    &'static str,
    &'static str,
    fn(&StreamSnapshot) -> f64,
);

/// Renders hub-level and per-stream metrics.
pub fn render(
    streams: &[StreamSnapshot],
    viewers: &ViewerCounters,
    events: u64,
    pending: usize,
    hits: &crate::budget::LimitHits,
) -> String {
    let mut out = String::new();
    let live = streams.iter().filter(|s| s.live).count();
    family(
        &mut out,
        "vidcast_streams_live",
        "gauge",
        "Publishers connected now.",
    );
    let _ = writeln!(out, "vidcast_streams_live {live}");
    family(
        &mut out,
        "vidcast_streams_known",
        "gauge",
        "Streams the hub remembers, live or offline.",
    );
    let _ = writeln!(out, "vidcast_streams_known {}", streams.len());
    family(
        &mut out,
        "vidcast_viewers",
        "gauge",
        "Viewers connected now, by kind.",
    );
    let _ = writeln!(
        out,
        "vidcast_viewers{{kind=\"websocket\"}} {}",
        viewers.websockets.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "vidcast_viewers{{kind=\"mjpeg\"}} {}",
        viewers.mjpeg.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "vidcast_viewers{{kind=\"native\"}} {}",
        viewers.native.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "vidcast_viewers{{kind=\"rtsp\"}} {}",
        viewers.rtsp.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "vidcast_viewer_frames_sent_total",
        "counter",
        "Frames sent to viewers.",
    );
    let _ = writeln!(
        out,
        "vidcast_viewer_frames_sent_total {}",
        viewers.frames_sent.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "vidcast_viewer_frames_dropped_total",
        "counter",
        "Frames viewers skipped because they were slower than the stream.",
    );
    let _ = writeln!(
        out,
        "vidcast_viewer_frames_dropped_total {}",
        viewers.frames_dropped.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "vidcast_events_total",
        "counter",
        "Connect and disconnect events.",
    );
    let _ = writeln!(out, "vidcast_events_total {events}");
    family(
        &mut out,
        "vidcast_connections_pending",
        "gauge",
        "Connections still in the handshake.",
    );
    let _ = writeln!(out, "vidcast_connections_pending {pending}");
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
            "id=\"{}\",name=\"{}\",peer=\"{}\",codec=\"{}\"",
            s.id,
            label(&s.name),
            label(&s.peer),
            s.codec
        )
    };
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
            "Publisher's TCP delivery rate estimate, bits per second.",
            |s| s.tcp.publisher.map_or(f64::NAN, |p| p.delivery_mbps * 1e6),
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
    family(
        &mut out,
        "vidcast_stream_latency_seconds",
        "gauge",
        "Capture-to-hub latency percentiles over the recent window.",
    );
    for s in streams {
        if let Some(l) = s.latency_ms {
            for (p, v) in [("50", l.p50), ("95", l.p95), ("99", l.p99)] {
                let _ = writeln!(
                    out,
                    "vidcast_stream_latency_seconds{{{},percentile=\"{p}\"}} {}",
                    labels(s),
                    number(v / 1000.0)
                );
            }
        }
    }
    recording_and_restream(&mut out, streams, &labels);
    out
}

/// Per-stream recording counters (with `--record`) and per-push restream counters.
fn recording_and_restream(
    out: &mut String,
    streams: &[StreamSnapshot],
    labels: &dyn Fn(&StreamSnapshot) -> String,
) {
    type Recorded = (
        &'static str,
        &'static str,
        &'static str,
        fn(&crate::recording::RecordingSnapshot) -> u64,
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
                    let _ = writeln!(out, "{name}{{{}}} {}", labels(s), value(r));
                }
            }
        }
    }
    type Pushed = (
        &'static str,
        &'static str,
        &'static str,
        fn(&crate::restream::PushView) -> u64,
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
                        labels(s),
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

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
