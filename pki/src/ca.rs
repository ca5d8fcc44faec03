//! The cluster CA: made once, kept on disk, issuing serving and client
//! certificates.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};

use crate::PkiError;

/// The CA certificate's file in a PKI folder.
pub const CA_CERT: &str = "ca.crt";
/// The CA key's file in a PKI folder (mode 0600).
pub const CA_KEY: &str = "ca.key";
/// The kubelet-serving CA's certificate in the control plane's PKI folder.
pub const KUBELET_SERVING_CA_CERT: &str = "kubelet-serving-ca.crt";
/// The kubelet-serving CA's key (mode 0600).
pub const KUBELET_SERVING_CA_KEY: &str = "kubelet-serving-ca.key";

/// Which CA of a PKI folder: its files and the common name it is made
/// with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaFiles {
    /// The certificate's file name.
    pub cert: &'static str,
    /// The key's file name.
    pub key: &'static str,
    /// The subject a new CA gets.
    pub common_name: &'static str,
}

/// The cluster CA: the API server's serving certificate and every client
/// certificate (admin, nodes, the control plane toward kubelets). API
/// clients (kubeconfigs, ServiceAccount `ca.crt`) trust it alone.
pub const CLUSTER: CaFiles = CaFiles {
    cert: CA_CERT,
    key: CA_KEY,
    common_name: "skiff-ca",
};

/// The kubelet-serving signer (upstream's `kubernetes.io/kubelet-serving`):
/// signs kubelets' serving certificates only, and only the control plane
/// trusts it, for dialling kubelets. Kept apart from [`CLUSTER`] so a
/// node's serving certificate, whatever names it carries, never passes
/// for the API server with a client that trusts the cluster CA.
pub const KUBELET_SERVING: CaFiles = CaFiles {
    cert: KUBELET_SERVING_CA_CERT,
    key: KUBELET_SERVING_CA_KEY,
    common_name: "skiff-kubelet-serving-ca",
};

/// How long the CA is valid: upstream's kubeadm gives its CA ten years.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates are valid from a little before they were made, so a
/// machine whose clock is slightly behind accepts them.
pub const BACKDATE: Duration = Duration::from_secs(3600);

/// What a certificate is for.
#[derive(Debug, Clone)]
pub enum Usage {
    /// A TLS server reached at these DNS names and IP addresses.
    Server {
        /// DNS names and IP addresses (as text).
        names: Vec<String>,
    },
    /// A TLS client.
    Client,
}

/// A certificate to issue.
#[derive(Debug, Clone)]
pub struct Request {
    /// The subject's common name: the user, for a client.
    pub common_name: String,
    /// The subject's organization: the group, for a client. One at most:
    /// rcgen's distinguished name holds one value per attribute type, and
    /// Skiff's certificates each need one group (`system:masters`,
    /// `system:nodes`).
    pub organization: Option<String>,
    /// Server or client.
    pub usage: Usage,
    /// How long from now it is valid.
    pub valid_for: Duration,
}

