//! Field ownership (`metadata.managedFields`) and server-side apply, after
//! upstream's field manager.
//!
//! Every write records which manager set which fields. Creates, updates
//! and patches are `Update` operations: the fields they change move to
//! their manager. An apply (`application/apply-patch+yaml`) is an `Apply`
//! operation: its manager owns exactly the fields of the configuration,
//! changing a field someone else owns is a conflict unless forced, and
//! fields the manager applied before but no longer does are removed when
//! no one else owns them.
//!
//! - [`fieldset`]: field paths, sets and their `FieldsV1` encoding.
//! - [`typed`]: field sets, comparisons, merges and removals of objects.

pub mod fieldset;
pub mod typed;

use serde_json::{Map, Value, json};
use tracing::debug;

use self::fieldset::{FieldSet, Path, PathElement, display_path};
use super::error::ApiError;
use crate::registry::resources::ResourceType;

/// kubectl's client-side apply annotation.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The manager of an apply that kubectl keeps its last-applied annotation
/// in step with (upstream special-cases the name too).
const KUBECTL_APPLY: &str = "kubectl";

/// Owner of the fields an object had before anyone applied to it.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Upstream's cap on manager names.
const MAX_MANAGER_LEN: usize = 128;

/// Who writes, and through which subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manager {
    /// `fieldManager`, or the User-Agent's product token.
    pub name: String,
    /// `status` or `scale`; `None` for the main resource.
    pub subresource: Option<String>,
}

impl Manager {
    /// The manager of a request: the `fieldManager` parameter, else the
    /// User-Agent up to its first `/` (`kubectl/v1.37.1 (linux/amd64) …`
    /// is `kubectl`), as upstream derives it.
    pub fn from_request(
        field_manager: Option<&str>,
        user_agent: Option<&str>,
        subresource: Option<&str>,
    ) -> Self {
        let name = match field_manager.filter(|m| !m.is_empty()) {
            Some(m) => m.to_string(),
            None => user_agent
                .unwrap_or_default()
                .split('/')
                .next()
                .unwrap_or_default()
                .chars()
                .take(MAX_MANAGER_LEN)
                .collect(),
        };
        Self {
            name,
            subresource: subresource.map(String::from),
        }
    }

    fn scope(&self) -> Scope {
        if self.subresource.as_deref() == Some("status") {
            Scope::Status
        } else {
            Scope::Main
        }
    }
}

/// Which part of an object a write may own: status writes own only
/// `status`, all other writes everything but `status` (upstream's reset
/// fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Main,
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    set: FieldSet,
}

impl Entry {
    /// Upstream's manager identifier: entries with the same one are merged.
    /// It is the JSON of the entry without fields and time (and without
    /// apiVersion for appliers), which is also what conflicts sort by.
    fn identifier(&self) -> String {
        let mut id = Map::new();
        id.insert("manager".into(), json!(self.manager));
        id.insert("operation".into(), json!(self.operation.as_str()));
        if self.operation == Operation::Update {
            id.insert("apiVersion".into(), json!(self.api_version));
        }
        if let Some(sub) = &self.subresource {
            id.insert("subresource".into(), json!(sub));
        }
        // Field order as Go marshals ManagedFieldsEntry.
        let order = ["manager", "operation", "apiVersion", "subresource"];
        let parts: Vec<String> = order
            .iter()
            .filter_map(|k| id.get(*k).map(|v| format!("{}:{v}", json!(k))))
            .collect();
        format!("{{{}}}", parts.join(","))
    }

    /// `"kubectl" with subresource "scale" using apps/v1`, as conflicts
    /// name managers.
    fn describe(&self) -> String {
        let mut out = json!(self.manager).to_string();
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {}", json!(sub)));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    fn decode(v: &Value) -> Option<Entry> {
        let operation = match v.get("operation").and_then(Value::as_str)? {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return None,
        };
        if v.get("fieldsType").and_then(Value::as_str) != Some("FieldsV1") {
            return None;
        }
        let api_version = v.get("apiVersion").and_then(Value::as_str)?;
        if api_version.is_empty() {
            return None;
        }
        let set = match v.get("fieldsV1") {
            Some(f) => FieldSet::from_fields_v1(f).ok()?,
            None => FieldSet::new(),
        };
        Some(Entry {
            manager: v
                .get("manager")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            operation,
            api_version: api_version.to_string(),
            time: v.get("time").and_then(Value::as_str).map(String::from),
            subresource: v
                .get("subresource")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(String::from),
            set,
        })
    }

