//! Kubelet certificate rotation end to end: with
//! `--cluster-signing-duration 30s`, joined kubelets renew their node
//! certificates (new serial, new key) before they expire and stay Ready
//! and useful well past the first certificates' expiry, also across a
//! restart without joining again; `NodeBootstrap.Renew` issues only the
//! caller's own node and refuses an expired certificate.

use std::path::Path;
use std::time::{Duration, Instant};

use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_bootstrap_client::NodeBootstrapClient;
use skiff_tests::TestEnv;
use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
use skiff_tests::kubelet::TestKubelet;

const LIFETIME: Duration = Duration::from_secs(30);

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The kept client certificate and key of the kubelet with state `state`.
fn kept_pair(state: &Path) -> (String, String) {
    (
        read(&state.join("pki/kubelet-client.crt")),
        read(&state.join("pki/kubelet.key")),
    )
}

/// `Renew` for `node` over mutual TLS presenting `pair`.
async fn renew_as(
    grpc: &str,
    ca: &str,
    pair: &(String, String),
    node: &str,
) -> Result<pb::JoinResponse, String> {
    let tls = skiff_pki::tls::client(ca, Some((&pair.0, &pair.1)), &[b"h2"]).expect("client TLS");
    let channel = skiff_proto::link::connect_tls(grpc, tls, None)
        .await
        .map_err(|e| format!("connect: {e}: {:?}", std::error::Error::source(&e)))?;
    let (_, public_key_pem) = skiff_pki::ca::new_key_pair().expect("key");
    NodeBootstrapClient::new(channel)
        .renew(pb::RenewRequest {
            node_name: node.into(),
            public_key_pem,
            serving_names: vec!["127.0.0.1".into()],
        })
        .await
        .map(|r| r.into_inner())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

#[tokio::test]
async fn kubelets_renew_their_certificates_before_they_expire() {
    const TEST: &str = "kubelets_renew_their_certificates_before_they_expire";
    if !kubectl_enabled(TEST) {
        return;
    }
    let Some(env) = TestEnv::start(TEST).await else {
        return;
    };
    let cp = TestControlPlane::start_with(&["--cluster-signing-duration", "30s"]).await;
    let node1 = format!("r{}a", std::process::id());
    let node2 = format!("r{}b", std::process::id());
    let mut k1 = TestKubelet::start_with(&env, &node1, &["--control-plane", &cp.grpc]).await;
    let _k2 = TestKubelet::start_with(&env, &node2, &["--control-plane", &cp.grpc]).await;
    cp.eventually(&["get", "nodes"], "both nodes Ready", |o| {
        o.matches(" Ready ").count() == 2
    });
    let ca = read(&cp.data_dir().join("pki/ca.crt"));
    let first = kept_pair(&k1.state_dir);
    let first_serving = read(&k1.state_dir.join("pki/kubelet.crt"));
    let first_serial = skiff_pki::rotating::serial(&first.0).expect("serial");
    let (_, first_expiry) = skiff_pki::rotating::validity(&first.0).expect("validity");
    let (issued, _) = skiff_pki::rotating::lifetime(&first.0).expect("lifetime");
    let lifetime = first_expiry.duration_since(issued).expect("ordered");
    assert!(
        lifetime.as_secs().abs_diff(LIFETIME.as_secs()) <= 2,
        "{lifetime:?}"
    );

    // node1's certificate renews node1, not node2.
    let refused = renew_as(&cp.grpc, &ca, &first, &node2)
        .await
        .expect_err("node1 renewing node2");
    assert!(
        refused.contains("PermissionDenied")
            && refused.contains(&format!(
                "node \"{node1}\" is not allowed to modify node \"{node2}\""
            )),
        "{refused}"
    );

    // Well past the first certificates' expiry the node is still Ready
    // and its files hold a new certificate for a new key.
    let past = first_expiry + Duration::from_secs(10);
    while std::time::SystemTime::now() < past {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let renewed = kept_pair(&k1.state_dir);
    assert_ne!(
        skiff_pki::rotating::serial(&renewed.0).expect("serial"),
        first_serial
    );
    assert_ne!(renewed.1, first.1, "the key was not replaced");
    assert_ne!(read(&k1.state_dir.join("pki/kubelet.crt")), first_serving);
    assert!(
        skiff_pki::identity::verify(&ca, &renewed.0, Duration::from_secs(1)).is_ok(),
        "the kept certificate is not valid now"
    );
    assert!(
        k1.log().contains("node certificates renewed"),
        "{}",
        k1.log()
    );
    let nodes = cp.kubectl_ok(&["get", "nodes"]);
    assert_eq!(nodes.matches(" Ready ").count(), 2, "{nodes}");

    // The expired first certificate cannot renew anything.
    let expired = renew_as(&cp.grpc, &ca, &first, &node1)
        .await
        .expect_err("an expired certificate renewing");
    // The handshake refuses it (rustls: the peer certificate expired), so
    // the call never reaches the service.
    assert!(!expired.contains("PermissionDenied"), "{expired}");
    // The same call on the renewed certificate is served.
    let again = renew_as(&cp.grpc, &ca, &renewed, &node1)
        .await
        .expect("a valid certificate renews");
    assert!(!again.client_cert_pem.is_empty());

    // A new pod runs on node1 and the control plane reaches its kubelet
    // (logs over the kubelet's renewed serving certificate).
    cp.kubectl_ok(&[
        "run",
        "after-rotation",
        "--image=busybox",
        "--restart=Never",
        &format!("--overrides={{\"spec\":{{\"nodeName\":\"{node1}\"}}}}"),
        "--",
        "sh",
        "-c",
        "echo rotated; sleep 3600",
    ]);
    cp.eventually(&["get", "pod", "after-rotation"], "pod Running", |o| {
        o.contains("Running")
    });
    cp.eventually(&["logs", "after-rotation"], "pod logs", |o| {
        o.contains("rotated")
    });

    // Restarted after the first certificate expired, the kubelet uses the
    // renewed set it kept rather than joining again.
    let joins = k1.log().matches("joined; node certificates kept").count();
    k1.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !k1.log().contains("using the kept node certificates") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        k1.log().contains("using the kept node certificates"),
        "{}",
        k1.log()
    );
    assert_eq!(
        k1.log().matches("joined; node certificates kept").count(),
        joins,
        "joined again"
    );
    cp.eventually(&["get", "node", &node1], "node1 Ready after restart", |o| {
        o.contains(" Ready ")
    });
    cp.kubectl_ok(&["delete", "pod", "after-rotation", "--grace-period=1"]);
}
