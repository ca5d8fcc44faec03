//! `skiff up` and `skiff node ...`: a whole local cluster on one machine —
//! a private containerd, the control plane and N kubelets — and chaos
//! actions on its nodes. The running cluster is described in
//! `DIR/cluster.json`, which `skiff node` reads.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use skiff_images::Sources;
use skiff_kubelet::runtime::ContainerRuntime;
use skiff_kubelet::runtime::containerd::{ContainerdConfig, ContainerdRuntime, ManagedContainerd};

/// One node of the running cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Node name.
    pub name: String,
    /// Kubelet pid (0 when killed).
    pub pid: u32,
    /// Kubelet command line, to start it again.
    pub args: Vec<String>,
    /// containerd namespace of the node.
    pub namespace: String,
    /// `stopped` when frozen with `skiff node stop`.
    pub stopped: bool,
}

/// What `DIR/cluster.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// `skiff up`'s own pid.
    pub pid: u32,
    /// The control plane's pid.
    pub control_plane_pid: u32,
    /// Kubernetes API address.
    pub api: String,
    /// The containerd socket.
    pub containerd_socket: PathBuf,
    /// The nodes.
    pub nodes: Vec<NodeRecord>,
}

fn record_path(dir: &Path) -> PathBuf {
    dir.join("cluster.json")
}

