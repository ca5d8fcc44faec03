//! The HTTP edge against a real control plane: bad queries, bodies, media
//! types, subresources and patches are refused with a `Status` and change
//! nothing; dry runs never delete; trailing-slash discovery paths answer.

use serde_json::Value;
use skiff_tests::control_plane::{TestControlPlane, http_json, kubectl_enabled};
use skiff_tests::request_as;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn call(cp: &TestControlPlane, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (code, text) = http_json(method, &cp.address, path, body).expect("request");
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn assert_status(code: u16, body: &Value, want: u16, what: &str) {
    assert_eq!(code, want, "{what}: {body}");
    assert_eq!(body["kind"], "Status", "{what}: {body}");
    assert_eq!(body["code"], want, "{what}: {body}");
}

fn configmap(cp: &TestControlPlane, name: &str) {
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","labels":{{"app":"keep"}}}},"data":{{"k":"v"}}}}"#
    );
    let (code, obj) = call(cp, "POST", CMS, &body);
    assert_eq!(code, 201, "{obj}");
}

fn exists(cp: &TestControlPlane, name: &str) -> bool {
    call(cp, "GET", &format!("{CMS}/{name}"), "").0 == 200
}

#[tokio::test]
async fn bad_queries_are_400_and_delete_nothing() {
    let cp = TestControlPlane::start().await;
    configmap(&cp, "a");
    configmap(&cp, "b");
    let (code, body) = call(
        &cp,
        "DELETE",
        &format!("{CMS}?labelSelector=app%3Dnone%ff"),
        "",
    );
    assert_status(code, &body, 400, "undecodable selector");
    for q in [
        "labelSelector=a%3D%3Db%3D%3Dc",
        "fieldSelector=a%3D%3Db%3D%3Dc",
        "limit=abc",
        "watch=maybe",
        "resourceVersion=abc",
        "timeoutSeconds=soon",
        "gracePeriodSeconds=soon",
        "orphanDependents=perhaps",
        "labelSelector=%zz",
    ] {
        let (code, body) = call(&cp, "DELETE", &format!("{CMS}?{q}"), "");
        assert_status(code, &body, 400, q);
        let (code, body) = call(&cp, "GET", &format!("{CMS}?{q}"), "");
        assert!(code == 400, "GET {q}: {code} {body}");
    }
    let (code, body) = call(&cp, "DELETE", &format!("{CMS}?dryRun=Bogus"), "");
    assert_status(code, &body, 422, "dryRun=Bogus");
    let (code, body) = call(
        &cp,
        "GET",
        &format!("{CMS}?resourceVersionMatch=Newest"),
        "",
    );
    assert_status(code, &body, 422, "resourceVersionMatch");
    let (code, body) = call(&cp, "DELETE", &format!("{CMS}?dryRun=All"), "");
    assert_eq!(code, 200, "{body}");
    let create = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#;
    let (code, body) = call(&cp, "POST", &format!("{CMS}?dryRun=Bogus"), create);
    assert_status(code, &body, 422, "create dryRun");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("CreateOptions.meta.k8s.io")
    );
    let (code, body) = call(&cp, "POST", &format!("{CMS}?fieldValidation=Loose"), create);
    assert_status(code, &body, 422, "fieldValidation");
    assert!(exists(&cp, "a") && exists(&cp, "b") && !exists(&cp, "c"));
}

