//! The node's identity: its key (made here, never sent anywhere), its
//! client certificate toward the control plane (`system:node:<name>` in
//! `system:nodes`), its serving certificate, the cluster CA and the
//! kubelet-serving CA that signed the serving certificate, kept in
//! `<state-dir>/pki/` (mode 0600) and reused on restart. When they are
//! missing, expire within a day, were not issued by the trusted CA (the
//! serving certificate: by the kubelet-serving CA) or name another node,
//! the kubelet joins again with its bootstrap token (kubeadm's `join
//! --token --discovery-token-ca-cert-hash`).
//!
//! While it runs, the kubelet renews both certificates with a fresh key
//! before they expire ([`super::rotation`]), writing the new files through
//! a journal (`pki/next/`) so a crash in the middle leaves a working set.
//! A kubelet whose certificates expired while it was down cannot renew
//! them (renewing takes a valid certificate) and must join again.
//!
//! A serving certificate kept from before the kubelet-serving CA (signed
//! by the cluster CA) is not reused: the control plane no longer accepts
//! it, so the kubelet joins again (`skiff up` hands it a fresh token at
//! every start; `skiff agent` needs `--token` once more, and says so).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use skiff_pki::PkiError;
use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_bootstrap_client::NodeBootstrapClient;
use tracing::{info, warn};

/// The control plane's client user, the only caller the kubelet's ports
/// answer (kubeadm's name for the API server's kubelet client).
pub const CONTROL_PLANE_USER: &str = "kube-apiserver-kubelet-client";

const CA: &str = "ca.crt";
const KEY: &str = "kubelet.key";
const CLIENT_CERT: &str = "kubelet-client.crt";
const SERVING_CERT: &str = "kubelet.crt";
const SERVING_CA: &str = "kubelet-serving-ca.crt";

/// A kept certificate is renewed by joining again when it would expire
/// within this margin, or within a tenth of its lifetime if that is
/// shorter (a short-lived certificate is renewed by rotation instead).
const RENEW_MARGIN: Duration = Duration::from_secs(24 * 3600);

/// Where a renewed set is staged before it replaces the kept files.
const NEXT: &str = "next";
/// Written last into [`NEXT`]: the staged set is whole.
const COMPLETE: &str = "complete";

/// How the control plane is trusted on first contact.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Its CA's public key hash, `sha256:<hex>`.
    Hash(String),
    /// Its CA certificate (PEM).
    CaPem(String),
}

/// What a node proves itself and checks others with.
#[derive(Clone)]
pub struct Credentials {
    /// The cluster CA (PEM).
    pub ca_pem: String,
    /// The node's private key (PEM).
    pub key_pem: String,
    /// `system:node:<name>` client certificate (PEM).
    pub client_cert_pem: String,
    /// The kubelet's serving certificate (PEM).
    pub serving_cert_pem: String,
    /// The kubelet-serving CA that signed it (PEM).
    pub serving_ca_pem: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").finish_non_exhaustive()
    }
}

/// Why the node has no identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Files or certificates.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// Kept certificates are unusable and no token was given.
    #[error("no usable node certificates in {0} and no --token to join with")]
    NoToken(String),
    /// The kept serving certificate is from the cluster CA, as before the
    /// kubelet-serving CA, and no token was given to join again.
    #[error(
        "the serving certificate kept in {0} was signed by the cluster CA, which no longer signs \
         kubelet serving certificates; join again with --token (`skiff token create` makes one)"
    )]
    ServingFromClusterCa(String),
    /// The kept certificates expired (the kubelet was down past their
    /// lifetime) and no token was given: renewing takes a valid one.
    #[error(
        "the node certificates in {0} expired and cannot be renewed (renewing takes a valid \
         certificate); join again with --token (`skiff token create` makes one)"
    )]
    Expired(String),
    /// The control plane refused the join (a wrong, expired or deleted token).
    #[error("the control plane refused to join: {0}")]
    Refused(String),
    /// The control plane could not be reached in time.
    #[error("cannot reach the control plane at {address}: {why}")]
    Unreachable {
        /// Its address.
        address: String,
        /// Why.
        why: String,
    },
    /// The CA the control plane sent is not the one pinned.
    #[error("the control plane's CA has hash {got}, not the pinned {want}")]
    WrongCa {
        /// Pinned.
        want: String,
        /// Received.
        got: String,
    },
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("pki")
}

