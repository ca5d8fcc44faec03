//! The `pod-template-hash`: which ReplicaSet holds which template. Upstream
//! hashes the Go struct with FNV-32a; we hash a canonical JSON rendering of
//! the template instead (same algorithm and encoding, so names look alike,
//! though the values differ from a real cluster's).

use serde_json::Value;

/// The label (and selector key) that tells a Deployment's sets apart.
pub const HASH_LABEL: &str = "pod-template-hash";

/// Upstream's `rand.SafeEncodeString` alphabet: no vowels (no words), no
/// look-alikes (0/o, 1/l).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-32a, over one buffer.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Upstream's `SafeEncodeString`: each character mapped into [`ALPHANUMS`].
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// Writes `v` with object keys sorted, so the hash does not depend on the
/// order fields arrived in (also the key order of Go's `encoding/json`).
pub(crate) fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The template without our own label, as compared and hashed.
pub fn without_hash_label(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
        if labels.is_empty()
            && let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut)
        {
            m.remove("labels");
        }
    }
    t
}

/// The hash of a pod template; `collision_count` moves it on when the name
/// it would give is taken by a set with another template.
pub fn template_hash(template: &Value, collision_count: Option<u32>) -> String {
    let mut text = String::new();
    canonical(&without_hash_label(template), &mut text);
    let mut bytes = text.into_bytes();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&c.to_le_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// Whether two templates are the same apart from `pod-template-hash` (how
/// a rollback finds the set it returns to).
pub fn templates_equal(a: &Value, b: &Value) -> bool {
    without_hash_label(a) == without_hash_label(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fnv32a_matches_the_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn safe_encoding_uses_the_upstream_alphabet() {
        // '0' is byte 48, 48 % 27 = 21 -> '4'; '9' is 57 % 27 = 3 -> 'f'.
        assert_eq!(safe_encode("09"), "4f");
        let h = template_hash(&json!({"spec": {}}), None);
        assert!(h.bytes().all(|b| ALPHANUMS.contains(&b)), "{h}");
    }

    #[test]
    fn the_hash_is_stable_and_ignores_key_order_and_its_own_label() {
        let a = json!({"metadata": {"labels": {"app": "w", "tier": "f"}},
            "spec": {"containers": [{"name": "web", "image": "v1"}]}});
        let b = json!({"spec": {"containers": [{"image": "v1", "name": "web"}]},
            "metadata": {"labels": {"tier": "f", "app": "w", HASH_LABEL: "xyz"}}});
        assert_eq!(template_hash(&a, None), template_hash(&b, None));
        assert_eq!(template_hash(&a, None), template_hash(&a.clone(), None));
        assert!(templates_equal(&a, &b));
        let c = json!({"metadata": {"labels": {"app": "w", "tier": "f"}},
            "spec": {"containers": [{"name": "web", "image": "v2"}]}});
        assert_ne!(template_hash(&a, None), template_hash(&c, None));
        assert!(!templates_equal(&a, &c));
    }

    #[test]
    fn a_collision_count_changes_the_hash() {
        let t = json!({"spec": {"containers": [{"name": "web"}]}});
        assert_ne!(template_hash(&t, None), template_hash(&t, Some(1)));
        assert_ne!(template_hash(&t, Some(1)), template_hash(&t, Some(2)));
    }
}
