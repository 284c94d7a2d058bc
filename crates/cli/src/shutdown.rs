//! Ctrl-C and SIGTERM as a future.

use std::future::Future;

/// Completes on Ctrl-C or SIGTERM. Called inside a runtime, the handlers are installed at
/// once, not when the future is first polled, so a signal that arrives while the caller is
/// still connecting is not fatal; called outside one, at the first poll.
pub fn signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let install = || {
            (
                signal(SignalKind::interrupt()).ok(),
                signal(SignalKind::terminate()).ok(),
            )
        };
        let eager = tokio::runtime::Handle::try_current().is_ok().then(install);
        async move {
            let (interrupt, terminate) = eager.unwrap_or_else(install);
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => tracing::info!("Ctrl-C: shutting down"),
                () = wait(terminate) => tracing::info!("SIGTERM: shutting down"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C: shutting down");
        } else {
            std::future::pending::<()>().await;
        }
    }
}
