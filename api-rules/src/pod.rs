//! Pod specs, validated with the field paths and wording of the Kubernetes
//! API server (`spec.containers[0].image: Required value`), so a bad
//! object, assignment or manifest gets a clear error.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Probe};

use crate::names::{is_dns1123_label, is_dns1123_subdomain, subdomain_message};

fn check_probe(path: &str, probe: &Option<Probe>, liveness_like: bool, errors: &mut Vec<String>) {
    let Some(p) = probe else { return };
    let handlers = [
        p.http_get.is_some(),
        p.tcp_socket.is_some(),
        p.exec.is_some(),
        p.grpc.is_some(),
    ]
    .iter()
    .filter(|h| **h)
    .count();
    match handlers {
        0 => errors.push(format!(
            "{path}: Required value: must specify a handler type"
        )),
        1 => {}
        _ => errors.push(format!(
            "{path}: Forbidden: may not specify more than 1 handler type"
        )),
    }
    for (field, value) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        if let Some(v) = value
            && v < 0
        {
            errors.push(format!(
                "{path}.{field}: Invalid value: {v}: must be greater than or equal to 0"
            ));
        }
    }
    if liveness_like && p.success_threshold.is_some_and(|v| v != 1) {
        errors.push(format!(
            "{path}.successThreshold: Invalid value: {}: must be 1",
            p.success_threshold.unwrap_or_default()
        ));
    }
}

fn check_container(path: &str, c: &Container, errors: &mut Vec<String>) {
    if c.name.is_empty() {
        errors.push(format!("{path}.name: Required value"));
    } else {
        for m in crate::metadata::dns1123_label_errors(&c.name) {
            errors.push(format!(
                "{path}.name: Invalid value: {}: {m}",
                crate::metadata::go_quote(&c.name)
            ));
        }
    }
    match c.image.as_deref() {
        None | Some("") => errors.push(format!("{path}.image: Required value")),
        Some(image) => {
            if let Err(e) = skiff_images::ImageName::parse(image) {
                errors.push(format!(
                    "{path}.image: Invalid value: \"{image}\": {}",
                    e.reason
                ));
            }
        }
    }
    if let Some(policy) = c.image_pull_policy.as_deref()
        && !matches!(policy, "Always" | "IfNotPresent" | "Never")
    {
        errors.push(format!(
            "{path}.imagePullPolicy: Unsupported value: \"{policy}\": supported values: \"Always\", \"IfNotPresent\", \"Never\""
        ));
    }
    if let Some(dir) = c.working_dir.as_deref()
        && !dir.is_empty()
        && !dir.starts_with('/')
    {
        errors.push(format!(
            "{path}.workingDir: Invalid value: \"{dir}\": must be an absolute path"
        ));
    }
    for (i, port) in c.ports.iter().flatten().enumerate() {
        if !(1..=65535).contains(&port.container_port) {
            errors.push(format!(
                "{path}.ports[{i}].containerPort: Invalid value: {}: must be between 1 and 65535, inclusive",
                port.container_port
            ));
        }
        if let Some(e) = crate::service::protocol_error(
            &format!("{path}.ports[{i}].protocol"),
            port.protocol.as_deref(),
        ) {
            errors.push(e);
        }
    }
    check_probe(
        &format!("{path}.livenessProbe"),
        &c.liveness_probe,
        true,
        errors,
    );
    check_probe(
        &format!("{path}.readinessProbe"),
        &c.readiness_probe,
        false,
        errors,
    );
    check_probe(
        &format!("{path}.startupProbe"),
        &c.startup_probe,
        true,
        errors,
    );
}

/// Every problem with `pod`, as `field: message` lines; empty when valid.
pub fn validate_pod(pod: &Pod) -> Vec<String> {
    let mut errors = Vec::new();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        errors.push("metadata.name: Required value: name or generateName is required".into());
    } else if !is_dns1123_subdomain(name) {
        errors.push(format!("metadata.name: {}", subdomain_message(name)));
    }
    if let Some(ns) = pod.metadata.namespace.as_deref()
        && !is_dns1123_label(ns)
    {
        errors.push(format!("metadata.namespace: Invalid value: \"{ns}\""));
    }
    match &pod.spec {
        Some(spec) => errors.extend(validate_pod_spec("spec", spec)),
        None => errors.push("spec: Required value".into()),
    }
    errors
}

