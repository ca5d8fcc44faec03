//! Field sets, comparisons, merges and removals over JSON objects.
//!
//! Upstream walks objects with the OpenAPI schema of their type; Skiff
//! knows the few facts that matter from field names instead: which lists
//! are associative (the strategic-merge keys, plus `protocol` for ports as
//! upstream's `listMapKey`s say), which are sets, and which objects are
//! atomic. Everything else is a granular object or an atomic list.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fieldset::{FieldSet, Path, PathElement};
use crate::api::patch::list_merge_key;

/// Objects upstream marks `+structType=atomic` / `+mapType=atomic`: owned
/// and replaced as a whole.
const ATOMIC_OBJECTS: &[&str] = &[
    "selector",
    "nodeSelector",
    "labelSelector",
    "namespaceSelector",
];

/// How a list is merged and owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ListType {
    /// Items identified by these key fields.
    Map(Vec<&'static str>),
    /// Items identified by their value.
    Set,
    /// The whole list is one value.
    Atomic,
}

fn list_type(field: Option<&str>, items: &[Value]) -> ListType {
    let Some(field) = field else {
        return ListType::Atomic;
    };
    match field {
        "finalizers" => ListType::Set,
        // Strategic merge patches merge these by key, but upstream's schema
        // makes them atomic for apply.
        "tolerations" | "volumeClaimTemplates" => ListType::Atomic,
        _ => match list_merge_key(field, items) {
            Some(key @ ("containerPort" | "port")) => ListType::Map(vec![key, "protocol"]),
            Some(key) => ListType::Map(vec![key]),
            None => ListType::Atomic,
        },
    }
}

fn atomic_object(field: Option<&str>) -> bool {
    field.is_some_and(|f| ATOMIC_OBJECTS.contains(&f))
}

/// Key fields upstream's schema defaults, so an item that leaves them out
/// still has its full key.
fn key_default(key: &str) -> Option<Value> {
    (key == "protocol").then(|| Value::String("TCP".into()))
}

/// The path element of item `index` of a list of type `list`.
fn item_element(list: &ListType, index: usize, item: &Value) -> PathElement {
    match list {
        ListType::Set => PathElement::value(item),
        ListType::Map(keys) => {
            let defaults: Vec<Option<Value>> = keys
                .iter()
                .map(|k| match item.get(*k) {
                    Some(v) if !v.is_null() => None,
                    _ => key_default(k),
                })
                .collect();
            let fields: Option<Vec<(&str, &Value)>> = keys
                .iter()
                .zip(&defaults)
                .map(|(k, d)| {
                    item.get(*k)
                        .filter(|v| !v.is_null())
                        .or(d.as_ref())
                        .map(|v| (*k, v))
                })
                .collect();
            match fields {
                Some(fields) => PathElement::key(&fields),
                // An item without its key can only be told apart by position.
                None => PathElement::Index(index),
            }
        }
        ListType::Atomic => PathElement::Index(index),
    }
}

/// The items of a list by path element, first occurrence winning, in list
/// order.
fn index_items<'a>(list: &ListType, items: &'a [Value]) -> Vec<(PathElement, &'a Value)> {
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let pe = item_element(list, i, item);
        if seen.insert(pe.clone(), ()).is_none() {
            out.push((pe, item));
        }
    }
    out
}

fn find_item<'a>(items: &[(PathElement, &'a Value)], pe: &PathElement) -> Option<&'a Value> {
    items.iter().find(|(p, _)| p == pe).map(|(_, v)| *v)
}

/// The fields `obj` sets: every leaf (scalars, atomic values, empty
/// objects) and every list item, as upstream's `ToFieldSet`.
pub fn to_field_set(obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Value::Object(fields) = obj {
        walk_fields(fields, &mut Vec::new(), &mut out);
    }
    out
}

fn walk_fields(fields: &Map<String, Value>, path: &mut Path, out: &mut FieldSet) {
    for (name, value) in fields {
        path.push(PathElement::field(name));
        walk_value(value, Some(name), path, out);
        path.pop();
    }
}

