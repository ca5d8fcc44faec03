//! The collector against an in-memory store, with no other controller
//! running: every dependent that goes, goes because of the collector.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::registry::deletion::Propagation;
use crate::registry::kinds;
use crate::registry::objects::Deleted;

fn pods() -> &'static ResourceType {
    kinds::PODS
}

fn reference(owner: &Value, block: bool) -> Value {
    json!({
        "apiVersion": owner["apiVersion"], "kind": owner["kind"],
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": block,
    })
}

async fn create(objects: &Objects, rt: &ResourceType, name: &str, owners: Vec<Value>) -> Value {
    let mut obj = json!({"metadata": {"name": name, "namespace": "default"}});
    if !owners.is_empty() {
        obj["metadata"]["ownerReferences"] = json!(owners);
    }
    if rt.kind == "Pod" {
        obj["spec"] = json!({"containers": [{"name": "c", "image": "busybox"}]});
    }
    objects.create(rt, obj).await.expect("create")
}

/// A pod bound to `node`, as the scheduler leaves it.
async fn bound_pod(objects: &Objects, name: &str, node: &str, owners: Vec<Value>) -> Value {
    create(objects, pods(), name, owners).await;
    objects
        .update(pods(), Some("default"), name, |p| {
            p["spec"]["nodeName"] = json!(node);
            p["spec"]["terminationGracePeriodSeconds"] = json!(30);
            true
        })
        .await
        .expect("bind")
        .expect("bound")
}

async fn get(objects: &Objects, rt: &ResourceType, name: &str) -> Option<Value> {
    let ns = rt.namespaced.then_some("default");
    match objects.get(rt, ns, name).await {
        Ok(v) => Some(v),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => panic!("get {name}: {e}"),
    }
}

fn store() -> Objects {
    Objects::in_memory()
}

async fn delete(objects: &Objects, rt: &ResourceType, name: &str, p: Propagation) -> Deleted {
    let options = DeleteOptions {
        propagation: Some(p),
        ..DeleteOptions::default()
    };
    let ns = rt.namespaced.then_some("default");
    objects
        .delete_with(rt, ns, name, &options)
        .await
        .expect("delete")
}

