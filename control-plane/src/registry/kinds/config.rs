//! Configuration: ConfigMaps, Secrets, ServiceAccounts.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::{Value, json};
use skiff_api_rules::config::{
    validate_config_map, validate_config_map_update, validate_secret, validate_secret_update,
};

use super::printing::{Columns, entries, header, row};
use super::support::{decode, set_default, typed_schema, validate_as};
use crate::registry::resource_type::{Behaviour, Errors, ResourceType, rt};

/// `configmaps` in `v1`.
pub const CONFIGMAPS: &ResourceType = &rt! {
    "", "v1", "configmaps", "configmap", "ConfigMap", true, &["cm"], &[], &[], &ConfigMapRules
};

/// `secrets` in `v1`.
pub const SECRETS: &ResourceType = &rt! {
    "", "v1", "secrets", "secret", "Secret", true, &[], &[], &[], &SecretRules
};

/// `serviceaccounts` in `v1`.
pub const SERVICEACCOUNTS: &ResourceType = &rt! {
    "", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, &["sa"], &[], &["token"],
    &ServiceAccountRules
};

/// What the registry does with ConfigMaps.
pub struct ConfigMapRules;

impl Behaviour for ConfigMapRules {
    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        validate_as(rt, obj, |c: ConfigMap| validate_config_map(&c))
    }

    fn validate_update(&self, rt: &ResourceType, old: &Value, new: &Value) -> Errors {
        Ok(validate_config_map_update(
            &decode(rt, old)?,
            &decode(rt, new)?,
        ))
    }

    typed_schema!(ConfigMap);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, ..) = row(obj);
        let data = entries(&obj["data"]) + entries(&obj["binaryData"]);
        (header("Name|Data|Age"), vec![name, data.to_string(), age])
    }
}

/// What the registry does with Secrets.
pub struct SecretRules;

impl Behaviour for SecretRules {
    fn defaults(&self, obj: &mut Value) {
        crate::registry::typecheck::fold_string_data(obj);
        set_default(obj, &["type"], json!("Opaque"));
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        validate_as(rt, obj, |s: Secret| validate_secret(&s))
    }

    fn validate_update(&self, rt: &ResourceType, old: &Value, new: &Value) -> Errors {
        Ok(validate_secret_update(&decode(rt, old)?, &decode(rt, new)?))
    }

    typed_schema!(Secret);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, ..) = row(obj);
        let secret_type = obj["type"].as_str().unwrap_or("Opaque").to_string();
        let data = entries(&obj["data"]).to_string();
        (
            header("Name|Type|Data|Age"),
            vec![name, secret_type, data, age],
        )
    }
}

/// What the registry does with ServiceAccounts.
pub struct ServiceAccountRules;

impl Behaviour for ServiceAccountRules {
    typed_schema!(ServiceAccount);
}
