//! Pod volumes: `emptyDir` (a directory in the pod's folder, gone with the
//! pod), `hostPath`, and `persistentVolumeClaim` bound to a node-local
//! volume: a directory under the node's `volumes/` folder named by the
//! volume's handle, which outlives the pod (the next pod of the claim
//! finds its data). The control plane resolves claim → volume and names
//! the handle in the pod's [`LOCAL_VOLUMES_ANNOTATION`]. `projected`
//! volumes are folders [`super::projected`] fills before the container
//! starts, mounted read-only. `configMap` and `secret` volumes are not
//! supported yet.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use skiff_proto::node::LOCAL_VOLUMES_ANNOTATION;

use crate::runtime::BindMount;

/// The node-local volume handles the control plane named for the pod's
/// claim volumes, by volume name.
fn local_volumes(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LOCAL_VOLUMES_ANNOTATION))
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}

/// A handle is one plain path component (it names a directory).
fn safe_handle(handle: &str) -> bool {
    !handle.is_empty() && handle != "." && handle != ".." && !handle.contains(['/', '\\', '\0'])
}

/// The pod's `fsGroup`.
fn fs_group(pod: &Pod) -> Option<u32> {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group)
        .and_then(|g| u32::try_from(g).ok())
}

fn set_mode(dir: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {}: {e}", dir.display()))
}

/// Upstream's `SetVolumeOwnership` for a volume's top folder: owned by
/// group `fs_group`, group read-write and set-gid, so files made in it
/// belong to the group. (Upstream also walks existing contents; a fresh
/// emptyDir has none.)
fn set_ownership(dir: &Path, fs_group: Option<u32>) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let Some(gid) = fs_group else {
        return Ok(());
    };
    std::os::unix::fs::chown(dir, None, Some(gid))
        .map_err(|e| format!("cannot set the group of {}: {e}", dir.display()))?;
    let mode = std::fs::metadata(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .permissions()
        .mode();
    set_mode(dir, (mode & 0o7777) | 0o2770)
}

/// Bind mounts for `container`'s `volumeMounts`, creating emptyDir folders
/// under `pod_dir` and node-local volumes under `volumes_dir`. Unsupported
/// volume kinds are an error naming the volume.
pub fn mounts_for(
    pod: &Pod,
    container: &Container,
    pod_dir: &Path,
    volumes_dir: &Path,
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
        let mut read_only = mount.read_only.unwrap_or(false);
        let host_path: PathBuf = if let Some(claim) = &volume.persistent_volume_claim {
            let handle = local_volumes(pod)
                .remove(&volume.name)
                .filter(|h| safe_handle(h))
                .ok_or_else(|| {
                    format!(
                        "volume {:?}: persistentVolumeClaim {:?} is not bound to a volume on this node",
                        volume.name, claim.claim_name
                    )
                })?;
            read_only |= claim.read_only.unwrap_or(false);
            let dir = volumes_dir.join(handle);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create volume {}: {e}", dir.display()))?;
            set_ownership(&dir, fs_group(pod))?;
            dir
        } else if volume.empty_dir.is_some() {
            let dir = pod_dir.join("volumes").join(&volume.name);
            let fresh = !dir.exists();
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create emptyDir {}: {e}", dir.display()))?;
            if fresh {
                // Upstream's emptyDir is world-writable, so any runAsUser
                // can use it.
                set_mode(&dir, 0o777)?;
            }
            set_ownership(&dir, fs_group(pod))?;
            dir
        } else if volume.projected.is_some() {
            read_only = true;
            pod_dir.join("volumes").join(&volume.name)
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
                "volume {:?}: only emptyDir, hostPath, persistentVolumeClaim and projected are supported on the node yet",
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
            read_only,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotation: Option<&str>) -> Pod {
        let mut value = serde_json::json!({
            "metadata": {"name": "web-0", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}}]}});
        if let Some(a) = annotation {
            value["metadata"]["annotations"] = serde_json::json!({LOCAL_VOLUMES_ANNOTATION: a});
        }
        serde_json::from_value(value).expect("pod")
    }

    #[test]
    fn claims_mount_their_node_local_volume_which_outlives_the_pod() {
        let dir = std::env::temp_dir().join(format!("skiff-volumes-{}", std::process::id()));
        let (pod_dir, volumes_dir) = (dir.join("pod"), dir.join("volumes"));
        let p = pod(Some(r#"{"data":"pvc-123"}"#));
        let container = p.spec.as_ref().expect("spec").containers[0].clone();
        let mounts = mounts_for(&p, &container, &pod_dir, &volumes_dir).expect("mounts");
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].host_path, volumes_dir.join("pvc-123"));
        assert_eq!(mounts[0].container_path, "/data");
        assert!(!mounts[0].read_only);
        assert!(volumes_dir.join("pvc-123").is_dir());
        // Unresolved, or a handle that would leave the folder: refused.
        for bad in [
            None,
            Some(r#"{"data":"../etc"}"#),
            Some(r#"{"data":".."}"#),
            Some("nonsense"),
        ] {
            let p = pod(bad);
            let err = mounts_for(&p, &container, &pod_dir, &volumes_dir).expect_err("refused");
            assert!(
                err.contains("is not bound to a volume on this node"),
                "{err}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn empty_dirs_are_world_writable_and_owned_by_the_fs_group() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().expect("tempdir");
        let p: Pod = serde_yaml::from_str(
            r#"
metadata: {name: p, uid: u}
spec:
  securityContext: {fsGroup: 2000}
  volumes: [{name: data, emptyDir: {}}]
  containers: [{name: c, image: i, volumeMounts: [{name: data, mountPath: /data}]}]
"#,
        )
        .expect("pod");
        let c = &p.spec.as_ref().expect("spec").containers[0];
        let mounts = mounts_for(&p, c, dir.path(), &dir.path().join("pv")).expect("mounts");
        let meta = std::fs::metadata(&mounts[0].host_path).expect("emptyDir");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o2777);
        assert_eq!(meta.gid(), 2000);
    }
}