    fn encode(&self) -> Value {
        let mut e = json!({
            "manager": self.manager,
            "operation": self.operation.as_str(),
            "apiVersion": self.api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.set.to_fields_v1(),
        });
        if let Some(t) = &self.time {
            e["time"] = json!(t);
        }
        if let Some(sub) = &self.subresource {
            e["subresource"] = json!(sub);
        }
        e
    }
}

/// The decoded `managedFields` of an object.
#[derive(Debug, Clone, Default)]
struct Managed {
    entries: Vec<Entry>,
}

impl Managed {
    /// `None` when the list is malformed.
    fn decode(list: Option<&Value>) -> Option<Managed> {
        let Some(list) = list.filter(|v| !v.is_null()) else {
            return Some(Managed::default());
        };
        let mut managed = Managed::default();
        for v in list.as_array()? {
            let entry = Entry::decode(v)?;
            // Entries with one identifier are one manager; keep them merged.
            match managed
                .entries
                .iter_mut()
                .find(|e| e.identifier() == entry.identifier())
            {
                Some(e) => e.set = e.set.union(&entry.set),
                None => managed.entries.push(entry),
            }
        }
        Some(managed)
    }

    /// Of the live object; malformed stored entries are dropped, as
    /// upstream does.
    fn of(obj: Option<&Value>) -> Managed {
        Managed::decode(obj.and_then(|o| o.pointer("/metadata/managedFields"))).unwrap_or_default()
    }

    fn entry_mut(&mut self, template: &Entry) -> &mut Entry {
        let id = template.identifier();
        match self.entries.iter().position(|e| e.identifier() == id) {
            Some(i) => &mut self.entries[i],
            None => {
                self.entries.push(template.clone());
                let last = self.entries.len() - 1;
                &mut self.entries[last]
            }
        }
    }

    fn owned(&self) -> FieldSet {
        self.entries
            .iter()
            .fold(FieldSet::new(), |acc, e| acc.union(&e.set))
    }

    /// Writes the entries into `obj`, sorted as upstream sorts them
    /// (operation, time, manager, apiVersion, subresource).
    fn store(mut self, obj: &mut Value) {
        self.entries.retain(|e| !e.set.is_empty());
        self.entries.sort_by(|a, b| {
            (
                a.operation,
                &a.time,
                &a.manager,
                &a.api_version,
                &a.subresource,
            )
                .cmp(&(
                    b.operation,
                    &b.time,
                    &b.manager,
                    &b.api_version,
                    &b.subresource,
                ))
        });
        let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
            return;
        };
        if self.entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert(
                "managedFields".into(),
                Value::Array(self.entries.iter().map(Entry::encode).collect()),
            );
        }
    }
}

/// Metadata only the server sets; no manager owns it.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// The part of `obj` a write in `scope` can own.
fn ownable(obj: &Value, scope: Scope) -> Value {
    match scope {
        Scope::Status => match obj.get("status") {
            Some(s) => json!({"status": s}),
            None => json!({}),
        },
        Scope::Main => {
            let mut out = obj.clone();
            if let Some(o) = out.as_object_mut() {
                for field in ["apiVersion", "kind", "status"] {
                    o.remove(field);
                }
                match o.get_mut("metadata").and_then(Value::as_object_mut) {
                    Some(meta) => {
                        for field in SERVER_METADATA {
                            meta.remove(*field);
                        }
                    }
                    None => {
                        o.insert("metadata".into(), json!({}));
                    }
                }
            }
            out
        }
    }
}

