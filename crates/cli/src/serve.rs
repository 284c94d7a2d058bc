//! `vidcast serve`: run a hub.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tokio::net::TcpListener;
use vidcast_h264::{ChainGate, Pass};
use vidcast_hub::{FeedUpdate, HubOptions, StreamId};
use vidcast_media::SystemClock;
use vidcast_proto::{HubConfig, Timing};

use crate::duration;

/// Options of `vidcast serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address publishers connect to (one port for all of them); a port alone (`:9999`)
    /// means every interface.
    #[arg(long, default_value = "0.0.0.0:9999", value_parser = crate::addr::parse_listen)]
    pub listen: SocketAddr,
    /// Address of the web wall and HTTP API; "off" to disable.
    #[arg(long, default_value = "0.0.0.0:8080", value_parser = parse_http_addr)]
    pub http: HttpAddr,
    /// Serve both ports over TLS only, with this certificate chain (PEM, end-entity first);
    /// `vidcast cert` makes a self-signed one.
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub hub: HubArgs,
    /// Push every live stream to an RTMP server (nginx-rtmp, MediaMTX, a CDN's ingest):
    /// rtmp://HOST[:PORT]/APP/{name}, {name} being the stream's client name. H.264 goes out
    /// as it came; JPEG streams are encoded to H.264 while pushed. Repeat for several
    /// servers; a lost server is retried with backoff.
    #[arg(long, value_name = "URL", value_parser = parse_restream)]
    pub restream: Vec<vidcast_hub::UrlTemplate>,
    /// Let restream targets added through the API (POST /api/streams/ID/restream) push to
    /// loopback and private addresses (10/8, 172.16/12, 192.168/16, fc00::/7…). Without it
    /// only --restream may: the API cannot probe the hub's own network. Link-local,
    /// multicast and cloud-metadata addresses are refused either way.
    #[arg(long)]
    pub restream_allow_private: bool,
    /// Restream targets one stream may be given through the API.
    #[arg(long, default_value_t = 4)]
    pub max_restream_per_stream: usize,
    /// Restream targets added through the API, all streams together.
    #[arg(long, default_value_t = 64)]
    pub max_restream_targets: usize,
    /// Pull an IP camera into the hub: NAME=rtsp://[user:pass@]host[:port]/path, repeatable.
    /// Its H.264 is published as it is under NAME, like any publisher (wall, viewers,
    /// recording, restream, events); it reconnects by itself. With --token, the camera
    /// publishes with that token (a --token-file alone needs NAME not to be owned there).
    #[arg(long, value_name = "NAME=URL", value_parser = crate::pull::parse_pull)]
    pub pull: Vec<crate::pull::PullSpec>,
    /// Serve every H.264 stream to RTSP players (ffmpeg, VLC, GStreamer, NVRs) on this
    /// address, e.g. :8554: rtsp://HUB:8554/NAME or /ID, RTP interleaved in the RTSP
    /// connection; with tokens, the password of RTSP Basic auth is a view token. Off by default.
    #[arg(long, value_name = "ADDR", value_parser = crate::addr::parse_listen)]
    pub rtsp: Option<SocketAddr>,
    /// How pulled cameras carry RTP: tcp (interleaved in the RTSP connection) or udp.
    #[arg(long, default_value = "tcp")]
    pub pull_transport: vidcast_rtsp::RtspTransport,
    #[command(flatten)]
    pub record: crate::record::RecordArgs,
    /// Keep stream ids across restarts here (a small vidcast-streams.tsv, at most 1024
    /// names): a client that comes back under its name keeps its id, so saved URLs such as
    /// /streams/7.mjpg keep working. Default: the --record directory; without either, ids
    /// last as long as the hub.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<std::path::PathBuf>,
    /// Also show every live stream in a native window on this machine (a mosaic; keys: q
    /// quits the hub, 1-9 enlarge a stream, 0 returns).
    #[arg(long)]
    pub window: bool,
    #[command(flatten)]
    pub window_args: crate::view::WindowArgs,
}

