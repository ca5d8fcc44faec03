//! Seeded, bounded fuzzing of the HTTP API against a real control plane:
//! mutated manifests, hostile YAML, invalid patches of all four types,
//! invalid queries and paths, every verb. No panic, no 5xx, every error a
//! `Status` with a matching code, and canary objects byte-identical after.

use serde_json::Value;
use skiff_fuzzing::Rng;
use skiff_tests::control_plane::TestControlPlane;
use skiff_tests::request_as;

const SEED: u64 = 0x5eed_12ed_9e00_0001;
const REQUESTS: usize = 5_000;

const CANARIES: &[&str] = &[
    "/api/v1/namespaces/canary/configmaps/cm",
    "/api/v1/namespaces/canary/secrets/sec",
    "/api/v1/namespaces/canary/services/svc",
    "/api/v1/namespaces/canary/serviceaccounts/sa",
    "/apis/apps/v1/namespaces/canary/deployments/dep",
];

const BAD_QUERIES: &[&str] = &[
    "labelSelector=app%3Dnone%ff",
    "labelSelector=a%3D%3Db%3D%3Dc",
    "fieldSelector=a%3D%3Db%3D%3Dc",
    "labelSelector=%zz",
    "labelSelector=!",
    "labelSelector=a+in+(",
    "limit=abc",
    "limit=99999999999999999999999",
    "watch=maybe",
    "resourceVersion=abc",
    "resourceVersion=-1",
    "resourceVersionMatch=Newest",
    "timeoutSeconds=soon",
    "gracePeriodSeconds=x",
    "propagationPolicy=Sideways",
    "orphanDependents=perhaps",
    "dryRun=Bogus",
    "dryRun=",
    "fieldValidation=Loose",
    "allowWatchBookmarks=2",
    "sendInitialEvents=sometimes",
    "pretty=very",
    "%",
];

const GOOD_QUERIES: &[&str] = &[
    "",
    "dryRun=All",
    "pretty=true",
    "fieldValidation=Strict",
    "fieldManager=fuzz",
];