/// Drops paths no manager owns even when they change.
fn without_unowned(mut set: FieldSet) -> FieldSet {
    let mut unowned = FieldSet::new();
    for field in ["apiVersion", "kind", "metadata"] {
        unowned.insert(&[PathElement::field(field)]);
    }
    set = set.difference(&unowned);
    set
}

/// Fields of the typed zero value upstream compares a new object with: Go
/// structs held by value exist even when empty, so a create does not mark
/// them (no `.` for `spec` or `template`), while maps, lists and pointer
/// structs are new.
const VALUE_STRUCTS: &[&str] = &[
    "metadata",
    "spec",
    "status",
    "template",
    "strategy",
    "updateStrategy",
    "jobTemplate",
];

fn zero_value(obj: &Value) -> Value {
    let Value::Object(fields) = obj else {
        return Value::Null;
    };
    let mut out = Map::new();
    for (name, value) in fields {
        if VALUE_STRUCTS.contains(&name.as_str()) && value.is_object() {
            out.insert(name.clone(), zero_value(value));
        } else if name == "containers" {
            out.insert(name.clone(), Value::Null);
        }
    }
    Value::Object(out)
}

/// The managed fields a non-apply write starts from: a client that sends
/// `managedFields` sets them (`[]` resets them), one that sends none keeps
/// the live ones; subresource writes always keep the live ones.
fn base_for_update(old: Option<&Value>, new: &Value, manager: &Manager) -> Managed {
    if manager.subresource.is_some() {
        return Managed::of(old);
    }
    match new.pointer("/metadata/managedFields") {
        Some(Value::Array(list)) if list.is_empty() => Managed::default(),
        Some(Value::Array(list)) if list.len() == 1 && list[0] == json!({}) => Managed::default(),
        Some(list @ Value::Array(_)) => match Managed::decode(Some(list)) {
            Some(m) if !m.entries.is_empty() => m,
            _ => Managed::of(old),
        },
        _ => Managed::of(old),
    }
}

/// Records a create, update or patch by `manager` in `new` (the object
/// about to be stored; `old` is the live object, `None` on create): the
/// fields it changed become its own and leave every other manager.
pub fn update(rt: &ResourceType, old: Option<&Value>, new: &mut Value, manager: &Manager) {
    let mut managed = base_for_update(old, new, manager);
    let scope = manager.scope();
    let before = match old {
        Some(o) => ownable(o, scope),
        None => ownable(&zero_value(new), scope),
    };
    let comparison = typed::compare(&before, &ownable(new, scope));
    let changed = without_unowned(comparison.modified.union(&comparison.added));
    let removed = without_unowned(comparison.removed);
    for e in &mut managed.entries {
        e.set = e.set.difference(&changed).difference(&removed);
    }
    if !changed.is_empty() {
        let entry = managed.entry_mut(&Entry {
            manager: manager.name.clone(),
            operation: Operation::Update,
            api_version: rt.api_version(),
            time: None,
            subresource: manager.subresource.clone(),
            set: FieldSet::new(),
        });
        entry.set = entry.set.union(&changed);
        entry.time = Some(crate::registry::meta::now());
    }
    managed.store(new);
}

/// One field another manager owns that an apply changes.
#[derive(Debug, Clone)]
struct Conflict {
    owner: Entry,
    path: Path,
}

fn conflict_error(conflicts: &[Conflict]) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| {
            json!({
                "type": "FieldManagerConflict",
                "message": format!("conflict with {}", c.owner.describe()),
                "field": display_path(&c.path),
            })
        })
        .collect();
    let message = match conflicts {
        [one] => format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.owner.describe(),
            display_path(&one.path)
        ),
        _ => {
            let mut owners: Vec<&Entry> = conflicts.iter().map(|c| &c.owner).collect();
            owners.sort_by_key(|e| e.identifier());
            owners.dedup_by_key(|e| e.identifier());
            let mut lines = Vec::new();
            for owner in owners {
                lines.push(format!("conflicts with {}:", owner.describe()));
                for c in conflicts
                    .iter()
                    .filter(|c| c.owner.identifier() == owner.identifier())
                {
                    lines.push(format!("- {}", display_path(&c.path)));
                }
            }
            format!(
                "Apply failed with {} conflicts: {}",
                conflicts.len(),
                lines.join("\n")
            )
        }
    };
    ApiError::apply_conflict(message, causes)
}

