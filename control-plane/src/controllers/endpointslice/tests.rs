//! Syncs against an in-memory store, with the kubelet's part (pod IPs and
//! readiness) played by hand.

use std::sync::Arc;

use serde_json::{Value, json};

use super::plan::{CONTROLLER_NAME, MANAGED_BY_LABEL};
use super::*;
use crate::registry::resources::ResourceType;
use crate::store::EventKind;
use crate::store::memory::MemoryStore;

fn state() -> EndpointSlices {
    EndpointSlices::new(Objects::new(Arc::new(MemoryStore::new())))
}

fn key(name: &str) -> ObjectRef {
    ObjectRef::new(SERVICE, "default", name)
}

async fn create(s: &EndpointSlices, rt: &ResourceType, obj: Value) -> Value {
    s.objects.create(rt, obj).await.expect("create")
}

fn service(name: &str, selector: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
}

fn pod(name: &str, app: &str, node: Option<&str>) -> Value {
    let mut p = json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    if let Some(node) = node {
        p["spec"]["nodeName"] = json!(node);
    }
    p
}

/// Gives pod `name` an address and a Ready condition, as its kubelet would.
async fn set_status(s: &EndpointSlices, name: &str, ip: &str, ready: bool) {
    s.objects
        .update(kinds::PODS, Some("default"), name, |p| {
            p["status"]["phase"] = json!("Running");
            p["status"]["podIP"] = json!(ip);
            p["status"]["podIPs"] = json!([{"ip": ip}]);
            p["status"]["conditions"] = json!([{"type": "Ready",
                "status": if ready { "True" } else { "False" }}]);
            true
        })
        .await
        .expect("pod status");
}

async fn sync(s: &mut EndpointSlices, name: &str) -> Option<Duration> {
    s.sync(&key(name)).await.expect("sync")
}

/// Every slice in the store, by name.
async fn slices(s: &EndpointSlices) -> Vec<Value> {
    let (mut all, _) = s.objects.list(kinds::ENDPOINTSLICES).await.expect("list");
    all.sort_by_key(|x| meta::name(x).to_string());
    all
}

/// The (address, ready, serving, terminating) of every endpoint of `slice`.
fn endpoints(slice: &Value) -> Vec<(String, bool, bool, bool)> {
    slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let c = &e["conditions"];
            (
                e["addresses"][0].as_str().unwrap_or_default().to_string(),
                c["ready"] == true,
                c["serving"] == true,
                c["terminating"] == true,
            )
        })
        .collect()
}

#[tokio::test]
async fn slices_follow_pod_addresses_and_readiness_and_are_not_rewritten_idly() {
    let mut s = state();
    create(&s, kinds::SERVICES, service("web", json!({"app": "web"}))).await;
    create(&s, kinds::PODS, pod("a", "web", None)).await;
    create(&s, kinds::PODS, pod("other", "db", None)).await;
    set_status(&s, "other", "10.244.0.9", true).await;

    // No pod has an address yet: one empty placeholder.
    sync(&mut s, "web").await;
    let all = slices(&s).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["endpoints"], json!([]));
    assert!(meta::name(&all[0]).starts_with("web-"));
    assert_eq!(meta::labels(&all[0])[MANAGED_BY_LABEL], CONTROLLER_NAME);

    set_status(&s, "a", "10.244.0.5", true).await;
    sync(&mut s, "web").await;
    let all = slices(&s).await;
    assert_eq!(all.len(), 1, "the placeholder gives way: {all:?}");
    assert_eq!(
        endpoints(&all[0]),
        [("10.244.0.5".to_string(), true, true, false)]
    );
    assert_eq!(
        all[0]["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );

    // Nothing changed: nothing written.
    let version = all[0]["metadata"]["resourceVersion"].clone();
    sync(&mut s, "web").await;
    sync(&mut s, "web").await;
    assert_eq!(slices(&s).await[0]["metadata"]["resourceVersion"], version);

    set_status(&s, "a", "10.244.0.5", false).await;
    sync(&mut s, "web").await;
    let all = slices(&s).await;
    assert_eq!(
        endpoints(&all[0]),
        [("10.244.0.5".to_string(), false, false, false)]
    );
    assert_ne!(all[0]["metadata"]["resourceVersion"], version);

    s.objects
        .delete(kinds::PODS, Some("default"), "a")
        .await
        .expect("delete pod");
    sync(&mut s, "web").await;
    let all = slices(&s).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["endpoints"], json!([]), "the pod is gone from it");
}

