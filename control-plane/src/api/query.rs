//! The query string of a resource request, parsed strictly into the options
//! upstream defines (`ListOptions`, `CreateOptions`, `UpdateOptions`,
//! `PatchOptions`, `DeleteOptions`): a value that cannot be decoded or
//! converted is a 400, a value the options' validation refuses a 422, both
//! worded as upstream words them. Nothing is silently dropped: a dropped
//! `labelSelector` would turn a narrow delete-collection into "delete all".

use std::collections::HashMap;

use serde_json::json;

use super::error::ApiError;
use super::selectors::{FieldSelector, LabelSelector};
use crate::percent_encoding;

/// `fieldValidation`: what a write does with unknown or duplicate fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Dropped silently.
    Ignore,
    /// Dropped with a warning (upstream's default).
    #[default]
    Warn,
    /// Refused.
    Strict,
}

/// `resourceVersionMatch` of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceVersionMatch {
    /// `Exact`.
    Exact,
    /// `NotOlderThan`.
    NotOlderThan,
}

/// The options the query string of one request carries.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Every parameter, decoded (the first value of a repeated one), for the
    /// subresources that read their own (`container`, `follow`, ...).
    pub raw: HashMap<String, String>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `resourceVersion`, checked to be a revision.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<ResourceVersionMatch>,
    /// `limit` (0 when absent).
    pub limit: i64,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `watch`.
    pub watch: bool,
    /// `allowWatchBookmarks`.
    pub allow_watch_bookmarks: bool,
    /// `sendInitialEvents` (unset differs from false).
    pub send_initial_events: Option<bool>,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<i64>,
    /// `labelSelector`.
    pub label_selector: LabelSelector,
    /// `fieldSelector`.
    pub field_selector: FieldSelector,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// `force` (apply patches only).
    pub force: Option<bool>,
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `propagationPolicy`, checked by the delete.
    pub propagation_policy: Option<String>,
    /// `orphanDependents`.
    pub orphan_dependents: Option<bool>,
    /// `pretty`.
    pub pretty: bool,
    /// The raw `dryRun` values, for the options' validation.
    dry_run_values: Vec<String>,
    /// The raw `fieldValidation` value.
    field_validation_raw: Option<String>,
}

/// Which options a verb takes, named as upstream names them in its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Options {
    /// `ListOptions` (list and watch).
    List,
    /// `CreateOptions`.
    Create,
    /// `UpdateOptions`.
    Update,
    /// `PatchOptions`; `apply` for an apply patch.
    Patch {
        /// An `application/apply-patch+yaml` patch.
        apply: bool,
    },
    /// `DeleteOptions`.
    Delete,
}

impl Options {
    fn kind(self) -> &'static str {
        match self {
            Self::List => "ListOptions",
            Self::Create => "CreateOptions",
            Self::Update => "UpdateOptions",
            Self::Patch { .. } => "PatchOptions",
            Self::Delete => "DeleteOptions",
        }
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(key: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "invalid value for {key}: strconv.ParseBool: parsing {v:?}: invalid syntax"
        ))),
    }
}

/// Go's `strconv.ParseInt(v, 10, 64)`, worded as its errors are.
fn parse_int(v: &str) -> Result<i64, ApiError> {
    v.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        ApiError::bad_request(format!("strconv.ParseInt: parsing {v:?}: {why}"))
    })
}

