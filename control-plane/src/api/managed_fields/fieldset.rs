//! Sets of field paths and their `FieldsV1` encoding, as
//! structured-merge-diff stores them in `metadata.managedFields`:
//! `f:<field>` for object fields, `k:{"name":"c"}` for items of lists keyed
//! by their merge keys, `v:<json>` for items of set lists, `i:<index>` for
//! items with no key, and `.` when a node with children is itself a member.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};
use thiserror::Error;

/// A `FieldsV1` document that does not decode.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FieldsError {
    /// Every level of `FieldsV1` is an object.
    #[error("expected an object at {0}")]
    NotAnObject(String),
    /// A key without a known prefix.
    #[error("unknown path element {0:?}")]
    UnknownElement(String),
}

/// One step of a field path.
///
/// Variants are ordered as structured-merge-diff orders them: fields first,
/// then keys, values and indices.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A field of an object (`f:name`).
    Field(String),
    /// An item of an associative list, by its key fields as a JSON object
    /// with sorted keys (`k:{"containerPort":80,"protocol":"TCP"}`).
    Key(String),
    /// An item of a set list, by its JSON value (`v:"x"`).
    Value(String),
    /// An item of a list by position (`i:0`).
    Index(usize),
}

impl PathElement {
    /// A field element.
    pub fn field(name: &str) -> Self {
        Self::Field(name.to_string())
    }

    /// A key element from `(field, value)` pairs (sorted here).
    pub fn key(fields: &[(&str, &Value)]) -> Self {
        let map: Map<String, Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).clone()))
            .collect();
        Self::Key(Value::Object(map).to_string())
    }

    /// A set item element.
    pub fn value(v: &Value) -> Self {
        Self::Value(v.to_string())
    }

    fn parse(s: &str) -> Result<Self, FieldsError> {
        let unknown = || FieldsError::UnknownElement(s.to_string());
        let (prefix, rest) = s.split_once(':').ok_or_else(unknown)?;
        match prefix {
            "f" => Ok(Self::Field(rest.to_string())),
            "k" => Ok(Self::Key(rest.to_string())),
            "v" => Ok(Self::Value(rest.to_string())),
            "i" => rest.parse().map(Self::Index).map_err(|_| unknown()),
            _ => Err(unknown()),
        }
    }

    /// The element in the human form of conflict messages: `.replicas`,
    /// `[name="web"]`, `[=x]`, `[0]`.
    pub fn display(&self) -> String {
        match self {
            Self::Field(name) => format!(".{name}"),
            Self::Key(json) => {
                let fields: Vec<String> = serde_json::from_str::<Map<String, Value>>(json)
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_else(|_| vec![json.clone()]);
                format!("[{}]", fields.join(","))
            }
            Self::Value(json) => format!("[={json}]"),
            Self::Index(i) => format!("[{i}]"),
        }
    }
}

impl fmt::Display for PathElement {
    /// The `FieldsV1` key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Field(name) => write!(f, "f:{name}"),
            Self::Key(json) => write!(f, "k:{json}"),
            Self::Value(json) => write!(f, "v:{json}"),
            Self::Index(i) => write!(f, "i:{i}"),
        }
    }
}

/// A path from the object root.
pub type Path = Vec<PathElement>;

/// `.spec.template.spec.containers[name="web"].image`.
pub fn display_path(path: &[PathElement]) -> String {
    path.iter().map(PathElement::display).collect()
}

