//! rustls configurations from PEM text, all on the ring provider.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;

use crate::PkiError;
use crate::pem::{certificates, private_key};

// ring, not aws-lc-rs: ring is already in the build and needs no C
// toolchain beyond cc; its "no post-quantum key exchange" deprecation does
// not matter inside a lab cluster.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, PkiError> {
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

/// How a server checks client certificates: against `ca_pem`, and
/// whether a client may come without one.
pub(crate) fn client_verifier(
    ca_pem: &str,
    client_auth: ClientAuth,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, PkiError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider());
    let verifier = match client_auth {
        ClientAuth::Optional => verifier.allow_unauthenticated(),
        ClientAuth::Required => verifier,
    }
    .build()
    .map_err(|e| PkiError::invalid("client verifier", e))?;
    Ok(verifier)
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
    let verifier = client_verifier(ca_pem, client_auth)?;
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

/// A client for a node's first contact with the control plane, when it
/// knows only the CA's hash (kubeadm's `--discovery-token-ca-cert-hash`):
/// the server's chain must carry a certificate whose public key has that
/// `sha256:<hex>` hash, and the server's certificate is then verified
/// against that certificate as the only root, as usual.
pub fn pinned_client(ca_hash: &str, alpn: &[&[u8]]) -> Result<Arc<rustls::ClientConfig>, PkiError> {
    let hash = ca_hash.trim().to_ascii_lowercase();
    if !hash.starts_with("sha256:") || hash.len() != 7 + 64 {
        return Err(PkiError::invalid(
            "CA certificate hash",
            "expected sha256:<64 hex digits>",
        ));
    }
    let verifier = PinnedCa {
        hash,
        provider: provider(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// See [`pinned_client`].
#[derive(Debug)]
struct PinnedCa {
    hash: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| crate::ca::hash_of_der(c).is_ok_and(|h| h == self.hash))
            .ok_or_else(|| {
                rustls::Error::General(format!(
                    "no certificate the server sent matches the CA hash {}",
                    self.hash
                ))
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{Ca, Request, Usage};

    fn serving(ca: &Ca) -> crate::ca::Issued {
        ca.issue(&Request {
            common_name: "kube-apiserver".into(),
            organization: None,
            usage: Usage::Server {
                names: vec!["127.0.0.1".into()],
            },
            valid_for: std::time::Duration::from_secs(3600),
        })
        .expect("serving")
    }

    /// Runs one handshake between `client` and a server presenting
    /// `chain_pem`/`key_pem`; whether the client accepted it.
    fn handshake(
        client: Arc<rustls::ClientConfig>,
        chain_pem: &str,
        key_pem: &str,
        ca: &Ca,
    ) -> Result<(), String> {
        let server = super::server(chain_pem, key_pem, ca.cert_pem(), ClientAuth::Optional, &[])
            .expect("server config");
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let mut c = rustls::ClientConnection::new(client, name).map_err(|e| e.to_string())?;
        let mut s = rustls::ServerConnection::new(server).map_err(|e| e.to_string())?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).map_err(|e| e.to_string())?;
            }
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                s.read_tls(&mut rd).map_err(|e| e.to_string())?;
            }
            s.process_new_packets().map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).map_err(|e| e.to_string())?;
            }
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                c.read_tls(&mut rd).map_err(|e| e.to_string())?;
            }
            c.process_new_packets().map_err(|e| e.to_string())?;
            if !c.is_handshaking() {
                return Ok(());
            }
        }
        Err("handshake did not finish".into())
    }

    #[test]
    fn the_pinned_ca_is_trusted_and_no_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let other_dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::load_or_create(dir.path()).expect("ca");
        let other = Ca::load_or_create(other_dir.path()).expect("other ca");
        let leaf = serving(&ca);
        let chain = format!("{}{}", leaf.cert_pem, ca.cert_pem());
        let pinned = pinned_client(&ca.hash(), &[]).expect("client");
        handshake(pinned.clone(), &chain, &leaf.key_pem, &ca).expect("pinned CA accepted");
        // Without the CA in the chain there is nothing to pin.
        let err = handshake(pinned, &leaf.cert_pem, &leaf.key_pem, &ca).expect_err("no CA sent");
        assert!(err.contains("matches the CA hash"), "{err}");
        // Another CA's hash: refused.
        let wrong = pinned_client(&other.hash(), &[]).expect("client");
        let err = handshake(wrong, &chain, &leaf.key_pem, &ca).expect_err("wrong hash");
        assert!(err.contains("matches the CA hash"), "{err}");
        // A server of another CA sending a CA with the pinned hash would
        // need the pinned CA's key; a leaf of another CA beside the pinned
        // CA is refused by the normal verification.
        let forged = serving(&other);
        let chain = format!("{}{}", forged.cert_pem, ca.cert_pem());
        let pinned = pinned_client(&ca.hash(), &[]).expect("client");
        assert!(handshake(pinned, &chain, &forged.key_pem, &other).is_err());
        assert!(pinned_client("sha256:abc", &[]).is_err());
    }
}
