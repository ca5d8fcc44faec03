//! What a served resource type is: names, kind, scope, short names,
//! categories and subresources, and its kind's [`Behaviour`].

use std::fmt;

use serde_json::Value;
use skiff_api_rules::metadata::NameRule;

use super::kinds::printing::{Columns, plain};

/// One resource type (`deployments` in `apps/v1`, ...).
#[derive(Clone, Copy)]
pub struct ResourceType {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Plural, lowercase (`deployments`).
    pub plural: &'static str,
    /// Singular, lowercase.
    pub singular: &'static str,
    /// Kind (`Deployment`).
    pub kind: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// `kubectl` short names.
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Subresources served (`status`, `scale`, `log`, `exec`).
    pub subresources: &'static [&'static str],
    /// The group whose store prefix holds the objects: its own, except
    /// where upstream keeps one object behind two groups (`events.k8s.io`
    /// Events are core Events).
    pub storage_group: &'static str,
    /// What the registry does with the kind's objects beyond storing them.
    pub behaviour: &'static dyn Behaviour,
}

/// One type is one (group, version, plural): the rest follows from it.
impl PartialEq for ResourceType {
    fn eq(&self, other: &Self) -> bool {
        (self.group, self.version, self.plural) == (other.group, other.version, other.plural)
    }
}

impl Eq for ResourceType {}

impl fmt::Debug for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceType")
            .field("group", &self.group)
            .field("version", &self.version)
            .field("plural", &self.plural)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Field errors (`field: message`), or `Err` with the message of an
/// object that does not decode.
pub type Errors = Result<Vec<String>, String>;

/// A kind's rules, as upstream's registry strategies and printers hold
/// them: each kind's module under [`super::kinds`] implements it for its
/// types, overriding what the kind has; the defaults are a kind with no
/// rules of its own.
pub trait Behaviour: Send + Sync {
    /// Upstream's defaults, applied on every write (in place).
    fn defaults(&self, _obj: &mut Value) {}

    /// The status a created object starts with, whatever the client sent
    /// (`PrepareForCreate`); `None` keeps what was sent.
    fn initial_status(&self, _obj: &Value) -> Option<Value> {
        None
    }

    /// Server-owned fields of a write: the stored object (`None` on
    /// create) and the one about to be stored.
    fn prepare_write(&self, _old: Option<&Value>, _new: &mut Value) {}

    /// How names are checked.
    fn name_rule(&self) -> NameRule {
        NameRule::Subdomain
    }

    /// The kind's own rules on a defaulted object: field errors, or `Err`
    /// with the message of an object that does not decode.
    fn validate(&self, _rt: &ResourceType, _obj: &Value) -> Errors {
        Ok(Vec::new())
    }

    /// The errors of updating `old` to `new` (immutable fields), or `Err`
    /// as [`Behaviour::validate`].
    fn validate_update(&self, _rt: &ResourceType, _old: &Value, _new: &Value) -> Errors {
        Ok(Vec::new())
    }

    /// The object as its typed schema keeps it (what strict decoding
    /// compares with), `None` for a kind without one.
    fn round_trip(&self, _obj: &Value) -> Option<Value> {
        None
    }

    /// Registers the kind's typed schema with `generator`, for
    /// `/openapi/v3`; nothing for a kind without one.
    fn add_schema(&self, _generator: &mut schemars::SchemaGenerator) {}

    /// The verbs discovery lists for the kind (create-only reviews list
    /// only `create`).
    fn verbs(&self) -> &'static [&'static str] {
        ALL_VERBS
    }

    /// The columns `kubectl get` shows (`-o wide` ones have priority 1).
    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        plain(obj)
    }
}

impl ResourceType {
    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        self.with_group(self.version, |group, version| format!("{group}/{version}"))
    }

    /// `name` alone for the core group, else `name` with the group as
    /// `join` puts them together.
    fn with_group(&self, name: &str, join: impl FnOnce(&str, &str) -> String) -> String {
        if self.group.is_empty() {
            name.to_string()
        } else {
            join(self.group, name)
        }
    }

    /// `deployments.apps` or `pods`, as in error messages.
    pub fn qualified(&self) -> String {
        self.with_group(self.plural, |group, plural| format!("{plural}.{group}"))
    }

    /// `Deployment.apps` or `Pod`, as in "is invalid" messages.
    pub fn qualified_kind(&self) -> String {
        self.with_group(self.kind, |group, kind| format!("{kind}.{group}"))
    }

    /// Store key prefix of this type (`/registry/apps/deployments/`).
    pub fn prefix(&self) -> String {
        let group = if self.storage_group.is_empty() {
            "core"
        } else {
            self.storage_group
        };
        format!("/registry/{group}/{}/", self.plural)
    }

    /// Store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{}{ns}/{name}", self.prefix()),
            _ => format!("{}{name}", self.prefix()),
        }
    }
}

/// The verbs of a kind served in full.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The `all` category.
pub const ALL: &[&str] = &["all"];

/// A [`ResourceType`] stored under its own group, from one row: group,
/// version, plural, singular, kind, namespaced, short names, categories,
/// subresources, behaviour. (Invoked with braces, so a row stays a row.)
macro_rules! rt {
    ($g:expr, $v:expr, $plural:expr, $singular:expr, $kind:expr, $ns:expr, $short:expr, $cat:expr, $sub:expr, $behaviour:expr $(,)?) => {
        $crate::registry::resource_type::ResourceType {
            group: $g,
            version: $v,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $ns,
            short_names: $short,
            categories: $cat,
            subresources: $sub,
            storage_group: $g,
            behaviour: $behaviour,
        }
    };
}

pub(crate) use rt;
