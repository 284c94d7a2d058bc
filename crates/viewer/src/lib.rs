//! The vidcast viewer: every stream of a hub in one native window as a mosaic (or one window
//! per client), each with a `CLIENT: ip:port name` label on a coloured box and an fps/latency
//! line. Keys: `q` or Escape quits, a number key enlarges one stream (again, or 0, returns).
//!
//! - [`net`]: the viewer's connection to a hub (the protocol's viewer role), with reconnection;
//!   it fills a [`Scene`].
//! - [`scene`]: what is shown, shared between the feeder and the window; newest frame only.
//! - [`mosaic`]: layout, labels and stats drawn on plain pixel buffers (pure, unit-tested).
//! - [`window`]: minifb windows on X11 or Wayland, loaded at run time (nothing to install
//!   to build).
//!
//! Depends on `vidcast-proto`, `vidcast-media` and `vidcast-client` (connecting, backoff);
//! never on the hub (`serve --window` feeds a [`Scene`] from the hub's registry in the CLI).

pub mod decode;
mod error;
pub mod mosaic;
pub mod net;
pub mod scene;
pub mod window;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub use error::ViewError;
pub use net::{watch_hub, ViewOptions, Watcher};
pub use scene::{Scene, StreamMeta, StreamView};
pub use window::{check_display, show, WindowOptions};

use vidcast_media::{Clock, SystemClock};

/// `vidcast view`: watches the hub at `hub` in a window until the user quits, `until`
/// completes (Ctrl-C), or the connection fails for good. The hub connection runs on its own
/// thread; the window on this one (the display wants its windows on the main thread).
pub fn run(
    hub: &str,
    options: ViewOptions,
    window: &WindowOptions,
    until: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ViewError> {
    check_display()?;
    let scene = Arc::new(Scene::default());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let finished = Arc::new(AtomicBool::new(false));
    let outcome: Arc<Mutex<Option<Result<(), ViewError>>>> = Arc::default();
    let network = {
        let (scene, clock, finished, outcome, stop_tx) = (
            Arc::clone(&scene),
            Arc::clone(&clock),
            Arc::clone(&finished),
            Arc::clone(&outcome),
            Arc::clone(&stop_tx),
        );
        let hub = hub.to_owned();
        std::thread::Builder::new()
            .name("vidcast-view-net".into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| ViewError::Thread(format!("cannot start the async runtime: {e}")))
                    .and_then(|rt| {
                        rt.block_on(async move {
                            let watching = watch_hub(&hub, options, scene, clock, stop_rx);
                            tokio::pin!(watching);
                            tokio::select! {
                                result = &mut watching => result,
                                () = until => {
                                    // Say goodbye to the hub before the window closes.
                                    let _ = stop_tx.send(true);
                                    watching.await
                                }
                            }
                        })
                    });
                *outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                finished.store(true, Ordering::Release);
            })
            .map_err(|e| ViewError::Thread(e.to_string()))?
    };
    let shown = show(&scene, window, clock.as_ref(), || {
        finished.load(Ordering::Acquire)
    });
    let _ = stop_tx.send(true);
    if network.join().is_err() {
        return Err(ViewError::Thread("panicked".into()));
    }
    shown?;
    let result = outcome.lock().unwrap_or_else(|p| p.into_inner()).take();
    result.unwrap_or(Ok(()))
}
