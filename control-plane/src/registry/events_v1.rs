//! `events.k8s.io/v1` Events: a second view of the core `v1` Events.
//!
//! Upstream stores one Event object and serves it under both group
//! versions, converting on the way in and out. Skiff does the same with
//! the smallest change to the generic handlers: the `events.k8s.io` type
//! shares the core Events' store prefix ([`ResourceType::storage_group`]),
//! the store always holds the core form, and the API edge converts:
//!
//! - [`view`] turns what the store holds into the form the request's group
//!   version names (reads, lists, watches, the result of writes), so
//!   patches, server-side apply and field selectors work on the
//!   `events.k8s.io` fields (`regarding.kind`, `reportingController`);
//! - [`stored`] turns a written object back into the core form.
//!
//! Field mapping, as upstream's conversion: `note` ↔ `message`, `regarding`
//! ↔ `involvedObject`, `reportingController` ↔ `reportingComponent`,
//! `deprecatedSource` ↔ `source`, `deprecatedFirstTimestamp`,
//! `deprecatedLastTimestamp`, `deprecatedCount` ↔ `firstTimestamp`,
//! `lastTimestamp`, `count`; the rest keep their names. Fields the target
//! form lacks are dropped, as upstream's typed conversion drops them.
//!
//! One departure: a core Event written without `eventTime` (kubelets and
//! old clients leave it unset) is sent with its first occurrence as
//! `eventTime` ([`shown`]; upstream sends `null`), because typed clients
//! (the official Python client's models) require that field and fail to
//! read the whole list otherwise. The store never keeps that time:
//! [`forget_shown_time`] drops it when a client writes it back unchanged.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::Event as CoreEvent;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::registry::resources::ResourceType;

/// The group served here.
pub const GROUP: &str = "events.k8s.io";

/// `(core field, events.k8s.io field)`, for every field either form has
/// besides `apiVersion` and `kind`.
const FIELDS: &[(&str, &str)] = &[
    ("metadata", "metadata"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
    ("action", "action"),
    ("reason", "reason"),
    ("involvedObject", "regarding"),
    ("related", "related"),
    ("message", "note"),
    ("type", "type"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Whether objects of `rt` are converted (the `events.k8s.io` Event).
pub fn converts(rt: &ResourceType) -> bool {
    rt.group == GROUP && rt.kind == "Event"
}

fn renamed(
    obj: &Value,
    pairs: impl Iterator<Item = (&'static str, &'static str)>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (from, to) in pairs {
        if let Some(v) = obj.get(from).filter(|v| !v.is_null()) {
            out.insert(to.to_string(), v.clone());
        }
    }
    out
}

/// The `events.k8s.io/v1` form of a core Event.
pub fn from_core(core: &Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!("Event"));
    out.insert("apiVersion".into(), json!(format!("{GROUP}/v1")));
    out.extend(renamed(core, FIELDS.iter().copied()));
    Value::Object(out)
}

/// The `eventTime` a legacy Event (`events.k8s.io` form) is shown with:
/// its first occurrence.
fn shown_time(event: &Value) -> Option<String> {
    ["deprecatedFirstTimestamp", "deprecatedLastTimestamp"]
        .iter()
        .find_map(|f| event.get(*f).and_then(Value::as_str))
        .or_else(|| {
            event
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
        })
        .and_then(micro_time)
}

/// `obj` as sent to a client of `rt`: with an `eventTime` (see the module
/// documentation); never stored.
pub fn shown<'a>(rt: &ResourceType, obj: &'a Value) -> Cow<'a, Value> {
    if !converts(rt) || !obj.is_object() || obj.get("eventTime").is_some_and(|t| !t.is_null()) {
        return Cow::Borrowed(obj);
    }
    match shown_time(obj) {
        Some(time) => {
            let mut out = obj.clone();
            out["eventTime"] = json!(time);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(obj),
    }
}

/// Forgets the `eventTime` [`shown`] added, when a client writes it back
/// unchanged over an Event stored without one (read, modify, replace).
pub fn forget_shown_time(rt: &ResourceType, old: &Value, new: &mut Value) {
    if !converts(rt) || old.get("eventTime").is_some_and(|t| !t.is_null()) {
        return;
    }
    let sent = new.get("eventTime").and_then(Value::as_str);
    if sent.is_some()
        && sent.map(String::from) == shown_time(old)
        && let Some(m) = new.as_object_mut()
    {
        m.remove("eventTime");
    }
}

/// The core `v1` form of an `events.k8s.io/v1` Event.
pub fn to_core(event: &Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!("Event"));
    out.insert("apiVersion".into(), json!("v1"));
    out.extend(renamed(event, FIELDS.iter().map(|(core, v1)| (*v1, *core))));
    Value::Object(out)
}

