//! What `vidcast bench` measures: per-stream counters from the hub (in this process, or its
//! API), latency samples, viewers' frame counts and CPU ticks, over the measured window.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vidcast_hub::RunningHub;

use super::viewers::{Viewer, ViewerKind};

/// How long a hub elsewhere may take to answer `GET /api/streams`.
const API_TIMEOUT: Duration = Duration::from_secs(5);
use super::BenchArgs;

/// One stream's counters as the hub reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct StreamCounters {
    /// Frames received.
    pub(super) frames: u64,
    /// Picture bytes received.
    pub(super) bytes: u64,
    /// Frames the hub dropped.
    pub(super) dropped: u64,
    /// The hub's p99 capture-to-hub latency, when it has samples.
    pub(super) latency_ms_p99: Option<f64>,
    /// Latency samples the hub took since the stream was first seen (in-process hub only:
    /// the API does not say).
    pub(super) latency_samples: u64,
}

impl StreamCounters {
    /// What was counted between `before` and `self` (the p99 is `self`'s).
    pub(super) fn since(self, before: StreamCounters) -> StreamCounters {
        StreamCounters {
            frames: self.frames.saturating_sub(before.frames),
            bytes: self.bytes.saturating_sub(before.bytes),
            dropped: self.dropped.saturating_sub(before.dropped),
            latency_ms_p99: self.latency_ms_p99,
            latency_samples: self.latency_samples.saturating_sub(before.latency_samples),
        }
    }
}

/// What one measured window saw.
pub(super) struct Window {
    /// Its length in seconds.
    pub(super) elapsed_s: f64,
    /// Each bench stream's counters over the window, by name (empty when neither this
    /// process's hub nor --hub-http can say).
    pub(super) streams: Vec<(String, StreamCounters)>,
    /// Every capture-to-hub latency sample of the window, in µs (in-process hub only).
    pub(super) latency_samples_us: Vec<u64>,
    /// Frames per second of each viewer that reads, sorted.
    pub(super) viewer_fps: Vec<f64>,
    /// The hub's threads' CPU, % of one core (in-process hub only).
    pub(super) hub_cpu_percent: Option<f64>,
    /// This whole process's CPU, % of one core.
    pub(super) process_cpu_percent: f64,
}

/// Waits --duration and reads every counter before and after it.
pub(super) async fn window(
    args: &BenchArgs,
    hub: Option<&RunningHub>,
    viewers: &[Viewer],
    expected: &[String],
) -> Result<Window> {
    let viewer_frames_before: Vec<u64> = viewers
        .iter()
        .map(|v| v.frames.load(Ordering::Relaxed))
        .collect();
    // The window's counts are after minus before, for a hub in this process as for one
    // elsewhere (--hub-http): nothing in the hub is reset for the bench.
    let before = counters_by_name(hub, args.hub_http).await?;
    let cpu_before = CpuTimes::read();
    let started = Instant::now();
    tokio::time::sleep(args.duration).await;
    let elapsed_s = started.elapsed().as_secs_f64();
    let cpu_after = CpuTimes::read();
    let mut viewer_fps: Vec<f64> = viewers
        .iter()
        .zip(&viewer_frames_before)
        .filter(|(v, _)| v.kind != ViewerKind::Stalled)
        .map(|(v, before)| (v.frames.load(Ordering::Relaxed) - before) as f64 / elapsed_s)
        .collect();
    viewer_fps.sort_by(f64::total_cmp);

    let after = counters_by_name(hub, args.hub_http).await?;
    let mut streams = Vec::new();
    let mut latency_samples_us = Vec::new();
    if let (Some(before), Some(after)) = (before, after) {
        for name in expected {
            let before = before.get(name).copied().unwrap_or_default();
            let after = after.get(name).copied().unwrap_or_default();
            let mut counters = after.since(before);
            if let Some(hub) = hub {
                let samples = window_latency_samples(hub, name, before);
                counters.latency_ms_p99 = vidcast_hub::percentiles(samples.clone()).map(|l| l.p99);
                latency_samples_us.extend(samples);
            }
            streams.push((name.clone(), counters));
        }
    }
    let ticks = clock_ticks_per_second();
    Ok(Window {
        elapsed_s,
        streams,
        latency_samples_us,
        viewer_fps,
        hub_cpu_percent: hub.map(|_| {
            (cpu_after.hub_ticks - cpu_before.hub_ticks) as f64 / ticks / elapsed_s * 100.0
        }),
        process_cpu_percent: (cpu_after.all_ticks - cpu_before.all_ticks) as f64
            / ticks
            / elapsed_s
            * 100.0,
    })
}

