//! The certificate DNS over TLS and DNS over HTTPS present: rustls with the ring
//! provider (as the HTTPS probes use it), built from PEM files when a snapshot is
//! loaded. It lives in the snapshot, so a reload that reads a new certificate swaps
//! it in with the rest, a certificate that does not load rejects the reload (the old
//! one keeps serving), and each new connection takes the one serving at its accept.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

pub use crate::answer::snapshot::ServerTls;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Why a certificate or key did not load; `app` puts it at the config line that
/// names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate file {}: {reason}", path.display())]
    Cert { path: PathBuf, reason: String },
    #[error("key file {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("certificate {} and key {}: {reason}", cert.display(), key.display())]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// Reads the PEM certificate chain (leaf first) and private key.
pub fn load(cert_file: &Path, key_file: &Path) -> Result<ServerTls, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: cert_file.to_path_buf(),
        reason,
    };
    let key_err = |reason: String| TlsError::Key {
        path: key_file.to_path_buf(),
        reason,
    };
    let cert_pem = std::fs::read(cert_file).map_err(|e| cert_err(format!("cannot read: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("not PEM certificates: {e}")))?;
    let Some(leaf) = chain.first().cloned() else {
        return Err(cert_err(
            "no \"BEGIN CERTIFICATE\" block: give the server certificate, then its intermediates"
                .to_string(),
        ));
    };
    let key_pem = std::fs::read(key_file).map_err(|e| key_err(format!("cannot read: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| key_err(format!("no PEM private key (PKCS#8, RSA or EC) found: {e}")))?;
    let build = |alpn: &[&[u8]]| -> Result<Arc<ServerConfig>, TlsError> {
        let mut cfg = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_no_client_auth()
                    .with_single_cert(chain.clone(), key.clone_key())
            })
            .map_err(|e| TlsError::Pair {
                cert: cert_file.to_path_buf(),
                key: key_file.to_path_buf(),
                reason: e.to_string(),
            })?;
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    };
    Ok(ServerTls {
        dot: build(&[b"dot"])?,
        doh: build(&[b"h2", b"http/1.1"])?,
        leaf,
    })
}

/// The server side of a TLS handshake on an accepted connection, done `by` (accept
/// plus `handshake_timeout`); `None` without a certificate or when the handshake
/// fails or is too slow.
pub(super) async fn handshake(
    stream: TcpStream,
    config: Option<Arc<ServerConfig>>,
    by: tokio::time::Instant,
) -> Option<TlsStream<TcpStream>> {
    let config = config?;
    let _ = stream.set_nodelay(true);
    tokio::time::timeout_at(by, TlsAcceptor::from(config).accept(stream))
        .await
        .ok()?
        .ok()
}
