//! TLS for the ingest and web ports (rustls on the ring provider): loading a certificate and key
//! from PEM, and making a self-signed pair (`vidcast cert`). The web port's handshakes run in
//! `webport.rs` (under its connection caps and header deadline).
//!
//! TLS wraps the same byte stream; nothing in the protocol changes. No ALPN is negotiated.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

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
    /// The last day it is valid (UTC, midnight), as (year, month, day).
    pub not_after: (i32, u8, u8),
}

/// How long a certificate from [`SelfSigned::generate`] is valid.
pub const DEFAULT_CERT_DAYS: u32 = 365;

/// The civil date (UTC) `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month as u8, day as u8)
}

impl SelfSigned {
    /// Makes a certificate for `names` (host names or IP addresses) with a new ECDSA P-256 key,
    /// valid for [`DEFAULT_CERT_DAYS`].
    pub fn generate(names: &[String]) -> Result<Self, TlsError> {
        Self::generate_for(names, DEFAULT_CERT_DAYS, SystemTime::now())
    }

    /// [`SelfSigned::generate`], valid from the day before `now` (clocks differ) until `days`
    /// after it. rcgen's own default runs to the year 4096: a key that leaks would be good
    /// forever.
    pub fn generate_for(names: &[String], days: u32, now: SystemTime) -> Result<Self, TlsError> {
        let today = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| (d.as_secs() / 86_400) as i64);
        let date = |d: i64| {
            let (y, m, day) = civil_from_days(d);
            rcgen::date_time_ymd(y, m, day)
        };
        let mut params = rcgen::CertificateParams::new(names.to_vec())?;
        params.not_before = date(today - 1);
        params.not_after = date(today + i64::from(days.max(1)));
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            not_after: civil_from_days(today + i64::from(days.max(1))),
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
    fn certificates_last_the_days_asked_for() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_424), (2025, 12, 2));
        assert_eq!(civil_from_days(19_417), (2023, 3, 1));
        // 2026-12-02 plus 365 days.
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(20_789 * 86_400 + 3600);
        let made = SelfSigned::generate_for(&["localhost".to_owned()], 365, now).expect("made");
        assert_eq!(made.not_after, (2027, 12, 2));
        // The validity's two UTCTimes (tag 0x17, 13 bytes "YYMMDDHHMMSSZ") in the DER.
        let der: &[u8] = made.cert_der.as_ref();
        let times: Vec<&[u8]> = der
            .windows(15)
            .filter(|w| w[0] == 0x17 && w[1] == 13 && w[14] == b'Z')
            .map(|w| &w[2..8])
            .collect();
        assert_eq!(times, [&b"261201"[..], &b"271202"[..]]);
    }

    #[test]
    fn missing_files_name_the_path() {
        let err = TlsIdentity::load(Path::new("/nonexistent/c.pem"), Path::new("/nonexistent/k"))
            .expect_err("fails");
        assert!(err.to_string().contains("/nonexistent/c.pem"), "{err}");
    }
}
