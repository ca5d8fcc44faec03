//! Clients that open a watch and never read it cost bounded resources: the
//! control plane terminates them once their buffer stays full past its
//! budget, its threads and memory stay bounded meanwhile, and a GET stays
//! fast. Over the max-in-flight cap, requests get 429 with `Retry-After`.

use skiff_tests::api_tls::Stream;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use skiff_tests::control_plane::{TestControlPlane, http_json};

fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("field")
}

fn open_watch(addr: &str, query: &str) -> Stream {
    let mut s = skiff_tests::api_tls::connect(addr, Duration::from_secs(20)).expect("connect");
    write!(
        s,
        "GET /api/v1/namespaces/default/configmaps?watch=true{query} HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    )
    .expect("send");
    s
}

fn big_configmap(name: &str, fill: char) -> String {
    let data: String = std::iter::repeat_n(fill, 200 * 1024).collect();
    serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"blob": data}}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_watchers_are_cut_off_and_resources_stay_bounded() {
    let cp = TestControlPlane::start().await;
    let pid = cp.pid().expect("pid");
    let addr = cp.address.clone();
    let path = "/api/v1/namespaces/default/configmaps";
    for i in 0..10 {
        let (code, _) = http_json(
            "POST",
            &addr,
            path,
            &big_configmap(&format!("big-{i}"), 'a'),
        )
        .expect("create");
        assert_eq!(code, 201);
    }
    let small =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"small"},"data":{"a":"b"}}"#;
    assert_eq!(
        http_json("POST", &addr, path, small).expect("create").0,
        201
    );
    let threads_idle = proc_status(pid, "Threads:");
    let rss_idle = proc_status(pid, "VmRSS:");

    // One watcher that reads everything.
    let reader = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let mut s = open_watch(&addr, "&resourceVersion=1");
            s.tcp()
                .set_read_timeout(Some(Duration::from_secs(60)))
                .expect("timeout");
            let mut all = Vec::new();
            let mut buf = vec![0u8; 1 << 16];
            let needle = b"\"name\":\"done\"";
            loop {
                let n = s.read(&mut buf).expect("read");
                assert!(n > 0, "the reading watch ended early");
                // Only the new bytes (and a needle's length before them)
                // can complete the needle: scanning everything each time
                // made this reader quadratic, and over TLS (a record, at
                // most 16 KiB, per read) too slow to keep up, so the server
                // rightly cut it off as stalled.
                let from = all.len().saturating_sub(needle.len());
                all.extend_from_slice(&buf[..n]);
                if all[from..].windows(needle.len()).any(|w| w == needle) {
                    break;
                }
            }
            String::from_utf8_lossy(&all).into_owned()
        })
    };
    // 300 that never read: half with initial events.
    let stalled: Vec<Stream> = (0..300)
        .map(|i| {
            let q = if i % 2 == 0 {
                "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
            } else {
                ""
            };
            open_watch(&addr, q)
        })
        .collect();

    // Big objects change for 12 s while GETs are timed, paced at 20 a
    // second: what the stalled watches hold (and so the RSS bound below)
    // then does not grow with the machine's speed. At least 100 changes,
    // however slow the machine: fewer would fit in the stalled
    // connections' socket buffers and never fill a watch's budget.
    let started = Instant::now();
    let mut updates = 0;
    let mut latencies = Vec::new();
    let mut peak_threads = 0;
    let mut peak_rss = 0;
    let pace = Duration::from_millis(50);
    while started.elapsed() < Duration::from_secs(12) || updates < 100 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {updates} updates in 120 s"
        );
        let due = started + pace * updates as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let i = updates % 10;
        let body = big_configmap(&format!("big-{i}"), (b'b' + (updates % 20) as u8) as char);
        let (code, text) =
            http_json("PUT", &addr, &format!("{path}/big-{i}"), &body).expect("update");
        assert_eq!(code, 200, "{text}");
        updates += 1;
        let t = Instant::now();
        let (code, _) = http_json("GET", &addr, &format!("{path}/small"), "").expect("get");
        assert_eq!(code, 200);
        latencies.push(t.elapsed());
        peak_threads = peak_threads.max(proc_status(pid, "Threads:"));
        peak_rss = peak_rss.max(proc_status(pid, "VmRSS:"));
    }
    let done = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"done"}}"#;
    assert_eq!(http_json("POST", &addr, path, done).expect("create").0, 201);
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    eprintln!(
        "updates {updates}, GET p50 {p50:?}, threads {threads_idle} -> {peak_threads}, RSS {rss_idle} -> {peak_rss} KiB"
    );
    assert!(p50 < Duration::from_millis(250), "GET p50 {p50:?}");
    assert!(
        peak_threads < threads_idle + 40,
        "threads grew from {threads_idle} to {peak_threads}"
    );
    // Lines sent as stored are rendered once and shared by every watcher
    // (measured: about 135 MiB more; 670 MiB when each watcher rendered
    // and buffered its own copy of every 200 KiB line).
    assert!(
        peak_rss < rss_idle + 300 * 1024,
        "RSS grew from {rss_idle} to {peak_rss} KiB"
    );

    // The reader saw every update, in order.
    let seen = reader.join().expect("reader");
    let revisions: Vec<u64> = seen
        .lines()
        .filter(|l| l.contains("\"MODIFIED\""))
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l.trim()).ok()?;
            v["object"]["metadata"]["resourceVersion"]
                .as_str()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(revisions.len(), updates, "every update reached the reader");
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "in order");

    // The stalled watches were terminated: each response ends (last chunk)
    // once what was already sent is drained.
    let mut ended = 0;
    for mut s in stalled {
        s.tcp()
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut tail = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 16 {
                tail.drain(..tail.len() - 16);
            }
            if tail.ends_with(b"\r\n0\r\n\r\n") {
                ended += 1;
                break;
            }
        }
    }
    assert!(
        ended >= 290,
        "only {ended} of 300 stalled watches were cut off"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let threads_after = proc_status(pid, "Threads:");
    assert!(threads_after < threads_idle + 20, "threads {threads_after}");
}

