//! The cache's bookkeeping, and the actor against an in-memory store.

use crate::volumes::testing::{claim, store_with_default_class};
use std::time::Duration;

use serde_json::{Value, json};

use super::cache::{Cache, Decision};
use super::*;
use crate::registry::kinds;

fn node(name: &str, cpu: &str, labels: Value) -> Value {
    json!({"metadata": {"name": name, "labels": labels}, "spec": {},
           "status": {"conditions": [{"type": "Ready", "status": "True"}],
                      "allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"}}})
}

fn pod(name: &str, cpu: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "x",
                    "resources": {"requests": {"cpu": cpu}}}]}})
}

fn bound(mut p: Value, node: &str) -> Value {
    p["spec"]["nodeName"] = json!(node);
    p
}

#[test]
fn running_totals_follow_pod_changes() {
    let mut c = Cache::default();
    c.apply_node("n1", 1, Some(&node("n1", "2", json!({}))));
    c.apply_pod("default/a", 2, Some(&bound(pod("a", "500m"), "n1")));
    c.apply_pod("default/b", 3, Some(&bound(pod("b", "1"), "n1")));
    let u = c.usage("n1").expect("n1");
    assert_eq!((u.pods, u.requested.milli_cpu), (2, 1500));
    // A status update of the same pod changes nothing.
    c.apply_pod("default/a", 4, Some(&bound(pod("a", "500m"), "n1")));
    assert_eq!(c.usage("n1").expect("n1").pods, 2);
    // Terminal pods free their node.
    let mut done = bound(pod("b", "1"), "n1");
    done["status"]["phase"] = json!("Succeeded");
    let change = c.apply_pod("default/b", 5, Some(&done));
    assert!(change.room);
    let u = c.usage("n1").expect("n1");
    assert_eq!((u.pods, u.requested.milli_cpu), (1, 500));
    // Stale events are ignored.
    c.apply_pod("default/b", 3, Some(&bound(pod("b", "1"), "n1")));
    assert_eq!(c.usage("n1").expect("n1").pods, 1);
    c.apply_pod("default/a", 6, None);
    assert_eq!(c.usage("n1").expect("n1"), Default::default());
    // Pods on a node without an object still count once it appears.
    c.apply_pod("default/g", 7, Some(&bound(pod("g", "1"), "later")));
    c.apply_node("later", 8, Some(&node("later", "1", json!({}))));
    assert_eq!(c.usage("later").expect("later").requested.milli_cpu, 1000);
}

#[test]
fn status_reports_of_a_placed_pod_are_taken_without_decoding_it() {
    let bytes = |pod: &Value| serde_json::to_vec(pod).expect("encode");
    let mut c = Cache::default();
    c.apply_node("n1", 1, Some(&node("n1", "2", json!({}))));
    c.apply_node("n2", 2, Some(&node("n2", "2", json!({}))));
    let mut running = bound(pod("a", "500m"), "n1");
    // Not known as placed yet: the whole pod is needed.
    assert!(!c.keep_placed("default/a", 3, &bytes(&running)));
    c.apply_pod("default/a", 3, Some(&running));
    running["status"]["phase"] = json!("Running");
    assert!(c.keep_placed("default/a", 4, &bytes(&running)));
    // Taken: the same revision again is stale.
    assert!(!c.keep_placed("default/a", 4, &bytes(&running)));
    assert_eq!(c.usage("n1").expect("n1").pods, 1);
    // A finished pod, another node or another owner must be applied.
    let mut done = running.clone();
    done["status"]["phase"] = json!("Failed");
    assert!(!c.keep_placed("default/a", 5, &bytes(&done)));
    assert!(!c.keep_placed("default/a", 5, &bytes(&bound(pod("a", "500m"), "n2"))));
    let mut owned = running.clone();
    owned["metadata"]["ownerReferences"] = json!([{"uid": "rs1", "controller": true}]);
    assert!(!c.keep_placed("default/a", 5, &bytes(&owned)));
    // A pod whose bind is not confirmed yet is not taken either.
    c.apply_pod("default/b", 6, Some(&pod("b", "100m")));
    let key = c.pop_active().expect("b waits");
    let Some(Decision::Node(slot, node)) = c.find_node(&key) else {
        panic!("b fits");
    };
    c.assume(&key, slot);
    assert!(!c.keep_placed("default/b", 7, &bytes(&bound(pod("b", "100m"), &node))));
}