/// An RFC 3339 time as a MicroTime (`2026-01-01T00:00:00.000000Z`).
fn micro_time(time: &str) -> Option<String> {
    let parsed = chrono::DateTime::parse_from_rfc3339(time).ok()?;
    Some(
        parsed
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string(),
    )
}

/// What a client of `rt` sees of `stored` (the store's core form).
pub fn view(rt: &ResourceType, stored: Value) -> Value {
    if converts(rt) && stored.is_object() {
        from_core(&stored)
    } else {
        stored
    }
}

/// What the store keeps of `obj`, written through `rt`.
pub fn stored<'a>(rt: &ResourceType, obj: &'a Value) -> Cow<'a, Value> {
    if converts(rt) {
        Cow::Owned(to_core(obj))
    } else {
        Cow::Borrowed(obj)
    }
}

/// The core form of `obj` shown through `rt` (what upstream's printers
/// read: both group versions print the same columns).
pub fn core_form<'a>(rt: &ResourceType, obj: &'a Value) -> Cow<'a, Value> {
    stored(rt, obj)
}

fn decoded(obj: &Value) -> Option<CoreEvent> {
    serde_json::from_value(to_core(obj)).ok()
}

/// Upstream's checks of an Event created through `events.k8s.io/v1`
/// (shapes that do not decode are the generic validation's to report).
pub fn validate_create(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    if !converts(rt) {
        return Ok(());
    }
    let Some(event) = decoded(obj) else {
        return Ok(());
    };
    let errors = skiff_api_rules::event::validate_v1_create(&event);
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(rt, crate::meta::name(obj), &errors))
}

