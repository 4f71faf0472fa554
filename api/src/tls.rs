//! HTTPS (README, "TLS"): rustls with a certificate read from PEM files and
//! picked up again when the files change, so a renewed certificate needs no
//! restart. Connections already open keep the certificate they started with.
//!
//! warp 0.4 has no TLS of its own, so this is its serve loop with a TLS
//! handshake in front: accept, handshake (bounded in time), then hyper
//! serves the routes on the encrypted stream, with graceful shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};
use warp::{Filter, Rejection, Reply};

use crate::watch::Watched;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for open connections to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate and key, watched.
pub struct Tls {
    key: Arc<Watched<CertifiedKey>>,
}

impl Tls {
    /// Reads the certificate chain and private key (PEM); an error says
    /// which file is wrong and how.
    pub fn load(cert: PathBuf, key: PathBuf) -> Result<Self, String> {
        Watched::open("TLS certificate and key", vec![cert, key], load_key).map(|w| Tls { key: Arc::new(w) })
    }

    /// The watched files, for the thread that re-reads them.
    pub(crate) fn watched(&self) -> Arc<Watched<CertifiedKey>> {
        self.key.clone()
    }

    fn server_config(&self) -> Result<Arc<ServerConfig>, String> {
        // AES-128-GCM first, and the server's order over the client's: 10 AES
        // rounds a block against AES-256's 14, for both ends, and a response
        // is up to a few MB.
        let mut provider = ring::default_provider();
        provider.cipher_suites.sort_by_key(|suite| match suite.suite() {
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 1,
            _ => 2,
        });
        let config = ServerConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_no_client_auth();
        let mut config = config.with_cert_resolver(Arc::new(Resolver(self.key.clone())));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.ignore_client_order = true;
        Ok(Arc::new(config))
    }
}

/// Hands every handshake the key pair as last loaded.
struct Resolver(Arc<Watched<CertifiedKey>>);

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }
}

/// Loads `[cert, key]`: a non-empty chain and a private key that matches its
/// first certificate.
fn load_key(paths: &[PathBuf]) -> Result<CertifiedKey, String> {
    let (cert, key) = (&paths[0], &paths[1]);
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls_cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("tls_cert {}: no PEM certificate in it", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls_key {}: {e}", key.display()))?;
    CertifiedKey::from_der(chain, private, &ring::default_provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("tls_key {} does not match the certificate in tls_cert {}", key.display(), cert.display())
        }
        e => format!("tls_key {}: {e}", key.display()),
    })
}

/// Serves `routes` over HTTPS on `listener` until `shutdown` resolves, then
/// lets open connections finish (up to [`DRAIN_TIMEOUT`]).
pub async fn serve<F, R>(
    routes: F,
    listener: tokio::net::TcpListener,
    tls: &Tls,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String>
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let acceptor = TlsAcceptor::from(tls.server_config()?);
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "Accepting a connection failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (acceptor, builder, watcher) = (acceptor.clone(), builder.clone(), graceful.watcher());
        let service = TowerToHyperService::new(warp::service(routes.clone()));
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed."),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out."),
            };
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %e, "Connection ended with an error.");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("Connections still open after {DRAIN_TIMEOUT:?}; closing them.");
    }
    Ok(())
}
