//! Server-side printing: the cells `kubectl get` shows, as the kind
//! modules build their columns from them.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// `columnDefinitions` and the cells of one object, in the same order.
pub type Columns = (Vec<Value>, Vec<String>);

/// kubectl's human-readable age (`45s`, `3m20s`, `5h`, `2d3h`, ...).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return two_units(minutes, 'm', secs % 60, 's');
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        return two_units(hours, 'h', minutes % 60, 'm');
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return two_units(hours / 24, 'd', hours % 24, 'h');
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    format!("{}y", hours / 24 / 365)
}

/// `3m20s`, or `3m` when the smaller unit is zero.
fn two_units(large: i64, large_unit: char, small: i64, small_unit: char) -> String {
    if small == 0 {
        format!("{large}{large_unit}")
    } else {
        format!("{large}{large_unit}{small}{small_unit}")
    }
}

pub fn age_of(v: Option<&Value>) -> String {
    v.and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| human_duration((Utc::now() - t.with_timezone(&Utc)).num_seconds()))
        .unwrap_or_else(|| "<unknown>".into())
}

pub fn s(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(x)) if !x.is_empty() => x.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => if *b { "True" } else { "False" }.into(),
        _ => "<none>".into(),
    }
}

pub fn text(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or_default()
}

/// The elements of `v`; none when it is not an array (or missing).
pub fn elements(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

pub fn n(v: Option<&Value>) -> i64 {
    v.and_then(Value::as_i64).unwrap_or(0)
}

/// How many entries the map `v` has (0 when it is not a map).
pub fn entries(v: &Value) -> usize {
    v.as_object().map_or(0, serde_json::Map::len)
}

/// The numbers at `pointers` in `obj` as cells (`0` when unset), in order.
pub fn counts<const N: usize>(obj: &Value, pointers: [&str; N]) -> [String; N] {
    pointers.map(|p| n(obj.pointer(p)).to_string())
}

/// The Ready cell of a workload with replicas: `ready/desired`.
pub fn ready_of(obj: &Value) -> String {
    let [ready, desired] = counts(obj, ["/status/readyReplicas", "/spec/replicas"]);
    format!("{ready}/{desired}")
}

pub fn col(name: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": "string", "format": format, "description": "", "priority": priority})
}

pub fn selector_text(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return "<none>".into();
    };
    let labels = sel.get("matchLabels").unwrap_or(sel);
    let mut parts: Vec<String> = labels
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
                .collect()
        })
        .unwrap_or_default();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = elements(&e["values"]).filter_map(Value::as_str).collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

pub fn containers_images(template_spec: Option<&Value>) -> (String, String) {
    let cs: Vec<&Value> = template_spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let names: Vec<String> = cs.iter().map(|c| s(c.get("name"))).collect();
    let images: Vec<String> = cs.iter().map(|c| s(c.get("image"))).collect();
    (names.join(","), images.join(","))
}

/// What most rows print from: the NAME and AGE cells, `spec` and `status`
/// (null where unset).
pub fn row(obj: &Value) -> (String, String, &Value, &Value) {
    (
        s(obj.pointer("/metadata/name")),
        age_of(obj.pointer("/metadata/creationTimestamp")),
        &obj["spec"],
        &obj["status"],
    )
}

/// The columns of a kind that prints nothing of its own.
pub fn plain(obj: &Value) -> Columns {
    let (name, age, ..) = row(obj);
    (header("Name|Age"), vec![name, age])
}

/// Column definitions from their names, `|`-separated; `*` marks an
/// `-o wide` column (priority 1).
pub fn header(names: &str) -> Vec<Value> {
    names
        .split('|')
        .map(|name| match name.strip_prefix('*') {
            Some(wide) => col(wide, 1),
            None => col(name, 0),
        })
        .collect()
}

/// [`with_template`] for a workload whose pod template and selector are
/// `spec.template` and `spec.selector`.
pub(super) fn with_pod_template(obj: &Value, own: Columns) -> Columns {
    with_template(
        own,
        obj.pointer("/spec/template/spec"),
        obj.pointer("/spec/selector"),
    )
}

/// A workload's columns, then its `-o wide` containers, images and
/// selector.
pub(super) fn with_template(
    own: Columns,
    template_spec: Option<&Value>,
    selector: Option<&Value>,
) -> Columns {
    let (mut columns, mut cells) = own;
    let (containers, images) = containers_images(template_spec);
    columns.extend(header("*Containers|*Images|*Selector"));
    cells.extend([containers, images, selector_text(selector)]);
    (columns, cells)
}
