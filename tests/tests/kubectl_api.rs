//! The real `kubectl` against `skiff-control-plane`.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use skiff_tests::control_plane::{TestControlPlane, http_json, kubectl_enabled};

const DEPLOY: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: skiff.dev/webapp:v1
        ports: [{containerPort: 8080}]
"#;

/// apply (create, unchanged, configured by strategic merge, server-side),
/// get in every output format, label selectors of each operator, label,
/// annotate, scale, edit, describe, api-resources.
#[tokio::test]
async fn kubectl_apply_get_label_scale_edit() {
    if !kubectl_enabled("kubectl_apply_get_label_scale_edit") {
        return;
    }
    let cp = TestControlPlane::start().await;
    let file = cp.manifest("deploy.yaml", DEPLOY);
    assert_eq!(
        cp.kubectl_ok(&["apply", "-f", &file]).trim(),
        "deployment.apps/web created"
    );
    assert_eq!(
        cp.kubectl_ok(&["apply", "-f", &file]).trim(),
        "deployment.apps/web unchanged"
    );
    let file = cp.manifest(
        "deploy.yaml",
        &DEPLOY
            .replace("replicas: 2", "replicas: 3")
            .replace("webapp:v1", "webapp:v2"),
    );
    assert_eq!(
        cp.kubectl_ok(&["apply", "-f", &file]).trim(),
        "deployment.apps/web configured"
    );
    let fields = cp.kubectl_ok(&[
        "get", "deploy", "web", "-o",
        "jsonpath={.spec.replicas} {.metadata.generation} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].protocol} {.spec.strategy.rollingUpdate.maxSurge}",
    ]);
    assert_eq!(fields, "3 2 skiff.dev/webapp:v2 TCP 25%");
    assert_eq!(
        cp.kubectl_ok(&["apply", "--server-side", "-f", &file])
            .trim(),
        "deployment.apps/web serverside-applied"
    );
    assert_eq!(
        cp.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3",
        "SSA merges, it does not wipe spec"
    );

    let wide = cp.kubectl_ok(&["get", "deploy", "-o", "wide"]);
    let header: Vec<&str> = wide
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert!(wide.contains("web    0/3"), "{wide}");
    assert_eq!(
        cp.kubectl_ok(&["get", "deployments.apps", "-o", "name"])
            .trim(),
        "deployment.apps/web"
    );
    let json = cp.kubectl_ok(&["get", "deploy", "web", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["kind"], "Deployment");
    assert!(v["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(
        cp.kubectl_ok(&["get", "deploy", "web", "-o", "yaml"])
            .contains("revisionHistoryLimit: 10")
    );

    for (i, labels) in ["app=web,tier=front", "app=web,tier=back", "app=api"]
        .iter()
        .enumerate()
    {
        let pod = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\n  labels: {{{}}}\nspec:\n  containers: [{{name: c, image: busybox}}]\n",
            labels.replace('=', ": ")
        );
        cp.kubectl_ok(&["create", "-f", &cp.manifest(&format!("p{i}.yaml"), &pod)]);
    }
    for (selector, expected) in [
        ("app=web", "p0 p1"),
        ("app!=web", "p2"),
        ("tier in (front,back)", "p0 p1"),
        ("tier notin (front)", "p1 p2"),
        ("tier", "p0 p1"),
        ("!tier", "p2"),
    ] {
        let names = cp.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ]);
        // The Deployment's own (pending) pods carry app=web too.
        let names: Vec<&str> = names
            .split_whitespace()
            .filter(|n| !n.starts_with("web-"))
            .collect();
        assert_eq!(names.join(" "), expected, "-l {selector}");
    }
    let pods = cp.kubectl_ok(&["get", "pods"]);
    assert_eq!(
        pods.lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert!(
        pods.lines().any(|l| l
            .split_whitespace()
            .take(4)
            .eq(["p0", "0/1", "Pending", "0"])),
        "{pods}"
    );

    let err = cp.kubectl_err(&["label", "pod", "p0", "tier=back"]);
    assert!(err.contains("already has a value (front)"), "{err}");
    cp.kubectl_ok(&["label", "pod", "p0", "tier=back", "--overwrite"]);
    cp.kubectl_ok(&["annotate", "pod", "p0", "note=hello"]);
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "pod",
            "p0",
            "-o",
            "jsonpath={.metadata.labels.tier} {.metadata.annotations.note}"
        ]),
        "back hello"
    );

    assert_eq!(
        cp.kubectl_ok(&["scale", "deploy", "web", "--replicas", "5"])
            .trim(),
        "deployment.apps/web scaled"
    );
    assert_eq!(
        cp.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );
    cp.kubectl_ok(&[
        "scale",
        "deploy",
        "web",
        "--current-replicas",
        "5",
        "--replicas",
        "6",
    ]);
    assert_eq!(
        cp.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "6"
    );

    let edit = cp
        .kubectl_command(&["edit", "deploy", "web"])
        .env("KUBE_EDITOR", "sed -i s/replicas:\\ 6/replicas:\\ 7/")
        .output()
        .expect("kubectl edit");
    assert!(
        edit.status.success(),
        "{}",
        String::from_utf8_lossy(&edit.stderr)
    );
    assert_eq!(
        cp.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "7"
    );

    let describe = cp.kubectl_ok(&["describe", "pod", "p0"]);
    // The column is as wide as the longest label (upstream's pods have a
    // `Service Account:` line).
    assert!(
        describe
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Name:", "p0"]),
        "{describe}"
    );
    assert!(
        describe
            .lines()
            .any(|l| l.trim_start().starts_with("Image:") && l.trim_end().ends_with("busybox")),
        "{describe}"
    );
    assert!(describe.contains("note: hello"), "{describe}");
    let resources = cp.kubectl_ok(&["api-resources"]);
    for line in [
        "deployments   deploy",
        "pods          po",
        "replicasets   rs",
    ] {
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert!(
            resources
                .lines()
                .any(|l| l.split_whitespace().take(2).eq(parts.iter().copied())),
            "{line} in {resources}"
        );
    }
}

