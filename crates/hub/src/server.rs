//! The accept loop, shutdown, and a handle for running a hub inside another program.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};
use vidcast_media::Clock;

use crate::access::auth::Auth;
use crate::access::limits::{Limits, PendingConnections};
use crate::access::tls::TlsIdentity;
use crate::access::Access;
use crate::egress::recording::Recordings;
use crate::ingest::{session, IngestContext};
use crate::serve::http;
use crate::serve::viewers::ViewContext;
use crate::stream::registry::Registry;

/// How long shutdown waits for sessions to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Settings of a hub.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Protocol settings of each connection (timeouts, frame size limit).
    pub connection: vidcast_proto::HubConfig,
    /// Latency samples kept per stream for percentiles.
    pub latency_window: usize,
    /// How long an offline stream keeps its tile (and id) before it is forgotten.
    pub offline_keep: Duration,
    /// Client, viewer, handshake, frame-rate and idle limits.
    pub limits: Limits,
    /// Tokens for publishers and the web side.
    pub auth: Arc<Auth>,
    /// Accept the original Python client's stream on the ingest port (told apart by its
    /// first bytes). Refused when a token is required: that format cannot carry one.
    pub accept_legacy: bool,
    /// Serve both the ingest and the web port over TLS only, with this identity.
    pub tls: Option<TlsIdentity>,
    /// Push every live stream to these RTMP addresses (`{name}`: the stream's name).
    pub restream: Vec<vidcast_rtmp::UrlTemplate>,
    /// Record every stream to files (`serve --record`).
    pub record: Option<vidcast_record::RecordConfig>,
    /// Host names the web side answers to besides IP addresses, `localhost` and this
    /// machine's name (`serve --allowed-host`; see `web_guard`).
    pub allowed_hosts: Vec<String>,
    /// Let restream targets added through the API push to private and loopback addresses
    /// (`serve --restream-allow-private`); `--restream` targets may always.
    pub restream_allow_private: bool,
    /// Serve every H.264 stream to RTSP players on this address (`serve --rtsp`).
    pub rtsp: Option<SocketAddr>,
    /// Where the hub keeps what outlives it (`serve --state-dir`): stream ids by name, so a
    /// returning client keeps its id across restarts (see [`crate::ids`]). Without it, the
    /// `--record` directory; with neither, ids last as long as the hub.
    pub state_dir: Option<std::path::PathBuf>,
}

impl HubOptions {
    /// The directory for state that outlives the hub, if any (see [`HubOptions::state_dir`]).
    pub fn state_dir(&self) -> Option<&std::path::Path> {
        self.state_dir
            .as_deref()
            .or_else(|| self.record.as_ref().map(|r| r.dir.as_path()))
    }

    /// The registry these options ask for: limits, latency window, remembered ids.
    fn registry(&self) -> Registry {
        let ids = self.state_dir().map_or_else(
            crate::stream::ids::RememberedIds::none,
            crate::stream::ids::RememberedIds::load,
        );
        Registry::with_limits(self.latency_window, &self.limits).remembering(ids)
    }
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            connection: vidcast_proto::HubConfig::default(),
            latency_window: 4096,
            offline_keep: Duration::from_secs(600),
            limits: Limits::default(),
            auth: Arc::new(Auth::open()),
            accept_legacy: true,
            tls: None,
            restream: Vec::new(),
            record: None,
            allowed_hosts: Vec::new(),
            restream_allow_private: false,
            rtsp: None,
            state_dir: None,
        }
    }
}

/// What the web side (API, wall, browser publishers, MJPEG) shares; the ingest port's sessions
/// and the viewers take only their parts (`ingest`, `viewing`).
pub(crate) struct Shared {
    pub(crate) registry: Arc<Registry>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Admission and bounds: limits, tokens, limit counters, pending handshakes.
    pub(crate) access: Arc<Access>,
    /// What publisher sessions need (browser publishers come in through the web port).
    pub(crate) ingest: Arc<IngestContext>,
    /// What viewers need (MJPEG and the wall count as viewers).
    pub(crate) viewing: Arc<ViewContext>,
    /// Where streams are restreamed (`--restream` and the API).
    pub(crate) restream: Arc<crate::egress::restream::Targets>,
    /// Let restream targets added through the API push to private addresses.
    pub(crate) restream_allow_private: bool,
    /// The recorders, when the hub records.
    pub(crate) recordings: Option<Arc<Recordings>>,
    /// The web wall's stream list, built once per tick for every wall socket.
    pub(crate) wall: Arc<crate::serve::wall::WallFeed>,
    /// Turns true when the hub stops: sessions outside the accept loop's tasks (browser
    /// publishers on the web port) say goodbye on it.
    pub(crate) stop: watch::Receiver<bool>,
}

/// Runs a hub on already-bound listeners until `shutdown` completes, then says goodbye to every
/// client and returns within about two seconds.
pub async fn run(
    ingest: TcpListener,
    http: Option<TcpListener>,
    options: HubOptions,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let registry = Arc::new(options.registry());
    run_with_registry(ingest, http, options, clock, registry, shutdown).await
}

