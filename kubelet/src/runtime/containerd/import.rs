//! Importing OCI image-layout tarballs through containerd's gRPC API.
//!
//! containerd 1.6 has no Transfer service, so this is the manual route the Go
//! client takes: blobs into the content store (with the GC labels `ctr
//! import` writes), an image record, then each layer applied onto a snapshot
//! named by its chain id. A lease protects everything until it is
//! referenced. Every step skips what already exists, so a second import of
//! the same archive is cheap and changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use chrono::Utc;
use containerd_client::services::v1::Info as ContentInfo;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, CreateNamespaceRequest, CreateRequest, DeleteRequest, Image,
    InfoRequest, Namespace, UpdateImageRequest, UpdateRequest, WriteAction, WriteContentRequest,
};
use containerd_client::types::Descriptor as CdDescriptor;
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use prost_types::FieldMask;
use skiff_images::ImageName;
use skiff_images::layout::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME};
use tokio_stream::StreamExt;

use super::client::Services;
use super::image::{chain_ids, host_arch, runs_here};
use crate::runtime::{Result, RuntimeError};

/// Largest chunk sent in one `Content.Write` message.
const WRITE_CHUNK: usize = 1024 * 1024;

/// Files of an image-layout tarball, by path.
struct Archive {
    files: HashMap<String, Vec<u8>>,
}

impl Archive {
    fn read(path: &Path) -> Result<Self> {
        let file =
            std::fs::File::open(path).map_err(|e| RuntimeError::io("cannot open", path, e))?;
        let mut tar = tar::Archive::new(std::io::BufReader::new(file));
        let mut files = HashMap::new();
        let bad = |e: std::io::Error| RuntimeError::InvalidArchive {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        for entry in tar.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry
                .path()
                .map_err(bad)?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            let mut data = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut data).map_err(bad)?;
            files.insert(name, data);
        }
        Ok(Self { files })
    }

    fn blob(&self, digest: &str) -> Option<&[u8]> {
        let (algorithm, hex) = digest.split_once(':')?;
        self.files
            .get(&format!("blobs/{algorithm}/{hex}"))
            .map(Vec::as_slice)
    }
}

fn to_cd(d: &Descriptor) -> CdDescriptor {
    CdDescriptor {
        media_type: d.media_type().to_string(),
        digest: d.digest().to_string(),
        size: d.size() as i64,
        annotations: HashMap::new(),
    }
}

/// The name an index entry gives its image, as `ctr images import` reads it.
fn image_name(d: &Descriptor) -> Option<ImageName> {
    let annotations = d.annotations().as_ref()?;
    if let Some(name) = annotations.get(ANNOTATION_CONTAINERD_NAME) {
        return ImageName::parse(name).ok();
    }
    // A bare tag cannot name an image; a full reference can.
    annotations
        .get(ANNOTATION_REF_NAME)
        .filter(|r| r.contains('/'))
        .and_then(|r| ImageName::parse(r).ok())
}

/// One import: the archive, its lease and where to unpack.
struct Import<'a> {
    svc: &'a Services,
    archive: &'a Archive,
    path: &'a Path,
    lease: String,
    snapshotter: &'a str,
}

