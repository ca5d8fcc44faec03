//! The Rust `kube` client against `skiff-control-plane`: typed create, get,
//! list with a label selector, patch, watch and delete.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Client, Config};
use skiff_tests::control_plane::TestControlPlane;
use tokio_stream::StreamExt;

async fn client(cp: &TestControlPlane) -> Client {
    // The kubeconfig the control plane wrote, as a user's program reads
    // it: HTTPS, the cluster CA, the admin's client certificate.
    let kubeconfig =
        kube::config::Kubeconfig::read_from(cp.data_dir().join("kubeconfig")).expect("kubeconfig");
    let config =
        Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
    assert_eq!(config.default_namespace, "default");
    Client::try_from(config).expect("client")
}

#[tokio::test]
async fn the_kube_client_drives_the_api() {
    let cp = TestControlPlane::start().await;
    let client = client(&cp).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "settings", "labels": {"app": "shop"}},
        "data": {"mode": "fast"}
    }))
    .expect("configmap");
    let created = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    assert!(created.metadata.uid.is_some());
    let rv: u64 = created
        .metadata
        .resource_version
        .clone()
        .expect("rv")
        .parse()
        .expect("number");

    let found = cms
        .list(&ListParams::default().labels("app=shop"))
        .await
        .expect("list");
    assert_eq!(found.items.len(), 1);
    // Every namespace also holds `kube-root-ca.crt` (no labels), as
    // upstream's: it matches `app!=shop`; ours must not.
    assert!(
        cms.list(&ListParams::default().labels("app!=shop"))
            .await
            .expect("list")
            .items
            .iter()
            .all(|c| c.metadata.name.as_deref() == Some("kube-root-ca.crt"))
    );

    let watch = cms
        .watch(&WatchParams::default(), &rv.to_string())
        .await
        .expect("watch");
    let mut watch = Box::pin(watch);
    let patched = cms
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"mode": "slow"}})),
        )
        .await
        .expect("patch");
    assert_eq!(
        patched
            .data
            .as_ref()
            .and_then(|d| d.get("mode"))
            .map(String::as_str),
        Some("slow")
    );
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .expect("event");
    match event {
        WatchEvent::Modified(cm) => assert_eq!(
            cm.data.and_then(|d| d.get("mode").cloned()).as_deref(),
            Some("slow")
        ),
        other => panic!("expected MODIFIED, got {other:?}"),
    }

    let deployments: Api<Deployment> = Api::default_namespaced(client);
    let bad: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "api"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .expect("deployment");
    match deployments.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422);
            assert!(
                status
                    .message
                    .contains("`selector` does not match template `labels`"),
                "{}",
                status.message
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }
    cms.delete("settings", &DeleteParams::default())
        .await
        .expect("delete");
    match cms.get("settings").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
}

