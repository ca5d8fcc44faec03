//! `skiff demo`: the runtime end to end, on a private containerd.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use skiff_images::{ImageName, Sources};
use skiff_kubelet::logs::cri;
use skiff_kubelet::runtime::containerd::{
    ContainerdConfig, ContainerdRuntime, ManagedContainerd, logger_next_to_current_exe,
};
use skiff_kubelet::runtime::{ContainerConfig, ContainerRuntime, NetworkMode};

/// containerd namespace the demo uses.
const NAMESPACE: &str = "skiff-demo";

fn step(text: &str) {
    eprintln!("==> {text}");
}

pub async fn run(data_dir: Option<PathBuf>, port: u16) -> anyhow::Result<()> {
    let keep = data_dir.is_some();
    let dir = match data_dir {
        Some(dir) => dir,
        None => tempfile_dir()?,
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let logger = logger_next_to_current_exe().context(
        "skiff-cri-logger must be installed next to skiff (cargo build --release --bins)",
    )?;

    step("building images (no registry needed)");
    let image_dir = dir.join("images");
    let built = skiff_images::build_all(&Sources::default(), &image_dir, |image| {
        eprintln!("    built {} ({} KiB)", image.name, image.size / 1024);
    })?;

    step("starting a private containerd");
    let daemon = ManagedContainerd::start(&dir.join("containerd")).await?;
    eprintln!("    listening on {}", daemon.socket().display());
    let mut config =
        ContainerdConfig::new(daemon.socket(), NAMESPACE, logger, &dir.join("kubelet"));
    config.runc_root = Some(daemon.runc_root());
    let runtime = ContainerdRuntime::connect(config).await?;

    let result = async {
        step("importing images into containerd");
        for image in &built {
            runtime.import_image(&image.path).await?;
            eprintln!("    imported {}", image.name);
        }
        busybox(&runtime, &dir).await?;
        webapp(&runtime, &dir, port).await
    }
    .await;

    step("cleaning up");
    for id in ["demo-busybox", "demo-webapp"] {
        runtime.remove_container(id).await?;
    }
    daemon.stop().await;
    if keep {
        eprintln!(
            "    done; images, state and logs are under {}",
            dir.display()
        );
    } else {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        eprintln!("    done");
    }
    result
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("skiff-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn print_log(path: &Path) -> anyhow::Result<()> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = cri::plain_text(&raw);
    for line in String::from_utf8_lossy(&text).lines() {
        println!("    | {line}");
    }
    Ok(())
}

async fn busybox(runtime: &ContainerdRuntime, dir: &Path) -> anyhow::Result<()> {
    step("running busybox: sh -c 'echo hello from busybox; ...; exit 3'");
    let image = ImageName::parse("busybox")?;
    let mut c = ContainerConfig::new("demo-busybox", image, dir.join("logs/demo-busybox.log"));
    c.name = "busybox".into();
    c.hostname = Some("demo-busybox".into());
    c.command = vec![
        "sh".into(),
        "-c".into(),
        "echo hello from busybox on $(hostname); echo this line goes to stderr >&2; exit 3".into(),
    ];
    runtime.create_container(&c).await?;
    let pid = runtime.start_container(&c.id).await?;
    eprintln!("    started (pid {pid})");
    let status = runtime.wait_container(&c.id).await?;
    runtime.remove_container(&c.id).await?;
    println!("busybox exited with code {}; its log:", status.code);
    print_log(&c.log_path)
}

fn get(port: u16, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim_end().to_string())
        .unwrap_or_default();
    Ok((status, body))
}

async fn webapp(runtime: &ContainerdRuntime, dir: &Path, port: u16) -> anyhow::Result<()> {
    step(&format!(
        "running skiff.dev/webapp:v1 on the host network, port {port}"
    ));
    let image = ImageName::parse("skiff.dev/webapp:v1")?;
    let mut c = ContainerConfig::new("demo-webapp", image, dir.join("logs/demo-webapp.log"));
    c.name = "webapp".into();
    c.hostname = Some("demo-webapp".into());
    c.network = NetworkMode::Host;
    c.env = vec![("PORT".into(), port.to_string())];
    runtime.create_container(&c).await?;
    runtime.start_container(&c.id).await?;

    let mut answer = None;
    for _ in 0..100 {
        if let Ok(r) = get(port, "GET", "/") {
            answer = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some((status, body)) = answer else {
        bail!("the webapp did not answer on port {port}");
    };
    println!("GET /        -> {status} {body}");
    let (status, body) = get(port, "GET", "/health")?;
    println!("GET /health  -> {status} {body}");
    let (status, body) = get(port, "POST", "/fail")?;
    println!("POST /fail   -> {status} {body}");
    let (status, body) = get(port, "GET", "/health")?;
    println!("GET /health  -> {status} {body}");
    let exec = runtime
        .exec(&c.id, &["hostname".into()], Duration::from_secs(10))
        .await?;
    println!(
        "exec hostname -> exit {} {}",
        exec.exit_code,
        String::from_utf8_lossy(&exec.stdout).trim()
    );
    let status = runtime
        .stop_container(&c.id, Duration::from_secs(10))
        .await?;
    println!(
        "webapp stopped with SIGTERM, exit code {}; its log:",
        status.code
    );
    runtime.remove_container(&c.id).await?;
    print_log(&c.log_path)
}
