//! Node identity: kubelets join with a bootstrap token and get node
//! certificates; a node's certificate registers and watches only its own
//! node; the kubelet answers only the control plane's certificate (except
//! `/healthz`); wrong, expired and deleted tokens cannot join; `skiff
//! server` + `skiff agent` make a cluster.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_agent_client::NodeAgentClient;
use skiff_proto::node::v1::node_registry_client::NodeRegistryClient;
use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
use skiff_tests::kubelet::{TestKubelet, make_serving_certificate_from_cluster_ca};
use skiff_tests::server::{SkiffServer, running_under, start_agent, terminate};
use skiff_tests::{TestEnv, e2e_enabled, free_port, workspace_binary};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A TLS client trusting `ca_pem`, presenting the kept node
/// certificate of the kubelet whose state dir is `state` (or none).
fn node_client(ca_pem: &str, state: Option<&Path>, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let identity = state.map(|s| {
        (
            read(&s.join("pki/kubelet-client.crt")),
            read(&s.join("pki/kubelet.key")),
        )
    });
    skiff_pki::tls::client(
        ca_pem,
        identity.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
        &[alpn],
    )
    .expect("client TLS")
}

fn register(name: &str) -> pb::RegisterRequest {
    pb::RegisterRequest {
        node_name: name.into(),
        labels: Default::default(),
        status: None,
        agent_endpoint: "127.0.0.1:1".into(),
    }
}

