//! Restreaming: every live stream pushed to RTMP servers (`serve --restream URL`), so
//! nginx-rtmp, MediaMTX or a CDN can fan it out to many more viewers than the hub serves.
//!
//! One supervisor follows the registry and keeps one pusher task per (live stream, target).
//! A pusher owns its socket and drives a sans-IO [`vidcast_rtmp::ClientSession`]: H.264 goes
//! out as it came (no re-encoding), JPEG is transcoded to H.264 on the blocking pool while
//! the target is publishing. Frames come from the stream's in-order outlet, whose backlog is
//! bounded: a slow server loses frames (counted, logged at a limited rate; H.264 then resumes
//! at a keyframe) and never slows the publisher or other viewers. A lost server is retried
//! with jittered backoff (0.5 s doubling to 10 s, each wait ±25 %).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::{Buf, Bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use vidcast_h264::{ChainGate, Pass};
use vidcast_media::{decode_jpeg, Clock, Encoder, H264Config, H264Encoder, MediaError, RawFrame};
use vidcast_proto::{Backoff, Codec};
use vidcast_rtmp::flv::AvcPackager;
use vidcast_rtmp::{ClientEvent, ClientSession, RtmpError};

use crate::access::budget::{LimitHits, RateLog};
use crate::stream::frames::GroupRepeats;
use crate::stream::registry::{LatestFrame, Registry, StreamId, StreamInfo};

pub(crate) use vidcast_rtmp::{RtmpUrl, UrlTemplate};

/// First wait after a failed or lost connection; doubles up to [`BACKOFF_MAX`] (±25 % jitter).
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A connection that published this long counts as healthy: the next loss retries fast.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// TCP connect plus handshake plus connect/createStream/publish must finish within this.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// A server that takes no bytes for this long is declared gone.
const WRITE_STALL: Duration = Duration::from_secs(5);
/// Bytes queued for one server beyond which new frames are dropped (counted) instead.
const MAX_QUEUED_BYTES: usize = 256 << 10;
/// A frame that reaches the pusher this long after the hub received it is dropped: the
/// server or the transcoder is behind, and a live restream catches up instead of lagging.
const MAX_AGE_US: u64 = 1_000_000;
/// A server that took no byte for this long gets no new frames (they are dropped and
/// counted) until it takes some; after [`WRITE_STALL`] the connection is given up.
const STUCK_AFTER: Duration = Duration::from_secs(1);
/// The kernel keeps at most this much unsent data per push socket, so a slow server's
/// backlog stays in the outbox, where it is bounded and counted (like the publisher's).
const NOTSENT_LOWAT_BYTES: u32 = 64 << 10;
/// Capture times further apart than this between two frames mean the clock changed, not
/// that time passed (frames are at most a few seconds apart on a live stream).
const CLOCK_JUMP_US: u64 = 10_000_000;
/// Lost-frame reports per pusher at most this often.
const LOSS_REPORT_EVERY: Duration = Duration::from_secs(5);
/// What the API says of a connection that never reached publishing, whatever the cause.
const CONNECTION_FAILED: &str = "connection failed (details in the hub's log)";

/// Why a push connection ended (the pusher logs it with the stream name and URL, then
/// retries).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RestreamError {
    /// TCP connect failed.
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    /// The host did not resolve, or to an address the hub does not push to.
    #[error("address refused: {0}")]
    Refused(String),
    /// Reading or writing the socket failed.
    #[error("connection lost: {0}")]
    Io(#[source] std::io::Error),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// A step took too long.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The server broke the protocol or refused.
    #[error(transparent)]
    Rtmp(#[from] RtmpError),
    /// JPEG → H.264 failed.
    #[error("cannot transcode to H.264: {0}")]
    Transcode(#[from] MediaError),
}

impl RestreamError {
    /// Whether the error concerns one frame only (the connection is fine).
    fn is_about_one_frame(&self) -> bool {
        matches!(
            self,
            Self::Transcode(_) | Self::Rtmp(RtmpError::BadVideo(_))
        )
    }
}

/// Where streams are pushed: addresses for every stream (`--restream`) and addresses for
/// one stream (`POST /api/streams/{id}/restream`). The supervisor follows changes.
#[derive(Debug, Default)]
pub(crate) struct Targets {
    list: std::sync::Mutex<TargetList>,
    changed: tokio::sync::Notify,
    /// How each push is doing, by (stream, target); kept after a push ends so the numbers
    /// stay readable until the target is removed.
    pushes: std::sync::Mutex<HashMap<(StreamId, u64), Arc<PushStatus>>>,
}

/// One push's state and counters, written by its task, read by the API and `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct PushStatus {
    state: std::sync::Mutex<PushState>,
    frames_sent: std::sync::atomic::AtomicU64,
    frames_lost: std::sync::atomic::AtomicU64,
    bytes_sent: std::sync::atomic::AtomicU64,
    connects: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default, Clone)]
struct PushState {
    publishing: bool,
    last_error: Option<String>,
}

