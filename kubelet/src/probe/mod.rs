//! Container probes (liveness, readiness, startup) with upstream semantics:
//! httpGet (200–399), tcpSocket and exec handlers; `initialDelaySeconds`,
//! `periodSeconds` (10), `timeoutSeconds` (1), `successThreshold` (1) and
//! `failureThreshold` (3).
//!
//! A probe runs as a worker task per container instance and kind. It reports
//! every failed attempt (for `Unhealthy` events) and each change of verdict
//! once a threshold is crossed; the pod actor decides what follows.

pub mod net;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::task::JoinHandle;

use crate::runtime::ContainerRuntime;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Restarts the container when it fails.
    Liveness,
    /// Drives the Ready condition.
    Readiness,
    /// Gates the other two until it succeeds once.
    Startup,
}

impl ProbeKind {
    /// `Liveness`, `Readiness`, `Startup` (as in event messages).
    pub fn label(self) -> &'static str {
        match self {
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
            Self::Startup => "Startup",
        }
    }
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    /// GET a URL.
    Http {
        /// Target address.
        addr: SocketAddr,
        /// Host header.
        host_header: String,
        /// Path.
        path: String,
        /// `httpHeaders`.
        headers: Vec<(String, String)>,
    },
    /// Open a TCP connection.
    Tcp {
        /// Target address.
        addr: SocketAddr,
    },
    /// Run a command in the container.
    Exec {
        /// argv.
        command: Vec<String>,
    },
}

/// A probe with its timing, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// What it does.
    pub handler: Handler,
    /// Before the first attempt.
    pub initial_delay: Duration,
    /// Between attempts.
    pub period: Duration,
    /// Per attempt.
    pub timeout: Duration,
    /// Consecutive successes for a success verdict.
    pub success_threshold: u32,
    /// Consecutive failures for a failure verdict.
    pub failure_threshold: u32,
}

fn seconds(v: Option<i32>, default: i32, min: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(min) as u64)
}

fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| {
                    format!(
                        "port {name:?} is not a named port of container {:?}",
                        container.name
                    )
                })
        }
    }
}

fn resolve_host(host: Option<&String>) -> Result<IpAddr, String> {
    match host.map(String::as_str) {
        // Inside the pod's namespace the pod answers on its loopback.
        None | Some("") => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        // Only literal addresses: the kubelet never looks names up.
        Some(h) => h
            .parse()
            .map_err(|_| format!("probe host {h:?} is not an IP address")),
    }
}

impl ProbeSpec {
    /// Reads a Kubernetes probe of `container`, applying upstream defaults.
    pub fn from_k8s(probe: &Probe, container: &Container) -> Result<Self, String> {
        let handler = if let Some(http) = &probe.http_get {
            if http
                .scheme
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("https"))
            {
                return Err("httpGet with scheme HTTPS is not supported yet".into());
            }
            let ip = resolve_host(http.host.as_ref())?;
            let port = resolve_port(&http.port, container)?;
            let addr = SocketAddr::new(ip, port);
            let path = match http.path.as_deref() {
                None | Some("") => "/".to_string(),
                Some(p) if p.starts_with('/') => p.to_string(),
                Some(p) => format!("/{p}"),
            };
            Handler::Http {
                addr,
                host_header: addr.to_string(),
                path,
                headers: http
                    .http_headers
                    .iter()
                    .flatten()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
            }
        } else if let Some(tcp) = &probe.tcp_socket {
            let ip = resolve_host(tcp.host.as_ref())?;
            Handler::Tcp {
                addr: SocketAddr::new(ip, resolve_port(&tcp.port, container)?),
            }
        } else if let Some(exec) = &probe.exec {
            Handler::Exec {
                command: exec.command.clone().unwrap_or_default(),
            }
        } else if probe.grpc.is_some() {
            return Err("grpc probes are not supported yet".into());
        } else {
            return Err("probe has no handler".into());
        };
        Ok(Self {
            handler,
            initial_delay: seconds(probe.initial_delay_seconds, 0, 0),
            period: seconds(probe.period_seconds, 10, 1),
            timeout: seconds(probe.timeout_seconds, 1, 1),
            success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        })
    }
}

/// Where a probe runs.
#[derive(Clone)]
pub struct ProbeTarget {
    /// The pod's network namespace (`None`: host network).
    pub netns: Option<PathBuf>,
    /// For exec probes.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// The container instance.
    pub container_id: String,
}