/// Loads the kept credentials of node `name` if they are still good for
/// `trust`.
pub fn load(state_dir: &Path, name: &str, trust: Option<&Trust>) -> Option<Credentials> {
    let dir = dir(state_dir);
    if let Err(e) = recover(&dir) {
        warn!(dir = %dir.display(), error = %e, "cannot finish or undo a renewal left half done");
    }
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let creds = Credentials {
        ca_pem: read(CA)?,
        key_pem: read(KEY)?,
        client_cert_pem: read(CLIENT_CERT)?,
        serving_cert_pem: read(SERVING_CERT)?,
        serving_ca_pem: read(SERVING_CA)?,
    };
    let trusted = match trust {
        None => true,
        Some(Trust::Hash(h)) => skiff_pki::ca::hash_of_pem(&creds.ca_pem)
            .is_ok_and(|got| got.eq_ignore_ascii_case(h.trim())),
        Some(Trust::CaPem(pem)) => pem.trim() == creds.ca_pem.trim(),
    };
    let margin = |cert: &str| {
        skiff_pki::rotating::lifetime(cert)
            .ok()
            .and_then(|(from, until)| until.duration_since(from).ok())
            .map_or(RENEW_MARGIN, |life| RENEW_MARGIN.min(life / 10))
    };
    let valid = |cert: &str| skiff_pki::identity::verify(&creds.ca_pem, cert, margin(cert)).is_ok();
    let named = skiff_pki::pem::certificates(&creds.client_cert_pem, "client certificate")
        .ok()
        .and_then(|c| c.into_iter().next())
        .and_then(|der| skiff_pki::identity::subject(&der).ok())
        .is_some_and(|s| s.name == format!("system:node:{name}"));
    let serving = skiff_pki::identity::verify(&creds.serving_ca_pem, &creds.serving_cert_pem, margin(&creds.serving_cert_pem))
            .is_ok()
            // The cluster CA signs no serving certificate; one that claims
            // it does is not the kubelet-serving CA.
            && skiff_pki::ca::hash_of_pem(&creds.serving_ca_pem).ok()
                != skiff_pki::ca::hash_of_pem(&creds.ca_pem).ok();
    (trusted && named && valid(&creds.client_cert_pem) && serving).then_some(creds)
}

/// Whether the serving certificate kept in `state_dir` is one the cluster
/// CA signed (kept from before the kubelet-serving CA).
fn serving_from_cluster_ca(state_dir: &Path) -> bool {
    let dir = dir(state_dir);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    match (read(CA), read(SERVING_CERT)) {
        (Some(ca), Some(serving)) => {
            skiff_pki::identity::verify(&ca, &serving, Duration::ZERO).is_ok()
        }
        _ => false,
    }
}

