//! OCI image-layout tarballs (`oci-layout`, `index.json`, `blobs/sha256/…`),
//! the format `ctr images import` and Skiff's runtime import.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
};

use crate::Result;
use crate::error::ImageError;
use crate::layer::{Layer, sha256_digest};
use crate::name::ImageName;

/// Annotation containerd reads to name an imported image.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI annotation for the reference (tag) of a manifest in an index.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What runs when a container of the image starts, before Kubernetes'
/// `command`/`args` override it.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// `ENTRYPOINT`.
    pub entrypoint: Vec<String>,
    /// `CMD`.
    pub cmd: Vec<String>,
    /// `ENV`, as `KEY=value`.
    pub env: Vec<String>,
    /// `WORKDIR` (empty for `/`).
    pub working_dir: String,
    /// `EXPOSE`, e.g. `8080/tcp`.
    pub exposed_ports: Vec<String>,
}

/// An image written to disk.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// Full name (what containerd will call it).
    pub name: ImageName,
    /// The tarball.
    pub path: PathBuf,
    /// Digest of the image manifest.
    pub manifest_digest: String,
    /// Size of the tarball in bytes.
    pub size: u64,
}

/// The OCI architecture name of the machine Skiff runs on.
fn host_arch() -> Arch {
    match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "aarch64" => Arch::ARM64,
        other => Arch::from(other),
    }
}

fn digest(s: &str) -> Result<Digest> {
    Ok(s.parse::<Digest>()?)
}

fn descriptor(media_type: MediaType, bytes_digest: &str, size: usize) -> Result<Descriptor> {
    Ok(DescriptorBuilder::default()
        .media_type(media_type)
        .digest(digest(bytes_digest)?)
        .size(size as u64)
        .build()?)
}

/// Writes `name` (with `run` and `layers`) as an OCI image-layout tarball at
/// `path`. The file appears atomically (written to a temporary name first).
pub fn write_image_layout(
    name: &ImageName,
    run: &RunConfig,
    layers: &[Layer],
    path: &Path,
) -> Result<BuiltImage> {
    let mut config = ConfigBuilder::default()
        .env(run.env.clone())
        .exposed_ports(run.exposed_ports.clone());
    if !run.entrypoint.is_empty() {
        config = config.entrypoint(run.entrypoint.clone());
    }
    if !run.cmd.is_empty() {
        config = config.cmd(run.cmd.clone());
    }
    if !run.working_dir.is_empty() {
        config = config.working_dir(run.working_dir.clone());
    }
    let image_config = ImageConfigurationBuilder::default()
        // A fixed date keeps builds reproducible.
        .created("1970-01-01T00:00:00Z".to_string())
        .architecture(host_arch())
        .os(Os::Linux)
        .config(config.build()?)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers".to_string())
                .diff_ids(layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>())
                .build()?,
        )
        .build()?;
    let config_json = serde_json::to_vec(&image_config)?;
    let config_digest = sha256_digest(&config_json);

    let layer_descriptors = layers
        .iter()
        .map(|l| descriptor(MediaType::ImageLayerGzip, &l.digest, l.blob.len()))
        .collect::<Result<Vec<_>>>()?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig,
            &config_digest,
            config_json.len(),
        )?)
        .layers(layer_descriptors)
        .build()?;
    let manifest_json = serde_json::to_vec(&manifest)?;
    let manifest_digest = sha256_digest(&manifest_json);

    let annotations = HashMap::from([
        (ANNOTATION_CONTAINERD_NAME.to_string(), name.to_string()),
        (
            ANNOTATION_REF_NAME.to_string(),
            name.tag().unwrap_or(crate::name::DEFAULT_TAG).to_string(),
        ),
    ]);
    let manifest_descriptor = DescriptorBuilder::default()
        .media_type(MediaType::ImageManifest)
        .digest(digest(&manifest_digest)?)
        .size(manifest_json.len() as u64)
        .annotations(annotations)
        .platform(
            PlatformBuilder::default()
                .architecture(host_arch())
                .os(Os::Linux)
                .build()?,
        )
        .build()?;
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![manifest_descriptor])
        .build()?;
    let index_json = serde_json::to_vec(&index)?;

    let mut blobs: Vec<(&str, &[u8])> = layers
        .iter()
        .map(|l| (l.digest.as_str(), l.blob.as_slice()))
        .collect();
    blobs.push((&config_digest, &config_json));
    blobs.push((&manifest_digest, &manifest_json));

    let tmp = path.with_extension("tar.partial");
    let write = || -> std::io::Result<u64> {
        let file = std::fs::File::create(&tmp)?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
        let mut add = |entry: &str, bytes: &[u8]| -> std::io::Result<()> {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(bytes.len() as u64);
            h.set_mtime(0);
            tar.append_data(&mut h, entry, bytes)
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        add("index.json", &index_json)?;
        for (blob_digest, bytes) in &blobs {
            let hex = blob_digest.trim_start_matches("sha256:");
            add(&format!("blobs/sha256/{hex}"), bytes)?;
        }
        let mut writer = tar.into_inner()?;
        writer.flush()?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(file.metadata()?.len())
    };
    let size = write().map_err(|e| ImageError::io("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ImageError::io("cannot rename into", path, e))?;
    Ok(BuiltImage {
        name: name.clone(),
        path: path.to_path_buf(),
        manifest_digest,
        size,
    })
}