#[tokio::test]
async fn delete_options_bodies_are_strict_and_dry_runs_delete_nothing() {
    let cp = TestControlPlane::start().await;
    configmap(&cp, "a");
    for bad in [
        "{",
        r#"{"gracePeriodSeconds":"soon"}"#,
        r#"{"dryRun":["Bogus"]}"#,
        "42",
    ] {
        let (code, body) = call(&cp, "DELETE", &format!("{CMS}/a"), bad);
        assert!(code == 400 || code == 422, "{bad}: {code} {body}");
        assert_eq!(body["kind"], "Status", "{bad}");
        let (code, body) = call(&cp, "DELETE", CMS, bad);
        assert!(
            code == 400 || code == 422,
            "collection {bad}: {code} {body}"
        );
    }
    let (code, body) = call(
        &cp,
        "DELETE",
        &format!("{CMS}/a"),
        r#"{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"]}"#,
    );
    assert_eq!(code, 200, "{body}");
    let (code, _) = call(&cp, "DELETE", CMS, r#"{"dryRun":["All"]}"#);
    assert_eq!(code, 200);
    assert!(exists(&cp, "a"), "a dry run deleted the ConfigMap");

    if kubectl_enabled("delete_options_bodies_are_strict_and_dry_runs_delete_nothing") {
        cp.kubectl_ok(&["delete", "cm", "a", "--dry-run=server"]);
        assert!(exists(&cp, "a"), "kubectl --dry-run=server deleted it");
        cp.kubectl_ok(&["create", "namespace", "scratch"]);
        cp.kubectl_ok(&[
            "-n",
            "scratch",
            "create",
            "configmap",
            "inside",
            "--from-literal=k=v",
        ]);
        cp.kubectl_ok(&["delete", "ns", "scratch", "--dry-run=server"]);
        let ns = call(&cp, "GET", "/api/v1/namespaces/scratch", "").1;
        assert_eq!(ns["status"]["phase"], "Active", "{ns}");
        assert_eq!(
            call(
                &cp,
                "GET",
                "/api/v1/namespaces/scratch/configmaps/inside",
                ""
            )
            .0,
            200
        );
    }
}

#[tokio::test]
async fn unknown_subresources_are_404_and_change_nothing() {
    let cp = TestControlPlane::start().await;
    configmap(&cp, "a");
    let (code, before) = call(&cp, "GET", &format!("{CMS}/a"), "");
    assert_eq!(code, 200);
    let patch = r#"{"metadata":{"labels":{"hacked":"yes"}}}"#;
    for sub in ["bogus", "status", "scale"] {
        let (code, body) = request_json(
            &cp,
            "PATCH",
            &format!("{CMS}/a/{sub}"),
            "application/merge-patch+json",
            patch,
        );
        assert_status(code, &body, 404, sub);
        let (code, body) = call(&cp, "GET", &format!("{CMS}/a/{sub}"), "");
        assert_status(code, &body, 404, sub);
    }
    let (code, body) = request_json(
        &cp,
        "PATCH",
        "/api/v1/namespaces/default/secrets/x/status",
        "application/merge-patch+json",
        patch,
    );
    assert_status(code, &body, 404, "secret status");
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#;
    let (code, body) = call(&cp, "POST", "/api/v1/namespaces/default/pods", pod);
    assert_eq!(code, 201, "{body}");
    let (code, body) = request_json(
        &cp,
        "PATCH",
        "/api/v1/namespaces/default/pods/p/bogus",
        "application/merge-patch+json",
        patch,
    );
    assert_status(code, &body, 404, "pods/bogus");
    for sub in ["portforward", "eviction", "proxy"] {
        let (code, body) = call(
            &cp,
            "GET",
            &format!("/api/v1/namespaces/default/pods/p/{sub}"),
            "",
        );
        // Served subresources that need more than a plain GET (an upgrade,
        // a POST, a running pod) answer with an error Status, never with
        // the Pod itself.
        assert!((400..600).contains(&code), "{sub}: {code} {body}");
        assert_eq!(body["kind"], "Status", "{sub} answered {body}");
    }
    let (_, after) = call(&cp, "GET", &format!("{CMS}/a"), "");
    assert_eq!(before, after);
    let p = call(&cp, "GET", "/api/v1/namespaces/default/pods/p", "").1;
    assert!(p["metadata"]["labels"]["hacked"].is_null(), "{p}");
}

fn request_json(
    cp: &TestControlPlane,
    method: &str,
    path: &str,
    ct: &str,
    body: &str,
) -> (u16, Value) {
    let (code, text) = request_as(method, &cp.address, path, ct, body).expect("request");
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn media_types_limits_and_patches_answer_with_status() {
    let cp = TestControlPlane::start().await;
    configmap(&cp, "a");
    let create = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"t"}}"#;
    let (code, body) = request_json(&cp, "POST", CMS, "text/plain", create);
    assert_status(code, &body, 415, "text/plain");
    let big = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"k":"{}"}}}}"#,
        "x".repeat(3 * 1024 * 1024 + 10)
    );
    let (code, body) = call(&cp, "POST", CMS, &big);
    assert_status(code, &body, 413, "body over 3 MiB");
    let stored = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"k":"{}"}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let (code, body) = call(&cp, "POST", CMS, &stored);
    assert!(
        code == 413 || code == 422,
        "object over the size limit: {code} {body}"
    );
    assert!(!exists(&cp, "big"));
    let (code, body) = call(&cp, "POST", "/version", "");
    assert_status(code, &body, 405, "POST /version");
    // A long but valid selector (kubectl's `-l 'app in (...)'` of many
    // names) is answered; one past the limit is a 414 Status.
    let names: Vec<String> = (0..1500).map(|i| format!("app-{i}")).collect();
    let wide = format!("{CMS}?labelSelector=app+in+({})", names.join(","));
    assert!(wide.len() > 8 * 1024);
    let (code, body) = call(&cp, "GET", &wide, "");
    assert_eq!(code, 200, "{body}");
    let long = format!("{CMS}?labelSelector={}", "a".repeat(62 * 1024));
    let (code, body) = call(&cp, "GET", &long, "");
    assert_status(code, &body, 414, "long URI");
    for (ct, patch, want) in [
        ("application/merge-patch+json", "42", 400),
        ("application/merge-patch+json", "[1,2]", 400),
        ("application/strategic-merge-patch+json", "42", 400),
        (
            "application/json-patch+json",
            r#"[{"op":"test","path":"/data/k","value":"no"}]"#,
            422,
        ),
        ("application/json-patch+json", r#"{"op":"add"}"#, 400),
        (
            "application/json-patch+json",
            r#"[{"op":"replace","path":"","value":42}]"#,
            400,
        ),
        ("text/plain", "{}", 415),
    ] {
        let (code, body) = request_json(&cp, "PATCH", &format!("{CMS}/a"), ct, patch);
        assert_status(code, &body, want, &format!("{ct} {patch}"));
    }
    let (code, body) = call(&cp, "POST", CMS, "42");
    assert_status(code, &body, 400, "create 42");
    assert_eq!(
        call(&cp, "GET", &format!("{CMS}/a"), "").1["data"]["k"],
        "v"
    );
    assert!(!cp.log().contains("panicked"), "{}", cp.log());
}

