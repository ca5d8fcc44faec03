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
