//! Events: upstream's rules for an Event written through `events.k8s.io/v1`
//! (stricter than `v1`, which keeps only the legacy checks for old
//! clients). The rules read the core form, as upstream validates its
//! internal type, so field paths are core ones (`message`, `source`,
//! `involvedObject.namespace`).

use k8s_openapi::api::core::v1::Event;

use crate::metadata::{dns1123_subdomain_errors, go_quote, qualified_name_errors};

/// Longest `reportingInstance`, `action`, `reason` and `note`.
const REPORTING_INSTANCE_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const REASON_LIMIT: usize = 128;
const NOTE_LIMIT: usize = 1024;

fn invalid(path: &str, value: &str, message: &str) -> String {
    format!("{path}: Invalid value: {}: {message}", go_quote(value))
}

fn required(path: &str) -> String {
    format!("{path}: Required value")
}

fn text(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or_default()
}

/// The checks every Event passes, old or new (upstream's
/// `legacyValidateEvent`); new-style Events (with `eventTime`) must name
/// their reporter, action and reason.
pub fn legacy_errors(event: &Event) -> Vec<String> {
    let mut errors = Vec::new();
    let namespace = event.metadata.namespace.as_deref().unwrap_or_default();
    let involved_ns = event
        .involved_object
        .namespace
        .as_deref()
        .unwrap_or_default();
    let mismatch = || {
        invalid(
            "involvedObject.namespace",
            involved_ns,
            "does not match event.namespace",
        )
    };
    if event.event_time.is_none() {
        let agrees = if involved_ns.is_empty() {
            namespace.is_empty() || namespace == "default"
        } else {
            namespace == involved_ns
        };
        if !agrees {
            errors.push(mismatch());
        }
    } else {
        if involved_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
            errors.push(mismatch());
        }
        let controller = text(&event.reporting_component);
        if controller.is_empty() {
            errors.push(required("reportingController"));
        }
        for message in qualified_name_errors(controller) {
            errors.push(invalid("reportingController", controller, &message));
        }
        let limited = [
            (
                "reportingInstance",
                text(&event.reporting_instance),
                REPORTING_INSTANCE_LIMIT,
            ),
            ("action", text(&event.action), ACTION_LIMIT),
            ("reason", text(&event.reason), REASON_LIMIT),
        ];
        for (field, value, limit) in limited {
            if value.is_empty() {
                errors.push(required(field));
            }
            if value.len() > limit {
                errors.push(invalid(
                    field,
                    "",
                    &format!("can have at most {limit} characters"),
                ));
            }
        }
        if text(&event.message).len() > NOTE_LIMIT {
            errors.push(invalid(
                "message",
                "",
                &format!("can have at most {NOTE_LIMIT} characters"),
            ));
        }
    }
    for message in dns1123_subdomain_errors(namespace) {
        errors.push(invalid("namespace", namespace, &message));
    }
    errors
}

fn series_errors(event: &Event) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(series) = &event.series {
        if series.count.unwrap_or_default() < 2 {
            errors.push(invalid("series.count", "", "should be at least 2"));
        }
        if series.last_observed_time.is_none() {
            errors.push(required("series.lastObservedTime"));
        }
    }
    errors
}

/// Every problem with `event`, created through `events.k8s.io/v1`
/// (upstream's `ValidateEventCreate` for that version; metadata is checked
/// with every kind's).
pub fn validate_v1_create(event: &Event) -> Vec<String> {
    let mut errors = legacy_errors(event);
    errors.extend(series_errors(event));
    if event.event_time.is_none() {
        errors.push(required("eventTime"));
    }
    let type_ = text(&event.type_);
    if type_ != "Normal" && type_ != "Warning" {
        errors.push(invalid("type", "", &format!("has invalid value: {type_}")));
    }
    let unset = [
        ("firstTimestamp", event.first_timestamp.is_some()),
        ("lastTimestamp", event.last_timestamp.is_some()),
        ("count", event.count.unwrap_or_default() != 0),
        (
            "source",
            event
                .source
                .as_ref()
                .is_some_and(|s| !text(&s.component).is_empty() || !text(&s.host).is_empty()),
        ),
    ];
    for (field, set) in unset {
        if set {
            errors.push(invalid(field, "", "needs to be unset"));
        }
    }
    errors
}

