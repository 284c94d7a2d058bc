//! `vidcast bench --encode`: what a publisher costs. `--clients` real `vidcast send`
//! processes encode a camera-like clip (or the test pattern, whose noise is precomputed) at
//! `--fps` into a hub in this process, one codec after the other. Per codec: frames
//! delivered of those due, capture-to-hub latency, each sender's CPU time per frame it got to
//! the hub (utime + stime from /proc/PID/stat over the measured window) and the hub's CPU.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tracing::{info, warn};
use vidcast_hub::RunningHub;
use vidcast_media::source::{write_camera_like_y4m, CameraLikeClip, VideoSource, Y4mSource};
use vidcast_media::{Clock, ManualClock, SystemClock};

use super::measure::{
    clock_ticks_per_second, hub_counters_by_name, stat_ticks, window_latency_samples, CpuTimes,
};
use super::BenchArgs;
use vidcast_proto::Codec;

/// Noise of the camera-like clip and test pattern unless --noise says otherwise (issue 18).
pub(super) const CAMERA_NOISE: u8 = 12;

/// One codec's run, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
struct CodecResult {
    codec: &'static str,
    /// "q90" or "1500 kbit/s".
    setting: String,
    senders: u32,
    frames_expected: u64,
    frames_delivered: u64,
    latency_ms_p50: Option<f64>,
    latency_ms_p99: Option<f64>,
    frame_bytes_avg: f64,
    /// All senders' CPU time over all frames they delivered.
    sender_cpu_ms_per_frame: f64,
    /// The cheapest and dearest sender's own CPU per frame.
    sender_cpu_ms_per_frame_min: f64,
    sender_cpu_ms_per_frame_max: f64,
    /// One sender's mean CPU use, percent of one core.
    sender_cpu_percent: f64,
    hub_cpu_ms_per_frame: f64,
    hub_cpu_percent: f64,
}

/// The whole run, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
struct EncodeResult {
    source: String,
    width: u32,
    height: u32,
    fps_target: f64,
    duration_s: f64,
    h264_simd: String,
    codecs: Vec<CodecResult>,
}

/// `vidcast bench --make-y4m FILE`: writes the camera-like clip and says what it wrote.
pub(super) fn make_y4m(args: &BenchArgs, path: &Path) -> Result<()> {
    let clip = clip_of(args);
    write_clip(&clip, path)?;
    outln!(
        "{}: {}x{}, {} frames at {} fps, noise ±{}, seed {} ({} bytes)",
        path.display(),
        clip.width,
        clip.height,
        clip.frames,
        clip.fps,
        clip.noise,
        clip.seed,
        clip.file_bytes()
    );
    Ok(())
}

fn clip_of(args: &BenchArgs) -> CameraLikeClip {
    CameraLikeClip {
        fps: args.fps.round().clamp(1.0, 1000.0) as u32,
        noise: args.noise.unwrap_or(CAMERA_NOISE),
        seed: args.seed,
        ..CameraLikeClip::new(args.width, args.height, args.frames)
    }
}

fn write_clip(clip: &CameraLikeClip, path: &Path) -> Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::new(file);
    write_camera_like_y4m(&mut out, clip).with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::flush(&mut out).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A scratch folder for the clip and the senders' logs, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sender processes; any still running when dropped are killed and reaped.
struct Senders(Vec<(String, Child)>);

