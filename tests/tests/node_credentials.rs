//! Least privilege for node credentials: a joined node's serving
//! certificate comes from the kubelet-serving CA, so a client configured
//! as a kubeconfig is (trusting the cluster CA) never takes it for the API
//! server, while the control plane still reaches kubelets with it; Join
//! refuses the API server's own names; a node gets a ServiceAccount token
//! for its pod only for an audience the pod projects; a kubelet kept from
//! before the kubelet-serving CA joins again on its next start.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_bootstrap_client::NodeBootstrapClient;
use skiff_proto::node::v1::node_registry_client::NodeRegistryClient;
use skiff_tests::TestEnv;
use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
use skiff_tests::kubelet::{TestKubelet, make_serving_certificate_from_cluster_ca};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What a Join answered, with the key it was asked for.
struct Joined {
    key_pem: String,
    response: pb::JoinResponse,
}

/// Joins `node` at `cp` with its token, asking for `names`.
async fn join(cp: &TestControlPlane, node: &str, names: &[&str]) -> Result<Joined, tonic::Status> {
    let ca = read(&cp.data_dir().join("pki/ca.crt"));
    let (key_pem, public_key_pem) = skiff_pki::ca::new_key_pair().expect("key");
    let tls = skiff_pki::tls::client(&ca, None, &[b"h2"]).expect("TLS");
    let channel = skiff_proto::link::connect_tls(&cp.grpc, tls, None)
        .await
        .expect("the node port");
    NodeBootstrapClient::new(channel)
        .join(pb::JoinRequest {
            token: cp.join_token(),
            node_name: node.into(),
            public_key_pem,
            serving_names: names.iter().map(|n| n.to_string()).collect(),
        })
        .await
        .map(|r| Joined {
            key_pem,
            response: r.into_inner(),
        })
}

/// The TLS client `cp`'s kubeconfig describes: its cluster's
/// `certificate-authority-data` as the only root, its user's certificate.
fn kubeconfig_client(cp: &TestControlPlane) -> Arc<rustls::ClientConfig> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&read(&cp.data_dir().join("kubeconfig"))).expect("kubeconfig YAML");
    let data = |v: &serde_yaml::Value| {
        let text = v.as_str().expect("a *-data field");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("base64");
        String::from_utf8(bytes).expect("PEM")
    };
    let ca = data(&doc["clusters"][0]["cluster"]["certificate-authority-data"]);
    let cert = data(&doc["users"][0]["user"]["client-certificate-data"]);
    let key = data(&doc["users"][0]["user"]["client-key-data"]);
    skiff_pki::tls::client(&ca, Some((&cert, &key)), &[b"http/1.1"]).expect("client TLS")
}

/// One TLS handshake: a server on a local port presenting `cert_pem`
/// with `key_pem`, `client` dialling it as `127.0.0.1`. The client's
/// verdict.
fn handshake(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
    client: Arc<rustls::ClientConfig>,
) -> Result<(), String> {
    let server = skiff_pki::tls::server(
        cert_pem,
        key_pem,
        client_ca_pem,
        skiff_pki::tls::ClientAuth::Optional,
        &[b"http/1.1"],
    )
    .expect("server TLS");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let address = listener.local_addr().expect("address").to_string();
    let served = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().expect("accept");
        tcp.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut connection = rustls::ServerConnection::new(server).expect("server connection");
        while connection.is_handshaking() {
            if connection.complete_io(&mut tcp).is_err() {
                break;
            }
        }
    });
    let verdict = (|| {
        let mut stream = skiff_pki::tls::connect_blocking(client, &address, Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })();
    served.join().expect("server thread");
    verdict
}