/// Invalid objects are refused with the API server's wording.
#[tokio::test]
async fn invalid_objects_get_upstream_errors() {
    if !kubectl_enabled("invalid_objects_get_upstream_errors") {
        return;
    }
    let cp = TestControlPlane::start().await;
    let rs = DEPLOY
        .replace("kind: Deployment", "kind: ReplicaSet")
        .replace(
            "labels: {app: web}\n    spec:",
            "labels: {app: api}\n    spec:",
        );
    let err = cp.kubectl_err(&["apply", "-f", &cp.manifest("rs.yaml", &rs)]);
    assert!(
        err.contains("The ReplicaSet \"web\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"api\"}: `selector` does not match template `labels`"),
        "{err}"
    );
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec:\n  template:\n    spec:\n      containers: [{name: pi, image: busybox}]\n";
    let err = cp.kubectl_err(&["apply", "-f", &cp.manifest("job.yaml", job)]);
    assert!(err.contains("The Job \"pi\" is invalid: spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""), "{err}");
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c}]\n";
    let err = cp.kubectl_err(&["apply", "-f", &cp.manifest("pod.yaml", pod)]);
    assert!(
        err.contains("The Pod \"p\" is invalid: spec.containers[0].image: Required value"),
        "{err}"
    );
    let err = cp.kubectl_err(&["get", "pod", "nope"]);
    assert!(
        err.contains("Error from server (NotFound): pods \"nope\" not found"),
        "{err}"
    );
    cp.kubectl_ok(&[
        "apply",
        "-f",
        &cp.manifest(
            "ok.yaml",
            &pod.replace("{name: c}", "{name: c, image: busybox}"),
        ),
    ]);
    let err = cp.kubectl_err(&[
        "create",
        "-f",
        &cp.manifest(
            "ok.yaml",
            &pod.replace("{name: c}", "{name: c, image: busybox}"),
        ),
    ]);
    assert!(
        err.contains("Error from server (AlreadyExists): error when creating"),
        "{err}"
    );
    assert_eq!(
        cp.kubectl_ok(&["get", "pods", "-o", "name"]).trim(),
        "pod/p",
        "nothing stored was harmed"
    );
}

