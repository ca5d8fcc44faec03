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

/// What the server says first over HTTP/2 (TLS with ALPN `h2`, after the
/// client preface): its SETTINGS as `(identifier, value)` pairs, and the
/// connection's receive window once its first WINDOW_UPDATE on stream 0
/// has raised it.
fn http2_opening(address: &str) -> (std::collections::HashMap<u16, u32>, u32) {
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
    let mut settings = None;
    // HTTP/2's initial connection window.
    let mut window = 65_535u32;
    while settings.is_none() || window == 65_535 {
        let mut header = [0u8; 9];
        tls.read_exact(&mut header).expect("a frame header");
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; length];
        tls.read_exact(&mut payload).expect("a frame payload");
        let (kind, ack) = (header[3], header[4] & 1 == 1);
        let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
        if kind == 4 && !ack {
            settings = Some(
                payload
                    .chunks_exact(6)
                    .map(|p| {
                        (
                            u16::from_be_bytes([p[0], p[1]]),
                            u32::from_be_bytes([p[2], p[3], p[4], p[5]]),
                        )
                    })
                    .collect(),
            );
        } else if kind == 8 && stream == 0 {
            window += u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
        }
    }
    (settings.unwrap_or_default(), window)
}

#[tokio::test]
async fn http2_offers_upstreams_stream_and_header_limits() {
    let cp = TestControlPlane::start().await;
    let address = cp.address.clone();
    let (settings, window) = tokio::task::spawn_blocking(move || http2_opening(&address))
        .await
        .expect("read the settings");
    // SETTINGS_MAX_CONCURRENT_STREAMS (0x3): kube-apiserver's 100.
    assert_eq!(settings.get(&0x3), Some(&100), "{settings:?}");
    // SETTINGS_MAX_HEADER_LIST_SIZE (0x6): its 1 MiB header limit, padded
    // as Go pads it (32 bytes for each of ten fields).
    assert_eq!(
        settings.get(&0x6),
        Some(&(1024 * 1024 + 320)),
        "{settings:?}"
    );
    // SETTINGS_INITIAL_WINDOW_SIZE (0x4) and SETTINGS_MAX_FRAME_SIZE (0x5):
    // its 256 KiB per stream and per frame.
    assert_eq!(settings.get(&0x4), Some(&(256 * 1024)), "{settings:?}");
    assert_eq!(settings.get(&0x5), Some(&(256 * 1024)), "{settings:?}");
    // The connection's window: a stream's for each of the 100 streams.
    assert_eq!(window, 100 * 256 * 1024);
}

/// An HTTP/2 connection to the API as its admin (hyper's client), and the
/// task driving it, which ends when the server closes the connection.
async fn http2_client(
    address: &str,
) -> (
    hyper::client::conn::http2::SendRequest<String>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    let mut config = (*skiff_tests::api_tls::client(address).expect("a TLS API server")).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).expect("a name");
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS");
    let (send, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("HTTP/2 handshake");
    (send, tokio::spawn(connection))
}

fn get(path: &str) -> hyper::Request<String> {
    hyper::Request::get(path)
        .body(String::new())
        .expect("a request")
}

