//! Cluster DNS on `skiff up --nodes 3` (real containerd, real kubectl,
//! busybox's own resolver and `nslookup` in pods): Services by short name
//! and from another namespace by full name, a headless Service's ready
//! pods (following a scale), a StatefulSet pod's stable name (following
//! its recreation), an ExternalName's CNAME, `dnsPolicy: None` with
//! `dnsConfig`, a hostNetwork pod with `ClusterFirstWithHostNet`, and
//! `kubectl run … nslookup` as a user types it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_tests::cluster::SkiffUp;
use skiff_tests::control_plane::kubectl_enabled;
use skiff_tests::e2e_enabled;

const WORKLOADS: &str = "apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: webui}
spec:
  replicas: 3
  selector: {matchLabels: {app: webui}}
  template:
    metadata: {labels: {app: webui}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: web
        image: skiff.dev/webapp:v1
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: webui-svc}
spec:
  selector: {app: webui}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: alias}
spec:
  type: ExternalName
  externalName: webui-svc.default.svc.cluster.local
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: hl}
spec:
  replicas: 3
  selector: {matchLabels: {app: hl}}
  template:
    metadata: {labels: {app: hl}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{name: c, image: busybox, command: [sleep, '3600']}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: hl}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: sample-statefulset}
spec:
  clusterIP: None
  selector: {app: sts}
  ports: [{name: http, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: sample-statefulset}
spec:
  serviceName: sample-statefulset
  replicas: 2
  selector: {matchLabels: {app: sts}}
  template:
    metadata: {labels: {app: sts}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{name: c, image: busybox, command: [sleep, '3600']}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: busybox, command: [sleep, '3600']}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: other}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: busybox, command: [sleep, '3600']}]
---
apiVersion: v1
kind: Pod
metadata: {name: dns-none}
spec:
  terminationGracePeriodSeconds: 0
  dnsPolicy: None
  dnsConfig:
    nameservers: [1.1.1.1]
    searches: [ns1.svc.cluster-domain.example, my.dns.search.suffix]
    options:
    - {name: ndots, value: '2'}
    - {name: edns0}
  containers: [{name: c, image: busybox, command: [sleep, '3600']}]
---
apiVersion: v1
kind: Pod
metadata: {name: hostdns}
spec:
  terminationGracePeriodSeconds: 0
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  containers: [{name: c, image: busybox, command: [sleep, '3600']}]
";

fn apply(cluster: &SkiffUp, yaml: &str) {
    let file = cluster.dir().join("manifest.yaml");
    std::fs::write(&file, yaml).expect("write manifest");
    cluster.kubectl_ok(&["apply", "-f", &file.display().to_string()]);
}

fn exec(cluster: &SkiffUp, ns: &str, pod: &str, cmd: &[&str]) -> (bool, String) {
    let mut args = vec!["exec", "-n", ns, pod, "--"];
    args.extend_from_slice(cmd);
    cluster.kubectl(&args)
}