/// Every kind of the seed manifests is accepted and shown back; deleting a
/// namespace removes its objects; `--cascade=orphan` keeps dependents and
/// strips their owner references, background deletion removes them.
#[tokio::test]
async fn seed_kinds_apply_and_cascading_deletes() {
    if !kubectl_enabled("seed_kinds_apply_and_cascading_deletes") {
        return;
    }
    let cp = TestControlPlane::start().await;
    let template = "  selector:\n    matchLabels: {app: x}\n  template:\n    metadata:\n      labels: {app: x}\n    spec:\n      containers: [{name: c, image: busybox}]\n";
    let manifests = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: lab}}\n---\n\
apiVersion: v1\nkind: Pod\nmetadata: {{name: pod1, namespace: lab}}\nspec:\n  containers: [{{name: c, image: busybox}}]\n---\n\
apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {{name: rs1, namespace: lab}}\nspec:\n  replicas: 2\n{template}---\n\
apiVersion: v1\nkind: ReplicationController\nmetadata: {{name: rc1, namespace: lab}}\nspec:\n  replicas: 1\n  selector: {{app: x}}\n  template:\n    metadata:\n      labels: {{app: x}}\n    spec:\n      containers: [{{name: c, image: busybox}}]\n---\n\
apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d1, namespace: lab}}\nspec:\n{template}---\n\
apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: ds1, namespace: lab}}\nspec:\n{template}---\n\
apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: sts1, namespace: lab}}\nspec:\n  serviceName: sts1\n{template}---\n\
apiVersion: batch/v1\nkind: Job\nmetadata: {{name: job1, namespace: lab}}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: busybox}}]\n---\n\
apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: cj1, namespace: lab}}\nspec:\n  schedule: '*/1 * * * *'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers: [{{name: c, image: busybox}}]\n---\n\
apiVersion: v1\nkind: Service\nmetadata: {{name: svc1, namespace: lab}}\nspec:\n  selector: {{app: x}}\n  ports: [{{port: 80, targetPort: 8080}}]\n"
    );
    let out = cp.kubectl_ok(&["apply", "-f", &cp.manifest("all.yaml", &manifests)]);
    for created in [
        "namespace/lab",
        "pod/pod1",
        "replicaset.apps/rs1",
        "replicationcontroller/rc1",
        "deployment.apps/d1",
        "daemonset.apps/ds1",
        "statefulset.apps/sts1",
        "job.batch/job1",
        "cronjob.batch/cj1",
        "service/svc1",
    ] {
        assert!(
            out.contains(&format!("{created} created")),
            "{created}: {out}"
        );
    }
    let all = cp.kubectl_ok(&["get", "all", "-n", "lab"]);
    for shown in [
        "pod/pod1",
        "service/svc1",
        "daemonset.apps/ds1",
        "deployment.apps/d1",
        "replicaset.apps/rs1",
        "statefulset.apps/sts1",
        "cronjob.batch/cj1",
        "job.batch/job1",
    ] {
        assert!(all.contains(shown), "{shown} in {all}");
    }
    let svc = cp.kubectl_ok(&["get", "svc", "-n", "lab"]);
    assert!(
        svc.contains("svc1   ClusterIP") && svc.contains("80/TCP"),
        "{svc}"
    );
    for kind in [
        "deploy/d1",
        "rs/rs1",
        "rc/rc1",
        "ds/ds1",
        "sts/sts1",
        "job/job1",
        "cj/cj1",
        "svc/svc1",
        "po/pod1",
    ] {
        let d = cp.kubectl_ok(&["describe", "-n", "lab", kind]);
        assert!(d.contains("Name:"), "describe {kind}: {d}");
    }

    // Owner references: a pod owned by rs1.
    let uid = cp.kubectl_ok(&[
        "get",
        "rs",
        "rs1",
        "-n",
        "lab",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let owned = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: lab\n  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: rs1, uid: {uid}, controller: true}}]\nspec:\n  containers: [{{name: c, image: busybox}}]\n"
        )
    };
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("owned.yaml", &owned("owned1"))]);
    cp.kubectl_ok(&["delete", "rs", "rs1", "-n", "lab", "--cascade=orphan"]);
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "pod",
            "owned1",
            "-n",
            "lab",
            "-o",
            "jsonpath={.metadata.ownerReferences}"
        ]),
        ""
    );
    let d_uid = cp.kubectl_ok(&[
        "get",
        "deploy",
        "d1",
        "-n",
        "lab",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let child = owned("owned2")
        .replace("kind: ReplicaSet, name: rs1", "kind: Deployment, name: d1")
        .replace(&uid, &d_uid);
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("owned2.yaml", &child)]);
    cp.kubectl_ok(&["delete", "deploy", "d1", "-n", "lab"]);
    // The garbage collector removes the dependent after its owner, as upstream.
    cp.eventually(
        &["get", "pods", "-n", "lab", "-o", "name"],
        "the deployment's pod collected",
        |o| !o.contains("pod/owned2"),
    );
    assert!(
        cp.kubectl_err(&["get", "pod", "owned2", "-n", "lab"])
            .contains("NotFound")
    );

    cp.kubectl_ok(&["delete", "namespace", "lab"]);
    assert_eq!(
        cp.kubectl_ok(&["get", "pods", "-A", "-o", "name"]).trim(),
        ""
    );
    let err = cp.kubectl_err(&["delete", "namespace", "default"]);
    assert!(err.contains("forbidden"), "{err}");
}