impl PushStatus {
    fn add(counter: &std::sync::atomic::AtomicU64, n: u64) {
        counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    fn set_publishing(&self) {
        Self::add(&self.connects, 1);
        let mut state = crate::stream::registry::lock(&self.state);
        state.publishing = true;
        state.last_error = None;
    }

    /// The push ended, with `error` if it failed. The API shows a connection that never
    /// reached publishing only as "connection failed": whether the port was closed, open to
    /// something else or filtered would make the API a port scanner (the log has details).
    fn set_down(&self, error: Option<&RestreamError>) {
        let mut state = crate::stream::registry::lock(&self.state);
        if let Some(e) = error {
            state.last_error = Some(if state.publishing {
                e.to_string()
            } else {
                CONNECTION_FAILED.to_owned()
            });
        }
        state.publishing = false;
    }

    fn view(&self) -> PushView {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let state = crate::stream::registry::lock(&self.state).clone();
        PushView {
            publishing: state.publishing,
            frames_sent: load(&self.frames_sent),
            frames_lost: load(&self.frames_lost),
            bytes_sent: load(&self.bytes_sent),
            connects: load(&self.connects),
            last_error: state.last_error,
        }
    }
}

/// A push's state as the API and `/metrics` show it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub(crate) struct PushView {
    /// Whether the server is taking the stream now.
    pub publishing: bool,
    /// Frames handed to the server (H.264 access units, after any transcoding).
    pub frames_sent: u64,
    /// Frames left out because the server (or the JPEG transcoder) was slower than the
    /// stream, or lost with a connection.
    pub frames_lost: u64,
    /// RTMP bytes written to the socket.
    pub bytes_sent: u64,
    /// Times a connection reached publishing.
    pub connects: u64,
    /// Why the last connection failed or ended, until one works again.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct TargetList {
    next_id: u64,
    targets: Vec<Target>,
}

/// One restream address; `stream` set: for that stream only.
#[derive(Debug, Clone)]
struct Target {
    id: u64,
    template: UrlTemplate,
    stream: Option<StreamId>,
    /// Whether it may reach loopback and private addresses (see [`ip_problem`]).
    allow_private: bool,
}

/// A per-stream target as the API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct TargetView {
    /// The target's number (for logs; unique while the hub runs).
    pub id: u64,
    /// The stream it is for.
    pub stream_id: StreamId,
    /// Where the stream goes, `{name}` filled in.
    pub url: String,
    /// How the push is doing (all zero before it first starts).
    #[serde(flatten)]
    pub status: PushView,
}

impl Targets {
    /// Targets for every stream (`--restream`: the operator's choice, so private and
    /// loopback addresses are allowed). One whose text or host is refused (see
    /// [`check_target_text`]) is left out, with a log line.
    pub(crate) fn new(every_stream: Vec<UrlTemplate>) -> Self {
        let targets = Self::default();
        for template in every_stream {
            let text = template.to_string();
            match check_target_text(&template.for_stream(0, "x"), &text) {
                Ok(_) => {
                    let mut list = crate::stream::registry::lock(&targets.list);
                    list.next_id += 1;
                    let id = list.next_id;
                    list.targets.push(Target {
                        id,
                        template,
                        stream: None,
                        allow_private: true,
                    });
                }
                Err(why) => warn!(
                    "restream target \"{}\" left out: {why}",
                    vidcast_proto::log_safe(&text)
                ),
            }
        }
        targets
    }

    /// Adds a target for one stream (from the API) unless that would pass the caps of
    /// `limits`; returns its id, or why not.
    pub(crate) fn add_for_stream(
        &self,
        template: UrlTemplate,
        stream: StreamId,
        allow_private: bool,
        limits: &crate::Limits,
    ) -> Result<u64, String> {
        let id = {
            let mut list = crate::stream::registry::lock(&self.list);
            let api = list.targets.iter().filter(|t| t.stream.is_some());
            let (total, this) = api.fold((0, 0), |(n, m), t| {
                (n + 1, m + usize::from(t.stream == Some(stream)))
            });
            if this >= limits.max_restream_per_stream {
                return Err(format!(
                    "stream {stream} has {this} restream targets already (--max-restream-per-stream {})",
                    limits.max_restream_per_stream
                ));
            }
            if total >= limits.max_restream_targets {
                return Err(format!(
                    "the hub has {total} restream targets added through the API already (--max-restream-targets {})",
                    limits.max_restream_targets
                ));
            }
            list.next_id += 1;
            let id = list.next_id;
            list.targets.push(Target {
                id,
                template,
                stream: Some(stream),
                allow_private,
            });
            id
        };
        self.changed.notify_one();
        Ok(id)
    }

    /// Removes stream `stream`'s own targets (not the ones for every stream); how many.
    pub(crate) fn remove_for_stream(&self, stream: StreamId) -> usize {
        let removed = {
            let mut list = crate::stream::registry::lock(&self.list);
            let before = list.targets.len();
            let gone: Vec<u64> = list
                .targets
                .iter()
                .filter(|t| t.stream == Some(stream))
                .map(|t| t.id)
                .collect();
            list.targets.retain(|t| t.stream != Some(stream));
            let mut pushes = crate::stream::registry::lock(&self.pushes);
            pushes.retain(|(s, target), _| !(*s == stream && gone.contains(target)));
            before - list.targets.len()
        };
        self.changed.notify_one();
        removed
    }

