//! From a Kubernetes Pod to what the runtime needs: container ids, log and
//! state paths, environment (including `fieldRef`s), the hosts file, the
//! image pull policy and the grace period, all with upstream defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use skiff_images::ImageName;

/// Upstream's default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE_SECONDS: i64 = 30;

/// Identity of a pod on this node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

impl PodKey {
    /// Reads the key of a (validated) pod.
    pub fn of(pod: &Pod) -> Self {
        Self {
            namespace: pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }

    /// `name_namespace(uid)`, how upstream names a pod in messages.
    pub fn display(&self) -> String {
        format!("{}_{}({})", self.name, self.namespace, self.uid)
    }

    /// `namespace/name`, for logs and spans.
    pub fn ns_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The pod's directory under the node's state dir (upstream's
    /// `/var/log/pods/<ns>_<name>_<uid>` layout).
    pub fn dir(&self, state_dir: &Path) -> PathBuf {
        state_dir
            .join("pods")
            .join(format!("{}_{}_{}", self.namespace, self.name, self.uid))
    }

    /// Log file of one container instance: `<pod dir>/<container>/<restart>.log`.
    pub fn log_path(&self, state_dir: &Path, container: &str, restart: u32) -> PathBuf {
        self.dir(state_dir)
            .join(container)
            .join(format!("{restart}.log"))
    }

    /// Runtime id of one container instance: short, unique, readable.
    pub fn container_id(&self, container: &str, restart: u32) -> String {
        let uid: String = self
            .uid
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(12)
            .collect();
        let name: String = container
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        format!("{name}-{uid}-{restart}")
    }
}

/// `restartPolicy` of a pod (default `Always`).
pub fn restart_policy(pod: &Pod) -> super::restart_policy::RestartPolicy {
    super::restart_policy::RestartPolicy::from_spec(
        pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()),
    )
}

/// Whether the pod uses the node's network namespace (`hostNetwork`).
pub fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The grace period for stopping the pod's containers.
pub fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(DEFAULT_GRACE_SECONDS)
        .max(0);
    Duration::from_secs(secs as u64)
}

/// How a container's image is made present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Refresh it every start.
    Always,
    /// Only when missing.
    IfNotPresent,
    /// Never; a missing image is an error.
    Never,
}

/// The container's pull policy, defaulted as upstream does: `Always` for
/// `:latest` (or no tag), else `IfNotPresent`.
pub fn pull_policy(container: &Container, image: &ImageName) -> PullPolicy {
    match container.image_pull_policy.as_deref() {
        Some("Always") => PullPolicy::Always,
        Some("Never") => PullPolicy::Never,
        Some("IfNotPresent") => PullPolicy::IfNotPresent,
        _ if image.is_latest() => PullPolicy::Always,
        _ => PullPolicy::IfNotPresent,
    }
}

/// The pod's hostname: `spec.hostname`, else the pod name (63 characters at most).
pub fn hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}

/// Contents of the pod's `/etc/hosts`, in the kubelet's format, with
/// `hostAliases` appended.
pub fn hosts_file(pod: &Pod, pod_ip: Option<&str>) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    let spec = pod.spec.as_ref();
    let host = hostname(pod);
    let fqdn = spec.and_then(|s| s.subdomain.as_ref()).map(|sub| {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        format!("{host}.{sub}.{ns}.svc.cluster.local")
    });
    // Without a pod IP (no pod network yet) the hostname still resolves, to
    // the loopback, as Debian does for machines without a fixed address.
    let ip = pod_ip.unwrap_or("127.0.1.1");
    match fqdn {
        Some(fqdn) => out.push_str(&format!("{ip}\t{fqdn}\t{host}\n")),
        None => out.push_str(&format!("{ip}\t{host}\n")),
    }
    if let Some(aliases) = spec.and_then(|s| s.host_aliases.as_ref())
        && !aliases.is_empty()
    {
        out.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases {
            let names = alias.hostnames.clone().unwrap_or_default().join("\t");
            out.push_str(&format!("{}\t{names}\n", alias.ip));
        }
    }
    out
}

/// Values `fieldRef` can point at, known on the node.
#[derive(Debug, Clone, Default)]
pub struct Downward {
    /// `spec.nodeName`.
    pub node_name: String,
    /// `status.hostIP`.
    pub host_ip: Option<String>,
    /// `status.podIP`.
    pub pod_ip: Option<String>,
}

