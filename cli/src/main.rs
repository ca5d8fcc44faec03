//! `skiff`: runs Skiff on this machine.
//!
//! Today it has one job, `skiff demo`: build the images, start a private
//! containerd, and run a busybox and a webapp container through Skiff's
//! runtime, printing what they do. (`skiff up` — a whole cluster — comes
//! with the control plane.)

mod demo;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "skiff",
    version,
    about = "A Kubernetes-style node runtime for labs and tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the images, then run a busybox and a webapp container through
    /// Skiff's containerd runtime and show their output.
    Demo {
        /// Keep containerd's state, images and logs here (default: a
        /// temporary directory removed afterwards).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Port the webapp listens on (host network).
        #[arg(long, default_value_t = 18080)]
        port: u16,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Cmd::Demo { data_dir, port } => demo::run(data_dir, port).await,
    }
}
