//! Pods assigned over the API, saved on disk so a restarted kubelet knows at
//! once what it runs (before the control plane resynchronises it) and
//! re-adopts those pods' containers instead of treating them as orphans.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use tracing::warn;

/// The checkpoint folder of a node.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("checkpoints")
}

fn file(state_dir: &Path, uid: &str) -> PathBuf {
    let safe: String = uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    dir(state_dir).join(format!("{safe}.json"))
}

/// Saves `pod` (atomically: temporary file, then rename).
pub fn save(state_dir: &Path, uid: &str, pod: &Pod) {
    let path = file(state_dir, uid);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir(state_dir))?;
        let tmp = path.with_extension("json.partial");
        std::fs::write(
            &tmp,
            serde_json::to_vec(pod).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        warn!(path = %path.display(), error = %e, "cannot checkpoint pod");
    }
}

/// Forgets a pod.
pub fn remove(state_dir: &Path, uid: &str) {
    let _ = std::fs::remove_file(file(state_dir, uid));
}

/// Every saved pod; unreadable files are reported and skipped.
pub fn load(state_dir: &Path) -> Vec<Pod> {
    let mut pods = Vec::new();
    for entry in std::fs::read_dir(dir(state_dir))
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(pod) => pods.push(pod),
            Err(e) => warn!(path = %path.display(), error = %e, "skipping unreadable checkpoint"),
        }
    }
    pods
}
