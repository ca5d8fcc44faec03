//! Server-owned metadata values: timestamps, uids, generated name suffixes.

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

/// Now, as Kubernetes writes timestamps.
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// 64 random bits. std's `RandomState` keys SipHash from the kernel's
/// random source once per thread and steps the keys for every new state,
/// so this costs a hash, not a system call per object created.
fn random_u64(salt: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(salt);
    hasher.finish()
}

/// A random v4 UUID.
pub fn uuid() -> String {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    let (hi, lo) = (random_u64(nanos), random_u64(!nanos));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xfff,
        0x8 | (lo >> 62),
        (lo >> 48) & 0xfff,
        lo & 0xffff_ffff_ffff
    )
}

/// Five random lowercase alphanumerics (generateName suffixes).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let id = uuid().replace('-', "");
    id.bytes()
        .take(5)
        .enumerate()
        .map(|(i, b)| ALPHABET[(b as usize + i * 7) % ALPHABET.len()] as char)
        .collect()
}

/// Names an object that has none from its `generateName` prefix, as
/// upstream does on create; `meta` is the object's `metadata`.
pub fn generate_name(meta: &mut Value) {
    if meta
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
        && let Some(prefix) = meta
            .get("generateName")
            .and_then(Value::as_str)
            .map(String::from)
    {
        meta["name"] = json!(format!("{prefix}{}", random_suffix()));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuids_are_v4_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| super::uuid()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let parts: Vec<&str> = id.split('-').collect();
            let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            assert_eq!(lens, [8, 4, 4, 4, 12], "{id}");
            assert!(parts[2].starts_with('4'), "{id}");
            assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{id}");
        }
    }
}
