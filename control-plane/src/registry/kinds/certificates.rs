//! CertificateSigningRequests (`certificates.k8s.io/v1`): a client sends
//! a PKCS#10 request for a signer; the server records who sent it, an
//! approver adds `Approved` or `Denied` through `/approval`, and a signer
//! writes `status.certificate` (or `Failed`) through `/status`, as
//! upstream's registry strategies split those writes.

use base64::Engine;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use serde_json::{Value, json};

use super::printing::{Columns, header, human_duration, s};
use super::support::typed_schema;
use crate::auth::user::UserInfo;
use crate::registry::resource_type::{Behaviour, Errors, ResourceType, rt};

/// `certificatesigningrequests.certificates.k8s.io` in `certificates.k8s.io/v1`.
pub const CERTIFICATESIGNINGREQUESTS: &ResourceType = &rt! {
    "certificates.k8s.io", "v1", "certificatesigningrequests", "certificatesigningrequest",
    "CertificateSigningRequest", false, &["csr"], &[], &["status", "approval"], &Rules
};

/// The condition types.
pub const APPROVED: &str = "Approved";
/// Refused by an approver.
pub const DENIED: &str = "Denied";
/// The signer could not sign it.
pub const FAILED: &str = "Failed";

/// The key usages upstream accepts (`certificates.KeyUsage`).
const USAGES: &[&str] = &[
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

/// The shortest duration a request may ask for (upstream's ten minutes).
const MIN_EXPIRATION_SECONDS: i64 = 600;

/// What the registry does with this kind's objects.
pub struct Rules;

impl Behaviour for Rules {
    fn initial_status(&self, _obj: &Value) -> Option<Value> {
        Some(json!({}))
    }

    fn prepare_write(&self, old: Option<&Value>, new: &mut Value) {
        // Upstream's update strategy keeps spec (and status) as stored:
        // a spec edit is silently dropped, not refused.
        if let Some(old) = old {
            new["spec"] = old.get("spec").cloned().unwrap_or(Value::Null);
        }
    }

    fn validate(&self, _rt: &ResourceType, obj: &Value) -> Errors {
        Ok(validate(obj))
    }

    typed_schema!(CertificateSigningRequest);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let spec = &obj["spec"];
        let signer = match spec.get("signerName").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => "<none>".into(),
        };
        let duration = match spec.get("expirationSeconds").and_then(Value::as_i64) {
            Some(secs) => human_duration(secs),
            None => "<none>".into(),
        };
        (
            header("Name|Age|SignerName|Requestor|RequestedDuration|Condition"),
            vec![
                s(obj.pointer("/metadata/name")),
                super::printing::age_of(obj.pointer("/metadata/creationTimestamp")),
                signer,
                s(spec.get("username")),
                duration,
                condition(obj),
            ],
        )
    }
}

/// `kubectl get csr`'s CONDITION: Denied over Approved over Pending, then
/// Failed and Issued.
fn condition(obj: &Value) -> String {
    let has = |kind: &str| conditions(obj).any(|c| c["type"] == kind);
    let mut text = if has(DENIED) {
        DENIED.to_string()
    } else if has(APPROVED) {
        APPROVED.to_string()
    } else {
        "Pending".to_string()
    };
    if has(FAILED) {
        text.push_str(",Failed");
    }
    if certificate(obj).is_some() {
        text.push_str(",Issued");
    }
    text
}

fn conditions(obj: &Value) -> impl Iterator<Item = &Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Whether `obj` holds a condition of `kind` (any status but False).
pub fn has_condition(obj: &Value, kind: &str) -> bool {
    conditions(obj).any(|c| c["type"] == kind && c["status"] != "False")
}

/// The issued certificate (base64 in JSON), if any.
pub fn certificate(obj: &Value) -> Option<&str> {
    obj.pointer("/status/certificate")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
}

