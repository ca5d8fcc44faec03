//! Filesystem layers: a deterministic tar (mtime 0, root-owned) that is
//! gzipped, with both digests an image needs.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest as _, Sha256};

use crate::Result;
use crate::error::ImageError;

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A finished layer, ready to be stored as a blob.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The gzipped tar: the blob that goes into the image.
    pub blob: Vec<u8>,
    /// Digest of `blob` (what the manifest references).
    pub digest: String,
    /// Digest of the uncompressed tar (what the config's `rootfs.diff_ids` lists).
    pub diff_id: String,
}

/// Builds one layer entry by entry. Paths are relative to `/`.
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> Self {
        let mut tar = tar::Builder::new(Vec::new());
        tar.mode(tar::HeaderMode::Deterministic);
        Self { tar }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<&mut Self> {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.tar
            .append_data(
                &mut h,
                format!("{}/", path.trim_end_matches('/')),
                std::io::empty(),
            )
            .map_err(|e| ImageError::layer(path, e))?;
        Ok(self)
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, mode: u32, contents: &[u8]) -> Result<&mut Self> {
        let mut h = Self::header(tar::EntryType::Regular, mode, contents.len() as u64);
        self.tar
            .append_data(&mut h, path, contents)
            .map_err(|e| ImageError::layer(path, e))?;
        Ok(self)
    }

    /// Adds a symbolic link `path -> target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<&mut Self> {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.tar
            .append_link(&mut h, path, target)
            .map_err(|e| ImageError::layer(path, e))?;
        Ok(self)
    }

    /// Finishes the tar, gzips it and computes both digests.
    pub fn finish(self) -> Result<Layer> {
        let tar = self
            .tar
            .into_inner()
            .map_err(|e| ImageError::layer("<end of archive>", e))?;
        let diff_id = sha256_digest(&tar);
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&tar)
            .map_err(|e| ImageError::layer("<gzip>", e))?;
        let blob = gz.finish().map_err(|e| ImageError::layer("<gzip>", e))?;
        let digest = sha256_digest(&blob);
        Ok(Layer {
            blob,
            digest,
            diff_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn build() -> Layer {
        let mut b = LayerBuilder::new();
        b.dir("bin", 0o755).expect("dir");
        b.file("bin/tool", 0o755, b"#!x").expect("file");
        b.symlink("bin/alias", "/bin/tool").expect("link");
        b.finish().expect("finish")
    }

    #[test]
    fn layers_are_deterministic() {
        let (a, b) = (build(), build());
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.diff_id, b.diff_id);
        assert_ne!(a.digest, a.diff_id, "gzip blob and tar differ");
    }

    #[test]
    fn diff_id_is_the_digest_of_the_uncompressed_tar() {
        let layer = build();
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(layer.blob.as_slice())
            .read_to_end(&mut tar)
            .expect("gunzip");
        assert_eq!(sha256_digest(&tar), layer.diff_id);
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names, ["bin/", "bin/tool", "bin/alias"]);
    }
}
