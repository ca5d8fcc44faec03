//! The CertificateSigningRequest API with the real kubectl and openssl,
//! as the CKA's RBAC exercise does it: a key and request from openssl, a
//! CSR for `kubernetes.io/kube-apiserver-client`, `kubectl certificate
//! approve`, the issued certificate in a kubeconfig, upstream's 403 until
//! a RoleBinding, then 200; a denied request gets no certificate, a
//! `view` user cannot approve, a bad PEM is 422 in upstream's words.

use std::path::Path;
use std::process::{Command, Output};

use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn base64(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("base64");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("write");
    let out = child.wait_with_output().expect("base64 output");
    String::from_utf8(out.stdout).expect("utf-8")
}

fn decode_base64(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("base64");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    child.wait_with_output().expect("base64 output").stdout
}

fn csr_manifest(name: &str, request_b64: &str) -> String {
    format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  request: {request_b64}\n  signerName: kubernetes.io/kube-apiserver-client\n  expirationSeconds: 86400\n  usages: [client auth]\n"
    )
}

fn apply(cp: &TestControlPlane, file: &Path) -> Output {
    cp.kubectl(&["apply", "-f", file.to_str().expect("utf-8 path")])
}

fn text(out: &Output) -> (bool, String) {
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// kubectl with `kubeconfig` (a user of its own) and the cluster's HOME.
fn kubectl_with(cp: &TestControlPlane, kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    text(
        &cp.kubectl_command(args)
            .env("KUBECONFIG", kubeconfig)
            .output()
            .expect("run kubectl"),
    )
}

#[tokio::test]
async fn the_cka_certificate_flow_end_to_end() {
    if !kubectl_enabled("the_cka_certificate_flow_end_to_end") {
        return;
    }
    let tokens = tempfile::tempdir().expect("temp dir");
    let token_file = tokens.path().join("tokens.csv");
    std::fs::write(&token_file, "viewer-token,viewer,uid-viewer,\"\"\n").expect("token file");
    let cp = TestControlPlane::start_with(&[
        "--token-auth-file",
        token_file.to_str().expect("utf-8 path"),
    ])
    .await;
    let dir = cp.scratch().to_path_buf();

    // Discovery and the short name.
    let resources = cp.kubectl_ok(&["api-resources", "--api-group=certificates.k8s.io"]);
    assert!(
        resources.contains("certificatesigningrequests") && resources.contains("csr"),
        "{resources}"
    );

    openssl(&dir, &["genrsa", "-out", "john.key", "2048"]);
    openssl(
        &dir,
        &[
            "req",
            "-new",
            "-key",
            "john.key",
            "-out",
            "john.csr",
            "-subj",
            "/CN=john/O=devs",
        ],
    );
    let request = base64(&std::fs::read(dir.join("john.csr")).expect("csr"));
    let manifest = dir.join("john.yaml");
    std::fs::write(&manifest, csr_manifest("john", &request)).expect("manifest");
    let (ok, out) = text(&apply(&cp, &manifest));
    assert!(ok, "{out}");

    let listed = cp.kubectl_ok(&["get", "csr"]);
    let header = listed.lines().next().unwrap_or_default();
    for column in [
        "NAME",
        "AGE",
        "SIGNERNAME",
        "REQUESTOR",
        "REQUESTEDDURATION",
        "CONDITION",
    ] {
        assert!(header.contains(column), "{listed}");
    }
    let row = listed
        .lines()
        .find(|l| l.starts_with("john "))
        .unwrap_or_default();
    assert!(
        row.contains("kubernetes.io/kube-apiserver-client")
            && row.contains("kubernetes-admin")
            && row.contains("24h")
            && row.contains("Pending"),
        "{listed}"
    );

    // A view user can read requests but not approve them.
    cp.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "viewer-view",
        "--clusterrole=view",
        "--user=viewer",
    ]);
    let viewer_config = dir.join("viewer-kubeconfig");
    std::fs::write(
        &viewer_config,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: https://{}\n    certificate-authority: {}\ncontexts:\n- name: skiff\n  context: {{cluster: skiff, user: viewer, namespace: default}}\ncurrent-context: skiff\nusers:\n- name: viewer\n  user: {{token: viewer-token}}\n",
            cp.address,
            cp.data_dir().join("pki/ca.crt").display()
        ),
    )
    .expect("viewer kubeconfig");
    // upstream's `view` does not hold cluster-scoped CSRs at all.
    let (ok, out) = kubectl_with(&cp, &viewer_config, &["certificate", "approve", "john"]);
    assert!(!ok, "a view user approved: {out}");
    assert!(
        out.contains(
            "certificatesigningrequests.certificates.k8s.io \"john\" is forbidden: User \"viewer\" cannot get resource \"certificatesigningrequests\""
        ),
        "{out}"
    );
    // update on /approval is not enough: approving takes `approve` on the signer.
    cp.kubectl_ok(&[
        "create",
        "clusterrole",
        "csr-updater",
        "--verb=get,list,update",
        "--resource=certificatesigningrequests,certificatesigningrequests/approval",
    ]);
    cp.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "viewer-csr",
        "--clusterrole=csr-updater",
        "--user=viewer",
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (ok, out) = kubectl_with(&cp, &viewer_config, &["certificate", "approve", "john"]);
        assert!(!ok, "approved without approve on the signer: {out}");
        if out.contains("user not permitted to approve requests with signerName \"kubernetes.io/kube-apiserver-client\"") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{out}\n{}", cp.log());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let listed = cp.kubectl_ok(&["get", "csr", "john"]);
    assert!(listed.contains("Pending"), "{listed}");

    cp.kubectl_ok(&["certificate", "approve", "john"]);
    cp.eventually(&["get", "csr", "john"], "john issued", |out| {
        out.contains("Approved,Issued")
    });
    let issued = cp.kubectl_ok(&["get", "csr", "john", "-o", "jsonpath={.status.certificate}"]);
    std::fs::write(dir.join("john.crt"), decode_base64(issued.trim())).expect("crt");
    let subject = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(dir.join("john.crt"))
        .output()
        .expect("openssl x509");
    let subject = String::from_utf8_lossy(&subject.stdout).to_string();
    assert!(
        subject.contains("CN") && subject.contains("john") && subject.contains("devs"),
        "{subject}"
    );

    // What is decided and issued stays so: 422 in upstream's words, and
    // nothing stored changes.
    let stored: serde_json::Value =
        serde_json::from_str(&cp.kubectl_ok(&["get", "csr", "john", "-o", "json"])).expect("json");
    let path = "/apis/certificates.k8s.io/v1/certificatesigningrequests/john";
    let refused = |sub: &str, change: &dyn Fn(&mut serde_json::Value), why: &str| {
        let mut sent = stored.clone();
        change(&mut sent);
        let (status, body) = skiff_tests::request(
            "PUT",
            &cp.address,
            &format!("{path}/{sub}"),
            &sent.to_string(),
        )
        .expect("request");
        assert_eq!(status, 422, "{sub}: {body}");
        let message = serde_json::from_str::<serde_json::Value>(&body).expect("status")["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            message,
            format!("CertificateSigningRequest.certificates.k8s.io \"john\" is invalid: {why}"),
            "{sub}"
        );
    };
    let no_conditions =
        |c: &mut serde_json::Value| c["status"]["conditions"] = serde_json::json!([]);
    let removed =
        "status.conditions: Forbidden: updates may not remove a condition of type \"Approved\"";
    refused("approval", &no_conditions, removed);
    refused("status", &no_conditions, removed);
    let modified =
        "status.certificate: Forbidden: updates may not modify existing certificate content";
    refused(
        "status",
        &|c: &mut serde_json::Value| {
            c["status"]["certificate"] = serde_json::json!(base64(b"forged"))
        },
        modified,
    );
    refused(
        "status",
        &|c: &mut serde_json::Value| {
            c["status"]
                .as_object_mut()
                .expect("status")
                .remove("certificate");
        },
        modified,
    );
    let both = |c: &mut serde_json::Value| {
        c["status"]["conditions"]
            .as_array_mut()
            .expect("conditions")
            .push(serde_json::json!({"type": "Denied", "status": "True", "reason": "Late"}));
    };
    refused(
        "approval",
        &both,
        "status.conditions[1].type: Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive",
    );
    let after: serde_json::Value =
        serde_json::from_str(&cp.kubectl_ok(&["get", "csr", "john", "-o", "json"])).expect("json");
    assert_eq!(after["status"], stored["status"]);
    assert_eq!(
        after["metadata"]["resourceVersion"],
        stored["metadata"]["resourceVersion"]
    );

    // john's kubeconfig: 403 before a binding, 200 after.
    let john_config = dir.join("john-kubeconfig");
    std::fs::write(
        &john_config,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: https://{}\n    certificate-authority: {}\ncontexts:\n- name: skiff\n  context: {{cluster: skiff, user: john, namespace: default}}\ncurrent-context: skiff\nusers:\n- name: john\n  user:\n    client-certificate: {}\n    client-key: {}\n",
            cp.address,
            cp.data_dir().join("pki/ca.crt").display(),
            dir.join("john.crt").display(),
            dir.join("john.key").display()
        ),
    )
    .expect("john kubeconfig");
    let (ok, out) = kubectl_with(&cp, &john_config, &["get", "pods"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("pods is forbidden: User \"john\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""),
        "{out}"
    );
    cp.kubectl_ok(&[
        "create",
        "role",
        "pod-reader",
        "--verb=get,list",
        "--resource=pods",
    ]);
    cp.kubectl_ok(&[
        "create",
        "rolebinding",
        "john-reads",
        "--role=pod-reader",
        "--user=john",
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (ok, out) = kubectl_with(&cp, &john_config, &["get", "pods"]);
        if ok {
            assert!(out.contains("No resources found"), "{out}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{out}\n{}", cp.log());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // A denied request stays without a certificate.
    openssl(&dir, &["genrsa", "-out", "jane.key", "2048"]);
    openssl(
        &dir,
        &[
            "req", "-new", "-key", "jane.key", "-out", "jane.csr", "-subj", "/CN=jane",
        ],
    );
    let jane = dir.join("jane.yaml");
    let request = base64(&std::fs::read(dir.join("jane.csr")).expect("csr"));
    std::fs::write(&jane, csr_manifest("jane", &request)).expect("manifest");
    let (ok, out) = text(&apply(&cp, &jane));
    assert!(ok, "{out}");
    cp.kubectl_ok(&["certificate", "deny", "jane"]);
    cp.eventually(&["get", "csr", "jane"], "jane denied", |out| {
        out.contains("Denied")
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    let listed = cp.kubectl_ok(&["get", "csr", "jane"]);
    assert!(!listed.contains("Issued"), "{listed}");
    let cert = cp.kubectl_ok(&["get", "csr", "jane", "-o", "jsonpath={.status.certificate}"]);
    assert!(cert.trim().is_empty(), "{cert}");

    // A request that is no PEM CSR: 422 in upstream's words.
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, csr_manifest("bad", &base64(b"hello"))).expect("manifest");
    let (ok, out) = text(&apply(&cp, &bad));
    assert!(!ok, "{out}");
    assert!(
        out.contains("CertificateSigningRequest \"bad\" is invalid")
            && out.contains("spec.request: Invalid value")
            && out.contains("PEM block type must be CERTIFICATE REQUEST"),
        "{out}"
    );
    let (status, body) = skiff_tests::request(
        "POST",
        &cp.address,
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        &format!(
            r#"{{"apiVersion":"certificates.k8s.io/v1","kind":"CertificateSigningRequest","metadata":{{"name":"bad"}},"spec":{{"request":"{}","signerName":"kubernetes.io/kube-apiserver-client","usages":["client auth"]}}}}"#,
            base64(b"hello")
        ),
    )
    .expect("request");
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("PEM block type must be CERTIFICATE REQUEST"),
        "{body}"
    );

    // Nothing stored was lost.
    let names = cp.kubectl_ok(&["get", "csr", "-o", "name"]);
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        vec![
            "certificatesigningrequest.certificates.k8s.io/jane",
            "certificatesigningrequest.certificates.k8s.io/john"
        ],
        "{names}"
    );
    let john = cp.kubectl_ok(&["get", "csr", "john", "-o", "jsonpath={.status.certificate}"]);
    assert_eq!(john.trim(), issued.trim());

    // A node's request for its own client certificate is approved and
    // signed automatically, through kubeadm's binding of the selfnodeclient
    // role to system:nodes; without that binding it waits for a person.
    node_renewals_follow_kubeadms_binding(&cp, &dir);
}

fn node_renewals_follow_kubeadms_binding(cp: &TestControlPlane, dir: &Path) {
    let ca = skiff_pki::ca::Ca::load(&cp.data_dir().join("pki")).expect("cluster CA");
    let node = ca
        .issue(&skiff_pki::ca::Request {
            common_name: "system:node:e2e".into(),
            organization: Some("system:nodes".into()),
            usage: skiff_pki::ca::Usage::Client,
            valid_for: std::time::Duration::from_secs(3600),
        })
        .expect("node certificate");
    std::fs::write(dir.join("node.crt"), &node.cert_pem).expect("crt");
    std::fs::write(dir.join("node.key"), &node.key_pem).expect("key");
    let node_config = dir.join("node-kubeconfig");
    std::fs::write(
        &node_config,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: https://{}\n    certificate-authority: {}\ncontexts:\n- name: skiff\n  context: {{cluster: skiff, user: node}}\ncurrent-context: skiff\nusers:\n- name: node\n  user:\n    client-certificate: {}\n    client-key: {}\n",
            cp.address,
            cp.data_dir().join("pki/ca.crt").display(),
            dir.join("node.crt").display(),
            dir.join("node.key").display()
        ),
    )
    .expect("node kubeconfig");
    // Skiff's Node authorizer leaves CSRs to RBAC: let nodes send them.
    cp.kubectl_ok(&[
        "create",
        "clusterrole",
        "node-csr",
        "--verb=create,get",
        "--resource=certificatesigningrequests",
    ]);
    cp.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "node-csr",
        "--clusterrole=node-csr",
        "--group=system:nodes",
    ]);
    let binding = cp.kubectl_ok(&[
        "get",
        "clusterrolebinding",
        "kubeadm:node-autoapprove-certificate-rotation",
        "-o",
        "jsonpath={.roleRef.name} {.subjects[0].name}",
    ]);
    assert_eq!(
        binding.trim(),
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient system:nodes"
    );
    let send = |name: &str| {
        openssl(dir, &["genrsa", "-out", &format!("{name}.key"), "2048"]);
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                "/O=system:nodes/CN=system:node:e2e",
            ],
        );
        let request = base64(&std::fs::read(dir.join(format!("{name}.csr"))).expect("csr"));
        let manifest = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  request: {request}\n  signerName: kubernetes.io/kube-apiserver-client-kubelet\n  usages: [digital signature, client auth]\n"
            ),
        )
        .expect("manifest");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (ok, out) = kubectl_with(
                cp,
                &node_config,
                &["create", "-f", manifest.to_str().expect("utf-8 path")],
            );
            if ok {
                break;
            }
            // The binding above reaches the authorizer shortly after.
            assert!(std::time::Instant::now() < deadline, "{out}\n{}", cp.log());
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    send("renewal");
    cp.eventually(&["get", "csr", "renewal"], "renewal issued", |out| {
        out.contains("Approved,Issued")
    });
    let message = cp.kubectl_ok(&[
        "get",
        "csr",
        "renewal",
        "-o",
        "jsonpath={.status.conditions[0].reason}: {.status.conditions[0].message}",
    ]);
    assert_eq!(
        message.trim(),
        "AutoApproved: Auto approving self kubelet client certificate after SubjectAccessReview."
    );

    cp.kubectl_ok(&[
        "delete",
        "clusterrolebinding",
        "kubeadm:node-autoapprove-certificate-rotation",
    ]);
    // The deletion reaches the authorizer's index through its watch.
    std::thread::sleep(std::time::Duration::from_secs(1));
    send("unbound");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let listed = cp.kubectl_ok(&["get", "csr", "unbound"]);
    assert!(
        listed.contains("Pending") && !listed.contains("Approved"),
        "{listed}"
    );
    let (ok, _) = text(&cp.kubectl(&[
        "get",
        "clusterrolebinding",
        "kubeadm:node-autoapprove-certificate-rotation",
    ]));
    assert!(!ok, "the binding came back");
}
