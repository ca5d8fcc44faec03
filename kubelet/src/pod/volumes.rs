//! Pod volumes the node can provide on its own: `emptyDir` (a directory in
//! the pod's folder, gone with the pod) and `hostPath`. Volumes that need the
//! API (configMap, secret, persistentVolumeClaim) come with the control plane.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::runtime::BindMount;

/// Bind mounts for `container`'s `volumeMounts`, creating emptyDir folders
/// under `pod_dir`. Unsupported volume kinds are an error naming the volume.
pub fn mounts_for(
    pod: &Pod,
    container: &Container,
    pod_dir: &Path,
) -> Result<Vec<BindMount>, String> {
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let volume = volumes
            .iter()
            .find(|v| v.name == mount.name)
            .ok_or_else(|| format!("volumeMount {:?} names no volume of the pod", mount.name))?;
        let host_path: PathBuf = if volume.empty_dir.is_some() {
            let dir = pod_dir.join("volumes").join(&volume.name);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create emptyDir {}: {e}", dir.display()))?;
            dir
        } else if let Some(host) = &volume.host_path {
            let path = PathBuf::from(&host.path);
            match host.type_.as_deref() {
                Some("DirectoryOrCreate") => std::fs::create_dir_all(&path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
                Some("FileOrCreate") if !path.exists() => {
                    if let Some(parent) = path.parent() {
                        let _ = std::fs::create_dir_all(parent);
                    }
                    std::fs::write(&path, b"")
                        .map_err(|e| format!("cannot create {}: {e}", path.display()))?
                }
                _ if !path.exists() => {
                    return Err(format!("hostPath {} does not exist", path.display()));
                }
                _ => {}
            }
            path
        } else {
            return Err(format!(
                "volume {:?}: only emptyDir and hostPath are supported on the node yet",
                volume.name
            ));
        };
        let host_path = match mount.sub_path.as_deref() {
            Some(sub) if !sub.is_empty() => {
                let p = host_path.join(sub);
                let _ = std::fs::create_dir_all(&p);
                p
            }
            _ => host_path,
        };
        out.push(BindMount {
            host_path,
            container_path: mount.mount_path.clone(),
            read_only: mount.read_only.unwrap_or(false),
        });
    }
    Ok(out)
}