    /// Every target that applies to stream `stream` called `name`.
    pub(crate) fn for_stream(&self, stream: StreamId, name: &str) -> Vec<TargetView> {
        self.snapshot()
            .into_iter()
            .filter(|t| t.stream.is_none_or(|s| s == stream))
            .map(|t| TargetView {
                id: t.id,
                stream_id: stream,
                url: t.template.for_stream(stream.get(), name).to_string(),
                // Reading makes no entry: only a push's own task creates one.
                status: crate::stream::registry::lock(&self.pushes)
                    .get(&(stream, t.id))
                    .map(|p| p.view())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Drops the push counters of streams not in `known`.
    fn forget_streams_except(&self, known: &[StreamId]) {
        crate::stream::registry::lock(&self.pushes).retain(|(stream, _), _| known.contains(stream));
    }

    /// The status of stream `stream`'s push to target `target` (made on first use).
    fn status(&self, stream: StreamId, target: u64) -> Arc<PushStatus> {
        Arc::clone(
            crate::stream::registry::lock(&self.pushes)
                .entry((stream, target))
                .or_default(),
        )
    }

    fn snapshot(&self) -> Vec<Target> {
        crate::stream::registry::lock(&self.list).targets.clone()
    }
}

/// Body of `POST /api/streams/{id}/restream`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct AddTarget {
    /// `rtmp://HOST[:PORT]/APP/STREAM`; `{name}` is replaced by the stream's name.
    url: String,
}

/// The stream's name, if the hub knows the stream.
fn stream_name(shared: &crate::server::Shared, id: StreamId) -> Option<String> {
    shared.registry.stream_info(id).map(|info| info.name)
}

fn no_stream(id: StreamId) -> Response {
    (StatusCode::NOT_FOUND, format!("no stream {id}\n")).into_response()
}

/// `GET /api/streams/{id}/restream`: where the stream is pushed (targets for every stream
/// included).
pub(crate) async fn api_list(
    State(shared): State<Arc<crate::server::Shared>>,
    crate::serve::http::StreamRef(id): crate::serve::http::StreamRef,
) -> Response {
    match stream_name(&shared, id) {
        Some(name) => Json(shared.restream.for_stream(id, &name)).into_response(),
        None => no_stream(id),
    }
}

/// Refused API targets log at most this often.
static API_REFUSED_LOG: RateLog = RateLog::new(crate::access::budget::LOG_EVERY);

/// `POST /api/streams/{id}/restream {"url": …}`: push this stream there too (while it is
/// live, reconnecting like `--restream`). 201 with the target; 400 for a bad or forbidden
/// address (see [`ip_problem`]; host names are resolved now and again at each connect);
/// 429 over `--max-restream-per-stream` or `--max-restream-targets`.
pub(crate) async fn api_add(
    State(shared): State<Arc<crate::server::Shared>>,
    crate::serve::http::StreamRef(id): crate::serve::http::StreamRef,
    Json(body): Json<AddTarget>,
) -> Response {
    let Some(name) = stream_name(&shared, id) else {
        return no_stream(id);
    };
    let template = match UrlTemplate::parse(&body.url) {
        Ok(t) => t,
        Err(e) => {
            let text = format!("{e} (expected rtmp://HOST[:PORT]/APP/STREAM)\n");
            return (StatusCode::BAD_REQUEST, text).into_response();
        }
    };
    let allow_private = shared.restream_allow_private;
    let rtmp_url = template.for_stream(id.get(), &name);
    let checked = match check_target_text(&rtmp_url, &body.url) {
        Ok(_) => checked_addrs(&rtmp_url, allow_private).await.map(|_| ()),
        Err(why) => Err(why),
    };
    if let Err(why) = checked {
        LimitHits::hit(&shared.access.hits.restream_refused);
        if let Some(more) = API_REFUSED_LOG.allow(Instant::now()) {
            warn!(
                "restream target \"{}\" for \"{name}\" refused: {}; {more} more refusals since the last line",
                vidcast_proto::log_safe(&body.url),
                vidcast_proto::log_safe(&why)
            );
        }
        let text = format!("{why}\n");
        return (StatusCode::BAD_REQUEST, text).into_response();
    }
    let url = rtmp_url.to_string();
    let limits = &shared.access.limits;
    let target = match shared
        .restream
        .add_for_stream(template, id, allow_private, limits)
    {
        Ok(target) => target,
        Err(why) => {
            LimitHits::hit(&shared.access.hits.restream_refused);
            if let Some(more) = API_REFUSED_LOG.allow(Instant::now()) {
                warn!("restream target for \"{name}\" refused: {why}; {more} more refusals since the last line");
            }
            return (StatusCode::TOO_MANY_REQUESTS, format!("{why}\n")).into_response();
        }
    };
    info!("restream \"{name}\" → {url}: added through the API (target {target})");
    let view = TargetView {
        id: target,
        stream_id: id,
        url,
        status: PushView::default(),
    };
    (StatusCode::CREATED, Json(view)).into_response()
}

/// `DELETE /api/streams/{id}/restream`: stop the pushes added for this stream through the
/// API (`--restream` targets stay). Answers how many were removed.
pub(crate) async fn api_remove(
    State(shared): State<Arc<crate::server::Shared>>,
    crate::serve::http::StreamRef(id): crate::serve::http::StreamRef,
) -> Response {
    let Some(name) = stream_name(&shared, id) else {
        return no_stream(id);
    };
    let removed = shared.restream.remove_for_stream(id);
    info!("restream \"{name}\": {removed} API targets removed");
    Json(serde_json::json!({ "removed": removed })).into_response()
}

/// Host names of cloud instance-metadata services (they hand out credentials to whoever asks
/// from the machine).
const METADATA_NAMES: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "metadata.azure.internal",
    "instance-data",
    "instance-data.ec2.internal",
];
/// A host name must resolve within this long (when added, and at each connect).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an address is never pushed to, or `None` if it may be. Private and loopback
/// addresses are allowed only with `allow_private` (`--restream` on the command line, or
/// API targets with `--restream-allow-private`); link-local, multicast, unspecified,
/// broadcast, reserved and cloud-metadata addresses never are.
pub fn ip_problem(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_problem(v4, allow_private),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_problem(v4, allow_private);
            }
            let seg = v6.segments();
            // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [.., a, b, c, d] = v6.octets();
                return v4_problem(Ipv4Addr::new(a, b, c, d), allow_private);
            }
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("a cloud metadata service")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if !allow_private
                && (v6.is_loopback() || seg[0] & 0xfe00 == 0xfc00 || seg[0] & 0xffc0 == 0xfec0)
            {
                Some("loopback or private (allowed with --restream-allow-private)")
            } else {
                None
            }
        }
    }
}

