//! Syncs against an in-memory store, with the kubelet's part (pod IPs and
//! readiness) played by hand.

use std::sync::Arc;

use serde_json::{Value, json};

use super::plan::{CONTROLLER_NAME, MANAGED_BY_LABEL};
use super::*;
use crate::meta;
use crate::store::memory::MemoryStore;

fn state() -> EndpointsReconciler {
    EndpointsReconciler::new(Objects::new(Arc::new(MemoryStore::new())))
}

fn key(name: &str) -> ObjectRef {
    ObjectRef::new(SERVICE, "default", name)
}

async fn create(s: &EndpointsReconciler, rt: &ResourceType, obj: Value) -> Value {
    s.objects.create(rt, obj).await.expect("create")
}

fn service(name: &str, selector: Option<Value>) -> Value {
    let mut svc = json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
    if let Some(selector) = selector {
        svc["spec"]["selector"] = selector;
    }
    svc
}

async fn add_pod(s: &EndpointsReconciler, name: &str, ip: &str, ready: bool) {
    create(
        s,
        kinds::PODS,
        json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;
    set_ready(s, name, ip, ready).await;
}

async fn set_ready(s: &EndpointsReconciler, name: &str, ip: &str, ready: bool) {
    s.objects
        .update(kinds::PODS, Some("default"), name, |p| {
            p["status"]["phase"] = json!("Running");
            p["status"]["podIP"] = json!(ip);
            p["status"]["conditions"] = json!([{"type": "Ready",
                "status": if ready { "True" } else { "False" }}]);
            true
        })
        .await
        .expect("pod status");
}

async fn sync(s: &mut EndpointsReconciler, name: &str) {
    s.sync(&key(name)).await.expect("sync");
}

async fn endpoints(s: &EndpointsReconciler, name: &str) -> Option<Value> {
    s.objects
        .find(kinds::ENDPOINTS, Some("default"), name)
        .await
        .expect("get")
}

/// The IPs of `field` (`addresses` or `notReadyAddresses`) in every subset.
fn ips(ep: &Value, field: &str) -> Vec<String> {
    ep["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s[field].as_array().into_iter().flatten())
        .filter_map(|a| a["ip"].as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn endpoints_list_ready_and_not_ready_pods_and_leave_out_terminating_ones() {
    let mut s = state();
    create(
        &s,
        kinds::SERVICES,
        service("web", Some(json!({"app": "web"}))),
    )
    .await;
    add_pod(&s, "a", "10.244.0.5", true).await;
    add_pod(&s, "b", "10.244.0.6", false).await;
    add_pod(&s, "t", "10.244.0.7", true).await;
    s.objects.delete_pod("default", "t").await.expect("delete");
    sync(&mut s, "web").await;
    let ep = endpoints(&s, "web").await.expect("created");
    assert_eq!(ips(&ep, "addresses"), ["10.244.0.5"]);
    assert_eq!(ips(&ep, "notReadyAddresses"), ["10.244.0.6"]);
    assert_eq!(
        ep["subsets"][0]["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(meta::labels(&ep)[MANAGED_BY_LABEL], CONTROLLER_NAME);

    // Nothing changed: nothing written.
    let version = ep["metadata"]["resourceVersion"].clone();
    sync(&mut s, "web").await;
    let again = endpoints(&s, "web").await.expect("still there");
    assert_eq!(again["metadata"]["resourceVersion"], version);

    set_ready(&s, "b", "10.244.0.6", true).await;
    sync(&mut s, "web").await;
    let ep = endpoints(&s, "web").await.expect("still there");
    assert_eq!(ips(&ep, "addresses"), ["10.244.0.5", "10.244.0.6"]);
    assert!(ips(&ep, "notReadyAddresses").is_empty());
}

#[tokio::test]
async fn selectorless_services_keep_their_hand_written_endpoints() {
    let mut s = state();
    create(&s, kinds::SERVICES, service("manual", None)).await;
    let hand = create(
        &s,
        kinds::ENDPOINTS,
        json!({"metadata": {"name": "manual", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "192.168.1.1"}], "ports": [{"port": 80}]}]}),
    )
    .await;
    add_pod(&s, "a", "10.244.0.5", true).await;
    sync(&mut s, "manual").await;
    let ep = endpoints(&s, "manual").await.expect("kept");
    assert_eq!(
        ep["metadata"]["resourceVersion"],
        hand["metadata"]["resourceVersion"]
    );
    // Its Service deleted: not this controller's to delete.
    s.objects
        .delete(kinds::SERVICES, Some("default"), "manual")
        .await
        .expect("delete");
    sync(&mut s, "manual").await;
    assert!(endpoints(&s, "manual").await.is_some());
}

#[tokio::test]
async fn a_deleted_service_takes_its_endpoints_along() {
    let mut s = state();
    create(
        &s,
        kinds::SERVICES,
        service("web", Some(json!({"app": "web"}))),
    )
    .await;
    add_pod(&s, "a", "10.244.0.5", true).await;
    sync(&mut s, "web").await;
    assert!(endpoints(&s, "web").await.is_some());
    assert_eq!(s.list().await.expect("list"), [key("web")]);
    s.objects
        .delete(kinds::SERVICES, Some("default"), "web")
        .await
        .expect("delete");
    // Leftovers are listed, so a restarted controller finds them.
    assert_eq!(s.list().await.expect("list"), [key("web")]);
    let queued = s
        .changes(
            EndpointsChange::ServiceGone(key("web")),
            &OwnerIndex::default(),
        )
        .await
        .expect("changes");
    assert_eq!(queued, [key("web")]);
    sync(&mut s, "web").await;
    assert!(endpoints(&s, "web").await.is_none());
}

#[tokio::test]
async fn a_pod_change_queues_the_services_that_listed_it() {
    let mut s = state();
    create(
        &s,
        kinds::SERVICES,
        service("web", Some(json!({"app": "web"}))),
    )
    .await;
    create(
        &s,
        kinds::SERVICES,
        service("db", Some(json!({"app": "db"}))),
    )
    .await;
    add_pod(&s, "a", "10.244.0.5", true).await;
    sync(&mut s, "web").await;
    sync(&mut s, "db").await;
    let change = |app: &str| PodChange {
        namespace: "default".into(),
        name: "a".into(),
        labels: [("app".to_string(), app.to_string())].into(),
    };
    let keys = s
        .changes(
            EndpointsChange::Pod(change("other")),
            &OwnerIndex::default(),
        )
        .await
        .expect("changes");
    assert_eq!(keys, [key("web")], "it left web");
    let keys = s
        .changes(EndpointsChange::Pod(change("db")), &OwnerIndex::default())
        .await
        .expect("changes");
    assert_eq!(keys.len(), 2, "it left web and joined db: {keys:?}");
}

#[tokio::test]
async fn nothing_is_created_in_a_terminating_namespace_and_no_error_retries() {
    let mut s = state();
    create(
        &s,
        kinds::SERVICES,
        service("web", Some(json!({"app": "web"}))),
    )
    .await;
    create(
        &s,
        kinds::NAMESPACES,
        json!({"metadata": {"name": "default"}}),
    )
    .await;
    s.objects
        .update(kinds::NAMESPACES, None, "default", |ns| {
            ns["status"]["phase"] = json!("Terminating");
            true
        })
        .await
        .expect("terminating");
    sync(&mut s, "web").await;
    assert!(endpoints(&s, "web").await.is_none());
}
