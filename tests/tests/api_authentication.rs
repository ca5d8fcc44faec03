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