fn v4_problem(v4: Ipv4Addr, allow_private: bool) -> Option<&'static str> {
    let [a, b, ..] = v4.octets();
    if v4 == Ipv4Addr::new(169, 254, 169, 254) || v4 == Ipv4Addr::new(100, 100, 100, 200) {
        Some("a cloud metadata service")
    } else if a == 0 {
        Some("unspecified (0.0.0.0/8)")
    } else if v4.is_broadcast() {
        Some("broadcast")
    } else if v4.is_multicast() {
        Some("multicast")
    } else if v4.is_link_local() {
        Some("link-local")
    } else if a >= 240 {
        Some("reserved")
    } else if !allow_private
        && (v4.is_loopback() || v4.is_private() || (a == 100 && b & 0xc0 == 64))
    {
        Some("loopback or private (allowed with --restream-allow-private)")
    } else {
        None
    }
}

/// Checks a target's text and host before any lookup: no control, format or space
/// characters (they would reach the log and the server), no metadata host names, and IPv4
/// only in its dotted-quad spelling (`2130706433`, `0177.0.0.1`, `0x7f.1` are refused:
/// resolvers read them as addresses, and a check that reads them differently is bypassed).
/// Returns the host's address when it is one.
pub fn check_target_text(url: &RtmpUrl, text: &str) -> Result<Option<IpAddr>, String> {
    if text
        .chars()
        .any(|c| c.is_whitespace() || vidcast_proto::is_unsafe_char(c))
    {
        return Err("the address has spaces, control or invisible characters".into());
    }
    if let Ok(ip) = url.host.parse::<IpAddr>() {
        return Ok(Some(ip));
    }
    let host = url.host.trim_end_matches('.').to_ascii_lowercase();
    if METADATA_NAMES.contains(&host.as_str()) {
        return Err(format!("{host} is a cloud metadata service"));
    }
    let last = host.rsplit('.').next().unwrap_or_default();
    if last.starts_with(|c: char| c.is_ascii_digit()) || last.starts_with("0x") {
        return Err(format!(
            "{host} is not a host name, nor an IPv4 address in dotted decimal (a.b.c.d)"
        ));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(format!("{host} is not a host name"));
    }
    Ok(None)
}

/// Where a target's host may be reached: its address, or every address its name resolves
/// to, each checked with [`ip_problem`]. Called when a target is added and again at each
/// connect (a name may be re-pointed after it was checked: DNS rebinding); the connection
/// then goes to a checked address, not to a new lookup's.
async fn checked_addrs(url: &RtmpUrl, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    let refuse = |ip: IpAddr, why: &str| format!("{} resolves to {ip}, which is {why}", url.host);
    if let Ok(ip) = url.host.parse::<IpAddr>() {
        return match ip_problem(ip, allow_private) {
            Some(why) => Err(format!("{ip} is {why}")),
            None => Ok(vec![SocketAddr::new(ip, url.port)]),
        };
    }
    let found = tokio::time::timeout(
        RESOLVE_TIMEOUT,
        tokio::net::lookup_host((url.host.as_str(), url.port)),
    )
    .await
    .map_err(|_| format!("resolving {} took over {RESOLVE_TIMEOUT:?}", url.host))?
    .map_err(|e| format!("cannot resolve {}: {e}", url.host))?;
    let addrs: Vec<SocketAddr> = found.collect();
    if addrs.is_empty() {
        return Err(format!("{} resolves to no address", url.host));
    }
    // One bad address refuses all: a name that mixes them is not to be trusted.
    if let Some((ip, why)) = addrs
        .iter()
        .find_map(|a| ip_problem(a.ip(), allow_private).map(|why| (a.ip(), why)))
    {
        return Err(refuse(ip, why));
    }
    Ok(addrs)
}

/// Follows the registry and the targets until `stop`: one pusher per live stream and
/// target that applies to it.
pub(crate) async fn run(
    registry: Arc<Registry>,
    targets: Arc<Targets>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    for t in targets.snapshot() {
        if t.template.is_per_stream() {
            info!("restreaming every live stream to {}", t.template);
        } else {
            warn!("restreaming to {}, which has no {{name}}: with several streams they all publish to the same name and the server keeps one", t.template);
        }
    }
    let mut events = registry.subscribe_events();
    let mut pushers: HashMap<(StreamId, u64), Pusher> = HashMap::new();
    loop {
        let known = registry.stream_infos();
        // Counters of streams the registry has forgotten go too.
        targets.forget_streams_except(&known.iter().map(|(id, ..)| *id).collect::<Vec<_>>());
        let live: Vec<(StreamId, StreamInfo)> = known
            .into_iter()
            .filter(|(_, _, live)| *live)
            .map(|(id, info, _)| (id, info))
            .collect();
        let wanted: Vec<(StreamId, StreamInfo, Target)> = targets
            .snapshot()
            .into_iter()
            .flat_map(|t| {
                live.iter()
                    .filter(move |(id, _)| t.stream.is_none_or(|s| s == *id))
                    .map(move |(id, info)| (*id, info.clone(), t.clone()))
            })
            .collect();
        pushers.retain(|&(id, target), p| {
            let keep =
                wanted.iter().any(|(w, _, t)| (*w, t.id) == (id, target)) && !p.task.is_finished();
            if !keep {
                let _ = p.stop.send(true);
            }
            keep
        });
        for (id, info, target) in wanted {
            pushers.entry((id, target.id)).or_insert_with(|| {
                let (stop_tx, stop_rx) = watch::channel(false);
                let push = Push {
                    registry: Arc::clone(&registry),
                    status: targets.status(id, target.id),
                    allow_private: target.allow_private,
                    id,
                    url: target.template.for_stream(id.get(), &info.name),
                    info,
                    clock: Arc::clone(&clock),
                    stop: stop_rx,
                };
                Pusher {
                    stop: stop_tx,
                    task: tokio::spawn(push.run()),
                }
            });
        }
        tokio::select! {
            // Lagged: events were missed; the next pass rereads the registry anyway.
            r = events.recv() => if matches!(r, Err(broadcast::error::RecvError::Closed)) { break },
            () = targets.changed.notified() => {}
            _ = stop.wait_for(|&s| s) => break,
        }
    }
    for p in pushers.values() {
        let _ = p.stop.send(true);
    }
    for (_, p) in pushers {
        let _ = tokio::time::timeout(Duration::from_secs(1), p.task).await;
    }
}