/// An issued certificate and its new key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// The cluster CA with its key.
pub struct Ca {
    cert_pem: String,
    spki_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate's own end: nothing it signs outlives it.
    not_after: time::OffsetDateTime,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("hash", &self.hash()).finish()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `text` to `path` through a temporary file and a rename, with
/// `mode`, so a crash never leaves half a key or certificate behind.
pub fn write_atomic(path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp: PathBuf = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(text.as_bytes()).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn validity(params: &mut CertificateParams, now: time::OffsetDateTime, valid_for: Duration) {
    params.not_before = now - BACKDATE;
    params.not_after = now + valid_for;
}

/// A time as Go's `time.Time` prints it (`2026-01-02 15:04:05 +0000 UTC`),
/// for upstream's signer messages.
fn go_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

impl Ca {
    /// Loads the cluster CA of `dir`, or makes one there if it has none.
    pub fn load_or_create(dir: &Path) -> Result<Self, PkiError> {
        Self::load_or_create_as(dir, CLUSTER)
    }

    /// Loads the CA `files` of `dir`, or makes it there if it is missing.
    pub fn load_or_create_as(dir: &Path, files: CaFiles) -> Result<Self, PkiError> {
        if dir.join(files.cert).exists() {
            return Self::load_as(dir, files);
        }
        Self::create_as(dir, files, CA_VALIDITY)
    }

    /// Makes a new CA `files` in `dir`, valid for `valid_for` from now
    /// (replacing one there), and loads it.
    pub fn create_as(dir: &Path, files: CaFiles, valid_for: Duration) -> Result<Self, PkiError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, files.common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        validity(&mut params, time::OffsetDateTime::now_utc(), valid_for);
        let cert = params.self_signed(&key)?;
        // The key first: a certificate without its key would be loaded as
        // a CA that cannot sign.
        write_atomic(&dir.join(files.key), &key.serialize_pem(), 0o600)?;
        write_atomic(&dir.join(files.cert), &cert.pem(), 0o644)?;
        Self::load_as(dir, files)
    }

    /// Loads the cluster CA of `dir`.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        Self::load_as(dir, CLUSTER)
    }

    /// Loads the CA `files` of `dir`.
    pub fn load_as(dir: &Path, files: CaFiles) -> Result<Self, PkiError> {
        let cert_path = dir.join(files.cert);
        let key_path = dir.join(files.key);
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| PkiError::invalid(key_path.display().to_string(), e))?;
        let der = crate::pem::certificates(&cert_pem, &cert_path.display().to_string())?
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::invalid(cert_path.display().to_string(), "no certificate"))?;
        let spki_der = spki(&der)?;
        let not_after = expiry_of(&der)?;
        if spki_der != rcgen::PublicKeyData::subject_public_key_info(&key) {
            return Err(PkiError::invalid(
                key_path.display().to_string(),
                "the key does not belong to the CA certificate",
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&der, key)?;
        Ok(Self {
            cert_pem,
            spki_der,
            issuer,
            not_after,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// `sha256:<hex>` of the CA's public key (SubjectPublicKeyInfo), the
    /// form kubeadm's `--discovery-token-ca-cert-hash` pins.
    pub fn hash(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(&self.spki_der)))
    }

    /// Issues a certificate with a new key.
    pub fn issue(&self, request: &Request) -> Result<Issued, PkiError> {
        let key = KeyPair::generate()?;
        let cert_pem = self.sign(request, &key)?;
        Ok(Issued {
            cert_pem,
            key_pem: key.serialize_pem(),
        })
    }

    /// [`Ca::sign`] for a public key sent as SubjectPublicKeyInfo PEM.
    pub fn sign_public_key_pem(
        &self,
        request: &Request,
        public_key_pem: &str,
    ) -> Result<String, PkiError> {
        let key = rcgen::SubjectPublicKeyInfo::from_pem(public_key_pem)
            .map_err(|e| PkiError::invalid("public key", e))?;
        self.sign(request, &key)
    }

    /// Issues a certificate for a public key someone else holds (a node's
    /// certificate signing request); returns the certificate, PEM.
    pub fn sign(
        &self,
        request: &Request,
        public_key: &impl rcgen::PublicKeyData,
    ) -> Result<String, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, request.common_name.as_str());
        if let Some(org) = &request.organization {
            params
                .distinguished_name
                .push(DnType::OrganizationName, org.as_str());
        }
        self.sign_params(params, request, public_key)
    }

    /// Signs a request sent through the CertificateSigningRequest API
    /// (its signature already checked by [`crate::csr::parse`]): its
    /// subject and public key as asked, `usage` and `valid_for` as the
    /// signer decides.
    pub fn sign_csr(
        &self,
        csr: &crate::csr::Csr,
        usage: Usage,
        valid_for: Duration,
    ) -> Result<String, PkiError> {
        let der = rustls::pki_types::CertificateSigningRequestDer::from(csr.der.clone());
        let parsed = rcgen::CertificateSigningRequestParams::from_der(&der)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = parsed.params.distinguished_name;
        let request = Request {
            common_name: csr.common_name.clone(),
            organization: csr.organizations.first().cloned(),
            usage,
            valid_for,
        };
        self.sign_params(params, &request, &parsed.public_key)
    }

    fn sign_params(
        &self,
        mut params: CertificateParams,
        request: &Request,
        public_key: &impl rcgen::PublicKeyData,
    ) -> Result<String, PkiError> {
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        match &request.usage {
            Usage::Server { names } => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                params.subject_alt_names = names
                    .iter()
                    .map(|n| match n.parse::<std::net::IpAddr>() {
                        Ok(ip) => Ok(SanType::IpAddress(ip)),
                        Err(_) => Ok(SanType::DnsName(n.clone().try_into()?)),
                    })
                    .collect::<Result<_, rcgen::Error>>()?;
            }
            Usage::Client => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
        }
        self.bounded_validity(&mut params, request.valid_for)?;
        Ok(params.signed_by(public_key, &self.issuer)?.pem())
    }

    /// From now (backdated) for `valid_for`, but never past the CA's own
    /// end, as upstream's signing policy: a certificate that outlived its
    /// CA would fail verification anyway, and saying so in NotAfter lets
    /// its holder renew in time. An expired CA signs nothing.
    fn bounded_validity(
        &self,
        params: &mut CertificateParams,
        valid_for: Duration,
    ) -> Result<(), PkiError> {
        let now = time::OffsetDateTime::now_utc();
        validity(params, now, valid_for);
        params.not_after = params.not_after.min(self.not_after);
        if params.not_before >= self.not_after {
            return Err(PkiError::SignerExpired(go_time(self.not_after)));
        }
        if now >= self.not_after {
            return Err(PkiError::SignerExpiredBeforeNow(go_time(self.not_after)));
        }
        Ok(())
    }

    /// When the CA certificate itself expires.
    pub fn not_after(&self) -> time::OffsetDateTime {
        self.not_after
    }
}

