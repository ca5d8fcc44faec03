//! ControllerRevisions: the history of a StatefulSet's pod templates, as
//! upstream keeps it (and `kubectl rollout history|undo` reads it). Each
//! revision holds the strategic merge patch that puts its template back,
//! `{"spec":{"template":{…,"$patch":"replace"}}}`, encoded as Go's
//! `json.Marshal` of a map does (sorted keys, HTML characters escaped) so
//! that kubectl's own rendering of the set compares equal to it; it is
//! named `<set>-<hash>` with the hash upstream's `HashControllerRevision`
//! computes (FNV-1 of that encoding and the collision count).

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::controllers::fields::object_at;
use crate::controllers::template_hash::{canonical, safe_encode};
use crate::meta;

/// The label of a revision with its hash.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// A revision as the sync sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    /// `metadata.name`.
    pub name: String,
    /// `revision`.
    pub number: i64,
    /// `data`.
    pub data: Value,
}

impl Known {
    /// Reads a ControllerRevision object.
    pub fn of(obj: &Value) -> Self {
        Self {
            name: meta::name(obj).to_string(),
            number: obj.get("revision").and_then(Value::as_i64).unwrap_or(0),
            data: obj.get("data").cloned().unwrap_or(Value::Null),
        }
    }
}

/// The patch a revision of `set`'s current template holds (upstream's
/// `getPatch`). An unset `creationTimestamp` is left out, as Go's encoding
/// of the API types does since Kubernetes 1.34 (`omitzero`), so kubectl
/// 1.34+ finds a revision equal to the set's template byte for byte.
pub fn patch_of(set: &Value) -> Value {
    let mut template = object_at(set, "/spec/template");
    if let Some(m) = template.get_mut("metadata").and_then(Value::as_object_mut) {
        m.retain(|_, v| !v.is_null());
    }
    template["$patch"] = json!("replace");
    json!({"spec": {"template": template}})
}

/// The set with the template of a revision (upstream's `ApplyRevision`).
pub fn applied(set: &Value, data: &Value) -> Value {
    let mut out = set.clone();
    if let Some(mut template) = data.pointer("/spec/template").cloned() {
        if let Some(m) = template.as_object_mut() {
            m.remove("$patch");
        }
        if let Some(m) = template.get_mut("metadata").and_then(Value::as_object_mut) {
            m.retain(|_, v| !v.is_null());
        }
        out["spec"]["template"] = template;
    }
    out
}

/// `v` as Go's `encoding/json` writes a `map[string]interface{}`.
pub fn go_json(v: &Value) -> String {
    let mut out = String::new();
    canonical(v, &mut out);
    // These characters only occur inside strings, where Go escapes them.
    out.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// FNV-1 (32 bits), Go's `fnv.New32`.
fn fnv1_32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        h.wrapping_mul(0x0100_0193) ^ u32::from(*b)
    })
}

/// Upstream's `HashControllerRevision` of `data` with `collision_count`.
pub fn hash(data: &Value, collision_count: u32) -> String {
    let mut bytes = go_json(data).into_bytes();
    bytes.extend_from_slice(collision_count.to_string().as_bytes());
    safe_encode(&fnv1_32(&bytes).to_string())
}

/// `<set>-<hash>` (the set's name cut to 223 characters, as upstream).
pub fn name(set: &str, hash: &str) -> String {
    let prefix: String = set.chars().take(223).collect();
    format!("{prefix}-{hash}")
}

/// What the sync does about the update revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The newest revision already holds the template.
    Latest(String),
    /// An older revision holds it (a rollback): it becomes the newest, `to`.
    Renumber {
        /// Its name.
        name: String,
        /// Its new number.
        to: i64,
    },
    /// No revision holds it: create revision `number`.
    Create {
        /// Its number.
        number: i64,
    },
}