/// Every problem with a pod spec found at `path` (`spec`, or
/// `spec.template.spec` in a controller).
pub fn validate_pod_spec(path: &str, spec: &PodSpec) -> Vec<String> {
    let mut errors = Vec::new();
    if spec.containers.is_empty() {
        errors.push(format!("{path}.containers: Required value"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let cpath = format!("{path}.containers[{i}]");
        if !seen.insert(c.name.clone()) {
            errors.push(format!("{cpath}.name: Duplicate value: \"{}\"", c.name));
        }
        check_container(&cpath, c, &mut errors);
    }
    if let Some(policy) = spec.restart_policy.as_deref()
        && !matches!(policy, "Always" | "OnFailure" | "Never")
    {
        errors.push(format!(
            "{path}.restartPolicy: Unsupported value: \"{policy}\": supported values: \"Always\", \"OnFailure\", \"Never\""
        ));
    }
    if let Some(grace) = spec.termination_grace_period_seconds
        && grace < 0
    {
        errors.push(format!(
            "{path}.terminationGracePeriodSeconds: Invalid value: {grace}: must be greater than or equal to 0"
        ));
    }
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        if alias.ip.parse::<std::net::IpAddr>().is_err() {
            errors.push(format!(
                "{path}.hostAliases[{i}].ip: Invalid value: \"{}\": must be a valid IP address",
                alias.ip
            ));
        }
    }
    errors.extend(crate::dns::validate_pod_dns(path, spec));
    errors.extend(crate::security_context::validate_pod(path, spec));
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).expect("yaml")
    }

    #[test]
    fn a_seed_style_pod_is_valid() {
        let p = pod(r#"
apiVersion: v1
kind: Pod
metadata: {name: liveness-pod}
spec:
  containers:
  - name: web
    image: skiff.dev/webapp:v1
    livenessProbe:
      httpGet: {path: /health, port: 8080}
"#);
        assert_eq!(validate_pod(&p), Vec::<String>::new());
    }

    #[test]
    fn errors_name_the_field_like_the_api_server() {
        let p = pod(r#"
metadata: {name: Bad_Name}
spec:
  restartPolicy: Sometimes
  containers:
  - name: a
  - name: a
    image: busybox
    workingDir: tmp
    livenessProbe: {periodSeconds: 5}
"#);
        let errors = validate_pod(&p);
        for expected in [
            "metadata.name: Invalid value: \"Bad_Name\"",
            "spec.containers[0].image: Required value",
            "spec.containers[1].name: Duplicate value: \"a\"",
            "spec.containers[1].workingDir: Invalid value: \"tmp\"",
            "spec.containers[1].livenessProbe: Required value: must specify a handler type",
            "spec.restartPolicy: Unsupported value: \"Sometimes\"",
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(expected)),
                "missing {expected:?} in {errors:#?}"
            );
        }
    }
}

#[cfg(test)]
mod container_tests {
    use super::*;

    #[test]
    fn nameless_containers_and_unknown_protocols() {
        let p: Pod = serde_yaml::from_str(
            "{metadata: {name: p}, spec: {containers: [{image: busybox, ports: [{containerPort: 80, protocol: FOO}]}]}}",
        )
        .expect("pod");
        assert_eq!(
            validate_pod(&p),
            [
                "spec.containers[0].name: Required value",
                "spec.containers[0].ports[0].protocol: Unsupported value: \"FOO\": supported values: \"SCTP\", \"TCP\", \"UDP\""
            ]
        );
        let p: Pod = serde_yaml::from_str(
            "{metadata: {name: p}, spec: {containers: [{name: Web, image: busybox}]}}",
        )
        .expect("pod");
        assert_eq!(
            validate_pod(&p),
            [
                "spec.containers[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
    }
}
