//! Nodes: taints, pod CIDRs, and what an update may not change (upstream's
//! `ValidateNode` and `ValidateNodeUpdate`). Status is not judged: a
//! kubelet's report is taken as sent.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::metadata::{go_quote, label_value_errors, qualified_name_errors};
use crate::net::{NOT_A_CIDR, parse_cidr};

const TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Go's `%#v` of a string slice (`[]string{"a", "b"}`).
pub(crate) fn go_strings(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// The pod CIDRs as the internal type holds them: `podCIDRs`, or the
/// single `podCIDR` an older client set.
fn pod_cidrs(node: &Value) -> Vec<&str> {
    let list: Vec<&str> = node
        .pointer("/spec/podCIDRs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if list.is_empty() {
        let single = str_at(node, "/spec/podCIDR");
        if !single.is_empty() {
            return vec![single];
        }
    }
    list
}

/// Upstream reports taints under `metadata` (its path starts there), and
/// clients match on that wording, so Skiff does too.
fn taint_errors(taints: &[Value]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, taint) in taints.iter().enumerate() {
        let path = format!("metadata.taints[{i}]");
        let key = taint.get("key").and_then(Value::as_str).unwrap_or_default();
        let value = taint
            .get("value")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let effect = taint
            .get("effect")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for m in qualified_name_errors(key) {
            errors.push(format!("{path}.key: Invalid value: {}: {m}", go_quote(key)));
        }
        let value_errors = label_value_errors(value);
        if !value_errors.is_empty() {
            errors.push(format!(
                "{path}.value: Invalid value: {}: {}",
                go_quote(value),
                value_errors.join(";")
            ));
        }
        if effect.is_empty() {
            errors.push(format!("{path}.effect: Required value"));
        } else if !TAINT_EFFECTS.contains(&effect) {
            errors.push(format!(
                "{path}.effect: Unsupported value: {}: supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
                go_quote(effect)
            ));
        }
        if !seen.insert((effect, key)) {
            // Upstream prints the Go value of the taint; a set time shows
            // as a pointer address there, which no client can rely on.
            let added = if taint.get("timeAdded").is_some_and(|t| !t.is_null()) {
                "(*v1.Time)(...)"
            } else {
                "(*v1.Time)(nil)"
            };
            errors.push(format!(
                "{path}: Duplicate value: core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:{added}}}: taints must be unique by key and effect pair",
                go_quote(key),
                go_quote(value),
                go_quote(effect)
            ));
        }
    }
    errors
}

fn pod_cidr_errors(cidrs: &[&str]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut families = Vec::new();
    for (i, cidr) in cidrs.iter().enumerate() {
        match parse_cidr(cidr) {
            Some((ip, _)) => families.push(ip.is_ipv4()),
            None => errors.push(format!(
                "spec.podCIDRs[{i}]: Invalid value: {}: {NOT_A_CIDR}",
                go_quote(cidr)
            )),
        }
    }
    if cidrs.len() > 1 {
        let dual_stack = families.len() == cidrs.len()
            && families.iter().any(|v4| *v4)
            && families.iter().any(|v4| !*v4);
        if !dual_stack || cidrs.len() > 2 {
            errors.push(format!(
                "spec.podCIDRs: Invalid value: {}: may specify no more than one CIDR for each IP family",
                go_strings(cidrs)
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, cidr) in cidrs.iter().enumerate() {
            if !seen.insert(*cidr) {
                errors.push(format!(
                    "spec.podCIDRs[{i}]: Duplicate value: {}",
                    go_quote(cidr)
                ));
            }
        }
    }
    errors
}

/// Every problem with a Node's spec (its metadata is judged elsewhere).
pub fn validate_node(node: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(taints) = node.pointer("/spec/taints").and_then(Value::as_array) {
        errors.extend(taint_errors(taints));
    }
    errors.extend(pod_cidr_errors(&pod_cidrs(node)));
    errors
}

/// What an update may not change: pod CIDRs once assigned, and the
/// provider ID once set (each may go from empty to a value).
pub fn validate_node_update(old: &Value, new: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let (before, after) = (pod_cidrs(old), pod_cidrs(new));
    if !before.is_empty() {
        let changed = before.len() != after.len() || before.iter().zip(&after).any(|(a, b)| a != b);
        if changed {
            errors.push(
                "spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid"
                    .to_string(),
            );
        }
    }
    let provider = str_at(old, "/spec/providerID");
    if !provider.is_empty() && provider != str_at(new, "/spec/providerID") {
        errors.push(
            "spec.providerID: Forbidden: node updates may not change providerID except from \"\" to valid"
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
    fn taints_need_keys_effects_and_label_values() {
        let node = json!({"spec": {"taints": [
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
            {"key": "dedicated", "value": "gpu", "effect": "NoExecute"},
            {"key": "-bad", "effect": "Sometimes"},
            {"key": "v", "value": "a b", "effect": ""},
            {"key": "dedicated", "value": "cpu", "effect": "NoSchedule"},
        ]}});
        assert_eq!(
            validate_node(&node),
            [
                "metadata.taints[2].key: Invalid value: \"-bad\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "metadata.taints[2].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
                "metadata.taints[3].value: Invalid value: \"a b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                "metadata.taints[3].effect: Required value",
                "metadata.taints[4]: Duplicate value: core.Taint{Key:\"dedicated\", Value:\"cpu\", Effect:\"NoSchedule\", TimeAdded:(*v1.Time)(nil)}: taints must be unique by key and effect pair",
            ]
        );
    }

    #[test]
    fn pod_cidrs_are_cidrs_one_per_family() {
        assert!(validate_node(&json!({"spec": {"podCIDR": "10.244.1.0/24"}})).is_empty());
        assert!(
            validate_node(&json!({"spec": {"podCIDRs": ["10.244.1.0/24", "fd00:1::/64"]}}))
                .is_empty()
        );
        assert_eq!(
            validate_node(&json!({"spec": {"podCIDR": "10.244.1.0"}})),
            [
                "spec.podCIDRs[0]: Invalid value: \"10.244.1.0\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
            ]
        );
        assert_eq!(
            validate_node(&json!({"spec": {"podCIDRs": ["10.0.0.0/24", "10.0.0.0/24"]}})),
            [
                "spec.podCIDRs: Invalid value: []string{\"10.0.0.0/24\", \"10.0.0.0/24\"}: may specify no more than one CIDR for each IP family",
                "spec.podCIDRs[1]: Duplicate value: \"10.0.0.0/24\""
            ]
        );
        assert_eq!(
            validate_node(
                &json!({"spec": {"podCIDRs": ["10.0.0.0/24", "fd00::/64", "10.1.0.0/24"]}})
            ),
            [
                "spec.podCIDRs: Invalid value: []string{\"10.0.0.0/24\", \"fd00::/64\", \"10.1.0.0/24\"}: may specify no more than one CIDR for each IP family"
            ]
        );
    }

    #[test]
    fn cidrs_and_provider_are_set_once() {
        let empty = json!({"spec": {}});
        let assigned = json!({"spec": {"podCIDR": "10.0.1.0/24", "podCIDRs": ["10.0.1.0/24"], "providerID": "skiff://a"}});
        assert!(validate_node_update(&empty, &assigned).is_empty());
        assert!(validate_node_update(&assigned, &assigned).is_empty());
        let moved = json!({"spec": {"podCIDRs": ["10.0.2.0/24"], "providerID": "skiff://b"}});
        assert_eq!(
            validate_node_update(&assigned, &moved),
            [
                "spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid",
                "spec.providerID: Forbidden: node updates may not change providerID except from \"\" to valid"
            ]
        );
    }
}
