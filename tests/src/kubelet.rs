//! A real `skiff-kubelet` process for end-to-end tests, on a [`TestEnv`]'s
//! containerd.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use skiff_proto::node::v1::PodAssignment;
use skiff_proto::node::v1::node_agent_client::NodeAgentClient;
use tonic::transport::Channel;

use crate::control_plane::{TestControlPlane, join_info};
use crate::{TestEnv, eventually, free_port, http, image_dir, workspace_binary};

/// A running `skiff-kubelet`.
pub struct TestKubelet {
    pki: PathBuf,
    /// Node name.
    pub name: String,
    /// State folder.
    pub state_dir: PathBuf,
    /// Static manifests folder.
    pub manifests_dir: PathBuf,
    /// HTTP address (`127.0.0.1:port`).
    pub http: String,
    /// gRPC address (`127.0.0.1:port`).
    pub grpc: String,
    args: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
}

impl TestKubelet {
    /// Plays registration and the scheduler for a pod stored through the
    /// API: writes Node `node` (this kubelet's address and gRPC port, so the
    /// API proxies logs, exec and port-forward to it), applies `pod_yaml`
    /// with kubectl and hands the stored pod named `pod` to this kubelet.
    /// Returns the pod's uid.
    pub async fn run_stored_pod(
        &self,
        cp: &TestControlPlane,
        node: &str,
        pod: &str,
        pod_yaml: &str,
    ) -> String {
        let port = self.grpc.rsplit(':').next().expect("port");
        let node_yaml = format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: {node}}}\nstatus:\n  addresses: [{{type: InternalIP, address: 127.0.0.1}}]\n  daemonEndpoints: {{kubeletEndpoint: {{Port: {port}}}}}\n"
        );
        cp.kubectl_ok(&["apply", "-f", &cp.manifest("node.yaml", &node_yaml)]);
        cp.kubectl_ok(&[
            "apply",
            "-f",
            &cp.manifest(&format!("{pod}.yaml"), pod_yaml),
        ]);
        let stored = cp.kubectl_ok(&["get", "pod", pod, "-o", "json"]);
        let uid =
            serde_json::from_str::<serde_json::Value>(&stored).expect("json")["metadata"]["uid"]
                .as_str()
                .expect("uid")
                .to_string();
        self.client()
            .await
            .assign_pod(PodAssignment {
                pod_uid: uid.clone(),
                resource_version: "1".into(),
                pod_json: stored.into_bytes(),
            })
            .await
            .expect("assign");
        uid
    }

    /// Starts a kubelet named `name` with lab back-off (1 s doubling to 4 s)
    /// and waits until it answers `/healthz`.
    pub async fn start(env: &TestEnv, name: &str) -> Self {
        Self::start_with(env, name, &[]).await
    }

    /// Like [`TestKubelet::start`], with extra flags (`--control-plane`, ...).
    pub async fn start_with(env: &TestEnv, name: &str, extra: &[&str]) -> Self {
        Self::start_inner(env, name, extra, None).await
    }

    /// A standalone kubelet (no `--control-plane`) serving a certificate
    /// from `cp`'s CA and answering `cp`'s kubelet-client certificate, so
    /// `cp` reaches it (logs, exec, port-forward) once a Node names it.
    pub async fn start_for(env: &TestEnv, name: &str, cp: &TestControlPlane) -> Self {
        Self::start_inner(env, name, &[], Some(cp.data_dir().join("pki"))).await
    }

    async fn start_inner(
        env: &TestEnv,
        name: &str,
        extra: &[&str],
        ca_dir: Option<PathBuf>,
    ) -> Self {
        let state_dir = env.dir().join(format!("kubelet-{name}"));
        let manifests_dir = env.dir().join(format!("manifests-{name}"));
        std::fs::create_dir_all(&manifests_dir).expect("manifests dir");
        let http = format!("127.0.0.1:{}", free_port());
        let grpc = format!("127.0.0.1:{}", free_port());
        let args = vec![
            "--node-name".to_string(),
            name.to_string(),
            "--containerd-socket".into(),
            env.socket().display().to_string(),
            "--containerd-namespace".into(),
            env.namespace.clone(),
            "--runc-root".into(),
            env.runc_root().display().to_string(),
            "--state-dir".into(),
            state_dir.display().to_string(),
            "--manifests-dir".into(),
            manifests_dir.display().to_string(),
            "--image-dir".into(),
            image_dir().display().to_string(),
            "--http-listen".into(),
            http.clone(),
            "--grpc-listen".into(),
            grpc.clone(),
            "--node-ip".into(),
            "127.0.0.1".into(),
            // These kubelets share the machine's own namespace: a bridge,
            // routes and masquerade rules there would touch the host. The
            // pod network is tested on `skiff up`, one namespace per node.
            "--pod-network".into(),
            "none".into(),
            "--backoff-base".into(),
            "1s".into(),
            "--backoff-max".into(),
            "4s".into(),
        ];
        let mut args = args;
        args.extend(extra.iter().map(|s| s.to_string()));
        let control_plane = extra
            .windows(2)
            .find(|w| w[0] == "--control-plane")
            .map(|w| w[1].to_string());
        let pki = match control_plane.as_deref().and_then(join_info) {
            // Joins with the control plane's token, trusting its CA file;
            // calls it as the control plane does, with its certificate.
            Some((token, pki)) => {
                if !extra.contains(&"--token") {
                    args.extend([
                        "--token".into(),
                        token,
                        "--ca-file".into(),
                        pki.join("ca.crt").display().to_string(),
                    ]);
                }
                pki
            }
            // Standalone: upstream's serving and client-CA flags, from a
            // test CA.
            None => {
                let pki = test_pki_in(&ca_dir.unwrap_or_else(|| env.dir().join("test-pki")), name);
                args.extend([
                    "--tls-cert-file".into(),
                    pki.join(format!("kubelet-{name}.crt"))
                        .display()
                        .to_string(),
                    "--tls-private-key-file".into(),
                    pki.join(format!("kubelet-{name}.key"))
                        .display()
                        .to_string(),
                    "--client-ca-file".into(),
                    pki.join("ca.crt").display().to_string(),
                ]);
                pki
            }
        };
        crate::api_tls::trust_with(&http, control_plane_client(&pki, b"http/1.1"));
        let mut kubelet = Self {
            pki,
            name: name.to_string(),
            log: env.dir().join(format!("kubelet-{name}.log")),
            state_dir,
            manifests_dir,
            http,
            grpc,
            args,
            child: None,
        };
        kubelet.spawn().await;
        kubelet
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("kubelet log");
        let child = Command::new(workspace_binary("skiff-kubelet"))
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start skiff-kubelet");
        self.child = Some(child);
        let addr = self.http.clone();
        let log = self.log.clone();
        let mut tries = 0;
        eventually("kubelet /healthz", Duration::from_secs(30), || {
            tries += 1;
            let addr = addr.clone();
            let log = log.clone();
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            async move {
                if let Some(status) = exited {
                    panic!(
                        "skiff-kubelet exited with {status}: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                http("GET", &addr, "/healthz")
                    .ok()
                    .filter(|(s, _)| *s == 200)
                    .map(|_| ())
            }
        })
        .await;
        let _ = tries;
    }

    /// Host pid of the kubelet process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `SIGKILL`s the kubelet (containers keep running).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the kubelet again with the same flags.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// `GET /pods`.
    pub fn pods(&self) -> Vec<Pod> {
        let (status, body) = http("GET", &self.http, "/pods").expect("GET /pods");
        assert_eq!(status, 200, "{body}");
        let list: serde_json::Value = serde_json::from_str(&body).expect("PodList JSON");
        serde_json::from_value(list["items"].clone()).expect("pods")
    }

    /// The pod named `name` from `/pods`.
    pub fn pod(&self, name: &str) -> Option<Pod> {
        self.pods()
            .into_iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
    }

    /// A gRPC client of the node, calling as the control plane does.
    pub async fn client(&self) -> NodeAgentClient<Channel> {
        let config = control_plane_client(&self.pki, b"h2");
        skiff_proto::link::connect_tls(&self.grpc, config, None)
            .await
            .map(NodeAgentClient::new)
            .expect("connect to kubelet gRPC")
    }

    /// The folder with the CAs this kubelet's certificates chain to
    /// (`ca.crt` its client certificate, `kubelet-serving-ca.crt` its
    /// serving one) and the control plane's kubelet-client certificate.
    pub fn pki(&self) -> &Path {
        &self.pki
    }

    /// Runs `command` in `container` of pod `uid` through the kubelet's
    /// Exec call; its exit code (-1 if none came) and its output, stdout
    /// and stderr together.
    pub async fn exec(&self, uid: &str, container: &str, command: &[&str]) -> (i32, String) {
        use skiff_proto::node::v1 as pb;
        use tokio_stream::StreamExt;
        let mut client = self.client().await;
        let start = pb::ExecInput {
            input: Some(pb::exec_input::Input::Start(pb::ExecStart {
                pod_uid: uid.into(),
                container: container.into(),
                command: command.iter().map(|s| s.to_string()).collect(),
                stdin: false,
                tty: false,
            })),
        };
        let mut stream = client
            .exec(tokio_stream::iter(vec![start]))
            .await
            .expect("exec")
            .into_inner();
        let (mut code, mut out) = (-1, Vec::new());
        while let Some(msg) = stream.next().await {
            match msg.expect("exec output").output {
                Some(pb::exec_output::Output::Stdout(b))
                | Some(pb::exec_output::Output::Stderr(b)) => out.extend(b),
                Some(pb::exec_output::Output::ExitCode(c)) => code = c,
                _ => {}
            }
        }
        (code, String::from_utf8_lossy(&out).into_owned())
    }

    /// The kubelet's own log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Path of a static manifest file.
    pub fn manifest(&self, file: &str) -> PathBuf {
        self.manifests_dir.join(file)
    }

    /// The state folder.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
}

impl Drop for TestKubelet {
    fn drop(&mut self) {
        self.kill();
        // Network namespaces this node made (`skiff-<node>-<uid>`).
        let prefix = format!("skiff-{}-", self.name);
        for entry in std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) {
                let _ = Command::new("ip").args(["netns", "delete", &name]).status();
            }
        }
    }
}