#[test]
fn placing_counts_the_pod_before_the_bind_is_written() {
    let mut c = Cache::default();
    c.apply_node("n1", 1, Some(&node("n1", "1", json!({}))));
    c.apply_pod("default/a", 2, Some(&pod("a", "600m")));
    c.apply_pod("default/b", 3, Some(&pod("b", "600m")));
    let key = c.pop_active().expect("a waits");
    assert_eq!(key, "default/a");
    let Some(Decision::Node(slot, name)) = c.find_node(&key) else {
        panic!("a fits");
    };
    assert_eq!(name, "n1");
    c.assume(&key, slot);
    let key = c.pop_active().expect("b waits");
    let Some(Decision::Unschedulable(d)) = c.find_node(&key) else {
        panic!("b does not fit beside a");
    };
    let info = c.pending(&key).expect("pending").info.clone();
    assert_eq!(
        filters::failure_message(1, &info, &d),
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: \
         1 No preemption victims found for incoming pod.."
    );
    c.mark_unschedulable(&key, None);
    assert!(!c.has_active());
    // The bind of a failed: b fits now, once retried.
    c.forget("default/a");
    c.retry_unschedulable();
    let mut order = Vec::new();
    while let Some(k) = c.pop_active() {
        order.push(k);
    }
    assert_eq!(order, ["default/b", "default/a"]);
}

#[test]
fn our_own_status_writes_do_not_retry_an_unschedulable_pod() {
    let mut c = Cache::default();
    c.apply_node("n1", 1, Some(&node("n1", "1", json!({}))));
    c.apply_pod("default/p", 2, Some(&pod("p", "2")));
    let key = c.pop_active().expect("waits");
    assert!(matches!(
        c.find_node(&key),
        Some(Decision::Unschedulable(_))
    ));
    let mut written = pod("p", "2");
    written["metadata"]["resourceVersion"] = json!("3");
    written["status"]["conditions"] =
        json!([{"type": "PodScheduled", "status": "False", "message": "m"}]);
    c.mark_unschedulable(&key, Some(written.clone()));
    assert_eq!(
        c.pending(&key).and_then(|p| p.reported.as_deref()),
        Some("m")
    );
    // Its watch event is not newer: ignored.
    c.apply_pod(&key, 3, Some(&written));
    assert!(!c.has_active());
    // A later label change, same spec: still waits for room.
    written["metadata"]["labels"] = json!({"a": "b"});
    c.apply_pod(&key, 4, Some(&written));
    assert!(!c.has_active());
    // A changed spec is tried again.
    c.apply_pod(&key, 5, Some(&pod("p", "500m")));
    assert!(c.has_active());
}

#[test]
fn only_unbound_live_default_scheduler_pods_wait() {
    let mut c = Cache::default();
    let mut other = pod("o", "1");
    other["spec"]["schedulerName"] = json!("custom");
    let mut gated = pod("g", "1");
    gated["spec"]["schedulingGates"] = json!([{"name": "wait"}]);
    let mut deleting = pod("d", "1");
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    for (i, p) in [other, gated, deleting].iter().enumerate() {
        c.apply_pod(&cache::pod_key(p), i as u64 + 1, Some(p));
    }
    assert!(!c.has_active());
    let change = c.apply_pod("default/p", 9, Some(&pod("p", "1")));
    assert!(change.queued);
    assert!(c.has_active());
}

#[test]
fn a_listing_replaces_the_view_and_older_events_are_ignored() {
    let mut c = Cache::default();
    let mut a = bound(pod("a", "1"), "n1");
    a["metadata"]["resourceVersion"] = json!("5");
    c.reset_pods(&[a], 10);
    assert_eq!(c.usage("n1").expect("n1").pods, 1);
    // Replayed from before the listing: already in it.
    c.apply_pod("default/a", 7, None);
    assert_eq!(c.usage("n1").expect("n1").pods, 1);
    c.apply_pod("default/a", 11, None);
    assert_eq!(c.usage("n1").expect("n1").pods, 0);
}

/// Pod `name` in `default` as stored now.
async fn stored_pod(objects: &Objects, name: &str) -> Value {
    let rt = kinds::PODS;
    objects.get(rt, Some("default"), name).await.expect("pod")
}