/// Runs one attempt. `Err` carries upstream's failure message.
pub async fn run_once(spec: &ProbeSpec, target: &ProbeTarget) -> Result<(), String> {
    let attempt = async {
        match &spec.handler {
            Handler::Http {
                addr,
                host_header,
                path,
                headers,
            } => {
                let check = net::HttpCheck {
                    addr: *addr,
                    host_header: host_header.clone(),
                    path: path.clone(),
                    headers: headers.clone(),
                };
                net::http_check(target.netns.as_deref(), check, spec.timeout).await
            }
            Handler::Tcp { addr } => {
                net::tcp_check(target.netns.as_deref(), *addr, spec.timeout).await
            }
            Handler::Exec { command } => {
                match target
                    .runtime
                    .exec(&target.container_id, command, spec.timeout)
                    .await
                {
                    Ok(out) if out.exit_code == 0 => Ok(()),
                    Ok(out) => {
                        let text = [out.stdout, out.stderr].concat();
                        let text = String::from_utf8_lossy(&text).trim().to_string();
                        Err(if text.is_empty() {
                            format!(
                                "command {:?} exited with {}",
                                command.join(" "),
                                out.exit_code
                            )
                        } else {
                            text
                        })
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    };
    // Exec and connection attempts carry their own timeout; this bounds the rest.
    match tokio::time::timeout(spec.timeout + Duration::from_secs(1), attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("probe timed out after {}s", spec.timeout.as_secs())),
    }
}

/// What a probe worker tells its pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeReport {
    /// One attempt failed (becomes an `Unhealthy` event).
    AttemptFailed(String),
    /// The verdict changed: `true` healthy/ready/started, `false` not.
    Verdict(bool),
}

/// Starts the worker for one probe of one container instance. `report`
/// is called from the worker task; the worker stops after a failure verdict
/// of a liveness or startup probe (the container is about to be killed).
pub fn spawn_worker(
    kind: ProbeKind,
    spec: ProbeSpec,
    target: ProbeTarget,
    report: impl Fn(ProbeReport) + Send + Sync + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(spec.initial_delay).await;
        let (mut successes, mut failures) = (0u32, 0u32);
        let mut verdict: Option<bool> = None;
        loop {
            match run_once(&spec, &target).await {
                Ok(()) => {
                    successes += 1;
                    failures = 0;
                    if successes >= spec.success_threshold && verdict != Some(true) {
                        verdict = Some(true);
                        report(ProbeReport::Verdict(true));
                        if kind == ProbeKind::Startup {
                            return;
                        }
                    }
                }
                Err(message) => {
                    failures += 1;
                    successes = 0;
                    report(ProbeReport::AttemptFailed(message));
                    if failures >= spec.failure_threshold && verdict != Some(false) {
                        verdict = Some(false);
                        report(ProbeReport::Verdict(false));
                        if kind != ProbeKind::Readiness {
                            return;
                        }
                    }
                }
            }
            tokio::time::sleep(spec.period).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ExecOutput;
    use crate::runtime::fake::FakeRuntime;

    fn container() -> Container {
        serde_yaml::from_str(
            "name: web\nimage: skiff.dev/webapp:v1\nports: [{name: http, containerPort: 8080}]",
        )
        .expect("yaml")
    }

    fn probe(yaml: &str) -> Probe {
        serde_yaml::from_str(yaml).expect("yaml")
    }

    #[test]
    fn defaults_and_named_ports_follow_upstream() {
        let spec = ProbeSpec::from_k8s(&probe("httpGet: {path: health, port: http}"), &container())
            .expect("valid");
        assert_eq!(spec.period, Duration::from_secs(10));
        assert_eq!(spec.timeout, Duration::from_secs(1));
        assert_eq!((spec.success_threshold, spec.failure_threshold), (1, 3));
        assert_eq!(spec.initial_delay, Duration::ZERO);
        match spec.handler {
            Handler::Http { addr, path, .. } => {
                assert_eq!(addr, "127.0.0.1:8080".parse().expect("addr"));
                assert_eq!(path, "/health");
            }
            other => panic!("{other:?}"),
        }
        assert!(ProbeSpec::from_k8s(&probe("tcpSocket: {port: nope}"), &container()).is_err());
        assert!(
            ProbeSpec::from_k8s(
                &probe("tcpSocket: {port: 80, host: example.com}"),
                &container()
            )
            .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failure_threshold_turns_attempts_into_a_verdict() {
        let fake = Arc::new(FakeRuntime::new());
        let image = skiff_images::ImageName::parse("busybox").expect("valid");
        fake.add_image(image.clone());
        let config = crate::runtime::ContainerConfig::new("c1", image, "/tmp/x.log");
        fake.create_container(&config).await.expect("create");
        fake.start_container("c1").await.expect("start");
        fake.script_exec(
            "cat",
            ExecOutput {
                exit_code: 1,
                stdout: Vec::new(),
                stderr: b"cat: can't open '/tmp/healthy': No such file or directory".to_vec(),
            },
        );
        let spec = ProbeSpec::from_k8s(
            &probe("exec: {command: [cat, /tmp/healthy]}\nperiodSeconds: 5\nfailureThreshold: 2"),
            &container(),
        )
        .expect("valid");
        let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = reports.clone();
        let target = ProbeTarget {
            netns: None,
            runtime: fake,
            container_id: "c1".into(),
        };
        let worker = spawn_worker(ProbeKind::Liveness, spec, target, move |r| {
            sink.lock().expect("lock").push(r)
        });
        tokio::time::timeout(Duration::from_secs(60), worker)
            .await
            .expect("worker ends")
            .expect("join");
        let reports = reports.lock().expect("lock").clone();
        assert_eq!(reports.len(), 3, "{reports:?}");
        assert_eq!(
            reports[0],
            ProbeReport::AttemptFailed(
                "cat: can't open '/tmp/healthy': No such file or directory".into()
            )
        );
        assert_eq!(reports[2], ProbeReport::Verdict(false));
    }
}