#[tokio::test]
async fn a_nodes_serving_certificate_does_not_pass_for_the_api_server() {
    let cp = TestControlPlane::start().await;
    let pki = cp.data_dir().join("pki");
    let node = format!("n{}c", std::process::id());
    // Names the API server's certificate carries too.
    let joined = join(&cp, &node, &["127.0.0.1", "localhost"])
        .await
        .expect("joined");
    let cluster_ca = read(&pki.join("ca.crt"));
    let serving_ca = read(&pki.join("kubelet-serving-ca.crt"));
    assert_eq!(joined.response.ca_cert_pem, cluster_ca);
    assert_eq!(joined.response.kubelet_serving_ca_pem, serving_ca);
    assert_ne!(cluster_ca, serving_ca);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(pki.join("kubelet-serving-ca.key"))
        .expect("the kubelet-serving CA's key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The node's serving certificate on a local port: a client configured
    // as the kubeconfig refuses it for 127.0.0.1...
    let serving = &joined.response.serving_cert_pem;
    let refused = handshake(
        serving,
        &joined.key_pem,
        &cluster_ca,
        kubeconfig_client(&cp),
    )
    .expect_err("a node's serving certificate taken for the API server");
    assert!(
        refused.contains("UnknownIssuer") || refused.contains("invalid peer certificate"),
        "{refused}"
    );
    // ...while it takes the API server's own certificate there, so the
    // refusal is the issuer's, not the name's or the setup's...
    handshake(
        &read(&pki.join("apiserver.crt")),
        &read(&pki.join("apiserver.key")),
        &cluster_ca,
        kubeconfig_client(&cp),
    )
    .expect("the API server's certificate");
    // ...and the control plane's client of kubelets takes the node's.
    let kubelet_client = skiff_pki::tls::client(
        &serving_ca,
        Some((
            &read(&pki.join("apiserver-kubelet-client.crt")),
            &read(&pki.join("apiserver-kubelet-client.key")),
        )),
        &[b"http/1.1"],
    )
    .expect("client TLS");
    handshake(
        serving,
        &joined.key_pem,
        &cluster_ca,
        kubelet_client.clone(),
    )
    .expect("the control plane takes a kubelet's serving certificate");
    // Nor does the control plane take a kubelet presenting a certificate
    // of the cluster CA (e.g. the API server's).
    let e = handshake(
        &read(&pki.join("apiserver.crt")),
        &read(&pki.join("apiserver.key")),
        &cluster_ca,
        kubelet_client,
    )
    .expect_err("a cluster-CA certificate taken for a kubelet");
    assert!(e.contains("UnknownIssuer"), "{e}");

    // The API server's names are refused at Join.
    let (_, service) = skiff_tests::request(
        "GET",
        &cp.address,
        "/api/v1/namespaces/default/services/kubernetes",
        "",
    )
    .expect("the kubernetes Service");
    let service: serde_json::Value = serde_json::from_str(&service).expect("JSON");
    let cluster_ip = service["spec"]["clusterIP"]
        .as_str()
        .expect("clusterIP")
        .to_string();
    for api in [
        "kubernetes",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        cluster_ip.as_str(),
    ] {
        let refused = join(&cp, &node, &["127.0.0.1", api])
            .await
            .map(drop)
            .expect_err(api);
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{api}");
        assert_eq!(
            refused.message(),
            format!("invalid serving name {api:?}: a name of the API server cannot be a node's")
        );
    }
}

#[tokio::test]
async fn a_node_gets_pod_tokens_only_for_audiences_the_pod_projects() {
    let cp = TestControlPlane::start().await;
    let node = format!("n{}t", std::process::id());
    let joined = join(&cp, &node, &["127.0.0.1"]).await.expect("joined");
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "vaulted", "namespace": "default"},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "busybox",
                "volumeMounts": [{"name": "vault-token", "mountPath": "/vault"}]}],
            "volumes": [{"name": "vault-token", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token", "audience": "vault"}}]}}]
        }
    });
    // The default ServiceAccount comes shortly after start.
    let created = skiff_tests::eventually("the pod", Duration::from_secs(30), || async {
        let (status, body) = skiff_tests::request(
            "POST",
            &cp.address,
            "/api/v1/namespaces/default/pods",
            &pod.to_string(),
        )
        .ok()?;
        (status == 201).then(|| serde_json::from_str::<serde_json::Value>(&body).expect("JSON"))
    })
    .await;
    let uid = created["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();

    let identity = skiff_pki::tls::client(
        &joined.response.ca_cert_pem,
        Some((&joined.response.client_cert_pem, &joined.key_pem)),
        &[b"h2"],
    )
    .expect("node TLS");
    let channel = skiff_proto::link::connect_tls(&cp.grpc, identity, None)
        .await
        .expect("the node port as the node");
    let mut registry = NodeRegistryClient::new(channel);
    let ask = |audiences: &[&str]| pb::PodTokenRequest {
        node_name: node.clone(),
        pod_uid: uid.clone(),
        audiences: audiences.iter().map(|a| a.to_string()).collect(),
        expiration_seconds: 3600,
        namespace: "default".into(),
        pod_name: "vaulted".into(),
    };
    let token = registry
        .request_pod_token(ask(&["vault"]))
        .await
        .expect("the audience the pod projects")
        .into_inner()
        .token;
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("claims");
    assert_eq!(claims["aud"], serde_json::json!(["vault"]), "{claims}");

    let foreign = registry
        .request_pod_token(ask(&["bank"]))
        .await
        .expect_err("a foreign audience");
    assert_eq!(foreign.code(), tonic::Code::PermissionDenied);
    assert_eq!(
        foreign.message(),
        format!(
            "serviceaccounts \"default\" is forbidden: audience \"bank\" not found in pod spec \
             volume, system:node:{node} is not authorized to request tokens for this audience"
        )
    );
    let two = registry
        .request_pod_token(ask(&["vault", "bank"]))
        .await
        .expect_err("two audiences");
    assert_eq!(
        two.message(),
        "serviceaccounts \"default\" is forbidden: node may only request 0 or 1 audiences"
    );
}