/// The next data frame of `body`, `None` at its end.
async fn next_data(body: &mut hyper::body::Incoming) -> Option<hyper::body::Bytes> {
    use hyper::body::Body;
    loop {
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_frame(cx))
            .await?
            .ok()?;
        if let Ok(data) = frame.into_data() {
            return Some(data);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_but_not_an_http2_one_with_an_open_watch() {
    use std::time::{Duration, Instant};
    let idle = Duration::from_secs(2);
    let cp = TestControlPlane::start_with(&["--api-idle-timeout", "2s"]).await;
    // The same timeout closes an idle HTTP/1.1 keep-alive connection.
    let address = cp.address.clone();
    let http1 = tokio::task::spawn_blocking(move || {
        let mut tls = tls_with(&address, b"http/1.1");
        assert_eq!(http1_get(&mut tls, "/version"), 200);
        let answered = Instant::now();
        let tcp = tls.sock.try_clone().expect("clone");
        closed_at(&mut tls, &tcp, answered, Duration::from_secs(20))
    });
    // One request, then nothing.
    let (mut quiet, quiet_connection) = http2_client(&cp.address).await;
    let response = quiet.send_request(get("/version")).await.expect("GET");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    while next_data(&mut body).await.is_some() {}
    let answered = Instant::now();
    // A watch, read as it goes.
    let (mut watching, watch_connection) = http2_client(&cp.address).await;
    let response = watching
        .send_request(get(&format!("{CMS}?watch=true")))
        .await
        .expect("watch");
    assert_eq!(response.status(), 200);
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let mut body = response.into_body();
        while let Some(data) = next_data(&mut body).await {
            let _ = events.send(data);
        }
    });

    let closed = tokio::time::timeout(Duration::from_secs(20), quiet_connection)
        .await
        .expect("the idle connection is closed")
        .expect("the connection task");
    let after = answered.elapsed();
    assert!(closed.is_ok(), "a graceful close (GOAWAY): {closed:?}");
    assert!(
        after >= idle - Duration::from_millis(300),
        "closed {after:?} after its last answer, before the idle timeout"
    );
    assert!(quiet.is_closed());
    let http1 = http1.await.expect("the HTTP/1.1 connection");
    assert!(
        http1.is_some_and(|t| t >= idle - Duration::from_millis(300)),
        "HTTP/1.1 keep-alive closed at {http1:?}"
    );

    // Three idle timeouts later, the watch and its connection go on.
    tokio::time::sleep(idle * 3).await;
    assert!(
        !watch_connection.is_finished(),
        "the connection with an open watch was closed"
    );
    configmap(&cp, "seen-after-idle");
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("\"name\":\"seen-after-idle\"") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, received.recv()).await {
            Ok(Some(data)) => seen.push_str(&String::from_utf8_lossy(&data)),
            other => panic!("the watch stopped before the new ConfigMap: {other:?}: {seen}"),
        }
    }

    // Once the watch is cancelled (RST_STREAM), nothing is open: the
    // connection is idle and is closed too.
    reader.abort();
    let _ = reader.await;
    let cancelled = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(20), watch_connection)
        .await
        .expect("the connection is closed once its watch ended")
        .expect("the connection task");
    assert!(closed.is_ok(), "{closed:?}");
    assert!(cancelled.elapsed() >= idle - Duration::from_millis(300));
    assert!(!cp.log().contains("panicked"), "{}", cp.log());
}

