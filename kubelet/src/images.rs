//! Making images present on the node, by pull policy, without a registry:
//! images come from containerd's store or are imported on demand from the
//! node's image folder (the tarballs of `skiff-images`). Nothing outside the
//! machine is contacted.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skiff_images::ImageName;

use crate::pod::spec::PullPolicy;
use crate::runtime::{ContainerRuntime, RuntimeError};

/// How an image came to be present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// It was there already (`IfNotPresent`, `Never`).
    AlreadyPresent,
    /// Imported from the image folder just now.
    Imported {
        /// The tarball.
        archive: PathBuf,
        /// How long the import took.
        took: Duration,
    },
    /// `Always` asked for a fresh copy, none is available offline, and the
    /// one in the store was used.
    UsedOffline,
}

/// Why an image is not available.
#[derive(Debug, thiserror::Error)]
pub enum ImageUnavailable {
    /// Missing, and the policy is `Never`.
    #[error("Container image \"{0}\" is not present with pull policy of Never")]
    NeverPull(String),
    /// Missing from the store and from the image folder.
    #[error(
        "image {image} not found: not in containerd and no archive for it in {searched} (no registry is configured)"
    )]
    NotFound {
        /// The image.
        image: String,
        /// The folder searched.
        searched: String,
    },
    /// The runtime failed while checking or importing.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Finds and imports images for the pods of a node.
pub struct ImageManager {
    runtime: Arc<dyn ContainerRuntime>,
    image_dir: Option<PathBuf>,
    // std Mutex: held only for map lookups, never across an await.
    archives: Mutex<HashMap<ImageName, PathBuf>>,
}

/// The image names an OCI layout tarball declares (index annotations).
pub fn archive_image_names(path: &Path) -> Vec<ImageName> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let Ok(entries) = archive.entries() else {
        return Vec::new();
    };
    for mut entry in entries.flatten() {
        let is_index = entry
            .path()
            .map(|p| p.to_string_lossy().trim_start_matches("./") == "index.json")
            .unwrap_or(false);
        if !is_index {
            continue;
        }
        let mut text = String::new();
        if entry.read_to_string(&mut text).is_err() {
            return Vec::new();
        }
        let Ok(index) = serde_json::from_str::<serde_json::Value>(&text) else {
            return Vec::new();
        };
        return index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                let a = &m["annotations"];
                a[skiff_images::layout::ANNOTATION_CONTAINERD_NAME]
                    .as_str()
                    .or_else(|| {
                        a[skiff_images::layout::ANNOTATION_REF_NAME]
                            .as_str()
                            .filter(|r| r.contains('/'))
                    })
                    .and_then(|n| ImageName::parse(n).ok())
            })
            .collect();
    }
    Vec::new()
}

impl ImageManager {
    /// Images come from `runtime` and, when missing, from `image_dir`.
    pub fn new(runtime: Arc<dyn ContainerRuntime>, image_dir: Option<PathBuf>) -> Self {
        Self {
            runtime,
            image_dir,
            archives: Mutex::new(HashMap::new()),
        }
    }

    /// The folder searched for archives.
    pub fn image_dir(&self) -> Option<&Path> {
        self.image_dir.as_deref()
    }

    async fn rescan(&self) {
        let Some(dir) = self.image_dir.clone() else {
            return;
        };
        let found = tokio::task::spawn_blocking(move || {
            let mut found = HashMap::new();
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "tar") {
                    for name in archive_image_names(&path) {
                        found.insert(name, path.clone());
                    }
                }
            }
            found
        })
        .await
        .unwrap_or_default();
        *self.archives.lock().unwrap_or_else(|p| p.into_inner()) = found;
    }

    async fn archive_for(&self, image: &ImageName) -> Option<PathBuf> {
        let cached = self
            .archives
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(image)
            .cloned();
        if let Some(path) = cached.filter(|p| p.is_file()) {
            return Some(path);
        }
        self.rescan().await;
        self.archives
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(image)
            .cloned()
    }

    async fn import(
        &self,
        image: &ImageName,
        archive: PathBuf,
    ) -> Result<Presence, ImageUnavailable> {
        let started = Instant::now();
        self.runtime.import_image(&archive).await?;
        if !self.runtime.image_present(image).await? {
            return Err(ImageUnavailable::NotFound {
                image: image.to_string(),
                searched: archive.display().to_string(),
            });
        }
        Ok(Presence::Imported {
            archive,
            took: started.elapsed(),
        })
    }

    fn not_found(&self, image: &ImageName) -> ImageUnavailable {
        ImageUnavailable::NotFound {
            image: image.to_string(),
            searched: self.image_dir.as_ref().map_or_else(
                || "(no --image-dir)".to_string(),
                |d| d.display().to_string(),
            ),
        }
    }

    /// Makes `image` present according to `policy`.
    pub async fn ensure(
        &self,
        image: &ImageName,
        policy: PullPolicy,
    ) -> Result<Presence, ImageUnavailable> {
        let present = self.runtime.image_present(image).await?;
        match policy {
            PullPolicy::Never if present => Ok(Presence::AlreadyPresent),
            PullPolicy::Never => Err(ImageUnavailable::NeverPull(image.to_string())),
            PullPolicy::IfNotPresent if present => Ok(Presence::AlreadyPresent),
            PullPolicy::IfNotPresent => match self.archive_for(image).await {
                Some(archive) => self.import(image, archive).await,
                None => Err(self.not_found(image)),
            },
            PullPolicy::Always => match self.archive_for(image).await {
                Some(archive) => self.import(image, archive).await,
                None if present => Ok(Presence::UsedOffline),
                None => Err(self.not_found(image)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::fake::FakeRuntime;

    #[tokio::test]
    async fn policies_decide_between_store_folder_and_error() {
        let fake = Arc::new(FakeRuntime::new());
        let busybox = ImageName::parse("busybox").expect("valid");
        let images = ImageManager::new(fake.clone(), None);
        assert!(matches!(
            images.ensure(&busybox, PullPolicy::Never).await,
            Err(ImageUnavailable::NeverPull(_))
        ));
        let err = images
            .ensure(&busybox, PullPolicy::IfNotPresent)
            .await
            .expect_err("missing");
        assert!(
            err.to_string()
                .contains("no archive for it in (no --image-dir)"),
            "{err}"
        );
        fake.add_image(busybox.clone());
        assert_eq!(
            images
                .ensure(&busybox, PullPolicy::IfNotPresent)
                .await
                .expect("present"),
            Presence::AlreadyPresent
        );
        assert_eq!(
            images
                .ensure(&busybox, PullPolicy::Always)
                .await
                .expect("offline"),
            Presence::UsedOffline
        );
    }
}
