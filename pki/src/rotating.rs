//! A certificate that can be replaced while servers and clients run on
//! it: the resolvers behind rustls configurations read the current pair
//! at every handshake, so a renewed certificate is used from the next
//! connection on without restarting anything (connections already open
//! keep the certificate they were made with, as upstream's kubelet's).

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::ClientHello;
use rustls::sign::CertifiedKey;

use crate::PkiError;
use crate::pem::{certificates, private_key};
use crate::tls::{ClientAuth, client_verifier, provider, roots};

/// The current certificate and key.
#[derive(Debug)]
pub struct Rotating {
    current: RwLock<Arc<CertifiedKey>>,
}

fn certified(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, PkiError> {
    let chain = certificates(cert_pem, "certificate")?;
    let key = provider()
        .key_provider
        .load_private_key(private_key(key_pem, "key")?)?;
    let certified = CertifiedKey::new(chain, key);
    // A certificate for another key would fail every handshake later;
    // refuse it now, while the pair in use still works.
    certified.keys_match()?;
    Ok(Arc::new(certified))
}

impl Rotating {
    /// Starts with `cert_pem` (the chain) and its `key_pem`.
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<Arc<Self>, PkiError> {
        Ok(Arc::new(Self {
            current: RwLock::new(certified(cert_pem, key_pem)?),
        }))
    }

    /// Uses `cert_pem` and `key_pem` from the next handshake on.
    pub fn set(&self, cert_pem: &str, key_pem: &str) -> Result<(), PkiError> {
        let next = certified(cert_pem, key_pem)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(())
    }

    fn get(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The current leaf certificate (DER).
    pub fn leaf(&self) -> Option<Vec<u8>> {
        self.get().cert.first().map(|c| c.to_vec())
    }
}

impl rustls::server::ResolvesServerCert for Rotating {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

impl rustls::client::ResolvesClientCert for Rotating {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A server presenting `current`, verifying clients against `ca_pem`.
pub fn server(
    current: Arc<Rotating>,
    ca_pem: &str,
    client_auth: ClientAuth,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let verifier = client_verifier(ca_pem, client_auth)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(current);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client trusting `ca_pem` only, presenting `current`.
pub fn client(
    ca_pem: &str,
    current: Arc<Rotating>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, PkiError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_cert_resolver(current);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The lifetime the first certificate of `cert_pem` was signed for: from
/// when it was issued (its `notBefore` plus the [`crate::ca::BACKDATE`]
/// the CA gives every certificate for clock skew) to its `notAfter`.
/// Rotation is scheduled on this span: on `notBefore` itself, a
/// certificate signed for 30 s would seem to live an hour and
/// thirty seconds.
pub fn lifetime(cert_pem: &str) -> Result<(SystemTime, SystemTime), PkiError> {
    let (not_before, not_after) = validity(cert_pem)?;
    Ok(((not_before + crate::ca::BACKDATE).min(not_after), not_after))
}

/// When the first certificate of `cert_pem` starts and stops being valid.
pub fn validity(cert_pem: &str) -> Result<(SystemTime, SystemTime), PkiError> {
    let der = certificates(cert_pem, "certificate")?.remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| PkiError::invalid("certificate", e))?;
    let at = |t: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
    let v = cert.validity();
    Ok((at(v.not_before.timestamp()), at(v.not_after.timestamp())))
}

/// The serial number of the first certificate of `cert_pem` (hex).
pub fn serial(cert_pem: &str) -> Result<String, PkiError> {
    let der = certificates(cert_pem, "certificate")?.remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| PkiError::invalid("certificate", e))?;
    Ok(cert.raw_serial_as_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{Ca, Request, Usage};

    fn issued(ca: &Ca, secs: u64) -> (String, String) {
        let issued = ca
            .issue(&Request {
                common_name: "system:node:n1".into(),
                organization: Some("system:nodes".into()),
                usage: Usage::Client,
                valid_for: Duration::from_secs(secs),
            })
            .expect("issued");
        (issued.cert_pem, issued.key_pem)
    }

    #[test]
    fn set_replaces_the_pair_and_refuses_a_mismatched_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::load_or_create(dir.path()).expect("ca");
        let (cert1, key1) = issued(&ca, 3600);
        let (cert2, key2) = issued(&ca, 7200);
        let current = Rotating::new(&cert1, &key1).expect("pair");
        let first = current.leaf().expect("leaf");
        current.set(&cert2, &key2).expect("second pair");
        let second = current.leaf().expect("leaf");
        assert_ne!(first, second);
        assert!(current.set(&cert1, &key2).is_err());
        assert_eq!(current.leaf().expect("leaf"), second, "kept on refusal");
        let (from, until) = lifetime(&cert2).expect("lifetime");
        let span = until.duration_since(from).expect("ordered");
        assert!(span.as_secs().abs_diff(7200) < 5, "{span:?}");
        let (from, until) = validity(&cert2).expect("validity");
        let span = until.duration_since(from).expect("ordered");
        assert!(
            span > Duration::from_secs(7200) + crate::ca::BACKDATE / 2,
            "{span:?}"
        );
        assert_ne!(
            serial(&cert1).expect("serial"),
            serial(&cert2).expect("serial")
        );
    }
}
