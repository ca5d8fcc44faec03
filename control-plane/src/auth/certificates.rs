//! The certificates the control plane makes at start: the cluster CA (kept
//! from the first start), the API server's serving certificate (made anew
//! each start, so it always names the current addresses) and the admin's
//! client certificate for the kubeconfig (kept), and the kubelet-serving
//! CA that signs kubelets' serving certificates (kept; trusted only by the
//! control plane's client of kubelets).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use skiff_pki::PkiError;
use skiff_pki::ca::{Ca, Issued, Request, Usage};

/// The admin's user in the kubeconfig, as kubeadm names it.
pub const ADMIN_USER: &str = "kubernetes-admin";

/// `admin.crt` and `admin.key`, where clients on this machine (skiff's
/// CLI, tests) find the admin's credentials ([`skiff_pki::tls::admin_client`]).
const ADMIN_FILES: &str = "admin";

/// The control plane's client certificate toward kubelets, as kubeadm
/// names it (`apiserver-kubelet-client.crt`, user
/// `kube-apiserver-kubelet-client` in `system:masters`); kubelets accept
/// calls from this user only.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";
const KUBELET_CLIENT_FILES: &str = "apiserver-kubelet-client";

/// Serving certificates last a year, as kubeadm's.
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// What the API server serves with and hands out.
pub struct Certificates {
    /// The cluster CA.
    pub ca: Ca,
    /// The kubelet-serving CA: signs kubelets' serving certificates
    /// ([`skiff_pki::ca::KUBELET_SERVING`]).
    pub kubelet_serving_ca: Ca,
    /// The API's TLS configuration (client certificates optional).
    pub api_tls: Arc<rustls::ServerConfig>,
    /// The admin's certificate and key.
    pub admin: Issued,
    /// The node gRPC port's TLS configuration: the serving certificate
    /// followed by the CA (a joining node pins the CA by its hash), client
    /// certificates optional (`Join` comes without one; every other call
    /// checks for a node's).
    pub node_tls: Arc<rustls::ServerConfig>,
    /// The control plane as a client of kubelets (HTTP/2): its
    /// kubelet-client certificate (from the cluster CA, as kubeadm's),
    /// kubelets' serving certificates checked against the kubelet-serving
    /// CA alone.
    pub kubelet_client_tls: Arc<rustls::ClientConfig>,
}