fn field_value(pod: &Pod, path: &str, downward: &Downward) -> String {
    let m = &pod.metadata;
    let from_map = |map: &Option<std::collections::BTreeMap<String, String>>, key: &str| {
        map.as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default()
    };
    let key_in = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(String::from)
    };
    match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_else(|| "default".into()),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => downward.node_name.clone(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        "status.hostIP" | "status.hostIPs" => downward.host_ip.clone().unwrap_or_default(),
        "status.podIP" | "status.podIPs" => downward.pod_ip.clone().unwrap_or_default(),
        _ => {
            if let Some(k) = key_in("metadata.labels['") {
                from_map(&m.labels, &k)
            } else if let Some(k) = key_in("metadata.annotations['") {
                from_map(&m.annotations, &k)
            } else {
                String::new()
            }
        }
    }
}

/// The container's environment as `(name, value)` pairs, `fieldRef`s
/// resolved; `$(VAR)` expansion happens in the runtime's process step.
pub fn environment(pod: &Pod, container: &Container, downward: &Downward) -> Vec<(String, String)> {
    container
        .env
        .iter()
        .flatten()
        .map(|e| {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => from
                    .field_ref
                    .as_ref()
                    .map(|f| field_value(pod, &f.field_path, downward))
                    .unwrap_or_default(),
                (None, None) => String::new(),
            };
            (e.name.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).expect("yaml")
    }

    #[test]
    fn hosts_file_has_hostname_and_aliases() {
        let p = pod(r#"
metadata: {name: web, namespace: lab, uid: u1}
spec:
  hostAliases:
  - ip: 10.1.2.3
    hostnames: [foo.local, bar.local]
  containers: [{name: c, image: busybox}]
"#);
        let hosts = hosts_file(&p, None);
        assert!(hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(hosts.contains("127.0.1.1\tweb\n"), "{hosts}");
        assert!(
            hosts.ends_with("# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"),
            "{hosts}"
        );
        let sub = pod(
            "metadata: {name: web-0, namespace: lab}\nspec: {hostname: web-0, subdomain: web, containers: []}",
        );
        assert!(
            hosts_file(&sub, Some("10.0.0.5"))
                .contains("10.0.0.5\tweb-0.web.lab.svc.cluster.local\tweb-0\n")
        );
    }

    #[test]
    fn pull_policy_defaults_like_upstream() {
        let c = |policy: Option<&str>| Container {
            name: "c".into(),
            image_pull_policy: policy.map(String::from),
            ..Container::default()
        };
        let latest = ImageName::parse("busybox").expect("valid");
        let tagged = ImageName::parse("skiff.dev/webapp:v1").expect("valid");
        assert_eq!(pull_policy(&c(None), &latest), PullPolicy::Always);
        assert_eq!(pull_policy(&c(None), &tagged), PullPolicy::IfNotPresent);
        assert_eq!(pull_policy(&c(Some("Never")), &latest), PullPolicy::Never);
    }

    #[test]
    fn field_refs_resolve_from_the_pod_and_node() {
        let p = pod(r#"
metadata: {name: web, namespace: lab, uid: u1, labels: {app: shop}}
spec:
  containers:
  - name: c
    image: busybox
    env:
    - {name: PLAIN, value: x}
    - name: POD
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: NODE
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
    - name: APP
      valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}
"#);
        let downward = Downward {
            node_name: "node-1".into(),
            ..Downward::default()
        };
        let container = &p.spec.as_ref().expect("spec").containers[0];
        let env = environment(&p, container, &downward);
        let value = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(value("PLAIN").as_deref(), Some("x"));
        assert_eq!(value("POD").as_deref(), Some("web"));
        assert_eq!(value("NODE").as_deref(), Some("node-1"));
        assert_eq!(value("APP").as_deref(), Some("shop"));
    }

    #[test]
    fn container_ids_are_unique_per_restart_and_short() {
        let key = PodKey {
            namespace: "default".into(),
            name: "p".into(),
            uid: "0b9c6f0e-1234-4cde-9f00-aaaaaaaaaaaa".into(),
        };
        let a = key.container_id("web", 0);
        assert_eq!(a, "web-0b9c6f0e1234-0");
        assert_ne!(a, key.container_id("web", 1));
        assert!(key.container_id(&"x".repeat(63), 99).len() <= 76);
    }
}