/// Every problem with `new` replacing `old` through `events.k8s.io/v1`
/// (upstream's `ValidateEventUpdate`): only the series and metadata may
/// change.
pub fn validate_v1_update(new: &Event, old: &Event) -> Vec<String> {
    let mut errors = legacy_errors(new);
    if new.series != old.series {
        errors.extend(series_errors(new));
    }
    fn shown(value: Result<serde_json::Value, serde_json::Error>) -> String {
        match value {
            Ok(serde_json::Value::String(s)) => go_quote(&s),
            Ok(serde_json::Value::Null) => "\"\"".to_string(),
            Ok(other) => other.to_string(),
            Err(_) => String::new(),
        }
    }
    let mut immutable = |field: &str, changed: bool, value: String| {
        if changed {
            errors.push(format!(
                "{field}: Invalid value: {value}: field is immutable"
            ));
        }
    };
    immutable(
        "involvedObject",
        new.involved_object != old.involved_object,
        shown(serde_json::to_value(&new.involved_object)),
    );
    immutable(
        "reason",
        new.reason != old.reason,
        shown(serde_json::to_value(&new.reason)),
    );
    immutable(
        "message",
        new.message != old.message,
        shown(serde_json::to_value(&new.message)),
    );
    immutable(
        "source",
        new.source != old.source,
        shown(serde_json::to_value(&new.source)),
    );
    immutable(
        "firstTimestamp",
        new.first_timestamp != old.first_timestamp,
        shown(serde_json::to_value(&new.first_timestamp)),
    );
    immutable(
        "lastTimestamp",
        new.last_timestamp != old.last_timestamp,
        shown(serde_json::to_value(&new.last_timestamp)),
    );
    immutable(
        "count",
        new.count.unwrap_or_default() != old.count.unwrap_or_default(),
        new.count.unwrap_or_default().to_string(),
    );
    immutable(
        "type",
        new.type_ != old.type_,
        shown(serde_json::to_value(&new.type_)),
    );
    immutable(
        "eventTime",
        new.event_time != old.event_time,
        shown(serde_json::to_value(&new.event_time)),
    );
    immutable(
        "action",
        new.action != old.action,
        shown(serde_json::to_value(&new.action)),
    );
    immutable(
        "related",
        new.related != old.related,
        shown(serde_json::to_value(&new.related)),
    );
    immutable(
        "reportingController",
        new.reporting_component != old.reporting_component,
        shown(serde_json::to_value(&new.reporting_component)),
    );
    immutable(
        "reportingInstance",
        new.reporting_instance != old.reporting_instance,
        shown(serde_json::to_value(&new.reporting_instance)),
    );
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(value: serde_json::Value) -> Event {
        serde_json::from_value(value).expect("event")
    }

    fn good() -> serde_json::Value {
        serde_json::json!({
            "metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingComponent": "skiff.dev/test",
            "reportingInstance": "test-1",
            "action": "Testing",
            "reason": "Tested",
            "type": "Normal",
            "message": "hello",
        })
    }

    #[test]
    fn a_complete_new_event_passes() {
        assert_eq!(validate_v1_create(&event(good())), Vec::<String>::new());
    }

    #[test]
    fn creates_name_upstreams_fields_and_words() {
        let mut bad = good();
        for field in ["eventTime", "reportingInstance", "action"] {
            bad.as_object_mut().expect("object").remove(field);
        }
        bad["type"] = serde_json::json!("Fatal");
        bad["count"] = serde_json::json!(3);
        assert_eq!(
            validate_v1_create(&event(bad)),
            [
                "eventTime: Required value",
                "type: Invalid value: \"\": has invalid value: Fatal",
                "count: Invalid value: \"\": needs to be unset",
            ]
        );
        let mut long = good();
        long["message"] = serde_json::json!("x".repeat(1025));
        long["reportingComponent"] = serde_json::json!("");
        let errors = validate_v1_create(&event(long));
        assert_eq!(errors[0], "reportingController: Required value");
        assert!(errors.contains(
            &"message: Invalid value: \"\": can have at most 1024 characters".to_string()
        ));
    }

    #[test]
    fn updates_may_change_only_the_series() {
        let old = event(good());
        let mut changed = good();
        changed["series"] =
            serde_json::json!({"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"});
        assert!(validate_v1_update(&event(changed.clone()), &old).is_empty());
        changed["reason"] = serde_json::json!("Other");
        assert_eq!(
            validate_v1_update(&event(changed), &old),
            ["reason: Invalid value: \"Other\": field is immutable"]
        );
    }
}
