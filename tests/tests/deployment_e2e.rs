//! The seed's Deployment session with the real kubectl, a real control
//! plane and a real kubelet on containerd: a rollout finishes, `set image`
//! rolls to a second ReplicaSet, `rollout history` lists both revisions,
//! `rollout undo` returns to the first set as revision 3, and `scale`
//! resizes the current set.

use std::time::Duration;

use skiff_tests::TestEnv;
use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
use skiff_tests::kubelet::TestKubelet;

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
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
      - name: web
        image: skiff.dev/webapp:v1
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet:
            path: /ready
            port: 8080
          periodSeconds: 1
";

fn rollout_status(cp: &TestControlPlane) {
    let out = cp.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
}

/// `name replicas revision image` of each ReplicaSet of app=web.
fn sets(cp: &TestControlPlane) -> Vec<(String, String, String, String)> {
    let out = cp.kubectl_ok(&[
        "get",
        "rs",
        "-l",
        "app=web",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name} {.spec.replicas} {.metadata.annotations.deployment\.kubernetes\.io/revision} {.spec.template.spec.containers[0].image}{"\n"}{end}"#,
    ]);
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4).then(|| (f[0].into(), f[1].into(), f[2].into(), f[3].into()))
        })
        .collect()
}

/// Images of the pods of app=web that are not terminating.
fn pod_images(cp: &TestControlPlane) -> Vec<String> {
    let out = cp.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.deletionTimestamp}|{.spec.containers[0].image}{"\n"}{end}"#,
    ]);
    out.lines()
        .filter_map(|l| l.strip_prefix('|').map(String::from))
        .collect()
}