/// The conflicts an apply by `kubectl` may take over: fields of the live
/// object's last-applied annotation that still hold the values it
/// recorded. That lets `kubectl apply --server-side` take over objects
/// `kubectl apply` made without `--force-conflicts`, as upstream allows.
fn allowed_by_last_applied(rt: &ResourceType, live: &Value) -> FieldSet {
    let Some(last) = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    else {
        return FieldSet::new();
    };
    if last.get("apiVersion").and_then(Value::as_str) != Some(rt.api_version().as_str()) {
        return FieldSet::new();
    }
    let last = ownable(&last, Scope::Main);
    let differences = typed::compare(&last, &ownable(live, Scope::Main));
    typed::to_field_set(&last)
        .difference(&differences.modified)
        .difference(&differences.added)
        .difference(&differences.removed)
}

/// The last-applied annotation an apply by `kubectl` leaves, so a later
/// client-side apply still sees what was applied.
fn last_applied_of(config: &Value) -> String {
    let mut config = config.clone();
    if let Some(annotations) = config
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED);
    }
    config.to_string()
}

/// Server-side apply of `config` by `manager` onto `live` (`None` when the
/// object does not exist yet). Returns the object to store, with its
/// managed fields, or a 409 naming the conflicting managers and fields.
pub fn apply(
    rt: &ResourceType,
    live: Option<&Value>,
    config: &Value,
    manager: &Manager,
    force: bool,
) -> Result<Value, ApiError> {
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let scope = manager.scope();
    let mut managed = Managed::of(live);
    let empty = json!({});
    let live_obj = live.unwrap_or(&empty);
    if live.is_some() && managed.entries.is_empty() {
        // Fields written before tracking began belong to someone, so an
        // apply that changes them conflicts, as upstream.
        let comparison = typed::compare(
            &ownable(&zero_value(live_obj), Scope::Main),
            &ownable(live_obj, Scope::Main),
        );
        managed.entries.push(Entry {
            manager: BEFORE_FIRST_APPLY.into(),
            operation: Operation::Update,
            api_version: rt.api_version(),
            time: Some(crate::registry::meta::now()),
            subresource: None,
            set: without_unowned(comparison.added.union(&comparison.modified)),
        });
    }
    let mut merged = typed::merge(live_obj, config);

    let applier = Entry {
        manager: manager.name.clone(),
        operation: Operation::Apply,
        api_version: rt.api_version(),
        time: Some(crate::registry::meta::now()),
        subresource: manager.subresource.clone(),
        set: without_unowned(typed::to_field_set(&ownable(config, scope))),
    };
    let applier_id = applier.identifier();
    let previous = managed
        .entries
        .iter()
        .position(|e| e.identifier() == applier_id)
        .map(|i| managed.entries.remove(i).set)
        .unwrap_or_default();
    managed.entries.push(applier);

    // What the applier set before, does not set now, and no one else owns
    // goes away.
    let dropped = typed::to_field_set(&ownable(&merged, scope))
        .intersection(&previous)
        .difference(&managed.owned());
    if !dropped.is_empty() {
        debug!(manager = %manager.name, fields = ?dropped.paths().iter().map(|p| display_path(p)).collect::<Vec<_>>(), "apply removes fields");
        typed::remove(&mut merged, &dropped);
    }

    let comparison = typed::compare(&ownable(live_obj, scope), &ownable(&merged, scope));
    let changed = without_unowned(comparison.modified.union(&comparison.added));
    let removed = without_unowned(comparison.removed);
    let mut conflicts: Vec<Conflict> = Vec::new();
    for e in managed
        .entries
        .iter()
        .filter(|e| e.identifier() != applier_id)
    {
        for path in e.set.intersection(&changed).paths() {
            conflicts.push(Conflict {
                owner: e.clone(),
                path,
            });
        }
    }
    if !conflicts.is_empty() && !force {
        let allowed = if manager.name == KUBECTL_APPLY {
            allowed_by_last_applied(rt, live_obj)
        } else {
            FieldSet::new()
        };
        let remaining: Vec<Conflict> = conflicts
            .iter()
            .filter(|c| !allowed.has(&c.path))
            .cloned()
            .collect();
        if !remaining.is_empty() {
            return Err(conflict_error(&remaining));
        }
    }
    for e in managed
        .entries
        .iter_mut()
        .filter(|e| e.identifier() != applier_id)
    {
        e.set = e.set.difference(&changed).difference(&removed);
    }

    if manager.name == KUBECTL_APPLY
        && live_obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(LAST_APPLIED))
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    {
        merged["metadata"]["annotations"][LAST_APPLIED] = json!(last_applied_of(config));
    }
    managed.store(&mut merged);
    Ok(merged)
}

