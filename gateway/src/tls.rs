//! TLS for the client listeners: rustls with the ring provider, certificates read from
//! PEM with `rustls-pki-types`. `serve` without a configured certificate generates a
//! self-signed one into the data dir at first start and reuses it afterwards
//! ([`client_tls`] picks one or the other). [`node_tls`] loads this process's identity
//! on internal links (mTLS under the cluster's private CA).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::error::GatewayError;

/// Builds the acceptor from PEM files.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, GatewayError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| GatewayError::Tls(format!("reading {}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| GatewayError::Tls(format!("parsing {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(GatewayError::Tls(format!(
            "{} holds no certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| GatewayError::Tls(format!("reading key {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GatewayError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| GatewayError::Tls(format!("certificate and key do not fit: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The self-signed certificate of a `serve` data dir: made at first start (for
/// `localhost`, 127.0.0.1 and ::1), reused afterwards. Returns (cert, key) paths.
pub fn ensure_self_signed(data_dir: &Path) -> Result<(PathBuf, PathBuf), GatewayError> {
    let dir = data_dir.join("tls");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(&dir).map_err(|e| GatewayError::io(dir.display().to_string(), e))?;
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| GatewayError::Tls(format!("generating a self-signed certificate: {e}")))?;
    write(
        &key_path,
        certified.signing_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write(&cert_path, certified.cert.pem().as_bytes(), 0o644)?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed TLS certificate");
    Ok((cert_path, key_path))
}

/// The TLS acceptor for client listeners: the configured certificate, or (for `serve`
/// and trials) a self-signed one generated into the data dir.
pub fn client_tls(config: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>, GatewayError> {
    match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => Ok(Some(acceptor(cert, key)?)),
        (None, None) => {
            let (cert, key) = ensure_self_signed(&config.data_dir)?;
            Ok(Some(acceptor(&cert, &key)?))
        }
        _ => Err(GatewayError::Config(
            "tls.cert and tls.key go together: set both or neither".into(),
        )),
    }
}

/// This process's identity on internal links.
pub fn node_tls(config: &Config) -> Result<pluto_backends::net::NodeTls, GatewayError> {
    let c = &config.cluster;
    if c.name.is_empty() {
        return Err(GatewayError::Config(
            "cluster.name is not set (this node's name)".into(),
        ));
    }
    pluto_backends::net::NodeTls::load(&c.ca(), &c.cert(), &c.key()).map_err(|e| {
        GatewayError::Tls(format!(
            "{e} (make the files with `pluto pki --out {} {}`)",
            c.pki_dir.display(),
            c.name
        ))
    })
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), GatewayError> {
    pluto_backends::fsutil::write_atomic_mode(path, bytes, mode)
        .map_err(|e| GatewayError::io(path.display().to_string(), e))
}
