//! The images Skiff ships: what each contains and how it is built.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;
use crate::error::ImageError;
use crate::layer::{Layer, LayerBuilder};
use crate::layout::{BuiltImage, RunConfig, write_image_layout};
use crate::name::ImageName;

/// The `skiff-webapp` binary, statically linked (built by `build.rs`).
const WEBAPP_BINARY: &[u8] = include_bytes!(env!("SKIFF_WEBAPP_BIN"));

/// Where the webapp lives inside its images.
pub const WEBAPP_PATH: &str = "/usr/local/bin/webapp";

/// Port the webapp listens on unless `PORT` says otherwise.
pub const WEBAPP_PORT: u16 = 8080;

/// Applets the seed manifests and probes rely on; the build fails if the
/// busybox binary lacks any of them.
pub const REQUIRED_APPLETS: &[&str] = &[
    "sh", "sleep", "echo", "cat", "ls", "date", "wget", "nc", "httpd", "true", "false", "env",
    "hostname", "id", "pwd",
];

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One image of the catalog.
#[derive(Debug, Clone, Copy)]
pub struct CatalogEntry {
    /// Full image name.
    pub name: &'static str,
    /// One line for `skiff-images list`.
    pub description: &'static str,
}

/// Every image `skiff-images build` produces.
pub const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        name: "docker.io/library/busybox:latest",
        description: "busybox-static with its applets (sh, sleep, wget, nc, httpd, ...)",
    },
    CatalogEntry {
        name: "skiff.dev/webapp:v1",
        description: "HTTP server on $PORT (8080): / answers version and hostname, /health, /ready",
    },
    CatalogEntry {
        name: "skiff.dev/webapp:v2",
        description: "the same server reporting version v2, for rolling updates",
    },
];

/// Host files the images are made from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// A statically linked busybox (Debian's `busybox-static` installs `/bin/busybox`).
    pub busybox: PathBuf,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            busybox: PathBuf::from("/bin/busybox"),
        }
    }
}

/// File name of an image's tarball inside the output directory,
/// e.g. `busybox-latest.tar`, `webapp-v1.tar`.
pub fn tarball_file_name(name: &ImageName) -> String {
    let base = name.path().rsplit('/').next().unwrap_or("image");
    format!("{base}-{}.tar", name.tag().unwrap_or("latest"))
}

/// Looks an image up in the catalog by any name that normalises to it
/// (`busybox`, `skiff.dev/webapp:v1`).
pub fn find(name: &str) -> Result<CatalogEntry> {
    let wanted = ImageName::parse(name)?;
    CATALOG
        .iter()
        .copied()
        .find(|e| ImageName::parse(e.name).is_ok_and(|n| n == wanted))
        .ok_or_else(|| ImageError::UnknownImage(wanted.to_string()))
}

/// Builds one catalog image into `out_dir`.
pub fn build(entry: CatalogEntry, sources: &Sources, out_dir: &Path) -> Result<BuiltImage> {
    let name = ImageName::parse(entry.name)?;
    let base = busybox_layer(&sources.busybox)?;
    let (run, layers) = if name.path() == "library/busybox" {
        let run = RunConfig {
            cmd: vec!["sh".into()],
            env: vec![PATH_ENV.into()],
            ..RunConfig::default()
        };
        (run, vec![base])
    } else {
        let version = name.tag().unwrap_or("latest");
        let run = RunConfig {
            entrypoint: vec![WEBAPP_PATH.into()],
            env: vec![PATH_ENV.into(), format!("WEBAPP_VERSION={version}")],
            exposed_ports: vec![format!("{WEBAPP_PORT}/tcp")],
            ..RunConfig::default()
        };
        (run, vec![base, webapp_layer()?])
    };
    std::fs::create_dir_all(out_dir)
        .map_err(|e| ImageError::io("cannot create directory", out_dir, e))?;
    write_image_layout(
        &name,
        &run,
        &layers,
        &out_dir.join(tarball_file_name(&name)),
    )
}

/// Builds the whole catalog into `out_dir`, calling `progress` after each image.
pub fn build_all(
    sources: &Sources,
    out_dir: &Path,
    mut progress: impl FnMut(&BuiltImage),
) -> Result<Vec<BuiltImage>> {
    let mut built = Vec::with_capacity(CATALOG.len());
    for entry in CATALOG {
        let image = build(*entry, sources, out_dir)?;
        progress(&image);
        built.push(image);
    }
    Ok(built)
}

