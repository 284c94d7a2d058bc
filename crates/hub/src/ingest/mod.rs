//! Frames coming in: one session per publisher connection on the ingest port (`session`),
//! the original Python clients' pickle protocol (`legacy`), and browsers publishing over the
//! web port's WebSocket (`browser`), all feeding the same registry.

pub(crate) mod browser;
pub(crate) mod legacy;
pub(crate) mod session;

use std::sync::Arc;

use vidcast_media::Clock;

use crate::access::tls::TlsIdentity;
use crate::access::Access;
use crate::serve::viewers::ViewContext;
use crate::stream::registry::Registry;

/// What a connection on the ingest port (and a browser publisher) needs of the hub, and
/// nothing more.
pub(crate) struct IngestContext {
    /// Where publishers register their streams and frames.
    pub(crate) registry: Arc<Registry>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Limits, tokens, pending handshakes, the frame budget.
    pub(crate) access: Arc<Access>,
    /// Protocol settings of each connection (timeouts, frame size limit).
    pub(crate) connection: vidcast_proto::HubConfig,
    /// Whether the original Python client's format is sniffed for on the ingest port.
    pub(crate) accept_legacy: bool,
    /// The port speaks TLS only, with this identity.
    pub(crate) tls: Option<TlsIdentity>,
    /// Native viewers arrive on the same port: what they need once their hello says so.
    pub(crate) viewing: Arc<ViewContext>,
}
