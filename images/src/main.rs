//! `skiff-images`: builds Skiff's OCI image tarballs without a registry.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use skiff_images::{CATALOG, Sources};

#[derive(Parser)]
#[command(
    name = "skiff-images",
    version,
    about = "Build Skiff's OCI images without a registry"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write one OCI image-layout tarball per image into DIR.
    Build {
        /// Output directory (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Statically linked busybox to build the base layer from.
        #[arg(long, default_value = "/bin/busybox")]
        busybox: PathBuf,
        /// Build only these images (any name that normalises to a catalog entry).
        #[arg(value_name = "IMAGE")]
        only: Vec<String>,
    },
    /// Name the images this tool builds.
    List,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::List => {
            println!("{:<36} DESCRIPTION", "IMAGE");
            for entry in CATALOG {
                println!("{:<36} {}", entry.name, entry.description);
            }
        }
        Cmd::Build { out, busybox, only } => {
            let sources = Sources { busybox };
            let entries = if only.is_empty() {
                CATALOG.to_vec()
            } else {
                only.iter()
                    .map(|n| skiff_images::catalog::find(n))
                    .collect::<Result<Vec<_>, _>>()?
            };
            let total = entries.len();
            for (i, entry) in entries.into_iter().enumerate() {
                eprintln!("[{}/{total}] building {}", i + 1, entry.name);
                let image = skiff_images::build(entry, &sources, &out)
                    .with_context(|| format!("building {}", entry.name))?;
                println!(
                    "{}\t{}\t{} bytes\t{}",
                    image.name,
                    image.path.display(),
                    image.size,
                    image.manifest_digest
                );
            }
        }
    }
    Ok(())
}