fn raw(addr: &str, request: &str) -> String {
    let mut s = skiff_tests::api_tls::connect(addr, Duration::from_secs(20)).expect("connect");
    s.write_all(request.as_bytes()).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_in_flight_cap_get_429_but_watches_are_not_counted() {
    let cp = TestControlPlane::start_with(&["--max-requests-inflight", "2"]).await;
    let addr = cp.address.clone();
    for i in 0..20 {
        let (code, _) = http_json(
            "POST",
            &addr,
            "/api/v1/namespaces/default/configmaps",
            &big_configmap(&format!("big-{i}"), 'a'),
        )
        .expect("create");
        assert_eq!(code, 201);
    }
    // Watches beyond the cap do not count against it.
    let _watches: Vec<Stream> = (0..5).map(|_| open_watch(&addr, "")).collect();
    std::thread::sleep(Duration::from_millis(300));
    let (code, _) = http_json(
        "GET",
        &addr,
        "/api/v1/namespaces/default/configmaps/big-0",
        "",
    )
    .expect("get");
    assert_eq!(code, 200);
    // Many concurrent lists: some are refused.
    let answers: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..24)
            .map(|_| {
                s.spawn(|| {
                    raw(
                        &addr,
                        &format!("GET /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let refused: Vec<&String> = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 429"))
        .collect();
    assert!(!refused.is_empty(), "no request was refused");
    assert!(
        answers
            .iter()
            .all(|a| a.starts_with("HTTP/1.1 200") || a.starts_with("HTTP/1.1 429"))
    );
    let answer = refused[0].to_ascii_lowercase();
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(
        answer.contains("\"reason\":\"toomanyrequests\""),
        "{answer}"
    );
    assert!(answer.contains("\"code\":429"), "{answer}");
}