#[tokio::test]
async fn trailing_slash_paths_answer_like_their_plain_forms() {
    let cp = TestControlPlane::start().await;
    for path in [
        "/version/",
        "/api/",
        "/apis/",
        "/api/v1/",
        "/apis/apps/v1/",
        "/api/v1/namespaces/default/configmaps/",
    ] {
        let (code, body) = call(&cp, "GET", path, "");
        assert_eq!(code, 200, "{path}: {body}");
        let plain = path.trim_end_matches('/');
        assert_eq!(
            body.get("kind"),
            call(&cp, "GET", plain, "").1.get("kind"),
            "{path}"
        );
    }
}

/// The server's first HTTP/2 SETTINGS frame, as `(identifier, value)`
/// pairs, read after the client preface over TLS with ALPN `h2`.
fn http2_settings(address: &str) -> std::collections::HashMap<u16, u32> {
    use std::io::{Read, Write};
    let mut config = (*skiff_tests::api_tls::client(address).expect("a TLS API server")).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = std::net::TcpStream::connect(address).expect("connect");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).expect("a name");
    let connection =
        rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("TLS client");
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    // The preface, then an empty SETTINGS frame (length 0, type 4).
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .expect("preface");
    assert_eq!(
        tls.conn.alpn_protocol(),
        Some(&b"h2"[..]),
        "the API speaks HTTP/2"
    );
    loop {
        let mut header = [0u8; 9];
        tls.read_exact(&mut header).expect("a frame header");
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; length];
        tls.read_exact(&mut payload).expect("a frame payload");
        let (kind, ack) = (header[3], header[4] & 1 == 1);
        if kind == 4 && !ack {
            return payload
                .chunks_exact(6)
                .map(|p| {
                    (
                        u16::from_be_bytes([p[0], p[1]]),
                        u32::from_be_bytes([p[2], p[3], p[4], p[5]]),
                    )
                })
                .collect();
        }
    }
}

#[tokio::test]
async fn http2_offers_upstreams_stream_and_header_limits() {
    let cp = TestControlPlane::start().await;
    let address = cp.address.clone();
    let settings = tokio::task::spawn_blocking(move || http2_settings(&address))
        .await
        .expect("read the settings");
    // SETTINGS_MAX_CONCURRENT_STREAMS (0x3): kube-apiserver's 100.
    assert_eq!(settings.get(&0x3), Some(&100), "{settings:?}");
    // SETTINGS_MAX_HEADER_LIST_SIZE (0x6): its 1 MiB header limit.
    assert_eq!(settings.get(&0x6), Some(&(1024 * 1024)), "{settings:?}");
}
