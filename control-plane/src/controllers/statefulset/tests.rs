//! Syncs against an in-memory store, with the kubelet's part (pods turning
//! Ready, terminating pods going away) played by hand.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::pods::{POD_INDEX_LABEL, POD_NAME_LABEL, REVISION_LABEL};
use super::*;
use crate::registry::kinds;
use crate::registry::resources::ResourceType;
use crate::store::memory::MemoryStore;

fn state() -> StatefulSets {
    StatefulSets::new(Objects::new(Arc::new(MemoryStore::new())))
}

fn key() -> ObjectRef {
    ObjectRef::new(STATEFUL_SET, "default", "web")
}

fn web(replicas: u64, image: &str) -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "default", "generation": 1},
        "spec": {
            "replicas": replicas,
            "serviceName": "nginx",
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "c", "image": image,
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]},
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}],
        },
    })
}

async fn create_set(s: &StatefulSets, set: Value) {
    s.objects
        .create(kinds::STATEFULSETS, set)
        .await
        .expect("create set");
}

async fn edit_set(s: &StatefulSets, change: impl Fn(&mut Value)) {
    s.objects
        .update(kinds::STATEFULSETS, Some("default"), "web", |obj| {
            change(obj);
            let g = obj["metadata"]["generation"].as_i64().unwrap_or(1);
            obj["metadata"]["generation"] = json!(g + 1);
            true
        })
        .await
        .expect("edit set");
}

async fn sync(s: &StatefulSets) {
    s.sync(&key()).await.expect("sync");
}

/// Every `rt` object as `show` names it, sorted.
async fn names(s: &StatefulSets, rt: &ResourceType, show: fn(&Value) -> String) -> Vec<String> {
    let (objects, _) = s.objects.list(rt).await.expect("list");
    let mut names: Vec<String> = objects.iter().map(show).collect();
    names.sort();
    names
}

/// Pod names, sorted, with ` (T)` for those being deleted.
async fn pods(s: &StatefulSets) -> Vec<String> {
    names(s, kinds::PODS, |p| {
        let n = meta::name(p).to_string();
        if deleting(p) { format!("{n} (T)") } else { n }
    })
    .await
}

async fn pod(s: &StatefulSets, name: &str) -> Value {
    s.objects
        .get(kinds::PODS, Some("default"), name)
        .await
        .expect("pod")
}

async fn claims(s: &StatefulSets) -> Vec<String> {
    names(s, kinds::PERSISTENTVOLUMECLAIMS, |c| {
        meta::name(c).to_string()
    })
    .await
}

