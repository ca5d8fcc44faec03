//! Hollow nodes for the scheduler benches: whole Skiff kubelets started in
//! the bench's own process from the library (`skiff_kubelet::app::start`),
//! with node agent, pod actors, gRPC and HTTP servers, registration and
//! heartbeats over the real gRPC NodeRegistry. Only the container runtime
//! and the pod network are fakes, so a thousand of them need neither root
//! nor containerd (upstream's kubemark idea).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use skiff_images::ImageName;
use skiff_kubelet::app::{KubeletConfig, Running, start};
use skiff_kubelet::node::identity::KubeletTls;
use skiff_kubelet::pod::backoff::BackoffConfig;
use skiff_kubelet::pod::dns::NodeDns;
use skiff_kubelet::pod::sandbox::FakeNetwork;
use skiff_kubelet::runtime::fake::FakeRuntime;

/// The image every hollow node holds; bench pods use it.
pub const IMAGE: &str = "skiff.dev/webapp:v1";

/// The label every hollow node carries.
pub const LABEL: (&str, &str) = ("skiff.dev/hollow", "true");

/// Starts hollow node `name` (state under `dir/name`) registering with the
/// control plane's gRPC address `control_plane`, whose CA is in `pki`.
pub async fn node(name: String, dir: &Path, control_plane: &str, pki: &Path) -> Running {
    let tls = node_tls(&name, pki);
    let runtime = Arc::new(FakeRuntime::new());
    runtime.add_image(ImageName::parse(IMAGE).expect("valid image"));
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let config = KubeletConfig {
        state_dir: dir.join(&name),
        node_name: name,
        manifests_dir: None,
        image_dir: None,
        http_listen: any,
        grpc_listen: any,
        node_ip: Some("127.0.0.1".into()),
        backoff: BackoffConfig::default(),
        control_plane: Some(control_plane.to_string()),
        node_labels: HashMap::from([(LABEL.0.to_string(), LABEL.1.to_string())]),
        node_network: None,
        watch_services: false,
        // As a node of a real cluster: the kube-dns address, no node file.
        dns: NodeDns {
            cluster_dns: vec![std::net::Ipv4Addr::new(10, 96, 0, 10).into()],
            ..NodeDns::default()
        },
        seccomp_default: false,
        tls,
    };
    start(config, runtime, Arc::new(FakeNetwork::default()))
        .await
        .expect("hollow node starts")
}

/// A hollow node's certificates, issued straight from the control plane's
/// CAs in `pki` (the client certificate from the cluster CA, the serving
/// one from the kubelet-serving CA) (this process started it, so its CA is at hand; joining a
/// thousand nodes by token would measure joins).
fn node_tls(name: &str, pki: &Path) -> KubeletTls {
    use skiff_pki::ca::{Ca, Request, Usage};
    let ca = Ca::load(pki).expect("the control plane's CA");
    let serving_ca = Ca::load_as(pki, skiff_pki::ca::KUBELET_SERVING)
        .expect("the control plane's kubelet-serving CA");
    let (key_pem, public) = skiff_pki::ca::new_key_pair().expect("key");
    let sign = |ca: &Ca, usage| {
        ca.sign_public_key_pem(
            &Request {
                common_name: format!("system:node:{name}"),
                organization: Some("system:nodes".into()),
                usage,
                valid_for: std::time::Duration::from_secs(24 * 3600),
            },
            &public,
        )
        .expect("node certificate")
    };
    let client = sign(&ca, Usage::Client);
    let serving = sign(
        &serving_ca,
        Usage::Server {
            names: vec!["127.0.0.1".into(), name.to_string()],
        },
    );
    KubeletTls {
        serving_cert_pem: serving,
        serving_key_pem: key_pem.clone(),
        client_ca_pem: ca.cert_pem().to_string(),
        control_plane: Some(
            skiff_pki::tls::client(ca.cert_pem(), Some((&client, &key_pem)), &[b"h2"])
                .expect("client TLS"),
        ),
        renewal: None,
    }
}

/// A thousand nodes hold several sockets each: lift the soft limit on open
/// files to the hard one.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