/// The request's PEM bytes (`spec.request` is base64 in JSON).
pub fn request_pem(obj: &Value) -> Option<Vec<u8>> {
    let text = obj.pointer("/spec/request").and_then(Value::as_str)?;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// Sets who asked (`spec.username`, `uid`, `groups`, `extra`) from the
/// authenticated requester, whatever the client sent, as upstream's
/// `PrepareForCreate`.
pub fn set_requestor(obj: &mut Value, user: &UserInfo) {
    let spec = &mut obj["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    spec["username"] = json!(user.name);
    spec["uid"] = json!(user.uid);
    spec["groups"] = json!(user.groups);
    if let Some(o) = spec.as_object_mut() {
        o.remove("extra");
        if !user.extra.is_empty() {
            o.insert("extra".into(), json!(user.extra));
        }
        for empty in ["uid"] {
            if o.get(empty) == Some(&json!("")) {
                o.remove(empty);
            }
        }
    }
}

/// What a write through a subresource may change, as upstream's status
/// and approval strategies: `/approval` takes the sent conditions and
/// nothing else of status; `/status` takes status, but the Approved and
/// Denied conditions stay as stored when as many are sent (more or fewer
/// are left for [`update_errors`] to refuse). Conditions get their
/// timestamps.
pub fn prepare_subresource(sub: &str, old: &Value, new: &mut Value) {
    if !new["status"].is_object() {
        new["status"] = json!({});
    }
    if sub == "approval" {
        stamp_conditions(old, new);
        let sent = new.pointer("/status/conditions").cloned();
        new["status"] = old.get("status").cloned().unwrap_or_else(|| json!({}));
        if !new["status"].is_object() {
            new["status"] = json!({});
        }
        match sent {
            Some(list) => new["status"]["conditions"] = list,
            None => {
                if let Some(o) = new["status"].as_object_mut() {
                    o.remove("conditions");
                }
            }
        }
        return;
    }
    // Stamped first, so the decisions kept are exactly as stored even if
    // they were stored without times.
    stamp_conditions(old, new);
    for kind in [APPROVED, DENIED] {
        keep_stored_instances(old, new, kind);
    }
}

/// The indices of the conditions of `kind`.
fn indices_of(obj: &Value, kind: &str) -> Vec<usize> {
    conditions(obj)
        .enumerate()
        .filter(|(_, c)| c["type"] == kind)
        .map(|(i, _)| i)
        .collect()
}

/// Puts the stored conditions of `kind` in place of the sent ones, if as
/// many were sent (upstream's `preserveConditionInstances`).
fn keep_stored_instances(old: &Value, new: &mut Value, kind: &str) {
    let (was, now) = (indices_of(old, kind), indices_of(new, kind));
    if was.len() != now.len() {
        return;
    }
    let stored: Vec<Value> = conditions(old).cloned().collect();
    if let Some(list) = new
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for (from, to) in was.into_iter().zip(now) {
            list[to] = stored[from].clone();
        }
    }
}

/// Sets a condition's missing `lastUpdateTime` to now and its missing
/// `lastTransitionTime` to that of a stored condition of the same type
/// and status, else now (upstream's `populateConditionTimestamps`).
fn stamp_conditions(old: &Value, new: &mut Value) {
    let now = crate::registry::meta::now();
    let missing = |c: &Value, field: &str| c.get(field).is_none_or(Value::is_null);
    let stored: Vec<Value> = conditions(old).cloned().collect();
    let Some(list) = new
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for c in list.iter_mut().filter(|c| c.is_object()) {
        if missing(c, "lastUpdateTime") {
            c["lastUpdateTime"] = json!(now);
        }
        if missing(c, "lastTransitionTime") {
            let since = stored
                .iter()
                .find(|o| {
                    o["type"] == c["type"]
                        && o["status"] == c["status"]
                        && !missing(o, "lastTransitionTime")
                })
                .map_or_else(|| json!(now), |o| o["lastTransitionTime"].clone());
            c["lastTransitionTime"] = since;
        }
    }
}

/// What an update through `/status` or `/approval` may not do to the
/// stored `old`, in upstream's words (`validateCertificateSigningRequestUpdate`):
/// remove an Approved, Denied or Failed condition; add or change an
/// Approved or Denied one but through `/approval`; change or remove an
/// issued certificate.
pub fn update_errors(sub: &str, old: &Value, new: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let count = |obj: &Value, kind: &str| indices_of(obj, kind).len();
    for kind in [APPROVED, DENIED, FAILED] {
        if count(new, kind) < count(old, kind) {
            errors.push(format!(
                "status.conditions: Forbidden: updates may not remove a condition of type {kind:?}"
            ));
        }
    }
    if sub != "approval" {
        for kind in [APPROVED, DENIED] {
            let of_kind = |obj: &Value| -> Vec<Value> {
                conditions(obj)
                    .filter(|c| c["type"] == kind)
                    .cloned()
                    .collect()
            };
            let (was, now) = (of_kind(old), of_kind(new));
            if now.len() > was.len() {
                errors.push(format!(
                    "status.conditions: Forbidden: updates may not add a condition of type {kind:?}"
                ));
            } else if now.len() == was.len() && now != was {
                errors.push(format!(
                    "status.conditions: Forbidden: updates may not modify a condition of type {kind:?}"
                ));
            }
        }
    }
    let issued = |obj: &Value| {
        obj.pointer("/status/certificate")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (was, now) = (issued(old), issued(new));
    if was != now {
        if sub != "status" {
            errors.push(
                "status.certificate: Forbidden: updates may not set certificate content".into(),
            );
        } else if !was.is_empty() {
            errors.push(
                "status.certificate: Forbidden: updates may not modify existing certificate content"
                    .into(),
            );
        } else if !has_condition(new, APPROVED) {
            // Skiff's own rule (upstream leaves it to signers): only an
            // approved request is issued.
            errors.push(
                "status.certificate: Forbidden: certificate can only be set if the Approved condition is set"
                    .into(),
            );
        }
    }
    errors
}

/// Upstream's `ValidateCertificateSigningRequest` on one object.
pub fn validate(obj: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let spec = &obj["spec"];
    let request = match request_pem(obj) {
        Some(pem) => skiff_pki::csr::parse(&pem).map(|_| ()),
        None => Err(skiff_pki::csr::CsrError::NotPem),
    };
    if let Err(e) = request {
        errors.push(format!("spec.request: Invalid value: []byte{{...}}: {e}"));
    }
    let usages: Vec<&Value> = spec
        .get("usages")
        .and_then(Value::as_array)
        .map(|u| u.iter().collect())
        .unwrap_or_default();
    if usages.is_empty() {
        errors.push("spec.usages: Required value: usages must be provided".into());
    }
    let supported = USAGES
        .iter()
        .map(|u| format!("{u:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    for (i, usage) in usages.iter().enumerate() {
        let text = usage.as_str().unwrap_or_default();
        if !USAGES.contains(&text) {
            errors.push(format!(
                "spec.usages[{i}]: Unsupported value: {text:?}: supported values: {supported}"
            ));
        } else if usages[..i].contains(usage) {
            errors.push(format!("spec.usages[{i}]: Duplicate value: {text:?}"));
        }
    }
    errors.extend(signer_name_errors(
        spec.get("signerName")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    ));
    if let Some(secs) = spec.get("expirationSeconds").and_then(Value::as_i64)
        && secs < MIN_EXPIRATION_SECONDS
    {
        errors.push(format!(
            "spec.expirationSeconds: Invalid value: {secs}: may not specify a duration less than 600 seconds (10 minutes)"
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    let (mut approved, mut denied) = (false, false);
    for (i, c) in conditions(obj).enumerate() {
        let kind = c["type"].as_str().unwrap_or_default();
        let path = format!("status.conditions[{i}]");
        if kind.is_empty() {
            errors.push(format!("{path}.type: Required value"));
        }
        let status = c["status"].as_str().unwrap_or_default();
        // The decisions and Failed are only ever True; others may be any.
        let allowed: &[&str] = if [APPROVED, DENIED, FAILED].contains(&kind) {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        if status.is_empty() {
            errors.push(format!("{path}.status: Required value"));
        } else if !allowed.contains(&status) {
            let supported: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
            errors.push(format!(
                "{path}.status: Unsupported value: {status:?}: supported values: {}",
                supported.join(", ")
            ));
        }
        let exclusive = match kind {
            APPROVED => {
                approved = true;
                denied
            }
            DENIED => {
                denied = true;
                approved
            }
            _ => false,
        };
        if exclusive {
            errors.push(format!(
                "{path}.type: Invalid value: {kind:?}: Approved and Denied conditions are mutually exclusive"
            ));
        }
        if seen.contains(&kind) {
            errors.push(format!("{path}.type: Duplicate value: {kind:?}"));
        }
        seen.push(kind);
    }
    errors
}

/// Upstream's `ValidateSignerName`: `<domain>/<path>`, the domain a DNS
/// subdomain.
fn signer_name_errors(name: &str) -> Vec<String> {
    let path = "spec.signerName";
    if name.is_empty() {
        return vec![format!("{path}: Required value")];
    }
    let form = "must be a fully qualified domain and path of the form 'example.com/signer-name'";
    let Some((domain, rest)) = name.split_once('/') else {
        return vec![format!("{path}: Invalid value: {name:?}: {form}")];
    };
    if rest.is_empty() || domain.is_empty() || !domain.contains('.') {
        return vec![format!("{path}: Invalid value: {name:?}: {form}")];
    }
    skiff_api_rules::metadata::dns1123_subdomain_errors(domain)
        .into_iter()
        .map(|e| format!("{path}: Invalid value: {domain:?}: {e}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr_pem(cn: &str) -> String {
        skiff_pki::csr::new_request(cn, &[]).expect("csr").1
    }

    fn object(pem: &[u8]) -> Value {
        json!({
            "metadata": {"name": "john"},
            "spec": {
                "request": base64::engine::general_purpose::STANDARD.encode(pem),
                "signerName": "kubernetes.io/kube-apiserver-client",
                "usages": ["client auth"],
                "expirationSeconds": 86400,
            },
        })
    }

    #[test]
    fn a_well_formed_request_passes() {
        assert_eq!(
            validate(&object(csr_pem("john").as_bytes())),
            Vec::<String>::new()
        );
    }

    #[test]
    fn bad_fields_get_upstream_messages() {
        let mut obj = object(b"not pem");
        obj["spec"]["usages"] = json!(["client auth", "flying"]);
        obj["spec"]["signerName"] = json!("nodomain");
        obj["spec"]["expirationSeconds"] = json!(599);
        let errors = validate(&obj);
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].ends_with("PEM block type must be CERTIFICATE REQUEST"));
        assert!(errors[1].starts_with("spec.usages[1]: Unsupported value: \"flying\""));
        assert!(errors[2].contains("example.com/signer-name"));
        assert!(errors[3].contains("less than 600 seconds"));
    }

    #[test]
    fn approved_and_denied_exclude_each_other() {
        let mut obj = object(csr_pem("john").as_bytes());
        obj["status"] = json!({"conditions": [
            {"type": "Approved", "status": "True"},
            {"type": "Denied", "status": "True"},
        ]});
        let errors = validate(&obj);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("mutually exclusive"));
    }

    #[test]
    fn requestor_fields_come_from_the_user_not_the_client() {
        let mut obj = object(csr_pem("john").as_bytes());
        obj["spec"]["username"] = json!("kubernetes-admin");
        obj["spec"]["groups"] = json!(["system:masters"]);
        set_requestor(&mut obj, &UserInfo::authenticated("john", &["devs"]));
        assert_eq!(obj["spec"]["username"], "john");
        assert_eq!(
            obj["spec"]["groups"],
            json!(["devs", "system:authenticated"])
        );
    }

    #[test]
    fn approval_changes_only_conditions_and_status_keeps_decisions() {
        let old = json!({"spec": {"x": 1}, "status": {}});
        let mut new = json!({"spec": {"x": 1}, "status": {
            "certificate": "Zm9v",
            "conditions": [{"type": "Approved", "status": "True"}],
        }});
        prepare_subresource("approval", &old, &mut new);
        assert!(certificate(&new).is_none());
        assert!(has_condition(&new, APPROVED));
        assert!(new["status"]["conditions"][0]["lastTransitionTime"].is_string());
        assert_eq!(update_errors("approval", &old, &new), Vec::<String>::new());
        let approved = new.clone();
        // As many decisions sent as stored: the stored ones stay.
        let mut issued = json!({"status": {"certificate": "Zm9v", "conditions": [
            {"type": "Approved", "status": "True", "message": "forged"},
        ]}});
        prepare_subresource("status", &approved, &mut issued);
        assert_eq!(
            issued["status"]["conditions"],
            approved["status"]["conditions"]
        );
        assert_eq!(certificate(&issued), Some("Zm9v"));
        assert_eq!(
            update_errors("status", &approved, &issued),
            Vec::<String>::new()
        );
    }

    fn refused(sub: &str, old: &Value, sent: Value) -> Vec<String> {
        let mut new = sent;
        prepare_subresource(sub, old, &mut new);
        update_errors(sub, old, &new)
    }

    #[test]
    fn decisions_and_failures_are_never_removed() {
        let approved = json!({"status": {"conditions": [
            {"type": "Approved", "status": "True"},
            {"type": "Failed", "status": "True"},
        ]}});
        let removed = |kind: &str| {
            format!(
                "status.conditions: Forbidden: updates may not remove a condition of type \"{kind}\""
            )
        };
        for sub in ["approval", "status"] {
            let none = refused(sub, &approved, json!({"status": {"conditions": []}}));
            assert_eq!(none, vec![removed("Approved"), removed("Failed")], "{sub}");
            let no_status = refused(sub, &approved, json!({}));
            assert_eq!(
                no_status,
                vec![removed("Approved"), removed("Failed")],
                "{sub}"
            );
        }
        let kept_decision = refused(
            "status",
            &approved,
            json!({"status": {"conditions": [{"type": "Approved", "status": "True"}]}}),
        );
        assert_eq!(kept_decision, vec![removed("Failed")]);
        let denied = json!({"status": {"conditions": [{"type": "Denied", "status": "True"}]}});
        assert_eq!(
            refused(
                "approval",
                &denied,
                json!({"status": {"conditions": [
                    {"type": "Approved", "status": "True"},
                ]}})
            ),
            vec![removed("Denied")]
        );
        // Only /approval decides.
        assert_eq!(
            refused("status", &json!({"status": {}}), json!({"status": {"conditions": [
                {"type": "Approved", "status": "True"},
            ]}})),
            vec!["status.conditions: Forbidden: updates may not add a condition of type \"Approved\"".to_string()]
        );
    }

    #[test]
    fn an_issued_certificate_is_never_changed_nor_removed() {
        let issued = json!({"status": {
            "certificate": "Zm9v",
            "conditions": [{"type": "Approved", "status": "True"}],
        }});
        let modified = vec![
            "status.certificate: Forbidden: updates may not modify existing certificate content"
                .to_string(),
        ];
        let conditions = issued["status"]["conditions"].clone();
        let other = json!({"status": {"certificate": "YmFy", "conditions": conditions}});
        assert_eq!(refused("status", &issued, other), modified);
        let gone = json!({"status": {"conditions": conditions}});
        assert_eq!(refused("status", &issued, gone), modified);
        // /approval never touches it.
        let mut approval = json!({"status": {"conditions": conditions}});
        prepare_subresource("approval", &issued, &mut approval);
        assert_eq!(certificate(&approval), Some("Zm9v"));
        assert_eq!(
            update_errors("approval", &issued, &approval),
            Vec::<String>::new()
        );
        // Set for the first time through /status: allowed, once approved.
        let approved = json!({"status": {"conditions": conditions}});
        assert_eq!(
            refused("status", &approved, issued.clone()),
            Vec::<String>::new()
        );
        let pending = json!({"status": {}});
        assert_eq!(
            refused("status", &pending, json!({"status": {"certificate": "Zm9v"}})),
            vec![
                "status.certificate: Forbidden: certificate can only be set if the Approved condition is set"
                    .to_string()
            ]
        );
    }

    #[test]
    fn both_decisions_are_refused_in_upstreams_words() {
        let mut obj = object(csr_pem("john").as_bytes());
        obj["status"] = json!({"conditions": [
            {"type": "Denied", "status": "True"},
            {"type": "Approved", "status": "True"},
        ]});
        assert_eq!(
            validate(&obj),
            vec![
                "status.conditions[1].type: Invalid value: \"Approved\": Approved and Denied conditions are mutually exclusive"
                    .to_string()
            ]
        );
    }
}
