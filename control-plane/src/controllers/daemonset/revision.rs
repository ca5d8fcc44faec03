//! A DaemonSet's history: one apps/v1 ControllerRevision per pod template
//! it has had (`<daemonset>-<hash>`), whose `data` is the strategic merge
//! patch that restores that template and whose `revision` orders them.
//! As upstream's `constructHistory`: the revision matching the current
//! template is the current one (renumbered newest after a rollback), a
//! new template gets a new revision, and old ones beyond
//! `revisionHistoryLimit` that no pod still uses are pruned. `kubectl
//! rollout history|undo ds` read and apply these objects as they are.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tracing::{debug, info};

use super::DaemonSetError;
use super::plan::HASH_LABEL;
use crate::controllers::fields::{Named, create_named, object_at, set_collision_count};
use crate::controllers::template_hash::template_hash;
use crate::meta;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::StoreError;

/// `revision` of a ControllerRevision.
pub fn number(revision: &Value) -> i64 {
    revision
        .get("revision")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// The hash label of a ControllerRevision.
pub fn hash_of(revision: &Value) -> Option<&str> {
    revision
        .pointer("/metadata/labels")
        .and_then(|l| l.get(HASH_LABEL))
        .and_then(Value::as_str)
}

/// Upstream's `getPatch`: `{"spec":{"template":{"$patch":"replace",...}}}`.
/// Served with keys sorted and compact, these are the bytes kubectl
/// computes from the DaemonSet (Go's encoding of the template, which since
/// Kubernetes 1.34 omits the empty `creationTimestamp`): `kubectl rollout
/// undo` compares them to skip a rollback to the current template.
pub fn patch_of(template: &Value) -> Value {
    let mut t = template.clone();
    if !t.is_object() {
        t = json!({});
    }
    t["$patch"] = json!("replace");
    json!({"spec": {"template": t}})
}

/// Upstream's `Match`: whether `revision` holds `template`.
pub fn holds(revision: &Value, template: &Value) -> bool {
    revision.get("data") == Some(&patch_of(template))
}

/// The name and hash of the revision of `template` (upstream's
/// `ComputeHash` with the DaemonSet's `collisionCount`).
pub fn name_and_hash(ds_name: &str, template: &Value, collisions: Option<u32>) -> (String, String) {
    // The Deployment hash ignores a `pod-template-hash` label, which a
    // DaemonSet's template does not carry: the same FNV-32a hash.
    let hash = template_hash(template, collisions);
    (format!("{ds_name}-{hash}"), hash)
}

/// Of several revisions holding the current template, the one kept (the
/// highest revision, as upstream's `dedupCurHistories`) and the others.
pub fn keep_newest(mut current: Vec<Value>) -> Option<(Value, Vec<Value>)> {
    current.sort_by_key(|r| std::cmp::Reverse(number(r)));
    let mut it = current.into_iter();
    let keep = it.next()?;
    Some((keep, it.collect()))
}

/// Upstream's `cleanupHistory`: the old revisions to delete so that at most
/// `limit` remain, oldest first, sparing those a live pod was made from.
pub fn to_prune(old: &[Value], limit: i64, live_hashes: &BTreeSet<String>) -> Vec<String> {
    let mut excess = old.len() as i64 - limit.max(0);
    if excess <= 0 {
        return Vec::new();
    }
    let mut sorted: Vec<&Value> = old.iter().collect();
    sorted.sort_by_key(|r| number(r));
    let mut out = Vec::new();
    for r in sorted {
        if excess <= 0 {
            break;
        }
        if hash_of(r).is_some_and(|h| live_hashes.contains(h)) {
            continue;
        }
        out.push(meta::name(r).to_string());
        excess -= 1;
    }
    out
}

/// A new ControllerRevision of `ds` for its current template.
pub fn new_revision(ds: &Value, name: &str, hash: &str, revision: i64) -> Value {
    let template = ds.pointer("/spec/template").cloned().unwrap_or_default();
    let mut labels = object_at(&template, "/metadata/labels");
    labels[HASH_LABEL] = json!(hash);
    let mut metadata = json!({
        "name": name,
        "namespace": ds.pointer("/metadata/namespace"),
        "labels": labels,
        "ownerReferences": [super::owner_reference(ds)],
    });
    if let Some(a) = ds
        .pointer("/metadata/annotations")
        .filter(|a| a.is_object())
    {
        metadata["annotations"] = a.clone();
    }
    json!({"metadata": metadata, "data": patch_of(&template), "revision": revision})
}

/// What [`construct`] found.
#[derive(Debug)]
pub struct History {
    /// The hash of the current revision (the pods' `controller-revision-hash`).
    pub hash: String,
    /// The other revisions.
    pub old: Vec<Value>,
}

/// Upstream's `constructHistory`: finds or creates the current revision
/// among `revisions` (those `ds` controls) and makes it the newest;
/// `pods` (the DaemonSet's) are relabelled when duplicates are merged.
pub async fn construct(
    objects: &Objects,
    ds: &Value,
    revisions: Vec<Value>,
    pods: &[&Value],
) -> Result<History, DaemonSetError> {
    let rt = kinds::CONTROLLERREVISIONS;
    let namespace = ds
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    let template = ds.pointer("/spec/template").cloned().unwrap_or_default();
    let (mut current, mut old) = (Vec::new(), Vec::new());
    for mut r in revisions {
        // A revision made by someone else may lack the label: upstream
        // labels it with its name (unique, unlike a recomputed hash).
        if hash_of(&r).is_none() {
            let name = meta::name(&r).to_string();
            let suffix = name.clone();
            if let Some(updated) = objects
                .update(rt, Some(&namespace), &name, |obj| {
                    if !obj["metadata"]["labels"].is_object() {
                        obj["metadata"]["labels"] = json!({});
                    }
                    obj["metadata"]["labels"][HASH_LABEL] = json!(suffix.clone());
                    true
                })
                .await?
            {
                r = updated;
            }
        }
        if holds(&r, &template) {
            current.push(r);
        } else {
            old.push(r);
        }
    }
    let next = old.iter().map(number).max().unwrap_or(0) + 1;
    let kept = match keep_newest(current) {
        None => snapshot(objects, ds, &template, next).await?,
        Some((keep, duplicates)) => {
            let keep_hash = hash_of(&keep).unwrap_or_default().to_string();
            for dup in duplicates {
                relabel_pods(objects, &namespace, pods, hash_of(&dup), &keep_hash).await?;
                objects
                    .delete(rt, Some(&namespace), meta::name(&dup))
                    .await?;
                debug!(revision = %meta::name(&dup).to_string(), "deleted a duplicate of the current revision");
            }
            if number(&keep) < next {
                objects
                    .update(rt, Some(&namespace), meta::name(&keep), |obj| {
                        obj["revision"] = json!(next);
                        true
                    })
                    .await?
                    .unwrap_or(keep)
            } else {
                keep
            }
        }
    };
    Ok(History {
        hash: hash_of(&kept).unwrap_or_default().to_string(),
        old,
    })
}

/// Moves the pods of a merged duplicate revision to the one kept.
async fn relabel_pods(
    objects: &Objects,
    namespace: &str,
    pods: &[&Value],
    from: Option<&str>,
    to: &str,
) -> Result<(), DaemonSetError> {
    let Some(from) = from else { return Ok(()) };
    let rt = kinds::PODS;
    for pod in pods {
        let labelled = pod
            .pointer("/metadata/labels")
            .and_then(|l| l.get(HASH_LABEL))
            .and_then(Value::as_str)
            == Some(from);
        if !labelled {
            continue;
        }
        let result = objects
            .update(rt, Some(namespace), meta::name(pod), |p| {
                p["metadata"]["labels"][HASH_LABEL] = json!(to);
                true
            })
            .await;
        match result {
            Ok(_) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Creates the revision of `template` numbered `revision`. A revision of
/// that name with another template is a hash collision: the DaemonSet's
/// `status.collisionCount` is raised so the next sync hashes differently.
async fn snapshot(
    objects: &Objects,
    ds: &Value,
    template: &Value,
    revision: i64,
) -> Result<Value, DaemonSetError> {
    let rt = kinds::CONTROLLERREVISIONS;
    let ds_name = meta::name(ds).to_string();
    let namespace = ds
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    let collisions = ds
        .pointer("/status/collisionCount")
        .and_then(Value::as_u64)
        .and_then(|c| u32::try_from(c).ok());
    let (name, hash) = name_and_hash(&ds_name, template, collisions);
    let new = new_revision(ds, &name, &hash, revision);
    match create_named(objects, rt, (&namespace, &name), new).await? {
        Named::Created(created) => {
            info!(daemonset = %format!("{namespace}/{ds_name}"), %revision, %name, "new controller revision");
            Ok(created)
        }
        Named::Taken(existing) => {
            if holds(&existing, template) {
                return Ok(existing);
            }
            let daemonsets = kinds::DAEMONSETS;
            let uid = ds.pointer("/metadata/uid").cloned();
            objects
                .update(daemonsets, Some(&namespace), &ds_name, |obj| {
                    let now = obj
                        .pointer("/status/collisionCount")
                        .and_then(Value::as_u64)
                        .and_then(|c| u32::try_from(c).ok());
                    // Raised already by someone who saw the same collision.
                    if obj.pointer("/metadata/uid").cloned() != uid || now != collisions {
                        return false;
                    }
                    set_collision_count(obj, collisions.unwrap_or(0).saturating_add(1))
                })
                .await?;
            Err(DaemonSetError::Collision(name))
        }
    }
}

/// Deletes the old revisions [`to_prune`] picks.
pub async fn cleanup(
    objects: &Objects,
    namespace: &str,
    old: &[Value],
    limit: i64,
    live_hashes: &BTreeSet<String>,
) -> Result<(), DaemonSetError> {
    let rt = kinds::CONTROLLERREVISIONS;
    for name in to_prune(old, limit, live_hashes) {
        debug!(revision = %name, "pruning a revision beyond the history limit");
        objects.delete(rt, Some(namespace), &name).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(name: &str, hash: &str, number: i64) -> Value {
        json!({"metadata": {"name": name, "labels": {HASH_LABEL: hash}}, "revision": number})
    }

    #[test]
    fn the_patch_replaces_the_template_and_encodes_like_kubectl() {
        let template = json!({"metadata": {"labels": {"app": "mon"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        let patch = patch_of(&template);
        assert_eq!(
            serde_json::to_string(&patch).expect("json"),
            r#"{"spec":{"template":{"$patch":"replace","metadata":{"labels":{"app":"mon"}},"spec":{"containers":[{"image":"busybox","name":"c"}]}}}}"#
        );
        let r = json!({"data": patch});
        assert!(holds(&r, &template));
        let mut other = template.clone();
        other["spec"]["containers"][0]["image"] = json!("webapp:v2");
        assert!(!holds(&r, &other));
    }

    #[test]
    fn revisions_are_named_by_the_template_hash() {
        let template = json!({"spec": {"containers": [{"name": "c"}]}});
        let (name, hash) = name_and_hash("mon", &template, None);
        assert_eq!(name, format!("mon-{hash}"));
        assert_eq!(name_and_hash("mon", &template, None).1, hash, "stable");
        assert_ne!(name_and_hash("mon", &template, Some(1)).1, hash);
    }

    #[test]
    fn the_newest_duplicate_is_kept() {
        let (keep, rest) = keep_newest(vec![
            rev("a", "ha", 2),
            rev("b", "hb", 5),
            rev("c", "hc", 1),
        ])
        .expect("some");
        assert_eq!(meta::name(&keep), "b");
        assert_eq!(rest.iter().map(meta::name).collect::<Vec<_>>(), ["a", "c"]);
        assert!(keep_newest(Vec::new()).is_none());
    }

    #[test]
    fn pruning_keeps_the_limit_and_revisions_in_use() {
        let old = vec![
            rev("r3", "h3", 3),
            rev("r1", "h1", 1),
            rev("r2", "h2", 2),
            rev("r4", "h4", 4),
        ];
        let none = BTreeSet::new();
        assert_eq!(to_prune(&old, 2, &none), ["r1", "r2"]);
        assert!(to_prune(&old, 10, &none).is_empty());
        let live: BTreeSet<String> = ["h1".to_string()].into();
        assert_eq!(to_prune(&old, 2, &live), ["r2", "r3"]);
        assert_eq!(to_prune(&old, 0, &none).len(), 4);
    }

    #[test]
    fn a_new_revision_carries_the_template_labels_and_an_owner() {
        let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "mon", "namespace": "lab", "uid": "u1",
                         "annotations": {"kubernetes.io/change-cause": "v2"}},
            "spec": {"template": {"metadata": {"labels": {"app": "mon"}}, "spec": {}}}});
        let r = new_revision(&ds, "mon-abc", "abc", 3);
        assert_eq!(
            r["metadata"]["labels"],
            json!({"app": "mon", HASH_LABEL: "abc"})
        );
        assert_eq!(r["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(r["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(
            r["metadata"]["annotations"]["kubernetes.io/change-cause"],
            "v2"
        );
        assert_eq!(r["revision"], 3);
        assert!(holds(&r, &ds["spec"]["template"]));
    }
}