impl Senders {
    /// Asks each to stop as on Ctrl-C, waits up to 5 s for all, then kills the rest.
    fn stop(&mut self) {
        for (_, child) in &self.0 {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: kill has no memory effects; the pid is our own unreaped child.
                unsafe { libc::kill(pid, libc::SIGINT) };
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && self
                .0
                .iter_mut()
                .any(|(_, c)| matches!(c.try_wait(), Ok(None)))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    fn kill(&mut self) {
        for (name, child) in &mut self.0 {
            if matches!(child.try_wait(), Ok(None)) {
                warn!("sender {name} did not stop in time: killing it");
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        self.0.clear();
    }
}

impl Drop for Senders {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(super) fn main(args: &BenchArgs) -> Result<()> {
    if args.hub.is_some() {
        bail!("--encode measures the hub it starts itself (its CPU too): leave out --hub");
    }
    if args.mjpeg_viewers + args.ws_viewers + args.stalled_viewers + args.flood > 0 {
        bail!("--encode measures publishers alone: leave out viewers and --flood");
    }
    if args.fps <= 0.0 {
        bail!("--encode paces its senders: give --fps above 0");
    }
    let scratch =
        Scratch(std::env::temp_dir().join(format!("vidcast-bench-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0)
        .with_context(|| format!("cannot create {}", scratch.0.display()))?;
    // What the senders play: a file as given, the test pattern, or the camera-like clip.
    let (source, width, height) = match args.source.as_deref() {
        Some("test") => ("test".to_owned(), args.width, args.height),
        Some(file) => {
            let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
            let reader = File::open(file).with_context(|| format!("cannot open {file}"))?;
            let y4m = Y4mSource::new(reader, file, clock)
                .with_context(|| format!("--source must be a Y4M file or \"test\": {file}"))?;
            let (w, h) = y4m.size();
            (file.to_owned(), w, h)
        }
        None => {
            let path = scratch
                .0
                .join(format!("camera-like-{}x{}.y4m", args.width, args.height));
            write_clip(&clip_of(args), &path)?;
            (path.display().to_string(), args.width, args.height)
        }
    };
    super::hub::raise_fd_limit();
    let hub_runtime = super::hub::runtime()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let senders_in_all = args.clients as usize * args.codec.len();
    let hub = super::hub::start(args, &hub_runtime, clock, senders_in_all, 0)?;
    let mut codecs = Vec::new();
    let mut outcome = Ok(());
    for &codec in &args.codec {
        match run_codec(args, &hub, codec, &source, &scratch.0) {
            Ok(r) => codecs.push(r),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    hub_runtime.block_on(hub.shutdown())?;
    outcome?;
    let result = EncodeResult {
        source: if args.source.is_none() {
            format!(
                "camera-like clip ({} frames, noise ±{}, seed {})",
                args.frames,
                args.noise.unwrap_or(CAMERA_NOISE),
                args.seed
            )
        } else {
            source
        },
        width,
        height,
        fps_target: args.fps,
        duration_s: args.duration.as_secs_f64(),
        h264_simd: vidcast_media::h264_simd().to_string(),
        codecs,
    };
    if args.json {
        outln!("{}", serde_json::to_string(&result)?);
    } else {
        print_table(&result);
    }
    Ok(())
}

/// Starts the senders of one codec, measures them after the warm-up, stops them.
fn run_codec(
    args: &BenchArgs,
    hub: &RunningHub,
    codec: Codec,
    source: &str,
    scratch: &Path,
) -> Result<CodecResult> {
    let codec_name = codec.name();
    let prefix = format!("enc-{codec_name}-");
    let exe = std::env::current_exe().context("cannot find this program to run `send`")?;
    let hub_addr = hub.ingest_addr.to_string();
    let period = Duration::from_secs_f64(1.0 / args.fps);
    let mut senders = Senders(Vec::new());
    for i in 1..=args.clients {
        let name = format!("{prefix}{i}");
        let log = scratch.join(format!("{name}.log"));
        let mut command = Command::new(&exe);
        command
            .args(["send", &hub_addr, "--name", &name, "--no-reconnect"])
            .args(["--codec", codec_name, "--no-adapt"])
            .args(["--quality", &args.quality.to_string()])
            .args(["--bitrate", &args.bitrate.to_string()])
            .args(["--fps", &args.fps.to_string()])
            .args(["--source", source]);
        if source == "test" {
            let noise = args.noise.unwrap_or(CAMERA_NOISE).to_string();
            command.args(["--noise", &noise]);
            command.args(["--width", &args.width.to_string()]);
            command.args(["--height", &args.height.to_string()]);
        } else {
            command.arg("--loop");
        }
        if let Some(token) = &args.hub_args.token {
            command.env("VIDCAST_TOKEN", token);
        }
        let stderr =
            File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        senders.0.push((name, child));
        // Independent cameras do not tick in step: spread the starts over a period.
        std::thread::sleep(period / args.clients);
    }
    let deadline =
        Instant::now() + Duration::from_secs(10) + Duration::from_millis(50) * args.clients;
    loop {
        let live = live_senders(hub, &prefix);
        if live == args.clients as usize {
            break;
        }
        let exited = senders
            .0
            .iter_mut()
            .find_map(|(name, c)| c.try_wait().ok().flatten().map(|_| name.clone()));
        if Instant::now() > deadline || exited.is_some() {
            let who = exited.unwrap_or_else(|| format!("{prefix}1"));
            let log =
                std::fs::read_to_string(scratch.join(format!("{who}.log"))).unwrap_or_default();
            bail!(
                "only {live} of {} {codec_name} senders reached the hub; {who} said:\n{}",
                args.clients,
                log.lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    info!(
        "bench --encode: {} {codec_name} senders live; warming up for {:?}",
        args.clients, args.warmup
    );
    std::thread::sleep(args.warmup);

    // The window's counts are after minus before: nothing in the hub is reset for the bench.
    let hub_counters_before = hub_counters_by_name(hub);
    let sender_ticks_before: Vec<u64> = senders.0.iter().map(|(_, c)| process_ticks(c)).collect();
    let hub_before = CpuTimes::read();
    let started = Instant::now();
    std::thread::sleep(args.duration);
    let elapsed = started.elapsed().as_secs_f64();
    let hub_after = CpuTimes::read();
    let sender_ticks_after: Vec<u64> = senders.0.iter().map(|(_, c)| process_ticks(c)).collect();
    let hub_counters_after = hub_counters_by_name(hub);
    let names: Vec<String> = senders.0.iter().map(|(name, _)| name.clone()).collect();
    let samples: Vec<u64> = names
        .iter()
        .flat_map(|name| {
            let before = hub_counters_before.get(name).copied().unwrap_or_default();
            window_latency_samples(hub, name, before)
        })
        .collect();
    senders.stop();

    let clk_tck = clock_ticks_per_second();
    let mut frames_total = 0u64;
    let mut bytes_total = 0u64;
    let mut cpu_total_ms = 0.0;
    let mut per_sender_ms = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let Some(after) = hub_counters_after.get(name) else {
            continue;
        };
        let before = hub_counters_before.get(name).copied().unwrap_or_default();
        let stream = after.since(before);
        let cpu_ms =
            sender_ticks_after[i].saturating_sub(sender_ticks_before[i]) as f64 / clk_tck * 1000.0;
        frames_total += stream.frames;
        bytes_total += stream.bytes;
        cpu_total_ms += cpu_ms;
        if stream.frames > 0 {
            per_sender_ms.push(cpu_ms / stream.frames as f64);
        }
    }
    per_sender_ms.sort_by(f64::total_cmp);
    let latency = vidcast_hub::percentiles(samples);
    let hub_ms = hub_after.hub_ticks.saturating_sub(hub_before.hub_ticks) as f64 / clk_tck * 1000.0;
    let frames = frames_total.max(1) as f64;
    Ok(CodecResult {
        codec: codec_name,
        setting: match codec {
            Codec::Jpeg => format!("q{}", args.quality),
            Codec::H264 => format!("{} kbit/s", args.bitrate / 1000),
        },
        senders: args.clients,
        frames_expected: (args.fps * elapsed).round() as u64 * u64::from(args.clients),
        frames_delivered: frames_total,
        latency_ms_p50: latency.map(|l| l.p50),
        latency_ms_p99: latency.map(|l| l.p99),
        frame_bytes_avg: bytes_total as f64 / frames,
        sender_cpu_ms_per_frame: cpu_total_ms / frames,
        sender_cpu_ms_per_frame_min: per_sender_ms.first().copied().unwrap_or(0.0),
        sender_cpu_ms_per_frame_max: per_sender_ms.last().copied().unwrap_or(0.0),
        sender_cpu_percent: cpu_total_ms / 1000.0 / elapsed / f64::from(args.clients) * 100.0,
        hub_cpu_ms_per_frame: hub_ms / frames,
        hub_cpu_percent: hub_ms / 1000.0 / elapsed * 100.0,
    })
}

fn live_senders(hub: &RunningHub, prefix: &str) -> usize {
    hub.registry
        .snapshot(0)
        .iter()
        .filter(|s| s.live && s.name.starts_with(prefix))
        .count()
}

/// utime + stime of a child process, all its threads, in clock ticks (0 once it is gone).
fn process_ticks(child: &Child) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/stat", child.id()))
        .ok()
        .and_then(|stat| stat_ticks(&stat).map(|(_, ticks)| ticks))
        .unwrap_or(0)
}

fn print_table(r: &EncodeResult) {
    outln!(
        "vidcast bench --encode: {} `vidcast send` processes per codec at {} fps, {}x{} from {}, \
         {:.0} s measured; OpenH264: {}",
        r.codecs.first().map_or(0, |c| c.senders),
        r.fps_target,
        r.width,
        r.height,
        r.source,
        r.duration_s,
        r.h264_simd
    );
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    outln!(
        "| codec | delivered / expected | latency p50 / p99 ms | sender CPU per frame | sender CPU | hub CPU per frame | bytes per frame |"
    );
    outln!("|---|---|---|---|---|---|---|");
    for c in &r.codecs {
        outln!(
            "| {} {} | {} / {} | {} / {} | {:.2} ms ({:.2}–{:.2}) | {:.1} % | {:.2} ms ({:.0} %) | {:.0} |",
            c.codec,
            c.setting,
            c.frames_delivered,
            c.frames_expected,
            ms(c.latency_ms_p50),
            ms(c.latency_ms_p99),
            c.sender_cpu_ms_per_frame,
            c.sender_cpu_ms_per_frame_min,
            c.sender_cpu_ms_per_frame_max,
            c.sender_cpu_percent,
            c.hub_cpu_ms_per_frame,
            c.hub_cpu_percent,
            c.frame_bytes_avg
        );
    }
}
