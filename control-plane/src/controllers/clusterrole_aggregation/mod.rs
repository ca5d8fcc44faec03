//! The ClusterRole aggregation controller, as upstream's
//! `clusterroleaggregation`: a ClusterRole with an `aggregationRule` gets
//! as its `rules` the rules of every other ClusterRole its selectors
//! match (by label), so `admin`, `edit` and `view` grow with the roles
//! labelled `rbac.authorization.k8s.io/aggregate-to-*`.
//!
//! Any ClusterRole change may change what any aggregated role gathers:
//! every event re-lists and queues them all (ClusterRoles are few and
//! change rarely); a reconcile that finds the rules as they should be
//! writes nothing.

mod plan;

use std::convert::Infallible;

use serde_json::{Value, json};
use tracing::info;

use super::runtime::{self, Key, Reconciler, Trigger};
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::{Event, StoreError};

/// A ClusterRole, by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleName(pub String);

impl Key for RoleName {
    fn kind(&self) -> &str {
        "ClusterRole"
    }

    fn object_ref(&self) -> String {
        self.0.clone()
    }

    fn namespace(&self) -> Option<&str> {
        None
    }
}

/// The reconciler.
pub struct Aggregation {
    objects: Objects,
}

impl Aggregation {
    /// Writes aggregated rules through `objects`.
    pub fn new(objects: Objects) -> Self {
        Self { objects }
    }
}

impl Reconciler for Aggregation {
    type Key = RoleName;
    type Change = Infallible;
    type Error = StoreError;
    const NAME: &'static str = "clusterrole-aggregation";

    fn watches(&self) -> Result<Vec<String>, StoreError> {
        Ok(vec![kinds::CLUSTERROLES.prefix()])
    }

    fn decode(_: usize, _event: Option<&Event>) -> Option<Trigger<RoleName, Infallible>> {
        Some(Trigger::Resync)
    }

    async fn list(&mut self) -> Result<Vec<RoleName>, StoreError> {
        let (roles, _) = self.objects.list(kinds::CLUSTERROLES).await?;
        Ok(roles
            .iter()
            .filter(|r| plan::aggregates(r))
            .map(|r| RoleName(crate::meta::name(r).to_string()))
            .collect())
    }

    async fn reconcile(&mut self, key: &RoleName) -> Result<runtime::Action, StoreError> {
        let (roles, _) = self.objects.list(kinds::CLUSTERROLES).await?;
        let Some(role) = roles.iter().find(|r| crate::meta::name(r) == key.0) else {
            return Ok(runtime::Action::await_change());
        };
        let Some(rules) = plan::aggregated_rules(role, &roles) else {
            return Ok(runtime::Action::await_change());
        };
        if role.get("rules").unwrap_or(&Value::Null) == &rules
            || (rules == json!([]) && role.get("rules").is_none_or(Value::is_null))
        {
            return Ok(runtime::Action::await_change());
        }
        let written = self
            .objects
            .update(kinds::CLUSTERROLES, None, &key.0, |r| {
                if !plan::aggregates(r) || r.get("rules") == Some(&rules) {
                    return false;
                }
                r["rules"] = rules.clone();
                true
            })
            .await;
        match written {
            Ok(Some(_)) => info!(role = %key.0, "aggregated rules updated"),
            Ok(None) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        Ok(runtime::Action::await_change())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bootstrap roles through the reconciler: `view` gathers
    /// `system:aggregate-to-view`, `edit` gathers view's rules too, and a
    /// new labelled role extends them.
    #[tokio::test]
    async fn aggregated_roles_follow_the_labelled_ones() {
        let objects = Objects::in_memory();
        crate::auth::authz::bootstrap::ensure(&objects)
            .await
            .expect("bootstrap");
        let mut aggregation = Aggregation::new(objects.clone());
        let mut keys = aggregation.list().await.expect("list");
        keys.sort();
        let names: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        assert_eq!(names, ["admin", "edit", "view"]);
        // view first, then edit (which gathers view), then admin.
        for name in ["view", "edit", "admin"] {
            let key = RoleName(name.to_string());
            aggregation.reconcile(&key).await.expect("reconcile");
        }
        let rules = |role: &Value| role["rules"].to_string();
        let view = objects
            .get(kinds::CLUSTERROLES, None, "view")
            .await
            .expect("view");
        let edit = objects
            .get(kinds::CLUSTERROLES, None, "edit")
            .await
            .expect("edit");
        assert!(rules(&view).contains("pods/log"), "{view}");
        assert!(!rules(&view).contains("\"create\""), "{view}");
        assert!(
            rules(&edit).contains("pods/log") && rules(&edit).contains("\"create\""),
            "{edit}"
        );
        objects
            .create(
                kinds::CLUSTERROLES,
                json!({
                    "metadata": {"name": "lab-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                    "rules": [{"verbs": ["get"], "apiGroups": ["lab.example"], "resources": ["widgets"]}],
                }),
            )
            .await
            .expect("create");
        aggregation
            .reconcile(&RoleName("view".into()))
            .await
            .expect("reconcile");
        let view = objects
            .get(kinds::CLUSTERROLES, None, "view")
            .await
            .expect("view");
        assert!(rules(&view).contains("widgets"), "{view}");
        // A reconcile with nothing to change writes nothing.
        let before = view["metadata"]["resourceVersion"].clone();
        aggregation
            .reconcile(&RoleName("view".into()))
            .await
            .expect("reconcile");
        let view = objects
            .get(kinds::CLUSTERROLES, None, "view")
            .await
            .expect("view");
        assert_eq!(view["metadata"]["resourceVersion"], before);
    }
}
