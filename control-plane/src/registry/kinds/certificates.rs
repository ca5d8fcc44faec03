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
/// and approval strategies: `/approval` changes only the Approved and
/// Denied conditions, `/status` everything in status but those.
pub fn prepare_subresource(sub: &str, old: &Value, new: &mut Value) {
    let decided = |c: &&Value| c["type"] == APPROVED || c["type"] == DENIED;
    let (from_new, from_old): (Vec<Value>, Vec<Value>) = match sub {
        "approval" => {
            let mine = conditions(new).filter(decided).cloned().collect();
            let kept = conditions(old).filter(|c| !decided(c)).cloned().collect();
            // Everything but the conditions stays as stored.
            let status = old.get("status").cloned().unwrap_or_else(|| json!({}));
            new["status"] = status;
            (mine, kept)
        }
        _ => {
            let mine = conditions(new).filter(|c| !decided(c)).cloned().collect();
            let kept = conditions(old).filter(decided).cloned().collect();
            (mine, kept)
        }
    };
    let now = crate::registry::meta::now();
    let mut all: Vec<Value> = from_old.into_iter().chain(from_new).collect();
    for c in &mut all {
        for time in ["lastUpdateTime", "lastTransitionTime"] {
            if c.get(time).is_none_or(Value::is_null) {
                c[time] = json!(now);
            }
        }
    }
    if !new["status"].is_object() {
        new["status"] = json!({});
    }
    if all.is_empty() {
        if let Some(o) = new["status"].as_object_mut() {
            o.remove("conditions");
        }
    } else {
        new["status"]["conditions"] = Value::Array(all);
    }
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
    for (i, c) in conditions(obj).enumerate() {
        let kind = c["type"].as_str().unwrap_or_default();
        let path = format!("status.conditions[{i}]");
        if kind.is_empty() {
            errors.push(format!("{path}.type: Required value"));
            continue;
        }
        if [APPROVED, DENIED, FAILED].contains(&kind) {
            if seen.contains(&kind) {
                errors.push(format!("{path}.type: Duplicate value: {kind:?}"));
            }
            let status = c["status"].as_str().unwrap_or_default();
            if status != "True" {
                errors.push(format!(
                    "{path}.status: Unsupported value: {status:?}: supported values: \"True\""
                ));
            }
        }
        seen.push(kind);
    }
    if seen.contains(&APPROVED) && seen.contains(&DENIED) {
        errors.push(
            "status.conditions: Invalid value: ...: Approved and Denied conditions are mutually exclusive"
                .into(),
        );
    }
    if certificate(obj).is_some() && !has_condition(obj, APPROVED) {
        errors.push(
            "status.certificate: Forbidden: certificate can only be set if the Approved condition is set"
                .into(),
        );
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
    fn approval_changes_only_decisions_and_status_only_the_rest() {
        let old = json!({"spec": {"x": 1}, "status": {}});
        let mut new = json!({"spec": {"x": 1}, "status": {
            "certificate": "Zm9v",
            "conditions": [{"type": "Approved", "status": "True"}],
        }});
        prepare_subresource("approval", &old, &mut new);
        assert!(certificate(&new).is_none());
        assert!(has_condition(&new, APPROVED));
        let approved = new.clone();
        let mut forged = json!({"status": {"certificate": "Zm9v", "conditions": []}});
        prepare_subresource("status", &approved, &mut forged);
        assert!(
            has_condition(&forged, APPROVED),
            "status keeps the decision"
        );
        assert_eq!(certificate(&forged), Some("Zm9v"));
    }
}
