//! The controller on the runtime, against an in-memory store, with the
//! kubelet's part (pods turning Ready) played by hand.

use std::sync::Arc;

use ractor::Actor;
use serde_json::{Value, json};

use super::*;
use crate::registry::kinds;
use crate::store::memory::MemoryStore;

fn web(min_ready_seconds: u64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "minReadySeconds": min_ready_seconds,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
        },
    })
}

async fn status(objects: &Objects) -> Value {
    let rt = owner_rt(REPLICA_SET);
    let rs = objects
        .get(rt, Some("default"), "web")
        .await
        .expect("get rs");
    rs["status"].clone()
}

async fn pod_names(objects: &Objects) -> Vec<String> {
    let (pods, _) = objects.list(kinds::PODS).await.expect("list");
    pods.iter().map(|p| meta::name(p).to_string()).collect()
}

/// Marks every pod Running and Ready as of now.
async fn make_ready(objects: &Objects) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for name in pod_names(objects).await {
        objects
            .update(kinds::PODS, Some("default"), &name, |p| {
                p["spec"]["nodeName"] = json!("n1");
                p["status"] = json!({"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now}]});
                true
            })
            .await
            .expect("ready");
    }
}

/// Polls `check` every 100 ms for up to `seconds`.
async fn eventually(seconds: u64, mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..seconds * 10 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_sync_says_when_a_ready_pod_becomes_available() {
    let objects = Objects::new(Arc::new(MemoryStore::new()));
    let rs = ReplicaSets::new(objects.clone());
    let rt = owner_rt(REPLICA_SET);
    objects.create(rt, web(600)).await.expect("create rs");
    let key = ObjectRef::new(REPLICA_SET, "default", "web");
    assert_eq!(rs.sync(&key).await.expect("sync"), None, "no pod is ready");
    assert_eq!(pod_names(&objects).await.len(), 1);
    make_ready(&objects).await;
    let again = rs.sync(&key).await.expect("sync").expect("a requeue");
    assert!(again > Duration::from_secs(590) && again <= Duration::from_secs(600));
    assert_eq!(status(&objects).await["readyReplicas"], 1);
    assert_eq!(status(&objects).await.get("availableReplicas"), None);
}

/// `minReadySeconds` availability shows in the status when it is due,
/// not at the next 30 s resync.
#[tokio::test]
async fn the_controller_requeues_until_the_pod_is_available() {
    let objects = Objects::new(Arc::new(MemoryStore::new()));
    let args = (objects.store().clone(), ReplicaSets::new(objects.clone()));
    let (actor, _) = Actor::spawn(None, ReplicaSetController::default(), args)
        .await
        .expect("spawn");
    let rt = owner_rt(REPLICA_SET);
    objects.create(rt, web(2)).await.expect("create rs");
    assert!(eventually(5, async || pod_names(&objects).await.len() == 1).await);
    make_ready(&objects).await;
    assert!(eventually(5, async || status(&objects).await["readyReplicas"] == 1).await);
    assert!(
        eventually(5, async || status(&objects).await["availableReplicas"] == 1).await,
        "available within seconds: {}",
        status(&objects).await
    );
    actor.stop(None);
}
