//! Node selectors of node affinity (`nodeSelectorTerms`, preferred terms),
//! compiled once per pod so that checking a thousand nodes is cheap.
//! Semantics follow upstream's `nodeaffinity` helpers: terms are ORed,
//! the requirements of a term ANDed, and an empty term matches nothing.

use std::collections::BTreeMap;

use serde_json::Value;

/// Node labels.
pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq)]
enum Operator {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
    /// An operator or value upstream validation would reject: matches nothing.
    Invalid,
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Operator,
}

impl Requirement {
    fn parse(expr: &Value) -> Self {
        let values: Vec<String> = expr["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        let single_int = || match values.as_slice() {
            [one] => one.parse::<i64>().ok(),
            _ => None,
        };
        let op = match expr["operator"].as_str().unwrap_or_default() {
            "In" if !values.is_empty() => Operator::In(values.clone()),
            "NotIn" if !values.is_empty() => Operator::NotIn(values.clone()),
            "Exists" if values.is_empty() => Operator::Exists,
            "DoesNotExist" if values.is_empty() => Operator::DoesNotExist,
            "Gt" => single_int().map_or(Operator::Invalid, Operator::Gt),
            "Lt" => single_int().map_or(Operator::Invalid, Operator::Lt),
            _ => Operator::Invalid,
        };
        Self {
            key: expr["key"].as_str().unwrap_or_default().to_string(),
            op,
        }
    }

    /// `value`: the node's value for the key, if it has it.
    fn matches(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (Operator::In(vs), Some(v)) => vs.iter().any(|x| x == v),
            (Operator::NotIn(vs), Some(v)) => !vs.iter().any(|x| x == v),
            (Operator::NotIn(_), None) => true,
            (Operator::Exists, v) => v.is_some(),
            (Operator::DoesNotExist, v) => v.is_none(),
            // A label that is not an integer never compares.
            (Operator::Gt(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v > *n),
            (Operator::Lt(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v < *n),
            _ => false,
        }
    }
}

/// One `nodeSelectorTerm`: label expressions and field expressions, ANDed.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

impl Term {
    fn parse(term: &Value) -> Self {
        let list = |name: &str| {
            term[name]
                .as_array()
                .into_iter()
                .flatten()
                .map(Requirement::parse)
                .collect()
        };
        let mut fields: Vec<Requirement> = list("matchFields");
        // Upstream supports one field, `metadata.name`, with In / NotIn.
        for f in &mut fields {
            let supported =
                f.key == "metadata.name" && matches!(f.op, Operator::In(_) | Operator::NotIn(_));
            if !supported {
                f.op = Operator::Invalid;
            }
        }
        Self {
            labels: list("matchExpressions"),
            fields,
        }
    }

    /// Whether a node named `name` with `labels` satisfies the term.
    pub fn matches(&self, name: &str, labels: &Labels) -> bool {
        if self.labels.is_empty() && self.fields.is_empty() {
            return false;
        }
        self.labels
            .iter()
            .all(|r| r.matches(labels.get(&r.key).map(String::as_str)))
            && self.fields.iter().all(|r| r.matches(Some(name)))
    }
}

/// `requiredDuringSchedulingIgnoredDuringExecution`: any term matches.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSelector {
    terms: Vec<Term>,
}

impl NodeSelector {
    /// Reads a `NodeSelector` object (`{"nodeSelectorTerms": [...]}`), as
    /// a PersistentVolume's `nodeAffinity.required`.
    pub fn of_terms(selector: &Value) -> Self {
        Self {
            terms: selector["nodeSelectorTerms"]
                .as_array()
                .into_iter()
                .flatten()
                .map(Term::parse)
                .collect(),
        }
    }

    /// Whether the node satisfies one of the terms.
    pub fn matches(&self, name: &str, labels: &Labels) -> bool {
        self.terms.iter().any(|t| t.matches(name, labels))
    }
}

/// The node affinity of a pod, compiled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeAffinity {
    /// Required terms; `None` when the pod has none (every node passes).
    pub required: Option<NodeSelector>,
    /// Preferred terms with their weights (1..100).
    pub preferred: Vec<(i64, Term)>,
}