/// kube-runtime against Skiff: a watcher sees changes, a reflector's store
/// follows them, a Controller reconciles each object, and the event
/// `Recorder` posts `events.k8s.io/v1` Events.
#[tokio::test]
async fn kube_runtime_watcher_reflector_controller_and_recorder() {
    use k8s_openapi::api::events::v1::Event as EventV1;
    use kube::Resource;
    use kube::runtime::controller::Action;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
    use std::sync::Arc;
    use std::time::Duration;

    let cp = TestControlPlane::start().await;
    let client = client(&cp).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"app": "rt"}},
            "data": {"n": "1"}
        }))
        .expect("configmap")
    };

    // watcher: a new object arrives as applied.
    let mut applied = Box::pin(watcher(cms.clone(), watcher::Config::default()).applied_objects());
    cms.create(&PostParams::default(), &cm("first"))
        .await
        .expect("create");
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let obj = applied.next().await.expect("open").expect("event");
            if obj.metadata.name.as_deref() == Some("first") {
                return obj;
            }
        }
    })
    .await
    .expect("the watcher saw the object");
    assert_eq!(
        seen.data.and_then(|d| d.get("n").cloned()).as_deref(),
        Some("1")
    );
    drop(applied);

    // reflector: the store follows creates and deletes.
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(writer, watcher(cms.clone(), watcher::Config::default()));
    let drain = tokio::spawn(async move {
        let mut stream = Box::pin(stream);
        while stream.next().await.is_some() {}
    });
    tokio::time::timeout(Duration::from_secs(10), reader.wait_until_ready())
        .await
        .expect("store ready in time")
        .expect("store ready");
    cms.create(&PostParams::default(), &cm("second"))
        .await
        .expect("create");
    let names = |r: &reflector::Store<ConfigMap>| -> Vec<String> {
        let mut n: Vec<String> = r
            .state()
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            // Every namespace holds it, as upstream's.
            .filter(|n| n != "kube-root-ca.crt")
            .collect();
        n.sort();
        n
    };
    skiff_tests::eventually("the store to hold both", Duration::from_secs(10), || {
        let n = names(&reader);
        async move { (n == ["first", "second"]).then_some(()) }
    })
    .await;
    cms.delete("first", &DeleteParams::default())
        .await
        .expect("delete");
    skiff_tests::eventually("the store to drop one", Duration::from_secs(10), || {
        let n = names(&reader);
        async move { (n == ["second"]).then_some(()) }
    })
    .await;
    drain.abort();

    // Controller: every object is reconciled (the reconciler marks it).
    async fn reconcile(
        obj: Arc<ConfigMap>,
        api: Arc<Api<ConfigMap>>,
    ) -> Result<Action, kube::Error> {
        let name = obj.metadata.name.clone().unwrap_or_default();
        if obj
            .metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key("skiff.dev/reconciled"))
        {
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"skiff.dev/reconciled": "yes"}}})),
            )
            .await?;
        }
        Ok(Action::await_change())
    }
    let controller = Controller::new(cms.clone(), watcher::Config::default()).run(
        reconcile,
        |_, _, _| Action::requeue(Duration::from_secs(1)),
        Arc::new(cms.clone()),
    );
    let drive = tokio::spawn(async move {
        let mut controller = Box::pin(controller);
        while controller.next().await.is_some() {}
    });
    cms.create(&PostParams::default(), &cm("third"))
        .await
        .expect("create");
    for name in ["second", "third"] {
        let cms = cms.clone();
        skiff_tests::eventually(
            &format!("{name} reconciled"),
            Duration::from_secs(15),
            || {
                let cms = cms.clone();
                async move {
                    let obj = cms.get(name).await.ok()?;
                    obj.metadata
                        .annotations?
                        .contains_key("skiff.dev/reconciled")
                        .then_some(())
                }
            },
        )
        .await;
    }
    drive.abort();

    // Recorder: posts an events.k8s.io/v1 Event about the object.
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "skiff-test-controller".into(),
            instance: Some("skiff-test-1".into()),
        },
    );
    let third = cms.get("third").await.expect("get");
    recorder
        .publish(
            &Event {
                type_: EventType::Normal,
                reason: "Reconciled".into(),
                note: Some("marked by the test controller".into()),
                action: "Reconciling".into(),
                secondary: None,
            },
            &third.object_ref(&()),
        )
        .await
        .expect("the Recorder posts an events.k8s.io/v1 Event");
    let events: Api<EventV1> = Api::default_namespaced(client);
    let listed = events
        .list(&ListParams::default())
        .await
        .expect("list events.k8s.io/v1");
    let ours = listed
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("Reconciled"))
        .unwrap_or_else(|| panic!("no Reconciled event in {:?}", listed.items));
    assert_eq!(
        ours.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("third")
    );
    assert_eq!(
        ours.reporting_controller.as_deref(),
        Some("skiff-test-controller")
    );
}