/// Imports every named image of the archive at `path`.
pub(crate) async fn import_archive(
    svc: &Services,
    path: &Path,
    namespace: &str,
    snapshotter: &str,
) -> Result<Vec<ImageName>> {
    let owned = path.to_path_buf();
    let archive = tokio::task::spawn_blocking(move || Archive::read(&owned))
        .await
        .map_err(|e| RuntimeError::InvalidArchive {
            path: path.to_path_buf(),
            reason: format!("reader task failed: {e}"),
        })??;
    let invalid = |reason: String| RuntimeError::InvalidArchive {
        path: path.to_path_buf(),
        reason,
    };
    let index_bytes = archive
        .files
        .get("index.json")
        .ok_or_else(|| invalid("no index.json (not an OCI image layout)".into()))?;
    let index = ImageIndex::from_reader(index_bytes.as_slice())
        .map_err(|e| invalid(format!("bad index.json: {e}")))?;

    ensure_namespace(svc, namespace).await?;
    let lease = format!(
        "skiff-import-{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let expire = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    svc.leases
        .clone()
        .create(svc.req(CreateRequest {
            id: lease.clone(),
            labels: HashMap::from([("containerd.io/gc.expire".to_string(), expire)]),
        }))
        .await
        .map_err(|s| RuntimeError::rpc("Leases.Create", "", s))?;

    let import = Import {
        svc,
        archive: &archive,
        path,
        lease: lease.clone(),
        snapshotter,
    };
    let result = import.all(&index).await;
    // The image records and labels now hold everything; the lease may go.
    let _ = svc
        .leases
        .clone()
        .delete(svc.req(DeleteRequest {
            id: lease,
            sync: false,
        }))
        .await;
    let names = result?;
    if names.is_empty() {
        return Err(invalid(format!(
            "no manifest carries an {ANNOTATION_CONTAINERD_NAME} or full {ANNOTATION_REF_NAME} annotation"
        )));
    }
    Ok(names)
}

async fn ensure_namespace(svc: &Services, namespace: &str) -> Result<()> {
    // NB: the request must carry the namespace header too, or containerd 1.6
    // creates the namespace and then fails publishing the event.
    match svc
        .namespaces
        .clone()
        .create(svc.req(CreateNamespaceRequest {
            namespace: Some(Namespace {
                name: namespace.to_string(),
                labels: HashMap::new(),
            }),
        }))
        .await
    {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
        Err(s) => Err(RuntimeError::rpc("Namespaces.Create", "", s)),
    }
}

impl Import<'_> {
    fn invalid(&self, reason: String) -> RuntimeError {
        RuntimeError::InvalidArchive {
            path: self.path.to_path_buf(),
            reason,
        }
    }

    fn blob(&self, digest: &str) -> Result<&[u8]> {
        self.archive
            .blob(digest)
            .ok_or_else(|| self.invalid(format!("blob {digest} is missing")))
    }

    async fn all(&self, index: &ImageIndex) -> Result<Vec<ImageName>> {
        let mut names = Vec::new();
        for entry in index.manifests() {
            let Some(name) = image_name(entry) else {
                continue;
            };
            let manifest = self.platform_manifest(entry).await?;
            self.unpack(&manifest).await?;
            self.record_image(&name, entry).await?;
            names.push(name);
        }
        Ok(names)
    }

    /// Stores `entry` (manifest or index) with its children and returns the
    /// manifest for this machine's platform.
    async fn platform_manifest(&self, entry: &Descriptor) -> Result<ImageManifest> {
        let media_type = entry.media_type().to_string();
        if media_type == MediaType::ImageIndex.to_string() {
            let bytes = self.blob(entry.digest().as_ref())?;
            let index = ImageIndex::from_reader(bytes)
                .map_err(|e| self.invalid(format!("bad nested index: {e}")))?;
            let mut chosen = None;
            let mut labels = BTreeMap::new();
            for (i, m) in index.manifests().iter().enumerate() {
                if runs_here(m) && chosen.is_none() {
                    // Only this platform's blobs are in a single-platform archive.
                    let manifest = Box::pin(self.platform_manifest(m)).await?;
                    labels.insert(
                        format!("containerd.io/gc.ref.content.m.{i}"),
                        m.digest().to_string(),
                    );
                    chosen = Some(manifest);
                }
            }
            self.write_blob(entry.digest().as_ref(), bytes, labels)
                .await?;
            return chosen
                .ok_or_else(|| self.invalid(format!("no manifest for linux/{}", host_arch())));
        }
        let bytes = self.blob(entry.digest().as_ref())?;
        let manifest = ImageManifest::from_reader(bytes)
            .map_err(|e| self.invalid(format!("bad manifest: {e}")))?;
        let config_digest = manifest.config().digest().to_string();
        let config_bytes = self.blob(&config_digest)?;
        let config = ImageConfiguration::from_reader(config_bytes)
            .map_err(|e| self.invalid(format!("bad image config: {e}")))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(self.invalid(format!(
                "{} layers but {} diff ids",
                manifest.layers().len(),
                diff_ids.len()
            )));
        }
        let chain = chain_ids(diff_ids);

        // Children first, so every label points at something that exists.
        for (layer, diff_id) in manifest.layers().iter().zip(diff_ids) {
            let digest = layer.digest().to_string();
            let labels =
                BTreeMap::from([("containerd.io/uncompressed".to_string(), diff_id.clone())]);
            self.write_blob(&digest, self.blob(&digest)?, labels)
                .await?;
        }
        let mut config_labels = BTreeMap::new();
        if let Some(top) = chain.last() {
            config_labels.insert(
                format!("containerd.io/gc.ref.snapshot.{}", self.snapshotter),
                top.clone(),
            );
        }
        self.write_blob(&config_digest, config_bytes, config_labels)
            .await?;
        let mut manifest_labels = BTreeMap::from([(
            "containerd.io/gc.ref.content.config".to_string(),
            config_digest,
        )]);
        for (i, layer) in manifest.layers().iter().enumerate() {
            manifest_labels.insert(
                format!("containerd.io/gc.ref.content.l.{i}"),
                layer.digest().to_string(),
            );
        }
        self.write_blob(entry.digest().as_ref(), bytes, manifest_labels)
            .await?;
        Ok(manifest)
    }

    /// Puts one blob into the content store, or refreshes its labels if it is there.
    async fn write_blob(
        &self,
        digest: &str,
        data: &[u8],
        labels: BTreeMap<String, String>,
    ) -> Result<()> {
        let svc = self.svc;
        let exists = match svc
            .content
            .clone()
            .info(svc.req(InfoRequest {
                digest: digest.to_string(),
            }))
            .await
        {
            Ok(_) => true,
            Err(s) if s.code() == tonic::Code::NotFound => false,
            Err(s) => return Err(RuntimeError::rpc("Content.Info", "", s)),
        };
        if exists {
            if labels.is_empty() {
                return Ok(());
            }
            let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
            svc.content
                .clone()
                .update(svc.req(UpdateRequest {
                    info: Some(ContentInfo {
                        digest: digest.to_string(),
                        labels: labels.into_iter().collect(),
                        ..ContentInfo::default()
                    }),
                    update_mask: Some(FieldMask { paths }),
                }))
                .await
                .map_err(|s| RuntimeError::rpc("Content.Update", "", s))?;
            return Ok(());
        }

        let total = data.len() as i64;
        let reference = format!("{}-{digest}", self.lease);
        let mut messages: Vec<WriteContentRequest> = data
            .chunks(WRITE_CHUNK)
            .enumerate()
            .map(|(i, chunk)| WriteContentRequest {
                action: WriteAction::Write as i32,
                r#ref: reference.clone(),
                total,
                expected: digest.to_string(),
                offset: (i * WRITE_CHUNK) as i64,
                data: chunk.to_vec(),
                labels: HashMap::new(),
            })
            .collect();
        messages.push(WriteContentRequest {
            action: WriteAction::Commit as i32,
            r#ref: reference,
            total,
            expected: digest.to_string(),
            offset: total,
            data: Vec::new(),
            labels: labels.into_iter().collect(),
        });
        let stream = tokio_stream::iter(messages);
        let result = svc
            .content
            .clone()
            .write(svc.leased(stream, &self.lease))
            .await;
        let mut responses = match result {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == tonic::Code::AlreadyExists => return Ok(()),
            Err(s) => return Err(RuntimeError::rpc("Content.Write", "", s)),
        };
        let mut committed = None;
        while let Some(response) = responses.next().await {
            match response {
                Ok(r) if r.action == WriteAction::Commit as i32 => committed = Some(r.digest),
                Ok(_) => {}
                Err(s) if s.code() == tonic::Code::AlreadyExists => return Ok(()),
                Err(s) => return Err(RuntimeError::rpc("Content.Write", "", s)),
            }
        }
        match committed {
            Some(d) if d == digest => Ok(()),
            other => Err(self.invalid(format!("content store committed {other:?} for {digest}"))),
        }
    }

    /// Creates or repoints the image record.
    async fn record_image(&self, name: &ImageName, target: &Descriptor) -> Result<()> {
        let svc = self.svc;
        let image = Image {
            name: name.to_string(),
            labels: HashMap::new(),
            target: Some(to_cd(target)),
            created_at: None,
            updated_at: None,
        };
        match svc
            .images
            .clone()
            .create(svc.leased(
                CreateImageRequest {
                    image: Some(image.clone()),
                    source_date_epoch: None,
                },
                &self.lease,
            ))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::AlreadyExists => svc
                .images
                .clone()
                .update(svc.req(UpdateImageRequest {
                    image: Some(image),
                    update_mask: Some(FieldMask {
                        paths: vec!["target".into()],
                    }),
                    source_date_epoch: None,
                }))
                .await
                .map(|_| ())
                .map_err(|s| RuntimeError::rpc("Images.Update", "", s)),
            Err(s) => Err(RuntimeError::rpc("Images.Create", "", s)),
        }
    }

    /// Applies each layer onto a committed snapshot named by its chain id.
    async fn unpack(&self, manifest: &ImageManifest) -> Result<()> {
        let svc = self.svc;
        let config_bytes = self.blob(manifest.config().digest().as_ref())?;
        let config = ImageConfiguration::from_reader(config_bytes)
            .map_err(|e| self.invalid(format!("bad image config: {e}")))?;
        let diff_ids = config.rootfs().diff_ids();
        let chain = chain_ids(diff_ids);
        for (i, layer) in manifest.layers().iter().enumerate() {
            let exists = svc
                .snapshots
                .clone()
                .stat(svc.req(StatSnapshotRequest {
                    snapshotter: self.snapshotter.to_string(),
                    key: chain[i].clone(),
                }))
                .await;
            match exists {
                Ok(_) => continue,
                Err(s) if s.code() == tonic::Code::NotFound => {}
                Err(s) => return Err(RuntimeError::rpc("Snapshots.Stat", "", s)),
            }
            let key = format!("{}-extract-{}", self.lease, chain[i]);
            let parent = if i == 0 {
                String::new()
            } else {
                chain[i - 1].clone()
            };
            let mounts = svc
                .snapshots
                .clone()
                .prepare(svc.leased(
                    PrepareSnapshotRequest {
                        snapshotter: self.snapshotter.to_string(),
                        key: key.clone(),
                        parent,
                        labels: HashMap::new(),
                    },
                    &self.lease,
                ))
                .await
                .map_err(|s| RuntimeError::rpc("Snapshots.Prepare", "", s))?
                .into_inner()
                .mounts;
            let applied = self
                .apply_and_commit(layer, &diff_ids[i], &chain[i], &key, mounts)
                .await;
            if applied.is_err() {
                let _ = svc
                    .snapshots
                    .clone()
                    .remove(svc.req(RemoveSnapshotRequest {
                        snapshotter: self.snapshotter.to_string(),
                        key,
                    }))
                    .await;
            }
            applied?;
        }
        Ok(())
    }

    async fn apply_and_commit(
        &self,
        layer: &Descriptor,
        diff_id: &str,
        chain_id: &str,
        key: &str,
        mounts: Vec<containerd_client::types::Mount>,
    ) -> Result<()> {
        let svc = self.svc;
        let applied = svc
            .diff
            .clone()
            .apply(svc.leased(
                ApplyRequest {
                    diff: Some(to_cd(layer)),
                    mounts,
                    payloads: HashMap::new(),
                    sync_fs: false,
                },
                &self.lease,
            ))
            .await
            .map_err(|s| RuntimeError::rpc("Diff.Apply", "", s))?
            .into_inner()
            .applied
            .map(|d| d.digest)
            .unwrap_or_default();
        if applied != diff_id {
            return Err(self.invalid(format!(
                "layer {} unpacked to {applied}, expected {diff_id}",
                layer.digest()
            )));
        }
        match svc
            .snapshots
            .clone()
            .commit(svc.leased(
                CommitSnapshotRequest {
                    snapshotter: self.snapshotter.to_string(),
                    name: chain_id.to_string(),
                    key: key.to_string(),
                    labels: HashMap::new(),
                },
                &self.lease,
            ))
            .await
        {
            Ok(_) => Ok(()),
            // Another importer committed the same layer first.
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                let _ = svc
                    .snapshots
                    .clone()
                    .remove(svc.req(RemoveSnapshotRequest {
                        snapshotter: self.snapshotter.to_string(),
                        key: key.to_string(),
                    }))
                    .await;
                Ok(())
            }
            Err(s) => Err(RuntimeError::rpc("Snapshots.Commit", "", s)),
        }
    }
}