impl NodeAffinity {
    /// Reads `spec.affinity.nodeAffinity` of a pod spec.
    pub fn of_spec(spec: &Value) -> Self {
        let affinity = &spec["affinity"]["nodeAffinity"];
        let required = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
            .get("nodeSelectorTerms")
            .and_then(Value::as_array)
            .map(|terms| NodeSelector {
                terms: terms.iter().map(Term::parse).collect(),
            });
        let preferred = affinity["preferredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let weight = p["weight"].as_i64().filter(|w| *w != 0)?;
                Some((weight, Term::parse(&p["preference"])))
            })
            .collect();
        Self {
            required,
            preferred,
        }
    }

    /// Upstream's NodeAffinity score before normalising: the sum of the
    /// weights of the preferred terms the node matches.
    pub fn preference(&self, name: &str, labels: &Labels) -> i64 {
        self.preferred
            .iter()
            .filter(|(_, t)| t.matches(name, labels))
            .map(|(w, _)| w)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn required(terms: Value) -> NodeSelector {
        NodeAffinity::of_spec(&json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}))
        .required
        .expect("required terms")
    }

    #[test]
    fn every_operator() {
        let node = labels(&[("zone", "a"), ("gen", "5")]);
        let check =
            |expr: Value| required(json!([{"matchExpressions": [expr]}])).matches("n1", &node);
        assert!(check(
            json!({"key": "zone", "operator": "In", "values": ["a", "b"]})
        ));
        assert!(!check(
            json!({"key": "zone", "operator": "In", "values": ["b"]})
        ));
        assert!(!check(
            json!({"key": "none", "operator": "In", "values": ["a"]})
        ));
        assert!(check(
            json!({"key": "zone", "operator": "NotIn", "values": ["b"]})
        ));
        assert!(!check(
            json!({"key": "zone", "operator": "NotIn", "values": ["a"]})
        ));
        assert!(check(
            json!({"key": "none", "operator": "NotIn", "values": ["a"]})
        ));
        assert!(check(json!({"key": "zone", "operator": "Exists"})));
        assert!(!check(json!({"key": "none", "operator": "Exists"})));
        assert!(check(json!({"key": "none", "operator": "DoesNotExist"})));
        assert!(!check(json!({"key": "zone", "operator": "DoesNotExist"})));
        assert!(check(
            json!({"key": "gen", "operator": "Gt", "values": ["4"]})
        ));
        assert!(!check(
            json!({"key": "gen", "operator": "Gt", "values": ["5"]})
        ));
        assert!(check(
            json!({"key": "gen", "operator": "Lt", "values": ["6"]})
        ));
        assert!(!check(
            json!({"key": "gen", "operator": "Lt", "values": ["5"]})
        ));
        // Not integers, or not exactly one value: never matches.
        assert!(!check(
            json!({"key": "zone", "operator": "Gt", "values": ["1"]})
        ));
        assert!(!check(
            json!({"key": "gen", "operator": "Gt", "values": ["1", "2"]})
        ));
        assert!(!check(
            json!({"key": "gen", "operator": "Lt", "values": ["x"]})
        ));
        assert!(!check(
            json!({"key": "zone", "operator": "Near", "values": ["a"]})
        ));
    }

    #[test]
    fn terms_are_ored_and_expressions_anded() {
        let node = labels(&[("zone", "a"), ("disk", "ssd")]);
        let both = json!({"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a"]},
            {"key": "disk", "operator": "In", "values": ["hdd"]}]});
        assert!(!required(json!([both.clone()])).matches("n", &node));
        let other = json!({"matchExpressions": [{"key": "disk", "operator": "Exists"}]});
        assert!(required(json!([both, other])).matches("n", &node));
        // An empty term, or no terms at all, matches nothing.
        assert!(!required(json!([{}])).matches("n", &node));
        assert!(!required(json!([])).matches("n", &node));
    }

    #[test]
    fn match_fields_select_by_node_name() {
        let none = Labels::new();
        let sel = required(json!([{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["n1", "n2"]}]}]));
        assert!(sel.matches("n2", &none));
        assert!(!sel.matches("n3", &none));
        let sel = required(json!([{"matchFields": [
            {"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}]));
        assert!(sel.matches("n2", &none));
        assert!(!sel.matches("n1", &none));
        // Other fields or operators are not supported upstream.
        let sel = required(json!([{"matchFields": [
            {"key": "metadata.uid", "operator": "In", "values": ["n1"]}]}]));
        assert!(!sel.matches("n1", &none));
        let sel = required(json!([{"matchFields": [
            {"key": "metadata.name", "operator": "Exists"}]}]));
        assert!(!sel.matches("n1", &none));
        // Labels and fields of one term are ANDed.
        let sel = required(json!([{
            "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}],
            "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]));
        assert!(sel.matches("n1", &labels(&[("zone", "a")])));
        assert!(!sel.matches("n1", &none));
    }

    #[test]
    fn no_affinity_means_no_constraint() {
        let a = NodeAffinity::of_spec(&json!({}));
        assert!(a.required.is_none());
        assert_eq!(a.preference("n", &Labels::new()), 0);
    }

    #[test]
    fn preferred_terms_sum_their_weights() {
        let a = NodeAffinity::of_spec(&json!({"affinity": {"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 80, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
            {"weight": 20, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}},
            {"weight": 5, "preference": {}},
        ]}}}));
        assert_eq!(
            a.preference("n", &labels(&[("zone", "a"), ("disk", "x")])),
            100
        );
        assert_eq!(a.preference("n", &labels(&[("disk", "x")])), 20);
        assert_eq!(a.preference("n", &Labels::new()), 0);
    }
}