/// The `serve` flags that can also come from the environment, for a service manager or a
/// container (`VIDCAST_` and the flag's name, upper case, `-` as `_`: `--token-file` is
/// `VIDCAST_TOKEN_FILE`; the argument id, `_` for `-`, comes first). A flag on the command line wins over its variable. Given here
/// rather than on the shared argument structs so that `demo` and `bench`, which flatten some
/// of the same structs, never pick up a hub's recording directory or ports from the shell.
/// (`--token` reads `VIDCAST_TOKEN` everywhere: it is the one secret.)
pub const ENV_FLAGS: [(&str, &str); 13] = [
    ("listen", "VIDCAST_LISTEN"),
    ("http", "VIDCAST_HTTP"),
    ("tls_cert", "VIDCAST_TLS_CERT"),
    ("tls_key", "VIDCAST_TLS_KEY"),
    ("token_file", "VIDCAST_TOKEN_FILE"),
    ("record", "VIDCAST_RECORD"),
    ("segment", "VIDCAST_SEGMENT"),
    ("keep", "VIDCAST_KEEP"),
    ("restream", "VIDCAST_RESTREAM"),
    ("rtsp", "VIDCAST_RTSP"),
    ("max_frame_bytes", "VIDCAST_MAX_FRAME_BYTES"),
    ("max_clients", "VIDCAST_MAX_CLIENTS"),
    ("max_viewers", "VIDCAST_MAX_VIEWERS"),
];

/// `serve`'s command with [`ENV_FLAGS`] read from their variables (shown in `--help`).
pub fn with_env(command: clap::Command) -> clap::Command {
    ENV_FLAGS.iter().fold(command, |command, &(id, var)| {
        command.mut_arg(id, |arg| arg.env(var))
    })
}