fn walk_value(value: &Value, field: Option<&str>, path: &mut Path, out: &mut FieldSet) {
    match value {
        Value::Object(fields) if !fields.is_empty() && !atomic_object(field) => {
            walk_fields(fields, path, out);
        }
        Value::Array(items) => {
            let list = list_type(field, items);
            if list == ListType::Atomic {
                out.insert(path);
                return;
            }
            for (pe, item) in index_items(&list, items) {
                path.push(pe);
                out.insert(path);
                if let Value::Object(fields) = item {
                    walk_fields(fields, path, out);
                }
                path.pop();
            }
        }
        _ => out.insert(path),
    }
}

/// What changed between two versions of an object.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Present only in the new version (nodes with children included).
    pub added: FieldSet,
    /// Leaves whose value changed.
    pub modified: FieldSet,
    /// Present only in the old version.
    pub removed: FieldSet,
}

/// Compares `old` with `new`, as upstream's `Compare`: leaves are added,
/// modified or removed; an object, list or list item is itself added or
/// removed when it appears or disappears (that is where the `.` entries
/// of `Update` managers come from).
pub fn compare(old: &Value, new: &Value) -> Comparison {
    let mut out = Comparison::default();
    compare_node(Some(old), Some(new), None, &mut Vec::new(), &mut out);
    out
}

/// What kind of node a value is, for comparing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Leaf,
    Object,
    List,
}

/// `None` for null, which fits any kind (upstream treats it so too).
fn kind(value: &Value, field: Option<&str>) -> Option<Kind> {
    match value {
        Value::Null => None,
        Value::Object(_) if !atomic_object(field) => Some(Kind::Object),
        Value::Array(items) if list_type(field, items) != ListType::Atomic => Some(Kind::List),
        _ => Some(Kind::Leaf),
    }
}

fn is_empty_container(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

fn compare_node(
    old: Option<&Value>,
    new: Option<&Value>,
    field: Option<&str>,
    path: &mut Path,
    out: &mut Comparison,
) {
    let old_kind = old.and_then(|v| kind(v, field));
    let new_kind = new.and_then(|v| kind(v, field));
    if let (Some(a), Some(b)) = (old_kind, new_kind)
        && a != b
    {
        // A different kind of value: the old one went, the new one came.
        compare_node(old, None, field, path, out);
        compare_node(None, new, field, path, out);
        return;
    }
    let node = new_kind.or(old_kind).unwrap_or(Kind::Leaf);
    // Empty (or null) on both sides is a leaf, which keeps `{}` and `[]`
    // ownable.
    if node == Kind::Leaf || (is_empty_container(old) && is_empty_container(new)) {
        match (old, new) {
            (None, Some(_)) => out.added.insert(path),
            (Some(_), None) => out.removed.insert(path),
            (Some(a), Some(b)) if a != b => out.modified.insert(path),
            _ => {}
        }
        return;
    }
    if node == Kind::Object {
        let empty = Map::new();
        let old_fields = old.and_then(Value::as_object).unwrap_or(&empty);
        let new_fields = new.and_then(Value::as_object).unwrap_or(&empty);
        let mut names: Vec<&String> = old_fields.keys().chain(new_fields.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            path.push(PathElement::field(name));
            compare_node(
                old_fields.get(name),
                new_fields.get(name),
                Some(name),
                path,
                out,
            );
            path.pop();
        }
    } else {
        let empty = Vec::new();
        let old_list = old.and_then(Value::as_array).unwrap_or(&empty);
        let new_list = new.and_then(Value::as_array).unwrap_or(&empty);
        let mut all = old_list.clone();
        all.extend(new_list.iter().cloned());
        let list = list_type(field, &all);
        let old_items = index_items(&list, old_list);
        let new_items = index_items(&list, new_list);
        let mut elements: Vec<&PathElement> = old_items
            .iter()
            .chain(new_items.iter())
            .map(|(pe, _)| pe)
            .collect();
        elements.sort();
        elements.dedup();
        for pe in elements {
            let (o, n) = (find_item(&old_items, pe), find_item(&new_items, pe));
            path.push(pe.clone());
            compare_node(o, n, None, path, out);
            path.pop();
        }
    }
    match (old, new) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        _ => {}
    }
}