/// kube-rs against a real kubelet: discovery, a typed Node list (full
/// nodeInfo), status on create, exec with stdin, logs, port-forward,
/// server-side apply and eviction.
#[tokio::test]
async fn kube_client_drives_pods_on_a_real_kubelet() {
    use k8s_openapi::api::core::v1::{Node, Pod};
    use kube::api::{AttachParams, EvictParams, LogParams};
    use skiff_tests::TestEnv;
    use skiff_tests::control_plane::kubectl_enabled;
    use skiff_tests::kubelet::TestKubelet;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let test = "kube_client_drives_pods_on_a_real_kubelet";
    if !kubectl_enabled(test) {
        return;
    }
    let Some(env) = TestEnv::start(test).await else {
        return;
    };
    let cp = TestControlPlane::start().await;
    let node = format!("n{}k", std::process::id());
    let kubelet = TestKubelet::start_with(&env, &node, &["--control-plane", &cp.grpc]).await;
    cp.eventually(&["get", "nodes"], "the node Ready", |o| {
        o.contains(" Ready ")
    });
    let client = client(&cp).await;

    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    assert!(discovery.has_group("apps") && discovery.has_group("batch"));

    // Gaps are collected so one does not hide the others.
    let mut failures: Vec<String> = Vec::new();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod = |name: &str, containers: serde_json::Value| -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": containers}
        }))
        .expect("pod")
    };
    let created = pods
        .create(
            &PostParams::default(),
            &pod(
                "talker",
                serde_json::json!([
                    {"name": "web", "image": "skiff.dev/webapp:v1", "ports": [{"containerPort": 8080}]},
                    {"name": "shell", "image": "busybox", "command": ["sh", "-c", "echo hello from the pod; sleep 3600"]}
                ]),
            ),
        )
        .await
        .expect("create");
    assert_eq!(
        created.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending"),
        "status on create: {:?}",
        created.status
    );
    pods.create(
        &PostParams::default(),
        &pod(
            "victim",
            serde_json::json!([{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]),
        ),
    )
    .await
    .expect("create");
    for name in ["talker", "victim"] {
        let pods = pods.clone();
        skiff_tests::eventually(&format!("{name} running"), Duration::from_secs(90), || {
            let pods = pods.clone();
            async move {
                let p = pods.get(name).await.ok()?;
                let s = p.status?;
                (s.phase.as_deref() == Some("Running")
                    && s.container_statuses?.iter().all(|c| c.ready))
                .then_some(())
            }
        })
        .await;
    }

    // exec with stdin.
    let mut attached = pods
        .exec(
            "talker",
            ["sh", "-c", "read line; echo got:$line | tr a-z A-Z"],
            &AttachParams::default()
                .container("shell")
                .stdin(true)
                .stderr(false),
        )
        .await
        .expect("exec");
    let mut stdin = attached.stdin().expect("stdin");
    stdin
        .write_all(b"hello through stdin\n")
        .await
        .expect("write");
    let mut stdout = attached.stdout().expect("stdout");
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(20), stdout.read_to_string(&mut out))
        .await
        .expect("exec output in time")
        .expect("read");
    assert_eq!(out, "GOT:HELLO THROUGH STDIN\n");
    drop(stdin);
    attached.join().await.expect("exec ends");

    let logs = pods
        .logs(
            "talker",
            &LogParams {
                container: Some("shell".into()),
                ..LogParams::default()
            },
        )
        .await
        .expect("logs");
    assert!(logs.contains("hello from the pod"), "{logs}");

    match pods.portforward("talker", &[8080]).await {
        Ok(mut forwarder) => {
            let mut stream = forwarder.take_stream(8080).expect("stream");
            stream
                .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .await
                .expect("write");
            let mut answer = Vec::new();
            tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
                .await
                .expect("answer in time")
                .expect("read");
            let answer = String::from_utf8_lossy(&answer);
            assert!(answer.contains("webapp v1 on talker"), "{answer}");
            drop(stream);
            forwarder.abort();
        }
        Err(e) => failures.push(format!("port-forward: {e}")),
    }

    // Server-side apply, twice by one manager, then a conflict.
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let doc = |v: &str| serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"key": v}});
    let applied = cms
        .patch(
            "applied",
            &PatchParams::apply("kube-test"),
            &Patch::Apply(doc("1")),
        )
        .await
        .expect("apply");
    assert!(
        applied
            .metadata
            .managed_fields
            .unwrap_or_default()
            .iter()
            .any(|m| m.manager.as_deref() == Some("kube-test")
                && m.operation.as_deref() == Some("Apply"))
    );
    match cms
        .patch(
            "applied",
            &PatchParams::apply("other"),
            &Patch::Apply(doc("2")),
        )
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 409, "{s:?}"),
        other => panic!("expected a 409 conflict, got {other:?}"),
    }

    match pods.evict("victim", &EvictParams::default()).await {
        Ok(_) => {
            skiff_tests::eventually("the evicted pod to go", Duration::from_secs(30), || {
                let pods = pods.clone();
                async move {
                    match pods.get_opt("victim").await.ok()? {
                        None => Some(()),
                        Some(p) => p.metadata.deletion_timestamp.map(|_| ()),
                    }
                }
            })
            .await;
        }
        Err(e) => failures.push(format!("eviction (policy/v1): {e}")),
    }
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.list(&ListParams::default()).await {
        Ok(list) => {
            let info = list.items[0]
                .status
                .as_ref()
                .and_then(|s| s.node_info.clone())
                .expect("nodeInfo");
            if info.boot_id.is_empty() || info.machine_id.is_empty() {
                failures.push(format!("nodeInfo without ids: {info:?}"));
            }
        }
        Err(e) => failures.push(format!("typed Node list: {e}")),
    }
    // k8s-openapi reads a missing required string as "", so the raw JSON
    // shows whether every required nodeInfo field is there (the Python
    // client refuses a Node without them; upstream sends "" for
    // kubeProxyVersion and for an unreadable systemUUID).
    let raw = client
        .request_text(
            http::Request::get("/api/v1/nodes")
                .body(Vec::new())
                .expect("request"),
        )
        .await
        .map(|text| serde_json::from_str::<serde_json::Value>(&text));
    match raw {
        Ok(Ok(list)) => {
            let info = &list["items"][0]["status"]["nodeInfo"];
            for field in [
                "machineID",
                "systemUUID",
                "bootID",
                "kernelVersion",
                "osImage",
                "containerRuntimeVersion",
                "kubeletVersion",
                "kubeProxyVersion",
                "operatingSystem",
                "architecture",
            ] {
                if !info[field].is_string() {
                    failures.push(format!("nodeInfo.{field} missing: {info}"));
                }
            }
        }
        other => failures.push(format!("raw Node list: {other:?}")),
    }

    drop(kubelet);
    env.shutdown().await;
    assert!(failures.is_empty(), "{failures:#?}");
}