/// A new key pair for a certificate to be signed elsewhere: the private
/// key (PKCS#8 PEM, to keep) and its public key (SubjectPublicKeyInfo
/// PEM, to send).
pub fn new_key_pair() -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// The public key (SubjectPublicKeyInfo PEM) of a kept private key
/// (PKCS#8 PEM), to have a certificate signed again for the same key.
pub fn public_key_pem(private_key_pem: &str) -> Result<String, PkiError> {
    let key = KeyPair::from_pem(private_key_pem).map_err(|e| PkiError::invalid("key", e))?;
    Ok(key.public_key_pem())
}

/// `sha256:<hex>` of a DER certificate's public key, as [`Ca::hash`].
pub fn hash_of_der(der: &[u8]) -> Result<String, PkiError> {
    Ok(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(spki(der)?))
    ))
}

/// [`hash_of_der`] of the first certificate of a PEM text.
pub fn hash_of_pem(pem: &str) -> Result<String, PkiError> {
    let der = crate::pem::certificates(pem, "CA certificate")?.remove(0);
    hash_of_der(&der)
}

/// When a DER certificate expires.
fn expiry_of(der: &[u8]) -> Result<time::OffsetDateTime, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PkiError::invalid("certificate", e))?;
    time::OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
        .map_err(|e| PkiError::invalid("certificate", e))
}

