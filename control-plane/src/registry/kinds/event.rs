//! Events, core and `events.k8s.io`.

use serde_json::Value;

use super::printing::{Columns, age_of, header, n, row, text};
use super::support::{decode, typed_schema};
use crate::registry::resource_type::{Behaviour, Errors, ResourceType, rt};

/// `events` in `v1`.
pub const EVENTS: &ResourceType = &rt! {
    "", "v1", "events", "event", "Event", true, &["ev"], &[], &[], &CoreEventRules
};

/// `events.events.k8s.io` in `events.k8s.io/v1`.
/// Stored as core Events: one object behind two group versions.
pub const EVENTS_V1: &ResourceType = &ResourceType {
    storage_group: "",
    ..rt! {
        "events.k8s.io", "v1", "events", "event", "Event", true, &["ev"], &[], &[], &EventV1Rules
    }
};

fn core_columns(rt: &ResourceType, obj: &Value) -> Columns {
    let (name, ..) = row(obj);
    // Both group versions print the core form.
    let core = crate::registry::events_v1::core_form(rt, obj);
    let obj = core.as_ref();
    // Upstream's printEvent with Wide set (the server always prints
    // wide; kubectl hides priority-1 columns without `-o wide`).
    let first = obj
        .get("firstTimestamp")
        .filter(|t| !t.is_null())
        .or(obj.get("eventTime"));
    let first_seen = age_of(first);
    let (last_seen, count) = match obj.get("series").filter(|s| s.is_object()) {
        Some(series) => (
            age_of(series.get("lastObservedTime")),
            n(series.get("count")),
        ),
        None => (
            match obj.get("lastTimestamp").filter(|t| !t.is_null()) {
                Some(last) => age_of(Some(last)),
                None => first_seen.clone(),
            },
            n(obj.get("count")).max(1),
        ),
    };
    let involved = &obj["involvedObject"];
    let kind = involved["kind"].as_str().unwrap_or_default().to_lowercase();
    let target = match involved["name"].as_str().filter(|n| !n.is_empty()) {
        Some(n) => format!("{kind}/{n}"),
        None => kind,
    };
    let component = source_or_reporter(
        obj.pointer("/source/component"),
        obj.get("reportingComponent"),
    );
    let instance = source_or_reporter(obj.pointer("/source/host"), obj.get("reportingInstance"));
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    (
        header("Last Seen|Type|Reason|Object|*Subobject|*Source|Message|*First Seen|*Count|*Name"),
        vec![
            last_seen,
            text(obj.get("type")).to_string(),
            text(obj.get("reason")).to_string(),
            target,
            text(obj.pointer("/involvedObject/fieldPath")).to_string(),
            source,
            text(obj.get("message")).trim().to_string(),
            first_seen,
            count.to_string(),
            name,
        ],
    )
}

/// What the registry does with core Events.
pub struct CoreEventRules;

impl Behaviour for CoreEventRules {
    /// Every Event passes the legacy checks (old clients write through
    /// core/v1); events.k8s.io adds its own (see `events_v1`).
    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        let mut errors = Vec::new();
        let event: k8s_openapi::api::core::v1::Event = decode(rt, obj)?;
        errors.extend(skiff_api_rules::event::legacy_errors(&event));
        Ok(errors)
    }

    typed_schema!(k8s_openapi::api::core::v1::Event);

    fn columns(&self, rt: &ResourceType, obj: &Value) -> Columns {
        core_columns(rt, obj)
    }
}

/// What the registry does with `events.k8s.io` Events (stored as core
/// Events, printed alike, validated on conversion).
pub struct EventV1Rules;

impl Behaviour for EventV1Rules {
    typed_schema!(k8s_openapi::api::events::v1::Event);

    fn columns(&self, rt: &ResourceType, obj: &Value) -> Columns {
        core_columns(rt, obj)
    }
}

/// The core form's source field, else the events.k8s.io form's reporter.
fn source_or_reporter<'a>(source: Option<&'a Value>, reporter: Option<&'a Value>) -> &'a str {
    Some(text(source))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| text(reporter))
}
