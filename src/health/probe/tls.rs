//! TLS for HTTPS probes: rustls with the ring provider, certificates checked
//! against the bundled web PKI roots unless a check says `verify = false`.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::ProbeError;

/// Client configurations are built once per process: loading ~150 roots for every
/// probe would cost more than the probe. The error, if any, is kept as text so that
/// every probe reports it.
static VERIFYING: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
static NOT_VERIFYING: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();

fn config(verify: bool) -> Result<Arc<ClientConfig>, ProbeError> {
    let cell = if verify { &VERIFYING } else { &NOT_VERIFYING };
    cell.get_or_init(|| build(verify).map_err(|e| e.to_string()))
        .clone()
        .map_err(ProbeError::TlsSetup)
}

fn build(verify: bool) -> Result<Arc<ClientConfig>, rustls::Error> {
    // The provider is named explicitly rather than installed process-wide, so the
    // health module neither depends on nor changes what other code installs.
    let provider = Arc::new(crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut cfg = if verify {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateCheck { provider }))
            .with_no_client_auth()
    };
    // We speak only HTTP/1.1; say so, so that a server never picks HTTP/2.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Connects TLS over `stream`, sending `name` as SNI (a DNS name, or an address,
/// for which rustls sends no SNI and checks the certificate's IP SANs).
pub(super) async fn handshake(
    stream: TcpStream,
    name: &str,
    verify: bool,
) -> Result<TlsStream<TcpStream>, ProbeError> {
    let cfg = config(verify)?;
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|_| ProbeError::BadCheck(format!("TLS server name {name:?}")))?;
    TlsConnector::from(cfg)
        .connect(server_name, stream)
        .await
        .map_err(ProbeError::Tls)
}

/// Accepts any certificate, for `verify = false`: endpoints known only by address
/// usually present a certificate for a name we do not know, and the check is about
/// the service answering, not about its identity. The handshake signatures are still
/// checked, so the peer must hold the key of the certificate it sent.
#[derive(Debug)]
struct NoCertificateCheck {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_configurations_build() {
        assert!(config(true).is_ok());
        assert!(config(false).is_ok());
    }
}
