//! Int-or-percent values (`maxSurge`, `maxUnavailable`), as the rolling
//! strategies of Deployments and DaemonSets read them.

use serde_json::Value;

/// An int-or-percent (`maxSurge`, `maxUnavailable`) against `total`;
/// percentages round up or down as asked. A malformed value counts as 0.
pub fn scaled_value(v: Option<&Value>, total: i64, round_up: bool) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => {
            if let Some(p) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
                let x = p * total;
                if round_up {
                    (x + 99).div_euclid(100)
                } else {
                    x.div_euclid(100)
                }
            } else {
                s.parse().unwrap_or(0)
            }
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn percentages_scale_and_round_as_asked() {
        assert_eq!(scaled_value(Some(&json!("25%")), 10, true), 3);
        assert_eq!(scaled_value(Some(&json!("25%")), 10, false), 2);
        assert_eq!(scaled_value(Some(&json!(4)), 10, false), 4);
        assert_eq!(scaled_value(Some(&json!("3")), 10, false), 3);
        assert_eq!(scaled_value(Some(&json!("x%")), 10, false), 0);
        assert_eq!(scaled_value(None, 10, true), 0);
    }
}
