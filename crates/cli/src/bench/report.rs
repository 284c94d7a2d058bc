//! `vidcast bench`'s result: what `--json` prints and the human report.

use serde::Serialize;
use vidcast_client::PublishReport;
use vidcast_proto::Codec;

use super::measure::Window;
use super::BenchArgs;

/// Per-publisher outcome.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ClientResult {
    name: String,
    fps_received: f64,
    frames_received: u64,
    dropped: u64,
    latency_ms_p99: Option<f64>,
}

/// The benchmark's result, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub(super) struct BenchResult {
    clients: u32,
    mode: &'static str,
    codec: &'static str,
    width: u32,
    height: u32,
    fps_target: f64,
    duration_s: f64,
    frame_bytes_avg: f64,
    fps_per_client_min: f64,
    fps_per_client_median: f64,
    fps_aggregate: f64,
    fps_aggregate_target: f64,
    latency_ms_p50: Option<f64>,
    latency_ms_p95: Option<f64>,
    latency_ms_p99: Option<f64>,
    latency_ms_max: Option<f64>,
    latency_samples: usize,
    dropped: u64,
    throughput_mbit_s: f64,
    hub_cpu_percent: Option<f64>,
    process_cpu_percent: f64,
    flood_connections: u32,
    flood_connections_opened: u64,
    viewers_mjpeg: u32,
    viewers_ws: u32,
    viewers_stalled: u32,
    viewer_fps_min: Option<f64>,
    viewer_fps_median: Option<f64>,
    per_client: Vec<ClientResult>,
}

/// Turns a measured window (and, without a hub to ask, the publishers' own reports) into
/// the result.
pub(super) fn summarise(
    args: &BenchArgs,
    codec: Codec,
    frame_bytes_avg: f64,
    window: Window,
    reports: &[(String, PublishReport)],
    flood_opened: u64,
) -> BenchResult {
    let elapsed = window.elapsed_s;
    let mut per_client: Vec<ClientResult> = window
        .streams
        .iter()
        .map(|(name, c)| ClientResult {
            name: name.clone(),
            fps_received: c.frames as f64 / elapsed,
            frames_received: c.frames,
            dropped: c.dropped,
            latency_ms_p99: c.latency_ms_p99,
        })
        .collect();
    let total_bytes: u64 = window.streams.iter().map(|(_, c)| c.bytes).sum();
    if per_client.is_empty() {
        // Without a hub to ask, report what the publishers sent.
        for (name, r) in reports {
            per_client.push(ClientResult {
                name: name.clone(),
                fps_received: r.stats.frames_sent as f64 / (elapsed + args.warmup.as_secs_f64()),
                frames_received: r.stats.frames_sent,
                dropped: r.stats.frames_dropped,
                latency_ms_p99: None,
            });
        }
    }
    per_client.sort_by_key(|c| natural_key(&c.name));

    let mut fps: Vec<f64> = per_client.iter().map(|c| c.fps_received).collect();
    fps.sort_by(f64::total_cmp);
    let samples = &window.latency_samples_us;
    let latency = vidcast_hub::percentiles(samples.clone());
    let latency_ms_p99_fallback = per_client
        .iter()
        .filter_map(|c| c.latency_ms_p99)
        .max_by(f64::total_cmp);
    let viewer_fps = &window.viewer_fps;
    BenchResult {
        clients: args.clients,
        mode: "pre-encoded",
        codec: codec.name(),
        width: args.width,
        height: args.height,
        fps_target: args.fps,
        duration_s: elapsed,
        frame_bytes_avg: if frame_bytes_avg > 0.0 {
            frame_bytes_avg
        } else {
            total_bytes as f64
                / per_client
                    .iter()
                    .map(|c| c.frames_received)
                    .sum::<u64>()
                    .max(1) as f64
        },
        fps_per_client_min: fps.first().copied().unwrap_or(0.0),
        fps_per_client_median: fps.get(fps.len() / 2).copied().unwrap_or(0.0),
        fps_aggregate: fps.iter().sum(),
        fps_aggregate_target: args.fps * f64::from(args.clients),
        latency_ms_p50: latency.map(|l| l.p50),
        latency_ms_p95: latency.map(|l| l.p95),
        latency_ms_p99: latency.map(|l| l.p99).or(latency_ms_p99_fallback),
        latency_ms_max: samples.iter().max().map(|&us| us as f64 / 1000.0),
        latency_samples: samples.len(),
        dropped: per_client.iter().map(|c| c.dropped).sum(),
        throughput_mbit_s: total_bytes as f64 * 8.0 / elapsed / 1e6,
        hub_cpu_percent: window.hub_cpu_percent,
        flood_connections: args.flood,
        flood_connections_opened: flood_opened,
        viewers_mjpeg: args.mjpeg_viewers,
        viewers_ws: args.ws_viewers,
        viewers_stalled: args.stalled_viewers,
        viewer_fps_min: viewer_fps.first().copied(),
        viewer_fps_median: viewer_fps.get(viewer_fps.len() / 2).copied(),
        process_cpu_percent: window.process_cpu_percent,
        per_client,
    }
}