/// Hub settings shared by `serve`, `demo` and `bench`.
#[derive(Args, Debug, Clone)]
pub struct HubArgs {
    /// Largest frame accepted from a publisher (e.g. 16MiB, 4M, 500KB; 1KiB to 64MiB).
    #[arg(long, default_value = "16MiB", value_parser = parse_frame_bytes)]
    pub max_frame_bytes: u32,
    /// A publisher silent this long is declared dead (e.g. 3s, 500ms).
    #[arg(long, default_value = "3s", value_parser = duration::parse)]
    pub peer_timeout: Duration,
    /// A connection must complete its handshake within this time.
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    pub handshake_timeout: Duration,
    /// One token that may do everything: publish under any name the token file does not own,
    /// view, and change recording and restreaming through the API. Given here it is visible to
    /// every user of this machine in the process list (/proc/PID/cmdline, ps): set
    /// VIDCAST_TOKEN in the environment instead, or use --token-file.
    #[arg(long, env = "VIDCAST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File of `NAME TOKEN [ROLES]` lines. ROLES: a comma list of `publish` (as NAME only),
    /// `view` (wall, MJPEG, native viewers, API reads, metrics), `admin` (API writes), or
    /// `all`; without ROLES a line may only publish as NAME. The file is re-read within a
    /// second of a change: delete a line (or a role) and the sessions that used it are closed.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// Refuse the original Python client's stream (accepted by default on the same port, told
    /// apart by its first bytes).
    #[arg(long)]
    pub no_legacy: bool,
    /// Most publishers at once; more are refused as busy.
    #[arg(long, default_value_t = 1000)]
    pub max_clients: usize,
    /// Most viewers (wall sockets, MJPEG readers, `vidcast view`) at once; more are refused
    /// (HTTP 503, or a busy reject).
    #[arg(long, default_value_t = 1000)]
    pub max_viewers: usize,
    /// Connections from one address still in the handshake (or publishers without a first
    /// frame yet); a newer one evicts the oldest.
    #[arg(long, default_value_t = vidcast_hub::Limits::default().max_pending_per_ip)]
    pub max_pending_per_ip: usize,
    /// Connections still pending (as above) in all; a newer one evicts the oldest.
    #[arg(long, default_value_t = vidcast_hub::Limits::default().max_pending)]
    pub max_pending: usize,
    /// Close a publisher that sends no frame this long after its welcome ("0" never).
    #[arg(long, default_value = "15s", value_parser = duration::parse)]
    pub first_frame_timeout: Duration,
    /// Close a peer that takes none of the output waiting for it this long ("0" never).
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    pub not_reading_timeout: Duration,
    /// Bytes all connections together may hold in frames still arriving (e.g. 256MiB); a
    /// frame that would go over it closes its connection.
    #[arg(long, default_value = "256MiB", value_parser = parse_bytes)]
    pub frame_budget: usize,
    /// Slowest a frame may arrive, bytes per second (e.g. 256KiB): each frame must be whole
    /// within max(--min-frame-time, its size / this) ("0": no minimum).
    #[arg(long, default_value = "256KiB", value_parser = parse_bytes)]
    pub min_frame_rate: usize,
    /// The least time any frame gets to arrive, however small.
    #[arg(long, default_value = "10s", value_parser = duration::parse)]
    pub min_frame_time: Duration,
    /// Frames per second a publisher may send; the excess is dropped and counted.
    #[arg(long, default_value_t = 240.0)]
    pub max_fps: f64,
    /// Close a publisher that sends no frame for this long ("0" never).
    #[arg(long, default_value = "5m", value_parser = duration::parse)]
    pub idle_timeout: Duration,
    /// HTTP connections open at once (wall, WebSockets, MJPEG, API, TLS handshakes); more are
    /// closed at once.
    #[arg(long, default_value_t = 256)]
    pub max_http_connections: usize,
    /// HTTP connections open at once from one address (a browser uses about six).
    #[arg(long, default_value_t = 64)]
    pub max_http_connections_per_ip: usize,
    /// A web connection must finish its TLS handshake and each request head within this time;
    /// also how long an idle keep-alive connection stays open.
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    pub http_header_timeout: Duration,
    /// Close a wall socket or MJPEG reader (any web connection) whose writes make no progress
    /// for this long, freeing its viewer slot ("0" never).
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    pub http_stall_timeout: Duration,
    /// How long a disconnected client keeps its tile (and id) on the wall.
    #[arg(long, default_value = "10m", value_parser = duration::parse)]
    pub offline_keep: Duration,
    /// Wrong tokens in a row from one address (IPv6: one /64) before it is locked out
    /// (publishers, viewers and the web alike; other addresses are not affected).
    #[arg(long, default_value_t = 5)]
    pub max_token_failures: u32,
    /// How long the first lockout lasts; each further one doubles it, up to 64 times. A
    /// locked-out address is refused without its token being checked.
    #[arg(long, default_value = "10s", value_parser = duration::parse)]
    pub token_lockout: Duration,
    /// A host name the web side answers to besides IP addresses, localhost and this
    /// machine's name (repeatable). Other names get 421: a page whose name was re-pointed
    /// at this hub (DNS rebinding) cannot use it.
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
    /// Most live publishers from one address (a classroom behind one NAT address fits);
    /// more are refused as busy.
    #[arg(long, default_value_t = 64)]
    pub max_publishers_per_ip: usize,
    /// Most offline streams remembered; past it the one offline longest is forgotten
    /// before --offline-keep ends.
    #[arg(long, default_value_t = 256)]
    pub max_offline_streams: usize,
    /// Bytes of frames one stream may hold for later, in each place: its backlog for
    /// recording and restreaming, its keyframe group for joining viewers, its recorder's
    /// queue (e.g. 32MiB, 8M, 500KB); frames past it are lost to those consumers, counted.
    #[arg(long, default_value = "32MiB", value_parser = parse_bytes)]
    pub max_stream_buffer: usize,
    /// The same for every stream together.
    #[arg(long, default_value = "512MiB", value_parser = parse_bytes)]
    pub max_buffer: usize,
}

