//! The hub `vidcast bench` starts in its own process, with the limits lifted that one load
//! generator on one address would otherwise (rightly) hit.

use std::sync::Arc;

use anyhow::{Context, Result};
use vidcast_hub::{HubOptions, RunningHub};
use vidcast_media::Clock;

use super::BenchArgs;

/// The hub's own runtime: its threads are named "vidcast-hub" so `measure::CpuTimes` can tell
/// the hub's CPU time from the load generator's.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vidcast-hub")
        .enable_all()
        .build()
        .context("cannot start the hub runtime")
}

/// Starts a hub in this process on 127.0.0.1:0 (its tasks on `runtime`, whose threads are
/// named "vidcast-hub" so their CPU time can be told apart), with the limits lifted that a
/// load generator on one address would otherwise (rightly) hit: `publishers` streams and
/// `viewers` HTTP viewers from 127.0.0.1.
pub(super) fn start(
    args: &BenchArgs,
    runtime: &tokio::runtime::Runtime,
    clock: Arc<dyn Clock>,
    publishers: usize,
    viewers: usize,
) -> Result<RunningHub> {
    let _guard = runtime.enter();
    let ingest = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind the hub")?;
    ingest.set_nonblocking(true)?;
    let ingest = tokio::net::TcpListener::from_std(ingest)?;
    let mut options = HubOptions {
        latency_window: 16_384,
        record: args.record.config()?,
        ..args.hub_args.options()?
    };
    // The load generator is one address sending as fast as asked: lift the limits that
    // would otherwise (rightly) bite.
    options.limits.max_fps = f64::INFINITY;
    options.limits.max_clients = options.limits.max_clients.max(publishers);
    options.limits.max_publishers_per_ip = options.limits.max_publishers_per_ip.max(publishers);
    options.limits.max_viewers = options.limits.max_viewers.max(viewers + 1);
    // Every viewer is one HTTP connection from 127.0.0.1.
    options.limits.max_http_connections_per_ip =
        options.limits.max_http_connections_per_ip.max(viewers + 16);
    options.limits.max_http_connections = options.limits.max_http_connections.max(viewers + 16);
    // Room for the publishers' own handshakes; a --flood beyond it is evicted, as it
    // would be in production.
    options.limits.max_pending_per_ip = options.limits.max_pending_per_ip.max(publishers + 16);
    options.limits.max_pending = options
        .limits
        .max_pending
        .max(options.limits.max_pending_per_ip);
    let http = if viewers > 0 {
        let http = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind HTTP")?;
        http.set_nonblocking(true)?;
        Some(tokio::net::TcpListener::from_std(http)?)
    } else {
        None
    };
    Ok(RunningHub::start(ingest, http, options, clock)?)
}

/// Many publishers need many sockets: lift the soft descriptor limit to the hard one.
pub(super) fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass, which lives on the stack.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