const HOSTILE: &[&str] = &[
    "{",
    "42",
    "[1,2]",
    "null",
    "\"s\"",
    "{\"kind\":5}",
    "{\"metadata\":5}",
    "{\"metadata\":{\"name\":[1]}}",
    "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"x\"},\"data\":{\"a\":1}}",
    "a: &a [*a]",
    "a: &a x\nb: [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]",
    "{\"op\":\"add\"}",
    "[{\"op\":\"test\",\"path\":\"/metadata/name\",\"value\":\"no\"}]",
    "[{\"op\":\"replace\",\"path\":\"\",\"value\":42}]",
    "[{\"op\":\"remove\",\"path\":\"/nope\"}]",
    "{\"$patch\":\"replace\"}",
    "{\"spec\":{\"containers\":[{\"$patch\":\"delete\"}]}}",
    "{\"spec\":{\"$retainKeys\":5}}",
    "\u{0}\u{1}",
    "",
];

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "text/plain",
    "application/vnd.kubernetes.protobuf",
];

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn seeds() -> Vec<String> {
    let mut out = Vec::new();
    for dir in [
        concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"),
        "/work/shared/seeds",
    ] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if p.extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
                && let Ok(text) = std::fs::read_to_string(&p)
            {
                for doc in text.split("\n---") {
                    if doc.len() < 64 * 1024 && !doc.trim().is_empty() {
                        out.push(doc.to_string());
                    }
                }
            }
        }
    }
    out.push("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: seed\ndata:\n  a: b\n".into());
    out
}

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        if bytes.is_empty() {
            break;
        }
        let i = rng.below(bytes.len());
        match rng.below(4) {
            0 => bytes[i] = (rng.next_u64() & 0x7f) as u8,
            1 => {
                bytes.remove(i);
            }
            2 => {
                let pool = b"{}[]:&*-\"'\n 0";
                bytes.insert(i, pool[rng.below(pool.len())]);
            }
            _ => bytes.truncate(i),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn get(cp: &TestControlPlane, path: &str) -> String {
    request_as("GET", &cp.address, path, "application/json", "")
        .expect("get")
        .1
}

#[tokio::test]
async fn fuzzed_requests_never_panic_5xx_or_change_canaries() {
    let cp = TestControlPlane::start().await;
    let addr = cp.address.clone();
    let post = |path: &str, body: &str| {
        let (code, text) = request_as("POST", &addr, path, "application/json", body).expect("post");
        assert!(code == 201, "setup {path}: {code} {text}");
    };
    for ns in ["canary", "fuzz"] {
        post(
            "/api/v1/namespaces",
            &format!(r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{ns}"}}}}"#),
        );
    }
    post(
        "/api/v1/namespaces/canary/configmaps",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm","labels":{"app":"canary"}},"data":{"k":"v"}}"#,
    );
    post(
        "/api/v1/namespaces/canary/secrets",
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"sec"},"data":{"k":"dg=="}}"#,
    );
    post(
        "/api/v1/namespaces/canary/services",
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc"},"spec":{"ports":[{"port":80}],"selector":{"app":"x"}}}"#,
    );
    post(
        "/api/v1/namespaces/canary/serviceaccounts",
        r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"sa"}}"#,
    );
    post(
        "/apis/apps/v1/namespaces/canary/deployments",
        r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"dep"},"spec":{"replicas":0,"selector":{"matchLabels":{"app":"d"}},"template":{"metadata":{"labels":{"app":"d"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}"#,
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before: Vec<String> = CANARIES.iter().map(|p| get(&cp, p)).collect();

    println!("api_fuzz seed {SEED:#x}, {REQUESTS} requests");
    let mut rng = Rng::new(SEED);
    let seeds = seeds();
    let collections = [
        "/api/v1/namespaces/{ns}/configmaps",
        "/api/v1/namespaces/{ns}/secrets",
        "/api/v1/namespaces/{ns}/services",
        "/api/v1/namespaces/{ns}/pods",
        "/apis/apps/v1/namespaces/{ns}/deployments",
        "/apis/batch/v1/namespaces/{ns}/jobs",
    ];
    let subs = [
        "",
        "",
        "/status",
        "/scale",
        "/bogus",
        "/binding",
        "/eviction",
        "/finalize",
    ];
    let mut failures = Vec::new();
    let started = std::time::Instant::now();
    for i in 0..REQUESTS {
        // The canary namespace only ever gets requests that must be refused.
        let canary = rng.below(4) == 0;
        let ns = if canary { "canary" } else { "fuzz" };
        let coll = rng.pick(&collections).replace("{ns}", ns);
        let names = ["cm", "sec", "svc", "dep", "x", "seed", "a%2Fb", "..", "%ff"];
        let named = rng.below(3) > 0;
        let mut path = if named {
            format!("{coll}/{}{}", rng.pick(&names), rng.pick(&subs))
        } else {
            coll.clone()
        };
        let method = rng.pick(&[
            "GET", "POST", "PUT", "PATCH", "DELETE", "DELETE", "OPTIONS", "HEAD",
        ]);
        let query = if canary || rng.below(3) == 0 {
            rng.pick(BAD_QUERIES)
        } else {
            rng.pick(GOOD_QUERIES)
        };
        if rng.below(20) == 0 {
            path = rng
                .pick(&[
                    "/api/v9/pods",
                    "/apis/nope/v1/x",
                    "/api//v1",
                    "/api/v1/namespaces/fuzz/pods/a/b/c/d",
                    "/version/x",
                    "/%ff",
                ])
                .to_string();
        }
        if !query.is_empty() {
            path = format!("{path}?{query}");
        }
        let body = match rng.below(5) {
            0 => rng.pick(HOSTILE).to_string(),
            1 => nested(100 + rng.below(5000)),
            2 => seeds[rng.below(seeds.len())].clone(),
            _ => {
                let seed = rng.below(seeds.len());
                mutate(&mut rng, &seeds[seed])
            }
        };
        let ct = rng.pick(CONTENT_TYPES);
        if canary && query.is_empty() {
            continue;
        }
        let Ok((code, text)) = request_as(method, &cp.address, &path, ct, &body) else {
            failures.push(format!("#{i} {method} {path}: no answer"));
            break;
        };
        if code >= 500 || code == 0 {
            failures.push(format!(
                "#{i} {method} {path} [{ct}] {body:.200}: {code} {text:.300}"
            ));
        } else if code >= 400 && method != "HEAD" {
            let status: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status["kind"] != "Status" || status["code"] != code {
                failures.push(format!(
                    "#{i} {method} {path}: {code} without Status: {text:.200}"
                ));
            }
        }
        if canary
            && code < 300
            && method != "GET"
            && method != "HEAD"
            && !query.contains("dryRun=All")
        {
            failures.push(format!(
                "#{i} {method} {path} [{ct}] accepted in canary: {code} {text:.200}"
            ));
        }
    }
    println!("api_fuzz: {REQUESTS} requests in {:?}", started.elapsed());
    let after: Vec<String> = CANARIES.iter().map(|p| get(&cp, p)).collect();
    for (p, (b, a)) in CANARIES.iter().zip(before.iter().zip(&after)) {
        if b != a {
            failures.push(format!("canary {p} changed:\n{b}\n{a}"));
        }
    }
    let log = cp.log();
    assert!(!log.contains("panicked"), "control plane panicked:\n{log}");
    assert!(
        failures.is_empty(),
        "{} failures (seed {SEED:#x}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
