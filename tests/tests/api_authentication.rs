//! Who may talk to the API: HTTPS only, the cluster CA, the admin's client
//! certificate in the kubeconfig, bearer tokens from a token file; no or
//! wrong credentials are 401 with upstream's Status, the health checks
//! stay open as upstream's anonymous ones.

use std::io::{Read, Write};
use std::time::Duration;

use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};

/// One GET over TLS trusting the cluster CA, with `identity` (certificate
/// and key PEM) and `token` if given; status and body.
fn get(
    cp: &TestControlPlane,
    path: &str,
    identity: Option<(&str, &str)>,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let ca = std::fs::read_to_string(cp.data_dir().join("pki/ca.crt")).expect("CA");
    let config = skiff_pki::tls::client(&ca, identity, &[b"http/1.1"]).expect("client config");
    let mut s = skiff_pki::tls::connect_blocking(config, &cp.address, Duration::from_secs(10))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n",
        cp.address
    )?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    Ok((status, body.to_string()))
}

#[tokio::test]
async fn no_or_wrong_credentials_are_401_and_the_kubeconfig_is_admin() {
    if !kubectl_enabled("no_or_wrong_credentials_are_401_and_the_kubeconfig_is_admin") {
        return;
    }
    let tokens = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(tokens.path(), "s3cret,jane,u-jane,\"lab\"\n").expect("write tokens");
    let cp =
        TestControlPlane::start_with(&["--token-auth-file", tokens.path().to_str().expect("path")])
            .await;

    // No credentials: 401 with upstream's Status; health checks answer.
    let (code, body) = get(&cp, "/api/v1/namespaces/default/pods", None, None).expect("get");
    assert_eq!(code, 401, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("Status");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Unauthorized");
    assert_eq!(status["message"], "Unauthorized");
    assert_eq!(get(&cp, "/healthz", None, None).expect("healthz").0, 200);
    assert_eq!(get(&cp, "/version", None, None).expect("version").0, 401);

    // A wrong token is 401; the file's token authenticates (what it may do
    // is RBAC's: at least it is not 401).
    assert_eq!(
        get(&cp, "/api/v1/namespaces", None, Some("wrong"))
            .expect("get")
            .0,
        401
    );
    assert_ne!(
        get(&cp, "/api/v1/namespaces", None, Some("s3cret"))
            .expect("get")
            .0,
        401
    );

    // A certificate from another CA does not get through the handshake.
    let other = tempfile::tempdir().expect("dir");
    let stranger_ca = skiff_pki::ca::Ca::load_or_create(other.path()).expect("CA");
    let stranger = stranger_ca
        .issue(&skiff_pki::ca::Request {
            common_name: "kubernetes-admin".into(),
            organization: Some("system:masters".into()),
            usage: skiff_pki::ca::Usage::Client,
            valid_for: Duration::from_secs(3600),
        })
        .expect("issue");
    let refused = get(
        &cp,
        "/api/v1/namespaces",
        Some((&stranger.cert_pem, &stranger.key_pem)),
        None,
    );
    assert!(
        refused.as_ref().map_or(true, |(code, _)| *code == 0),
        "a foreign certificate was served: {refused:?}"
    );

    // Plain HTTP gets no HTTP answer.
    let mut plain = std::net::TcpStream::connect(&cp.address).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(plain, "GET /api/v1/pods HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).starts_with("HTTP/"),
        "plain HTTP was answered"
    );

    // kubectl with the kubeconfig as written is the admin; with a wrong
    // token it says what it says upstream.
    let kubeconfig = std::fs::read_to_string(cp.data_dir().join("kubeconfig")).expect("read");
    assert!(kubeconfig.contains(&format!("server: https://{}", cp.address)));
    let whoami = cp.kubectl_ok(&["get", "namespaces", "default", "-o", "name"]);
    assert_eq!(whoami.trim(), "namespace/default");
    let server = format!("--server=https://{}", cp.address);
    let ca = format!(
        "--certificate-authority={}",
        cp.data_dir().join("pki/ca.crt").display()
    );
    let out =
        std::process::Command::new(skiff_tests::control_plane::kubectl_path().expect("kubectl"))
            .args([&server, &ca, "--token=wrong", "get", "pods"])
            .env("KUBECONFIG", "/dev/null")
            .output()
            .expect("kubectl");
    let said = String::from_utf8_lossy(&out.stderr);
    // Discovery fails first, so kubectl prints client-go's wording for a
    // 401 there, as against any upstream API server.
    assert!(
        said.contains(
            "error: You must be logged in to the server (the server has asked for the client to provide credentials)"
        ),
        "{said}"
    );
    let out =
        std::process::Command::new(skiff_tests::control_plane::kubectl_path().expect("kubectl"))
            .args([&server, &ca, "--token=s3cret", "get", "pods"])
            .env("KUBECONFIG", "/dev/null")
            .output()
            .expect("kubectl");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("Unauthorized"), "{said}");
}