#[tokio::test]
async fn a_kubelet_with_a_cluster_ca_serving_certificate_joins_again_and_stays_reachable() {
    const TEST: &str = "a_kubelet_with_a_cluster_ca_serving_certificate_joins_again";
    if !kubectl_enabled(TEST) {
        return;
    }
    let Some(env) = TestEnv::start(TEST).await else {
        return;
    };
    let cp = TestControlPlane::start().await;
    let node = format!("n{}m", std::process::id());
    let mut kubelet = TestKubelet::start_with(&env, &node, &["--control-plane", &cp.grpc]).await;
    cp.eventually(&["get", "nodes"], "the node Ready", |o| {
        o.contains(&node) && o.contains(" Ready ")
    });
    let manifest = cp.manifest(
        "talker.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: talker}}\nspec:\n  nodeName: {node}\n  containers:\n  - name: main\n    image: busybox\n    command: [sh, -c, 'echo hello from the pod; sleep 3600']\n"
        ),
    );
    cp.kubectl_ok(&["apply", "-f", &manifest]);
    cp.eventually(&["logs", "talker"], "logs through the API", |o| {
        o.contains("hello from the pod")
    });

    // The state an older control plane left: the serving certificate from
    // the cluster CA, which the control plane no longer takes for a
    // kubelet.
    kubelet.kill();
    let pki = cp.data_dir().join("pki");
    make_serving_certificate_from_cluster_ca(&pki, kubelet.state_dir(), &node);
    kubelet.restart().await;
    let state = kubelet.state_dir().join("pki");
    let serving_ca = read(&state.join("kubelet-serving-ca.crt"));
    assert_eq!(serving_ca, read(&pki.join("kubelet-serving-ca.crt")));
    let margin = Duration::from_secs(24 * 3600);
    skiff_pki::identity::verify(&serving_ca, &read(&state.join("kubelet.crt")), margin)
        .expect("a serving certificate from the kubelet-serving CA");
    assert!(
        kubelet
            .log()
            .contains("the kept serving certificate is from the cluster CA"),
        "{}",
        kubelet.log()
    );
    cp.eventually(&["logs", "talker"], "logs after the re-join", |o| {
        o.contains("hello from the pod")
    });
    let out = cp.eventually(
        &["exec", "talker", "--", "sh", "-c", "echo exec works"],
        "exec after the re-join",
        |o| o.contains("exec works"),
    );
    assert!(out.contains("exec works"), "{out}");
}