struct Pusher {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// One stream pushed to one URL, reconnecting until told to stop.
struct Push {
    registry: Arc<Registry>,
    status: Arc<PushStatus>,
    /// Whether the target may reach loopback and private addresses.
    allow_private: bool,
    id: StreamId,
    info: StreamInfo,
    url: RtmpUrl,
    clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
}

/// How a connection ended without an error.
struct Stopped;

impl Push {
    async fn run(self) {
        let mut stop = self.stop.clone();
        // Jittered: the pushes of a hub that lost its network retry apart, not all at once.
        let mut backoff = Backoff::starting_at(
            BACKOFF_START,
            BACKOFF_MAX,
            self.clock.now_us() ^ self.id.get(),
        );
        let mut attempt: u64 = 0;
        let mut losses = Losses::default();
        // Failures log their details at most once per period (a target that never works
        // would otherwise log every retry, for every stream).
        let failure_log = RateLog::default();
        loop {
            attempt += 1;
            let began = Instant::now();
            let result = tokio::select! {
                r = self.connection(attempt, &mut losses) => r,
                _ = stop.wait_for(|&s| s) => Ok(Stopped),
            };
            let name = &self.info.name;
            let url = &self.url;
            let delay = match result {
                Ok(Stopped) => {
                    self.status.set_down(None);
                    info!("restream \"{name}\" → {url}: stopped (stream offline or hub stopping)");
                    return;
                }
                Err(e) => {
                    self.status.set_down(Some(&e));
                    if began.elapsed() >= HEALTHY_AFTER {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    losses.report(name, url);
                    if let Some(more) = failure_log.allow(Instant::now()) {
                        warn!("restream \"{name}\" → {url}: {e}; retrying in {delay:?} ({more} more failures since the last line)");
                    }
                    delay
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|&s| s) => return,
            }
        }
    }

    /// One connection: set up, then push frames until an error (or the caller's stop).
    async fn connection(
        &self,
        attempt: u64,
        losses: &mut Losses,
    ) -> Result<Stopped, RestreamError> {
        let (name, url) = (&self.info.name, &self.url);
        let seed = self.clock.now_us() ^ self.id.get().rotate_left(32) ^ attempt;
        let mut session = ClientSession::new(url.clone(), seed);
        let setup = async {
            // Checked again now, and connected to the checked addresses: the name may have
            // been re-pointed since the target was added.
            let addrs = checked_addrs(url, self.allow_private)
                .await
                .map_err(RestreamError::Refused)?;
            let stream = TcpStream::connect(&addrs[..])
                .await
                .map_err(RestreamError::Connect)?;
            // Frames are whole messages: send each at once.
            let _ = stream.set_nodelay(true);
            if let Err(e) =
                socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT_BYTES)
            {
                debug!("restream \"{name}\" → {url}: cannot set TCP_NOTSENT_LOWAT: {e}");
            }
            let (mut rd, mut wr) = stream.into_split();
            let mut buf = vec![0u8; 16 << 10];
            loop {
                flush(&mut session, &mut wr).await?;
                while let Some(event) = session.poll_event() {
                    if event == ClientEvent::Publishing {
                        return Ok((rd, wr, buf));
                    }
                }
                let n = rd.read(&mut buf).await.map_err(RestreamError::Io)?;
                if n == 0 {
                    return Err(RestreamError::Closed);
                }
                session.handle_bytes(&buf[..n])?;
            }
        };
        let (mut rd, mut wr, mut buf) = tokio::time::timeout(SETUP_TIMEOUT, setup)
            .await
            .map_err(|_| RestreamError::Timeout("connect, handshake and publish"))??;
        // What goes out is always H.264: JPEG streams are encoded for the push.
        let encoded = match self.info.codec {
            Codec::H264 => "",
            Codec::Jpeg => ", encoded from jpeg",
        };
        info!(
            "restream \"{name}\" → {url}: publishing (h264 {}x{}{encoded})",
            self.info.width, self.info.height
        );
        let fps = if self.info.fps_nominal > 0.0 {
            self.info.fps_nominal
        } else {
            30.0
        };
        session.send_metadata(u32::from(self.info.width), u32::from(self.info.height), fps)?;
        self.status.set_publishing();

        let outlet = self
            .registry
            .frame_outlet(self.id)
            .ok_or(RestreamError::Closed)?;
        // Subscribe before taking the group, so no frame falls between the two.
        let mut frames = outlet.subscribe_in_order();
        let mut video = Video::new(self.info.codec, fps);
        let mut outbox = Outbox::default();
        let group = outlet.keyframe_group();
        let mut repeats = GroupRepeats::of(&group);
        if group.is_empty() && self.info.codec == Codec::H264 {
            self.registry.request_keyframe(self.id);
        }
        // The current group goes out at once, however old: players need it to decode.
        for frame in group {
            self.send(&mut session, &mut video, frame).await?;
        }
        outbox.take_from(&mut session);
        loop {
            // Cheap clone (a reference count): the write future must not borrow the outbox.
            let front = outbox.front();
            let stall_at = outbox.progress_at + WRITE_STALL;
            tokio::select! {
                r = frames.recv() => match r {
                    Ok(frame) => {
                        if repeats.is_repeat(frame.seq) {
                            continue;
                        }
                        let age_us = self.clock.now_us().saturating_sub(frame.received_us);
                        if outbox.len_bytes > MAX_QUEUED_BYTES
                            || age_us > MAX_AGE_US
                            || outbox.is_stuck()
                        {
                            // The server takes less than the stream brings: drop, never queue.
                            losses.lost(1, name, url);
                            PushStatus::add(&self.status.frames_lost, 1);
                            if video.resync() {
                                self.registry.request_keyframe(self.id);
                            }
                            continue;
                        }
                        self.send(&mut session, &mut video, frame).await?;
                        outbox.take_from(&mut session);
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        losses.lost(n, name, url);
                        PushStatus::add(&self.status.frames_lost, n);
                        if video.resync() {
                            self.registry.request_keyframe(self.id);
                        }
                    }
                    // The stream was forgotten by the registry.
                    Err(broadcast::error::RecvError::Closed) => return Ok(Stopped),
                },
                r = wr.write(&front), if !front.is_empty() => {
                    let n = r.map_err(RestreamError::Io)?;
                    if n == 0 {
                        return Err(RestreamError::Closed);
                    }
                    outbox.advance(n);
                    PushStatus::add(&self.status.bytes_sent, n as u64);
                }
                () = tokio::time::sleep_until(stall_at), if !front.is_empty() => {
                    return Err(RestreamError::Timeout("the server stopped reading"));
                }
                // Servers send acknowledgements, pings and status: keep reading them.
                r = rd.read(&mut buf) => {
                    let n = r.map_err(RestreamError::Io)?;
                    if n == 0 {
                        return Err(RestreamError::Closed);
                    }
                    session.handle_bytes(&buf[..n])?;
                    while let Some(event) = session.poll_event() {
                        debug!("restream \"{name}\" → {url}: {event:?}");
                    }
                    outbox.take_from(&mut session);
                }
            }
        }
    }

