//! The TLS flags of the commands that connect to a hub (`send`, `view`).

use anyhow::{bail, Result};
use clap::Args;

/// How to trust a hub's certificate.
#[derive(Args, Debug, Clone)]
pub struct TlsFlags {
    /// Speak TLS and accept exactly the hub certificate with this SHA-256 fingerprint (hex,
    /// colons optional; `vidcast cert` and `vidcast serve` print it).
    #[arg(long, value_name = "SHA256", conflicts_with = "tls_ca")]
    pub tls_fingerprint: Option<vidcast_client::Fingerprint>,
    /// Speak TLS and verify the hub's certificate and name against this CA certificate (PEM).
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Speak TLS (needs --tls-fingerprint or --tls-ca: this build trusts no system roots).
    #[arg(long)]
    pub tls: bool,
}

impl TlsFlags {
    /// Whether any TLS flag was given.
    pub fn is_requested(&self) -> bool {
        self.tls || self.tls_fingerprint.is_some() || self.tls_ca.is_some()
    }

    /// The TLS setup the flags ask for to reach `hub`, if any.
    pub fn client_tls(&self, hub: &str) -> Result<Option<vidcast_client::ClientTls>> {
        let trust = match (&self.tls_fingerprint, &self.tls_ca) {
            (Some(fingerprint), _) => vidcast_client::TlsTrust::Pinned(*fingerprint),
            (None, Some(ca)) => vidcast_client::TlsTrust::Ca(vidcast_client::tls::load_ca(ca)?),
            (None, None) if self.tls => bail!(
                "--tls needs --tls-fingerprint SHA256 (printed by `vidcast cert` and `vidcast serve`) or --tls-ca PEM: this build trusts no system certificate store"
            ),
            (None, None) => return Ok(None),
        };
        let host = vidcast_client::host_of(hub);
        Ok(Some(vidcast_client::ClientTls::new(trust, host)?))
    }
}