/// Upstream's checks of an Event replaced through `events.k8s.io/v1`.
pub fn validate_update(rt: &ResourceType, old: &Value, new: &Value) -> Result<(), ApiError> {
    if !converts(rt) {
        return Ok(());
    }
    let (Some(old_event), Some(new_event)) = (decoded(old), decoded(new)) else {
        return Ok(());
    };
    let errors = skiff_api_rules::event::validate_v1_update(&new_event, &old_event);
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(rt, crate::meta::name(new), &errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core_event() -> Value {
        json!({
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": {"name": "web.1", "namespace": "default", "uid": "u", "resourceVersion": "7"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "apiVersion": "v1"},
            "related": {"kind": "Node", "name": "node1"},
            "reason": "Started",
            "message": "Started container web",
            "type": "Normal",
            "source": {"component": "kubelet", "host": "node1"},
            "firstTimestamp": "2026-01-01T00:00:00Z",
            "lastTimestamp": "2026-01-01T00:00:05Z",
            "count": 3,
            "eventTime": "2026-01-01T00:00:00.123456Z",
            "series": {"count": 3, "lastObservedTime": "2026-01-01T00:00:05.000000Z"},
            "action": "Starting",
            "reportingComponent": "kubelet",
            "reportingInstance": "node1",
        })
    }

    #[test]
    fn core_events_read_with_upstreams_names() {
        let v1 = from_core(&core_event());
        assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
        assert_eq!(v1["note"], "Started container web");
        assert_eq!(v1["regarding"]["name"], "web");
        assert_eq!(v1["related"]["name"], "node1");
        assert_eq!(v1["reportingController"], "kubelet");
        assert_eq!(v1["reportingInstance"], "node1");
        assert_eq!(v1["deprecatedSource"]["host"], "node1");
        assert_eq!(v1["deprecatedFirstTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(v1["deprecatedLastTimestamp"], "2026-01-01T00:00:05Z");
        assert_eq!(v1["deprecatedCount"], 3);
        assert_eq!(v1["series"]["count"], 3);
        assert_eq!(v1["metadata"]["resourceVersion"], "7");
        for core_only in [
            "message",
            "involvedObject",
            "source",
            "count",
            "firstTimestamp",
        ] {
            assert!(v1.get(core_only).is_none(), "{core_only} leaked");
        }
    }

    #[test]
    fn both_forms_round_trip() {
        let core = core_event();
        assert_eq!(to_core(&from_core(&core)), core);
        let v1 = from_core(&core);
        assert_eq!(from_core(&to_core(&v1)), v1);
    }

    #[test]
    fn fields_of_the_other_form_are_dropped() {
        let v1 = json!({"metadata": {"name": "x"}, "note": "n", "message": "stray", "bogus": 1});
        let core = to_core(&v1);
        assert_eq!(core["message"], "n");
        assert!(core.get("bogus").is_none() && core.get("note").is_none());
    }

    #[test]
    fn legacy_events_show_their_first_occurrence_as_event_time() {
        let v1_rt = crate::registry::resources::find(GROUP, "v1", "events").expect("v1");
        let mut core = core_event();
        core.as_object_mut().expect("object").remove("eventTime");
        let stored_view = from_core(&core);
        assert!(stored_view.get("eventTime").is_none());
        let sent = shown(v1_rt, &stored_view).into_owned();
        assert_eq!(sent["eventTime"], "2026-01-01T00:00:00.000000Z");
        // Written back unchanged, it is not stored; a new value is.
        let mut back = sent.clone();
        forget_shown_time(v1_rt, &stored_view, &mut back);
        assert!(back.get("eventTime").is_none());
        let mut changed = sent;
        changed["eventTime"] = json!("2027-01-01T00:00:00.000000Z");
        forget_shown_time(v1_rt, &stored_view, &mut changed);
        assert_eq!(changed["eventTime"], "2027-01-01T00:00:00.000000Z");
        let bare = from_core(
            &json!({"metadata": {"name": "x", "creationTimestamp": "2026-02-02T02:02:02Z"}}),
        );
        assert_eq!(
            shown(v1_rt, &bare)["eventTime"],
            "2026-02-02T02:02:02.000000Z"
        );
        let core_rt = crate::registry::kinds::EVENTS;
        assert!(shown(core_rt, &core).get("eventTime").is_none());
    }

    #[test]
    fn only_the_events_group_converts() {
        let core_rt = crate::registry::kinds::EVENTS;
        let v1_rt = crate::registry::resources::find(GROUP, "v1", "events").expect("v1");
        assert!(!converts(core_rt) && converts(v1_rt));
        assert_eq!(core_rt.prefix(), v1_rt.prefix());
        let core = core_event();
        assert_eq!(view(core_rt, core.clone()), core);
        assert_eq!(view(v1_rt, core.clone())["note"], "Started container web");
        assert_eq!(stored(v1_rt, &from_core(&core)).as_ref(), &core);
    }

    #[test]
    fn invalid_creates_answer_with_upstreams_words() {
        let v1_rt = crate::registry::resources::find(GROUP, "v1", "events").expect("v1");
        let event = json!({"metadata": {"name": "bad", "namespace": "default"},
            "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
            "eventTime": "2026-01-01T00:00:00.000000Z", "reason": "R", "action": "A",
            "type": "Normal"});
        let err = validate_create(v1_rt, &event).expect_err("invalid");
        assert_eq!(err.code, 422);
        assert!(
            err.message.starts_with(
                "Event.events.k8s.io \"bad\" is invalid: [reportingController: Required value"
            ),
            "{}",
            err.message
        );
    }
}