/// `true` when `a` and `b` differ at most in the times of their managed
/// fields: such a write changes nothing (upstream skips it too).
pub fn same_but_times(a: &Value, b: &Value) -> bool {
    let untimed = |v: &Value| {
        let mut v = v.clone();
        if let Some(list) = v
            .pointer_mut("/metadata/managedFields")
            .and_then(Value::as_array_mut)
        {
            for e in list.iter_mut().filter_map(Value::as_object_mut) {
                e.remove("time");
            }
        }
        v
    };
    untimed(a) == untimed(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::strategy;

    fn deployments() -> &'static ResourceType {
        crate::registry::kinds::DEPLOYMENTS
    }

    fn manager(name: &str) -> Manager {
        Manager::from_request(Some(name), None, None)
    }

    /// `old` changed by `edit` and written as an update by `by`.
    fn edited(old: &Value, by: &Manager, edit: impl FnOnce(&mut Value)) -> Value {
        let mut new = old.clone();
        edit(&mut new);
        update(deployments(), Some(old), &mut new, by);
        new
    }

    /// `kubectl scale` as the user agent `agent` sends it.
    fn scaler(agent: &str) -> Manager {
        Manager::from_request(None, Some(agent), Some("scale"))
    }

    fn entries(obj: &Value) -> Vec<(String, String, Option<String>, Value)> {
        obj["metadata"]["managedFields"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|e| {
                        (
                            e["manager"].as_str().unwrap_or_default().to_string(),
                            e["operation"].as_str().unwrap_or_default().to_string(),
                            e["subresource"].as_str().map(String::from),
                            e["fieldsV1"].clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn deployment(replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "x"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}
        })
    }

    #[test]
    fn managers_come_from_field_manager_or_user_agent() {
        let ua = Some("kubectl/v1.37.1 (linux/amd64) kubernetes/f78e722");
        assert_eq!(Manager::from_request(None, ua, None).name, "kubectl");
        assert_eq!(
            Manager::from_request(Some("kubectl-edit"), ua, None).name,
            "kubectl-edit"
        );
        assert_eq!(
            Manager::from_request(Some(""), Some("curl/8"), None).name,
            "curl"
        );
        let long = "x".repeat(200);
        assert_eq!(
            Manager::from_request(None, Some(&long), None).name.len(),
            MAX_MANAGER_LEN
        );
    }

    #[test]
    fn creates_own_what_they_set_and_updates_take_fields_over() {
        let rt = deployments();
        let mut obj = deployment(2);
        strategy::apply_defaults(rt, &mut obj);
        update(rt, None, &mut obj, &manager("kubectl-client-side-apply"));
        let e = entries(&obj);
        assert_eq!(e.len(), 1);
        let fields = &e[0].3;
        assert_eq!(fields["f:metadata"]["f:labels"]["."], json!({}));
        assert_eq!(fields["f:spec"]["f:replicas"], json!({}));
        assert_eq!(
            fields["f:spec"]["f:selector"],
            json!({}),
            "selectors are atomic"
        );
        assert_eq!(
            fields["f:spec"]["f:revisionHistoryLimit"],
            json!({}),
            "defaults too"
        );
        assert!(fields["f:spec"].get(".").is_none(), "spec is never new");
        assert_eq!(
            fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]["."],
            json!({})
        );
        assert!(obj["metadata"]["managedFields"][0]["time"].is_string());

        let scaled = edited(&obj, &scaler("kubectl/v1.37"), |d| {
            d["spec"]["replicas"] = json!(5);
        });
        let e = entries(&scaled);
        assert_eq!(e.len(), 2);
        let csa = e
            .iter()
            .find(|e| e.0 == "kubectl-client-side-apply")
            .expect("csa");
        assert!(csa.3["f:spec"].get("f:replicas").is_none(), "moved away");
        let scale = e.iter().find(|e| e.0 == "kubectl").expect("scale");
        assert_eq!(
            (scale.2.as_deref(), &scale.3),
            (Some("scale"), &json!({"f:spec": {"f:replicas": {}}}))
        );

        let same = edited(&scaled, &manager("noop"), |_| {});
        assert_eq!(entries(&same), entries(&scaled), "no change, no entry");

        let reset = edited(&scaled, &manager("x"), |r| {
            r["metadata"]["managedFields"] = json!([]);
        });
        assert!(reset["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn status_writes_own_only_status() {
        let rt = deployments();
        let mut obj = deployment(1);
        update(rt, None, &mut obj, &manager("kubectl-create"));
        let status_writer = Manager::from_request(Some("controller"), None, Some("status"));
        let with_status = edited(&obj, &status_writer, |d| {
            d["status"] = json!({"replicas": 1});
        });
        let e = entries(&with_status);
        let controller = e.iter().find(|e| e.0 == "controller").expect("controller");
        assert_eq!(controller.2.as_deref(), Some("status"));
        assert_eq!(
            controller.3,
            json!({"f:status": {".": {}, "f:replicas": {}}})
        );
        let create = e.iter().find(|e| e.0 == "kubectl-create").expect("create");
        assert!(create.3.get("f:status").is_none());
    }

    #[test]
    fn apply_conflicts_name_the_owner_and_force_takes_over() {
        let rt = deployments();
        let ssa = manager("kubectl");
        let created = apply(rt, None, &deployment(2), &ssa, false).expect("create");
        let e = entries(&created);
        assert_eq!((e[0].0.as_str(), e[0].1.as_str()), ("kubectl", "Apply"));
        assert_eq!(e[0].3["f:spec"]["f:replicas"], json!({}));

        let scaled = edited(&created, &scaler("kubectl/v1.37.1"), |d| {
            d["spec"]["replicas"] = json!(5);
        });

        let err = apply(rt, Some(&scaled), &deployment(3), &ssa, false).expect_err("conflict");
        assert_eq!((err.code, err.reason), (409, "Conflict"));
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"
        );
        assert_eq!(
            err.details["causes"],
            json!([{"type": "FieldManagerConflict", "message": "conflict with \"kubectl\" with subresource \"scale\" using apps/v1", "field": ".spec.replicas"}])
        );

        let same = apply(rt, Some(&scaled), &deployment(5), &ssa, false).expect("same value");
        assert_eq!(same["spec"]["replicas"], 5, "co-owned, no conflict");

        let forced = apply(rt, Some(&scaled), &deployment(3), &ssa, true).expect("forced");
        assert_eq!(forced["spec"]["replicas"], 3);
        let e = entries(&forced);
        assert_eq!(e.len(), 1, "the scale entry lost its only field: {e:?}");
        assert_eq!(e[0].0, "kubectl");
    }

    #[test]
    fn conflicts_with_several_managers_are_listed_by_manager() {
        let rt = deployments();
        let mut obj = deployment(1);
        update(rt, None, &mut obj, &manager("b-writer"));
        let paused = edited(&obj, &manager("a-writer"), |d| {
            d["spec"]["paused"] = json!(true);
        });
        let mut config = deployment(2);
        config["spec"]["paused"] = json!(false);
        config["metadata"]["labels"]["tier"] = json!("y");
        let err = apply(rt, Some(&paused), &config, &manager("ci"), false).expect_err("conflicts");
        assert_eq!(
            err.message,
            "Apply failed with 3 conflicts: conflicts with \"a-writer\" using apps/v1:\n- .spec.paused\nconflicts with \"b-writer\" using apps/v1:\n- .metadata.labels.tier\n- .spec.replicas"
        );
        assert_eq!(err.details["causes"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn fields_dropped_from_the_configuration_are_removed() {
        let rt = deployments();
        let ssa = manager("kubectl");
        let mut config = deployment(2);
        config["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("containers")
            .push(json!({"name": "side", "image": "busybox"}));
        let created = apply(rt, None, &config, &ssa, false).expect("create");
        let labelled = edited(&created, &manager("kubectl-label"), |d| {
            d["metadata"]["labels"]["extra"] = json!("kept");
        });

        let smaller = deployment(2);
        let mut smaller = smaller;
        if let Some(l) = smaller["metadata"]["labels"].as_object_mut() {
            l.remove("tier");
        }
        let applied = apply(rt, Some(&labelled), &smaller, &ssa, false).expect("apply");
        assert_eq!(
            applied["metadata"]["labels"],
            json!({"app": "web", "extra": "kept"}),
            "tier was only ours; extra is kubectl-label's"
        );
        let names: Vec<&str> = applied["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["web"]);
    }

    #[test]
    fn kubectl_takes_over_from_client_side_apply_where_values_match() {
        let rt = deployments();
        let mut config = deployment(2);
        let annotation = config.to_string();
        config["metadata"]["annotations"] = json!({LAST_APPLIED: annotation});
        let mut live = config.clone();
        strategy::apply_defaults(rt, &mut live);
        update(rt, None, &mut live, &manager("kubectl-client-side-apply"));

        let applied = apply(rt, Some(&live), &deployment(3), &manager("kubectl"), false)
            .expect("replicas still hold the last-applied value");
        assert_eq!(applied["spec"]["replicas"], 3);
        let last: Value = serde_json::from_str(
            applied["metadata"]["annotations"][LAST_APPLIED]
                .as_str()
                .expect("annotation"),
        )
        .expect("json");
        assert_eq!(last["spec"]["replicas"], 3, "kept in step");

        let err = apply(rt, Some(&live), &deployment(3), &manager("other"), false)
            .expect_err("only kubectl may");
        err.assert_says("\"kubectl-client-side-apply\" using apps/v1");

        let drifted = edited(&live, &manager("kubectl-client-side-apply"), |d| {
            d["spec"]["replicas"] = json!(7);
        });
        let err = apply(
            rt,
            Some(&drifted),
            &deployment(3),
            &manager("kubectl"),
            false,
        )
        .expect_err("drifted from last-applied");
        assert!(err.message.ends_with(": .spec.replicas"), "{}", err.message);
    }

    #[test]
    fn apply_rejects_managed_fields_and_untracked_objects_have_an_owner() {
        let rt = deployments();
        let mut config = deployment(1);
        config["metadata"]["managedFields"] = json!([]);
        let err = apply(rt, None, &config, &manager("kubectl"), false).expect_err("400");
        assert_eq!(err.code, 400);

        let untracked = deployment(1);
        let err = apply(rt, Some(&untracked), &deployment(4), &manager("ci"), false)
            .expect_err("conflict");
        err.assert_says("\"before-first-apply\" using apps/v1");
    }

    #[test]
    fn only_time_changes_are_no_changes() {
        let mut a = deployment(1);
        a["metadata"]["managedFields"] = json!([{"manager": "m", "operation": "Apply", "apiVersion": "apps/v1", "time": "2020-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {}}]);
        let mut b = a.clone();
        b["metadata"]["managedFields"][0]["time"] = json!("2030-01-01T00:00:00Z");
        assert!(same_but_times(&a, &b));
        b["spec"]["replicas"] = json!(2);
        assert!(!same_but_times(&a, &b));
    }
}