/// The kubelet's part: the pod runs on `node` and is Ready.
async fn ready(s: &StatefulSets, name: &str) {
    s.objects
        .update(kinds::PODS, Some("default"), name, |p| {
            p["spec"]["nodeName"] = json!("n1");
            p["status"] = json!({"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]});
            true
        })
        .await
        .expect("ready");
}

/// The node confirmed the containers gone: the pod object goes.
async fn gone(s: &StatefulSets, name: &str) {
    s.objects
        .delete(kinds::PODS, Some("default"), name)
        .await
        .expect("gone");
}

async fn set_status(s: &StatefulSets) -> Value {
    s.objects
        .get(kinds::STATEFULSETS, Some("default"), "web")
        .await
        .expect("set")["status"]
        .clone()
}

async fn event_messages(s: &StatefulSets) -> Vec<String> {
    s.objects
        .list(kinds::EVENTS)
        .await
        .expect("events")
        .0
        .iter()
        .filter_map(|e| e["message"].as_str().map(String::from))
        .collect()
}

/// Brings the set up to `n` Ready pods, one ordinal at a time.
async fn bring_up(s: &StatefulSets, n: usize) {
    for i in 0..n {
        sync(s).await;
        ready(s, &format!("web-{i}")).await;
    }
    sync(s).await;
}

#[tokio::test]
async fn pods_are_created_in_order_each_after_the_previous_is_ready() {
    let s = state();
    create_set(&s, web(3, "busybox")).await;
    sync(&s).await;
    assert_eq!(pods(&s).await, ["web-0"]);
    assert_eq!(claims(&s).await, ["data-web-0"]);
    // web-0 not Ready yet: a second sync creates nothing.
    sync(&s).await;
    assert_eq!(pods(&s).await, ["web-0"]);
    ready(&s, "web-0").await;
    sync(&s).await;
    assert_eq!(pods(&s).await, ["web-0", "web-1"]);
    ready(&s, "web-1").await;
    sync(&s).await;
    ready(&s, "web-2").await;
    sync(&s).await;
    assert_eq!(pods(&s).await, ["web-0", "web-1", "web-2"]);
    assert_eq!(claims(&s).await, ["data-web-0", "data-web-1", "data-web-2"]);

    let p = pod(&s, "web-1").await;
    let revision = set_status(&s).await["updateRevision"]
        .as_str()
        .expect("revision")
        .to_string();
    assert!(revision.starts_with("web-"), "{revision}");
    assert_eq!(p["metadata"]["labels"][POD_NAME_LABEL], "web-1");
    assert_eq!(p["metadata"]["labels"][POD_INDEX_LABEL], "1");
    assert_eq!(p["metadata"]["labels"][REVISION_LABEL], revision.as_str());
    assert_eq!(p["spec"]["hostname"], "web-1");
    assert_eq!(p["spec"]["subdomain"], "nginx");
    assert_eq!(
        p["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "data-web-1"
    );
    let status = set_status(&s).await;
    assert_eq!(
        status,
        json!({"replicas": 3, "readyReplicas": 3, "availableReplicas": 3,
               "currentReplicas": 3, "updatedReplicas": 3, "observedGeneration": 1,
               "currentRevision": revision, "updateRevision": revision, "collisionCount": 0})
    );
    let messages = event_messages(&s).await;
    for expected in [
        "create Pod web-0 in StatefulSet web successful",
        "create Claim data-web-0 Pod web-0 in StatefulSet web success",
        "create Pod web-2 in StatefulSet web successful",
    ] {
        assert!(
            messages.iter().any(|m| m == expected),
            "{expected} in {messages:?}"
        );
    }
    // One revision, owned by the set, with the template's labels.
    let (revisions, _) = s
        .objects
        .list(kinds::CONTROLLERREVISIONS)
        .await
        .expect("list");
    assert_eq!(revisions.len(), 1);
    assert_eq!(meta::name(&revisions[0]), revision);
    assert_eq!(revisions[0]["revision"], 1);
    assert_eq!(revisions[0]["metadata"]["labels"]["app"], "nginx");
    assert_eq!(
        revisions[0]["data"]["spec"]["template"]["$patch"],
        "replace"
    );
}

#[tokio::test]
async fn scaling_down_goes_from_the_top_and_keeps_the_claims() {
    let s = state();
    create_set(&s, web(3, "busybox")).await;
    bring_up(&s, 3).await;
    edit_set(&s, |o| o["spec"]["replicas"] = json!(1)).await;
    sync(&s).await;
    assert_eq!(pods(&s).await, ["web-0", "web-1", "web-2 (T)"]);
    // web-1 waits for web-2 to be really gone.
    sync(&s).await;
    assert_eq!(pods(&s).await, ["web-0", "web-1", "web-2 (T)"]);
    gone(&s, "web-2").await;
    sync(&s).await;
    assert_eq!(pods(&s).await, ["web-0", "web-1 (T)"]);
    gone(&s, "web-1").await;
    sync(&s).await;
    assert_eq!(pods(&s).await, ["web-0"]);
    assert_eq!(claims(&s).await, ["data-web-0", "data-web-1", "data-web-2"]);
    let status = set_status(&s).await;
    assert_eq!(
        (status["replicas"].clone(), status["readyReplicas"].clone()),
        (json!(1), json!(1))
    );
    assert!(
        event_messages(&s)
            .await
            .iter()
            .any(|m| m == "delete Pod web-2 in StatefulSet web successful")
    );
    // Back up: the same claims are used again, none is added.
    edit_set(&s, |o| o["spec"]["replicas"] = json!(3)).await;
    bring_up(&s, 3).await;
    assert_eq!(pods(&s).await, ["web-0", "web-1", "web-2"]);
    assert_eq!(claims(&s).await, ["data-web-0", "data-web-1", "data-web-2"]);
}

#[tokio::test]
async fn a_pod_whose_object_remains_is_not_replaced() {
    let s = state();
    create_set(&s, web(2, "busybox")).await;
    bring_up(&s, 2).await;
    // Evicted from a lost node: Terminating until the node confirms.
    s.objects
        .delete_pod("default", "web-1")
        .await
        .expect("evict");
    for _ in 0..3 {
        sync(&s).await;
        assert_eq!(pods(&s).await, ["web-0", "web-1 (T)"]);
    }
    gone(&s, "web-1").await;
    sync(&s).await;
    assert_eq!(pods(&s).await, ["web-0", "web-1"]);
    assert!(!deleting(&pod(&s, "web-1").await));
}

#[tokio::test]
async fn a_rolling_update_respects_the_partition_and_rollbacks_reuse_revisions() {
    let s = state();
    let mut set = web(3, "v1");
    set["spec"]["updateStrategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}});
    create_set(&s, set).await;
    bring_up(&s, 3).await;
    let first = set_status(&s).await["currentRevision"]
        .as_str()
        .expect("revision")
        .to_string();
    edit_set(&s, |o| {
        o["spec"]["template"]["spec"]["containers"][0]["image"] = json!("v2")
    })
    .await;
    sync(&s).await;
    let status = set_status(&s).await;
    let second = status["updateRevision"]
        .as_str()
        .expect("revision")
        .to_string();
    assert_ne!(first, second);
    assert_eq!(status["currentRevision"], first.as_str());
    assert_eq!(pods(&s).await, ["web-0", "web-1", "web-2 (T)"]);
    gone(&s, "web-2").await;
    sync(&s).await;
    let p = pod(&s, "web-2").await;
    assert_eq!(p["metadata"]["labels"][REVISION_LABEL], second.as_str());
    assert_eq!(p["spec"]["containers"][0]["image"], "v2");
    // web-2 not Ready: web-1 waits.
    sync(&s).await;
    assert_eq!(pods(&s).await, ["web-0", "web-1", "web-2"]);
    ready(&s, "web-2").await;
    sync(&s).await;
    assert_eq!(pods(&s).await, ["web-0", "web-1 (T)", "web-2"]);
    gone(&s, "web-1").await;
    sync(&s).await;
    ready(&s, "web-1").await;
    sync(&s).await;
    // web-0 is below the partition: it keeps v1, and the rollout is not
    // complete (the current revision stays the first).
    assert_eq!(pods(&s).await, ["web-0", "web-1", "web-2"]);
    let p0 = pod(&s, "web-0").await;
    assert_eq!(p0["metadata"]["labels"][REVISION_LABEL], first.as_str());
    let status = set_status(&s).await;
    assert_eq!(status["updatedReplicas"], 2);
    assert_eq!(status["currentReplicas"], 1);
    assert_eq!(status["currentRevision"], first.as_str());
    // A recreated web-0 keeps the current revision's template.
    gone(&s, "web-0").await;
    sync(&s).await;
    let p0 = pod(&s, "web-0").await;
    assert_eq!(p0["spec"]["containers"][0]["image"], "v1");
    assert_eq!(p0["metadata"]["labels"][REVISION_LABEL], first.as_str());
    ready(&s, "web-0").await;
    // Partition 0: web-0 is updated and the rollout completes.
    edit_set(&s, |o| {
        o["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(0)
    })
    .await;
    sync(&s).await;
    gone(&s, "web-0").await;
    sync(&s).await;
    ready(&s, "web-0").await;
    sync(&s).await;
    let status = set_status(&s).await;
    assert_eq!(status["currentRevision"], second.as_str());
    assert_eq!(status["currentReplicas"], 3);
    // Back to v1 (kubectl rollout undo): the first revision is renumbered, not copied.
    edit_set(&s, |o| {
        o["spec"]["template"]["spec"]["containers"][0]["image"] = json!("v1")
    })
    .await;
    sync(&s).await;
    let (revisions, _) = s
        .objects
        .list(kinds::CONTROLLERREVISIONS)
        .await
        .expect("list");
    let numbers: BTreeMap<String, i64> = revisions
        .iter()
        .map(|r| {
            (
                meta::name(r).to_string(),
                r["revision"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(numbers.len(), 2, "{numbers:?}");
    assert_eq!(numbers[&first], 3);
    assert_eq!(numbers[&second], 2);
    assert_eq!(set_status(&s).await["updateRevision"], first.as_str());
}

#[tokio::test]
async fn parallel_sets_create_and_remove_all_at_once() {
    let s = state();
    let mut set = web(3, "busybox");
    set["spec"]["podManagementPolicy"] = json!("Parallel");
    create_set(&s, set).await;
    sync(&s).await;
    assert_eq!(pods(&s).await, ["web-0", "web-1", "web-2"]);
    for i in 0..3 {
        ready(&s, &format!("web-{i}")).await;
    }
    edit_set(&s, |o| o["spec"]["replicas"] = json!(0)).await;
    sync(&s).await;
    assert_eq!(pods(&s).await, ["web-0 (T)", "web-1 (T)", "web-2 (T)"]);
}

#[tokio::test]
async fn orphans_of_the_set_are_adopted_and_strangers_left_alone() {
    let s = state();
    let pods_rt = kinds::PODS;
    for (name, app) in [("web-0", "nginx"), ("other", "nginx"), ("web-1", "db")] {
        s.objects
            .create(
                pods_rt,
                json!({"metadata": {"name": name, "namespace": "default",
                    "labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
            )
            .await
            .expect("pod");
    }
    create_set(&s, web(1, "busybox")).await;
    sync(&s).await;
    let adopted = pod(&s, "web-0").await;
    assert_eq!(
        adopted["metadata"]["ownerReferences"][0]["kind"],
        "StatefulSet"
    );
    // Its identity labels are restored once it is a member.
    ready(&s, "web-0").await;
    sync(&s).await;
    let adopted = pod(&s, "web-0").await;
    assert_eq!(adopted["metadata"]["labels"][POD_INDEX_LABEL], "0");
    for stranger in ["other", "web-1"] {
        assert!(
            pod(&s, stranger).await["metadata"]
                .get("ownerReferences")
                .is_none(),
            "{stranger} adopted"
        );
    }
}
