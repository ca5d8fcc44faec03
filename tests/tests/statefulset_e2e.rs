//! The seed's StatefulSet session (sample-statefulset with a
//! `volumeClaimTemplates` claim) with the real kubectl, a real control
//! plane and two real kubelets on one containerd: pods come up one ordinal
//! at a time, each claim gets a node-local volume on its pod's node, a
//! deleted pod comes back on that node with its data, scaling removes the
//! highest ordinal first and keeps the claims, a lost node's pod is not
//! replaced while its object exists (until the node returns or its Node
//! object is deleted), and `rollout status|history|undo` work on the set's
//! ControllerRevisions.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use skiff_tests::TestEnv;
use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
use skiff_tests::kubelet::TestKubelet;

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: None
  selector:
    app: web
  ports:
  - port: 80
";

const STATEFULSET: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: busybox
        command: [sleep, '3600']
        readinessProbe:
          exec:
            command: ['true']
          periodSeconds: 1
        volumeMounts:
        - name: data
          mountPath: /data
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes:
      - ReadWriteOnce
      resources:
        requests:
          storage: 1G
";

/// One line of `kubectl get pods`: ready column, status, node, uid.
#[derive(Debug, Clone, PartialEq)]
struct PodRow {
    ready: bool,
    terminating: bool,
    node: String,
    uid: String,
}

/// The app=web pods by name.
fn pods(cp: &TestControlPlane) -> BTreeMap<String, PodRow> {
    let out = cp.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name} {.metadata.uid} {.spec.nodeName}|{.metadata.deletionTimestamp}|{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
    ]);
    out.lines()
        .filter_map(|l| {
            let (head, rest) = l.split_once('|')?;
            let (deletion, ready) = rest.split_once('|')?;
            let mut f = head.split_whitespace();
            let (name, uid) = (f.next()?.to_string(), f.next()?.to_string());
            let node = f.next().unwrap_or_default().to_string();
            Some((
                name,
                PodRow {
                    ready: ready == "True",
                    terminating: !deletion.is_empty(),
                    node,
                    uid,
                },
            ))
        })
        .collect()
}

/// Waits until exactly `names` exist, all Ready and none terminating;
/// `check` sees every state observed on the way (and may fail the test).
fn wait_for(
    cp: &TestControlPlane,
    names: &[&str],
    mut check: impl FnMut(&BTreeMap<String, PodRow>),
) -> BTreeMap<String, PodRow> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = pods(cp);
        check(&now);
        let done = now.len() == names.len()
            && names
                .iter()
                .all(|n| now.get(*n).is_some_and(|p| p.ready && !p.terminating));
        if done {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "wanted {names:?} Ready, have {now:?}\n{}",
            cp.log()
        );
        std::thread::sleep(Duration::from_millis(150));
    }
}

fn exec(cp: &TestControlPlane, pod: &str, script: &str) -> String {
    cp.kubectl_ok(&["exec", pod, "--", "sh", "-c", script])
}

fn rollout_status(cp: &TestControlPlane) -> String {
    cp.kubectl_ok(&["rollout", "status", "sts/web", "--timeout=120s"])
}