impl HubArgs {
    /// The hub options these flags describe (reads the token file).
    pub fn options(&self) -> Result<HubOptions> {
        let auth = vidcast_hub::Auth::new(self.token.clone(), self.token_file.clone())?;
        Ok(HubOptions {
            auth: std::sync::Arc::new(auth),
            accept_legacy: !self.no_legacy,
            connection: HubConfig {
                timing: Timing {
                    heartbeat: Duration::from_secs(1).min(self.peer_timeout / 3),
                    peer_timeout: self.peer_timeout,
                    handshake_timeout: self.handshake_timeout,
                },
                max_frame_bytes: self.max_frame_bytes,
            },
            offline_keep: self.offline_keep,
            limits: vidcast_hub::Limits {
                max_clients: self.max_clients,
                max_viewers: self.max_viewers,
                max_pending_per_ip: self.max_pending_per_ip,
                max_pending: self.max_pending,
                max_fps: self.max_fps,
                idle_timeout: self.idle_timeout,
                max_http_connections: self.max_http_connections,
                max_http_connections_per_ip: self.max_http_connections_per_ip,
                http_header_timeout: self.http_header_timeout,
                http_stall_timeout: self.http_stall_timeout,
                max_token_failures: self.max_token_failures,
                token_lockout: self.token_lockout,
                max_publishers_per_ip: self.max_publishers_per_ip,
                max_offline_streams: self.max_offline_streams,
                max_stream_buffer_bytes: self.max_stream_buffer,
                max_buffer_bytes: self.max_buffer,
                first_frame_timeout: self.first_frame_timeout,
                not_reading_timeout: self.not_reading_timeout,
                frame_budget_bytes: self.frame_budget,
                min_frame_rate_bps: self.min_frame_rate as u64,
                min_frame_time: self.min_frame_time,
                ..vidcast_hub::Limits::default()
            },
            allowed_hosts: self.allowed_hosts.clone(),
            ..HubOptions::default()
        })
    }
}

/// A frame size limit: a size as [`parse_bytes`] reads it, at most the protocol's 64 MiB.
fn parse_frame_bytes(text: &str) -> Result<u32, String> {
    let bytes = parse_bytes(text)?;
    u32::try_from(bytes)
        .ok()
        .filter(|b| (1024..=vidcast_proto::MAX_FRAME_BYTES).contains(b))
        .ok_or_else(|| format!("{text:?}: a frame limit is 1KiB to 64MiB (e.g. 16MiB)"))
}

/// Parses a size in bytes: a number with an optional unit, any case: K/M/G or KiB/MiB/GiB
/// (powers of 1024) or KB/MB/GB (powers of 1000).
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        _ => return Err(format!("{text:?}: unknown unit (try 32MiB, 256M or 500KB)")),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 32MiB or 500KB"))?;
    let bytes = (n * scale).round();
    if !(0.0..=usize::MAX as f64).contains(&bytes) {
        return Err(format!("size {text:?} is too large"));
    }
    Ok(bytes as usize)
}

/// An HTTP listen address, or none.
#[derive(Debug, Clone, Copy)]
pub struct HttpAddr(pub Option<SocketAddr>);

/// Parses an HTTP listen address (as [`crate::addr::parse_listen`]: `:8080` is every
/// interface) or "off".
pub fn parse_http_addr(text: &str) -> Result<HttpAddr, String> {
    if text == "off" || text == "none" {
        return Ok(HttpAddr(None));
    }
    crate::addr::parse_listen(text)
        .map(|a| HttpAddr(Some(a)))
        .map_err(|e| format!("{e}, or \"off\""))
}

/// Parses a `--restream` address.
fn parse_restream(text: &str) -> Result<vidcast_hub::UrlTemplate, String> {
    use vidcast_hub::{check_target_text, ip_problem};
    let template = vidcast_hub::UrlTemplate::parse(text)
        .map_err(|e| format!("{e} (expected rtmp://HOST[:PORT]/APP/{{name}})"))?;
    // The operator may push to private and loopback addresses, never to link-local,
    // multicast or metadata ones (host names are checked again at each connect).
    match check_target_text(&template.for_stream(0, "x"), text)? {
        Some(ip) => match ip_problem(ip, true) {
            Some(why) => Err(format!("{ip} is {why}: not an address to push to")),
            None => Ok(template),
        },
        None => Ok(template),
    }
}