/// `kubectl get -w` prints changes as they happen.
#[tokio::test]
async fn get_watch_sees_changes() {
    if !kubectl_enabled("get_watch_sees_changes") {
        return;
    }
    let cp = TestControlPlane::start().await;
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: w1}\nspec:\n  containers: [{name: c, image: busybox}]\n";
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("w1.yaml", pod)]);
    let mut watcher = cp
        .kubectl_command(&["get", "pods", "-w", "--output-watch-events"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl get -w");
    let stdout = watcher.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Waits for an event line of `kind` about `pod` (the scheduler may add
    // MODIFIED lines of its own in between).
    let wait_line = |kind: &str, pod: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let mut seen = Vec::new();
        while std::time::Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                if line.starts_with(kind) && line.split_whitespace().nth(1) == Some(pod) {
                    return line;
                }
                seen.push(line);
            }
        }
        panic!("no {kind} line for {pod}; saw {seen:?}");
    };
    wait_line("ADDED", "w1");
    cp.kubectl_ok(&[
        "apply",
        "-f",
        &cp.manifest("w2.yaml", &pod.replace("w1", "w2")),
    ]);
    let added = wait_line("ADDED", "w2");
    assert!(
        added.starts_with("ADDED") && added.contains("Pending"),
        "{added}"
    );
    cp.kubectl_ok(&["label", "pod", "w2", "x=y"]);
    wait_line("MODIFIED", "w2");
    cp.kubectl_ok(&["delete", "pod", "w2", "--wait=true"]);
    wait_line("DELETED", "w2");
    let _ = watcher.kill();
    let _ = watcher.wait();
}