#[tokio::test]
async fn node_certificates_act_only_for_their_node() {
    if !kubectl_enabled("node_certificates_act_only_for_their_node") {
        return;
    }
    let Some(env) = TestEnv::start("node_certificates_act_only_for_their_node").await else {
        return;
    };
    let cp = TestControlPlane::start().await;
    let node1 = format!("n{}a", std::process::id());
    let node2 = format!("n{}b", std::process::id());
    let kubelet = TestKubelet::start_with(&env, &node1, &["--control-plane", &cp.grpc]).await;
    cp.eventually(&["get", "nodes"], "node1 Ready", |o| {
        o.contains(&node1) && o.contains(" Ready ")
    });
    // The token is a Secret kubectl lists; the node's key stays on it.
    let token = cp.join_token();
    let id = token.split_once('.').expect("id").0;
    let secrets = cp.kubectl_ok(&["get", "secrets", "-n", "kube-system"]);
    assert!(
        secrets.contains(&format!("bootstrap-token-{id}"))
            && secrets.contains("bootstrap.kubernetes.io/token"),
        "{secrets}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(kubelet.state_dir.join("pki/kubelet.key"))
        .expect("kept key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let subject = skiff_pki::identity::subject(
        &skiff_pki::pem::certificates(
            &read(&kubelet.state_dir.join("pki/kubelet-client.crt")),
            "c",
        )
        .expect("pem")[0],
    )
    .expect("subject");
    assert_eq!(subject.name, format!("system:node:{node1}"));
    assert_eq!(subject.groups, vec!["system:nodes".to_string()]);

    // node1's certificate cannot register node2, nor watch its network.
    let ca = read(&cp.data_dir().join("pki/ca.crt"));
    let as_node1 = skiff_proto::link::connect_tls(
        &cp.grpc,
        node_client(&ca, Some(&kubelet.state_dir), b"h2"),
        None,
    )
    .await
    .expect("connect as node1");
    let mut registry = NodeRegistryClient::new(as_node1);
    let refused = registry
        .register(register(&node2))
        .await
        .expect_err("node1 registering node2");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert_eq!(
        refused.message(),
        format!("node \"{node1}\" is not allowed to modify node \"{node2}\"")
    );
    let watch = registry
        .watch_network(pb::WatchNetworkRequest {
            node_name: node2.clone(),
        })
        .await
        .map(drop)
        .expect_err("node1 watching node2");
    assert_eq!(watch.code(), tonic::Code::PermissionDenied);
    // A heartbeat stream carrying node2's status is cut.
    let beat = pb::Heartbeat {
        session_id: String::new(),
        status: Some(pb::NodeStatus {
            addresses: vec![pb::NodeAddress {
                r#type: "Hostname".into(),
                address: node2.clone(),
            }],
            ..Default::default()
        }),
    };
    let beats = registry
        .heartbeats(tokio_stream::iter(vec![beat]))
        .await
        .expect_err("node1 beating for node2");
    assert_eq!(beats.code(), tonic::Code::PermissionDenied);
    let nodes = cp.kubectl_ok(&["get", "nodes"]);
    assert!(!nodes.contains(&node2), "{nodes}");
    // Over the API (Node authorizer): node1's certificate reads nodes,
    // but cannot create a node nor touch a pod bound to node2.
    let api_as_node1 = node_client(&ca, Some(&kubelet.state_dir), b"http/1.1");
    let (status, body) =
        skiff_tests::api_tls::get_with(api_as_node1.clone(), &cp.address, "/api/v1/nodes")
            .expect("list nodes");
    assert_eq!(status, 200, "{body}");
    let other = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"theirs"}},"spec":{{"nodeName":"{node2}","containers":[{{"name":"c","image":"busybox"}}]}}}}"#
    );
    let (status, body) = skiff_tests::request(
        "POST",
        &cp.address,
        "/api/v1/namespaces/default/pods",
        &other,
    )
    .expect("create as admin");
    assert_eq!(status, 201, "{body}");
    let theirs = "/api/v1/namespaces/default/pods/theirs";
    let denied = |method: &str, path: &str, body: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, answer) = skiff_tests::api_tls::request_with(
                api_as_node1.clone(),
                method,
                &cp.address,
                path,
                body,
            )
            .expect("request as node1");
            // The authorizer's pod index follows the store: a moment.
            if status == 403 || Instant::now() > deadline {
                return (status, answer);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let (status, body) = denied("GET", theirs, "");
    assert_eq!(status, 403, "{body}");
    let message = serde_json::from_str::<serde_json::Value>(&body).expect("Status")["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        message,
        format!(
            "pods \"theirs\" is forbidden: User \"system:node:{node1}\" cannot get resource \"pods\" in API group \"\" in the namespace \"default\": no relationship found between node '{node1}' and this object"
        )
    );
    let (status, body) = denied("DELETE", theirs, "");
    assert_eq!(status, 403, "{body}");
    let (status, body) = denied("PUT", &format!("{theirs}/status"), &other);
    assert_eq!(status, 403, "{body}");
    let second = format!(r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{node2}"}}}}"#);
    let (status, body) = denied("POST", "/api/v1/nodes", &second);
    assert_eq!(status, 403, "{body}");
    let (status, body) = denied("PATCH", &format!("/api/v1/nodes/{node2}"), "{}");
    assert_eq!(status, 403, "{body}");
    // No certificate: nothing but Join.
    let anonymous = skiff_proto::link::connect_tls(&cp.grpc, node_client(&ca, None, b"h2"), None)
        .await
        .expect("connect without a certificate");
    let refused = NodeRegistryClient::new(anonymous)
        .register(register(&node1))
        .await
        .expect_err("anonymous register");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    // The kubelet (its serving certificate from the kubelet-serving CA,
    // which callers of kubelets trust): gRPC refuses a node's certificate
    // (PermissionDenied) and none at all (the TLS handshake fails: the
    // connection is closed).
    let kubelet_ca = read(&cp.data_dir().join("pki/kubelet-serving-ca.crt"));
    for (who, state) in [
        ("a node", Some(kubelet.state_dir.as_path())),
        ("nobody", None),
    ] {
        let refused = match skiff_proto::link::connect_tls(
            &kubelet.grpc,
            node_client(&kubelet_ca, state, b"h2"),
            None,
        )
        .await
        {
            Ok(channel) => NodeAgentClient::new(channel)
                .get_node(pb::GetNodeRequest {})
                .await
                .map(drop),
            Err(e) => Err(tonic::Status::unavailable(e.to_string())),
        };
        let status = refused.expect_err(who);
        if state.is_some() {
            assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
            assert!(status.message().contains("system:node:"), "{status:?}");
        }
        assert!(
            matches!(
                status.code(),
                tonic::Code::PermissionDenied
                    | tonic::Code::Unavailable
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
            ),
            "{who}: {status:?}"
        );
    }
    // Plain gRPC (no TLS) is refused too.
    let plain = skiff_proto::link::connect(format!("http://{}", kubelet.grpc)).await;
    if let Ok(channel) = plain {
        assert!(
            NodeAgentClient::new(channel)
                .get_node(pb::GetNodeRequest {})
                .await
                .is_err()
        );
    }
    // The control plane's certificate is answered.
    kubelet
        .client()
        .await
        .get_node(pb::GetNodeRequest {})
        .await
        .expect("the control plane is answered");
    // HTTP: /healthz to anyone, /pods to the control plane only.
    let anonymous = node_client(&kubelet_ca, None, b"http/1.1");
    let (status, _) = skiff_tests::api_tls::get_with(anonymous.clone(), &kubelet.http, "/healthz")
        .expect("healthz");
    assert_eq!(status, 200);
    let (status, _) =
        skiff_tests::api_tls::get_with(anonymous, &kubelet.http, "/pods").expect("pods");
    assert_eq!(status, 401);
    let as_node = node_client(&kubelet_ca, Some(&kubelet.state_dir), b"http/1.1");
    let (status, body) =
        skiff_tests::api_tls::get_with(as_node, &kubelet.http, "/pods").expect("pods");
    assert_eq!(status, 403, "{body}");
    // ... and the control plane's certificate is (pods() asserts 200).
    kubelet.pods();
}

#[tokio::test]
async fn wrong_expired_and_deleted_tokens_cannot_join() {
    if !e2e_enabled("wrong_expired_and_deleted_tokens_cannot_join") {
        return;
    }
    let cp = TestControlPlane::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // A good token joins (then fails on the missing containerd).
    let (joined, log) = cp.try_join(dir.path(), "good", &cp.join_token());
    assert!(joined, "{log}");
    let (joined, log) = cp.try_join(dir.path(), "wrong", "abcdef.0000000000000000");
    assert!(!joined && log.contains("refused to join"), "{log}");
    let (joined, log) = cp.try_join(dir.path(), "malformed", "not-a-token");
    assert!(!joined && log.contains("refused to join"), "{log}");
    cp.create_bootstrap_token("expire.0123456789abcdef", Some("2020-01-01T00:00:00Z"));
    let (joined, log) = cp.try_join(dir.path(), "expired", "expire.0123456789abcdef");
    assert!(!joined && log.contains("refused to join"), "{log}");
    cp.create_bootstrap_token("revoke.0123456789abcdef", None);
    let (joined, log) = cp.try_join(dir.path(), "before", "revoke.0123456789abcdef");
    assert!(joined, "{log}");
    cp.kubectl_ok(&[
        "delete",
        "secret",
        "-n",
        "kube-system",
        "bootstrap-token-revoke",
    ]);
    let (joined, log) = cp.try_join(dir.path(), "after", "revoke.0123456789abcdef");
    assert!(!joined && log.contains("refused to join"), "{log}");
}

#[test]
fn skiff_server_and_agent_make_a_cluster() {
    if !kubectl_enabled("skiff_server_and_agent_make_a_cluster")
        || !e2e_enabled("skiff_server_and_agent_make_a_cluster")
    {
        return;
    }
    let temp = tempfile::Builder::new()
        .prefix("skiff-server-")
        .tempdir()
        .expect("tempdir");
    let agent_dir = temp.path().join("agent");
    let server = SkiffServer::start(&temp.path().join("server"));
    let node = format!("agent{}", std::process::id());
    let kubelet_port = free_port().to_string();
    let mut agent = start_agent(
        &server.agent_line,
        &agent_dir,
        &[
            "--node-name",
            &node,
            "--pod-network",
            "none",
            "--kubelet-port",
            &kubelet_port,
        ],
    );
    let until = |what: &str, check: &dyn Fn(&str) -> bool, args: &[&str]| {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let out = server.kubectl(args);
            if check(&out) {
                return out;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(agent_dir.join(format!("logs/{node}.log")))
                    .unwrap_or_default();
                panic!("{what}: {out}\nagent's kubelet log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    until(
        "the agent's node Ready",
        &|o| o.contains(&node) && o.contains(" Ready "),
        &["get", "nodes"],
    );
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: joined}}\nspec:\n  nodeName: {node}\n  containers: [{{name: web, image: skiff.dev/webapp:v1}}]\n"
    );
    let file = temp.path().join("pod.yaml");
    std::fs::write(&file, pod).expect("write");
    server.kubectl(&["apply", "-f", &file.display().to_string()]);
    until(
        "the pod Running",
        &|o| o.contains("Running"),
        &["get", "pod", "joined"],
    );
    terminate(&mut agent);

    // A node kept from before the kubelet-serving CA (its serving
    // certificate from the cluster CA): without a token the agent stops
    // and says to join again; with one it joins again.
    let state = agent_dir.join("nodes").join(&node);
    make_serving_certificate_from_cluster_ca(&temp.path().join("server/pki"), &state, &node);
    // The printed line without its --token and --data-dir (given here).
    let words: Vec<&str> = server.agent_line.split_whitespace().skip(1).collect();
    let mut args: Vec<&str> = Vec::new();
    let mut pairs = words.iter();
    while let Some(word) = pairs.next() {
        if *word == "--token" || *word == "--data-dir" {
            pairs.next();
        } else {
            args.push(word);
        }
    }
    assert!(
        server.agent_line.contains("--token"),
        "{}",
        server.agent_line
    );
    let refused = Command::new(workspace_binary("skiff"))
        .args(&args)
        .args(["--data-dir", &agent_dir.display().to_string()])
        .args(["--node-name", &node, "--pod-network", "none"])
        .args(["--kubelet-port", &kubelet_port])
        .output()
        .expect("skiff agent");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{err}");
    assert!(
        err.contains("was signed by the cluster CA") && err.contains("join again with --token"),
        "{err}"
    );
    let mut agent = start_agent(
        &server.agent_line,
        &agent_dir,
        &[
            "--node-name",
            &node,
            "--pod-network",
            "none",
            "--kubelet-port",
            &kubelet_port,
        ],
    );
    // The node still shows Ready from before: the re-join is seen in the
    // kept files.
    let rejoined = state.join("pki/kubelet-serving-ca.crt");
    let deadline = Instant::now() + Duration::from_secs(180);
    while !rejoined.exists() {
        assert!(Instant::now() < deadline, "the agent did not join again");
        std::thread::sleep(Duration::from_millis(200));
    }
    let serving_ca = read(&rejoined);
    assert_eq!(
        serving_ca,
        read(&temp.path().join("server/pki/kubelet-serving-ca.crt"))
    );
    skiff_pki::identity::verify(
        &serving_ca,
        &read(&state.join("pki/kubelet.crt")),
        Duration::from_secs(3600),
    )
    .expect("a serving certificate from the kubelet-serving CA");
    // The control plane reaches the re-joined kubelet.
    until(
        "kubectl logs through the re-joined kubelet",
        &|o| !o.contains("Error") && !o.contains("error"),
        &["logs", "joined"],
    );
    terminate(&mut agent);
    server.stop();
    let left = running_under(temp.path());
    assert!(left.is_empty(), "left running: {left:?}");
}
