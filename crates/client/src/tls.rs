//! TLS to the hub (rustls on the ring provider): either pin the hub certificate's SHA-256
//! fingerprint (what `vidcast cert` prints), or verify it against a CA certificate the usual way.
//!
//! A pinned fingerprint accepts exactly one certificate: names, dates and issuers are not
//! checked, since whoever pinned the fingerprint vouched for that very certificate. The
//! handshake signatures are still verified, so only the holder of the private key passes.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }
}

/// Uppercase hex pairs joined by colons, as `openssl x509 -fingerprint -sha256` prints them.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A fingerprint that is not 64 hex digits.
#[derive(Debug, Error)]
#[error("not a SHA-256 fingerprint ({why}): expected 64 hex digits, colons optional")]
pub struct FingerprintParseError {
    why: String,
}

/// Hex, case-insensitive, colons (and a leading `sha256:` / `SHA256=`) optional.
impl FromStr for Fingerprint {
    type Err = FingerprintParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let lower = text.to_ascii_lowercase();
        let body = lower
            .strip_prefix("sha256:")
            .or_else(|| lower.strip_prefix("sha256="))
            .unwrap_or(&lower);
        let digits: Vec<u8> = body.bytes().filter(|&b| b != b':').collect();
        if digits.len() != 64 {
            return Err(FingerprintParseError {
                why: format!("{} hex digits", digits.len()),
            });
        }
        let mut bytes = [0; 32];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            let pair = std::str::from_utf8(pair).unwrap_or("");
            bytes[i] = u8::from_str_radix(pair, 16).map_err(|_| FingerprintParseError {
                why: format!("{pair:?} is not hex"),
            })?;
        }
        Ok(Self(bytes))
    }
}

/// The hub presented a certificate other than the pinned one.
#[derive(Debug, Clone, Error)]
#[error(
    "the hub's certificate has fingerprint {got}, but {expected} was pinned (--tls-fingerprint)"
)]
pub struct FingerprintMismatch {
    /// What was pinned.
    pub expected: Fingerprint,
    /// What the hub presented.
    pub got: Fingerprint,
}

/// Whom to trust.
#[derive(Debug, Clone)]
pub enum TlsTrust {
    /// Exactly the certificate with this fingerprint.
    Pinned(Fingerprint),
    /// Certificates issued for the hub's name by one of these CA certificates (DER).
    Ca(Vec<CertificateDer<'static>>),
}

/// Why a TLS setup could not be made.
#[derive(Debug, Error)]
pub enum TlsSetupError {
    /// The CA file could not be read or held no certificate.
    #[error("cannot read CA certificates from {path}: {reason}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The hub address is not a valid TLS server name.
    #[error("{name:?} is not a valid TLS server name: {reason}")]
    ServerName {
        /// As given.
        name: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Reads every certificate of a PEM file (for [`TlsTrust::Ca`]).
pub fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let ca_error = |reason: String| TlsSetupError::Ca {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| ca_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(ca_error("no CERTIFICATE block".to_owned()));
    }
    Ok(certs)
}

/// A ready TLS client setup for one hub: trust plus the name the hub is known by.
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// A setup trusting `trust`, for a hub known as `server_name` (a host name or IP address;
    /// checked against the certificate only with [`TlsTrust::Ca`]).
    pub fn new(trust: TlsTrust, server_name: &str) -> Result<Self, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?;
        let config = match trust {
            TlsTrust::Pinned(expected) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                    expected,
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth(),
            TlsTrust::Ca(certs) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certs {
                    roots.add(cert)?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        let server_name = ServerName::try_from(server_name.to_owned()).map_err(|e| {
            TlsSetupError::ServerName {
                name: server_name.to_owned(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// Runs the TLS handshake over `stream`.
    pub async fn connect(&self, stream: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.connector
            .connect(self.server_name.clone(), stream)
            .await
    }

    /// Runs the TLS handshake with the hub at `addr` within `timeout`, with errors that say
    /// whose fault it was (a pinned fingerprint that differs names both).
    pub async fn handshake(
        &self,
        stream: TcpStream,
        addr: std::net::SocketAddr,
        timeout: std::time::Duration,
    ) -> Result<TlsStream<TcpStream>, crate::PublishError> {
        use crate::PublishError;
        match tokio::time::timeout(timeout, self.connect(stream)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(source)) => Err(match certificate_problem(&source) {
                Some(Ok(mismatch)) => PublishError::FingerprintMismatch {
                    addr,
                    expected: mismatch.expected.to_string(),
                    got: mismatch.got.to_string(),
                },
                Some(Err(reason)) => PublishError::Certificate { addr, reason },
                None => PublishError::Tls { addr, source },
            }),
            Err(_) => Err(PublishError::Tls {
                addr,
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no TLS handshake within {timeout:?} (does the hub have TLS on?)"),
                ),
            }),
        }
    }
}

/// What a failed TLS handshake says about the certificate, if it was the certificate's fault:
/// the pinned-fingerprint mismatch, or another certificate error. `None` for anything else
/// (a reset, a timeout, a hub that speaks no TLS).
pub(crate) fn certificate_problem(
    error: &std::io::Error,
) -> Option<Result<FingerprintMismatch, String>> {
    let rustls_error = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    let rustls::Error::InvalidCertificate(cert_error) = rustls_error else {
        return None;
    };
    if let CertificateError::Other(OtherError(inner)) = cert_error {
        if let Some(mismatch) = inner.downcast_ref::<FingerprintMismatch>() {
            return Some(Ok(mismatch.clone()));
        }
    }
    Some(Err(rustls_error.to_string()))
}

/// Accepts exactly the certificate with the pinned fingerprint; still checks that the hub
/// signed the handshake with that certificate's key.
#[derive(Debug)]
struct PinnedVerifier {
    expected: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Fingerprint::of(end_entity);
        if got == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(FingerprintMismatch {
                    expected: self.expected,
                    got,
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_parses_with_or_without_colons_in_any_case() {
        let fp = Fingerprint::of(b"certificate");
        let shown = fp.to_string();
        assert_eq!(shown.len(), 64 + 31);
        assert_eq!(shown.parse::<Fingerprint>().expect("colons"), fp);
        assert_eq!(
            shown
                .replace(':', "")
                .to_lowercase()
                .parse::<Fingerprint>()
                .expect("bare lower"),
            fp
        );
        assert_eq!(
            format!("SHA256:{shown}")
                .parse::<Fingerprint>()
                .expect("prefix"),
            fp
        );
    }

    #[test]
    fn bad_fingerprints_say_why() {
        let short = "AB:CD".parse::<Fingerprint>().expect_err("short");
        assert!(short.to_string().contains("4 hex digits"), "{short}");
        let not_hex = "zz".repeat(32).parse::<Fingerprint>().expect_err("not hex");
        assert!(not_hex.to_string().contains("\"zz\""), "{not_hex}");
    }
}