/// Reads (and drops) what `stream` receives until the server closes it,
/// giving when that was after `start`; `None` if it is still open at
/// `until` after `start`.
fn closed_at(
    stream: &mut impl std::io::Read,
    tcp: &std::net::TcpStream,
    start: std::time::Instant,
    until: std::time::Duration,
) -> Option<std::time::Duration> {
    let mut buf = [0u8; 4096];
    loop {
        let left = until.checked_sub(start.elapsed())?;
        tcp.set_read_timeout(Some(left.max(std::time::Duration::from_millis(1))))
            .expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// A TLS connection to the API as its admin, offering `alpn`, handshake
/// done.
fn tls_with(address: &str, alpn: &[u8]) -> Tls {
    let mut config = (*skiff_tests::api_tls::client(address).expect("a TLS API server")).clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    let mut tls = skiff_pki::tls::connect_blocking(
        std::sync::Arc::new(config),
        address,
        std::time::Duration::from_secs(10),
    )
    .expect("connect");
    tls.conn.complete_io(&mut tls.sock).expect("handshake");
    assert_eq!(tls.conn.alpn_protocol(), Some(alpn));
    tls
}

/// Sends `GET path` over HTTP/1.1 and reads its answer (with a
/// Content-Length); its status code.
fn http1_get(tls: &mut Tls, path: &str) -> u16 {
    use std::io::{Read, Write};
    write!(tls, "GET {path} HTTP/1.1\r\nHost: api\r\n\r\n").expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).expect("an answer");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a Content-Length");
    let mut body = vec![0u8; length];
    tls.read_exact(&mut body).expect("the body");
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status")
}

/// Clients that connect and stay silent are cut off at upstream's times
/// (Go's, as kube-apiserver configures its server), and an idle HTTP/1.1
/// keep-alive connection outlives the 32 s header timeout (upstream keeps
/// it for 90 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_are_cut_off_at_upstreams_times() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let cp = TestControlPlane::start().await;
    let address = cp.address.clone();
    let start = Instant::now();
    let secs = Duration::from_secs;
    let mut checks = Vec::new();
    let spawn = |what: &'static str, check: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(what.into())
            .spawn(check)
            .expect("a thread")
    };
    {
        // No TLS handshake: closed at the 32 s handshake timeout.
        let address = address.clone();
        checks.push(spawn(
            "no handshake",
            Box::new(move || {
                let mut tcp = std::net::TcpStream::connect(&address).expect("connect");
                let probe = tcp.try_clone().expect("clone");
                let at = closed_at(&mut tcp, &probe, start, secs(45));
                assert!(
                    at.is_some_and(|t| t >= secs(28)),
                    "no handshake: closed at {at:?}"
                );
            }),
        ));
    }
    {
        // HTTP/2 without its preface: closed at 10 s.
        let address = address.clone();
        checks.push(spawn(
            "no preface",
            Box::new(move || {
                let mut tls = tls_with(&address, b"h2");
                let tcp = tls.sock.try_clone().expect("clone");
                let at = closed_at(&mut tls, &tcp, start, secs(25));
                assert!(
                    at.is_some_and(|t| t >= secs(8) && t <= secs(20)),
                    "no preface: closed at {at:?}"
                );
            }),
        ));
    }
    {
        // HTTP/2's preface but no SETTINGS frame: closed 2 s later.
        let address = address.clone();
        checks.push(spawn(
            "no settings",
            Box::new(move || {
                let mut tls = tls_with(&address, b"h2");
                tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                    .expect("preface");
                let sent = Instant::now();
                let tcp = tls.sock.try_clone().expect("clone");
                let at = closed_at(&mut tls, &tcp, sent, secs(20));
                assert!(
                    at.is_some_and(|t| t >= Duration::from_millis(1500) && t <= secs(8)),
                    "no SETTINGS: closed at {at:?}"
                );
            }),
        ));
    }
    {
        // HTTP/1.1 without a request: closed at the 32 s header timeout.
        let address = address.clone();
        checks.push(spawn(
            "no request",
            Box::new(move || {
                let mut tls = tls_with(&address, b"http/1.1");
                let tcp = tls.sock.try_clone().expect("clone");
                let at = closed_at(&mut tls, &tcp, start, secs(45));
                assert!(
                    at.is_some_and(|t| t >= secs(28)),
                    "no request: closed at {at:?}"
                );
            }),
        ));
    }
    {
        // HTTP/1.1 keep-alive: still served after 40 s of idleness.
        let address = address.clone();
        checks.push(spawn(
            "keep-alive",
            Box::new(move || {
                let mut tls = tls_with(&address, b"http/1.1");
                assert_eq!(http1_get(&mut tls, "/version"), 200);
                let tcp = tls.sock.try_clone().expect("clone");
                let at = closed_at(&mut tls, &tcp, Instant::now(), secs(40));
                assert_eq!(at, None, "an idle keep-alive connection was closed");
                tcp.set_read_timeout(Some(secs(10))).expect("timeout");
                assert_eq!(http1_get(&mut tls, "/version"), 200);
            }),
        ));
    }
    {
        // HTTP/1.1, a request's first line after an answer, then nothing:
        // closed 32 s after that line, long before the idle timeout.
        let address = address.clone();
        checks.push(spawn(
            "slow headers",
            Box::new(move || {
                let mut tls = tls_with(&address, b"http/1.1");
                assert_eq!(http1_get(&mut tls, "/version"), 200);
                std::thread::sleep(secs(3));
                tls.write_all(b"GET /version HTTP/1.1\r\n")
                    .expect("a request line");
                let sent = Instant::now();
                let tcp = tls.sock.try_clone().expect("clone");
                let at = closed_at(&mut tls, &tcp, sent, secs(50));
                assert!(
                    at.is_some_and(|t| t >= secs(28) && t <= secs(45)),
                    "partial headers: closed at {at:?}"
                );
            }),
        ));
    }
    let checks = tokio::task::spawn_blocking(move || {
        checks
            .into_iter()
            .map(|c| c.join().is_ok())
            .collect::<Vec<_>>()
    })
    .await
    .expect("the checks");
    assert!(checks.iter().all(|ok| *ok), "{checks:?}");
    assert!(!cp.log().contains("panicked"), "{}", cp.log());
}
