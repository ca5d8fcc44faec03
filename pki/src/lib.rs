//! Skiff's cluster certificates, shared by the control plane, the kubelet,
//! the CLI and the tests.
//!
//! A cluster has one CA, made at the control plane's first start and kept
//! in its data folder (`pki/ca.crt`, `pki/ca.key`, the key readable by root
//! only). Everything that proves who it is carries a certificate the CA
//! issued: the API server's serving certificate, the admin's client
//! certificate in the kubeconfig (`system:masters`), and each node's
//! (`system:node:<name>` in `system:nodes`). A client certificate's common
//! name is its user and its organizations are its groups, as upstream's
//! x509 authenticator reads them.
//!
//! Kubelets' serving certificates are the exception: a second CA, the
//! kubelet-serving signer (`pki/kubelet-serving-ca.crt`, upstream's
//! `kubernetes.io/kubelet-serving`), signs them, and only the control
//! plane trusts it, for dialling kubelets. A node picks the names its
//! serving certificate carries; were the cluster CA to sign it, any joined
//! node would hold a certificate API clients accept for the API server.
//!
//! - [`ca`]: making, loading and using the CA.
//! - [`csr`]: certificate signing requests sent to the API.
//! - [`identity`]: the user and groups a client certificate names.
//! - [`tls`]: rustls server and client configurations from PEM, and the
//!   client that pins the CA by hash for a node's first contact.
//! - [`rotating`]: a certificate servers and clients pick up anew at each
//!   handshake, for renewing node certificates without a restart.
//! - [`signing`]: `--cluster-signing-duration`, how long signed
//!   certificates last.
//! - [`token`]: bootstrap tokens (`<id>.<secret>`) nodes join with, and
//!   the fields of the Secrets that hold them.

pub mod ca;
pub mod csr;
pub mod identity;
pub mod pem;
pub mod rotating;
pub mod signing;
pub mod tls;
pub mod token;

/// What went wrong with a certificate or key.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Generating or signing.
    #[error("certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM or DER that is not what it should be.
    #[error("{what}: {why}")]
    Invalid {
        /// Which input.
        what: String,
        /// Why it is refused.
        why: String,
    },
    /// A bootstrap token not of upstream's form (kubeadm's words).
    #[error(
        "the bootstrap token {0:?} was not of the form {pattern:?}",
        pattern = crate::token::PATTERN
    )]
    BootstrapToken(String),
    /// The CA's certificate ended before the new certificate's start
    /// (upstream's signer words).
    #[error("the signer has expired: NotAfter={0}")]
    SignerExpired(String),
    /// The CA's certificate has ended.
    #[error("refusing to sign a certificate that expired in the past: NotAfter={0}")]
    SignerExpiredBeforeNow(String),
    /// Building a TLS configuration.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

impl PkiError {
    fn invalid(what: impl Into<String>, why: impl ToString) -> Self {
        Self::Invalid {
            what: what.into(),
            why: why.to_string(),
        }
    }
}
