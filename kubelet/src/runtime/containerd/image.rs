//! Reading images out of containerd's store: manifest, config, the layer
//! chain id a container's snapshot grows from, and the run defaults.

use containerd_client::services::v1::snapshots::StatSnapshotRequest;
use containerd_client::services::v1::{GetImageRequest, ReadContentRequest};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use sha2::{Digest as _, Sha256};
use skiff_images::ImageName;
use tokio_stream::StreamExt;

use super::client::Services;
use crate::runtime::process::ImageDefaults;
use crate::runtime::{Result, RuntimeError};

/// An image ready to have containers created from it.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedImage {
    /// Digest of the platform manifest.
    pub manifest_digest: String,
    /// Chain id of the top layer: the parent of a container's snapshot.
    pub chain_id: String,
    /// What the image runs by default.
    pub defaults: ImageDefaults,
}

/// Chain ids of a layer stack: `chain[0] = diff[0]`,
/// `chain[i] = sha256(chain[i-1] + " " + diff[i])`.
pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(parent) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{parent} {diff}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

/// Whether an index entry is for this machine (linux and its architecture);
/// entries without a platform are assumed to be.
pub(crate) fn runs_here(entry: &oci_spec::image::Descriptor) -> bool {
    entry.platform().as_ref().is_none_or(|p| {
        p.architecture().to_string() == host_arch() && p.os().to_string() == "linux"
    })
}

/// Reads a whole blob from the content store.
pub(crate) async fn read_content(svc: &Services, digest: &str) -> Result<Vec<u8>> {
    let mut stream = svc
        .content
        .clone()
        .read(svc.req(ReadContentRequest {
            digest: digest.to_string(),
            offset: 0,
            size: 0,
        }))
        .await
        .map_err(|s| RuntimeError::rpc("Content.Read", "", s))?
        .into_inner();
    let mut data = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|s| RuntimeError::rpc("Content.Read", "", s))?;
        data.extend_from_slice(&chunk.data);
    }
    Ok(data)
}

/// This machine's architecture, in OCI platform terms.
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Resolves `name` to its manifest for this machine's platform.
pub(crate) async fn resolve(
    svc: &Services,
    name: &ImageName,
    snapshotter: &str,
) -> Result<ResolvedImage> {
    let invalid = |reason: String| RuntimeError::InvalidImage {
        image: name.to_string(),
        reason,
    };
    let image = match svc
        .images
        .clone()
        .get(svc.req(GetImageRequest {
            name: name.to_string(),
        }))
        .await
    {
        Ok(r) => r.into_inner().image,
        Err(s) if s.code() == tonic::Code::NotFound => None,
        Err(s) => return Err(RuntimeError::rpc("Images.Get", "", s)),
    };
    let target = image
        .and_then(|i| i.target)
        .ok_or_else(|| RuntimeError::ImageNotPresent {
            image: name.to_string(),
        })?;

    let mut manifest_digest = target.digest.clone();
    let mut media_type = target.media_type.clone();
    // An index (multi-platform image) points at one manifest per platform.
    for _ in 0..4 {
        if media_type != MediaType::ImageIndex.to_string()
            && media_type != "application/vnd.docker.distribution.manifest.list.v2+json"
        {
            break;
        }
        let bytes = read_content(svc, &manifest_digest).await?;
        let index = ImageIndex::from_reader(bytes.as_slice())
            .map_err(|e| invalid(format!("bad index: {e}")))?;
        let chosen = index
            .manifests()
            .iter()
            .find(|m| runs_here(m))
            .ok_or_else(|| invalid(format!("no manifest for linux/{}", host_arch())))?;
        manifest_digest = chosen.digest().to_string();
        media_type = chosen.media_type().to_string();
    }

    let manifest_bytes = read_content(svc, &manifest_digest).await?;
    let manifest = ImageManifest::from_reader(manifest_bytes.as_slice())
        .map_err(|e| invalid(format!("bad manifest: {e}")))?;
    let config_bytes = read_content(svc, manifest.config().digest().as_ref()).await?;
    let config = ImageConfiguration::from_reader(config_bytes.as_slice())
        .map_err(|e| invalid(format!("bad config: {e}")))?;
    let chain = chain_ids(config.rootfs().diff_ids());
    let chain_id = chain
        .last()
        .cloned()
        .ok_or_else(|| invalid("image has no layers".into()))?;

    // The image counts as present only once it is unpacked for our snapshotter.
    if let Err(s) = svc
        .snapshots
        .clone()
        .stat(svc.req(StatSnapshotRequest {
            snapshotter: snapshotter.to_string(),
            key: chain_id.clone(),
        }))
        .await
    {
        return Err(if s.code() == tonic::Code::NotFound {
            RuntimeError::ImageNotPresent {
                image: name.to_string(),
            }
        } else {
            RuntimeError::rpc("Snapshots.Stat", "", s)
        });
    }

    let run = config.config().clone().unwrap_or_default();
    Ok(ResolvedImage {
        manifest_digest,
        chain_id,
        defaults: ImageDefaults {
            entrypoint: run.entrypoint().clone().unwrap_or_default(),
            cmd: run.cmd().clone().unwrap_or_default(),
            env: run.env().clone().unwrap_or_default(),
            working_dir: run.working_dir().clone().unwrap_or_default(),
            user: run.user().clone().unwrap_or_default(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        let expected = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(format!("{a} {b}").as_bytes()))
        );
        assert_eq!(chain[1], expected);
        assert!(chain_ids(&[]).is_empty());
    }
}