fn load(dir: &Path) -> anyhow::Result<ClusterRecord> {
    let text = std::fs::read_to_string(record_path(dir)).with_context(|| {
        format!(
            "no running cluster in {} (start one with `skiff up --data-dir {}`)",
            dir.display(),
            dir.display()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

fn save(dir: &Path, record: &ClusterRecord) -> anyhow::Result<()> {
    let tmp = dir.join("cluster.json.partial");
    std::fs::write(&tmp, serde_json::to_vec_pretty(record)?)?;
    std::fs::rename(tmp, record_path(dir))?;
    Ok(())
}

fn sibling(binary: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .map(|d| d.join(binary))
        .context("no executable folder")?;
    if !path.is_file() {
        bail!(
            "{} not found next to skiff (cargo build --release --workspace --bins)",
            path.display()
        );
    }
    Ok(path)
}

fn signal(pid: u32, sig: i32) {
    if pid > 0 {
        // SAFETY: sending a signal to a process we started.
        unsafe {
            libc::kill(pid as i32, sig);
        }
    }
}

fn spawn(binary: &Path, args: &[String], log: &Path) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    Ok(Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()?)
}

fn http_ok(addr: &str, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    r.starts_with("HTTP/1.1 200")
}

fn ready_nodes(api: &str) -> usize {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(api) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    // HTTP/1.0: long lists are streamed, and to a 1.0 client they come
    // without chunked framing, readable to the end of the connection.
    if write!(
        s,
        "GET /api/v1/nodes HTTP/1.0\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return 0;
    }
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    let body = r.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return 0;
    };
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| {
            n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .count()
}

fn step(text: &str) {
    eprintln!("==> {text}");
}

/// `skiff up --nodes N --data-dir DIR`.
pub async fn up(nodes: usize, dir: PathBuf, api_port: u16) -> anyhow::Result<()> {
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    if let Ok(old) = load(&dir) {
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(old.pid as i32, 0) } == 0 {
            bail!(
                "a cluster is already running from {} (pid {})",
                dir.display(),
                old.pid
            );
        }
    }
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;

    step("building images");
    let images = dir.join("images");
    skiff_images::build_all(&Sources::default(), &images, |i| {
        eprintln!("    {}", i.name)
    })?;

    step("starting containerd");
    let containerd = ManagedContainerd::start(&dir.join("containerd")).await?;

    step("starting the control plane");
    let api = format!("127.0.0.1:{api_port}");
    let grpc = format!("127.0.0.1:{}", api_port + 1);
    let cp_args: Vec<String> = vec![
        "--data-dir".into(),
        dir.display().to_string(),
        "--listen".into(),
        api.clone(),
        "--grpc-listen".into(),
        grpc.clone(),
    ];
    let mut control_plane = spawn(
        &sibling("skiff-control-plane")?,
        &cp_args,
        &logs.join("control-plane.log"),
    )?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http_ok(&api, "/healthz") {
        if Instant::now() > deadline || control_plane.try_wait()?.is_some() {
            bail!(
                "the control plane did not start; see {}",
                logs.join("control-plane.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let kubelet = sibling("skiff-kubelet")?;
    let logger = sibling("skiff-cri-logger")?;
    let mut records = Vec::new();
    for i in 1..=nodes {
        let name = format!("node{i}");
        step(&format!("starting {name}"));
        let args: Vec<String> = [
            "--node-name",
            &name,
            "--containerd-socket",
            &containerd.socket().display().to_string(),
            "--containerd-namespace",
            &name,
            "--runc-root",
            &containerd.runc_root().display().to_string(),
            "--state-dir",
            &dir.join("nodes").join(&name).display().to_string(),
            "--image-dir",
            &images.display().to_string(),
            "--manifests-dir",
            &dir.join("nodes")
                .join(&name)
                .join("manifests")
                .display()
                .to_string(),
            "--grpc-listen",
            &format!("127.0.0.1:{}", 10250 + 2 * i),
            "--http-listen",
            &format!("127.0.0.1:{}", 10251 + 2 * i),
            "--node-ip",
            "127.0.0.1",
            "--control-plane",
            &grpc,
            "--cri-logger",
            &logger.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        std::fs::create_dir_all(dir.join("nodes").join(&name).join("manifests"))?;
        let child = spawn(&kubelet, &args, &logs.join(format!("{name}.log")))?;
        records.push(NodeRecord {
            name,
            pid: child.id(),
            args,
            namespace: format!("node{i}"),
            stopped: false,
        });
    }
    let record = ClusterRecord {
        pid: std::process::id(),
        control_plane_pid: control_plane.id(),
        api: api.clone(),
        containerd_socket: containerd.socket(),
        nodes: records,
    };
    save(&dir, &record)?;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = ready_nodes(&api);
        eprint!("\r    {ready}/{nodes} nodes Ready");
        if ready >= nodes {
            eprintln!();
            break;
        }
        if Instant::now() > deadline {
            eprintln!();
            bail!("nodes did not become Ready; see {}", logs.display());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("Skiff is up: {nodes} node(s) Ready.");
    println!("  export KUBECONFIG={}", dir.join("kubeconfig").display());
    println!("  kubectl get nodes");
    println!("Press Ctrl-C to stop and clean up.");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    step("stopping the cluster");
    let record = load(&dir).unwrap_or(record);
    for node in &record.nodes {
        signal(node.pid, libc::SIGCONT);
        signal(node.pid, libc::SIGKILL);
    }
    signal(control_plane.id(), libc::SIGTERM);
    let _ = control_plane.wait();
    for node in &record.nodes {
        let mut config = ContainerdConfig::new(
            containerd.socket(),
            &node.namespace,
            &logger,
            &dir.join("nodes").join(&node.name),
        );
        config.runc_root = Some(containerd.runc_root());
        if let Ok(runtime) = ContainerdRuntime::connect(config).await
            && let Ok(all) = runtime.list_containers(&Default::default()).await
        {
            for c in all {
                let _ = runtime.remove_container(&c.id).await;
            }
        }
        // Network namespaces the node's pods used.
        let prefix = format!("skiff-{}-", node.name);
        for entry in std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = entry.file_name().to_string_lossy().into_owned();
            if n.starts_with(&prefix) {
                let _ = Command::new("ip").args(["netns", "delete", &n]).status();
            }
        }
    }
    containerd.stop().await;
    let _ = std::fs::remove_file(record_path(&dir));
    eprintln!("    done");
    Ok(())
}

/// What `skiff node ACTION NAME` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NodeAction {
    /// Freeze the node's kubelet (SIGSTOP): it stops heartbeating.
    Stop,
    /// Undo `stop`, or start a killed kubelet again.
    Start,
    /// SIGKILL the node's kubelet (containers keep running).
    Kill,
}

/// `skiff node stop|start|kill NAME --data-dir DIR`.
pub fn node(action: NodeAction, name: &str, dir: &Path) -> anyhow::Result<()> {
    let mut record = load(dir)?;
    let node = record
        .nodes
        .iter_mut()
        .find(|n| n.name == name)
        .with_context(|| format!("no node named {name}"))?;
    match action {
        NodeAction::Stop => {
            signal(node.pid, libc::SIGSTOP);
            node.stopped = true;
            println!("node/{name} stopped");
        }
        NodeAction::Kill => {
            signal(node.pid, libc::SIGCONT);
            signal(node.pid, libc::SIGKILL);
            node.pid = 0;
            println!("node/{name} killed");
        }
        NodeAction::Start => {
            if node.pid == 0 {
                let child = spawn(
                    &sibling("skiff-kubelet")?,
                    &node.args,
                    &dir.join("logs").join(format!("{name}.log")),
                )?;
                node.pid = child.id();
            } else {
                signal(node.pid, libc::SIGCONT);
            }
            node.stopped = false;
            println!("node/{name} started");
        }
    }
    save(dir, &record)
}