/// Binds a TCP listener with a message that says what to do when the port is taken.
pub async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen for {what} on {addr} (is another vidcast running? pick another port)"
        )
    })
}

/// One line at start when a hub reachable from other machines lets anyone in.
fn warn_if_open(options: &HubOptions, ingest: &TcpListener, http: Option<&TcpListener>) {
    if options.auth.is_enabled() {
        return;
    }
    let exposed: Vec<String> = std::iter::once(ingest)
        .chain(http)
        .filter_map(|l| l.local_addr().ok())
        .filter(|a| !a.ip().is_loopback())
        .map(|a| a.to_string())
        .collect();
    if !exposed.is_empty() {
        tracing::warn!(
            "no --token: anyone who can reach {} may publish and watch; set --token or --token-file (and TLS) on networks you do not trust",
            exposed.join(" and ")
        );
    }
}

/// The hub's options, with TLS loaded when asked for.
fn options_with_tls(args: &ServeArgs) -> Result<HubOptions> {
    let mut options = args.hub.options()?;
    options.restream = args.restream.clone();
    options.rtsp = args.rtsp;
    options.restream_allow_private = args.restream_allow_private;
    options.limits.max_restream_per_stream = args.max_restream_per_stream;
    options.limits.max_restream_targets = args.max_restream_targets;
    options.record = args.record.config()?;
    options.state_dir = args.state_dir.clone();
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let identity =
            vidcast_hub::TlsIdentity::load(cert, key).context("cannot use --tls-cert/--tls-key")?;
        tracing::info!(
            "TLS on for publishers and the web; certificate fingerprint (SHA-256) {}",
            vidcast_client::Fingerprint::of(identity.end_entity())
        );
        options.tls = Some(identity);
    }
    Ok(options)
}

pub fn main(args: ServeArgs) -> Result<()> {
    if args.window {
        return serve_with_window(&args);
    }
    crate::runtime()?.block_on(async {
        let ingest = bind(args.listen, "publishers").await?;
        let http = match args.http.0 {
            Some(addr) => Some(bind(addr, "HTTP").await?),
            None => None,
        };
        let options = options_with_tls(&args)?;
        warn_if_open(&options, &ingest, http.as_ref());
        let clock: Arc<dyn vidcast_media::Clock> = Arc::new(SystemClock::new());
        let stop_tx = spawn_pulls(&args, ingest.local_addr()?, &clock);
        // Installed now, before the hub says it listens: a signal right after is caught.
        let signal = crate::shutdown::signal();
        let shutdown = async move {
            signal.await;
            let _ = stop_tx.send(true);
        };
        vidcast_hub::run(ingest, http, options, clock, shutdown)
            .await
            .context("hub failed")
    })
}

/// Starts `--pull` cameras publishing to the hub listening on `ingest`; they stop when the
/// returned sender says `true` (or is dropped).
fn spawn_pulls(
    args: &ServeArgs,
    ingest: SocketAddr,
    clock: &Arc<dyn vidcast_media::Clock>,
) -> tokio::sync::watch::Sender<bool> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let hub_addr = crate::pull::loopback(ingest);
    for spec in &args.pull {
        tokio::spawn(crate::pull::run(
            spec.clone(),
            hub_addr,
            args.hub.token.clone(),
            args.pull_transport,
            Arc::clone(clock),
            stop_rx.clone(),
        ));
    }
    stop_tx
}

