//! Certificates and keys out of PEM text: the one parser every other
//! module of this crate (and its users) reads PEM with.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::PkiError;

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

/// The private key of a PEM text (`what` names it in errors).
pub fn private_key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::invalid(what, e))
}
