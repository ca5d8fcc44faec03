//! The kubelet command line `skiff up` and `skiff agent` start: one node
//! of a managed containerd, joining the control plane's node port with a
//! bootstrap token and the CA pinned by hash (or a CA file), keeping its
//! state and certificates in `<state>` and static pods in
//! `<state>/manifests`. Its HTTP port is 5 above its gRPC port (10250 and
//! 10255 by default), as upstream's kubelet ports sit side by side.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use skiff_kubelet::runtime::containerd::ManagedContainerd;

use crate::process::sibling;

/// How the kubelet trusts and joins the control plane.
#[derive(Debug, Clone, Default)]
pub(crate) struct JoinWith {
    pub token: Option<String>,
    pub ca_cert_hash: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// One node's kubelet.
pub(crate) struct KubeletFlags<'a> {
    pub name: &'a str,
    pub containerd: &'a ManagedContainerd,
    /// Its containerd namespace (also its cgroup parent).
    pub namespace: &'a str,
    pub state: &'a Path,
    pub images: &'a Path,
    pub node_ip: IpAddr,
    pub grpc_port: u16,
    /// The control plane's node port, `HOST:PORT`.
    pub control_plane: &'a str,
    pub join: &'a JoinWith,
    /// Passed on as they are, last.
    pub extra: &'a [String],
}

impl KubeletFlags<'_> {
    /// The state dir's static pod folder.
    pub fn manifests(&self) -> PathBuf {
        self.state.join("manifests")
    }

    /// The command line.
    pub fn args(&self) -> anyhow::Result<Vec<String>> {
        let path = |p: &Path| p.display().to_string();
        let mut args: Vec<String> = vec![
            "--node-name".into(),
            self.name.into(),
            "--containerd-socket".into(),
            path(&self.containerd.socket()),
            "--containerd-namespace".into(),
            self.namespace.into(),
            "--runc-root".into(),
            path(&self.containerd.runc_root()),
            "--state-dir".into(),
            path(self.state),
            "--image-dir".into(),
            path(self.images),
            "--manifests-dir".into(),
            path(&self.manifests()),
            "--grpc-listen".into(),
            SocketAddr::new(self.node_ip, self.grpc_port).to_string(),
            "--http-listen".into(),
            SocketAddr::new(self.node_ip, self.grpc_port.saturating_add(5)).to_string(),
            "--node-ip".into(),
            self.node_ip.to_string(),
            "--control-plane".into(),
            self.control_plane.into(),
            "--cri-logger".into(),
            path(&sibling("skiff-cri-logger")?),
        ];
        let join = self.join;
        if let Some(token) = &join.token {
            args.extend(["--token".into(), token.clone()]);
        }
        if let Some(hash) = &join.ca_cert_hash {
            args.extend(["--ca-cert-hash".into(), hash.clone()]);
        }
        if let Some(file) = &join.ca_file {
            args.extend(["--ca-file".into(), path(file)]);
        }
        args.extend_from_slice(self.extra);
        Ok(args)
    }
}