/// Whether the client certificate kept in `state_dir` has expired (so
/// only joining again can give the node a new one).
fn expired(state_dir: &Path) -> bool {
    std::fs::read_to_string(dir(state_dir).join(CLIENT_CERT))
        .ok()
        .and_then(|cert| skiff_pki::rotating::validity(&cert).ok())
        .is_some_and(|(_, until)| until <= std::time::SystemTime::now())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Keeps `creds` in `state_dir`, replacing the kept set as one: the files
/// are written to `pki/next/`, marked whole, then renamed into place, so
/// that whenever the kubelet stops, [`recover`] finds either the old set
/// or the new one, never a key beside another key's certificate.
pub(crate) fn save(state_dir: &Path, creds: &Credentials) -> Result<(), PkiError> {
    let dir = dir(state_dir);
    let next = dir.join(NEXT);
    if next.exists() {
        std::fs::remove_dir_all(&next).map_err(io(&next))?;
    }
    std::fs::create_dir_all(&next).map_err(io(&next))?;
    for (file, text) in [
        (KEY, &creds.key_pem),
        (CA, &creds.ca_pem),
        (CLIENT_CERT, &creds.client_cert_pem),
        (SERVING_CERT, &creds.serving_cert_pem),
        (SERVING_CA, &creds.serving_ca_pem),
    ] {
        skiff_pki::ca::write_atomic(&next.join(file), text, 0o600)?;
    }
    // The staged files' names must be on disk before the marker says
    // they are whole.
    std::fs::File::open(&next)
        .and_then(|d| d.sync_all())
        .map_err(io(&next))?;
    skiff_pki::ca::write_atomic(&next.join(COMPLETE), "", 0o600)?;
    recover(&dir)
}

/// Finishes a staged renewal in `dir` that is whole (renames its files
/// into place; each rename is atomic, and a rename already done is not
/// needed again) or throws away one that is not.
fn recover(dir: &Path) -> Result<(), PkiError> {
    let next = dir.join(NEXT);
    if !next.exists() {
        return Ok(());
    }
    if next.join(COMPLETE).exists() {
        for file in [KEY, CA, CLIENT_CERT, SERVING_CERT, SERVING_CA] {
            let staged = next.join(file);
            if staged.exists() {
                std::fs::rename(&staged, dir.join(file)).map_err(io(&staged))?;
            }
        }
        // Renames are durable only once the folder is.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    std::fs::remove_dir_all(&next).map_err(io(&next))
}

/// What joining needs.
#[derive(Debug, Clone)]
pub struct Join {
    /// The control plane's node gRPC address, `host:port` (a scheme is
    /// ignored).
    pub control_plane: String,
    /// The bootstrap token.
    pub token: Option<String>,
    /// How the control plane is trusted.
    pub trust: Trust,
    /// The node's name.
    pub node_name: String,
    /// Names and addresses of the kubelet's servers.
    pub serving_names: Vec<String>,
    /// How long to keep trying to reach the control plane.
    pub patience: Duration,
}

/// Says why a kubelet without a way to join has no usable kept
/// credentials, when it is that they expired.
pub fn no_kept_credentials(state_dir: &Path) -> Result<(), IdentityError> {
    if expired(state_dir) {
        return Err(IdentityError::Expired(dir(state_dir).display().to_string()));
    }
    Ok(())
}

/// The node's credentials: kept ones if still good, else fresh ones from
/// joining.
pub async fn load_or_join(state_dir: &Path, join: &Join) -> Result<Credentials, IdentityError> {
    if let Some(creds) = load(state_dir, &join.node_name, Some(&join.trust)) {
        info!(dir = %dir(state_dir).display(), "using the kept node certificates");
        return Ok(creds);
    }
    let token = match join.token.clone() {
        Some(token) => token,
        None if expired(state_dir) => {
            return Err(IdentityError::Expired(dir(state_dir).display().to_string()));
        }
        None if serving_from_cluster_ca(state_dir) => {
            return Err(IdentityError::ServingFromClusterCa(
                dir(state_dir).display().to_string(),
            ));
        }
        None => return Err(IdentityError::NoToken(dir(state_dir).display().to_string())),
    };
    if expired(state_dir) {
        info!(dir = %dir(state_dir).display(), "the kept node certificates expired; joining again with the bootstrap token");
    }
    if serving_from_cluster_ca(state_dir) {
        info!(dir = %dir(state_dir).display(), "the kept serving certificate is from the cluster CA; joining again for one from the kubelet-serving CA");
    }
    let (key_pem, public_key_pem) = skiff_pki::ca::new_key_pair()?;
    let config = match &join.trust {
        Trust::Hash(h) => skiff_pki::tls::pinned_client(h, &[b"h2"])?,
        Trust::CaPem(pem) => skiff_pki::tls::client(pem, None, &[b"h2"])?,
    };
    let request = pb::JoinRequest {
        token,
        node_name: join.node_name.clone(),
        public_key_pem,
        serving_names: join.serving_names.clone(),
    };
    let deadline = tokio::time::Instant::now() + join.patience;
    let response = loop {
        let attempt = async {
            let channel = skiff_proto::link::connect_tls(&join.control_plane, config.clone(), None)
                .await
                .map_err(|e| {
                    tonic::Status::unavailable(format!("{e}: {:?}", std::error::Error::source(&e)))
                })?;
            NodeBootstrapClient::new(channel)
                .join(request.clone())
                .await
        };
        match attempt.await {
            Ok(r) => break r.into_inner(),
            Err(s) if s.code() == tonic::Code::Unavailable => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(IdentityError::Unreachable {
                        address: join.control_plane.clone(),
                        why: s.message().to_string(),
                    });
                }
                warn!(control_plane = %join.control_plane, error = %s.message(), "cannot join yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(s) => return Err(IdentityError::Refused(s.message().to_string())),
        }
    };
    let got = skiff_pki::ca::hash_of_pem(&response.ca_cert_pem)?;
    let pinned = match &join.trust {
        Trust::Hash(h) => h.trim().to_ascii_lowercase(),
        Trust::CaPem(pem) => skiff_pki::ca::hash_of_pem(pem)?,
    };
    if got != pinned {
        return Err(IdentityError::WrongCa { want: pinned, got });
    }
    if response.kubelet_serving_ca_pem.is_empty() {
        return Err(IdentityError::Refused(
            "the control plane sent no kubelet-serving CA (an older control plane)".into(),
        ));
    }
    let creds = Credentials {
        ca_pem: response.ca_cert_pem,
        key_pem,
        client_cert_pem: response.client_cert_pem,
        serving_cert_pem: response.serving_cert_pem,
        serving_ca_pem: response.kubelet_serving_ca_pem,
    };
    save(state_dir, &creds)?;
    info!(node = %join.node_name, dir = %dir(state_dir).display(), "joined; node certificates kept");
    Ok(creds)
}

/// The kubelet's TLS: what its servers present and accept, and how it
/// dials the control plane.
#[derive(Clone)]
pub struct KubeletTls {
    /// Serving certificate (PEM, the chain).
    pub serving_cert_pem: String,
    /// Its key.
    pub serving_key_pem: String,
    /// The CA client certificates are checked against
    /// (`--client-ca-file`).
    pub client_ca_pem: String,
    /// Toward the control plane (the node's client certificate); `None`
    /// for a kubelet without one.
    pub control_plane: Option<Arc<rustls::ClientConfig>>,
    /// What renewing the certificates needs, for a joined kubelet; its
    /// servers then present [`Renewal::serving`] rather than
    /// `serving_cert_pem`.
    pub renewal: Option<Renewal>,
}

/// A joined kubelet's certificates as they are renewed: what it presents
/// now (read at every handshake) and what it renews from.
#[derive(Clone)]
pub struct Renewal {
    /// The credentials in use (those kept in the state folder).
    pub creds: Credentials,
    /// The client certificate `control_plane` presents.
    pub client: Arc<skiff_pki::rotating::Rotating>,
    /// The serving certificate; `None` when `--tls-cert-file` overrides it.
    pub serving: Option<Arc<skiff_pki::rotating::Rotating>>,
    /// Names and addresses a renewed serving certificate is asked for
    /// (those the kubelet joined with).
    pub serving_names: Vec<String>,
}

impl std::fmt::Debug for KubeletTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletTls").finish_non_exhaustive()
    }
}

