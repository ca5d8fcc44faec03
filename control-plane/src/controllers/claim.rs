//! Ownership claims as the controllers write them: adopting an orphan
//! (becoming its controller) and releasing a dependent (dropping the
//! references to an owner). Pure mutations, for `Objects::update`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};

use super::fields::retain_in_metadata;
use crate::meta::controller_uid;

/// Makes `reference` the controller of `obj` unless it has one already;
/// whether `obj` changed.
pub fn adopt(obj: &mut Value, reference: &Value) -> bool {
    if controller_uid(obj).is_some() {
        return false;
    }
    match obj["metadata"]["ownerReferences"].as_array_mut() {
        Some(refs) => refs.push(reference.clone()),
        None => obj["metadata"]["ownerReferences"] = json!([reference.clone()]),
    }
    true
}

/// The owner's `spec.selector`, unless it is missing, unreadable or
/// empty: an empty selector would claim every pod of the namespace, so the
/// owner claims none.
pub fn selector_of(owner: &Value) -> Option<LabelSelector> {
    owner
        .pointer("/spec/selector")
        .and_then(|s| serde_json::from_value::<LabelSelector>(s.clone()).ok())
        .filter(|s| {
            s.match_labels.as_ref().is_some_and(|m| !m.is_empty())
                || s.match_expressions.as_ref().is_some_and(|e| !e.is_empty())
        })
}

/// Drops `obj`'s references to the owners whose uid `gone` accepts;
/// whether `obj` changed.
pub fn release(obj: &mut Value, gone: impl Fn(&str) -> bool) -> bool {
    retain_in_metadata(obj, "ownerReferences", |r| {
        !r["uid"].as_str().is_some_and(&gone)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adopting_takes_only_orphans_and_releasing_drops_empty_lists() {
        let reference = json!({"uid": "rs", "controller": true});
        let mut orphan = json!({"metadata": {"ownerReferences": [{"uid": "x"}]}});
        assert!(adopt(&mut orphan, &reference));
        assert_eq!(controller_uid(&orphan), Some("rs"));
        assert!(!adopt(
            &mut orphan,
            &json!({"uid": "other", "controller": true})
        ));
        assert!(release(&mut orphan, |uid| uid == "rs"));
        assert!(
            !release(&mut orphan, |uid| uid == "rs"),
            "nothing left to drop"
        );
        assert!(release(&mut orphan, |uid| uid == "x"));
        assert_eq!(orphan, json!({"metadata": {}}));
        let mut bare = json!({"metadata": {}});
        assert!(adopt(&mut bare, &reference));
        assert_eq!(bare["metadata"]["ownerReferences"], json!([reference]));
    }
}
