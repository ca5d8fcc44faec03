//! Static pods: every manifest in the node's manifests folder runs as a pod
//! named `<name>-<nodeName>`, followed as files are created, changed and
//! deleted (polled once a second). A manifest that cannot be parsed or is
//! invalid is reported (log line and node Event) and skipped; it never stops
//! the kubelet or disturbs other pods.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;
use ractor::ActorRef;
use sha2::{Digest, Sha256};
use tracing::warn;

use super::events::{Event, EventObject};
use super::{NodeMsg, PodSource};
use skiff_api_rules::pod::validate_pod;

/// How often the folder is scanned.
pub const SCAN_PERIOD: Duration = Duration::from_secs(1);

/// What the watcher knows of one manifest file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    digest: String,
    uid: Option<String>,
}

fn is_manifest(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'));
    !hidden
        && path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
}

/// Turns a manifest into the static pod it describes.
pub fn static_pod(node_name: &str, path: &Path, content: &[u8]) -> Result<Pod, String> {
    let text = std::str::from_utf8(content).map_err(|e| format!("not UTF-8: {e}"))?;
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    if let Some(kind) = value.get("kind").and_then(|k| k.as_str())
        && kind != "Pod"
    {
        return Err(format!("kind {kind:?} is not Pod"));
    }
    let mut pod: Pod = serde_yaml::from_value(value).map_err(|e| e.to_string())?;
    let errors = validate_pod(&pod);
    if !errors.is_empty() {
        return Err(format!(
            "Pod \"{}\" is invalid: {}",
            pod.metadata.name.clone().unwrap_or_default(),
            errors.join(", ")
        ));
    }
    let digest = hex::encode(Sha256::digest(
        [
            node_name.as_bytes(),
            b"\0",
            path.to_string_lossy().as_bytes(),
            b"\0",
            content,
        ]
        .concat(),
    ));
    let uid = format!(
        "{}-{}-{}-{}-{}",
        &digest[0..8],
        &digest[8..12],
        &digest[12..16],
        &digest[16..20],
        &digest[20..32]
    );
    let name = pod.metadata.name.clone().unwrap_or_default();
    pod.metadata.name = Some(format!("{name}-{node_name}"));
    pod.metadata
        .namespace
        .get_or_insert_with(|| "default".into());
    pod.metadata.uid = Some(uid.clone());
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert("kubernetes.io/config.source".into(), "file".into());
    annotations.insert("kubernetes.io/config.hash".into(), uid);
    annotations.insert("kubernetes.io/config.seen".into(), Utc::now().to_rfc3339());
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(node_name.to_string());
    }
    Ok(pod)
}

/// Follows a manifests folder and tells the node agent what changed.
pub struct ManifestWatcher {
    dir: PathBuf,
    node_name: String,
    known: HashMap<PathBuf, Known>,
}

/// What one scan found.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Pods to run (new or changed manifests).
    pub assign: Vec<(Pod, PodSource)>,
    /// UIDs of pods whose manifest changed or vanished.
    pub remove: Vec<String>,
    /// Manifests that could not be used.
    pub problems: Vec<Event>,
}

impl ManifestWatcher {
    /// A watcher of `dir` for node `node_name`.
    pub fn new(dir: PathBuf, node_name: impl Into<String>) -> Self {
        Self {
            dir,
            node_name: node_name.into(),
            known: HashMap::new(),
        }
    }

