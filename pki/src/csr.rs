//! PKCS#10 certificate signing requests as the CertificateSigningRequest
//! API receives them (`spec.request`, PEM): parsed, their signature
//! checked, their subject read for the signers' rules.

use x509_parser::prelude::{FromDer, X509CertificationRequest};

use crate::PkiError;

/// The PEM label upstream requires (`certificates.ParseCSR`).
const LABEL: &str = "CERTIFICATE REQUEST";

/// A request whose signature verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Csr {
    /// The DER of the whole request.
    pub der: Vec<u8>,
    /// The subject's common name (empty if none).
    pub common_name: String,
    /// The subject's organizations, in order.
    pub organizations: Vec<String>,
    /// DNS names, IP addresses, e-mail addresses and URIs asked for in a
    /// subjectAltName extension.
    pub alt_names: Vec<String>,
}

/// Why a request is refused, in upstream's words (Go's `x509` and
/// `certificates.ParseCSR` messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// Not PEM, or PEM of another type.
    #[error("PEM block type must be CERTIFICATE REQUEST")]
    NotPem,
    /// PEM of the right type that is no PKCS#10 request.
    #[error("x509: malformed certificate request")]
    Malformed,
    /// The signature does not verify with the request's own key.
    #[error("x509: ECDSA verification failure")]
    Signature,
}

/// Parses `pem` (the first block) and checks its signature.
pub fn parse(pem: &[u8]) -> Result<Csr, CsrError> {
    let der = first_block(pem).ok_or(CsrError::NotPem)?;
    let (rest, request) =
        X509CertificationRequest::from_der(&der).map_err(|_| CsrError::Malformed)?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed);
    }
    request
        .verify_signature()
        .map_err(|_| CsrError::Signature)?;
    let subject = &request.certification_request_info.subject;
    let text = |a: &x509_parser::x509::AttributeTypeAndValue<'_>| {
        a.as_str().map(str::to_string).unwrap_or_default()
    };
    let common_name = subject
        .iter_common_name()
        .next()
        .map(text)
        .unwrap_or_default();
    let organizations = subject.iter_organization().map(text).collect();
    let mut alt_names = Vec::new();
    if let Some(extensions) = request.requested_extensions() {
        for ext in extensions {
            if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = ext {
                alt_names.extend(san.general_names.iter().filter_map(alt_name));
            }
        }
    }
    Ok(Csr {
        der: der.clone(),
        common_name,
        organizations,
        alt_names,
    })
}

/// A new key and a request for `common_name` in `organizations` signed
/// with it: the key (PKCS#8 PEM) and the request (PEM), as `openssl req`
/// makes them for a client certificate.
pub fn new_request(
    common_name: &str,
    organizations: &[&str],
) -> Result<(String, String), PkiError> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    // rcgen keeps one value per attribute type: the last organization.
    for org in organizations {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, *org);
    }
    let request = params.serialize_request(&key)?.pem()?;
    Ok((key.serialize_pem(), request))
}

/// A DNS name or IP address as text (other kinds no signer here allows).
fn alt_name(name: &x509_parser::extensions::GeneralName<'_>) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    match name {
        GeneralName::DNSName(dns) => Some((*dns).to_string()),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(*bytes)
                .ok()
                .map(|b| std::net::IpAddr::from(b).to_string()),
            16 => <[u8; 16]>::try_from(*bytes)
                .ok()
                .map(|b| std::net::IpAddr::from(b).to_string()),
            _ => None,
        },
        other => Some(other.to_string()),
    }
}

/// The DER of the first PEM block if it is a request (Go's `pem.Decode`
/// skips text before the block).
fn first_block(pem: &[u8]) -> Option<Vec<u8>> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    (block.label == LABEL).then_some(block.contents)
}

impl From<CsrError> for PkiError {
    fn from(e: CsrError) -> Self {
        PkiError::Invalid {
            what: "certificate request".into(),
            why: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(cn: &str, org: &str) -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, org);
        params
            .serialize_request(&key)
            .expect("csr")
            .pem()
            .expect("pem")
    }

    #[test]
    fn a_signed_request_gives_its_subject() {
        let csr = parse(request("john", "devs").as_bytes()).expect("valid");
        assert_eq!(csr.common_name, "john");
        assert_eq!(csr.organizations, vec!["devs".to_string()]);
    }

    #[test]
    fn other_pem_and_tampered_requests_are_refused() {
        assert_eq!(parse(b"hello"), Err(CsrError::NotPem));
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(parse(cert.as_bytes()), Err(CsrError::NotPem));
        let good = request("john", "devs");
        let (_, block) = x509_parser::pem::parse_x509_pem(good.as_bytes()).expect("pem");
        let mut der = block.contents;
        // The common name's last byte: the signature no longer covers it.
        let at = der
            .windows(4)
            .position(|w| w == b"john")
            .expect("cn in der")
            + 3;
        der[at] = b'x';
        let pem = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            base64_lines(&der)
        );
        assert_eq!(parse(pem.as_bytes()), Err(CsrError::Signature));
    }

    fn base64_lines(der: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in der.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