/// Writes acknowledged before a SIGKILL are all there after a restart.
#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    if !kubectl_enabled("acknowledged_writes_survive_sigkill") {
        return;
    }
    let mut cp = TestControlPlane::start().await;
    let addr = cp.address.clone();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (addr, acked) = (addr.clone(), acked.clone());
        writers.push(std::thread::spawn(move || {
            for i in 0.. {
                let name = format!("cm-{w}-{i}");
                let body = format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"i":"{i}"}}}}"#);
                match http_json("POST", &addr, "/api/v1/namespaces/default/configmaps", &body) {
                    Ok((201, _)) => acked.lock().expect("lock").push(name),
                    _ => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cp.kill();
    for w in writers {
        let _ = w.join();
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    cp.restart().await;
    let names = cp.kubectl_ok(&[
        "get",
        "configmaps",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let stored: std::collections::HashSet<&str> = names.split_whitespace().collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|n| !stored.contains(n.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    // The store keeps working after the crash.
    cp.kubectl_ok(&[
        "create",
        "-f",
        &cp.manifest(
            "after.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: after}\n",
        ),
    ]);
}

/// kubectl's generator commands send protobuf bodies; `explain` reads the
/// OpenAPI v3 schemas.
#[tokio::test]
async fn generators_send_protobuf_and_explain_reads_schemas() {
    if !kubectl_enabled("generators_send_protobuf_and_explain_reads_schemas") {
        return;
    }
    let cp = TestControlPlane::start().await;
    assert_eq!(
        cp.kubectl_ok(&["create", "namespace", "lab"]).trim(),
        "namespace/lab created"
    );
    assert_eq!(
        cp.kubectl_ok(&[
            "create",
            "deployment",
            "web",
            "--image",
            "skiff.dev/webapp:v1",
            "--replicas",
            "3",
            "-n",
            "lab"
        ])
        .trim(),
        "deployment.apps/web created"
    );
    assert_eq!(
        cp.kubectl_ok(&["get", "deploy", "web", "-n", "lab", "-o", "jsonpath={.spec.replicas} {.spec.selector.matchLabels.app} {.spec.template.spec.containers[0].image}"]),
        "3 web skiff.dev/webapp:v1"
    );
    cp.kubectl_ok(&["create", "configmap", "cfg", "--from-literal", "a=b"]);
    cp.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        "--from-literal",
        "pw=hunter2",
    ]);
    cp.kubectl_ok(&["create", "service", "clusterip", "svc1", "--tcp", "80:8080"]);
    assert_eq!(
        cp.kubectl_ok(&["create", "serviceaccount", "robot", "-n", "lab"])
            .trim(),
        "serviceaccount/robot created"
    );
    cp.kubectl_ok(&[
        "create", "job", "j1", "--image", "busybox", "--", "echo", "hi",
    ]);
    cp.kubectl_ok(&[
        "create",
        "cronjob",
        "cj1",
        "--image",
        "busybox",
        "--schedule",
        "*/5 * * * *",
        "--",
        "echo",
        "hi",
    ]);
    assert_eq!(
        cp.kubectl_ok(&["get", "cm", "cfg", "-o", "jsonpath={.data.a}"]),
        "b"
    );
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "sa",
            "robot",
            "-n",
            "lab",
            "-o",
            "jsonpath={.metadata.name}"
        ]),
        "robot"
    );
    assert_eq!(
        cp.kubectl_ok(&["get", "secret", "s1", "-o", "jsonpath={.data.pw}"]),
        "aHVudGVyMg=="
    );
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "svc",
            "svc1",
            "-o",
            "jsonpath={.spec.ports[0].port}:{.spec.ports[0].targetPort}"
        ]),
        "80:8080"
    );
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "job",
            "j1",
            "-o",
            "jsonpath={.spec.template.spec.restartPolicy}"
        ]),
        "Never"
    );
    assert_eq!(
        cp.kubectl_ok(&["get", "cj", "cj1", "-o", "jsonpath={.spec.schedule}"]),
        "*/5 * * * *"
    );

    let svc = cp.kubectl_ok(&["explain", "svc"]);
    assert!(
        svc.contains("KIND:       Service") && svc.contains("Service is a named abstraction"),
        "{svc}"
    );
    let ds = cp.kubectl_ok(&["explain", "ds.spec.updateStrategy"]);
    assert!(
        ds.contains("FIELD: updateStrategy <DaemonSetUpdateStrategy>")
            && ds.contains("rollingUpdate"),
        "{ds}"
    );
    let cj = cp.kubectl_ok(&["explain", "cj.spec.schedule"]);
    assert!(cj.contains("The schedule in Cron format"), "{cj}");
    assert!(
        cp.kubectl_ok(&["explain", "jobs"])
            .contains("KIND:       Job")
    );
}

