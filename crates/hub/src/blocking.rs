//! CPU-heavy work (decoding, encoding) off the async workers, on tokio's blocking pool.

/// Runs `work` on `state` on the blocking pool and hands both back (a transcoder keeps its
/// decoder state between frames). `None` if the work panicked; the state is lost with it.
pub(crate) async fn run_with<S, R>(
    state: S,
    work: impl FnOnce(&mut S) -> R + Send + 'static,
) -> Option<(S, R)>
where
    S: Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let mut state = state;
        let result = work(&mut state);
        (state, result)
    })
    .await
    .ok()
}