/// Creates a TokenReview of `token` for `audiences` with kubectl as
/// `as_token` (the admin when `None`): kubectl's success and output.
fn token_review(
    cp: &TestControlPlane,
    as_token: Option<&str>,
    token: &str,
    audiences: &[&str],
) -> (bool, String) {
    let review = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": audiences},
    });
    let file = cp.scratch().join("review.json");
    std::fs::write(&file, review.to_string()).expect("write the review");
    let file = file.display().to_string();
    let args = ["create", "-f", &file, "-o", "json"];
    let out = match as_token {
        None => cp.kubectl(&args),
        // The token alone: no kubeconfig, so no client certificate.
        Some(token) => {
            std::process::Command::new(skiff_tests::control_plane::kubectl_path().expect("kubectl"))
                .arg(format!("--server=https://{}", cp.address))
                .arg(format!(
                    "--certificate-authority={}",
                    cp.data_dir().join("pki/ca.crt").display()
                ))
                .arg(format!("--token={token}"))
                .args(args)
                .env("KUBECONFIG", "/dev/null")
                .env("HOME", cp.scratch())
                .output()
                .expect("kubectl")
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn status(out: &str) -> serde_json::Value {
    let review: serde_json::Value = serde_json::from_str(out).expect("a TokenReview");
    assert_eq!(review["kind"], "TokenReview", "{out}");
    review["status"].clone()
}

#[tokio::test]
async fn token_reviews_say_whose_token_it_is_for_which_audiences() {
    if !kubectl_enabled("token_reviews_say_whose_token_it_is_for_which_audiences") {
        return;
    }
    let tokens = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(tokens.path(), "s3cret,jane,u-jane,\"lab\"\n").expect("write tokens");
    let cp =
        TestControlPlane::start_with(&["--token-auth-file", tokens.path().to_str().expect("path")])
            .await;
    let api_audience = "https://kubernetes.default.svc.cluster.local";

    // A static token: jane, for the API's own audience.
    let (ok, out) = token_review(&cp, None, "s3cret", &[]);
    assert!(ok, "{out}");
    let jane = status(&out);
    assert_eq!(jane["authenticated"], true, "{out}");
    assert_eq!(jane["user"]["username"], "jane", "{out}");
    assert_eq!(jane["user"]["uid"], "u-jane", "{out}");
    assert_eq!(
        jane["user"]["groups"],
        serde_json::json!(["lab", "system:authenticated"]),
        "{out}"
    );
    assert_eq!(
        jane["audiences"],
        serde_json::json!([api_audience]),
        "{out}"
    );

    // A ServiceAccount token, for the API; not for an audience it was not
    // issued for; one issued for `vault` is valid for `vault`.
    let sa = cp.kubectl_ok(&["create", "token", "default"]);
    let (ok, out) = token_review(&cp, None, sa.trim(), &[]);
    assert!(ok, "{out}");
    let account = status(&out);
    assert_eq!(account["authenticated"], true, "{out}");
    assert_eq!(
        account["user"]["username"], "system:serviceaccount:default:default",
        "{out}"
    );
    let (ok, out) = token_review(&cp, None, sa.trim(), &["vault"]);
    assert!(ok, "{out}");
    let wrong_audience = status(&out);
    assert_eq!(
        wrong_audience["authenticated"],
        serde_json::Value::Null,
        "{out}"
    );
    assert!(
        wrong_audience["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{out}"
    );
    let for_vault = cp.kubectl_ok(&["create", "token", "default", "--audience", "vault"]);
    let (ok, out) = token_review(&cp, None, for_vault.trim(), &["vault", "other"]);
    assert!(ok, "{out}");
    let vault = status(&out);
    assert_eq!(vault["authenticated"], true, "{out}");
    assert_eq!(vault["audiences"], serde_json::json!(["vault"]), "{out}");

    // Nonsense is not authenticated (the request itself is fine); no
    // token at all is a bad request.
    let (ok, out) = token_review(&cp, None, "nonsense", &[]);
    assert!(ok, "{out}");
    let nonsense = status(&out);
    assert_eq!(nonsense["authenticated"], serde_json::Value::Null, "{out}");
    assert_eq!(nonsense["user"], serde_json::json!({}), "{out}");
    let (ok, out) = token_review(&cp, None, "", &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("token is required for TokenReview in authentication"),
        "{out}"
    );

    // Reviewing tokens takes system:auth-delegator, as upstream.
    let (ok, out) = token_review(&cp, Some("s3cret"), "s3cret", &[]);
    assert!(!ok, "jane may not review tokens: {out}");
    assert!(
        out.contains(
            "tokenreviews.authentication.k8s.io is forbidden: User \"jane\" cannot create resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope"
        ),
        "{out}"
    );
    cp.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "jane-delegates",
        "--clusterrole=system:auth-delegator",
        "--user=jane",
    ]);
    let (ok, out) = token_review(&cp, Some("s3cret"), sa.trim(), &[]);
    assert!(ok, "{out}");
    assert_eq!(status(&out)["authenticated"], true, "{out}");
}

#[tokio::test]
async fn a_service_accounts_tokens_are_refused_within_a_second_of_its_deletion() {
    if !kubectl_enabled("a_service_accounts_tokens_are_refused_within_a_second_of_its_deletion") {
        return;
    }
    let cp = TestControlPlane::start().await;
    let pods = "/api/v1/namespaces/default/pods";
    let robot = cp.manifest(
        "robot.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: robot}\n",
    );
    cp.kubectl_ok(&["apply", "-f", &robot]);
    let old = cp.kubectl_ok(&["create", "token", "robot"]);
    // Authenticated (what it may do is RBAC's: nothing yet).
    let (code, body) = get(&cp, pods, None, Some(old.trim())).expect("get");
    assert_eq!(code, 403, "{body}");

    cp.kubectl_ok(&["delete", "serviceaccount", "robot"]);
    let deleted = std::time::Instant::now();
    loop {
        let (code, body) = get(&cp, pods, None, Some(old.trim())).expect("get");
        if code == 401 {
            break;
        }
        assert_eq!(code, 403, "{body}");
        assert!(
            deleted.elapsed() < Duration::from_secs(1),
            "the token still authenticates {:?} after its account was deleted",
            deleted.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Made again under the same name it is another account: its tokens
    // authenticate, the old one stays refused.
    cp.kubectl_ok(&["apply", "-f", &robot]);
    let new = cp.kubectl_ok(&["create", "token", "robot"]);
    let (code, body) = get(&cp, pods, None, Some(new.trim())).expect("get");
    assert_eq!(code, 403, "{body}");
    let (code, body) = get(&cp, pods, None, Some(old.trim())).expect("get");
    assert_eq!(code, 401, "{body}");
}
