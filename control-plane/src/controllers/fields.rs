//! Small readers and writers of objects that the workload controllers
//! share: copying a part of an object to build another from, writing a
//! status only when it changes, and taking a deleted object as nothing to
//! do.

use serde_json::{Value, json};

use crate::meta::{self, str_at};
use crate::registry::objects::Objects;
use crate::registry::resources::ResourceType;
use crate::store::StoreError;

/// The result of a store call on one object, with the object being gone
/// (deleted since it was seen) as `None` rather than an error: a
/// controller has nothing to do for an object that no longer exists.
pub fn unless_gone<T>(result: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A copy of the object at `pointer` in `obj`, or an empty object when
/// there is none (or something else stands there): what a new object's
/// labels, annotations or template start from.
pub fn object_at(obj: &Value, pointer: &str) -> Value {
    obj.pointer(pointer)
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}))
}

/// Rewrites `obj`'s status with `edit`, for an `Objects::update` closure:
/// `false` (no write) when `obj` is no longer the object of `uid` (it was
/// deleted and made again since the sync read it) or the status is as it
/// was, so an unchanged status costs no write and no watch event.
pub fn edit_status(obj: &mut Value, uid: &str, edit: impl FnOnce(&mut Value)) -> bool {
    if str_at(obj, "/metadata/uid") != Some(uid) {
        return false;
    }
    let mut status = object_at(obj, "/status");
    edit(&mut status);
    if obj.get("status") == Some(&status) {
        return false;
    }
    obj["status"] = status;
    true
}

/// Keeps the items of `obj`'s metadata list `field` (owner references,
/// finalizers) that `keep` accepts, leaving out a list this empties as
/// upstream serializes it; whether any item went.
pub fn retain_in_metadata(obj: &mut Value, field: &str, keep: impl FnMut(&Value) -> bool) -> bool {
    let list = obj.get_mut("metadata").and_then(|m| m.get_mut(field));
    let Some(list) = list.and_then(Value::as_array_mut) else {
        return false;
    };
    let before = list.len();
    list.retain(keep);
    if list.len() == before {
        return false;
    }
    if list.is_empty()
        && let Some(m) = obj["metadata"].as_object_mut()
    {
        m.remove(field);
    }
    true
}

/// Records a hash collision on the owner `obj` (an `Objects::update`
/// closure): its `status.collisionCount` becomes `count`, so that the next
/// try hashes the template differently.
pub fn set_collision_count(obj: &mut Value, count: u32) -> bool {
    obj["status"]["collisionCount"] = json!(count);
    true
}

/// What [`create_named`] found.
#[derive(Debug)]
pub enum Named {
    /// The object, as created.
    Created(Value),
    /// The object that already had the name.
    Taken(Value),
}

/// Creates `obj` (of `rt`, named `namespace/name`), or reads the object
/// that has its name already: a name made from a template hash is taken
/// either by the same template (nothing to do) or by a hash collision.
pub async fn create_named(
    objects: &Objects,
    rt: &ResourceType,
    (namespace, name): (&str, &str),
    obj: Value,
) -> Result<Named, StoreError> {
    match objects.create(rt, obj).await {
        Ok(created) => Ok(Named::Created(created)),
        Err(StoreError::AlreadyExists(_)) => {
            Ok(Named::Taken(objects.get(rt, Some(namespace), name).await?))
        }
        Err(e) => Err(e),
    }
}

/// Records a hash collision on `owner` (of `rt`) in the store: see
/// [`set_collision_count`].
pub async fn record_collision(
    objects: &Objects,
    rt: &ResourceType,
    owner: &Value,
    count: u32,
) -> Result<(), StoreError> {
    let (namespace, name) = (meta::namespace(owner), meta::name(owner));
    objects
        .update(rt, Some(namespace), name, |obj| {
            set_collision_count(obj, count)
        })
        .await?;
    Ok(())
}

/// Sets the count `field` of `status`, leaving a zero out as upstream's
/// `omitempty` does.
pub fn set_count<N: Into<Value> + Default + PartialEq>(status: &mut Value, field: &str, count: N) {
    if count != N::default() {
        status[field] = count.into();
    } else if let Some(m) = status.as_object_mut() {
        m.remove(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_at_copies_objects_only() {
        let obj = json!({"a": {"b": 1}, "c": 2});
        assert_eq!(object_at(&obj, "/a"), json!({"b": 1}));
        assert_eq!(object_at(&obj, "/c"), json!({}));
        assert_eq!(object_at(&obj, "/missing"), json!({}));
    }

    #[test]
    fn a_status_is_written_for_its_object_and_only_when_it_changes() {
        let mut obj = json!({"metadata": {"uid": "1"}, "status": {"ready": 2}});
        assert!(
            !edit_status(&mut obj, "2", |s| s["ready"] = json!(3)),
            "another uid"
        );
        assert!(
            !edit_status(&mut obj, "1", |s| s["ready"] = json!(2)),
            "unchanged"
        );
        assert!(edit_status(&mut obj, "1", |s| set_count(s, "ready", 0)));
        assert_eq!(obj["status"], json!({}));
        assert!(edit_status(&mut obj, "1", |s| set_count(s, "ready", 4)));
        assert_eq!(obj["status"], json!({"ready": 4}));
    }
}