    /// Packages one frame (transcoding JPEG first) and queues its messages. A frame that
    /// cannot be sent (a JPEG the decoder refuses, a malformed SPS, an access unit over
    /// RTMP's message limit) is lost and counted: it costs that frame, never the connection
    /// and with it the server's viewers.
    async fn send(
        &self,
        session: &mut ClientSession,
        video: &mut Video,
        frame: LatestFrame,
    ) -> Result<(), RestreamError> {
        let seq = frame.seq;
        match self.package(session, video, frame).await {
            Err(e) if e.is_about_one_frame() => {
                PushStatus::add(&self.status.frames_lost, 1);
                video.unusable_frames += 1;
                if video.unusable_frames == 1 || video.unusable_frames % 100 == 0 {
                    warn!(
                        "restream of stream {}: frame {seq} left out: {e} ({} so far)",
                        self.id, video.unusable_frames
                    );
                }
                // A JPEG that did not transcode left the encoder's chain whole.
                let encoded = !matches!(e, RestreamError::Transcode(_));
                if video.skip_frame(encoded) {
                    self.registry.request_keyframe(self.id);
                }
                Ok(())
            }
            other => other,
        }
    }

    /// [`Self::send`] without the care for unusable frames.
    async fn package(
        &self,
        session: &mut ClientSession,
        video: &mut Video,
        frame: LatestFrame,
    ) -> Result<(), RestreamError> {
        let Some((access_unit, capture_us)) = video.h264(&frame).await? else {
            if video.wants_keyframe_now() {
                self.registry.request_keyframe(self.id);
            }
            return Ok(());
        };
        let units = vidcast_h264::nal_units(&access_unit);
        let bodies = video.packager.package(&units)?;
        let timestamp = video.timestamp_ms(capture_us);
        for body in bodies {
            session.send_video(timestamp, body)?;
        }
        PushStatus::add(&self.status.frames_sent, 1);
        Ok(())
    }
}

/// Writes everything the session has queued; a server that takes nothing for
/// [`WRITE_STALL`] is gone.
async fn flush(session: &mut ClientSession, wr: &mut OwnedWriteHalf) -> Result<(), RestreamError> {
    while let Some(bytes) = session.poll_transmit() {
        tokio::time::timeout(WRITE_STALL, wr.write_all(&bytes))
            .await
            .map_err(|_| RestreamError::Timeout("the server stopped reading"))?
            .map_err(RestreamError::Io)?;
    }
    Ok(())
}

/// What the session produced and the socket has not taken yet: bounded by dropping frames
/// (see [`MAX_QUEUED_BYTES`]), never by waiting.
struct Outbox {
    chunks: VecDeque<Bytes>,
    len_bytes: usize,
    /// When the socket last took bytes, or the outbox last became non-empty.
    progress_at: tokio::time::Instant,
}

impl Default for Outbox {
    fn default() -> Self {
        Self {
            chunks: VecDeque::new(),
            len_bytes: 0,
            progress_at: tokio::time::Instant::now(),
        }
    }
}

impl Outbox {
    fn take_from(&mut self, session: &mut ClientSession) {
        while let Some(bytes) = session.poll_transmit() {
            if self.chunks.is_empty() {
                self.progress_at = tokio::time::Instant::now();
            }
            self.len_bytes += bytes.len();
            self.chunks.push_back(bytes);
        }
    }

    /// Whether the socket has taken nothing for [`STUCK_AFTER`] while bytes wait: new frames
    /// would only queue behind them.
    fn is_stuck(&self) -> bool {
        !self.chunks.is_empty() && self.progress_at.elapsed() >= STUCK_AFTER
    }

    /// The bytes to write next (empty when there are none).
    fn front(&self) -> Bytes {
        self.chunks.front().cloned().unwrap_or_default()
    }

    fn advance(&mut self, n: usize) {
        self.len_bytes -= n;
        self.progress_at = tokio::time::Instant::now();
        if let Some(front) = self.chunks.front_mut() {
            front.advance(n);
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
    }
}

/// Frames lost on the way to one server, reported at a limited rate.
#[derive(Default)]
struct Losses {
    total: u64,
    unreported: u64,
    last_report: Option<Instant>,
}

impl Losses {
    fn lost(&mut self, n: u64, name: &str, url: &RtmpUrl) {
        self.total += n;
        self.unreported += n;
        if self
            .last_report
            .is_none_or(|t| t.elapsed() >= LOSS_REPORT_EVERY)
        {
            self.report(name, url);
        }
    }