/// Why pod `name` is not scheduled, once the scheduler has said so.
async fn message(objects: &Objects, name: &str) -> Option<String> {
    let pod = stored_pod(objects, name).await;
    pod["status"]["conditions"][0]["message"]
        .as_str()
        .map(String::from)
}

/// The node pod `name` is bound to, once it is.
async fn node_of(objects: &Objects, name: &str) -> Option<String> {
    let pod = stored_pod(objects, name).await;
    pod["spec"]["nodeName"].as_str().map(String::from)
}

async fn create_pod(objects: &Objects, pod: Value) {
    objects.create(kinds::PODS, pod).await.expect("pod");
}

async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn the_actor_binds_by_resources_and_affinity_and_explains_failures() {
    let objects = Objects::in_memory();
    let nodes_rt = kinds::NODES;
    let pods_rt = kinds::PODS;
    objects
        .create(nodes_rt, node("small", "1", json!({"zone": "a"})))
        .await
        .expect("node");
    objects
        .create(nodes_rt, node("big", "4", json!({"zone": "b"})))
        .await
        .expect("node");
    objects
        .create(nodes_rt, node("other", "4", json!({"zone": "c"})))
        .await
        .expect("node");
    let (actor, handle) = Actor::spawn(None, Scheduler, objects.clone())
        .await
        .expect("scheduler");

    let in_zone = |name: &str, cpu: &str, zones: &[&str]| {
        let mut p = pod(name, cpu);
        p["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": zones}]}]}}});
        p
    };
    // Fits only "big" by cpu among zones a and b.
    create_pod(&objects, in_zone("wide", "2", &["a", "b"])).await;
    let wide = eventually("wide bound", async || {
        let p = stored_pod(&objects, "wide").await;
        p["spec"]["nodeName"].as_str().map(String::from)
    })
    .await;
    assert_eq!(wide, "big");
    // Fits nowhere: 3 cpu more in zone b, "small" too small, "other" wrong zone.
    create_pod(&objects, in_zone("huge", "3", &["a", "b"])).await;
    let message = eventually("huge unschedulable", async || {
        let p = stored_pod(&objects, "huge").await;
        p["status"]["conditions"][0]["message"]
            .as_str()
            .map(String::from)
    })
    .await;
    assert_eq!(
        message,
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu. \
         preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, \
         2 No preemption victims found for incoming pod.."
    );
    let events_rt = kinds::EVENTS;
    let (events, _) = objects.list(events_rt).await.expect("events");
    let reasons: Vec<&str> = events.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(reasons.contains(&"Scheduled"), "{reasons:?}");
    assert!(reasons.contains(&"FailedScheduling"), "{reasons:?}");
    let scheduled = events
        .iter()
        .find(|e| e["reason"] == "Scheduled")
        .expect("Scheduled event");
    assert_eq!(
        scheduled["message"],
        "Successfully assigned default/wide to big"
    );

    // Deleting "wide" frees "big": "huge" gets it.
    objects
        .delete(pods_rt, Some("default"), "wide")
        .await
        .expect("delete");
    let huge = eventually("huge bound", async || node_of(&objects, "huge").await).await;
    assert_eq!(huge, "big");

    // Replicas of one owner spread over the nodes that fit.
    for i in 0..6 {
        let mut p = pod(&format!("r{i}"), "100m");
        p["metadata"]["ownerReferences"] =
            json!([{"uid": "rs-1", "kind": "ReplicaSet", "name": "rs", "apiVersion": "apps/v1"}]);
        objects.create(pods_rt, p).await.expect("pod");
    }
    let placed = eventually("replicas bound", async || {
        let (pods, _) = objects.list(pods_rt).await.expect("list");
        let nodes: Vec<String> = pods
            .iter()
            .filter(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with('r'))
            })
            .filter_map(|p| p["spec"]["nodeName"].as_str().map(String::from))
            .collect();
        (nodes.len() == 6).then_some(nodes)
    })
    .await;
    for n in ["small", "big", "other"] {
        assert_eq!(placed.iter().filter(|p| *p == n).count(), 2, "{placed:?}");
    }
    actor.stop(None);
    let _ = handle.await;
}