#[tokio::test]
async fn deployments_roll_out_roll_back_and_scale() {
    if !kubectl_enabled("deployments_roll_out_roll_back_and_scale") {
        return;
    }
    let Some(env) = TestEnv::start("deployments_roll_out_roll_back_and_scale").await else {
        return;
    };
    let cp = TestControlPlane::start().await;
    let node = format!("n{}d", std::process::id());
    let kubelet = TestKubelet::start_with(&env, &node, &["--control-plane", &cp.grpc]).await;
    cp.eventually(&["get", "nodes"], "the node Ready", |o| {
        o.contains(" Ready ")
    });

    cp.kubectl_ok(&["apply", "-f", &cp.manifest("deploy.yaml", DEPLOYMENT)]);
    rollout_status(&cp);
    let first = sets(&cp);
    assert_eq!(first.len(), 1, "{first:?}");
    let (v1_set, replicas, revision, image) = first[0].clone();
    assert_eq!(
        (replicas.as_str(), revision.as_str(), image.as_str()),
        ("3", "1", "skiff.dev/webapp:v1")
    );
    assert!(v1_set.starts_with("web-"), "{v1_set}");
    let hash = cp.kubectl_ok(&[
        "get",
        "rs",
        &v1_set,
        "-o",
        "jsonpath={.metadata.labels.pod-template-hash} {.spec.selector.matchLabels.pod-template-hash} {.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
    ]);
    let suffix = v1_set.trim_start_matches("web-");
    assert_eq!(hash, format!("{suffix} {suffix} Deployment/web"));
    let ready = cp.kubectl_ok(&["get", "deploy", "web", "--no-headers"]);
    assert!(ready.contains("3/3"), "{ready}");
    // Settled means settled: no controller keeps rewriting either object.
    let versions = || {
        cp.kubectl_ok(&[
            "get",
            "deploy,rs",
            "-o",
            "jsonpath={.items[*].metadata.resourceVersion}",
        ])
    };
    let before = versions();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(versions(), before, "a write loop");

    // set image: a second set takes over, the first is kept at 0.
    cp.kubectl_ok(&["set", "image", "deployment/web", "web=skiff.dev/webapp:v2"]);
    rollout_status(&cp);
    let second = sets(&cp);
    assert_eq!(second.len(), 2, "{second:?}");
    let v2 = second
        .iter()
        .find(|s| s.3 == "skiff.dev/webapp:v2")
        .cloned()
        .unwrap_or_else(|| panic!("no v2 set: {second:?}"));
    assert_eq!((v2.1.as_str(), v2.2.as_str()), ("3", "2"), "{second:?}");
    let old = second.iter().find(|s| s.0 == v1_set).cloned();
    assert_eq!(old.map(|s| s.1), Some("0".to_string()), "{second:?}");
    cp.eventually(&["get", "pods", "-l", "app=web"], "only v2 pods", |_| {
        let images = pod_images(&cp);
        images.len() == 3 && images.iter().all(|i| i == "skiff.dev/webapp:v2")
    });
    // The change cause is copied to the current set, where history reads it.
    cp.kubectl_ok(&[
        "annotate",
        "deployment/web",
        "kubernetes.io/change-cause=image v2",
    ]);
    let history = cp.eventually(
        &["rollout", "history", "deployment/web"],
        "the change cause",
        |o| {
            o.lines()
                .any(|l| l.starts_with('2') && l.contains("image v2"))
        },
    );
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    let describe = cp.kubectl_ok(&["describe", "deploy", "web"]);
    assert!(
        describe.contains("ScalingReplicaSet")
            && describe.contains(&format!("Scaled down replica set {v1_set} from")),
        "{describe}"
    );

    // undo: back to v1 on the first set, which becomes revision 3.
    cp.kubectl_ok(&["rollout", "undo", "deployment/web"]);
    rollout_status(&cp);
    let third = sets(&cp);
    assert_eq!(third.len(), 2, "the first set is reused: {third:?}");
    let back = third.iter().find(|s| s.0 == v1_set).cloned();
    assert_eq!(
        back.map(|s| (s.1, s.2, s.3)),
        Some(("3".into(), "3".into(), "skiff.dev/webapp:v1".into())),
        "{third:?}"
    );
    let history = cp.kubectl_ok(&[
        "get",
        "rs",
        &v1_set,
        "-o",
        r"jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision-history}",
    ]);
    assert_eq!(history, "1");
    let revision = cp.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        r"jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}",
    ]);
    assert_eq!(revision, "3");

    // scale: the current set grows, no new revision.
    cp.kubectl_ok(&["scale", "deploy", "web", "--replicas=5"]);
    rollout_status(&cp);
    cp.eventually(&["get", "deploy", "web", "--no-headers"], "5/5", |o| {
        o.contains("5/5")
    });
    let last = sets(&cp);
    assert_eq!(last.len(), 2, "{last:?}");
    assert!(last.iter().any(|s| s.0 == v1_set && s.1 == "5"), "{last:?}");

    drop(kubelet);
    env.shutdown().await;
}

fn manifest(name: &str, extra_spec: &str, ready_path: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 2
{extra_spec}  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: skiff.dev/webapp:v1
        readinessProbe:
          httpGet:
            path: {ready_path}
            port: 8080
          periodSeconds: 1
"
    )
}