/// The hub's ids of the bench streams, in publisher order.
pub(super) async fn stream_ids(
    hub: Option<&RunningHub>,
    http: SocketAddr,
    expected: &[String],
) -> Result<Vec<u64>> {
    let snapshot: Vec<(String, u64)> = match hub {
        Some(hub) => hub
            .registry
            .snapshot(0)
            .into_iter()
            .map(|s| (s.name, s.id.get()))
            .collect(),
        None => api_streams(http)
            .await?
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| Some((s["name"].as_str()?.to_owned(), s["id"].as_u64()?)))
            .collect(),
    };
    let ids: Vec<u64> = expected
        .iter()
        .filter_map(|name| snapshot.iter().find(|(n, _)| n == name).map(|(_, id)| *id))
        .collect();
    if ids.is_empty() {
        bail!("the hub lists none of the bench streams");
    }
    Ok(ids)
}

/// Waits until the hub lists every expected publisher live: the hub in this process, or a
/// hub elsewhere through its API (--hub-http); without either there is nothing to ask.
pub(super) async fn wait_all_live(
    hub: Option<&RunningHub>,
    args: &BenchArgs,
    expected: &[String],
) -> Result<()> {
    if hub.is_none() && args.hub_http.is_none() {
        return Ok(());
    }
    let deadline =
        Instant::now() + Duration::from_secs(10) + Duration::from_millis(20) * args.clients;
    loop {
        let live = match (hub, args.hub_http) {
            (Some(hub), _) => hub.registry.live_count(),
            (None, Some(http)) => live_by_api(http, expected).await?,
            (None, None) => return Ok(()),
        };
        if live >= expected.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "only {live} of {} publishers connected in time",
                expected.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many of `expected` a hub's API lists live.
async fn live_by_api(http: SocketAddr, expected: &[String]) -> Result<usize> {
    let json = api_streams(http)
        .await
        .with_context(|| format!("cannot read the hub's API on {http}"))?;
    Ok(json
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["live"] == true && expected.iter().any(|n| s["name"] == n.as_str()))
        .count())
}

/// Each stream's counters, by name, from the hub in this process, else from a hub's API
/// (--hub-http); `None` when there is neither to ask.
async fn counters_by_name(
    hub: Option<&RunningHub>,
    http: Option<SocketAddr>,
) -> Result<Option<HashMap<String, StreamCounters>>> {
    match (hub, http) {
        (Some(hub), _) => Ok(Some(hub_counters_by_name(hub))),
        (None, Some(http)) => api_counters_by_name(http).await.map(Some),
        (None, None) => Ok(None),
    }
}

/// Each stream's counters, by name, from the hub in this process.
pub(super) fn hub_counters_by_name(hub: &RunningHub) -> HashMap<String, StreamCounters> {
    hub.registry
        .snapshot(0)
        .into_iter()
        .map(|s| {
            let counters = StreamCounters {
                frames: s.frames,
                bytes: s.bytes,
                dropped: s.dropped,
                latency_ms_p99: s.latency_ms.map(|l| l.p99),
                latency_samples: s.latency_histogram.count,
            };
            (s.name, counters)
        })
        .collect()
}

/// The latency samples (µs) the hub in this process took of the stream called `name` after
/// `before` was read: the window's only (all the hub keeps if the window took more than
/// its latency capacity).
pub(super) fn window_latency_samples(
    hub: &RunningHub,
    name: &str,
    before: StreamCounters,
) -> Vec<u64> {
    hub.registry
        .stream_infos()
        .into_iter()
        .filter(|(_, info, _)| info.name == name)
        .max_by_key(|&(_, _, live)| live)
        .and_then(|(id, ..)| {
            hub.registry
                .latency_samples_since(id, before.latency_samples)
        })
        .unwrap_or_default()
}

/// Each stream's counters, by name, from a hub's API.
async fn api_counters_by_name(http: SocketAddr) -> Result<HashMap<String, StreamCounters>> {
    let json = api_streams(http)
        .await
        .with_context(|| format!("cannot read the hub's API on {http}"))?;
    let mut out = HashMap::new();
    for s in json.as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or_default().to_owned();
        let n = |k: &str| s[k].as_u64().unwrap_or(0);
        let counters = StreamCounters {
            frames: n("frames"),
            bytes: n("bytes"),
            dropped: n("dropped"),
            latency_ms_p99: s["latency_ms"]["p99"].as_f64(),
            latency_samples: 0,
        };
        out.insert(name, counters);
    }
    Ok(out)
}

