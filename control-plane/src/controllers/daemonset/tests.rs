//! Syncs against the in-memory store: the pods, revisions, events and
//! status one sync writes, with the scheduler and kubelets played by
//! helpers that bind and run pods and finish their deletion.

use std::sync::Arc;

use serde_json::{Value, json};

use super::eligibility::target_node;
use super::plan::{GENERATION_LABEL, HASH_LABEL};
use super::*;
use crate::registry::kinds;
use crate::registry::kinds::daemonset::TEMPLATE_GENERATION;
use crate::store::memory::MemoryStore;

const NS: &str = "default";

fn key() -> ObjectRef {
    ObjectRef::new(DAEMON_SET, NS, "mon")
}

fn rts() -> (
    &'static ResourceType,
    &'static ResourceType,
    &'static ResourceType,
) {
    (kinds::DAEMONSETS, kinds::PODS, kinds::NODES)
}

async fn setup(strategy: Value) -> DaemonSets {
    let objects = Objects::new(Arc::new(MemoryStore::new()));
    let (daemonsets, _, nodes) = rts();
    for (name, disk) in [("n1", "ssd"), ("n2", "ssd"), ("n3", "hdd")] {
        objects
            .create(
                nodes,
                json!({"metadata": {"name": name, "labels": {"disk": disk}}, "spec": {}}),
            )
            .await
            .expect("node");
    }
    objects
        .create(
            daemonsets,
            json!({
                "metadata": {"name": "mon", "namespace": NS, "generation": 1,
                             "annotations": {TEMPLATE_GENERATION: "1"}},
                "spec": {"selector": {"matchLabels": {"app": "mon"}},
                         "updateStrategy": strategy,
                         "template": {"metadata": {"labels": {"app": "mon"}},
                                      "spec": {"nodeSelector": {"disk": "ssd"},
                                               "containers": [{"name": "c", "image": "busybox",
                                                               "command": ["sleep", "3600"]}]}}},
            }),
        )
        .await
        .expect("daemon set");
    DaemonSets::new(objects)
}

async fn sync(state: &mut DaemonSets) -> Option<Duration> {
    state.sync(&key()).await.expect("sync")
}

async fn pods(state: &DaemonSets) -> Vec<Value> {
    let mut pods = namespace_objects(&state.objects, rts().1, NS)
        .await
        .expect("pods");
    pods.sort_by_key(|p| target_node(p).unwrap_or_default());
    pods
}