#[test]
fn large_clusters_are_searched_in_turns_as_upstream() {
    use super::cache::feasible_nodes_to_find;
    assert_eq!(feasible_nodes_to_find(3), 3);
    assert_eq!(feasible_nodes_to_find(100), 100);
    assert_eq!(feasible_nodes_to_find(250), 120);
    assert_eq!(feasible_nodes_to_find(1000), 420);
    assert_eq!(feasible_nodes_to_find(5000), 500);
    assert_eq!(feasible_nodes_to_find(100_000), 5000);

    // 1,000 equal nodes, 3,000 pods: each search looks at 420 nodes and
    // the next one starts after them, so pods still spread evenly.
    let mut c = Cache::default();
    for i in 0..1000 {
        let name = format!("n{i:04}");
        c.apply_node(&name, i + 1, Some(&node(&name, "64", json!({}))));
    }
    for i in 0..3000 {
        let key = format!("default/p{i}");
        c.apply_pod(&key, 2000 + i, Some(&pod(&format!("p{i}"), "10m")));
        let Some(Decision::Node(slot, _)) = c.find_node(&key) else {
            panic!("no node for {key}");
        };
        c.assume(&key, slot);
    }
    let counts: Vec<i64> = (0..1000)
        .map(|i| c.usage(&format!("n{i:04}")).expect("node").pods)
        .collect();
    assert_eq!(counts.iter().sum::<i64>(), 3000);
    assert!(counts.iter().all(|n| *n == 3), "{counts:?}");
}

#[test]
fn nothing_is_placed_before_nodes_and_pods_were_listed() {
    let mut c = Cache::default();
    assert!(!c.synced());
    let mut a = pod("a", "1");
    a["metadata"]["resourceVersion"] = json!("3");
    c.reset_pods(&[a], 5);
    assert!(c.has_active());
    // Without the node listing every pod would look unschedulable.
    assert!(!c.synced());
    c.reset_nodes(&[node("n1", "2", json!({}))], 6);
    assert!(c.synced());
}

#[tokio::test]
async fn pods_with_claims_get_a_volume_on_their_node_and_stay_with_it() {
    let objects = store_with_default_class().await;
    let nodes_rt = kinds::NODES;
    let pods_rt = kinds::PODS;
    let claims_rt = kinds::PERSISTENTVOLUMECLAIMS;
    for name in ["n1", "n2"] {
        objects
            .create(
                nodes_rt,
                node(name, "2", json!({"kubernetes.io/hostname": name})),
            )
            .await
            .expect("node");
    }
    claim(
        &objects,
        "data",
        json!({"resources": {"requests": {"storage": "1Gi"}}}),
    )
    .await;
    let (actor, handle) = Actor::spawn(None, Scheduler, objects.clone())
        .await
        .expect("scheduler");
    let with_claim = |name: &str, claim: &str| {
        let mut p = pod(name, "100m");
        p["spec"]["volumes"] =
            json!([{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]);
        p
    };
    create_pod(&objects, with_claim("first", "data")).await;
    let first = eventually("first bound", async || node_of(&objects, "first").await).await;
    let claim = objects
        .get(claims_rt, Some("default"), "data")
        .await
        .expect("claim");
    assert_eq!(claim["status"]["phase"], "Bound");
    assert_eq!(
        claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
        first.as_str()
    );
    // Later pods of the claim follow its volume, never to the other node.
    objects
        .delete(pods_rt, Some("default"), "first")
        .await
        .expect("delete");
    for name in ["again", "more"] {
        create_pod(&objects, with_claim(name, "data")).await;
    }
    for name in ["again", "more"] {
        let n = eventually("bound", async || node_of(&objects, name).await).await;
        assert_eq!(n, first, "{name}");
    }
    // With that node cordoned, the pod waits, in upstream's words.
    objects
        .update(nodes_rt, None, &first, |n| {
            n["spec"]["unschedulable"] = json!(true);
            true
        })
        .await
        .expect("cordon");
    create_pod(&objects, with_claim("held", "data")).await;
    create_pod(&objects, with_claim("lost", "missing")).await;
    assert_eq!(
        eventually("held unschedulable", async || message(&objects, "held")
            .await)
        .await,
        "0/2 nodes are available: 1 node(s) had volume node affinity conflict, \
         1 node(s) were unschedulable. preemption: 0/2 nodes are available: \
         2 Preemption is not helpful for scheduling.."
    );
    assert_eq!(
        eventually("lost unschedulable", async || message(&objects, "lost")
            .await)
        .await,
        "0/2 nodes are available: persistentvolumeclaim \"missing\" not found. \
         preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.."
    );
    actor.stop(None);
    let _ = handle.await;
}