/// `pods/binding`, the subresource a scheduler places pods with.
#[tokio::test]
async fn pods_are_bound_through_the_binding_subresource() {
    if !kubectl_enabled("pods_are_bound_through_the_binding_subresource") {
        return;
    }
    let cp = TestControlPlane::start().await;
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: b1}\nspec:\n  containers: [{name: c, image: busybox}]\n";
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("b1.yaml", pod)]);
    let binding = r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"b1"},"target":{"apiVersion":"v1","kind":"Node","name":"node-a"}}"#;
    let path = "/api/v1/namespaces/default/pods/b1/binding";
    let (status, body) = http_json("POST", &cp.address, path, binding).expect("bind");
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        cp.kubectl_ok(&["get", "pod", "b1", "-o", "jsonpath={.spec.nodeName}"]),
        "node-a"
    );
    let (status, body) = http_json(
        "POST",
        &cp.address,
        path,
        &binding.replace("node-a", "node-b"),
    )
    .expect("bind");
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("pod b1 is already assigned to node \\\"node-a\\\""),
        "{body}"
    );
    let resources = cp.kubectl_ok(&["api-resources", "--no-headers"]);
    assert!(
        !resources.contains("pods/binding"),
        "subresources are not listed as resources"
    );
}

/// kubectl asks `/api` and `/apis` for aggregated discovery
/// (`APIGroupDiscoveryList`) and, answered in that format, needs no
/// per-group requests to resolve short names, categories and subresources.
#[tokio::test]
async fn kubectl_uses_aggregated_discovery() {
    if !kubectl_enabled("kubectl_uses_aggregated_discovery") {
        return;
    }
    let cp = TestControlPlane::start().await;
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("deploy.yaml", DEPLOY)]);
    let cache = cp.scratch().join("home/.kube/cache");
    std::fs::remove_dir_all(&cache).expect("drop the discovery cache");
    let out = cp.kubectl(&["get", "deploy", "-v=8"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let gets: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"Request\" verb=\"GET\""))
        .filter_map(|l| l.split("url=\"").nth(1))
        .filter_map(|u| u.split('"').next())
        .collect();
    let discovery: Vec<&str> = gets
        .iter()
        .copied()
        .filter(|u| !u.contains("/deployments"))
        .collect();
    assert_eq!(discovery.len(), 2, "only /api and /apis: {gets:?}");
    assert!(
        discovery[0].contains("/api?") && discovery[1].contains("/apis?"),
        "{gets:?}"
    );
    assert!(
        log.contains(
            "Content-Type: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ),
        "{log}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("web "),
        "the short name resolved"
    );
    let pods = cp.kubectl_ok(&["get", "po", "--no-headers"]);
    assert!(
        pods.lines().all(|l| l.contains("Pending")),
        "nothing runs without a node: {pods}"
    );
    let all = cp.kubectl_ok(&["get", "all", "-o", "name"]);
    assert!(all.contains("deployment.apps/web"), "{all}");
    let resources = cp.kubectl_ok(&["api-resources", "--no-headers"]);
    for line in [
        "deployments deploy apps/v1 true Deployment",
        "nodes no v1 false Node",
    ] {
        assert!(
            resources
                .lines()
                .any(|l| l.split_whitespace().eq(line.split_whitespace())),
            "{line} in {resources}"
        );
    }
    cp.kubectl_ok(&["scale", "deploy", "web", "--replicas", "3"]);
    assert_eq!(
        cp.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3",
        "the scale subresource is discovered"
    );
}

