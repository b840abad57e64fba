//! TLS for the inference APIs (rustls with ring, as the rest of the daemon): the server
//! configuration from PEM files, and the accept loop of the HTTP API over TLS.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The certificate chain and key of `cert` and `key` (PEM).
pub(crate) struct Identity {
    pub(crate) cert_pem: Vec<u8>,
    pub(crate) key_pem: Vec<u8>,
    pub(crate) config: Arc<rustls::ServerConfig>,
}

/// Reads and checks the PEM files; the rustls configuration of the HTTP API (HTTP/1.1).
pub(crate) fn load(cert: &Path, key: &Path) -> anyhow::Result<Identity> {
    let cert_pem =
        std::fs::read(cert).with_context(|| format!("serving.tls_cert {}", cert.display()))?;
    let key_pem =
        std::fs::read(key).with_context(|| format!("serving.tls_key {}", key.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("serving.tls_cert {}: not PEM certificates", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("serving.tls_cert {} holds no certificate", cert.display());
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .with_context(|| format!("serving.tls_key {}: not a PEM private key", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .context("serving.tls_cert and serving.tls_key do not make a TLS identity")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity {
        cert_pem,
        key_pem,
        config: Arc::new(config),
    })
}

/// Serves `app` over TLS on `listener` until `stop`: one task per connection, so a slow
/// handshake holds up no one else.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    config: Arc<rustls::ServerConfig>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let tcp = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return debug!(error = %e, "TLS handshake failed"),
                Err(_) => return debug!("TLS handshake timed out"),
            };
            let service = TowerToHyperService::new(app);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(error = %e, "HTTPS connection ended");
            }
        });
    }
}