    /// Logs the losses not reported yet, if any.
    fn report(&mut self, name: &str, url: &RtmpUrl) {
        if self.unreported > 0 {
            warn!(
                "restream \"{name}\" → {url}: {} frames lost (server or transcoder slower than the stream; {} in all)",
                self.unreported, self.total
            );
            self.unreported = 0;
            self.last_report = Some(Instant::now());
        }
    }
}

/// One connection's video state: the H.264 chain (passed through, or made from JPEG), the
/// packager and the timestamp base.
struct Video {
    codec: Codec,
    packager: AvcPackager,
    /// H.264 passthrough: the chain as sent (a keyframe first, and again after a gap).
    chain: ChainGate,
    /// A frame was held back for the first time in a wait: ask the publisher for a keyframe.
    keyframe_wanted: bool,
    /// JPEG → H.264, made at the first JPEG frame (on the blocking pool).
    transcoder: Option<Transcoder>,
    fps: f64,
    /// Capture time of the first frame sent, and the last timestamp (never goes back; ms
    /// since `base_us`, sent modulo 2^32 as RTMP timestamps wrap).
    base_us: Option<u64>,
    last_ms: u64,
    /// Frames left out because they could not be sent, on this connection.
    unusable_frames: u64,
}

impl Video {
    fn new(codec: Codec, fps: f64) -> Self {
        Self {
            codec,
            packager: AvcPackager::default(),
            chain: ChainGate::new(),
            keyframe_wanted: false,
            transcoder: None,
            fps,
            base_us: None,
            last_ms: 0,
            unusable_frames: 0,
        }
    }

    /// Frames were lost: an H.264 chain must restart at a keyframe (true: ask for one).
    /// A transcoded chain goes on: the encoder's own chain has no gap.
    fn resync(&mut self) -> bool {
        if self.codec != Codec::H264 {
            return false;
        }
        self.chain.break_chain();
        true
    }

    /// A frame was left out: an H.264 chain restarts at the next keyframe (true: ask for
    /// one); a transcoder whose picture (`encoded`) was not sent makes its next one a keyframe.
    fn skip_frame(&mut self, encoded: bool) -> bool {
        if encoded {
            if let Some((encoder, ..)) = self.transcoder.as_mut().and_then(|t| t.encoder.as_mut()) {
                encoder.force_keyframe();
            }
        }
        self.resync()
    }

    /// Whether a keyframe request should go out now (once per wait).
    fn wants_keyframe_now(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_wanted)
    }

    /// The frame as an H.264 access unit and its capture time, or `None` to skip it.
    async fn h264(&mut self, frame: &LatestFrame) -> Result<Option<(Bytes, u64)>, RestreamError> {
        if frame.codec == Codec::H264 {
            return Ok(
                match self.chain.offer(frame.codec, frame.seq, frame.is_keyframe) {
                    Pass::Use => Some((frame.data.clone(), frame.capture_us)),
                    Pass::Repeat => None,
                    Pass::Wait { first } => {
                        self.keyframe_wanted = first;
                        None
                    }
                },
            );
        }
        let transcoder = match self.transcoder.take() {
            Some(t) => t,
            None => Transcoder::new(self.fps),
        };
        let data = frame.data.clone();
        let (transcoder, result) =
            crate::blocking::run_with(transcoder, move |t| t.transcode(&data))
                .await
                .ok_or_else(|| MediaError::Encode("the transcoder panicked".into()))?;
        self.transcoder = Some(transcoder);
        Ok(Some((result?, frame.capture_us)))
    }

    /// RTMP timestamp (ms) of a frame captured at `capture_us`: from the first frame of
    /// this connection, never going back. A capture clock that jumps (back, or over
    /// [`CLOCK_JUMP_US`] ahead: a publisher on another machine took the name over) is
    /// rebased so the timeline goes on one frame later instead of stalling or leaping.
    fn timestamp_ms(&mut self, capture_us: u64) -> u32 {
        let base = *self.base_us.get_or_insert(capture_us);
        let mut ms = capture_us.saturating_sub(base) / 1000;
        let last = self.last_ms;
        if capture_us < base || ms > last + CLOCK_JUMP_US / 1000 || ms + CLOCK_JUMP_US / 1000 < last
        {
            let next = last + (1000.0 / self.fps).round() as u64;
            self.base_us = Some(capture_us.saturating_sub(next * 1000));
            ms = next;
        }
        self.last_ms = ms.max(last);
        // RTMP timestamps wrap after 49.7 days; servers follow the wrap.
        (self.last_ms & 0xFFFF_FFFF) as u32
    }
}

/// JPEG → H.264 for one restreamed JPEG stream. The encoder is made at the first picture
/// (its size) and again if the size changes. Also used by RTSP readers of JPEG streams.
pub(crate) struct Transcoder {
    encoder: Option<(H264Encoder, u32, u32)>,
    fps: f64,
    /// The next frame must be a keyframe (a new encoder makes one anyway).
    force_keyframe: bool,
}

impl Transcoder {
    pub(crate) fn new(fps: f64) -> Self {
        Self {
            encoder: None,
            fps,
            force_keyframe: false,
        }
    }