/// Parses a pod manifest and gives it a fresh UID.
pub fn pod_yaml(yaml: &str) -> Pod {
    let mut pod: Pod = serde_yaml::from_str(yaml).expect("pod yaml");
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    pod.metadata.uid = Some(format!(
        "{:08x}-{:04x}-4000-8000-000000000000",
        std::process::id(),
        n
    ));
    pod.metadata
        .namespace
        .get_or_insert_with(|| "default".into());
    pod
}

/// A container's status from a pod.
pub fn container_status(
    pod: &Pod,
    name: &str,
) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
        .cloned()
}

/// The pod's phase.
pub fn phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

/// Status of condition `kind` (`True`/`False`), if present.
pub fn condition(pod: &Pod, kind: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

/// Polls `/pods` until the pod named `name` satisfies `check`; returns it.
pub async fn wait_pod(
    kubelet: &TestKubelet,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Pod) -> bool,
) -> Pod {
    let mut last = None;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(pod) = kubelet.pod(name) {
            if check(&pod) {
                return pod;
            }
            last = Some(pod);
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for pod {name} to be {what}; last seen: {}\nkubelet log:\n{}",
                last.map(|p| serde_json::to_string_pretty(&p.status).unwrap_or_default())
                    .unwrap_or_else(|| "absent".into()),
                kubelet.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The control plane's client TLS toward kubelets, from a PKI folder with
/// `kubelet-serving-ca.crt` (the only CA it trusts for kubelets) and
/// `apiserver-kubelet-client.{crt,key}`.
pub fn control_plane_client(pki: &Path, alpn: &[u8]) -> std::sync::Arc<rustls::ClientConfig> {
    let read = |f: &str| std::fs::read_to_string(pki.join(f)).expect(f);
    skiff_pki::tls::client(
        &read(skiff_pki::ca::KUBELET_SERVING_CA_CERT),
        Some((
            &read("apiserver-kubelet-client.crt"),
            &read("apiserver-kubelet-client.key"),
        )),
        &[alpn],
    )
    .expect("client TLS")
}

/// A test CA for standalone kubelets under the environment's folder, with
/// the control plane's kubelet-client certificate and a serving
/// certificate for kubelet `name` at 127.0.0.1, signed as a control
/// plane's are: the client certificate by the CA, the serving one by a
/// kubelet-serving CA beside it.
pub fn test_pki(env: &TestEnv, name: &str) -> PathBuf {
    test_pki_in(&env.dir().join("test-pki"), name)
}

/// [`test_pki`] with the CAs of `dir` (made there if it has none, e.g. a
/// control plane's PKI folder).
pub fn test_pki_in(dir: &Path, name: &str) -> PathBuf {
    use skiff_pki::ca::{Ca, Request, Usage};
    let dir = dir.to_path_buf();
    let ca = Ca::load_or_create(&dir).expect("test CA");
    let serving_ca = Ca::load_or_create_as(&dir, skiff_pki::ca::KUBELET_SERVING)
        .expect("test kubelet-serving CA");
    let year = Duration::from_secs(365 * 24 * 3600);
    let write = |stem: &str, issued: skiff_pki::ca::Issued| {
        skiff_pki::ca::write_atomic(&dir.join(format!("{stem}.crt")), &issued.cert_pem, 0o644)
            .expect("cert");
        skiff_pki::ca::write_atomic(&dir.join(format!("{stem}.key")), &issued.key_pem, 0o600)
            .expect("key");
    };
    if !dir.join("apiserver-kubelet-client.crt").exists() {
        let client = ca
            .issue(&Request {
                common_name: "kube-apiserver-kubelet-client".into(),
                organization: Some("system:masters".into()),
                usage: Usage::Client,
                valid_for: year,
            })
            .expect("client cert");
        write("apiserver-kubelet-client", client);
    }
    let serving = serving_ca
        .issue(&Request {
            common_name: format!("system:node:{name}"),
            organization: Some("system:nodes".into()),
            usage: Usage::Server {
                names: vec!["127.0.0.1".into(), "localhost".into(), name.into()],
            },
            valid_for: year,
        })
        .expect("serving cert");
    write(&format!("kubelet-{name}"), serving);
    dir
}

/// Makes the node state in `state` (a kubelet's `--state-dir`) what a
/// control plane from before the kubelet-serving CA left: a serving
/// certificate for the kept key signed by the cluster CA of `pki`, and no
/// kept kubelet-serving CA.
pub fn make_serving_certificate_from_cluster_ca(pki: &Path, state: &Path, node: &str) {
    use skiff_pki::ca::{Ca, Request, Usage};
    let key = std::fs::read_to_string(state.join("pki/kubelet.key")).expect("kept key");
    let public = skiff_pki::ca::public_key_pem(&key).expect("public key");
    let cert = Ca::load(pki)
        .expect("cluster CA")
        .sign_public_key_pem(
            &Request {
                common_name: format!("system:node:{node}"),
                organization: Some("system:nodes".into()),
                usage: Usage::Server {
                    names: vec!["127.0.0.1".into(), node.into()],
                },
                valid_for: Duration::from_secs(30 * 24 * 3600),
            },
            &public,
        )
        .expect("signed");
    skiff_pki::ca::write_atomic(&state.join("pki/kubelet.crt"), &cert, 0o600).expect("written");
    std::fs::remove_file(
        state
            .join("pki")
            .join(skiff_pki::ca::KUBELET_SERVING_CA_CERT),
    )
    .expect("removed");
}
