//! What an aggregated ClusterRole's rules should be (pure).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

/// Whether `role` has an aggregation rule.
pub fn aggregates(role: &Value) -> bool {
    role.get("aggregationRule").is_some_and(|a| !a.is_null())
}

fn labels(role: &Value) -> BTreeMap<String, String> {
    role.pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default()
}

/// The rules `role` gathers from `roles` (every ClusterRole): those of
/// each other role a selector matches, by role name, each rule once, as
/// upstream; `None` if `role` does not aggregate.
pub fn aggregated_rules(role: &Value, roles: &[Value]) -> Option<Value> {
    if !aggregates(role) {
        return None;
    }
    let selectors: Vec<LabelSelector> = role
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    let name = crate::meta::name(role);
    let mut sources: Vec<&Value> = roles
        .iter()
        .filter(|r| crate::meta::name(r) != name)
        .filter(|r| {
            let labels = labels(r);
            selectors
                .iter()
                .any(|s| skiff_api_rules::workloads::selector_matches(s, &labels))
        })
        .collect();
    sources.sort_by_key(|r| crate::meta::name(r));
    let mut rules: Vec<Value> = Vec::new();
    for source in sources {
        for rule in source
            .get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !rules.contains(rule) {
                rules.push(rule.clone());
            }
        }
    }
    Some(Value::Array(rules))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn role(name: &str, labels: Value, rules: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "rules": rules})
    }

    #[test]
    fn an_aggregated_role_gathers_the_rules_of_matching_roles_once_in_name_order() {
        let get = json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]});
        let list = json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]});
        let view = json!({
            "metadata": {"name": "view", "labels": {"agg-edit": "true"}},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg-view": "true"}}]},
        });
        let roles = vec![
            view.clone(),
            role("z-extra", json!({"agg-view": "true"}), json!([list, get])),
            role("a-base", json!({"agg-view": "true"}), json!([get])),
            role(
                "other",
                json!({}),
                json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]),
            ),
        ];
        assert_eq!(aggregated_rules(&view, &roles), Some(json!([get, list])));
        assert_eq!(aggregated_rules(&roles[1], &roles), None);
        // A role matching its own selector does not gather itself.
        let selfish = json!({
            "metadata": {"name": "s", "labels": {"agg-view": "true"}},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg-view": "true"}}]},
        });
        assert_eq!(
            aggregated_rules(&selfish, std::slice::from_ref(&selfish)),
            Some(json!([]))
        );
    }
}
