//! The one way the API decodes YAML request bodies, bounded as upstream's
//! go-yaml is: aliases may not expand a document far past its own size
//! (`yaml: document contains excessive aliasing`), and nesting is limited.
//!
//! serde_yaml 0.9 already refuses nesting deeper than 128 levels
//! (`recursion limit exceeded`) and caps alias replays at 100 per parsed
//! event (`repetition limit exceeded`), but that cap still lets a 48 KiB
//! "billion laughs" body expand to millions of nodes. So the value is built
//! through a visitor that counts what it builds and stops as soon as the
//! budget is spent, before the expansion costs memory.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// What one decode may build: nodes and scalar bytes. Without aliases a
/// document yields at most about one node per input byte and no more
/// scalar bytes than it has; the floors leave ordinary anchor use (shared
/// snippets in a manifest) alone.
#[derive(Debug, Clone, Copy)]
struct Budget {
    nodes: usize,
    bytes: usize,
}

impl Budget {
    fn for_input(len: usize) -> Self {
        Self {
            nodes: 400_000 + len,
            bytes: (1 << 20) + 2 * len,
        }
    }
}

/// Why a YAML body was refused.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// Aliases expanded past the budget.
    #[error("yaml: document contains excessive aliasing")]
    ExcessiveAliasing,
    /// Anything else the parser refused (syntax, depth, ...).
    #[error("{0}")]
    Parse(String),
}

struct Counter {
    nodes: Cell<usize>,
    bytes: Cell<usize>,
    budget: Budget,
    exceeded: Cell<bool>,
}

impl Counter {
    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        let nodes = self.nodes.get() + 1;
        let total = self.bytes.get().saturating_add(bytes);
        self.nodes.set(nodes);
        self.bytes.set(total);
        if nodes > self.budget.nodes || total > self.budget.bytes {
            self.exceeded.set(true);
            return Err(E::custom("yaml: document contains excessive aliasing"));
        }
        Ok(())
    }
}

struct Seed<'a>(&'a Counter);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.0.charge(1)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.0.charge(1)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.0.charge(1)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.0.charge(1)?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.0.charge(v.len())?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.0.charge(v.len())?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.0.charge(1)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.0.charge(1)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Seed(self.0))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.0.charge(1)?;
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed(self.0))? {
            let value = map.next_value_seed(Seed(self.0))?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Map keys: YAML allows any scalar; JSON objects need strings, which
/// serde_yaml gives for plain scalars when asked for one.
struct KeySeed<'a>(&'a Counter);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        self.0.charge(v.len())?;
        Ok(v.to_string())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        self.0.charge(v.len())?;
        Ok(v)
    }
}

impl From<YamlError> for super::error::ApiError {
    fn from(e: YamlError) -> Self {
        // Upstream's YAML-to-JSON step words its failures this way.
        Self::bad_request(format!("error converting YAML to JSON: {e}"))
    }
}

/// Decodes one YAML document (JSON included) into a JSON value, refusing
/// excessive aliasing and nesting before they cost memory.
pub fn decode(body: &[u8]) -> Result<Value, YamlError> {
    let counter = Counter {
        nodes: Cell::new(0),
        bytes: Cell::new(0),
        budget: Budget::for_input(body.len()),
        exceeded: Cell::new(false),
    };
    let result = Seed(&counter).deserialize(serde_yaml::Deserializer::from_slice(body));
    match result {
        Ok(v) => Ok(v),
        Err(_) if counter.exceeded.get() => Err(YamlError::ExcessiveAliasing),
        // serde_yaml's own cap on alias replays: the same verdict.
        Err(e) if e.to_string().starts_with("repetition limit exceeded") => {
            Err(YamlError::ExcessiveAliasing)
        }
        Err(e) => Err(YamlError::Parse(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "billion laughs" document: each level repeats the previous one
    /// `width` times.
    fn laughs(levels: usize, width: usize) -> String {
        let mut doc = String::from("apiVersion: v1\nkind: ConfigMap\na0: &a0 [\"lol\"]\n");
        for i in 1..=levels {
            let refs = vec![format!("*a{}", i - 1); width].join(",");
            doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        doc
    }

    #[test]
    fn alias_bombs_are_refused_quickly() {
        let doc = laughs(9, 10);
        assert!(doc.len() < 2_000);
        let started = std::time::Instant::now();
        let err = decode(doc.as_bytes()).expect_err("bomb");
        assert!(matches!(err, YamlError::ExcessiveAliasing), "{err}");
        assert_eq!(
            err.to_string(),
            "yaml: document contains excessive aliasing"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn wide_alias_fans_within_serde_yamls_own_cap_are_refused() {
        // 5,000 references to a 5,000-item anchor: 25 million nodes from a
        // ~45 KiB body, yet far fewer alias replays than serde_yaml's cap.
        let items = vec!["lol"; 5_000].join(",");
        let refs = vec!["*a"; 5_000].join(",");
        let doc = format!("a: &a [{items}]\nb: [{refs}]\n");
        assert!(doc.len() < 48 * 1024);
        let started = std::time::Instant::now();
        let err = decode(doc.as_bytes()).expect_err("fan");
        assert!(matches!(err, YamlError::ExcessiveAliasing), "{err}");
        // Expanding the 25 million nodes takes minutes and gigabytes; the
        // refusal takes about a second, more on a loaded machine.
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn long_strings_repeated_by_alias_are_refused() {
        let big = "x".repeat(100_000);
        let refs = vec!["*s"; 100].join(", ");
        let doc = format!("s: &s \"{big}\"\nlist: [{refs}]\n");
        assert!(matches!(
            decode(doc.as_bytes()),
            Err(YamlError::ExcessiveAliasing)
        ));
    }

    #[test]
    fn ordinary_documents_and_modest_anchors_decode() {
        let doc = "a: &x {k: v, n: 1, f: 1.5, b: true, z: null}\nb: *x\n1: one\nlist: [1, two]\n";
        let v = decode(doc.as_bytes()).expect("doc");
        assert_eq!(
            v,
            serde_json::json!({"a": {"k": "v", "n": 1, "f": 1.5, "b": true, "z": null},
                "b": {"k": "v", "n": 1, "f": 1.5, "b": true, "z": null}, "1": "one", "list": [1, "two"]})
        );
        let json = br#"{"kind": "Pod", "spec": {"containers": [{"name": "c"}]}}"#;
        assert_eq!(decode(json).expect("json")["kind"], "Pod");
        // A large flat document without aliases is within budget.
        let flat = format!("[{}]", vec!["1"; 300_000].join(","));
        assert_eq!(
            decode(flat.as_bytes())
                .expect("flat")
                .as_array()
                .map(Vec::len),
            Some(300_000)
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let doc = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = decode(doc.as_bytes()).expect_err("deep");
        assert!(
            err.to_string().contains("recursion limit exceeded"),
            "{err}"
        );
        let err = decode(b"a: [").expect_err("syntax");
        assert!(matches!(err, YamlError::Parse(_)));
    }
}