/// The base layer of every Skiff image: a minimal root filesystem around
/// busybox (also handy for tests that build images of their own).
pub fn busybox_layer(busybox: &Path) -> Result<Layer> {
    let binary = std::fs::read(busybox).map_err(|e| ImageError::io("cannot read", busybox, e))?;
    if let Some(reason) = not_static_reason(&binary) {
        return Err(ImageError::UnusableBinary {
            path: busybox.to_path_buf(),
            reason: format!("{reason} (install Debian's busybox-static)"),
        });
    }
    let applets = list_applets(busybox)?;
    for required in REQUIRED_APPLETS {
        if !applets
            .iter()
            .any(|a| a.rsplit('/').next() == Some(required))
        {
            return Err(ImageError::UnusableBinary {
                path: busybox.to_path_buf(),
                reason: format!("it has no `{required}` applet"),
            });
        }
    }

    let mut layer = LayerBuilder::new();
    for dir in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "usr/local",
        "usr/local/bin",
        "etc",
        "proc",
        "sys",
        "dev",
        "root",
        "home",
        "var",
        "var/www",
        "run",
    ] {
        layer.dir(dir, 0o755)?;
    }
    layer.dir("tmp", 0o1777)?;
    layer.dir("var/tmp", 0o1777)?;
    layer.file("bin/busybox", 0o755, &binary)?;
    layer.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    )?;
    layer.file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")?;
    for applet in &applets {
        let path = applet.trim_start_matches('/');
        if path == "bin/busybox" || path.is_empty() {
            continue;
        }
        layer.symlink(path, "/bin/busybox")?;
    }
    layer.finish()
}

/// The webapp layer, stacked on the busybox base so `kubectl exec` has a shell.
fn webapp_layer() -> Result<Layer> {
    if let Some(reason) = not_static_reason(WEBAPP_BINARY) {
        return Err(ImageError::UnusableBinary {
            path: PathBuf::from(env!("SKIFF_WEBAPP_BIN")),
            reason,
        });
    }
    let mut layer = LayerBuilder::new();
    layer.dir("usr/local/bin", 0o755)?;
    layer.file(WEBAPP_PATH.trim_start_matches('/'), 0o755, WEBAPP_BINARY)?;
    layer.finish()
}

/// `busybox --list-full` (e.g. `bin/sh`, `usr/bin/wget`), sorted and deduplicated.
fn list_applets(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| ImageError::io("cannot run", busybox, e))?;
    if !out.status.success() {
        return Err(ImageError::UnusableBinary {
            path: busybox.to_path_buf(),
            reason: format!("`--list-full` failed with {}", out.status),
        });
    }
    let mut applets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    applets.sort();
    applets.dedup();
    Ok(applets)
}

/// Why an ELF binary cannot run in an image without a C library, if it cannot:
/// it must be a 64-bit ELF without a `PT_INTERP` (dynamic loader) header.
pub fn not_static_reason(binary: &[u8]) -> Option<String> {
    const PT_INTERP: u32 = 3;
    if binary.len() < 64 || &binary[..4] != b"\x7fELF" || binary[4] != 2 {
        return Some("not a 64-bit ELF executable".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([binary[o], binary[o + 1]]) as usize;
    let mut ph_offset = [0u8; 8];
    ph_offset.copy_from_slice(&binary[0x20..0x28]);
    let ph_offset = u64::from_le_bytes(ph_offset) as usize;
    let (ph_size, ph_count) = (u16_at(0x36), u16_at(0x38));
    for i in 0..ph_count {
        let start = ph_offset + i * ph_size;
        let Some(header) = binary.get(start..start + 4) else {
            return Some("truncated program headers".into());
        };
        if u32::from_le_bytes([header[0], header[1], header[2], header[3]]) == PT_INTERP {
            return Some("dynamically linked (it needs a loader the image does not have)".into());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_webapp_is_statically_linked() {
        assert_eq!(not_static_reason(WEBAPP_BINARY), None);
    }

    #[test]
    fn dynamically_linked_binaries_are_refused() {
        let me = std::fs::read(std::env::current_exe().expect("exe")).expect("read");
        let reason = not_static_reason(&me).expect("test binaries are dynamic");
        assert!(reason.contains("dynamically linked"), "{reason}");
        assert!(not_static_reason(b"#!/bin/sh\n").is_some());
    }

    #[test]
    fn catalog_lookup_accepts_short_names() {
        assert_eq!(
            find("busybox").expect("found").name,
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            find("skiff.dev/webapp:v2").expect("found").name,
            "skiff.dev/webapp:v2"
        );
        assert!(matches!(find("nginx"), Err(ImageError::UnknownImage(_))));
    }

    #[test]
    fn tarball_names_are_short_and_distinct() {
        let names: Vec<String> = CATALOG
            .iter()
            .map(|e| tarball_file_name(&ImageName::parse(e.name).expect("valid")))
            .collect();
        assert_eq!(
            names,
            ["busybox-latest.tar", "webapp-v1.tar", "webapp-v2.tar"]
        );
    }
}
