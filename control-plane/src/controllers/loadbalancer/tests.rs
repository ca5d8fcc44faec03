//! The controller against an in-memory store, reconciles driven by hand
//! (the runtime's queue is tested on its own).

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::store::memory::MemoryStore;

fn pool(text: &str) -> Option<LbPool> {
    Some(LbPool::parse(text).expect("pool"))
}

fn key(name: &str) -> ServiceName {
    ServiceName {
        namespace: "default".into(),
        name: name.into(),
    }
}

fn service(name: &str, kind: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"type": kind, "ports": [{"port": 80, "targetPort": 8080}]},
        "status": {"loadBalancer": {}}})
}

async fn create(objects: &Objects, obj: Value) {
    objects.create(kinds::SERVICES, obj).await.expect("create");
}

async fn status(objects: &Objects, name: &str) -> Value {
    objects
        .get(kinds::SERVICES, Some("default"), name)
        .await
        .expect("service")["status"]["loadBalancer"]
        .clone()
}

async fn sync(lb: &mut LoadBalancers, name: &str) -> runtime::Action {
    lb.reconcile(&key(name)).await.expect("reconcile")
}

fn vip(ip: &str) -> Value {
    json!({"ingress": [{"ip": ip, "ipMode": "VIP"}]})
}

async fn events(objects: &Objects, reason: &str) -> Vec<Value> {
    let (events, _) = objects.list(kinds::EVENTS).await.expect("events");
    events
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

#[tokio::test]
async fn services_get_the_lowest_free_addresses_and_keep_them() {
    let objects = Objects::new(Arc::new(MemoryStore::new()));
    create(&objects, service("a", "LoadBalancer")).await;
    create(&objects, service("b", "LoadBalancer")).await;
    create(&objects, service("plain", "ClusterIP")).await;
    let mut lb = LoadBalancers::new(objects.clone(), pool("172.29.1.200-172.29.1.209"));
    for name in ["a", "b", "plain"] {
        sync(&mut lb, name).await;
    }
    assert_eq!(status(&objects, "a").await, vip("172.29.1.200"));
    assert_eq!(status(&objects, "b").await, vip("172.29.1.201"));
    assert_eq!(status(&objects, "plain").await, json!({}));
    // Idempotent: a second pass writes nothing.
    let before = objects
        .get(kinds::SERVICES, Some("default"), "a")
        .await
        .expect("a");
    sync(&mut lb, "a").await;
    let after = objects
        .get(kinds::SERVICES, Some("default"), "a")
        .await
        .expect("a");
    assert_eq!(
        before["metadata"]["resourceVersion"],
        after["metadata"]["resourceVersion"]
    );
    assert_eq!(events(&objects, "IPAllocated").await.len(), 2);
}

#[tokio::test]
async fn an_explicit_address_is_honoured_and_a_restart_rebuilds_from_the_statuses() {
    let objects = Objects::new(Arc::new(MemoryStore::new()));
    let mut explicit = service("x", "LoadBalancer");
    explicit["spec"]["loadBalancerIP"] = json!("172.29.1.200");
    create(&objects, explicit).await;
    let mut lb = LoadBalancers::new(objects.clone(), pool("172.29.1.200-172.29.1.209"));
    sync(&mut lb, "x").await;
    assert_eq!(status(&objects, "x").await, vip("172.29.1.200"));
    // A fresh controller (a control plane restart) knows only the store.
    create(&objects, service("y", "LoadBalancer")).await;
    let mut fresh = LoadBalancers::new(objects.clone(), pool("172.29.1.200-172.29.1.209"));
    sync(&mut fresh, "y").await;
    assert_eq!(status(&objects, "y").await, vip("172.29.1.201"));
    assert_eq!(status(&objects, "x").await, vip("172.29.1.200"));
}

#[tokio::test]
async fn an_exhausted_pool_leaves_the_service_pending_until_an_address_frees() {
    let objects = Objects::new(Arc::new(MemoryStore::new()));
    create(&objects, service("first", "LoadBalancer")).await;
    create(&objects, service("second", "LoadBalancer")).await;
    let mut lb = LoadBalancers::new(objects.clone(), pool("172.29.1.200"));
    sync(&mut lb, "first").await;
    let action = sync(&mut lb, "second").await;
    assert_eq!(action.requeue_after(), Some(PENDING_RETRY));
    assert_eq!(status(&objects, "second").await, json!({}));
    let failed = events(&objects, "AllocationFailed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(
        failed[0]["message"],
        "Failed to allocate IP for \"default/second\": no available IPs"
    );
    assert_eq!(failed[0]["type"], "Warning");
    // Deleting the holder frees the address and asks for the waiting one.
    objects
        .delete(kinds::SERVICES, Some("default"), "first")
        .await
        .expect("delete");
    let again = lb
        .changes(Change::Deleted(key("first")), &OwnerIndex::default())
        .await
        .expect("changes");
    assert_eq!(again, [key("second")]);
    sync(&mut lb, "second").await;
    assert_eq!(status(&objects, "second").await, vip("172.29.1.200"));
}

#[tokio::test]
async fn a_type_change_clears_the_status_and_frees_the_address() {
    let objects = Objects::new(Arc::new(MemoryStore::new()));
    create(&objects, service("lb", "LoadBalancer")).await;
    create(&objects, service("waiting", "LoadBalancer")).await;
    let mut lb = LoadBalancers::new(objects.clone(), pool("172.29.1.200/32"));
    sync(&mut lb, "lb").await;
    sync(&mut lb, "waiting").await;
    assert!(lb.follow_ups().is_empty());
    objects
        .update(kinds::SERVICES, Some("default"), "lb", |s| {
            s["spec"]["type"] = json!("ClusterIP");
            true
        })
        .await
        .expect("type change");
    sync(&mut lb, "lb").await;
    assert_eq!(status(&objects, "lb").await, json!({}));
    assert_eq!(lb.follow_ups(), [key("waiting")]);
    sync(&mut lb, "waiting").await;
    assert_eq!(status(&objects, "waiting").await, vip("172.29.1.200"));
}

#[tokio::test]
async fn without_a_pool_services_stay_pending() {
    let objects = Objects::new(Arc::new(MemoryStore::new()));
    create(&objects, service("a", "LoadBalancer")).await;
    let mut lb = LoadBalancers::new(objects.clone(), None);
    sync(&mut lb, "a").await;
    assert_eq!(status(&objects, "a").await, json!({}));
    assert!(events(&objects, "AllocationFailed").await.is_empty());
}
