//! Leases (`coordination.k8s.io`): a positive duration, a non-negative
//! count of transitions, and a known coordination strategy before a
//! preferred holder. The holder is free text upstream.

use serde_json::Value;

use crate::metadata::{go_quote, qualified_name_errors};

/// Upstream's `ValidateCoordinatedLeaseStrategy`: a bare name must be one
/// Kubernetes defines, a prefixed one a qualified name. Upstream reports it
/// at `strategy.strategy` (the child of the path it is given), and so does
/// Skiff.
fn strategy_errors(strategy: &str) -> Vec<String> {
    let path = "spec.strategy.strategy";
    if !strategy.contains('/') {
        if strategy == "OldestEmulationVersion" {
            return Vec::new();
        }
        return vec![format!(
            "{path}: Unsupported value: {}: supported values: \"OldestEmulationVersion\"",
            go_quote(strategy)
        )];
    }
    qualified_name_errors(strategy)
        .iter()
        .map(|m| format!("{path}: Invalid value: {}: {m}", go_quote(strategy)))
        .collect()
}

/// Every problem with a Lease's spec.
pub fn validate_lease(lease: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(d) = lease
        .pointer("/spec/leaseDurationSeconds")
        .and_then(Value::as_i64)
        .filter(|d| *d <= 0)
    {
        errors.push(format!(
            "spec.leaseDurationSeconds: Invalid value: {d}: must be greater than 0"
        ));
    }
    if let Some(t) = lease
        .pointer("/spec/leaseTransitions")
        .and_then(Value::as_i64)
        .filter(|t| *t < 0)
    {
        errors.push(format!(
            "spec.leaseTransitions: Invalid value: {t}: must be greater than or equal to 0"
        ));
    }
    let strategy = lease.pointer("/spec/strategy").and_then(Value::as_str);
    if let Some(strategy) = strategy {
        errors.extend(strategy_errors(strategy));
    }
    let preferred = lease
        .pointer("/spec/preferredHolder")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !preferred.is_empty() && strategy.unwrap_or_default().is_empty() {
        errors.push(
            "spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined"
                .to_string(),
        );
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_are_positive_and_transitions_counted() {
        assert!(
            validate_lease(&json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 0}}))
                .is_empty()
        );
        assert_eq!(
            validate_lease(&json!({"spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}})),
            [
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0"
            ]
        );
    }

    #[test]
    fn strategies_are_known_before_a_holder_is_preferred() {
        assert!(
            validate_lease(
                &json!({"spec": {"strategy": "OldestEmulationVersion", "preferredHolder": "b"}})
            )
            .is_empty()
        );
        assert!(validate_lease(&json!({"spec": {"strategy": "example.com/mine"}})).is_empty());
        assert_eq!(
            validate_lease(&json!({"spec": {"strategy": "Newest"}})),
            [
                "spec.strategy.strategy: Unsupported value: \"Newest\": supported values: \"OldestEmulationVersion\""
            ]
        );
        assert_eq!(
            validate_lease(&json!({"spec": {"preferredHolder": "b"}})),
            ["spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined"]
        );
    }
}
