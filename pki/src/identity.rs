//! The user a client certificate names: its subject's common name, and
//! its organizations as groups (upstream's x509 authenticator).

use crate::PkiError;

/// User name and groups of a client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The common name.
    pub name: String,
    /// The organizations, in order.
    pub groups: Vec<String>,
}

/// When a DER certificate expires (Unix seconds).
pub fn not_after(der: &[u8]) -> Result<i64, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PkiError::invalid("certificate", e))?;
    Ok(cert.validity().not_after.timestamp())
}

/// Reads the subject of a DER certificate. Only call this on a certificate
/// the TLS layer has verified against the cluster CA.
pub fn subject(der: &[u8]) -> Result<Subject, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PkiError::invalid("client certificate", e))?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
        .ok_or_else(|| PkiError::invalid("client certificate", "no common name"))?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    Ok(Subject { name, groups })
}

/// Checks that `cert_pem` was signed by the CA of `ca_pem` and stays
/// valid for at least `margin` (for reusing a certificate kept on disk).
pub fn verify(ca_pem: &str, cert_pem: &str, margin: std::time::Duration) -> Result<(), PkiError> {
    let ca_der = crate::pem::certificates(ca_pem, "CA certificate")?.remove(0);
    let der = crate::pem::certificates(cert_pem, "certificate")?.remove(0);
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der)
        .map_err(|e| PkiError::invalid("CA certificate", e))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| PkiError::invalid("certificate", e))?;
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|e| PkiError::invalid("certificate", format!("not signed by the CA: {e}")))?;
    let until = cert.validity().not_after.timestamp();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let needed = now.saturating_add(margin.as_secs());
    if u64::try_from(until).unwrap_or(0) < needed {
        return Err(PkiError::invalid("certificate", "expires too soon"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{Ca, Request, Usage};

    #[test]
    fn common_name_is_the_user_and_organizations_the_groups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::load_or_create(dir.path()).expect("ca");
        let issued = ca
            .issue(&Request {
                common_name: "system:node:n1".into(),
                organization: Some("system:nodes".into()),
                usage: Usage::Client,
                valid_for: std::time::Duration::from_secs(3600),
            })
            .expect("issued");
        let der = crate::pem::certificates(&issued.cert_pem, "test")
            .expect("pem")
            .remove(0);
        assert_eq!(
            subject(&der).expect("subject"),
            Subject {
                name: "system:node:n1".into(),
                groups: vec!["system:nodes".into()],
            }
        );
    }
}