/// The DER SubjectPublicKeyInfo of a DER certificate.
fn spki(der: &[u8]) -> Result<Vec<u8>, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PkiError::invalid("certificate", e))?;
    Ok(cert.tbs_certificate.subject_pki.raw.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_and_loaded_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Ca::load_or_create(dir.path()).expect("made");
        let again = Ca::load_or_create(dir.path()).expect("loaded");
        assert_eq!(first.cert_pem(), again.cert_pem());
        assert_eq!(first.hash(), again.hash());
        assert!(first.hash().starts_with("sha256:") && first.hash().len() == 7 + 64);
        assert_eq!(hash_of_pem(first.cert_pem()).expect("hash"), first.hash());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(CA_KEY))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn the_kubelet_serving_ca_is_another_ca_beside_the_cluster_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster = Ca::load_or_create(dir.path()).expect("cluster");
        let serving = Ca::load_or_create_as(dir.path(), KUBELET_SERVING).expect("serving");
        assert_ne!(cluster.hash(), serving.hash());
        let again = Ca::load_or_create_as(dir.path(), KUBELET_SERVING).expect("kept");
        assert_eq!(again.cert_pem(), serving.cert_pem());
        assert_eq!(
            Ca::load(dir.path()).expect("cluster").hash(),
            cluster.hash()
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KUBELET_SERVING_CA_KEY))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A serving certificate it signs does not chain to the cluster CA.
        let leaf = serving
            .issue(&Request {
                common_name: "system:node:n1".into(),
                organization: Some("system:nodes".into()),
                usage: Usage::Server {
                    names: vec!["127.0.0.1".into()],
                },
                valid_for: Duration::from_secs(3600),
            })
            .expect("leaf");
        let margin = Duration::from_secs(60);
        assert!(crate::identity::verify(serving.cert_pem(), &leaf.cert_pem, margin).is_ok());
        assert!(crate::identity::verify(cluster.cert_pem(), &leaf.cert_pem, margin).is_err());
    }

    fn client(valid_for: Duration) -> Request {
        Request {
            common_name: "system:node:n1".into(),
            organization: Some("system:nodes".into()),
            usage: Usage::Client,
            valid_for,
        }
    }

    fn expiry(pem: &str) -> i64 {
        let der = crate::pem::certificates(pem, "leaf")
            .expect("pem")
            .remove(0);
        crate::identity::not_after(&der).expect("not after")
    }

    #[test]
    fn nothing_signed_outlives_the_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ten_minutes = Duration::from_secs(600);
        let ca = Ca::create_as(dir.path(), CLUSTER, ten_minutes).expect("short CA");
        let ca_end = ca.not_after().unix_timestamp();
        assert_eq!(expiry(ca.cert_pem()), ca_end);
        let year = Duration::from_secs(365 * 24 * 3600);
        // Each way of signing: a new key, a sent public key, a PKCS#10 request.
        let issued = ca.issue(&client(year)).expect("issued");
        assert_eq!(expiry(&issued.cert_pem), ca_end);
        let (_, public) = new_key_pair().expect("key");
        let signed = ca
            .sign_public_key_pem(&client(year), &public)
            .expect("signed");
        assert_eq!(expiry(&signed), ca_end);
        let (_, request) = crate::csr::new_request("john", &["devs"]).expect("csr");
        let csr = crate::csr::parse(request.as_bytes()).expect("parsed");
        let from_csr = ca.sign_csr(&csr, Usage::Client, year).expect("signed");
        assert_eq!(expiry(&from_csr), ca_end);
        // Shorter than the CA: as asked.
        let minute = ca.issue(&client(Duration::from_secs(60))).expect("issued");
        assert!(expiry(&minute.cert_pem) < ca_end);
        // The signature still verifies against the CA.
        assert!(crate::identity::verify(ca.cert_pem(), &signed, Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn an_expired_ca_signs_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::create_as(dir.path(), CLUSTER, Duration::ZERO).expect("CA");
        std::thread::sleep(Duration::from_millis(1100));
        let err = ca
            .issue(&client(Duration::from_secs(60)))
            .expect_err("expired CA");
        assert!(
            err.to_string()
                .starts_with("refusing to sign a certificate that expired in the past: NotAfter="),
            "{err}"
        );
        assert!(err.to_string().ends_with(" +0000 UTC"), "{err}");
    }

    #[test]
    fn a_key_of_another_ca_is_refused() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        Ca::load_or_create(a.path()).expect("a");
        Ca::load_or_create(b.path()).expect("b");
        std::fs::copy(b.path().join(CA_KEY), a.path().join(CA_KEY)).expect("copy");
        let err = Ca::load(a.path()).expect_err("mismatched key");
        assert!(err.to_string().contains("does not belong"), "{err}");
    }
}