/// A set of field paths, stored as a trie: the members at this level and
/// the subsets below each element. A path is in the set when its last
/// element is a member of the node its prefix leads to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// No paths.
    pub fn new() -> Self {
        Self::default()
    }

    /// `true` when the set holds no path.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds `path` (the empty path is not a member of anything).
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// `true` if `path` is in the set.
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// The subset below `element`, if any.
    pub fn child(&self, element: &PathElement) -> Option<&FieldSet> {
        self.children.get(element)
    }

    /// Paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    /// Paths of `self` not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        self.narrowed(
            self.members.difference(&other.members),
            other,
            |mine, theirs| Some(theirs.map_or_else(|| mine.clone(), |t| mine.difference(t))),
        )
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        self.narrowed(
            self.members.intersection(&other.members),
            other,
            |mine, theirs| theirs.map(|t| mine.intersection(t)),
        )
    }

    /// A subset of `self` (what difference and intersection make): the
    /// given `members`, and below each child what `below` makes of it and
    /// `other`'s child at the same element, empty sets left out.
    fn narrowed<'a>(
        &'a self,
        members: impl Iterator<Item = &'a PathElement>,
        other: &FieldSet,
        below: impl Fn(&FieldSet, Option<&FieldSet>) -> Option<FieldSet>,
    ) -> FieldSet {
        let mut out = FieldSet {
            members: members.cloned().collect(),
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            if let Some(rest) = below(child, other.children.get(pe)).filter(|c| !c.is_empty()) {
                out.children.insert(pe.clone(), rest);
            }
        }
        out
    }

    /// Every path, in structured-merge-diff's order: the members of a node
    /// before the paths below its children.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for m in &self.members {
            let mut p = prefix.clone();
            p.push(m.clone());
            out.push(p);
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect(prefix, out);
            prefix.pop();
        }
    }

    /// The `fieldsV1` document.
    pub fn to_fields_v1(&self) -> Value {
        let mut out = Map::new();
        let elements: BTreeSet<&PathElement> =
            self.members.iter().chain(self.children.keys()).collect();
        for pe in elements {
            let mut node = match self.children.get(pe) {
                Some(child) if !child.is_empty() => match child.to_fields_v1() {
                    Value::Object(m) => m,
                    _ => Map::new(),
                },
                _ => Map::new(),
            };
            if self.members.contains(pe) && !node.is_empty() {
                node.insert(".".into(), Value::Object(Map::new()));
            }
            out.insert(pe.to_string(), Value::Object(node));
        }
        Value::Object(out)
    }

    /// Decodes a `fieldsV1` document.
    pub fn from_fields_v1(fields: &Value) -> Result<FieldSet, FieldsError> {
        Self::decode(fields, "")
    }

    fn decode(fields: &Value, at: &str) -> Result<FieldSet, FieldsError> {
        let Value::Object(map) = fields else {
            return Err(FieldsError::NotAnObject(at.to_string()));
        };
        let mut set = FieldSet::new();
        for (key, value) in map {
            if key == "." {
                continue;
            }
            let pe = PathElement::parse(key)?;
            let Value::Object(inner) = value else {
                return Err(FieldsError::NotAnObject(format!("{at}{key}")));
            };
            if inner.is_empty() || inner.contains_key(".") {
                set.members.insert(pe.clone());
            }
            let child = Self::decode(value, &format!("{at}{key}/"))?;
            if !child.is_empty() {
                set.children.insert(pe, child);
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(elements: &[PathElement]) -> Path {
        elements.to_vec()
    }

    #[test]
    fn fields_v1_round_trips_with_dots_for_members_with_children() {
        let doc = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}, "f:ports": {
                        "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}
                    }}
                }}}
            },
            "f:finalizers": {"v:\"a\"": {}},
            "f:args": {"i:0": {}}
        });
        let set = FieldSet::from_fields_v1(&doc).expect("decodes");
        let web = PathElement::key(&[("name", &json!("web"))]);
        let containers = path(&[
            PathElement::field("spec"),
            PathElement::field("template"),
            PathElement::field("spec"),
            PathElement::field("containers"),
        ]);
        let mut image = containers.clone();
        image.extend([web.clone(), PathElement::field("image")]);
        assert!(set.has(&image));
        let mut item = containers.clone();
        item.push(web);
        assert!(set.has(&item), "the item itself is a member (.)");
        assert!(!set.has(&containers), "containers has no dot");
        assert!(set.has(&[PathElement::field("metadata"), PathElement::field("labels")]));
        assert!(set.has(&[
            PathElement::field("finalizers"),
            PathElement::value(&json!("a"))
        ]));
        assert!(set.has(&[PathElement::field("args"), PathElement::Index(0)]));
        assert_eq!(set.to_fields_v1(), doc);
    }

    #[test]
    fn set_algebra_is_by_exact_path() {
        let replicas = [PathElement::field("spec"), PathElement::field("replicas")];
        let paused = [PathElement::field("spec"), PathElement::field("paused")];
        let labels = [PathElement::field("metadata"), PathElement::field("labels")];
        let app = [
            PathElement::field("metadata"),
            PathElement::field("labels"),
            PathElement::field("app"),
        ];
        let mut a = FieldSet::new();
        a.insert(&replicas);
        a.insert(&labels);
        a.insert(&app);
        let mut b = FieldSet::new();
        b.insert(&replicas);
        b.insert(&paused);
        b.insert(&app);
        assert_eq!(
            a.intersection(&b).paths(),
            vec![app.to_vec(), replicas.to_vec()]
        );
        let only_a = a.difference(&b);
        assert_eq!(only_a.paths(), vec![labels.to_vec()]);
        assert!(only_a.has(&labels) && !only_a.has(&app));
        let all = a.union(&b);
        assert_eq!(all.paths().len(), 4);
        assert!(a.difference(&all).is_empty());
        assert_eq!(FieldSet::new().to_fields_v1(), json!({}));
    }

    #[test]
    fn paths_display_like_upstream_conflicts() {
        let p = vec![
            PathElement::field("spec"),
            PathElement::field("containers"),
            PathElement::key(&[("protocol", &json!("TCP")), ("containerPort", &json!(80))]),
            PathElement::field("name"),
        ];
        assert_eq!(
            display_path(&p),
            ".spec.containers[containerPort=80,protocol=\"TCP\"].name"
        );
        assert_eq!(
            p[2].to_string(),
            "k:{\"containerPort\":80,\"protocol\":\"TCP\"}"
        );
        assert_eq!(
            display_path(&[
                PathElement::field("finalizers"),
                PathElement::value(&json!("x"))
            ]),
            ".finalizers[=\"x\"]"
        );
    }

    #[test]
    fn bad_documents_are_errors() {
        assert_eq!(
            FieldSet::from_fields_v1(&json!({"x:y": {}})),
            Err(FieldsError::UnknownElement("x:y".into()))
        );
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
        assert!(FieldSet::from_fields_v1(&json!([])).is_err());
    }
}
