//! Builds the `skiff-webapp` binary that goes into the `skiff.dev/webapp`
//! images, statically linked, and hands its path to the crate
//! (`SKIFF_WEBAPP_BIN`), so `skiff-images` is self-contained.
//!
//! Why a nested cargo: `-C target-feature=+crt-static` must apply to the
//! webapp alone. Set workspace-wide it would break proc-macro crates, and
//! cargo has no stable per-package rustflags. The webapp depends only on rustls,
//! so this nested build is short (the first one compiles rustls and ring).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    let webapp_dir = manifest_dir.join("webapp");
    println!(
        "cargo:rerun-if-changed={}",
        webapp_dir.join("src").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        webapp_dir.join("Cargo.toml").display()
    );

    let target_dir = out_dir.join("webapp-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--offline",
            "--quiet",
            "--manifest-path",
        ])
        .arg(webapp_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // The outer build's flags and wrappers (clippy, coverage) are not meant for
        // the image binary.
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Ctarget-feature=+crt-static\x1f-Cstrip=symbols",
        )
        .status()
        .expect("failed to run cargo for skiff-webapp");
    assert!(status.success(), "building skiff-webapp failed: {status}");
    let bin = target_dir.join("release").join("skiff-webapp");
    println!("cargo:rustc-env=SKIFF_WEBAPP_BIN={}", bin.display());
}