#[tokio::test]
async fn statefulsets_keep_order_identity_and_storage() {
    let test = "statefulsets_keep_order_identity_and_storage";
    if !kubectl_enabled(test) {
        return;
    }
    let Some(env) = TestEnv::start(test).await else {
        return;
    };
    let cp = TestControlPlane::start().await;
    let names = [
        format!("n{}sa", std::process::id()),
        format!("n{}sb", std::process::id()),
    ];
    let mut kubelets = Vec::new();
    for name in &names {
        kubelets.push(TestKubelet::start_with(&env, name, &["--control-plane", &cp.grpc]).await);
    }
    cp.eventually(&["get", "nodes"], "both nodes Ready", |o| {
        o.matches(" Ready ").count() == 2
    });
    let classes = cp.kubectl_ok(&["get", "storageclass"]);
    assert!(
        classes.contains("skiff-local (default)")
            && classes.contains("skiff.io/node-local")
            && classes.contains("WaitForFirstConsumer"),
        "{classes}"
    );

    // Ordinals come up in order, each after the previous is Ready.
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("svc.yaml", SERVICE)]);
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("sts.yaml", STATEFULSET)]);
    let mut seen_alone = false;
    let up = wait_for(&cp, &["web-0", "web-1", "web-2"], |now| {
        for i in 1..3 {
            if now.contains_key(&format!("web-{i}")) {
                let before = now.get(&format!("web-{}", i - 1));
                assert!(
                    before.is_some_and(|p| p.ready),
                    "web-{i} exists while web-{} is not Ready: {now:?}",
                    i - 1
                );
            }
        }
        seen_alone |= now.len() == 1 && now.contains_key("web-0");
    });
    assert!(seen_alone, "web-0 was never seen alone");
    let describe = cp.kubectl_ok(&["describe", "sts", "web"]);
    for expected in [
        "create Pod web-0 in StatefulSet web successful",
        "create Claim data-web-0 Pod web-0 in StatefulSet web success",
        "create Pod web-2 in StatefulSet web successful",
    ] {
        assert!(describe.contains(expected), "{expected}:\n{describe}");
    }
    let sts = cp.kubectl_ok(&["get", "sts"]);
    let columns: Vec<&str> = sts
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(columns, ["NAME", "READY", "AGE"], "{sts}");
    assert!(
        sts.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("web") && l.contains("3/3")),
        "{sts}"
    );
    let identity = cp.kubectl_ok(&[
        "get",
        "pod",
        "web-1",
        "-o",
        r"jsonpath={.spec.hostname}.{.spec.subdomain} {.metadata.labels.statefulset\.kubernetes\.io/pod-name} {.metadata.labels.apps\.kubernetes\.io/pod-index} {.metadata.ownerReferences[0].kind}",
    ]);
    assert_eq!(identity, "web-1.web web-1 1 StatefulSet");
    assert_eq!(exec(&cp, "web-1", "hostname"), "web-1\n");

    // Each claim is bound to a volume on its pod's node.
    let pvcs = cp.kubectl_ok(&["get", "pvc"]);
    let header: Vec<&str> = pvcs
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS",
            "MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE"
        ],
        "{pvcs}"
    );
    for i in 0..3 {
        let line = pvcs
            .lines()
            .find(|l| l.starts_with(&format!("data-web-{i} ")))
            .unwrap_or_else(|| panic!("no data-web-{i}:\n{pvcs}"));
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            (f[1], f[3], f[4], f[5], f[6]),
            ("Bound", "1G", "RWO", "skiff-local", "<unset>"),
            "{pvcs}"
        );
        assert!(f[2].starts_with("pvc-"), "{pvcs}");
        let affinity = cp.kubectl_ok(&[
            "get",
            "pv",
            f[2],
            "-o",
            "jsonpath={.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]} {.spec.claimRef.name} {.status.phase}",
        ]);
        assert_eq!(
            affinity,
            format!("{} data-web-{i} Bound", up[&format!("web-{i}")].node)
        );
    }
    let pv = cp.kubectl_ok(&["get", "pv"]);
    assert!(
        pv.contains("default/data-web-1") && pv.contains("Delete"),
        "{pv}"
    );

    // A deleted pod comes back with its name, on its volume's node, with its data.
    exec(&cp, "web-1", "echo hello > /data/f");
    let node = up["web-1"].node.clone();
    let volume = cp.kubectl_ok(&[
        "get",
        "pvc",
        "data-web-1",
        "-o",
        "jsonpath={.spec.volumeName}",
    ]);
    let kubelet = kubelets
        .iter()
        .find(|k| k.name == node)
        .expect("web-1's kubelet");
    let on_disk = kubelet.state_dir().join("volumes").join(&volume).join("f");
    assert_eq!(
        std::fs::read_to_string(&on_disk).ok().as_deref(),
        Some("hello\n")
    );
    cp.kubectl_ok(&["delete", "pod", "web-1"]);
    let back = wait_for(&cp, &["web-0", "web-1", "web-2"], |_| {});
    assert_ne!(back["web-1"].uid, up["web-1"].uid, "a new pod");
    assert_eq!(back["web-1"].node, node);
    assert_eq!(exec(&cp, "web-1", "cat /data/f"), "hello\n");

    // The volume pins the pod: with its node cordoned, web-1 waits.
    cp.kubectl_ok(&["cordon", &node]);
    cp.kubectl_ok(&["delete", "pod", "web-1"]);
    let events = cp.eventually(
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=web-1",
        ],
        "FailedScheduling",
        |o| o.contains("FailedScheduling"),
    );
    assert!(
        events.contains("1 node(s) had volume node affinity conflict")
            && events.contains("1 node(s) were unschedulable"),
        "{events}"
    );
    cp.kubectl_ok(&["uncordon", &node]);
    let back = wait_for(&cp, &["web-0", "web-1", "web-2"], |_| {});
    assert_eq!(back["web-1"].node, node);

    // Scale down: the highest ordinal goes first, the claims stay.
    cp.kubectl_ok(&["scale", "sts", "web", "--replicas=1"]);
    wait_for(&cp, &["web-0"], |now| {
        let leaving = |n: &str| now.get(n).is_none_or(|p| p.terminating);
        if leaving("web-1") {
            assert!(
                !now.contains_key("web-2"),
                "web-1 went before web-2: {now:?}"
            );
        }
    });
    let pvcs = cp.kubectl_ok(&["get", "pvc", "--no-headers"]);
    assert_eq!(
        pvcs.lines().filter(|l| l.contains(" Bound ")).count(),
        3,
        "{pvcs}"
    );
    cp.kubectl_ok(&["scale", "sts", "web", "--replicas=3"]);
    let up = wait_for(&cp, &["web-0", "web-1", "web-2"], |_| {});
    assert_eq!(up["web-1"].node, node);
    assert_eq!(exec(&cp, "web-1", "cat /data/f"), "hello\n");
    cp.eventually(&["get", "sts", "web", "--no-headers"], "READY 3/3", |o| {
        o.contains("3/3")
    });
    let status = rollout_status(&cp);
    assert!(
        status.contains("partitioned roll out complete: 3 new pods have been updated"),
        "{status}"
    );

    // A lost node: its pod is evicted but stays Terminating (the node cannot
    // confirm), and no second web-1 starts meanwhile.
    let node_index = names.iter().position(|n| *n == node).expect("node");
    kubelets[node_index].kill();
    cp.eventually(
        &["get", "pod", "web-1", "--no-headers"],
        "web-1 evicted",
        |o| o.contains("Terminating"),
    );
    let lost = pods(&cp);
    std::thread::sleep(Duration::from_secs(3));
    let still = pods(&cp);
    assert_eq!(
        still["web-1"].uid, lost["web-1"].uid,
        "web-1 was replaced: {still:?}"
    );
    assert!(still["web-1"].terminating, "{still:?}");
    kubelets[node_index].restart().await;
    let back = wait_for(&cp, &["web-0", "web-1", "web-2"], |_| {});
    assert_ne!(back["web-1"].uid, lost["web-1"].uid);
    assert_eq!(back["web-1"].node, node);
    assert_eq!(exec(&cp, "web-1", "cat /data/f"), "hello\n");

    // Lost again, and this time its Node object is deleted: its pods go at
    // once and come back Pending, held by their volumes' node affinity
    // until the node registers again.
    kubelets[node_index].kill();
    cp.eventually(
        &["get", "pod", "web-1", "--no-headers"],
        "web-1 evicted",
        |o| o.contains("Terminating"),
    );
    let lost = pods(&cp);
    let stranded: Vec<&String> = lost
        .iter()
        .filter(|(_, p)| p.node == node)
        .map(|(n, _)| n)
        .collect();
    cp.kubectl_ok(&["delete", "node", &node]);
    let first = stranded.first().copied().cloned().expect("web-1 was there");
    cp.eventually(
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={first}"),
        ],
        "the recreated pod held by its volume",
        |o| o.contains("0/1 nodes are available: 1 node(s) had volume node affinity conflict"),
    );
    let now = pods(&cp);
    for name in &stranded {
        assert!(
            now.get(*name).is_none_or(|p| p.uid != lost[*name].uid),
            "{name} of the deleted node is still there: {now:?}"
        );
    }
    assert!(
        now[&first].node.is_empty(),
        "{first} is not scheduled: {now:?}"
    );
    kubelets[node_index].restart().await;
    let back = wait_for(&cp, &["web-0", "web-1", "web-2"], |_| {});
    assert_eq!(back["web-1"].node, node);
    assert_eq!(exec(&cp, "web-1", "cat /data/f"), "hello\n");

    // Rolling update, history and undo through ControllerRevisions.
    cp.kubectl_ok(&["set", "image", "sts/web", "app=skiff.dev/webapp:v1"]);
    let status = rollout_status(&cp);
    assert!(status.contains("3 new pods have been updated"), "{status}");
    let images = cp.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    assert_eq!(
        images,
        "skiff.dev/webapp:v1 skiff.dev/webapp:v1 skiff.dev/webapp:v1"
    );
    let history = cp.kubectl_ok(&["rollout", "history", "sts/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    let crs = cp.kubectl_ok(&["get", "controllerrevisions"]);
    assert!(
        crs.starts_with("NAME") && crs.contains("statefulset.apps/web"),
        "{crs}"
    );
    cp.kubectl_ok(&["rollout", "undo", "sts/web"]);
    rollout_status(&cp);
    cp.eventually(
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ],
        "busybox again",
        |o| o == "busybox busybox busybox",
    );
    let history = cp.kubectl_ok(&["rollout", "history", "sts/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(
        revisions,
        ["2", "3"],
        "the first revision is reused as 3: {history}"
    );
    assert_eq!(exec(&cp, "web-1", "cat /data/f"), "hello\n");
    drop(kubelets);
    env.shutdown().await;
}