/// Polls `cond` (an async expression) for up to 10 s.
macro_rules! eventually {
    ($what:expr, $cond:expr) => {{
        let mut ok = false;
        for _ in 0..400 {
            if $cond {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(ok, "timed out waiting for {}", $what);
    }};
}

/// Deployment `web` owning ReplicaSet `web-1` (blocking); the set.
async fn deployment_and_set(objects: &Objects) -> Value {
    let d = create(objects, kinds::DEPLOYMENTS, "web", vec![]).await;
    create(
        objects,
        kinds::REPLICASETS,
        "web-1",
        vec![reference(&d, true)],
    )
    .await
}

/// Removes every finalizer of `name` and asserts that it is gone.
async fn drop_finalizers_and_see_it_go(objects: &Objects, rt: &ResourceType, name: &str) {
    objects
        .update(rt, Some("default"), name, |o| {
            deletion::set_finalizers(o, Vec::new());
            true
        })
        .await
        .expect("remove the finalizer");
    assert!(get(objects, rt, name).await.is_none());
}

fn finalizers_of(obj: &Value) -> Vec<String> {
    deletion::finalizers(obj)
}

#[tokio::test]
async fn background_deletion_cascades_over_two_levels() {
    let objects = store();
    let gc = start_unsupervised(&objects).await;
    let rs = deployment_and_set(&objects).await;
    create(&objects, pods(), "web-1-a", vec![reference(&rs, true)]).await;
    create(&objects, pods(), "web-1-b", vec![reference(&rs, true)]).await;
    create(&objects, pods(), "bystander", vec![]).await;

    assert_eq!(
        delete(&objects, kinds::DEPLOYMENTS, "web", Propagation::Background).await,
        Deleted::Removed,
        "background removes the owner at once"
    );
    eventually!(
        "the set and its pods to go",
        get(&objects, kinds::REPLICASETS, "web-1").await.is_none()
            && get(&objects, pods(), "web-1-a").await.is_none()
            && get(&objects, pods(), "web-1-b").await.is_none()
    );
    assert!(get(&objects, pods(), "bystander").await.is_some());
    gc.stop(None);
}

#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let objects = store();
    objects
        .create(kinds::NODES, json!({"metadata": {"name": "n1"}}))
        .await
        .expect("node");
    let rs = deployment_and_set(&objects).await;
    bound_pod(&objects, "blocking", "n1", vec![reference(&rs, true)]).await;
    bound_pod(&objects, "free", "n1", vec![reference(&rs, false)]).await;
    let gc = start_unsupervised(&objects).await;

    assert_eq!(
        delete(&objects, kinds::DEPLOYMENTS, "web", Propagation::Foreground).await,
        Deleted::Marked
    );
    // The collector deletes the set in the foreground too, and its
    // blocking pod, which terminates on its node.
    eventually!(
        "the blocking pod to terminate",
        get(&objects, pods(), "blocking")
            .await
            .is_some_and(|p| deletion::is_deleting(&p))
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (kind, name) in [(kinds::DEPLOYMENTS, "web"), (kinds::REPLICASETS, "web-1")] {
        let owner = get(&objects, kind, name).await.expect("still there");
        assert!(deletion::is_deleting(&owner), "{name} marked");
        assert_eq!(finalizers_of(&owner), vec![FOREGROUND], "{name}");
    }
    // The non-blocking pod is not waited for, nor deleted before its owner.
    let free = get(&objects, pods(), "free").await.expect("free pod");
    assert!(!deletion::is_deleting(&free));

    // The node confirms the pod gone: the set goes, then the deployment.
    objects
        .delete(pods(), Some("default"), "blocking")
        .await
        .expect("confirm");
    eventually!(
        "the set and the deployment to go",
        get(&objects, kinds::REPLICASETS, "web-1").await.is_none()
            && get(&objects, kinds::DEPLOYMENTS, "web").await.is_none()
    );
    // Ownerless now, the non-blocking pod follows (gracefully).
    eventually!(
        "the free pod to terminate",
        get(&objects, pods(), "free")
            .await
            .is_some_and(|p| deletion::is_deleting(&p))
    );
    gc.stop(None);
}

#[tokio::test]
async fn orphaning_strips_the_owner_and_keeps_the_dependents() {
    let objects = store();
    let rs = create(&objects, kinds::REPLICASETS, "web", vec![]).await;
    let holder = create(&objects, kinds::CONFIGMAPS, "holder", vec![]).await;
    create(&objects, pods(), "only-rs", vec![reference(&rs, true)]).await;
    create(
        &objects,
        pods(),
        "two-owners",
        vec![reference(&rs, true), reference(&holder, false)],
    )
    .await;
    let gc = start_unsupervised(&objects).await;

    assert_eq!(
        delete(&objects, kinds::REPLICASETS, "web", Propagation::Orphan).await,
        Deleted::Marked
    );
    let marked = get(&objects, kinds::REPLICASETS, "web").await;
    assert!(marked.is_none_or(|rs| finalizers_of(&rs) == vec![ORPHAN]));
    eventually!(
        "the orphaning owner to go",
        get(&objects, kinds::REPLICASETS, "web").await.is_none()
    );
    let only = get(&objects, pods(), "only-rs").await.expect("kept");
    assert!(only["metadata"].get("ownerReferences").is_none(), "{only}");
    let two = get(&objects, pods(), "two-owners").await.expect("kept");
    assert_eq!(
        two["metadata"]["ownerReferences"],
        json!([reference(&holder, false)])
    );
    assert!(!deletion::is_deleting(&only) && !deletion::is_deleting(&two));
    gc.stop(None);
}

#[tokio::test]
async fn a_custom_finalizer_holds_an_object_until_an_update_removes_it() {
    let objects = store();
    let gc = start_unsupervised(&objects).await;
    let cm = json!({"metadata": {"name": "held", "namespace": "default", "finalizers": ["example.com/hold"]}});
    objects.create(kinds::CONFIGMAPS, cm).await.expect("create");
    assert_eq!(
        objects
            .delete_with(
                kinds::CONFIGMAPS,
                Some("default"),
                "held",
                &DeleteOptions::default()
            )
            .await
            .expect("delete"),
        Deleted::Marked
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held = get(&objects, kinds::CONFIGMAPS, "held")
        .await
        .expect("held by its finalizer");
    assert!(deletion::is_deleting(&held));
    assert_eq!(held["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(finalizers_of(&held), vec!["example.com/hold"]);

    drop_finalizers_and_see_it_go(&objects, kinds::CONFIGMAPS, "held").await;

    // A foreground deletion ends with the collector's finalizer only: a
    // custom one still holds the owner.
    let rs = json!({"metadata": {"name": "rs", "namespace": "default", "finalizers": ["example.com/hold"]}});
    let rs = objects.create(kinds::REPLICASETS, rs).await.expect("rs");
    create(&objects, pods(), "p", vec![reference(&rs, true)]).await;
    delete(&objects, kinds::REPLICASETS, "rs", Propagation::Foreground).await;
    eventually!(
        "the dependent to go and the foreground finalizer with it",
        get(&objects, pods(), "p").await.is_none()
            && get(&objects, kinds::REPLICASETS, "rs")
                .await
                .is_some_and(|rs| finalizers_of(&rs) == vec!["example.com/hold"])
    );
    drop_finalizers_and_see_it_go(&objects, kinds::REPLICASETS, "rs").await;
    gc.stop(None);
}

#[tokio::test]
async fn owners_that_never_existed_or_have_another_uid_count_as_gone() {
    let objects = store();
    let rs = create(&objects, kinds::REPLICASETS, "web", vec![]).await;
    let mut namesake = reference(&rs, true);
    namesake["uid"] = json!("an-earlier-web");
    let ghost = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ghost", "uid": "ghost-uid", "controller": true});
    let widget =
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": "w-uid"});
    create(&objects, pods(), "namesake", vec![namesake]).await;
    create(&objects, pods(), "ghost", vec![ghost.clone()]).await;
    create(&objects, pods(), "owned", vec![reference(&rs, true)]).await;
    create(
        &objects,
        pods(),
        "mixed",
        vec![reference(&rs, true), ghost.clone()],
    )
    .await;
    create(&objects, pods(), "widget", vec![widget]).await;
    let gc = start_unsupervised(&objects).await;
    // One that appears after the collector's first listing.
    create(&objects, pods(), "late-ghost", vec![ghost]).await;

    eventually!(
        "the pods of absent owners to go",
        get(&objects, pods(), "namesake").await.is_none()
            && get(&objects, pods(), "ghost").await.is_none()
            && get(&objects, pods(), "late-ghost").await.is_none()
    );
    eventually!(
        "the reference to the absent owner to go",
        get(&objects, pods(), "mixed")
            .await
            .is_some_and(|p| p["metadata"]["ownerReferences"] == json!([reference(&rs, true)]))
    );
    assert!(get(&objects, pods(), "owned").await.is_some());
    // An owner of a kind not served cannot be judged: the pod stays.
    assert!(get(&objects, pods(), "widget").await.is_some());
    gc.stop(None);
}

#[tokio::test]
async fn a_cluster_scoped_owner_takes_its_namespaced_dependents() {
    let objects = store();
    let node = objects
        .create(kinds::NODES, json!({"metadata": {"name": "n1"}}))
        .await
        .expect("node");
    let mut owner = reference(&node, false);
    owner["blockOwnerDeletion"] = Value::Null;
    let mirror = bound_pod(&objects, "static-web-n1", "n1", vec![owner]).await;
    assert_eq!(mirror["metadata"]["ownerReferences"][0]["kind"], "Node");
    let gc = start_unsupervised(&objects).await;
    objects
        .delete(kinds::NODES, None, "n1")
        .await
        .expect("delete node");
    // Nothing is left to confirm a pod of a deleted node: it goes at once.
    eventually!(
        "the node's pod to go",
        get(&objects, pods(), "static-web-n1").await.is_none()
    );
    gc.stop(None);
}