/// Merges an applied configuration into the live object, as upstream's
/// apply does: objects field by field, associative lists item by item
/// (items keep upstream's order: the configuration's order, with live-only
/// items where they were), set lists as unions, everything else replaced.
pub fn merge(live: &Value, config: &Value) -> Value {
    merge_value(Some(live), config, None)
}

fn merge_value(live: Option<&Value>, config: &Value, field: Option<&str>) -> Value {
    match (live, config) {
        (Some(Value::Object(l)), Value::Object(c)) if !atomic_object(field) => {
            let mut out = l.clone();
            for (name, value) in c {
                out.insert(name.clone(), merge_value(l.get(name), value, Some(name)));
            }
            Value::Object(out)
        }
        (Some(Value::Array(l)), Value::Array(c)) => {
            let mut all = l.clone();
            all.extend(c.iter().cloned());
            match list_type(field, &all) {
                ListType::Atomic => config.clone(),
                list => Value::Array(merge_items(&list, l, c)),
            }
        }
        _ => config.clone(),
    }
}

fn merge_items(list: &ListType, live: &[Value], config: &[Value]) -> Vec<Value> {
    let l = index_items(list, live);
    let c = index_items(list, config);
    let in_config = |pe: &PathElement| find_item(&c, pe).is_some();
    let live_item = |pe: &PathElement| find_item(&l, pe);
    let shared: Vec<&PathElement> = c
        .iter()
        .map(|(pe, _)| pe)
        .filter(|pe| live_item(pe).is_some())
        .collect();
    let mut next_shared = 0;
    let mut out = Vec::with_capacity(l.len().max(c.len()));
    let (mut li, mut ci) = (0, 0);
    while li < l.len() || ci < c.len() {
        if li < l.len() && ci < c.len() && l[li].0 == c[ci].0 {
            out.push(merge_value(Some(l[li].1), c[ci].1, None));
            li += 1;
            ci += 1;
            next_shared += 1;
            continue;
        }
        if li < l.len() {
            if !in_config(&l[li].0) {
                out.push(l[li].1.clone());
                li += 1;
                continue;
            }
            if shared.get(next_shared).is_some_and(|pe| **pe != l[li].0) {
                // Comes later in the configuration's order.
                li += 1;
                continue;
            }
        }
        if ci < c.len() {
            let pe = &c[ci].0;
            out.push(merge_value(live_item(pe), c[ci].1, None));
            if shared.get(next_shared).is_some_and(|s| *s == pe) {
                next_shared += 1;
            }
            ci += 1;
            continue;
        }
        li += 1;
    }
    out
}

/// Removes every path of `set` from `obj`: a member goes with everything
/// below it.
pub fn remove(obj: &mut Value, set: &FieldSet) {
    remove_in(obj, None, set);
}

