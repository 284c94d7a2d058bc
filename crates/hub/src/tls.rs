//! TLS for the ingest and web ports (rustls on the ring provider): loading a certificate and key
//! from PEM, and making a self-signed pair (`vidcast cert`). The web port's handshakes run in
//! `webport.rs` (under its connection caps and header deadline).
//!
//! TLS wraps the same byte stream; nothing in the protocol changes. No ALPN is negotiated.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;
use tokio_rustls::TlsAcceptor;

/// What can go wrong with the hub's certificate and key.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A PEM file could not be read or held nothing usable.
    #[error("cannot read {what} from {path}: {reason}")]
    Pem {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the pair (for example, the key does not match the certificate).
    #[error("unusable certificate and key: {0}")]
    Config(#[from] rustls::Error),
    /// The self-signed certificate could not be made.
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The hub's TLS identity: a ready rustls server configuration and its end-entity certificate.
#[derive(Clone)]
pub struct TlsIdentity {
    config: Arc<rustls::ServerConfig>,
    end_entity: CertificateDer<'static>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("end_entity_len", &self.end_entity.len())
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Loads a certificate chain (end-entity first) and its private key from PEM files.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let pem_error = |what, path: &Path, reason: String| TlsError::Pem {
            what,
            path: path.to_owned(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| pem_error("certificate", cert, e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error("certificate", cert, e.to_string()))?;
        let key_der = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| pem_error("private key", key, e.to_string()))?;
        if chain.is_empty() {
            return Err(pem_error(
                "certificate",
                cert,
                "no CERTIFICATE block".to_owned(),
            ));
        }
        Self::from_der(chain, key_der)
    }

    /// Builds the identity from a DER chain (end-entity first) and key.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        let end_entity = chain.first().cloned().ok_or_else(|| {
            TlsError::Config(rustls::Error::General("empty certificate chain".to_owned()))
        })?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        Ok(Self {
            config: Arc::new(config),
            end_entity,
        })
    }

    /// The end-entity certificate (DER), whose SHA-256 clients pin.
    pub fn end_entity(&self) -> &CertificateDer<'static> {
        &self.end_entity
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.config))
    }
}

/// A freshly made self-signed certificate and its key, both PEM, plus the certificate's DER.
pub struct SelfSigned {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
    /// The certificate, DER (what a fingerprint is taken of).
    pub cert_der: CertificateDer<'static>,
}

impl SelfSigned {
    /// Makes a certificate for `names` (host names or IP addresses) with a new ECDSA P-256 key.
    pub fn generate(names: &[String]) -> Result<Self, TlsError> {
        let certified = rcgen::generate_simple_self_signed(names.to_vec())?;
        Ok(Self {
            cert_pem: certified.cert.pem(),
            key_pem: certified.signing_key.serialize_pem(),
            cert_der: certified.cert.der().clone(),
        })
    }

    /// The same pair as a ready [`TlsIdentity`].
    pub fn identity(&self) -> Result<TlsIdentity, TlsError> {
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| TlsError::Config(rustls::Error::General(format!("generated key: {e}"))))?;
        TlsIdentity::from_der(vec![self.cert_der.clone()], key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_pair_loads_back() {
        let made = SelfSigned::generate(&["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("generates");
        assert!(made.cert_pem.contains("BEGIN CERTIFICATE"));
        assert!(made.key_pem.contains("PRIVATE KEY"));
        let dir = std::env::temp_dir().join(format!("vidcast-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (cert, key) = (dir.join("hub.crt"), dir.join("hub.key"));
        std::fs::write(&cert, &made.cert_pem).expect("write cert");
        std::fs::write(&key, &made.key_pem).expect("write key");
        let identity = TlsIdentity::load(&cert, &key).expect("loads");
        assert_eq!(identity.end_entity(), &made.cert_der);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_files_name_the_path() {
        let err = TlsIdentity::load(Path::new("/nonexistent/c.pem"), Path::new("/nonexistent/k"))
            .expect_err("fails");
        assert!(err.to_string().contains("/nonexistent/c.pem"), "{err}");
    }
}
