//! rustls configurations from PEM text, all on the ring provider.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::PkiError;

// ring, not aws-lc-rs: ring is already in the build and needs no C
// toolchain beyond cc; its "no post-quantum key exchange" deprecation does
// not matter inside a lab cluster.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM text (`what` names it in errors).
pub fn certificates(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::invalid(what, e))?;
    if certs.is_empty() {
        return Err(PkiError::invalid(what, "no certificate in PEM"));
    }
    Ok(certs)
}

fn private_key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::invalid(what, e))
}

fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, PkiError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_pem, "CA certificate")? {
        roots.add(cert)?;
    }
    Ok(Arc::new(roots))
}

/// Whether a server asks clients for certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Asked for, verified against the CA if given, not required (the API
    /// server: bearer tokens come without one).
    Optional,
    /// Required and verified (the kubelet: only the control plane calls).
    Required,
}

/// A server presenting `cert_pem`/`key_pem`, verifying client
/// certificates against `ca_pem`, offering `alpn` protocols.
pub fn server(
    cert_pem: &str,
    key_pem: &str,
    ca_pem: &str,
    client_auth: ClientAuth,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider());
    let verifier = match client_auth {
        ClientAuth::Optional => verifier.allow_unauthenticated(),
        ClientAuth::Required => verifier,
    }
    .build()
    .map_err(|e| PkiError::invalid("client verifier", e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certificates(cert_pem, "serving certificate")?,
            private_key(key_pem, "serving key")?,
        )?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client trusting `ca_pem` only, presenting `identity` (certificate
/// and key PEM) when given.
pub fn client(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, PkiError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem)?);
    let mut config = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(
            certificates(cert, "client certificate")?,
            private_key(key, "client key")?,
        )?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The files of the admin's client certificate and key in a PKI folder.
pub const ADMIN_CERT: &str = "admin.crt";
/// See [`ADMIN_CERT`].
pub const ADMIN_KEY: &str = "admin.key";

/// A client of the API as the cluster's admin, from the control plane's
/// PKI folder (its CA and the admin certificate), speaking HTTP/1.1.
pub fn admin_client(pki_dir: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, PkiError> {
    let read = |name: &str| {
        let path = pki_dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| PkiError::Io {
            path: path.display().to_string(),
            source,
        })
    };
    client(
        &read(crate::ca::CA_CERT)?,
        Some((&read(ADMIN_CERT)?, &read(ADMIN_KEY)?)),
        &[b"http/1.1"],
    )
}

/// A blocking TLS stream to `addr` (`host:port`), the server's
/// certificate checked for `host`.
pub fn connect_blocking(
    config: Arc<rustls::ClientConfig>,
    addr: &str,
    timeout: std::time::Duration,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>> {
    use std::net::ToSocketAddrs;
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let (host, _) = addr
        .rsplit_once(':')
        .ok_or_else(|| invalid(format!("{addr}: no port")))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let name = rustls::pki_types::ServerName::try_from(host).map_err(|e| invalid(e.to_string()))?;
    let target = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid(format!("{addr}: no address")))?;
    let tcp = std::net::TcpStream::connect_timeout(&target, timeout)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    let connection =
        rustls::ClientConnection::new(config, name).map_err(|e| invalid(e.to_string()))?;
    Ok(rustls::StreamOwned::new(connection, tcp))
}