fn remove_in(value: &mut Value, field: Option<&str>, set: &FieldSet) {
    match value {
        Value::Object(fields) => {
            let names: Vec<String> = fields.keys().cloned().collect();
            for name in names {
                let pe = PathElement::field(&name);
                if set.has(std::slice::from_ref(&pe)) {
                    fields.remove(&name);
                } else if let (Some(child), Some(v)) = (set.child(&pe), fields.get_mut(&name)) {
                    remove_in(v, Some(&name), child);
                }
            }
        }
        Value::Array(items) => {
            let list = list_type(field, items);
            let elements: Vec<PathElement> = items
                .iter()
                .enumerate()
                .map(|(i, item)| item_element(&list, i, item))
                .collect();
            let mut kept = Vec::with_capacity(items.len());
            for (item, pe) in items.drain(..).zip(elements) {
                if set.has(std::slice::from_ref(&pe)) {
                    continue;
                }
                let mut item = item;
                if let Some(child) = set.child(&pe) {
                    remove_in(&mut item, None, child);
                }
                kept.push(item);
            }
            *items = kept;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: &FieldSet) -> Value {
        v.to_fields_v1()
    }

    #[test]
    fn applied_configurations_own_leaves_and_items() {
        let config = json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {
                    "containers": [{"name": "web", "image": "nginx", "args": ["a"], "ports": [{"containerPort": 80}], "resources": {}}],
                    "tolerations": [{"key": "k"}]
                }}
            },
            "finalizers": ["x"]
        });
        assert_eq!(
            fields(&to_field_set(&config)),
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {"f:spec": {
                        "f:containers": {"k:{\"name\":\"web\"}": {
                            ".": {}, "f:args": {}, "f:image": {}, "f:name": {}, "f:resources": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                        }},
                        "f:tolerations": {}
                    }}
                },
                "f:finalizers": {"v:\"x\"": {}}
            })
        );
    }

    #[test]
    fn comparisons_mark_new_containers_with_dots() {
        let old = json!({"metadata": {}, "spec": {"replicas": 1, "paused": true, "template": {"spec": {"containers": null}}}});
        let new = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
        let c = compare(&old, &new);
        assert_eq!(
            fields(&c.added),
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}
            })
        );
        assert_eq!(fields(&c.modified), json!({"f:spec": {"f:replicas": {}}}));
        assert_eq!(fields(&c.removed), json!({"f:spec": {"f:paused": {}}}));
        let same = compare(&new, &new);
        assert!(same.added.is_empty() && same.modified.is_empty() && same.removed.is_empty());
        let retyped = compare(&json!({"a": {"b": 1}}), &json!({"a": 2}));
        assert_eq!(fields(&retyped.added), json!({"f:a": {}}));
        assert_eq!(
            fields(&retyped.removed),
            json!({"f:a": {".": {}, "f:b": {}}})
        );
    }

    #[test]
    fn merges_follow_list_semantics() {
        let live = json!({"spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "a", "old": "x"}},
            "containers": [{"name": "a", "image": "1", "imagePullPolicy": "Always"}, {"name": "side", "image": "s"}, {"name": "b", "image": "2"}],
            "args": ["x", "y"],
            "finalizers": ["f1"]
        }});
        let config = json!({"spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "containers": [{"name": "b", "image": "3"}, {"name": "new", "image": "n"}, {"name": "a", "image": "1"}],
            "args": ["z"],
            "finalizers": ["f2", "f1"]
        }});
        let merged = merge(&live, &config);
        assert_eq!(
            merged,
            json!({"spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "a"}},
                "containers": [
                    {"name": "side", "image": "s"},
                    {"name": "b", "image": "3"},
                    {"name": "new", "image": "n"},
                    {"name": "a", "image": "1", "imagePullPolicy": "Always"}
                ],
                "args": ["z"],
                "finalizers": ["f2", "f1"]
            }})
        );
    }

    #[test]
    fn removal_drops_fields_and_items() {
        let mut obj = json!({"metadata": {"labels": {"app": "web", "tier": "x"}}, "spec": {
            "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 81, "protocol": "TCP", "name": "m"}],
            "finalizers": ["a", "b"]
        }});
        let mut set = FieldSet::new();
        set.insert(&[
            PathElement::field("metadata"),
            PathElement::field("labels"),
            PathElement::field("tier"),
        ]);
        set.insert(&[
            PathElement::field("spec"),
            PathElement::field("ports"),
            PathElement::key(&[("containerPort", &json!(80)), ("protocol", &json!("TCP"))]),
        ]);
        set.insert(&[
            PathElement::field("spec"),
            PathElement::field("ports"),
            PathElement::key(&[("containerPort", &json!(81)), ("protocol", &json!("TCP"))]),
            PathElement::field("name"),
        ]);
        set.insert(&[
            PathElement::field("spec"),
            PathElement::field("finalizers"),
            PathElement::value(&json!("a")),
        ]);
        remove(&mut obj, &set);
        assert_eq!(
            obj,
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {
                "ports": [{"containerPort": 81, "protocol": "TCP"}],
                "finalizers": ["b"]
            }})
        );
    }
}