/// The addresses busybox `nslookup name` prints in its answer (after the
/// `Name:` line; the server's own address comes before it).
fn lookup(cluster: &SkiffUp, pod: &str, name: &str) -> BTreeSet<String> {
    let (_, out) = exec(cluster, "default", pod, &["nslookup", name]);
    out.split("Name:")
        .skip(1)
        .flat_map(|answer| {
            answer
                .lines()
                .filter_map(|l| l.strip_prefix("Address:"))
                .map(|a| a.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The address the pod's own resolver (libc, with the search path and
/// ndots of its resolv.conf) gives `name`: busybox `ping` prints it first.
/// (Busybox `nslookup` applies the search path only to names without a
/// dot, as it does on any cluster.)
fn resolve(cluster: &SkiffUp, pod: &str, name: &str) -> Option<String> {
    let (_, out) = exec(
        cluster,
        "default",
        pod,
        &["ping", "-c", "1", "-W", "1", name],
    );
    let line = out.lines().find(|l| l.starts_with("PING "))?;
    let ip = line.split('(').nth(1)?.split(')').next()?;
    Some(ip.to_string())
}

fn pod_ips(cluster: &SkiffUp, selector: &str) -> BTreeSet<String> {
    let pods: Value =
        serde_json::from_str(&cluster.kubectl_ok(&["get", "pods", "-l", selector, "-o", "json"]))
            .expect("pods json");
    pods["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
        .collect()
}

fn within<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn pods_resolve_services_headless_pods_and_statefulset_names() {
    let test = "pods_resolve_services_headless_pods_and_statefulset_names";
    if !kubectl_enabled(test) || !e2e_enabled(test) {
        return;
    }
    let temp = tempfile::Builder::new()
        .prefix("skiff-dns-")
        .tempdir()
        .expect("tempdir");
    let cluster = SkiffUp::start(3, temp.path());

    // kube-dns is published as upstream publishes CoreDNS.
    let dns: Value = serde_json::from_str(&cluster.kubectl_ok(&[
        "get",
        "svc",
        "kube-dns",
        "-n",
        "kube-system",
        "-o",
        "json",
    ]))
    .expect("kube-dns json");
    assert_eq!(dns["spec"]["clusterIP"], "10.96.0.10");

    apply(&cluster, WORKLOADS);
    cluster.eventually(&["get", "pods", "-A"], "every pod Running", |o| {
        let pods: Vec<&str> = o.lines().skip(1).collect();
        pods.len() == 12 && pods.iter().all(|l| l.contains("Running"))
    });
    cluster.eventually(&["get", "deploy", "webui"], "webui ready", |o| {
        o.contains("3/3")
    });

    // ClusterFirst: the cluster's resolver and search path, ndots:5.
    let (ok, resolv) = exec(&cluster, "default", "client", &["cat", "/etc/resolv.conf"]);
    assert!(ok, "{resolv}");
    assert!(resolv.contains("nameserver 10.96.0.10"), "{resolv}");
    assert!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{resolv}"
    );
    assert!(resolv.contains("options ndots:5"), "{resolv}");

    // A Service by its short name, and by its full name from another
    // namespace, through busybox's resolver and the Service's ClusterIP.
    let body = within(Duration::from_secs(30), "wget http://webui-svc", || {
        let (ok, out) = exec(
            &cluster,
            "default",
            "client",
            &["timeout", "5", "wget", "-qO-", "http://webui-svc"],
        );
        (ok && out.contains("webapp v1 on ")).then_some(out)
    });
    assert!(body.contains("webui-"), "{body}");
    within(
        Duration::from_secs(30),
        "the full name from namespace other",
        || {
            let (ok, out) = exec(
                &cluster,
                "other",
                "client",
                &[
                    "timeout",
                    "5",
                    "wget",
                    "-qO-",
                    "http://webui-svc.default.svc.cluster.local",
                ],
            );
            (ok && out.contains("webapp v1 on ")).then_some(())
        },
    );

    // `kubectl run … nslookup`, as the seeds type it.
    let cluster_ip = cluster
        .kubectl_ok(&[
            "get",
            "svc",
            "webui-svc",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])
        .trim()
        .to_string();
    let (ok, out) = cluster.kubectl(&[
        "run",
        "dnstest",
        "-i",
        "--rm",
        "--restart=Never",
        "--image=busybox",
        "--",
        "nslookup",
        "webui-svc",
    ]);
    // Busybox tries every search domain for a dotless name and says so
    // (the NXDOMAINs for the other two are what a real cluster prints
    // too, and make nslookup, so kubectl, exit 1).
    assert!(!ok || out.contains("Name:"), "{out}");
    assert!(out.contains("Server:\t\t10.96.0.10"), "{out}");
    assert!(
        out.contains("Name:\twebui-svc.default.svc.cluster.local"),
        "{out}"
    );
    assert!(out.contains(&format!("Address: {cluster_ip}")), "{out}");

    // A headless Service: one address per ready pod, following a scale.
    let want = pod_ips(&cluster, "app=hl");
    assert_eq!(want.len(), 3);
    within(Duration::from_secs(20), "three headless addresses", || {
        (lookup(&cluster, "client", "web-headless.default.svc.cluster.local") == want).then_some(())
    });
    cluster.kubectl_ok(&["scale", "rs", "hl", "--replicas=5"]);
    cluster.eventually(&["get", "rs", "hl"], "5 ready", |o| {
        o.lines().nth(1).is_some_and(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.get(3) == Some(&"5")
        })
    });
    within(Duration::from_secs(20), "five headless addresses", || {
        let want = pod_ips(&cluster, "app=hl");
        (want.len() == 5
            && lookup(&cluster, "client", "web-headless.default.svc.cluster.local") == want)
            .then_some(())
    });

    // A StatefulSet pod's stable name follows the pod when it is recreated.
    let sts_ip = |cluster: &SkiffUp| {
        cluster
            .kubectl_ok(&[
                "get",
                "pod",
                "sample-statefulset-0",
                "-o",
                "jsonpath={.status.podIP}",
            ])
            .trim()
            .to_string()
    };
    let first = sts_ip(&cluster);
    within(
        Duration::from_secs(20),
        "sample-statefulset-0 resolves",
        || {
            (resolve(
                &cluster,
                "client",
                "sample-statefulset-0.sample-statefulset",
            ) == Some(first.clone()))
            .then_some(())
        },
    );
    cluster.kubectl_ok(&["delete", "pod", "sample-statefulset-0", "--wait=false"]);
    let second = within(
        Duration::from_secs(60),
        "sample-statefulset-0 recreated",
        || {
            let ip = sts_ip(&cluster);
            (!ip.is_empty() && ip != first).then_some(ip)
        },
    );
    within(
        Duration::from_secs(20),
        "the name follows the new pod",
        || {
            (resolve(
                &cluster,
                "client",
                "sample-statefulset-0.sample-statefulset",
            ) == Some(second.clone()))
            .then_some(())
        },
    );

    // ExternalName: a CNAME to the other Service's full name.
    let (_, out) = exec(
        &cluster,
        "default",
        "client",
        &["nslookup", "alias.default.svc.cluster.local"],
    );
    assert!(
        out.contains("canonical name = webui-svc.default.svc.cluster.local"),
        "{out}"
    );
    assert!(out.contains(&format!("Address: {cluster_ip}")), "{out}");

    // dnsPolicy None: exactly the pod's dnsConfig.
    let (ok, resolv) = exec(
        &cluster,
        "default",
        "dns-none",
        &["cat", "/etc/resolv.conf"],
    );
    assert!(ok, "{resolv}");
    assert_eq!(
        resolv.trim_end(),
        "search ns1.svc.cluster-domain.example my.dns.search.suffix\nnameserver 1.1.1.1\noptions ndots:2 edns0"
    );

    // A hostNetwork pod with ClusterFirstWithHostNet resolves cluster names.
    let addresses = within(Duration::from_secs(20), "hostdns resolves", || {
        let (_, out) = exec(
            &cluster,
            "default",
            "hostdns",
            &["nslookup", "webui-svc.default.svc.cluster.local"],
        );
        out.contains(&format!("Address: {cluster_ip}"))
            .then_some(out)
    });
    assert!(addresses.contains("10.96.0.10"), "{addresses}");
}
