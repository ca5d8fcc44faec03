//! Services (type, ports, protocols, affinity), and the port protocol rule
//! containers share.

use k8s_openapi::api::core::v1::ServiceSpec;

use crate::metadata::{dns1123_label_errors, dns1123_subdomain_errors, go_quote};

/// `Unsupported value` for a port protocol other than SCTP, TCP or UDP
/// (`None` when supported or unset: defaulting sets TCP).
pub fn protocol_error(path: &str, protocol: Option<&str>) -> Option<String> {
    let protocol = protocol?;
    (!matches!(protocol, "SCTP" | "TCP" | "UDP")).then(|| {
        format!(
            "{path}: Unsupported value: {}: supported values: \"SCTP\", \"TCP\", \"UDP\"",
            go_quote(protocol)
        )
    })
}

/// Every problem with a (defaulted) Service spec.
pub fn validate_service_spec(spec: &ServiceSpec) -> Vec<String> {
    let mut errors = Vec::new();
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if !matches!(
        kind,
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        errors.push(format!(
            "spec.type: Unsupported value: {}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            go_quote(kind)
        ));
    }
    let ports = spec.ports.as_deref().unwrap_or_default();
    if kind == "ExternalName" {
        match spec.external_name.as_deref().filter(|n| !n.is_empty()) {
            None => errors.push("spec.externalName: Required value".into()),
            Some(name) => {
                let name = name.strip_suffix('.').unwrap_or(name);
                for m in dns1123_subdomain_errors(name) {
                    errors.push(format!(
                        "spec.externalName: Invalid value: {}: {m}",
                        go_quote(name)
                    ));
                }
            }
        }
    } else if ports.is_empty() && spec.cluster_ip.as_deref() != Some("None") {
        // Headless Services may have no ports (DNS records only).
        errors.push("spec.ports: Required value".into());
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        match p.name.as_deref().filter(|n| !n.is_empty()) {
            None if ports.len() > 1 => errors.push(format!("{path}.name: Required value")),
            None => {}
            Some(name) => {
                for m in dns1123_label_errors(name) {
                    errors.push(format!(
                        "{path}.name: Invalid value: {}: {m}",
                        go_quote(name)
                    ));
                }
                if !names.insert(name) {
                    errors.push(format!("{path}.name: Duplicate value: {}", go_quote(name)));
                }
            }
        }
        if !(1..=65535).contains(&p.port) {
            errors.push(format!(
                "{path}.port: Invalid value: {}: must be between 1 and 65535, inclusive",
                p.port
            ));
        }
        if let Some(e) = protocol_error(&format!("{path}.protocol"), p.protocol.as_deref()) {
            errors.push(e);
        }
    }
    if let Some(affinity) = spec
        .session_affinity
        .as_deref()
        .filter(|a| !matches!(*a, "ClientIP" | "None"))
    {
        errors.push(format!(
            "spec.sessionAffinity: Unsupported value: {}: supported values: \"ClientIP\", \"None\"",
            go_quote(affinity)
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ServiceSpec {
        serde_yaml::from_str(yaml).expect("spec")
    }

    #[test]
    fn ports_protocols_and_names() {
        let errors = validate_service_spec(&spec(
            "{ports: [{port: 80, protocol: FOO}, {name: b, port: 0}, {name: b, port: 81}], sessionAffinity: Sticky}",
        ));
        assert_eq!(
            errors,
            [
                "spec.ports[0].name: Required value",
                "spec.ports[0].protocol: Unsupported value: \"FOO\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[2].name: Duplicate value: \"b\"",
                "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
            ]
        );
        assert!(validate_service_spec(&spec("{ports: [{port: 80, protocol: UDP}]}")).is_empty());
    }

    #[test]
    fn types_and_external_names() {
        assert_eq!(
            validate_service_spec(&spec("{type: Magic, ports: [{port: 1}]}")),
            [
                "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
            ]
        );
        assert_eq!(
            validate_service_spec(&spec("{type: ExternalName}")),
            ["spec.externalName: Required value"]
        );
        assert!(
            validate_service_spec(&spec("{type: ExternalName, externalName: db.example.com}"))
                .is_empty()
        );
        assert_eq!(
            validate_service_spec(&spec("{}")),
            ["spec.ports: Required value"]
        );
        assert!(
            validate_service_spec(&spec("{clusterIP: None}")).is_empty(),
            "headless Services may have no ports"
        );
    }
}