fn set_names(cp: &TestControlPlane, app: &str) -> Vec<String> {
    let out = cp.kubectl_ok(&[
        "get",
        "rs",
        "-l",
        &format!("app={app}"),
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    out.split_whitespace().map(String::from).collect()
}

#[tokio::test]
async fn recreate_pause_restart_and_progress_deadline() {
    if !kubectl_enabled("recreate_pause_restart_and_progress_deadline") {
        return;
    }
    let Some(env) = TestEnv::start("recreate_pause_restart_and_progress_deadline").await else {
        return;
    };
    let cp = TestControlPlane::start().await;
    let node = format!("n{}e", std::process::id());
    let kubelet = TestKubelet::start_with(&env, &node, &["--control-plane", &cp.grpc]).await;
    cp.eventually(&["get", "nodes"], "the node Ready", |o| {
        o.contains(" Ready ")
    });

    // Recreate: every old pod goes before any new one is created.
    let rec = manifest("rec", "  strategy:\n    type: Recreate\n", "/ready");
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("rec.yaml", &rec)]);
    let status = ["rollout", "status", "deployment/rec", "--timeout=120s"];
    cp.kubectl_ok(&status);
    let first = set_names(&cp, "rec");
    assert_eq!(first.len(), 1, "{first:?}");
    cp.kubectl_ok(&["set", "image", "deployment/rec", "web=skiff.dev/webapp:v2"]);
    cp.kubectl_ok(&status);
    let events = cp.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=Deployment,involvedObject.name=rec",
        "-o",
        r#"jsonpath={range .items[*]}{.message}{"\n"}{end}"#,
    ]);
    let down = events.find(&format!("Scaled down replica set {} from 2 to 0", first[0]));
    let second: Vec<String> = set_names(&cp, "rec")
        .into_iter()
        .filter(|n| n != &first[0])
        .collect();
    assert_eq!(second.len(), 1, "{second:?}");
    let up = events.find(&format!("Scaled up replica set {} from 0 to 2", second[0]));
    assert!(
        matches!((down, up), (Some(d), Some(u)) if d < u),
        "scale down first:\n{events}"
    );

    // Paused: a template change waits; resuming rolls it out (back to the
    // first set).
    cp.kubectl_ok(&["rollout", "pause", "deployment/rec"]);
    cp.kubectl_ok(&["set", "image", "deployment/rec", "web=skiff.dev/webapp:v1"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(set_names(&cp, "rec").len(), 2);
    let replicas = cp.kubectl_ok(&["get", "rs", &second[0], "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas, "2", "paused: nothing moves");
    cp.kubectl_ok(&["rollout", "resume", "deployment/rec"]);
    cp.kubectl_ok(&status);
    let replicas = cp.kubectl_ok(&["get", "rs", &first[0], "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas, "2", "the first set is back");

    // rollout restart is a template change: a third set.
    cp.kubectl_ok(&["rollout", "restart", "deployment/rec"]);
    cp.kubectl_ok(&status);
    assert_eq!(set_names(&cp, "rec").len(), 3);
    // revisionHistoryLimit prunes the oldest empty sets.
    cp.kubectl_ok(&[
        "patch",
        "deployment",
        "rec",
        "-p",
        r#"{"spec":{"revisionHistoryLimit":1}}"#,
    ]);
    cp.eventually(&["get", "rs", "-l", "app=rec"], "pruning", |_| {
        set_names(&cp, "rec").len() == 2
    });
    assert!(
        !set_names(&cp, "rec").contains(&second[0]),
        "the oldest revision goes first"
    );

    // A rollout that cannot become ready fails its deadline.
    let stuck = manifest("stuck", "  progressDeadlineSeconds: 3\n", "/nope");
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("stuck.yaml", &stuck)]);
    let out = cp.kubectl(&["rollout", "status", "deployment/stuck", "--timeout=60s"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("exceeded its progress deadline"), "{text}");

    // Scaling a rollout caught mid-way spreads the change over both sets
    // in proportion (old 2 + new 1 of max 3, to 4 + surge 1 = 5).
    cp.kubectl_ok(&[
        "set",
        "image",
        "deployment/stuck",
        "web=skiff.dev/webapp:v2",
    ]);
    cp.eventually(&["get", "rs", "-l", "app=stuck"], "a second set", |_| {
        set_names(&cp, "stuck").len() == 2
    });
    cp.kubectl_ok(&["scale", "deployment/stuck", "--replicas=4"]);
    let sizes = cp.eventually(
        &[
            "get",
            "rs",
            "-l",
            "app=stuck",
            "-o",
            r#"jsonpath={range .items[*]}{.spec.template.spec.containers[0].image}={.spec.replicas}/{.metadata.annotations.deployment\.kubernetes\.io/desired-replicas} {end}"#,
        ],
        "proportional scaling",
        |o| {
            let mut sets: Vec<&str> = o.split_whitespace().collect();
            sets.sort_unstable();
            sets == ["skiff.dev/webapp:v1=3/4", "skiff.dev/webapp:v2=2/4"]
        },
    );
    assert!(!sizes.is_empty());

    drop(kubelet);
    env.shutdown().await;
}