    /// Compares the folder with what was seen before.
    pub fn scan(&mut self) -> ScanResult {
        let mut result = ScanResult::default();
        let mut present = Vec::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if !path.is_file() || !is_manifest(&path) {
                continue;
            }
            let Ok(content) = std::fs::read(&path) else {
                continue;
            };
            present.push(path.clone());
            let digest = hex::encode(Sha256::digest(&content));
            if self.known.get(&path).is_some_and(|k| k.digest == digest) {
                continue;
            }
            if let Some(old) = self.known.remove(&path).and_then(|k| k.uid) {
                result.remove.push(old);
            }
            let uid = match static_pod(&self.node_name, &path, &content) {
                Ok(pod) => {
                    let uid = pod.metadata.uid.clone();
                    result.assign.push((pod, PodSource::Static(path.clone())));
                    uid
                }
                Err(e) => {
                    warn!(manifest = %path.display(), error = %e, "skipping static pod manifest");
                    result.problems.push(Event {
                        object: EventObject::Node(self.node_name.clone()),
                        field_path: None,
                        warning: true,
                        reason: "FailedToParseStaticPod".into(),
                        message: format!(
                            "Could not use static pod manifest {}: {e}",
                            path.display()
                        ),
                        time: Utc::now(),
                    });
                    None
                }
            };
            self.known.insert(path, Known { digest, uid });
        }
        let gone: Vec<PathBuf> = self
            .known
            .keys()
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(uid) = self.known.remove(&path).and_then(|k| k.uid) {
                result.remove.push(uid);
            }
        }
        result
    }

    /// Scans every [`SCAN_PERIOD`] and sends the changes to `agent`.
    pub fn spawn(mut self, agent: ActorRef<NodeMsg>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SCAN_PERIOD).await;
                let result = self.scan();
                for uid in result.remove {
                    let _ = agent.cast(NodeMsg::Remove {
                        uid,
                        grace: None,
                        reply: None,
                    });
                }
                for (pod, source) in result.assign {
                    let _ = agent.cast(NodeMsg::Assign {
                        pod: Box::new(pod),
                        source,
                        reply: None,
                    });
                }
                for event in result.problems {
                    let _ = agent.cast(NodeMsg::Event(Box::new(event)));
                }
                if agent.get_status() == ractor::ActorStatus::Stopped {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: c, image: busybox}]\n";

    #[test]
    fn static_pods_are_named_after_the_node_with_a_stable_uid() {
        let a = static_pod("node-1", Path::new("/m/web.yaml"), MANIFEST.as_bytes()).expect("valid");
        let b = static_pod("node-1", Path::new("/m/web.yaml"), MANIFEST.as_bytes()).expect("valid");
        assert_eq!(a.metadata.name.as_deref(), Some("web-node-1"));
        assert_eq!(a.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(a.metadata.uid, b.metadata.uid);
        let annotations = a.metadata.annotations.expect("annotations");
        assert_eq!(annotations["kubernetes.io/config.source"], "file");
    }

    #[test]
    fn the_watcher_follows_creation_change_deletion_and_reports_bad_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = ManifestWatcher::new(dir.path().to_path_buf(), "n1");
        std::fs::write(dir.path().join("web.yaml"), MANIFEST).expect("write");
        std::fs::write(dir.path().join("broken.yaml"), "metadata: [unclosed").expect("write");
        std::fs::write(dir.path().join("notes.txt"), "ignored").expect("write");
        let first = w.scan();
        assert_eq!(first.assign.len(), 1);
        assert_eq!(first.problems.len(), 1);
        assert_eq!(first.problems[0].reason, "FailedToParseStaticPod");
        let uid = first.assign[0].0.metadata.uid.clone().expect("uid");
        let again = w.scan();
        assert!(again.assign.is_empty() && again.remove.is_empty() && again.problems.is_empty());

        std::fs::write(
            dir.path().join("web.yaml"),
            MANIFEST.replace("busybox", "skiff.dev/webapp:v1"),
        )
        .expect("write");
        let changed = w.scan();
        assert_eq!(changed.remove, [uid]);
        assert_eq!(changed.assign.len(), 1);
        let new_uid = changed.assign[0].0.metadata.uid.clone().expect("uid");

        std::fs::remove_file(dir.path().join("web.yaml")).expect("rm");
        assert_eq!(w.scan().remove, [new_uid]);
    }
}