/// The names the API server is reached at: as upstream's apiserver
/// certificate, the `kubernetes` Service's names and ClusterIP, loopback,
/// and the addresses it listens and is advertised on.
pub fn api_names(
    domain: &str,
    service_ip: IpAddr,
    addresses: &[IpAddr],
    extra: &[String],
) -> Vec<String> {
    let mut names: Vec<String> = vec![
        "localhost".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{domain}"),
        "127.0.0.1".into(),
        service_ip.to_string(),
    ];
    names.extend(
        addresses
            .iter()
            .filter(|ip| !ip.is_unspecified())
            .map(IpAddr::to_string),
    );
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

fn read_pair(dir: &Path, name: &str) -> Option<Issued> {
    let cert_pem = std::fs::read_to_string(dir.join(format!("{name}.crt"))).ok()?;
    let key_pem = std::fs::read_to_string(dir.join(format!("{name}.key"))).ok()?;
    Some(Issued { cert_pem, key_pem })
}

fn write_pair(dir: &Path, name: &str, issued: &Issued) -> Result<(), PkiError> {
    skiff_pki::ca::write_atomic(&dir.join(format!("{name}.key")), &issued.key_pem, 0o600)?;
    skiff_pki::ca::write_atomic(&dir.join(format!("{name}.crt")), &issued.cert_pem, 0o644)
}

/// Loads or makes everything under `pki_dir` for an API reached at `names`.
pub fn prepare(pki_dir: &Path, names: Vec<String>) -> Result<Certificates, PkiError> {
    let ca = Ca::load_or_create(pki_dir)?;
    let kubelet_serving_ca = Ca::load_or_create_as(pki_dir, skiff_pki::ca::KUBELET_SERVING)?;
    let serving = ca.issue(&Request {
        common_name: "kube-apiserver".into(),
        organization: None,
        usage: Usage::Server { names },
        valid_for: LEAF_VALIDITY,
    })?;
    write_pair(pki_dir, "apiserver", &serving)?;
    // A kept admin certificate is reused only if this CA issued it (the CA
    // files may have been replaced by hand) and it is still valid.
    debug_assert_eq!(skiff_pki::tls::ADMIN_CERT, format!("{ADMIN_FILES}.crt"));
    let admin = match read_pair(pki_dir, ADMIN_FILES).filter(|a| still_issued_by(&ca, a)) {
        Some(admin) => admin,
        None => {
            let admin = ca.issue(&Request {
                common_name: ADMIN_USER.into(),
                organization: Some(crate::auth::user::MASTERS.into()),
                usage: Usage::Client,
                valid_for: LEAF_VALIDITY,
            })?;
            write_pair(pki_dir, ADMIN_FILES, &admin)?;
            admin
        }
    };
    let api_tls = skiff_pki::tls::server(
        &serving.cert_pem,
        &serving.key_pem,
        ca.cert_pem(),
        skiff_pki::tls::ClientAuth::Optional,
        crate::alpn::API,
    )?;
    let node_tls = skiff_pki::tls::server(
        &format!("{}{}", serving.cert_pem, ca.cert_pem()),
        &serving.key_pem,
        ca.cert_pem(),
        skiff_pki::tls::ClientAuth::Optional,
        crate::alpn::NODES,
    )?;
    let kubelet_client =
        match read_pair(pki_dir, KUBELET_CLIENT_FILES).filter(|c| still_issued_by(&ca, c)) {
            Some(client) => client,
            None => {
                let client = ca.issue(&Request {
                    common_name: KUBELET_CLIENT_USER.into(),
                    organization: Some(crate::auth::user::MASTERS.into()),
                    usage: Usage::Client,
                    valid_for: LEAF_VALIDITY,
                })?;
                write_pair(pki_dir, KUBELET_CLIENT_FILES, &client)?;
                client
            }
        };
    let kubelet_client_tls = skiff_pki::tls::client(
        kubelet_serving_ca.cert_pem(),
        Some((&kubelet_client.cert_pem, &kubelet_client.key_pem)),
        &[b"h2"],
    )?;
    Ok(Certificates {
        ca,
        kubelet_serving_ca,
        api_tls,
        admin,
        node_tls,
        kubelet_client_tls,
    })
}

/// Whether `issued` chains to `ca` and is valid for at least another day.
fn still_issued_by(ca: &Ca, issued: &Issued) -> bool {
    skiff_pki::identity::verify(
        ca.cert_pem(),
        &issued.cert_pem,
        Duration::from_secs(24 * 3600),
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_certificate_names_the_service_and_the_addresses() {
        let names = api_names(
            "cluster.local",
            "10.96.0.1".parse().expect("ip"),
            &[
                "0.0.0.0".parse().expect("ip"),
                "192.168.56.10".parse().expect("ip"),
            ],
            &["lab.example".into(), "127.0.0.1".into()],
        );
        for n in [
            "kubernetes.default.svc.cluster.local",
            "10.96.0.1",
            "192.168.56.10",
            "lab.example",
            "127.0.0.1",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
        }
        assert!(!names.iter().any(|x| x == "0.0.0.0"));
        assert_eq!(names.iter().filter(|x| *x == "127.0.0.1").count(), 1);
    }

    #[test]
    fn the_kubelet_serving_ca_is_made_once_and_apart_from_the_cluster_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let names = vec!["127.0.0.1".to_string()];
        let first = prepare(dir.path(), names.clone()).expect("first");
        let again = prepare(dir.path(), names).expect("again");
        assert_eq!(
            first.kubelet_serving_ca.hash(),
            again.kubelet_serving_ca.hash()
        );
        assert_ne!(first.kubelet_serving_ca.hash(), first.ca.hash());
        use std::os::unix::fs::PermissionsExt;
        let key = dir.path().join(skiff_pki::ca::KUBELET_SERVING_CA_KEY);
        let mode = std::fs::metadata(key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // The control plane's certificate toward kubelets stays the
        // cluster CA's, as kubeadm's (kubelets check it with that CA).
        let client = std::fs::read_to_string(dir.path().join("apiserver-kubelet-client.crt"))
            .expect("kubelet client certificate");
        assert!(still_issued_by(
            &first.ca,
            &Issued {
                cert_pem: client,
                key_pem: String::new(),
            }
        ));
    }

    #[test]
    fn the_admin_certificate_is_kept_across_starts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let names = vec!["127.0.0.1".to_string()];
        let first = prepare(dir.path(), names.clone()).expect("first");
        let again = prepare(dir.path(), names).expect("again");
        assert_eq!(first.admin.cert_pem, again.admin.cert_pem);
        let subject = skiff_pki::identity::subject(
            &skiff_pki::pem::certificates(&first.admin.cert_pem, "admin").expect("pem")[0],
        )
        .expect("subject");
        assert_eq!(subject.name, ADMIN_USER);
        assert_eq!(subject.groups, vec![crate::auth::user::MASTERS.to_string()]);
    }
}
