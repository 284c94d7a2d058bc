//! vidcast from Python: `Sender` (numpy frames → a hub, through the Rust publisher),
//! `Receiver` (every stream of a hub → numpy frames, through the Rust viewer). No second
//! implementation of the protocol: this crate only moves pixels between numpy and the
//! client crates and turns their errors into Python exceptions with the CLI's messages.
//! The `vidcast` Python package (python/vidcast) wraps this module and adds the imagezmq
//! shims. Depends on `vidcast-client`, `vidcast-viewer`, `vidcast-media` and `vidcast-proto`.

mod lane;
mod pixels;
mod receiver;
mod sender;

use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

pyo3::create_exception!(
    _vidcast,
    VidcastError,
    pyo3::exceptions::PyRuntimeError,
    "A hub could not be reached or refused, or a sender or receiver stopped: the message is the one `vidcast send` or `vidcast view` prints."
);

/// Locks `mutex`, taking the data of a poisoned one (a panicked holder left it whole: every
/// critical section here only assigns).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Checks a hub address the way the CLI does (`host` or `host:port`, not a URL).
pub(crate) fn check_hub(text: &str) -> PyResult<String> {
    let trimmed = text.trim();
    if let Some((scheme, _)) = trimmed.split_once("://") {
        return Err(PyValueError::new_err(format!(
            "{text:?} is a {scheme} URL; hub is host[:port] (default port 9999), e.g. 127.0.0.1:9999"
        )));
    }
    if trimmed.is_empty() || trimmed.contains('/') {
        return Err(PyValueError::new_err(format!(
            "{text:?} is not a hub address; hub is host[:port] (default port 9999), e.g. 127.0.0.1:9999"
        )));
    }
    Ok(trimmed.to_owned())
}

/// TLS pinned to a certificate fingerprint (as `--tls-fingerprint`), or plain TCP.
pub(crate) fn tls_setup(
    hub: &str,
    fingerprint: Option<&str>,
) -> PyResult<Option<vidcast_client::ClientTls>> {
    let Some(text) = fingerprint else {
        return Ok(None);
    };
    let pinned: vidcast_client::Fingerprint = text
        .parse()
        .map_err(|e| PyValueError::new_err(format!("tls_fingerprint: {e}")))?;
    vidcast_client::ClientTls::new(
        vidcast_client::TlsTrust::Pinned(pinned),
        vidcast_client::host_of(hub),
    )
    .map(Some)
    .map_err(|e| VidcastError::new_err(format!("cannot set up TLS: {e}")))
}

/// The extension module behind the `vidcast` package.
#[pymodule]
fn _vidcast(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<sender::Sender>()?;
    m.add_class::<receiver::Receiver>()?;
    m.add_class::<receiver::Stream>()?;
    m.add("VidcastError", m.py().get_type::<VidcastError>())?;
    Ok(())
}