/// `serve --window`: the hub runs on the runtime's threads; the window, fed straight from the
/// hub's registry (no TCP hop), on this one. Closing the window stops the hub, and Ctrl-C or
/// SIGTERM closes the window.
fn serve_with_window(args: &ServeArgs) -> Result<()> {
    // Before binding anything: without a display this is a one-line error and nothing else.
    vidcast_viewer::check_display()?;
    let rt = crate::runtime()?;
    let clock: Arc<dyn vidcast_media::Clock> = Arc::new(SystemClock::new());
    let hub = rt.block_on(async {
        let ingest = bind(args.listen, "publishers").await?;
        let http = match args.http.0 {
            Some(addr) => Some(bind(addr, "HTTP").await?),
            None => None,
        };
        let options = options_with_tls(args)?;
        vidcast_hub::RunningHub::start(ingest, http, options, Arc::clone(&clock))
            .context("cannot start the hub")
    })?;
    let _pulls = rt.block_on(async { spawn_pulls(args, hub.ingest_addr, &clock) });
    let scene = Arc::new(vidcast_viewer::Scene::default());
    scene.set_status(format!("hub on {}: no live streams", hub.ingest_addr));
    rt.spawn(feed_scene(
        Arc::clone(&hub.registry),
        Arc::clone(&scene),
        Arc::clone(&clock),
    ));
    let stopped = Arc::new(AtomicBool::new(false));
    let signalled = Arc::clone(&stopped);
    rt.spawn(async move {
        crate::shutdown::signal().await;
        signalled.store(true, Ordering::Release);
    });
    let window = args
        .window_args
        .options(format!("vidcast hub {}", hub.ingest_addr));
    let shown = vidcast_viewer::show(&scene, &window, clock.as_ref(), || {
        stopped.load(Ordering::Acquire)
    });
    rt.block_on(hub.shutdown()).context("hub failed")?;
    shown?;
    Ok(())
}

/// Keeps the window's scene in step with the registry: streams as they come and go, and
/// each one's newest frame (latency measured on the hub's own clock).
async fn feed_scene(
    registry: Arc<vidcast_hub::Registry>,
    scene: Arc<vidcast_viewer::Scene>,
    clock: Arc<dyn vidcast_media::Clock>,
) {
    let mut feed = vidcast_hub::StreamFeed::new(Arc::clone(&registry));
    // The window decodes in this process, so it can afford every frame of a catch-up; a gap
    // (frames skipped while the window was busy) breaks an H.264 chain: ask for a keyframe.
    let mut chains: HashMap<StreamId, ChainGate> = HashMap::new();
    let show = |id: StreamId,
                frame: vidcast_hub::LatestFrame,
                chains: &mut HashMap<StreamId, ChainGate>| {
        let chain = chains.entry(id).or_default();
        let repeat = chain.last_seq() == Some(frame.seq);
        if chain.offer(frame.codec, frame.seq, frame.is_keyframe) == (Pass::Wait { first: true }) {
            registry.request_keyframe(id);
        }
        if repeat {
            return; // the newest frame again, already shown by a catch-up
        }
        let now_us = clock.now_us();
        let latency_us = frame.capture_local_us.map(|c| now_us.saturating_sub(c));
        scene.frame(
            id.get(),
            frame.seq,
            frame.is_keyframe,
            frame.data,
            now_us,
            latency_us,
        );
    };
    loop {
        match feed.next().await {
            FeedUpdate::Stream(s) => scene.upsert(vidcast_viewer::StreamMeta {
                id: s.id.get(),
                name: s.name,
                peer: s.peer,
                codec: Some(s.codec),
                width: s.width,
                height: s.height,
                live: s.live,
            }),
            FeedUpdate::Removed(id) => {
                chains.remove(&id);
                scene.remove(id.get());
            }
            FeedUpdate::CatchUp(id, group) => {
                for frame in group {
                    show(id, frame, &mut chains);
                }
            }
            FeedUpdate::Frame(id, frame) => show(id, frame, &mut chains),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_bytes("32MiB"), Ok(32 << 20));
        assert_eq!(parse_bytes("8M"), Ok(8 << 20));
        assert_eq!(parse_bytes("500KB"), Ok(500_000));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_frame_bytes("16MiB"), Ok(16 << 20));
        assert!(parse_frame_bytes("1G").is_err() && parse_frame_bytes("12").is_err());
    }

    #[test]
    fn byte_counts_take_binary_suffixes() {
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("64k"), Ok(64 << 10));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("0"), Ok(0));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("MiB").is_err());
    }
}
