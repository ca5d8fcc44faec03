//! Configuration: ConfigMaps, Secrets, ServiceAccounts.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::{Value, json};
use skiff_api_rules::config::{
    validate_config_map, validate_config_map_update, validate_secret, validate_secret_update,
};

use super::PLAIN;
use super::printing::{age_of, col, s};
use super::support::{decode, round, set_default};
use crate::registry::resource_type::{Behaviour, Columns, ResourceType, rt};

/// `configmaps` in `v1`.
pub const CONFIGMAPS: &ResourceType = &rt!(
    "",
    "v1",
    "configmaps",
    "configmap",
    "ConfigMap",
    true,
    &["cm"],
    &[],
    &[],
    &CONFIG_MAP_BEHAVIOUR,
);

/// `secrets` in `v1`.
pub const SECRETS: &ResourceType = &rt!(
    "",
    "v1",
    "secrets",
    "secret",
    "Secret",
    true,
    &[],
    &[],
    &[],
    &SECRET_BEHAVIOUR
);

/// `serviceaccounts` in `v1`.
pub const SERVICEACCOUNTS: &ResourceType = &rt!(
    "",
    "v1",
    "serviceaccounts",
    "serviceaccount",
    "ServiceAccount",
    true,
    &["sa"],
    &[],
    &[],
    &ACCOUNT_BEHAVIOUR,
);

fn config_map_validate(rt: &ResourceType, obj: &Value) -> Result<Vec<String>, String> {
    let mut errors = Vec::new();
    let c: ConfigMap = decode(rt, obj)?;
    errors.extend(validate_config_map(&c));

    Ok(errors)
}

fn config_map_validate_update(
    rt: &ResourceType,
    old: &Value,
    new: &Value,
) -> Result<Vec<String>, String> {
    Ok(validate_config_map_update(
        &decode(rt, old)?,
        &decode(rt, new)?,
    ))
}

fn config_map_columns(_rt: &ResourceType, obj: &Value) -> Columns {
    let name = s(obj.pointer("/metadata/name"));
    let age = age_of(obj.pointer("/metadata/creationTimestamp"));
    (
        vec![col("Name", 0), col("Data", 0), col("Age", 0)],
        vec![
            name,
            (obj["data"].as_object().map_or(0, |m| m.len())
                + obj["binaryData"].as_object().map_or(0, |m| m.len()))
            .to_string(),
            age,
        ],
    )
}

const CONFIG_MAP_BEHAVIOUR: Behaviour = Behaviour {
    validate: config_map_validate,
    validate_update: config_map_validate_update,
    round_trip: round::<k8s_openapi::api::core::v1::ConfigMap>,
    columns: config_map_columns,
    ..PLAIN
};

fn secret_defaults(obj: &mut Value) {
    crate::registry::typecheck::fold_string_data(obj);
    set_default(obj, &["type"], json!("Opaque"));
}

fn secret_validate(rt: &ResourceType, obj: &Value) -> Result<Vec<String>, String> {
    let mut errors = Vec::new();
    let s: Secret = decode(rt, obj)?;
    errors.extend(validate_secret(&s));

    Ok(errors)
}

fn secret_validate_update(
    rt: &ResourceType,
    old: &Value,
    new: &Value,
) -> Result<Vec<String>, String> {
    Ok(validate_secret_update(&decode(rt, old)?, &decode(rt, new)?))
}

fn secret_columns(_rt: &ResourceType, obj: &Value) -> Columns {
    let name = s(obj.pointer("/metadata/name"));
    let age = age_of(obj.pointer("/metadata/creationTimestamp"));
    (
        vec![
            col("Name", 0),
            col("Type", 0),
            col("Data", 0),
            col("Age", 0),
        ],
        vec![
            name,
            obj["type"].as_str().unwrap_or("Opaque").into(),
            obj["data"].as_object().map_or(0, |m| m.len()).to_string(),
            age,
        ],
    )
}

const SECRET_BEHAVIOUR: Behaviour = Behaviour {
    defaults: secret_defaults,
    validate: secret_validate,
    validate_update: secret_validate_update,
    round_trip: round::<k8s_openapi::api::core::v1::Secret>,
    columns: secret_columns,
    ..PLAIN
};

const ACCOUNT_BEHAVIOUR: Behaviour = Behaviour {
    round_trip: round::<k8s_openapi::api::core::v1::ServiceAccount>,
    ..PLAIN
};