#[tokio::test]
async fn terminating_pods_stay_listed_as_serving_but_not_ready() {
    let mut s = state();
    create(&s, kinds::SERVICES, service("web", json!({"app": "web"}))).await;
    create(
        &s,
        kinds::NODES,
        json!({"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "zone-a"}}}),
    )
    .await;
    create(&s, kinds::PODS, pod("a", "web", Some("n1"))).await;
    set_status(&s, "a", "10.244.1.5", true).await;
    // On a node: deletion marks it Terminating until the kubelet confirms.
    s.objects.delete_pod("default", "a").await.expect("delete");
    sync(&mut s, "web").await;
    let all = slices(&s).await;
    assert_eq!(
        endpoints(&all[0]),
        [("10.244.1.5".to_string(), false, true, true)]
    );
    assert_eq!(all[0]["endpoints"][0]["nodeName"], "n1");
    assert_eq!(all[0]["endpoints"][0]["zone"], "zone-a");
}

#[tokio::test]
async fn pods_on_a_node_not_yet_known_wait_and_the_service_is_retried() {
    let mut s = state();
    create(&s, kinds::SERVICES, service("web", json!({"app": "web"}))).await;
    create(&s, kinds::PODS, pod("a", "web", Some("n9"))).await;
    set_status(&s, "a", "10.244.1.5", true).await;
    assert_eq!(sync(&mut s, "web").await, Some(MISSING_NODE_RETRY));
    assert_eq!(slices(&s).await[0]["endpoints"], json!([]));
    create(&s, kinds::NODES, json!({"metadata": {"name": "n9"}})).await;
    assert_eq!(sync(&mut s, "web").await, None);
    assert_eq!(endpoints(&slices(&s).await[0]).len(), 1);
}

#[tokio::test]
async fn hand_written_slices_and_unmanaged_services_are_left_alone() {
    let mut s = state();
    create(
        &s,
        kinds::SERVICES,
        json!({"metadata": {"name": "manual", "namespace": "default"},
            "spec": {"ports": [{"port": 80}]}}),
    )
    .await;
    create(
        &s,
        kinds::SERVICES,
        json!({"metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "example.com", "selector": {"app": "web"}}}),
    )
    .await;
    let hand = create(
        &s,
        kinds::ENDPOINTSLICES,
        json!({"metadata": {"name": "manual-1", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "manual"}},
            "addressType": "IPv4", "ports": [{"port": 80}],
            "endpoints": [{"addresses": ["192.168.1.1"]}]}),
    )
    .await;
    create(&s, kinds::PODS, pod("a", "web", None)).await;
    set_status(&s, "a", "10.244.0.5", true).await;
    sync(&mut s, "manual").await;
    sync(&mut s, "ext").await;
    let all = slices(&s).await;
    assert_eq!(all.len(), 1, "no slice made: {all:?}");
    assert_eq!(
        all[0]["metadata"]["resourceVersion"],
        hand["metadata"]["resourceVersion"]
    );

    // Even once its Service is gone.
    s.objects
        .delete(kinds::SERVICES, Some("default"), "manual")
        .await
        .expect("delete service");
    sync(&mut s, "manual").await;
    assert_eq!(slices(&s).await.len(), 1);
}

#[tokio::test]
async fn a_deleted_service_takes_its_managed_slices_along() {
    let mut s = state();
    create(&s, kinds::SERVICES, service("web", json!({"app": "web"}))).await;
    create(&s, kinds::PODS, pod("a", "web", None)).await;
    set_status(&s, "a", "10.244.0.5", true).await;
    sync(&mut s, "web").await;
    assert_eq!(slices(&s).await.len(), 1);
    s.objects
        .delete(kinds::SERVICES, Some("default"), "web")
        .await
        .expect("delete service");
    // The Service's deletion queues it although it is gone.
    let gone = s
        .changes(SliceChange::ServiceGone(key("web")), &OwnerIndex::default())
        .await
        .expect("changes");
    assert_eq!(gone, [key("web")]);
    sync(&mut s, "web").await;
    assert_eq!(slices(&s).await, Vec::<Value>::new());
    // A restarted controller finds leftovers through its listing.
    assert!(s.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn a_pod_change_queues_the_services_it_left_and_joined() {
    let mut s = state();
    create(&s, kinds::SERVICES, service("web", json!({"app": "web"}))).await;
    create(&s, kinds::SERVICES, service("api", json!({"app": "api"}))).await;
    create(&s, kinds::SERVICES, service("db", json!({"app": "db"}))).await;
    create(&s, kinds::PODS, pod("a", "web", None)).await;
    set_status(&s, "a", "10.244.0.5", true).await;
    for name in ["web", "api", "db"] {
        sync(&mut s, name).await;
    }
    let relabelled = PodChange {
        namespace: "default".into(),
        name: "a".into(),
        labels: [("app".to_string(), "api".to_string())].into(),
    };
    let mut keys = s
        .changes(SliceChange::Pod(relabelled), &OwnerIndex::default())
        .await
        .expect("changes");
    keys.sort();
    assert_eq!(keys, [key("api"), key("web")]);
}

#[test]
fn watch_events_decode_to_the_service_they_concern() {
    let event = |kind, value: Value| Event {
        kind,
        key: String::new(),
        value: value.to_string().into(),
        revision: 1,
    };
    let svc = json!({"metadata": {"name": "web", "namespace": "default"}});
    assert!(matches!(
        EndpointSlices::decode(0, Some(&event(EventKind::Deleted, svc.clone()))),
        Some(Trigger::Change(SliceChange::ServiceGone(k))) if k == key("web")
    ));
    assert!(matches!(
        EndpointSlices::decode(0, Some(&event(EventKind::Added, svc))),
        Some(Trigger::Object(EventKind::Added, k)) if k == key("web")
    ));
    let managed = json!({"metadata": {"name": "web-x", "namespace": "default", "labels": {
        "kubernetes.io/service-name": "web", MANAGED_BY_LABEL: CONTROLLER_NAME}}});
    assert!(matches!(
        EndpointSlices::decode(2, Some(&event(EventKind::Modified, managed))),
        Some(Trigger::Change(SliceChange::Slice(k))) if k == key("web")
    ));
    let hand = json!({"metadata": {"name": "m", "namespace": "default", "labels": {
        "kubernetes.io/service-name": "web"}}});
    assert!(EndpointSlices::decode(2, Some(&event(EventKind::Modified, hand))).is_none());
}

#[tokio::test]
async fn nothing_is_created_in_a_terminating_namespace_and_no_error_retries() {
    let mut s = state();
    create(&s, kinds::SERVICES, service("web", json!({"app": "web"}))).await;
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
    assert_eq!(sync(&mut s, "web").await, None);
    assert!(slices(&s).await.is_empty());
}