async fn run_with_registry(
    ingest: TcpListener,
    http: Option<TcpListener>,
    options: HubOptions,
    clock: Arc<dyn Clock>,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let restream = Arc::new(crate::egress::restream::Targets::new(
        options.restream.clone(),
    ));
    let recordings = options.record.clone().map(|config| {
        Arc::new(Recordings::new(
            config,
            Arc::clone(&registry),
            Arc::clone(&clock),
        ))
    });
    // Not in `tasks`: shutdown waits for it separately, after the sessions have ended.
    let recorder_task = recordings
        .as_ref()
        .map(|r| tokio::spawn(Arc::clone(r).run()));
    let frame_budget = Arc::new(crate::access::limits::FrameBudget::new(
        options.limits.frame_budget_bytes,
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let access = Arc::new(Access {
        limits: options.limits,
        auth: Arc::clone(&options.auth),
        tls: options.tls.is_some(),
        allowed_hosts: options.allowed_hosts.clone(),
        hits: registry.limit_hits(),
        pending: PendingConnections::default(),
        refused: std::sync::atomic::AtomicU64::new(0),
        frame_budget,
    });
    let viewing = Arc::new(ViewContext::new(
        Arc::clone(&registry),
        Arc::clone(&clock),
        Arc::clone(&access),
    ));
    let ingest_context = Arc::new(IngestContext {
        registry: Arc::clone(&registry),
        clock: Arc::clone(&clock),
        access: Arc::clone(&access),
        connection: options.connection,
        accept_legacy: options.accept_legacy,
        tls: options.tls.clone(),
        viewing: Arc::clone(&viewing),
    });
    let shared = Arc::new(Shared {
        stop: stop_rx.clone(),
        access,
        registry,
        clock,
        ingest: Arc::clone(&ingest_context),
        viewing: Arc::clone(&viewing),
        recordings,
        restream,
        restream_allow_private: options.restream_allow_private,
        wall: Arc::default(),
    });
    let mut tasks = JoinSet::new();
    if let Some(listener) = http {
        let addr = listener.local_addr()?;
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        info!("web wall on {scheme}://{addr}/ (API: {scheme}://{addr}/api/streams)");
        let mut stop = stop_rx.clone();
        let stopped = async move {
            let _ = stop.wait_for(|&s| s).await;
        };
        tasks.spawn(Arc::clone(&shared.wall).run(Arc::clone(&shared), stop_rx.clone()));
        let app = http::router(Arc::clone(&shared));
        let tls = options.tls.as_ref().map(TlsIdentity::acceptor);
        tasks.spawn(crate::serve::webport::serve(
            listener,
            app,
            tls,
            Arc::clone(&shared.access),
            stopped,
        ));
    }
    if options.tls.is_some() && options.accept_legacy {
        info!(
            "TLS is on: the original Python client's format is not accepted (it cannot speak TLS)"
        );
    }
    if let Some(addr) = options.rtsp {
        let listener = TcpListener::bind(addr).await?;
        info!("RTSP on rtsp://{}/NAME", listener.local_addr()?);
        tasks.spawn(crate::serve::rtsp::run(
            listener,
            Arc::clone(&viewing),
            stop_rx.clone(),
        ));
    }
    info!("hub listening for clients on {}", ingest.local_addr()?);
    tasks.spawn(crate::access::auth::watch_file(
        Arc::clone(&shared.access.auth),
        stop_rx.clone(),
    ));
    tasks.spawn(crate::egress::restream::run(
        Arc::clone(&shared.registry),
        Arc::clone(&shared.restream),
        Arc::clone(&shared.clock),
        stop_rx.clone(),
    ));

    tokio::pin!(shutdown);
    let mut prune_ticker = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = prune_ticker.tick() => {
                let refused = shared.access.refused.swap(0, std::sync::atomic::Ordering::Relaxed);
                if refused > 0 {
                    info!("{refused} connections ended before a stream began in the last 10 s (garbage, stalled handshakes, evictions, refusals; details at debug level)");
                }
                let keep_us = u64::try_from(options.offline_keep.as_micros()).unwrap_or(u64::MAX);
                let forgotten = shared.registry.prune(shared.clock.now_us().saturating_sub(keep_us));
                if forgotten > 0 {
                    info!("forgot {} offline for over {:?}", crate::human::plural(forgotten as u64, "stream"), options.offline_keep);
                }
                // Memory freed by a burst goes back to the system, not kept at its peak.
                tokio::task::spawn_blocking(crate::memory::give_back);
            }
            accepted = ingest.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        warn!("client {peer}: cannot set TCP_NODELAY: {e}");
                    }
                    tasks.spawn(session::run(stream, peer, Arc::clone(&ingest_context), stop_rx.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished sessions so the set does not grow with every connection ever made.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(ingest);
    let live = shared.registry.live_count();
    info!(
        "shutting down: saying goodbye to {}",
        crate::human::plural(live as u64, "client")
    );
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            "{} connections did not close within {SHUTDOWN_GRACE:?}; dropping them",
            tasks.len()
        );
        tasks.abort_all();
    }
    if let Some(recordings) = &shared.recordings {
        recordings.shutdown().await;
    }
    if let Some(task) = recorder_task {
        let _ = task.await;
    }
    info!("hub stopped");
    Ok(())
}

/// A hub running in the background of this process (for `demo`, `bench` and tests).
pub struct RunningHub {
    /// Where publishers connect.
    pub ingest_addr: SocketAddr,
    /// Where the web API listens, if it does.
    pub http_addr: Option<SocketAddr>,
    /// The hub's book of streams.
    pub registry: Arc<Registry>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl RunningHub {
    /// Starts a hub on the current tokio runtime, on already-bound listeners.
    pub fn start(
        ingest: TcpListener,
        http: Option<TcpListener>,
        options: HubOptions,
        clock: Arc<dyn Clock>,
    ) -> io::Result<Self> {
        let ingest_addr = ingest.local_addr()?;
        let http_addr = http.as_ref().map(TcpListener::local_addr).transpose()?;
        let registry = Arc::new(options.registry());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run_with_registry(
            ingest,
            http,
            options,
            clock,
            Arc::clone(&registry),
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(Self {
            ingest_addr,
            http_addr,
            registry,
            stop: Some(stop),
            task,
        })
    }

    /// Shuts the hub down gracefully and waits for it.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(io::Error::other(format!("hub task failed: {e}"))),
        }
    }
}