    /// Makes the next frame a keyframe (an RTSP reader joined or missed a frame).
    pub(crate) fn force_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    pub(crate) fn transcode(&mut self, jpeg: &[u8]) -> Result<Bytes, MediaError> {
        let image = decode_jpeg(jpeg)?;
        // 4:2:0 needs even sizes: drop an odd last column or row.
        let (width, height) = (image.width & !1, image.height & !1);
        let rgb = if (width, height) == (image.width, image.height) {
            image.rgb
        } else {
            let row = image.width as usize * 3;
            image
                .rgb
                .chunks_exact(row)
                .take(height as usize)
                .flat_map(|r| &r[..width as usize * 3])
                .copied()
                .collect()
        };
        let encoder = match &mut self.encoder {
            Some((e, w, h)) if (*w, *h) == (width, height) => e,
            slot => {
                // About 0.1 bit per pixel per frame: 1.1 Mbit/s at 640x480@30.
                let bps = (f64::from(width * height) * self.fps * 0.12).clamp(300e3, 8e6);
                let encoder = H264Encoder::new(H264Config::live(
                    bps as u32,
                    self.fps,
                    Duration::from_secs(2),
                ))?;
                &mut slot.insert((encoder, width, height)).0
            }
        };
        let raw = RawFrame {
            width,
            height,
            format: vidcast_media::PixelFormat::Rgb8,
            data: rgb,
            seq: 0,
            capture_us: 0,
        };
        if std::mem::take(&mut self.force_keyframe) {
            encoder.force_keyframe();
        }
        Ok(encoder.encode(&raw)?.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h264(seq: u64, is_keyframe: bool) -> LatestFrame {
        LatestFrame {
            seq,
            capture_us: 1_000_000 + seq * 33_333,
            received_us: 0,
            codec: Codec::H264,
            data: Bytes::from_static(&[0, 0, 1, 0x41, 0x9A]),
            is_keyframe,
            capture_local_us: None,
            wall_message: Arc::default(),
        }
    }

    #[tokio::test]
    async fn h264_passthrough_starts_at_a_keyframe_and_restarts_at_one_after_a_gap() {
        let mut video = Video::new(Codec::H264, 30.0);
        let mut sent = Vec::new();
        for (seq, key) in [
            (1, false),
            (2, true),
            (3, false),
            (5, false),
            (6, true),
            (7, false),
        ] {
            if video.h264(&h264(seq, key)).await.unwrap().is_some() {
                sent.push(seq);
            }
        }
        assert_eq!(
            sent,
            [2, 3, 6, 7],
            "1 precedes any keyframe; 5 follows a gap"
        );
        assert!(
            video.resync(),
            "frames lost: wait for a keyframe and ask for one"
        );
        assert!(video.h264(&h264(8, false)).await.unwrap().is_none());
    }

    #[test]
    fn internal_addresses_are_refused_and_private_ones_only_when_allowed() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for never in [
            "169.254.169.254",
            "169.254.1.1",
            "100.100.100.200",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "fe80::1",
            "ff02::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(ip_problem(ip(never), true).is_some(), "{never}");
        }
        for private in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd12::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(ip_problem(ip(private), false).is_some(), "{private}");
            assert_eq!(ip_problem(ip(private), true), None, "{private}");
        }
        for public in ["192.0.2.1", "2001:db8::1", "8.8.8.8"] {
            assert_eq!(ip_problem(ip(public), false), None, "{public}");
        }
    }

    #[test]
    fn odd_ipv4_spellings_metadata_names_and_control_characters_are_refused() {
        let check = |text: &str| {
            let url = RtmpUrl::parse(text).unwrap();
            check_target_text(&url, text)
        };
        for bad in [
            "rtmp://2130706433/live/x",
            "rtmp://0177.0.0.1/live/x",
            "rtmp://0x7f.1/live/x",
            "rtmp://127.1/live/x",
            "rtmp://metadata.google.internal/live/x",
            "rtmp://Metadata.Google.Internal./live/x",
            "rtmp://h/live/x\nINFO forged",
            "rtmp://h/live/x\u{202e}",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert_eq!(check("rtmp://media.example/live/x"), Ok(None));
        assert_eq!(
            check("rtmp://127.0.0.1:1935/live/x"),
            Ok(Some(IpAddr::from([127, 0, 0, 1])))
        );
    }

    #[test]
    fn timestamps_count_from_the_first_frame_and_never_go_back() {
        const T0: u64 = 1_700_000_000_000_000;
        let mut video = Video::new(Codec::H264, 30.0);
        assert_eq!(video.timestamp_ms(T0), 0);
        assert_eq!(video.timestamp_ms(T0 + 33_400), 33);
        assert_eq!(video.timestamp_ms(T0 + 66_700), 66);
        assert_eq!(
            video.timestamp_ms(T0 + 10_000),
            66,
            "a small step back is held"
        );
        // Another machine took the name over, its clock 10 minutes behind: the timeline
        // goes on a frame later, then follows the new clock.
        let other = T0 - 600_000_000;
        assert_eq!(video.timestamp_ms(other), 99);
        assert_eq!(video.timestamp_ms(other + 33_333), 132);
        // And a clock an hour ahead.
        assert_eq!(video.timestamp_ms(other + 3_600_033_333), 165);
        // A connection up for 50 days: the timestamp wraps and goes on.
        let mut video = Video::new(Codec::H264, 30.0);
        let wrap_ms = 1u64 << 32;
        video.timestamp_ms(T0);
        for ms in (0..wrap_ms).step_by(5_000) {
            video.timestamp_ms(T0 + ms * 1000);
        }
        assert_eq!(video.timestamp_ms(T0 + (wrap_ms - 1) * 1000), u32::MAX);
        assert_eq!(video.timestamp_ms(T0 + (wrap_ms + 33) * 1000), 33);
        assert_eq!(video.timestamp_ms(T0 + (wrap_ms + 66) * 1000), 66);
    }

    #[test]
    fn jpeg_transcodes_to_a_decodable_keyframe_even_at_odd_sizes() {
        let jpeg = vidcast_testkit::jpeg(161, 121);
        let mut t = Transcoder::new(30.0);
        let au = t.transcode(&jpeg).unwrap();
        assert!(vidcast_h264::is_keyframe(&au));
        let picture = vidcast_media::H264Decoder::new()
            .unwrap()
            .decode(&au)
            .unwrap()
            .unwrap();
        assert_eq!((picture.width, picture.height), (160, 120));
    }
}