/// Sorts bench-2 before bench-10.
fn natural_key(name: &str) -> (usize, String) {
    let digits: String = name
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect();
    let n = digits
        .chars()
        .rev()
        .collect::<String>()
        .parse()
        .unwrap_or(0);
    (n, name.to_owned())
}

/// Prints the human report.
pub(super) fn print_report(r: &BenchResult) {
    outln!(
        "vidcast bench: {} clients, {}x{} @ {} fps, {} {} ({:.0} B/frame), {:.1} s measured",
        r.clients,
        r.width,
        r.height,
        r.fps_target,
        r.mode,
        r.codec,
        r.frame_bytes_avg,
        r.duration_s
    );
    let show: Vec<&ClientResult> = if r.per_client.len() <= 20 {
        r.per_client.iter().collect()
    } else {
        let mut worst: Vec<&ClientResult> = r.per_client.iter().collect();
        worst.sort_by(|a, b| a.fps_received.total_cmp(&b.fps_received));
        outln!("(showing the 10 slowest of {})", r.per_client.len());
        worst.into_iter().take(10).collect()
    };
    outln!(
        "  {:<12} {:>8} {:>8} {:>8} {:>10}",
        "client",
        "fps",
        "frames",
        "dropped",
        "p99 ms"
    );
    for c in show {
        outln!(
            "  {:<12} {:>8.2} {:>8} {:>8} {:>10}",
            c.name,
            c.fps_received,
            c.frames_received,
            c.dropped,
            c.latency_ms_p99
                .map_or("-".to_owned(), |v| format!("{v:.2}"))
        );
    }
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2} ms"));
    outln!(
        "fps per client: min {:.2}, median {:.2}; aggregate {:.1} of {:.0} target",
        r.fps_per_client_min,
        r.fps_per_client_median,
        r.fps_aggregate,
        r.fps_aggregate_target
    );
    outln!(
        "latency (capture → hub): p50 {}, p95 {}, p99 {}, max {} ({} samples)",
        ms(r.latency_ms_p50),
        ms(r.latency_ms_p95),
        ms(r.latency_ms_p99),
        ms(r.latency_ms_max),
        r.latency_samples
    );
    outln!(
        "dropped: {}; throughput {:.1} Mbit/s",
        r.dropped,
        r.throughput_mbit_s
    );
    if r.flood_connections > 0 {
        outln!(
            "flood: {} silent connections held open ({} opened in all, as the hub evicted or timed them out)",
            r.flood_connections, r.flood_connections_opened
        );
    }
    if r.viewers_mjpeg + r.viewers_ws + r.viewers_stalled > 0 {
        outln!(
            "viewers: {} MJPEG + {} WebSocket (+ {} stalled, never reading): fps per viewer min {}, median {}",
            r.viewers_mjpeg,
            r.viewers_ws,
            r.viewers_stalled,
            r.viewer_fps_min.map_or("-".to_owned(), |v| format!("{v:.2}")),
            r.viewer_fps_median.map_or("-".to_owned(), |v| format!("{v:.2}")),
        );
    }
    match r.hub_cpu_percent {
        Some(hub) => outln!(
            "CPU: hub {hub:.1}% of one core, whole process {:.1}%",
            r.process_cpu_percent
        ),
        None => outln!(
            "CPU: whole process {:.1}% (hub is elsewhere)",
            r.process_cpu_percent
        ),
    }
}
