//! A client TLS configuration that trusts one certificate file (the self-signed one
//! `pluto serve` generates, or a test CA), and the handshake with it.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A connector that trusts the PEM certificates in `cert` and nothing else.
pub fn trusting(cert: &Path) -> io::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| io::Error::other(format!("{}: {e}", cert.display())))?;
    for c in certs {
        let c = c.map_err(|e| io::Error::other(format!("{}: {e}", cert.display())))?;
        roots.add(c).map_err(io::Error::other)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The client side of a handshake on `tcp`, `localhost` as the server name.
pub async fn handshake(
    connector: &TlsConnector,
    tcp: TcpStream,
) -> io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
    connector.connect(name, tcp).await
}
