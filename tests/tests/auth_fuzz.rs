//! Seeded, bounded fuzzing of the authentication edge of a real control
//! plane: hostile `Authorization` headers (forged, mutated, revoked and
//! huge tokens), impersonation headers, TokenRequest and review bodies, and
//! the node port's `Join`. Every answer is a refusal with a `Status` whose
//! code is the HTTP one (never a 5xx, never a hang), nothing forged gets
//! past 401, the server answers after, and canary objects are
//! byte-identical.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use skiff_fuzzing::Rng;
use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_bootstrap_client::NodeBootstrapClient;
use skiff_tests::control_plane::TestControlPlane;
use skiff_tests::request;

const SEED: u64 = 0x5eed_a17f_e2e0_0001;
const REQUESTS: usize = 4_000;
const JOINS: usize = 300;

fn mutate(rng: &mut Rng, input: &[u8], pool: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..=rng.below(4) {
        let i = rng.below(bytes.len().max(1));
        match rng.below(5) {
            0 if !bytes.is_empty() => bytes[i] = pool[rng.below(pool.len())],
            1 if !bytes.is_empty() => {
                bytes.remove(i);
            }
            2 => bytes.insert(i.min(bytes.len()), pool[rng.below(pool.len())]),
            3 if !bytes.is_empty() => bytes[i] = 0x80 | rng.next_u64() as u8,
            _ => bytes.truncate(i),
        }
    }
    // Header values may not hold line breaks or NUL (that is framing, not
    // a header); everything else, obs-text included, goes on the wire.
    bytes.retain(|b| !matches!(b, b'\r' | b'\n' | 0));
    bytes
}

const CANARIES: &[&str] = &[
    "/api/v1/namespaces/canary/configmaps/cm",
    "/api/v1/namespaces/canary/secrets/sec",
    "/api/v1/namespaces/canary/serviceaccounts/sa",
    "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
];

/// One HTTP/1.1 request over TLS with `config` (its client certificate, or
/// none) and raw `headers`; status and body. A server that closes while
/// the request is still being written is read all the same.
fn send(
    config: &Arc<rustls::ClientConfig>,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut s = skiff_pki::tls::connect_blocking(config.clone(), addr, Duration::from_secs(15))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (name, value) in headers {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head.extend_from_slice(body);
    let written = s.write_all(&head).and_then(|()| s.flush());
    let mut out = Vec::new();
    let read = s.read_to_end(&mut out);
    if out.is_empty() {
        read?;
        written?;
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// The token Skiff's authenticator reads from these headers: the first
/// `Authorization`, as text, `Bearer <token>` (scheme in any case).
fn bearer(headers: &[(String, Vec<u8>)]) -> Option<String> {
    let (_, value) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))?;
    let value = std::str::from_utf8(value).ok()?;
    if !value
        .bytes()
        .all(|b| b == b'\t' || (b' '..0x7f).contains(&b))
    {
        return None;
    }
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// A failed answer is a `Status` of the same code.
fn is_status(code: u16, body: &str) -> bool {
    let status: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    status["kind"] == "Status" && status["code"] == code
}

/// Forged variants of a valid ServiceAccount token `token`.
fn forgeries(token: &str) -> Vec<String> {
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let parts: Vec<&str> = token.split('.').collect();
    let (header, payload, signature) = (parts[0], parts[1], parts[2]);
    let mut claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(payload)
            .expect("the token's payload is base64url"),
    )
    .expect("the token's payload is JSON");
    claims["kubernetes.io"]["namespace"] = json!("kube-system");
    claims["sub"] = json!("system:serviceaccount:kube-system:admin");
    let admin = b64(&claims);
    let mut forever: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(payload)
            .expect("the token's payload is base64url"),
    )
    .expect("JSON");
    forever["exp"] = json!(i64::MAX);
    let forever = b64(&forever);
    let none = b64(&json!({"alg": "none", "typ": "JWT"}));
    let hs = b64(&json!({"alg": "HS256"}));
    vec![
        format!("{none}.{payload}."),
        format!("{none}.{admin}."),
        format!("{hs}.{admin}.{signature}"),
        format!("{header}.{admin}.{signature}"),
        format!("{header}.{forever}.{signature}"),
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
        format!("{header}.{payload}.{signature}.{signature}"),
        format!("{header}.{payload}.{}", "A".repeat(86)),
        format!(
            "{}.{payload}.{signature}",
            b64(&json!({"alg": "ES256", "kid": "../x"}))
        ),
        format!(
            "{}.{payload}.{signature}",
            URL_SAFE_NO_PAD.encode("[".repeat(20_000))
        ),
    ]
}