/// Upstream's `getStatefulSetRevisions` decision for `data` given the
/// existing revisions, sorted by number.
pub fn choose(revisions: &[Known], data: &Value) -> Choice {
    let next = revisions.iter().map(|r| r.number).max().unwrap_or(0) + 1;
    let Some(equal) = revisions.iter().rev().find(|r| &r.data == data) else {
        return Choice::Create { number: next };
    };
    match revisions.last() {
        Some(latest) if latest.name == equal.name => Choice::Latest(equal.name.clone()),
        _ => Choice::Renumber {
            name: equal.name.clone(),
            to: next,
        },
    }
}

/// Revisions to delete: beyond `limit`, the oldest that neither the
/// status nor any pod uses (upstream's `truncateHistory`).
pub fn history_to_delete(revisions: &[Known], live: &HashSet<String>, limit: usize) -> Vec<String> {
    let history: Vec<&Known> = revisions
        .iter()
        .filter(|r| !live.contains(&r.name))
        .collect();
    let excess = history.len().saturating_sub(limit);
    history
        .into_iter()
        .take(excess)
        .map(|r| r.name.clone())
        .collect()
}

/// Sorts revisions as upstream's `SortControllerRevisions`: by number, then name.
pub fn sort(revisions: &mut [Known]) {
    revisions.sort_by(|a, b| a.number.cmp(&b.number).then(a.name.cmp(&b.name)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(image: &str) -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 3, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    fn known(name: &str, number: i64, image: &str) -> Known {
        Known {
            name: name.into(),
            number,
            data: patch_of(&set(image)),
        }
    }

    #[test]
    fn fnv1_matches_the_reference_vectors() {
        let vectors: [(&[u8], u32); 3] = [
            (b"", 0x811c_9dc5),
            (b"a", 0x050c_5d7e),
            (b"foobar", 0x31f0_b262),
        ];
        for (input, hash) in vectors {
            assert_eq!(fnv1_32(input), hash, "{input:?}");
        }
    }

    #[test]
    fn the_patch_replaces_the_template_and_encodes_like_go() {
        let data = patch_of(&set("a<b>&c"));
        assert_eq!(
            go_json(&data),
            r#"{"spec":{"template":{"$patch":"replace","metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"image":"a\u003cb\u003e\u0026c","name":"c"}]}}}}"#
        );
        let back = applied(&set("old"), &data);
        assert_eq!(back["spec"]["template"], set("a<b>&c")["spec"]["template"]);
        assert_eq!(back["spec"]["replicas"], 3);
    }

    #[test]
    fn hashes_depend_on_the_template_and_the_collision_count() {
        let a = patch_of(&set("v1"));
        let b = patch_of(&set("v2"));
        assert_eq!(hash(&a, 0), hash(&a.clone(), 0));
        assert_ne!(hash(&a, 0), hash(&b, 0));
        assert_ne!(hash(&a, 0), hash(&a, 1));
        assert_eq!(name("web", "abc"), "web-abc");
    }

    #[test]
    fn the_update_revision_is_found_reused_or_created() {
        let revisions = vec![known("web-1", 1, "v1"), known("web-2", 2, "v2")];
        assert_eq!(
            choose(&revisions, &patch_of(&set("v2"))),
            Choice::Latest("web-2".into())
        );
        // Back to v1: the old revision becomes number 3 (kubectl rollout undo).
        assert_eq!(
            choose(&revisions, &patch_of(&set("v1"))),
            Choice::Renumber {
                name: "web-1".into(),
                to: 3
            }
        );
        assert_eq!(
            choose(&revisions, &patch_of(&set("v3"))),
            Choice::Create { number: 3 }
        );
        assert_eq!(
            choose(&[], &patch_of(&set("v1"))),
            Choice::Create { number: 1 }
        );
    }

    #[test]
    fn history_keeps_live_revisions_and_the_newest_beyond_the_limit() {
        let revisions: Vec<Known> = (1..=5)
            .map(|i| known(&format!("web-{i}"), i, &format!("v{i}")))
            .collect();
        let live: HashSet<String> = ["web-5".to_string(), "web-1".to_string()].into();
        assert_eq!(
            history_to_delete(&revisions, &live, 1),
            ["web-2".to_string(), "web-3".to_string()]
        );
        assert!(history_to_delete(&revisions, &live, 10).is_empty());
    }
}
