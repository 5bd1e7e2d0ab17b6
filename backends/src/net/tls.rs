//! Mutual TLS for internal links. Every node holds the CA certificate, its own
//! certificate and key (made by `pluto pki`); a link is accepted only when the peer's
//! certificate chains to that CA, in both directions. The peer's node name is the DNS
//! name its certificate was issued for.

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeTlsError {
    #[error("reading {path}: {reason}")]
    Pem { path: String, reason: String },
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("TLS handshake with {peer}: {source}")]
    Handshake {
        peer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid node name {0:?}")]
    Name(String),
    /// The peer named itself as a node its certificate was not issued for.
    #[error("peer says it is {claimed:?}, but its certificate is not issued for that name")]
    Impostor { claimed: String },
}

/// Checks that the name a peer gave in its hello is a name its client certificate was
/// issued for: any node of the CA must not be able to speak as another node.
pub fn verify_peer_name(
    stream: &tokio_rustls::TlsStream<TcpStream>,
    claimed: &str,
) -> Result<(), NodeTlsError> {
    let impostor = || NodeTlsError::Impostor {
        claimed: claimed.to_owned(),
    };
    let (_, conn) = stream.get_ref();
    let cert = conn
        .peer_certificates()
        .and_then(|certs| certs.first())
        .ok_or_else(impostor)?;
    let cert = webpki::EndEntityCert::try_from(cert).map_err(|_| impostor())?;
    let name = ServerName::try_from(claimed).map_err(|_| impostor())?;
    cert.verify_is_valid_for_subject_name(&name)
        .map_err(|_| impostor())
}

/// A node's TLS identity and trust: what it needs to dial and to accept internal links.
#[derive(Clone)]
pub struct NodeTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, NodeTlsError> {
    let err = |reason: String| NodeTlsError::Pem {
        path: path.display().to_string(),
        reason,
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    Ok(certs)
}

impl NodeTls {
    /// Loads the CA certificate and this node's certificate and key (PEM files).
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<NodeTls, NodeTlsError> {
        let ca_certs = certs(ca)?;
        let chain = certs(cert)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| NodeTlsError::Pem {
            path: key.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut roots = RootCertStore::empty();
        for c in ca_certs {
            roots
                .add(c)
                .map_err(|e| NodeTlsError::Config(format!("CA certificate: {e}")))?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| NodeTlsError::Config(e.to_string()))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| NodeTlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| NodeTlsError::Config(e.to_string()))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| NodeTlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| NodeTlsError::Config(e.to_string()))?;
        Ok(NodeTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }

    /// Accepts an internal link; the peer must present a certificate of our CA.
    pub async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::TlsStream<TcpStream>, NodeTlsError> {
        let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        self.acceptor
            .accept(tcp)
            .await
            .map(tokio_rustls::TlsStream::Server)
            .map_err(|source| NodeTlsError::Handshake { peer, source })
    }

    /// Dials a node, checking that its certificate names `node`.
    pub async fn connect(
        &self,
        node: &str,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::TlsStream<TcpStream>, NodeTlsError> {
        let name = ServerName::try_from(node.to_owned())
            .map_err(|_| NodeTlsError::Name(node.to_owned()))?;
        self.connector
            .connect(name, tcp)
            .await
            .map(tokio_rustls::TlsStream::Client)
            .map_err(|source| NodeTlsError::Handshake {
                peer: node.to_owned(),
                source,
            })
    }
}