/// `GET /api/streams` of a hub elsewhere (--hub-http): one HTTP/1.1 request with
/// `Connection: close`, read to the end (a few kB; the hub sends it whole).
async fn api_streams(http: SocketAddr) -> Result<serde_json::Value> {
    let read = async {
        let mut stream = TcpStream::connect(http).await?;
        let request =
            format!("GET /api/streams HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(API_TIMEOUT, read)
        .await
        .with_context(|| format!("GET /api/streams on {http} took over {API_TIMEOUT:?}"))?
        .with_context(|| format!("GET /api/streams on {http}"))?;
    json_body(&response).with_context(|| format!("GET /api/streams on {http}"))
}

/// The JSON body of a whole `200 OK` HTTP/1.1 response (not chunked: the hub's API sends a
/// Content-Length).
fn json_body(response: &[u8]) -> Result<serde_json::Value> {
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of the response head")?;
    let status_line = String::from_utf8_lossy(&response[..head_end]);
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        bail!("HTTP {status}");
    }
    Ok(serde_json::from_slice(&response[head_end + 4..])?)
}

/// CPU ticks of this process's hub threads and of all its threads.
pub(super) struct CpuTimes {
    /// Ticks of the threads named `vidcast-hub...`.
    pub(super) hub_ticks: u64,
    /// Ticks of the whole process.
    pub(super) all_ticks: u64,
}

impl CpuTimes {
    /// Reads them now from /proc/self.
    pub(super) fn read() -> Self {
        let mut times = CpuTimes {
            hub_ticks: 0,
            all_ticks: 0,
        };
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            times.all_ticks = stat_ticks(&stat).map_or(0, |(_, t)| t);
        }
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return times;
        };
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            if let Some((comm, ticks)) = stat_ticks(&stat) {
                if comm.starts_with("vidcast-hub") {
                    times.hub_ticks += ticks;
                }
            }
        }
        times
    }
}

/// The command name and utime + stime from a /proc stat line.
pub(super) fn stat_ticks(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = &stat[open + 1..close];
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // After the comm: state is field 3 of the man page, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// The kernel's clock ticks per second (USER_HZ).
pub(super) fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_stat_lines_with_odd_names() {
        let line = "1234 (vidcast-hub (x)) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0";
        assert_eq!(stat_ticks(line), Some(("vidcast-hub (x)", 175)));
        assert_eq!(stat_ticks("garbage"), None);
    }
    #[test]
    fn api_bodies_parse_only_from_200_responses() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n[{\"id\": 1}]";
        assert_eq!(json_body(ok).unwrap()[0]["id"], 1);
        let missing = b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n[]";
        assert!(json_body(missing).is_err());
        assert!(json_body(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    #[test]
    fn counters_since_subtract_and_keep_the_newest_p99() {
        let before = StreamCounters {
            frames: 10,
            bytes: 1000,
            dropped: 1,
            latency_ms_p99: Some(9.0),
            latency_samples: 12,
        };
        let after = StreamCounters {
            frames: 40,
            bytes: 4000,
            dropped: 1,
            latency_ms_p99: Some(3.0),
            latency_samples: 42,
        };
        let window = after.since(before);
        assert_eq!((window.frames, window.bytes, window.dropped), (30, 3000, 0));
        assert_eq!(window.latency_ms_p99, Some(3.0));
        assert_eq!(window.latency_samples, 30);
        // A hub restarted mid-run reports less than before: never a wrapped count.
        assert_eq!(before.since(after).frames, 0);
    }
}