impl Query {
    /// Parses a raw query string (without `?`).
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut q = Self::default();
        let mut values: Vec<(String, String)> = Vec::new();
        for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(k), Some(v)) = (percent_encoding::decode(k), percent_encoding::decode(v))
            else {
                return Err(ApiError::bad_request(format!(
                    "invalid query parameter {pair:?}: not valid percent-encoded UTF-8"
                )));
            };
            values.push((k, v));
        }
        for (k, v) in &values {
            q.raw.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &values {
            if k == "dryRun" {
                q.dry_run_values.push(v.clone());
            }
        }
        q.dry_run = !q.dry_run_values.is_empty();
        let get = |k: &str| q.raw.get(k).cloned();
        if let Some(rv) = get("resourceVersion").filter(|r| !r.is_empty()) {
            if rv.parse::<u64>().is_err() {
                return Err(ApiError::bad_request(format!(
                    "resourceVersion: Invalid value: {rv:?}: strconv.ParseUint: parsing {rv:?}: invalid syntax"
                )));
            }
            q.resource_version = Some(rv);
        }
        q.resource_version_match = match get("resourceVersionMatch").as_deref() {
            None | Some("") => None,
            Some("Exact") => Some(ResourceVersionMatch::Exact),
            Some("NotOlderThan") => Some(ResourceVersionMatch::NotOlderThan),
            Some(other) => {
                return Err(invalid(
                    Options::List,
                    "resourceVersionMatch",
                    format!(
                        "Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
                    ),
                ));
            }
        };
        if let Some(l) = get("limit").filter(|l| !l.is_empty()) {
            q.limit = parse_int(&l)?;
        }
        q.continue_token = get("continue").filter(|c| !c.is_empty());
        let flag = |k: &str| -> Result<Option<bool>, ApiError> {
            q.raw.get(k).map(|v| parse_bool(k, v)).transpose()
        };
        q.watch = flag("watch")?.unwrap_or(false);
        q.allow_watch_bookmarks = flag("allowWatchBookmarks")?.unwrap_or(false);
        q.send_initial_events = flag("sendInitialEvents")?;
        q.force = flag("force")?;
        q.orphan_dependents = flag("orphanDependents")?;
        q.pretty = flag("pretty")?.unwrap_or(false);
        if let Some(t) = get("timeoutSeconds").filter(|t| !t.is_empty()) {
            q.timeout_seconds = Some(parse_int(&t)?);
        }
        if let Some(g) = get("gracePeriodSeconds").filter(|g| !g.is_empty()) {
            q.grace_period_seconds = Some(parse_int(&g)?);
        }
        if let Some(s) = get("labelSelector") {
            q.label_selector = LabelSelector::parse(&s).map_err(ApiError::bad_request)?;
        }
        if let Some(s) = get("fieldSelector") {
            q.field_selector = FieldSelector::parse(&s).map_err(ApiError::bad_request)?;
        }
        q.field_validation_raw = get("fieldValidation");
        q.field_validation = match q.field_validation_raw.as_deref() {
            Some("Ignore") => FieldValidation::Ignore,
            Some("Strict") => FieldValidation::Strict,
            _ => FieldValidation::Warn,
        };
        q.field_manager = get("fieldManager");
        q.propagation_policy = get("propagationPolicy").filter(|p| !p.is_empty());
        Ok(q)
    }

    /// Upstream's validation of the options a verb takes (422 `Invalid`
    /// with the options' kind, as `ValidateCreateOptions` and friends).
    pub fn validate(&self, options: Options) -> Result<(), ApiError> {
        let mut errors: Vec<(&'static str, String)> = Vec::new();
        if options == Options::List {
            self.validate_list(&mut errors);
        } else {
            if let Some(e) = dry_run_error(&self.dry_run_values) {
                errors.push(("dryRun", e));
            }
            if options != Options::Delete {
                if let Some(m) = &self.field_manager
                    && m.len() > 128
                {
                    errors.push((
                        "fieldManager",
                        "Too long: may not be more than 128 bytes".into(),
                    ));
                }
                if let Some(v) = self.field_validation_raw.as_deref()
                    && !matches!(v, "" | "Ignore" | "Warn" | "Strict")
                {
                    errors.push((
                        "fieldValidation",
                        format!(
                            "Unsupported value: {v:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
                        ),
                    ));
                }
            }
            if let Options::Patch { apply } = options {
                if apply && self.field_manager.as_deref().is_none_or(str::is_empty) {
                    errors.push((
                        "fieldManager",
                        "Required value: is required for apply patch".into(),
                    ));
                }
                if !apply && self.force.is_some() {
                    errors.push((
                        "force",
                        "Forbidden: may not be specified for non-apply patch".into(),
                    ));
                }
            }
        }
        if errors.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = errors.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let message = if lines.len() == 1 {
            lines[0].clone()
        } else {
            format!("[{}]", lines.join(", "))
        };
        let mut e = invalid(options, errors[0].0, message);
        e.details["causes"] = json!(
            errors
                .iter()
                .map(|(f, m)| json!({"reason": cause_reason(m), "message": m, "field": f}))
                .collect::<Vec<_>>()
        );
        Err(e)
    }

    fn validate_list(&self, errors: &mut Vec<(&'static str, String)>) {
        let forbidden = |m: &str| format!("Forbidden: {m}");
        let m = self.resource_version_match;
        if self.watch {
            if self.send_initial_events.is_some() && m != Some(ResourceVersionMatch::NotOlderThan) {
                errors.push((
                    "resourceVersionMatch",
                    forbidden(
                        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                    ),
                ));
            }
            if let Some(m) = m {
                if self.send_initial_events.is_none() {
                    errors.push((
                        "resourceVersionMatch",
                        forbidden("resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"),
                    ));
                }
                if m != ResourceVersionMatch::NotOlderThan {
                    errors.push((
                        "resourceVersionMatch",
                        "Unsupported value: \"Exact\": supported values: \"NotOlderThan\"".into(),
                    ));
                }
                if self.continue_token.is_some() {
                    errors.push((
                        "resourceVersionMatch",
                        forbidden("resourceVersionMatch is forbidden when continue is provided"),
                    ));
                }
            }
            return;
        }
        if let Some(m) = m {
            if self.resource_version.is_none() {
                errors.push((
                    "resourceVersionMatch",
                    forbidden(
                        "resourceVersionMatch is forbidden unless resourceVersion is provided",
                    ),
                ));
            }
            if self.continue_token.is_some() {
                errors.push((
                    "resourceVersionMatch",
                    forbidden("resourceVersionMatch is forbidden when continue is provided"),
                ));
            }
            if m == ResourceVersionMatch::Exact && self.resource_version.as_deref() == Some("0") {
                errors.push((
                    "resourceVersionMatch",
                    forbidden(
                        "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                    ),
                ));
            }
        }
        if self.send_initial_events.is_some() {
            errors.push((
                "sendInitialEvents",
                forbidden("sendInitialEvents is forbidden for list"),
            ));
        }
    }

    /// `dryRun` values of a `DeleteOptions` body, validated as the query's.
    pub fn dry_run_body(values: &[String]) -> Result<bool, ApiError> {
        match dry_run_error(values) {
            None => Ok(!values.is_empty()),
            Some(e) => Err(invalid(Options::Delete, "dryRun", format!("dryRun: {e}"))),
        }
    }
}

/// `dryRun` takes only `All` (upstream's `ValidateDryRun`).
fn dry_run_error(values: &[String]) -> Option<String> {
    if values.iter().all(|v| v == "All") {
        return None;
    }
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    Some(format!(
        "Unsupported value: []string{{{}}}: supported values: \"All\"",
        quoted.join(", ")
    ))
}

fn cause_reason(message: &str) -> &'static str {
    if message.starts_with("Required value") {
        "FieldValueRequired"
    } else if message.starts_with("Unsupported value") {
        "FieldValueNotSupported"
    } else if message.starts_with("Forbidden") {
        "FieldValueForbidden"
    } else if message.starts_with("Too long") {
        "FieldValueTooLong"
    } else {
        "FieldValueInvalid"
    }
}

/// 422 for the options of `options` (`CreateOptions.meta.k8s.io "" is invalid: ...`).
fn invalid(options: Options, field: &str, message: String) -> ApiError {
    let line = if message.starts_with(field) || message.starts_with('[') {
        message
    } else {
        format!("{field}: {message}")
    };
    let cause = line
        .strip_prefix(&format!("{field}: "))
        .unwrap_or(&line)
        .to_string();
    ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("{}.meta.k8s.io \"\" is invalid: {line}", options.kind()),
        details: json!({"group": "meta.k8s.io", "kind": options.kind(), "causes": [
            {"reason": cause_reason(&cause), "message": cause, "field": field}
        ]}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<Query, ApiError> {
        Query::parse(Some(q))
    }

    #[test]
    fn values_are_percent_decoded() {
        let q = parse("labelSelector=app%3Dweb%2Cenv+in+%28a%2Cb%29&watch=true").expect("query");
        assert_eq!(q.raw["labelSelector"], "app=web,env in (a,b)");
        assert!(q.watch);
        assert!(
            q.label_selector
                .matches(Some(&json!({"app": "web", "env": "a"})))
        );
    }

    #[test]
    fn undecodable_input_is_a_bad_request_not_an_empty_query() {
        for bad in [
            "labelSelector=app%3Dnone%ff",
            "labelSelector=%zz",
            "labelSelector=a%2",
            "fieldSelector=%",
        ] {
            let e = parse(bad).expect_err(bad);
            assert_eq!((e.code, e.reason), (400, "BadRequest"), "{bad}");
        }
    }

    #[test]
    fn typed_values_are_checked_as_upstream_converts_them() {
        let e = parse("limit=abc").expect_err("limit");
        assert_eq!(
            e.message,
            "strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
        let e = parse("timeoutSeconds=99999999999999999999").expect_err("timeout");
        assert!(e.message.ends_with("value out of range"), "{}", e.message);
        let e = parse("watch=maybe").expect_err("watch");
        assert_eq!(e.code, 400);
        e.assert_says("strconv.ParseBool: parsing \"maybe\"");
        assert!(parse("watch=1").expect("1").watch);
        assert!(!parse("watch=false").expect("false").watch);
        let e = parse("resourceVersion=abc").expect_err("rv");
        assert_eq!(e.code, 400);
        assert!(
            e.message
                .starts_with("resourceVersion: Invalid value: \"abc\"")
        );
        assert_eq!(
            parse("labelSelector=a%3D%3Db%3D%3Dc")
                .expect_err("sel")
                .code,
            400
        );
        assert_eq!(
            parse("fieldSelector=a%3D%3Db%3D%3Dc")
                .expect_err("sel")
                .code,
            400
        );
        assert_eq!(
            parse("resourceVersionMatch=Newest").expect_err("rvm").code,
            422
        );
    }

    #[test]
    fn options_are_validated_per_verb() {
        let q = parse("dryRun=Bogus").expect("parses");
        let e = q.validate(Options::Create).expect_err("dryRun");
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Bogus\"}: supported values: \"All\""
        );
        assert!(
            parse("dryRun=All")
                .expect("All")
                .validate(Options::Delete)
                .is_ok()
        );
        let e = parse("fieldValidation=Loose")
            .expect("parses")
            .validate(Options::Update)
            .expect_err("fieldValidation");
        assert!(e.message.starts_with("UpdateOptions.meta.k8s.io"));
        let e = parse("force=true")
            .expect("parses")
            .validate(Options::Patch { apply: false })
            .expect_err("force");
        e.assert_says("force: Forbidden");
        assert!(
            parse("force=true&fieldManager=me")
                .expect("parses")
                .validate(Options::Patch { apply: true })
                .is_ok()
        );
        let list = parse("sendInitialEvents=true").expect("parses");
        assert_eq!(list.validate(Options::List).expect_err("list").code, 422);
        let watch = parse("watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")
            .expect("kubectl's watch-list");
        assert!(watch.validate(Options::List).is_ok());
        assert!(
            parse("resourceVersionMatch=Exact")
                .expect("parses")
                .validate(Options::List)
                .is_err()
        );
        assert!(Query::dry_run_body(&["All".into()]).expect("All"));
        assert_eq!(
            Query::dry_run_body(&["Bogus".into()])
                .expect_err("bogus")
                .code,
            422
        );
    }
}