impl KubeletTls {
    /// Everything from joined credentials.
    pub fn from_credentials(creds: &Credentials) -> Result<Self, PkiError> {
        use skiff_pki::rotating::{self, Rotating};
        let client = Rotating::new(&creds.client_cert_pem, &creds.key_pem)?;
        let serving = Rotating::new(&creds.serving_cert_pem, &creds.key_pem)?;
        Ok(Self {
            serving_cert_pem: creds.serving_cert_pem.clone(),
            serving_key_pem: creds.key_pem.clone(),
            client_ca_pem: creds.ca_pem.clone(),
            control_plane: Some(rotating::client(&creds.ca_pem, client.clone(), &[b"h2"])?),
            renewal: Some(Renewal {
                creds: creds.clone(),
                client,
                serving: Some(serving),
                serving_names: Vec::new(),
            }),
        })
    }
}

/// Whether a caller is the control plane: its certificate (already
/// verified against the client CA) names [`CONTROL_PLANE_USER`].
pub fn is_control_plane(peer: &skiff_proto::link::PeerInfo) -> bool {
    peer.user
        .as_ref()
        .is_some_and(|u| u.name == CONTROL_PLANE_USER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_pki::ca::{Ca, Request, Usage};

    fn issue(ca: &Ca, name: &str, key_pub: &str, usage: Usage, secs: u64) -> String {
        ca.sign_public_key_pem(
            &Request {
                common_name: format!("system:node:{name}"),
                organization: Some("system:nodes".into()),
                usage,
                valid_for: Duration::from_secs(secs),
            },
            key_pub,
        )
        .expect("signed")
    }

    fn credentials(ca: &Ca, serving_ca: &Ca, name: &str, secs: u64) -> Credentials {
        let (key_pem, public) = skiff_pki::ca::new_key_pair().expect("key");
        Credentials {
            ca_pem: ca.cert_pem().into(),
            client_cert_pem: issue(ca, name, &public, Usage::Client, secs),
            serving_cert_pem: issue(
                serving_ca,
                name,
                &public,
                Usage::Server {
                    names: vec!["127.0.0.1".into()],
                },
                secs,
            ),
            serving_ca_pem: serving_ca.cert_pem().into(),
            key_pem,
        }
    }

    #[test]
    fn kept_credentials_are_reused_only_while_good() {
        let ca_dir = tempfile::tempdir().expect("tempdir");
        let other_dir = tempfile::tempdir().expect("tempdir");
        let state = tempfile::tempdir().expect("tempdir");
        let ca = Ca::load_or_create(ca_dir.path()).expect("ca");
        let serving_ca =
            Ca::load_or_create_as(ca_dir.path(), skiff_pki::ca::KUBELET_SERVING).expect("ca");
        let other = Ca::load_or_create(other_dir.path()).expect("other");
        let good = credentials(&ca, &serving_ca, "n1", 30 * 24 * 3600);
        save(state.path(), &good).expect("saved");
        use std::os::unix::fs::PermissionsExt;
        for f in [CA, KEY, CLIENT_CERT, SERVING_CERT, SERVING_CA] {
            let mode = std::fs::metadata(dir(state.path()).join(f))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let hash = Trust::Hash(ca.hash());
        assert!(load(state.path(), "n1", Some(&hash)).is_some());
        assert!(
            load(
                state.path(),
                "n1",
                Some(&Trust::CaPem(ca.cert_pem().into()))
            )
            .is_some()
        );
        assert!(!serving_from_cluster_ca(state.path()));
        // Another name, another CA: join again.
        assert!(load(state.path(), "n2", Some(&hash)).is_none());
        assert!(load(state.path(), "n1", Some(&Trust::Hash(other.hash()))).is_none());
        // Short-lived but valid for more than a tenth of its lifetime:
        // reused (rotation renews it).
        save(state.path(), &credentials(&ca, &serving_ca, "n1", 3600)).expect("saved");
        assert!(load(state.path(), "n1", Some(&hash)).is_some());
        // Expired: not reused, and without a token the kubelet says it
        // must join again.
        save(state.path(), &credentials(&ca, &serving_ca, "n1", 1)).expect("saved");
        std::thread::sleep(Duration::from_millis(2100));
        assert!(load(state.path(), "n1", Some(&hash)).is_none());
        assert!(expired(state.path()));
        let e = no_kept_credentials(state.path()).expect_err("expired");
        assert!(
            e.to_string().contains("expired and cannot be renewed"),
            "{e}"
        );
    }

    fn kept(state: &Path) -> (String, String) {
        let read = |f: &str| std::fs::read_to_string(dir(state).join(f)).expect("kept file");
        (read(KEY), read(CLIENT_CERT))
    }

    #[test]
    fn a_renewal_replaces_the_kept_set_as_one_even_across_a_crash() {
        let ca_dir = tempfile::tempdir().expect("tempdir");
        let state = tempfile::tempdir().expect("tempdir");
        let ca = Ca::load_or_create(ca_dir.path()).expect("ca");
        let serving_ca =
            Ca::load_or_create_as(ca_dir.path(), skiff_pki::ca::KUBELET_SERVING).expect("ca");
        let hash = Trust::Hash(ca.hash());
        let old = credentials(&ca, &serving_ca, "n1", 30 * 24 * 3600);
        let new = credentials(&ca, &serving_ca, "n1", 30 * 24 * 3600);
        save(state.path(), &old).expect("saved");
        save(state.path(), &new).expect("renewed");
        assert_eq!(
            kept(state.path()),
            (new.key_pem.clone(), new.client_cert_pem.clone())
        );
        assert!(
            !dir(state.path()).join(NEXT).exists(),
            "journal left behind"
        );

        // Stopped while staging (no marker): the old set stays.
        save(state.path(), &old).expect("saved");
        let next = dir(state.path()).join(NEXT);
        std::fs::create_dir_all(&next).expect("staging");
        std::fs::write(next.join(KEY), &new.key_pem).expect("staged key");
        let loaded = load(state.path(), "n1", Some(&hash)).expect("old set");
        assert_eq!(loaded.key_pem, old.key_pem);
        assert_eq!(loaded.client_cert_pem, old.client_cert_pem);
        assert!(!next.exists(), "an incomplete stage is thrown away");

        // Stopped between the renames (marker written, key moved, the
        // certificates not): the new set is finished on load.
        save(state.path(), &old).expect("saved");
        std::fs::create_dir_all(&next).expect("staging");
        for (f, text) in [
            (CA, &new.ca_pem),
            (CLIENT_CERT, &new.client_cert_pem),
            (SERVING_CERT, &new.serving_cert_pem),
            (SERVING_CA, &new.serving_ca_pem),
            (COMPLETE, &String::new()),
        ] {
            std::fs::write(next.join(f), text).expect("staged");
        }
        std::fs::write(dir(state.path()).join(KEY), &new.key_pem).expect("moved key");
        let loaded = load(state.path(), "n1", Some(&hash)).expect("new set");
        assert_eq!(loaded.key_pem, new.key_pem);
        assert_eq!(loaded.client_cert_pem, new.client_cert_pem);
        assert_eq!(loaded.serving_cert_pem, new.serving_cert_pem);
        assert!(!next.exists());
        // The pair loads: key and certificate belong together.
        skiff_pki::rotating::Rotating::new(&loaded.client_cert_pem, &loaded.key_pem)
            .expect("a matching pair");
    }

    /// A state dir from before the kubelet-serving CA: the serving
    /// certificate from the cluster CA and no `kubelet-serving-ca.crt`.
    fn old_layout(state: &Path, ca: &Ca) {
        let old = credentials(ca, ca, "n1", 30 * 24 * 3600);
        save(state, &old).expect("saved");
        std::fs::remove_file(dir(state).join(SERVING_CA)).expect("removed");
    }

    #[tokio::test]
    async fn a_serving_certificate_from_the_cluster_ca_is_not_reused() {
        let ca_dir = tempfile::tempdir().expect("tempdir");
        let state = tempfile::tempdir().expect("tempdir");
        let ca = Ca::load_or_create(ca_dir.path()).expect("ca");
        old_layout(state.path(), &ca);
        let hash = Trust::Hash(ca.hash());
        assert!(serving_from_cluster_ca(state.path()));
        assert!(load(state.path(), "n1", Some(&hash)).is_none());
        // Nor when a cluster CA copy is written where the serving CA goes.
        save(state.path(), &credentials(&ca, &ca, "n1", 30 * 24 * 3600)).expect("saved");
        assert!(load(state.path(), "n1", Some(&hash)).is_none());
        // Without a token the kubelet says what to do.
        let join = Join {
            control_plane: "127.0.0.1:1".into(),
            token: None,
            trust: hash,
            node_name: "n1".into(),
            serving_names: vec![],
            patience: Duration::ZERO,
        };
        let e = load_or_join(state.path(), &join)
            .await
            .expect_err("no token");
        assert!(matches!(e, IdentityError::ServingFromClusterCa(_)), "{e}");
        assert!(e.to_string().contains("join again with --token"), "{e}");
    }
}