/// `(node, hash)` of each pod not being deleted.
async fn placement(state: &DaemonSets) -> Vec<(String, String)> {
    pods(state)
        .await
        .iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .map(|p| {
            (
                target_node(p).unwrap_or_default(),
                str_at(p, &format!("/metadata/labels/{HASH_LABEL}"))
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// The scheduler and kubelets: every pod bound to its pinned node, running
/// and ready; pods being deleted are removed.
async fn run_all(state: &DaemonSets) {
    let pods_rt = rts().1;
    for p in pods(state).await {
        let name = meta::name(&p).to_string();
        if p.pointer("/metadata/deletionTimestamp").is_some() {
            state
                .objects
                .delete(pods_rt, Some(NS), &name)
                .await
                .expect("remove");
            continue;
        }
        if str_at(&p, "/status/phase") != Some("Pending") {
            continue;
        }
        let node = target_node(&p).expect("pinned");
        state
            .objects
            .update(pods_rt, Some(NS), &name, |pod| {
                pod["spec"]["nodeName"] = json!(node);
                pod["status"] = json!({"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
                true
            })
            .await
            .expect("run");
    }
}

async fn ds_object(state: &DaemonSets) -> Value {
    state
        .objects
        .get(rts().0, Some(NS), "mon")
        .await
        .expect("daemon set")
}

async fn status(state: &DaemonSets) -> Value {
    ds_object(state).await["status"].clone()
}

async fn revisions(state: &DaemonSets) -> Vec<(i64, String)> {
    let rt = kinds::CONTROLLERREVISIONS;
    let mut out: Vec<(i64, String)> = namespace_objects(&state.objects, rt, NS)
        .await
        .expect("revisions")
        .iter()
        .map(|r| {
            (
                revision::number(r),
                revision::hash_of(r).unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn events(state: &DaemonSets) -> Vec<(String, String)> {
    let rt = kinds::EVENTS;
    let (items, _) = state.objects.list(rt).await.expect("events");
    items
        .iter()
        .map(|e| {
            (
                str_at(e, "/reason").unwrap_or_default().to_string(),
                str_at(e, "/message").unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn is_deleting(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_some()
}

/// How many pods `which` picks.
async fn count_pods(state: &DaemonSets, which: fn(&Value) -> bool) -> usize {
    pods(state).await.iter().filter(|p| which(p)).count()
}

/// The nodes with a (not deleting) daemon pod, in order.
async fn placed_nodes(state: &DaemonSets) -> Vec<String> {
    let placed = placement(state).await;
    placed.into_iter().map(|(node, _)| node).collect()
}

async fn label_node(state: &DaemonSets, node: &str, disk: &str) {
    state
        .objects
        .update(rts().2, None, node, |n| {
            n["metadata"]["labels"]["disk"] = json!(disk);
            true
        })
        .await
        .expect("label");
}

/// Changes the template as the API server would record it.
async fn set_command(state: &DaemonSets, command: Value) {
    state
        .objects
        .update(rts().0, Some(NS), "mon", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["command"] = command.clone();
            let g = d["metadata"]["generation"].as_i64().unwrap_or(1);
            d["metadata"]["generation"] = json!(g + 1);
            let t: i64 = d["metadata"]["annotations"][TEMPLATE_GENERATION]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or(1);
            d["metadata"]["annotations"][TEMPLATE_GENERATION] = json!((t + 1).to_string());
            true
        })
        .await
        .expect("update");
}

fn rolling() -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
}

#[tokio::test]
async fn one_pod_per_labelled_node_made_as_upstream_makes_them() {
    let mut state = setup(rolling()).await;
    sync(&mut state).await;
    let pods = pods(&state).await;
    let nodes: Vec<String> = pods.iter().filter_map(target_node).collect();
    assert_eq!(nodes, ["n1", "n2"]);
    let revs = revisions(&state).await;
    assert_eq!(revs.len(), 1);
    let (number, hash) = &revs[0];
    assert_eq!(*number, 1);
    for p in &pods {
        let name = meta::name(p).to_string();
        assert!(
            name.starts_with("mon-") && name.len() == "mon-".len() + 5,
            "{name}"
        );
        let labels = &p["metadata"]["labels"];
        assert_eq!(labels[HASH_LABEL], json!(hash));
        assert_eq!(labels[GENERATION_LABEL], "1");
        assert_eq!(labels["app"], "mon");
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(
            (
                owner["kind"].clone(),
                owner["controller"].clone(),
                owner["blockOwnerDeletion"].clone()
            ),
            (json!("DaemonSet"), json!(true), json!(true))
        );
        let tolerations = p["spec"]["tolerations"].as_array().expect("tolerations");
        assert!(
            tolerations
                .iter()
                .any(|t| t["key"] == "node.kubernetes.io/unreachable"
                    && t["effect"] == "NoExecute"
                    && t.get("tolerationSeconds").is_none())
        );
        assert_eq!(tolerations.len(), 6, "{tolerations:?}");
        // Unbound: the scheduler places it by the pin.
        assert!(p["spec"].get("nodeName").is_none());
    }
    let ds = ds_object(&state).await;
    let revision_name = format!("mon-{hash}");
    let rt = kinds::CONTROLLERREVISIONS;
    let r = state
        .objects
        .get(rt, Some(NS), &revision_name)
        .await
        .expect("revision");
    assert_eq!(
        r["metadata"]["ownerReferences"][0]["uid"],
        ds["metadata"]["uid"]
    );
    assert!(revision::holds(&r, &ds["spec"]["template"]));
    let s = status(&state).await;
    assert_eq!(
        (
            s["desiredNumberScheduled"].clone(),
            s["currentNumberScheduled"].clone(),
            s["numberReady"].clone(),
            s["updatedNumberScheduled"].clone(),
            s["numberUnavailable"].clone(),
            s["observedGeneration"].clone()
        ),
        (json!(2), json!(2), json!(0), json!(2), json!(2), json!(1))
    );
    assert!(s.get("numberAvailable").is_none(), "zero is omitted: {s}");
    let created = events(&state)
        .await
        .into_iter()
        .filter(|(r, m)| r == "SuccessfulCreate" && m.starts_with("Created pod: mon-"))
        .count();
    assert_eq!(created, 2);

    // Running: ready and available; a second sync changes nothing.
    run_all(&state).await;
    sync(&mut state).await;
    assert_eq!(placement(&state).await.len(), 2);
    let s = status(&state).await;
    assert_eq!(
        (s["numberReady"].clone(), s["numberAvailable"].clone()),
        (json!(2), json!(2))
    );
    assert!(s.get("numberUnavailable").is_none());
    assert_eq!(revisions(&state).await.len(), 1);
}

#[tokio::test]
async fn labelling_a_node_adds_its_pod_and_unlabelling_removes_it() {
    let mut state = setup(rolling()).await;
    sync(&mut state).await;
    run_all(&state).await;
    label_node(&state, "n3", "ssd").await;
    sync(&mut state).await;
    let nodes = placed_nodes(&state).await;
    assert_eq!(nodes, ["n1", "n2", "n3"]);
    run_all(&state).await;
    label_node(&state, "n1", "hdd").await;
    sync(&mut state).await;
    let mut on_n1 = pods(&state).await;
    on_n1.retain(|p| target_node(p).as_deref() == Some("n1"));
    assert_eq!(on_n1.len(), 1);
    assert!(
        on_n1[0].pointer("/metadata/deletionTimestamp").is_some(),
        "graceful delete"
    );
    assert!(
        events(&state)
            .await
            .iter()
            .any(|(r, m)| r == "SuccessfulDelete"
                && *m == format!("Deleted pod: {}", meta::name(&on_n1[0])))
    );
    run_all(&state).await;
    sync(&mut state).await;
    let nodes = placed_nodes(&state).await;
    assert_eq!(nodes, ["n2", "n3"]);
    assert_eq!(status(&state).await["desiredNumberScheduled"], 2);
}

#[tokio::test]
async fn a_rolling_update_replaces_one_node_at_a_time_and_undo_reuses_revision_one() {
    let mut state = setup(rolling()).await;
    label_node(&state, "n3", "ssd").await;
    sync(&mut state).await;
    run_all(&state).await;
    sync(&mut state).await;
    let first = revisions(&state).await[0].1.clone();
    set_command(&state, json!(["sleep", "7200"])).await;
    let mut seen_steps = 0;
    for _ in 0..20 {
        sync(&mut state).await;
        let deleting = count_pods(&state, is_deleting).await;
        let not_running =
            count_pods(&state, |p| str_at(p, "/status/phase") == Some("Pending")).await;
        assert!(
            deleting + not_running <= 1,
            "maxUnavailable 1: {:?}",
            placement(&state).await
        );
        // A second sync in the same state does not take another node.
        sync(&mut state).await;
        let deleting_again = count_pods(&state, is_deleting).await;
        assert_eq!(deleting, deleting_again);
        if deleting > 0 {
            seen_steps += 1;
        }
        run_all(&state).await;
        let revs = revisions(&state).await;
        let now = placement(&state).await;
        if now.len() == 3 && now.iter().all(|(_, h)| *h == revs[1].1) {
            break;
        }
    }
    assert_eq!(seen_steps, 3, "one deletion per node");
    let revs = revisions(&state).await;
    assert_eq!(revs.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2]);
    let second = revs[1].1.clone();
    sync(&mut state).await;
    let s = status(&state).await;
    assert_eq!(
        (
            s["updatedNumberScheduled"].clone(),
            s["numberAvailable"].clone(),
            s["observedGeneration"].clone()
        ),
        (json!(3), json!(3), json!(2))
    );
    let by_generation = pods(&state)
        .await
        .iter()
        .all(|p| p["metadata"]["labels"][GENERATION_LABEL] == "2");
    assert!(by_generation);

    // `rollout undo`: the first template again is revision 3, same hash.
    set_command(&state, json!(["sleep", "3600"])).await;
    for _ in 0..20 {
        sync(&mut state).await;
        run_all(&state).await;
        let now = placement(&state).await;
        if now.len() == 3 && now.iter().all(|(_, h)| *h == first) {
            break;
        }
    }
    assert_eq!(revisions(&state).await, [(2, second), (3, first)]);
    assert_eq!(placement(&state).await.len(), 3);
}

#[tokio::test]
async fn history_is_pruned_to_the_limit() {
    let mut state = setup(rolling()).await;
    state
        .objects
        .update(rts().0, Some(NS), "mon", |d| {
            d["spec"]["revisionHistoryLimit"] = json!(1);
            true
        })
        .await
        .expect("limit");
    sync(&mut state).await;
    for i in 0..4 {
        set_command(&state, json!(["sleep", format!("{}", 100 + i)])).await;
        for _ in 0..10 {
            sync(&mut state).await;
            run_all(&state).await;
        }
    }
    let revs = revisions(&state).await;
    assert_eq!(
        revs.iter().map(|r| r.0).collect::<Vec<_>>(),
        [4, 5],
        "{revs:?}"
    );
}

#[tokio::test]
async fn on_delete_replaces_only_deleted_pods() {
    let mut state = setup(json!({"type": "OnDelete"})).await;
    sync(&mut state).await;
    run_all(&state).await;
    let before = placement(&state).await;
    set_command(&state, json!(["sleep", "7200"])).await;
    sync(&mut state).await;
    run_all(&state).await;
    assert_eq!(placement(&state).await, before, "nothing replaced");
    let victim = meta::name(&pods(&state).await[0]).to_string();
    state.objects.delete_pod(NS, &victim).await.expect("delete");
    run_all(&state).await;
    sync(&mut state).await;
    let after = placement(&state).await;
    assert_eq!(after[1], before[1]);
    assert_eq!(after[0].0, before[0].0);
    assert_ne!(after[0].1, before[0].1, "the new pod has the new template");
    assert_eq!(status(&state).await["updatedNumberScheduled"], 1);
}

#[tokio::test(start_paused = true)]
async fn failed_pods_are_replaced_on_the_same_node_with_back_off() {
    let mut state = setup(rolling()).await;
    sync(&mut state).await;
    run_all(&state).await;
    let objects = state.objects.clone();
    let fail = move |name: String| {
        let objects = objects.clone();
        async move {
            objects
                .update(rts().1, Some(NS), &name, |p| {
                    p["status"]["phase"] = json!("Failed");
                    true
                })
                .await
                .expect("fail");
        }
    };
    let on_n1 = meta::name(&pods(&state).await[0]).to_string();
    fail(on_n1.clone()).await;
    sync(&mut state).await;
    assert!(
        events(&state)
            .await
            .iter()
            .any(|(r, m)| r == "FailedDaemonPod"
                && *m
                    == format!(
                        "Found failed daemon pod default/{on_n1} on node n1, will try to kill it"
                    ))
    );
    // Failed and being deleted, it no longer holds the node.
    sync(&mut state).await;
    let fresh: Vec<Value> = pods(&state)
        .await
        .into_iter()
        .filter(|p| target_node(p).as_deref() == Some("n1") && meta::name(p) != on_n1)
        .collect();
    assert_eq!(fresh.len(), 1);
    run_all(&state).await;
    // It fails at once again: within the second, it is left alone.
    fail(meta::name(&fresh[0]).to_string()).await;
    let again = sync(&mut state).await;
    assert!(
        again.is_some_and(|d| d <= Duration::from_secs(1)),
        "{again:?}"
    );
    assert!(
        pods(&state)
            .await
            .iter()
            .all(|p| p.pointer("/metadata/deletionTimestamp").is_none())
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    sync(&mut state).await;
    // Deleted now (a finished pod needs no grace: it may be gone at once).
    let second = meta::name(&fresh[0]).to_string();
    let left = pods(&state).await;
    assert!(
        left.iter()
            .filter(|p| meta::name(p) == second)
            .all(|p| p.pointer("/metadata/deletionTimestamp").is_some()),
        "{left:?}"
    );
}

#[tokio::test]
async fn an_unreachable_node_keeps_its_pod_and_a_deleted_node_loses_it() {
    let mut state = setup(rolling()).await;
    sync(&mut state).await;
    run_all(&state).await;
    let before = pods(&state).await;
    state
        .objects
        .update(rts().2, None, "n2", |n| {
            n["spec"]["taints"] = json!([
                {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
                {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]);
            true
        })
        .await
        .expect("taint");
    sync(&mut state).await;
    let after = pods(&state).await;
    assert_eq!(
        after
            .iter()
            .map(|v| meta::name(v).to_string())
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|v| meta::name(v).to_string())
            .collect::<Vec<_>>()
    );
    assert!(
        after
            .iter()
            .all(|p| p.pointer("/metadata/deletionTimestamp").is_none())
    );
    let s = status(&state).await;
    assert_eq!(
        (
            s["desiredNumberScheduled"].clone(),
            s["numberMisscheduled"].clone()
        ),
        (json!(1), json!(1))
    );
    state
        .objects
        .delete(rts().2, None, "n2")
        .await
        .expect("delete node");
    sync(&mut state).await;
    let nodes: Vec<String> = pods(&state).await.iter().filter_map(target_node).collect();
    assert_eq!(nodes, ["n1"]);
}

#[tokio::test]
async fn orphans_are_adopted_and_relabelled_pods_released_and_replaced() {
    let mut state = setup(rolling()).await;
    let pods_rt = rts().1;
    state
        .objects
        .create(
            pods_rt,
            json!({"metadata": {"name": "stray", "namespace": NS, "labels": {"app": "mon"}},
                   "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .await
        .expect("stray");
    sync(&mut state).await;
    let stray = state
        .objects
        .get(pods_rt, Some(NS), "stray")
        .await
        .expect("stray");
    assert_eq!(stray["metadata"]["ownerReferences"][0]["name"], "mon");
    // It holds n1: only n2 got a new pod.
    assert_eq!(pods(&state).await.len(), 2);
    run_all(&state).await;
    let on_n2 = meta::name(&pods(&state).await[1]).to_string();
    state
        .objects
        .update(pods_rt, Some(NS), &on_n2, |p| {
            p["metadata"]["labels"]["app"] = json!("no-app");
            true
        })
        .await
        .expect("relabel");
    sync(&mut state).await;
    let released = state
        .objects
        .get(pods_rt, Some(NS), &on_n2)
        .await
        .expect("released");
    assert!(released["metadata"].get("ownerReferences").is_none());
    assert!(
        released.pointer("/metadata/deletionTimestamp").is_none(),
        "left running"
    );
    let n2_pods = pods(&state)
        .await
        .into_iter()
        .filter(|p| target_node(p).as_deref() == Some("n2"))
        .count();
    assert_eq!(n2_pods, 2, "the released one and its replacement");
}
