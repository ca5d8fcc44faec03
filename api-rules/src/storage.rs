//! PersistentVolumeClaims: access modes, requested storage, volume mode.

use k8s_openapi::api::core::v1::PersistentVolumeClaimSpec;

use crate::metadata::go_quote;

/// Whether a quantity string is zero or negative (`0`, `0Gi`, `-1`).
pub(crate) fn not_positive(quantity: &str) -> bool {
    let number: String = quantity
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+'))
        .collect();
    number.parse::<f64>().is_ok_and(|n| n <= 0.0)
}

/// Every problem with a claim spec at `path` (`spec`).
pub fn validate_claim_spec(path: &str, spec: &PersistentVolumeClaimSpec) -> Vec<String> {
    let mut errors = Vec::new();
    let modes = spec.access_modes.as_deref().unwrap_or_default();
    if modes.is_empty() {
        errors.push(format!(
            "{path}.accessModes: Required value: at least 1 access mode is required"
        ));
    }
    for mode in modes {
        if !matches!(
            mode.as_str(),
            "ReadOnlyMany" | "ReadWriteMany" | "ReadWriteOnce" | "ReadWriteOncePod"
        ) {
            errors.push(format!(
                "{path}.accessModes: Unsupported value: {}: supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                go_quote(mode)
            ));
        }
    }
    let storage = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"));
    match storage {
        None => errors.push(format!("{path}.resources[storage]: Required value")),
        Some(q) if not_positive(&q.0) => errors.push(format!(
            "{path}.resources.requests[storage]: Invalid value: {}: must be greater than zero",
            go_quote(&q.0)
        )),
        Some(_) => {}
    }
    if let Some(mode) = spec
        .volume_mode
        .as_deref()
        .filter(|m| !matches!(*m, "Block" | "Filesystem"))
    {
        errors.push(format!(
            "{path}.volumeMode: Unsupported value: {}: supported values: \"Block\", \"Filesystem\"",
            go_quote(mode)
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> PersistentVolumeClaimSpec {
        serde_yaml::from_str(yaml).expect("spec")
    }

    #[test]
    fn claims_need_modes_and_storage() {
        assert!(
            validate_claim_spec(
                "spec",
                &spec("{accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}")
            )
            .is_empty()
        );
        assert_eq!(
            validate_claim_spec("spec", &spec("{volumeMode: Disk}")),
            [
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Required value",
                "spec.volumeMode: Unsupported value: \"Disk\": supported values: \"Block\", \"Filesystem\""
            ]
        );
        assert_eq!(
            validate_claim_spec(
                "spec",
                &spec("{accessModes: [Everyone], resources: {requests: {storage: 0Gi}}}")
            ),
            [
                "spec.accessModes: Unsupported value: \"Everyone\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                "spec.resources.requests[storage]: Invalid value: \"0Gi\": must be greater than zero"
            ]
        );
    }
}