/// Lists page with `limit` and `continue` (every page at the revision of
/// the first, as upstream), stream when long, and kubectl pages through
/// them.
#[tokio::test]
async fn lists_page_consistently_and_stream() {
    if !kubectl_enabled("lists_page_consistently_and_stream") {
        return;
    }
    let cp = TestControlPlane::start().await;
    let create = |name: &str, data: &str| {
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","labels":{{"n":"{name}"}}}},"data":{{"d":"{data}"}}}}"#
        );
        let (status, body) = http_json(
            "POST",
            &cp.address,
            "/api/v1/namespaces/default/configmaps",
            &body,
        )
        .expect("create");
        assert_eq!(status, 201, "{body}");
    };
    for i in 0..5 {
        create(&format!("cm-{i}"), "x");
    }
    let get = |path: &str| {
        let (status, body) = http_json("GET", &cp.address, path, "").expect("list");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        (status, v)
    };
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["metadata"]["name"].as_str().map(String::from))
            .collect()
    };
    let base = "/api/v1/namespaces/default/configmaps";
    // Every namespace also holds kube-root-ca.crt (as upstream's); the
    // pages here are about the test's own objects.
    const NOT_ROOT_CA: &str = "metadata.name%21%3Dkube-root-ca.crt";
    let (_, first) = get(&format!("{base}?fieldSelector={NOT_ROOT_CA}&limit=2"));
    assert_eq!(names(&first), ["cm-0", "cm-1"]);
    let rv = first["metadata"]["resourceVersion"].clone();
    let token = first["metadata"]["continue"]
        .as_str()
        .expect("continue")
        .to_string();
    assert!(
        first["items"][0]["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{first}"
    );
    // Changes after the first page do not show in the later ones.
    create("cm-00", "new");
    let (status, body) =
        http_json("DELETE", &cp.address, &format!("{base}/cm-3"), "").expect("delete");
    assert_eq!(status, 200, "{body}");
    let (_, second) = get(&format!(
        "{base}?fieldSelector={NOT_ROOT_CA}&limit=2&continue={token}"
    ));
    assert_eq!(names(&second), ["cm-2", "cm-3"]);
    assert_eq!(second["metadata"]["resourceVersion"], rv);
    let next = second["metadata"]["continue"].as_str().expect("continue");
    let (_, last) = get(&format!(
        "{base}?fieldSelector={NOT_ROOT_CA}&limit=2&continue={next}"
    ));
    assert_eq!(names(&last), ["cm-4"]);
    assert!(last["metadata"].get("continue").is_none(), "{last}");
    // A token whose snapshot is used up, after changes: 410 Expired.
    let (status, gone) = get(&format!(
        "{base}?fieldSelector={NOT_ROOT_CA}&limit=2&continue={token}"
    ));
    assert_eq!(
        (status, gone["reason"].as_str()),
        (410, Some("Expired")),
        "{gone}"
    );
    // Selectors page over matching objects only.
    let (_, selected) = get(&format!(
        "{base}?fieldSelector={NOT_ROOT_CA}&limit=1&labelSelector=n%20in%20(cm-2,cm-4)"
    ));
    assert_eq!(names(&selected), ["cm-2"]);
    let token = selected["metadata"]["continue"].as_str().expect("continue");
    let (_, rest) = get(&format!(
        "{base}?fieldSelector={NOT_ROOT_CA}&limit=1&labelSelector=n%20in%20(cm-2,cm-4)&continue={token}"
    ));
    assert_eq!(names(&rest), ["cm-4"]);
    let (status, bad) = get(&format!(
        "{base}?fieldSelector={NOT_ROOT_CA}&limit=1&continue=garbage"
    ));
    assert_eq!(status, 400, "{bad}");

    // A long list is streamed (chunked), still one JSON document.
    let filler = "y".repeat(2000);
    for i in 0..100 {
        create(&format!("big-{i:03}"), &filler);
    }
    let (status, all) = get(base);
    assert_eq!(status, 200);
    assert_eq!(
        names(&all).len(),
        106,
        "cm-0..2, cm-4, cm-00, 100 big and kube-root-ca.crt"
    );
    assert_eq!(all["kind"], "ConfigMapList");
    let listed = cp.kubectl_ok(&["get", "configmaps", "--chunk-size=7", "-o", "name"]);
    assert_eq!(listed.lines().count(), 106, "{listed}");
    let table = cp.kubectl_ok(&["get", "configmaps", "--chunk-size=0", "--no-headers"]);
    assert_eq!(table.lines().count(), listed.lines().count(), "{table}");
}