#[tokio::test]
async fn hostile_credentials_and_bodies_are_refused_with_a_status() {
    let tokens = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(tokens.path(), "s3cret,jane,u-jane,\"lab\"\n").expect("write tokens");
    let cp =
        TestControlPlane::start_with(&["--token-auth-file", tokens.path().to_str().expect("path")])
            .await;
    let addr = cp.address.clone();
    let post = |path: &str, body: Value| -> Value {
        let (code, text) = request("POST", &addr, path, &body.to_string()).expect("post");
        assert!(code == 201 || code == 200, "setup {path}: {code} {text}");
        serde_json::from_str(&text).expect("JSON")
    };
    for ns in ["canary", "fuzz"] {
        post(
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
    }
    post(
        "/api/v1/namespaces/canary/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}}),
    );
    post(
        "/api/v1/namespaces/canary/secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"}, "data": {"k": "dg=="}}),
    );
    for (ns, name) in [("canary", "sa"), ("fuzz", "robot"), ("fuzz", "doomed")] {
        post(
            &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}),
        );
    }
    post(
        "/api/v1/namespaces/fuzz/pods",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bound"},
            "spec": {"serviceAccountName": "robot", "automountServiceAccountToken": false,
                "containers": [{"name": "c", "image": "busybox"}]}}),
    );
    let token_of = |account: &str, bound: Option<&str>| -> String {
        let mut spec = json!({"expirationSeconds": 3600});
        if let Some(pod) = bound {
            spec["boundObjectRef"] = json!({"kind": "Pod", "apiVersion": "v1", "name": pod});
        }
        let answer = post(
            &format!("/api/v1/namespaces/fuzz/serviceaccounts/{account}/token"),
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}),
        );
        answer["status"]["token"]
            .as_str()
            .expect("a token")
            .to_string()
    };
    let robot = token_of("robot", None);
    let doomed = token_of("doomed", None);
    let pod_bound = token_of("robot", Some("bound"));

    let ca = std::fs::read_to_string(cp.data_dir().join("pki/ca.crt")).expect("CA");
    let anonymous = skiff_pki::tls::client(&ca, None, &[b"http/1.1"]).expect("client");
    let admin = skiff_tests::api_tls::client(&cp.address).expect("admin client");
    let with_token = |token: &str, path: &str| {
        let auth = vec![(
            "Authorization".to_string(),
            format!("Bearer {token}").into_bytes(),
        )];
        send(&anonymous, &addr, "GET", path, &auth, b"").expect("answer")
    };
    // Revocation: a token dies with its ServiceAccount and its pod.
    let probe = "/api/v1/namespaces/fuzz/configmaps";
    for t in [&robot, &doomed, &pod_bound] {
        assert_eq!(with_token(t, probe).0, 403, "a live token is a user");
    }
    let (code, text) = request(
        "DELETE",
        &addr,
        "/api/v1/namespaces/fuzz/serviceaccounts/doomed",
        "",
    )
    .expect("delete");
    assert_eq!(code, 200, "{text}");
    let (code, text) = request(
        "DELETE",
        &addr,
        "/api/v1/namespaces/fuzz/pods/bound?gracePeriodSeconds=0",
        "",
    )
    .expect("delete");
    assert_eq!(code, 200, "{text}");
    skiff_tests::eventually("the pod to be gone", Duration::from_secs(10), || async {
        (request("GET", &addr, "/api/v1/namespaces/fuzz/pods/bound", "")
            .is_ok_and(|(c, _)| c == 404))
        .then_some(())
    })
    .await;
    for (what, t) in [("deleted account", &doomed), ("deleted pod", &pod_bound)] {
        let (code, body) = with_token(t, probe);
        assert_eq!(code, 401, "{what}'s token: {body}");
        assert!(is_status(401, &body), "{body}");
    }
    // Limits: a token within the HTTP/1.1 header limit (see
    // `api::serve::MAX_HEADER_BYTES_HTTP1`) is read (and refused); beyond
    // it the request is refused whole; both answered.
    for (size, want) in [(300 * 1024, 401), (2048 * 1024, 431)] {
        let huge = format!("{}.{}", "a".repeat(size / 2), "b".repeat(size / 2));
        let (code, body) = with_token(&huge, probe);
        assert_eq!(code, want, "{size}-byte token: {body:.200}");
        if want == 401 {
            assert!(is_status(401, &body), "{body:.200}");
        }
    }

    // A review body of a media type upstream does not decode is 415.
    let plain = vec![("Content-Type".to_string(), b"text/plain".to_vec())];
    let (code, body) = send(
        &admin,
        &addr,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        &plain,
        br#"{"spec":{"nonResourceAttributes":{"path":"/","verb":"get"}}}"#,
    )
    .expect("answer");
    assert!(code == 415 && is_status(415, &body), "{code} {body}");

    std::thread::sleep(Duration::from_millis(300));
    let before: Vec<String> = CANARIES
        .iter()
        .map(|p| request("GET", &addr, p, "").expect("canary").1)
        .collect();

    // A client that sends half a request and stalls: closed after
    // upstream's header timeout, not held for ever.
    let mut stalled =
        skiff_pki::tls::connect_blocking(anonymous.clone(), &addr, Duration::from_secs(15))
            .expect("connect");
    write!(
        stalled,
        "GET /api/v1/namespaces HTTP/1.1\r\nHost: {addr}\r\nX-Slow: "
    )
    .and_then(|()| stalled.flush())
    .expect("half a request");
    let stalled_at = std::time::Instant::now();

    println!("auth_fuzz seed {SEED:#x}, {REQUESTS} requests, {JOINS} joins");
    let mut rng = Rng::new(SEED);
    let valid = ["s3cret".to_string(), robot.clone()];
    let mut seeds: Vec<String> = forgeries(&robot)
        .into_iter()
        .map(|t| format!("Bearer {t}"))
        .collect();
    seeds.extend([
        "Bearer s3cret".to_string(),
        format!("Bearer {robot}"),
        format!("bearer {robot}"),
        format!("Bearer {doomed}"),
        format!("Bearer {pod_bound}"),
        "Basic amFuZTpzM2NyZXQ=".into(),
        "Bearer".into(),
        "Bearer ".into(),
        String::new(),
        "Bearer s3cret s3cret".into(),
        "Bearer abcdef.0123456789abcdef".into(),
        format!("Bearer {}", "x".repeat(8_000)),
    ]);
    let targets = [
        ("GET", "/api/v1/namespaces/canary/configmaps/cm"),
        ("GET", "/api/v1/namespaces/canary/secrets/sec"),
        ("DELETE", "/api/v1/namespaces/canary/configmaps/cm"),
        ("PUT", "/api/v1/namespaces/canary/secrets/sec"),
        ("PATCH", "/api/v1/namespaces/canary/configmaps/cm"),
        ("POST", "/api/v1/namespaces/canary/configmaps"),
        ("GET", "/api/v1/namespaces"),
        ("DELETE", "/api/v1/namespaces/canary"),
    ];
    let impersonation = [
        "Impersonate-User",
        "Impersonate-Group",
        "Impersonate-Uid",
        "Impersonate-Extra-scopes",
        "Impersonate-Extra-a%2Fb",
        "Impersonate-Extra-%zz",
    ];
    let who = [
        "",
        "jane",
        "system:admin",
        "system:masters",
        "system:anonymous",
        "system:unauthenticated",
        "system:serviceaccount:kube-system:admin",
        "system:serviceaccount::",
        "system:node:n1",
        "jané",
    ];
    let reviews = [
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        "/apis/authorization.k8s.io/v1/namespaces/fuzz/localsubjectaccessreviews",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        "/api/v1/namespaces/fuzz/serviceaccounts/robot/token",
        "/api/v1/namespaces/canary/serviceaccounts/sa/token",
        "/api/v1/namespaces/fuzz/serviceaccounts/nope/token",
    ];
    let bodies = [
        r#"{"spec":{"resourceAttributes":{"namespace":"canary","verb":"delete","resource":"configmaps"}}}"#,
        r#"{"spec":{"nonResourceAttributes":{"path":"/healthz","verb":"get"},"user":"jane"}}"#,
        r#"{"spec":{"resourceAttributes":{"namespace":"fuzz","verb":"get"},"groups":["system:masters"],"extra":{"a":["b"]}}}"#,
        r#"{"spec":{"namespace":"canary"}}"#,
        r#"{"spec":{"audiences":["x"],"expirationSeconds":600,"boundObjectRef":{"kind":"Pod","name":"bound"}}}"#,
        r#"{"spec":{"expirationSeconds":4294967297}}"#,
        r#"{"spec":{"expirationSeconds":-1,"audiences":"x"}}"#,
        r#"{"kind":"Pod","apiVersion":"v1"}"#,
        r#"{"spec":{"boundObjectRef":{"kind":"Node","name":"n"}}}"#,
        r#"{"spec":{"token":"s3cret","audiences":["x",7]}}"#,
        r#"{"spec":{"token":"eyJhbGciOiJub25lIn0.e30.","audiences":[]}}"#,
        r#"{"spec":{"token":7}}"#,
        "42",
        "[1,2]",
        "\"s\"",
        "null",
        "{",
        "",
    ];
    let content_types = ["application/json", "application/yaml", "text/plain"];
    let mut failures = Vec::new();
    let started = std::time::Instant::now();
    for i in 0..REQUESTS {
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        let (method, path, body, as_admin) = match rng.below(4) {
            // Credentials.
            0 | 1 => {
                for _ in 0..1 + rng.below(2) {
                    let seed = seeds[rng.below(seeds.len())].as_bytes();
                    let value = if rng.below(3) == 0 {
                        seed.to_vec()
                    } else {
                        mutate(&mut rng, seed, b"Bearer s3cret.-_=+/ \t")
                    };
                    headers.push(("Authorization".into(), value));
                }
                let (m, p) = targets[rng.below(targets.len())];
                (m, p.to_string(), b"{}".to_vec(), false)
            }
            // Impersonation, by jane or by the admin.
            2 => {
                let as_admin = rng.below(2) == 0;
                if !as_admin {
                    headers.push(("Authorization".into(), b"Bearer s3cret".to_vec()));
                }
                for _ in 0..1 + rng.below(4) {
                    let name = rng.pick(&impersonation);
                    let value = who[rng.below(who.len())].as_bytes();
                    let value = if rng.below(4) == 0 {
                        mutate(&mut rng, value, b":%\xc3\xa9 a")
                    } else {
                        value.to_vec()
                    };
                    headers.push((name.to_string(), value));
                }
                // The admin acting as someone reads only: acting as a
                // master it may do anything, canaries included.
                let (m, p) = if as_admin {
                    ("GET", "/api/v1/namespaces/canary/configmaps/cm")
                } else {
                    targets[rng.below(targets.len())]
                };
                (m, p.to_string(), b"{}".to_vec(), as_admin)
            }
            // Review and TokenRequest bodies.
            _ => {
                let as_admin = rng.below(2) == 0;
                if !as_admin {
                    headers.push(("Authorization".into(), b"Bearer s3cret".to_vec()));
                }
                let seed = rng.pick(&bodies).as_bytes();
                let body = if rng.below(2) == 0 {
                    mutate(&mut rng, seed, b"{}[]:\",0 ")
                } else {
                    seed.to_vec()
                };
                headers.push((
                    "Content-Type".into(),
                    rng.pick(&content_types).as_bytes().to_vec(),
                ));
                ("POST", rng.pick(&reviews).to_string(), body, as_admin)
            }
        };
        let config = if as_admin { &admin } else { &anonymous };
        let shown = format!(
            "#{i} {method} {path} {:?} {:.120}",
            headers
                .iter()
                .map(|(n, v)| format!("{n}: {:.80}", String::from_utf8_lossy(v)))
                .collect::<Vec<_>>(),
            String::from_utf8_lossy(&body)
        );
        let Ok((code, text)) = send(config, &addr, method, &path, &headers, &body) else {
            failures.push(format!("{shown}: no answer"));
            break;
        };
        if !(200..500).contains(&code) {
            failures.push(format!("{shown}: {code} {text:.300}"));
            continue;
        }
        if code >= 400 && !is_status(code, &text) {
            failures.push(format!("{shown}: {code} without its Status: {text:.200}"));
        }
        let authentic = as_admin || bearer(&headers).is_some_and(|t| valid.contains(&t));
        if !authentic && code != 401 {
            failures.push(format!(
                "{shown}: forged credentials got {code} {text:.200}"
            ));
        }
        let canary_write =
            path.contains("/canary/") && method != "GET" && !path.ends_with("/token");
        if canary_write && code < 400 {
            failures.push(format!("{shown}: canary write allowed: {code} {text:.200}"));
        }
        let impersonating = headers.iter().any(|(n, _)| n.starts_with("Impersonate-"));
        if impersonating && !as_admin && code < 400 {
            failures.push(format!("{shown}: jane impersonated: {code} {text:.200}"));
        }
    }
    println!("auth_fuzz: {REQUESTS} requests in {:?}", started.elapsed());

    // Join: only the bootstrap token joins, everything else is refused
    // with a typed gRPC status.
    let join_token = cp.join_token();
    let grpc = skiff_pki::tls::client(&ca, None, &[b"h2"]).expect("client");
    let channel = skiff_proto::link::connect_tls(&cp.grpc, grpc, None)
        .await
        .expect("node port");
    let mut client = NodeBootstrapClient::new(channel);
    let (_, key) = skiff_pki::ca::new_key_pair().expect("key");
    let join_tokens = [
        join_token.as_str(),
        "abcdef.0123456789abcdef",
        "",
        "x",
        "ABCDEF.0123456789ABCDEF",
    ];
    let nodes = ["n1", "", "N1", "a..b", "n1\n\u{1b}[31mfake", "é"];
    let names = ["n1", "", "*", "*.lab", "10.0.0.1", "a b", "é"];
    let mut joined = 0;
    for i in 0..JOINS {
        let mut token = rng.pick(&join_tokens).to_string();
        if rng.below(3) == 0 {
            token = String::from_utf8_lossy(&mutate(&mut rng, token.as_bytes(), b"abc012.")).into();
        }
        let mut public_key_pem = key.clone();
        if rng.below(4) == 0 {
            public_key_pem =
                String::from_utf8_lossy(&mutate(&mut rng, key.as_bytes(), b"AB=+/-\n")).into();
        }
        let request = pb::JoinRequest {
            token: token.clone(),
            node_name: rng.pick(&nodes).to_string(),
            public_key_pem,
            serving_names: (0..rng.below(3))
                .map(|_| rng.pick(&names).to_string())
                .collect(),
        };
        let answer = tokio::time::timeout(Duration::from_secs(10), client.join(request.clone()))
            .await
            .unwrap_or_else(|_| panic!("join #{i} hung: {request:?}"));
        let authentic = token.trim() == join_token;
        match answer {
            Ok(_) if authentic => joined += 1,
            Ok(_) => failures.push(format!("join #{i} with {token:?} joined")),
            Err(s) if s.code() == tonic::Code::Unauthenticated && !authentic => {}
            Err(s) if s.code() == tonic::Code::InvalidArgument && authentic => {}
            Err(s) => failures.push(format!("join #{i} {request:?}: {s:?}")),
        }
    }
    assert!(joined > 0, "no join reached signing");

    let waited = stalled_at.elapsed();
    if waited < Duration::from_secs(36) {
        std::thread::sleep(Duration::from_secs(36) - waited);
    }
    let mut rest = Vec::new();
    match stalled.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e)
            if e.kind() != std::io::ErrorKind::WouldBlock
                && e.kind() != std::io::ErrorKind::TimedOut => {}
        Err(e) => failures.push(format!("a stalled request head was held open: {e}")),
    }

    // Still answering, nothing changed, nothing panicked.
    let (code, _) = request("GET", &addr, "/healthz", "").expect("healthz");
    assert_eq!(code, 200);
    let after: Vec<String> = CANARIES
        .iter()
        .map(|p| request("GET", &addr, p, "").expect("canary").1)
        .collect();
    for (p, (b, a)) in CANARIES.iter().zip(before.iter().zip(&after)) {
        if b != a {
            failures.push(format!("canary {p} changed:\n{b}\n{a}"));
        }
    }
    let log = cp.log();
    let panics: Vec<&str> = log.lines().filter(|l| l.contains("panicked")).collect();
    if !panics.is_empty() {
        failures.push(format!(
            "control plane panicked {} times, first: {}",
            panics.len(),
            panics[0]
        ));
    }
    assert!(
        failures.is_empty(),
        "{} failures (seed {SEED:#x}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
