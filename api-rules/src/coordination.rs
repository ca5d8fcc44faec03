//! Leases (`coordination.k8s.io`): a positive duration and a
//! non-negative count of transitions. The holder is free text upstream.

use serde_json::Value;

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
}
