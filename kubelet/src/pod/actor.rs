//! The pod actor: one per pod UID. It owns the pod's sandbox, containers and
//! probe workers, and reconciles them toward the pod spec whenever something
//! changes (level-triggered: every handler ends in the same `reconcile`).
//! What the pod as a whole does next (prepare, run, terminate, finish) is
//! decided by its pure [`Lifecycle`], what each container does by its
//! [`Slot`]; the actor feeds them what happened and performs what they say,
//! and tells its owner through a [`PodReporter`].
//!
//! Handlers stay short. Image imports, container creation, waiting for exits
//! and grace periods run in spawned tasks that message the actor back
//! (`StartFinished`, `ContainerExited`, `TerminationFinished`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, info_span, warn};

use super::container::{Slot, StartFailure, Step, Termination};
use super::dns::{self, MAX_RESOLV_CONF_BYTES, NodeDns, Resolver};
use super::lifecycle::{Effect, Lifecycle, PodEvent};
use super::reporter::PodReporter;
use super::restart_policy::RestartPolicy;
use super::sandbox::NetworkAttachment;
use super::spec::{self, PodKey, host_network};
use super::start::StartTask;
use super::status::{PodFacts, pod_status};
use crate::context::NodeContext;
use crate::events::{Event, EventObject};
use crate::probe::{self, ProbeKind, ProbeReport, ProbeSpec, ProbeTarget};
use crate::runtime::{
    ContainerInfo, ContainerState, ExitStatus, LabelFilter, RuntimeError, labels,
};

/// The pod's resolv.conf in its folder, next to `etc-hosts`.
const RESOLV_CONF: &str = "etc-resolv.conf";

/// Messages of a pod actor, named for what happened or is asked.
#[derive(Debug)]
pub enum PodMsg {
    /// Look at desired and observed state and act (also the back-off timer).
    Reconcile,
    /// The pod object changed (labels, images).
    UpdateSpec(Box<Pod>),
    /// The sandbox is ready (or failed), with containers found from an earlier life.
    Prepared {
        /// The network, or why it failed.
        network: Result<NetworkAttachment, String>,
        /// Skiff containers of this pod already in the runtime.
        existing: Vec<ContainerInfo>,
    },
    /// A start task ended.
    StartFinished {
        /// Which container.
        slot: usize,
        /// The instance id and when it started, or why it failed.
        result: Result<(String, chrono::DateTime<Utc>), StartFailure>,
    },
    /// A container instance exited.
    ContainerExited {
        /// Which container.
        slot: usize,
        /// Which instance.
        container_id: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// A probe worker reported.
    ProbeReported {
        /// Which container.
        slot: usize,
        /// Which instance was probed.
        container_id: String,
        /// Which probe.
        kind: ProbeKind,
        /// What it found.
        report: ProbeReport,
    },
    /// Stop everything and remove the pod (`None`: the pod's own grace period).
    Terminate {
        /// Grace period override.
        grace: Option<Duration>,
    },
    /// Containers, sandbox and files are gone.
    TerminationFinished,
}

/// Spawn arguments.
pub struct PodArgs {
    /// The pod.
    pub pod: Pod,
    /// Node-wide context.
    pub ctx: Arc<NodeContext>,
    /// Told about status, events and the end.
    pub reporter: Arc<dyn PodReporter>,
}

/// Per-container probe settings, read once from the spec.
#[derive(Default, Clone)]
struct Probes {
    liveness: Option<ProbeSpec>,
    readiness: Option<ProbeSpec>,
    startup: Option<ProbeSpec>,
}

/// The actor's state.
pub struct PodState {
    pod: Pod,
    key: PodKey,
    ctx: Arc<NodeContext>,
    reporter: Arc<dyn PodReporter>,
    policy: RestartPolicy,
    slots: Vec<Slot>,
    probes: Vec<Probes>,
    workers: Vec<Vec<JoinHandle<()>>>,
    network: Option<NetworkAttachment>,
    lifecycle: Lifecycle,
    /// Containers of this pod found while preparing, until adopted.
    left_behind: Vec<ContainerInfo>,
    start_time: chrono::DateTime<Utc>,
    last_status: Option<PodStatus>,
    wake_at: Option<Instant>,
}

/// The pod actor (stateless; see [`PodState`]).
pub struct PodActor;

fn probes_of(c: &Container, key: &PodKey, reporter: &dyn PodReporter) -> Probes {
    let read = |p: &Option<k8s_openapi::api::core::v1::Probe>, kind: ProbeKind| {
        p.as_ref().and_then(|p| match ProbeSpec::from_k8s(p, c) {
            Ok(spec) => Some(spec),
            Err(e) => {
                reporter.event(Event::warning(
                    key,
                    Some(&c.name),
                    "Unhealthy",
                    format!("{} probe errored: {e}", kind.label()),
                ));
                None
            }
        })
    };
    Probes {
        liveness: read(&c.liveness_probe, ProbeKind::Liveness),
        readiness: read(&c.readiness_probe, ProbeKind::Readiness),
        startup: read(&c.startup_probe, ProbeKind::Startup),
    }
}

impl PodState {
    fn event(&self, event: Event) {
        self.reporter.event(event);
    }

    fn hosts_path(&self) -> PathBuf {
        self.key.dir(&self.ctx.state_dir).join("etc-hosts")
    }

    fn resolv_path(&self) -> PathBuf {
        self.key.dir(&self.ctx.state_dir).join(RESOLV_CONF)
    }

    fn stop_workers(&mut self, slot: usize) {
        for w in self.workers[slot].drain(..) {
            w.abort();
        }
    }

    fn publish_status(&mut self) {
        let statuses = self.slots.iter().map(|s| s.status("")).collect();
        let facts = PodFacts {
            policy: self.policy,
            start_time: self.start_time,
            sandbox_ready: self.network.is_some() || host_network(&self.pod),
            pod_ip: self.network.as_ref().and_then(|n| n.pod_ip.clone()),
            host_ip: self.ctx.host_ip.clone(),
            previous: self.last_status.clone(),
        };
        let status = pod_status(statuses, &facts);
        if self.last_status.as_ref() != Some(&status) {
            self.last_status = Some(status.clone());
            self.reporter.status_changed(&self.key.uid, status);
        }
    }

    fn schedule_wake(&mut self, myself: &ActorRef<PodMsg>, at: Instant) {
        let now = Instant::now();
        if self.wake_at.is_some_and(|w| w <= at && w > now) {
            return;
        }
        self.wake_at = Some(at);
        myself.send_after(at.saturating_duration_since(now), || PodMsg::Reconcile);
    }

    /// The level-triggered heart of the actor.
    fn reconcile(&mut self, myself: &ActorRef<PodMsg>) {
        if self.lifecycle == Lifecycle::Terminated {
            return;
        }
        let started = std::time::Instant::now();
        if self.wake_at.is_some_and(|w| w <= Instant::now()) {
            self.wake_at = None;
        }
        let starts_in_flight = self.slots.iter().any(Slot::is_starting);
        self.apply(myself, PodEvent::Reconcile { starts_in_flight });
        self.publish_status();
        self.ctx.metrics.sync(started.elapsed());
    }

    /// Moves the pod's lifecycle on and does what it says.
    fn apply(&mut self, myself: &ActorRef<PodMsg>, event: PodEvent) {
        for effect in self.lifecycle.on(event) {
            match effect {
                Effect::AdoptExisting => {
                    let existing = std::mem::take(&mut self.left_behind);
                    self.adopt(myself, existing);
                }
                Effect::ReportSandboxFailure(e) => {
                    self.event(Event::warning(
                        &self.key,
                        None,
                        "FailedCreatePodSandBox",
                        format!("Failed to create pod sandbox: {e}"),
                    ));
                    myself.send_after(Duration::from_secs(5), || PodMsg::Reconcile);
                }
                Effect::PrepareSandbox => {
                    spawn_prepare(myself, &self.ctx, &self.reporter, &self.pod, &self.key)
                }
                Effect::SyncContainers => self.sync_containers(myself),
                Effect::BeginTermination { grace } => self.begin_termination(myself, grace),
                Effect::Finish => {
                    self.reporter.gone(&self.key.uid);
                    myself.stop(None);
                }
            }
        }
    }

    fn sync_containers(&mut self, myself: &ActorRef<PodMsg>) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            match self.slots[i].next_step(false, now) {
                Step::Start => self.start_slot(myself, i),
                Step::WaitUntil(at) => self.schedule_wake(myself, at),
                Step::Idle => {}
            }
        }
    }

    fn on_prepared(
        &mut self,
        myself: &ActorRef<PodMsg>,
        network: Result<NetworkAttachment, String>,
        existing: Vec<ContainerInfo>,
    ) {
        // Kept for a hostNetwork pod too: its (empty) namespace is never
        // joined, but its address, the node's, is the pod's IP.
        let sandbox = network.map(|n| self.network = Some(n));
        self.left_behind = existing;
        self.apply(myself, PodEvent::Prepared { sandbox });
    }

    /// A container whose image changed is stopped, and restarted with the new one.
    fn update_spec(&mut self, pod: Pod) {
        let containers = pod
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        for i in 0..self.slots.len() {
            let Some(new) = containers.iter().find(|c| c.name == self.slots[i].name()) else {
                continue;
            };
            if !self.slots[i].update_spec(new.clone()) {
                continue;
            }
            let Some(id) = self.slots[i].running_id().map(String::from) else {
                continue;
            };
            let name = new.name.clone();
            self.event(Event::normal(
                &self.key,
                Some(&name),
                "Killing",
                format!("Container {name} definition changed, will be restarted"),
            ));
            self.slots[i].on_stop_requested();
            self.stop_workers(i);
            let runtime = self.ctx.runtime.clone();
            let grace = spec::grace_period(&pod);
            tokio::spawn(async move {
                let _ = runtime.stop_container(&id, grace).await;
            });
        }
        self.pod = pod;
    }

    fn on_start_finished(
        &mut self,
        myself: &ActorRef<PodMsg>,
        slot: usize,
        result: Result<(String, chrono::DateTime<Utc>), StartFailure>,
    ) {
        let (id, started_at) = match result {
            Ok(started) => started,
            Err(failure) => {
                let pod = self.key.display();
                self.slots[slot].on_start_failed(
                    failure,
                    self.policy,
                    &self.ctx.backoff,
                    Instant::now(),
                    &pod,
                );
                return;
            }
        };
        if self.lifecycle.deleting() {
            // Too late: the pod is going away. Make sure this one goes too.
            let runtime = self.ctx.runtime.clone();
            let grace = Duration::from_secs(1);
            tokio::spawn(async move {
                let _ = runtime.stop_container(&id, grace).await;
                let _ = runtime.remove_container(&id).await;
            });
            self.slots[slot].on_start_abandoned();
            return;
        }
        let probes = self.probes[slot].clone();
        self.slots[slot].on_started(
            id.clone(),
            started_at,
            probes.readiness.is_some(),
            probes.startup.is_some(),
        );
        self.spawn_wait(myself, slot, id.clone());
        self.start_probes(myself, slot, &id);
        // Keep only the newest dead instance (for restart counts after a kubelet restart).
        if let Some(old) = self.slots[slot].previous().map(|t| t.container_id.clone()) {
            let runtime = self.ctx.runtime.clone();
            tokio::spawn(async move {
                let _ = runtime.remove_container(&old).await;
            });
        }
    }

    fn on_probe_report(
        &mut self,
        myself: &ActorRef<PodMsg>,
        slot: usize,
        container_id: &str,
        kind: ProbeKind,
        report: ProbeReport,
    ) {
        if self.slots[slot].running_id() != Some(container_id) || self.lifecycle.deleting() {
            return;
        }
        let name = self.slots[slot].name().to_string();
        match report {
            ProbeReport::AttemptFailed(message) => self.event(Event::warning(
                &self.key,
                Some(&name),
                "Unhealthy",
                format!("{} probe failed: {message}", kind.label()),
            )),
            ProbeReport::Verdict(ok) => match (kind, ok) {
                (ProbeKind::Readiness, ok) => self.slots[slot].on_readiness(ok),
                (ProbeKind::Startup, true) => {
                    let has_readiness = self.probes[slot].readiness.is_some();
                    self.slots[slot].on_startup_succeeded(has_readiness);
                    self.start_gated_probes(myself, slot, container_id);
                }
                (ProbeKind::Liveness, true) => {}
                (ProbeKind::Liveness | ProbeKind::Startup, false) => {
                    self.kill_for_probe(slot, container_id, kind)
                }
            },
        }
    }

    fn start_slot(&mut self, myself: &ActorRef<PodMsg>, i: usize) {
        let slot = &mut self.slots[i];
        let instance = slot.next_instance();
        slot.on_start_requested();
        let task = StartTask {
            ctx: self.ctx.clone(),
            reporter: self.reporter.clone(),
            pod: self.pod.clone(),
            key: self.key.clone(),
            container: slot.spec().clone(),
            instance,
            network: self.network.clone(),
            hosts_path: self.hosts_path(),
            resolv_path: self.resolv_path(),
        };
        let me = myself.clone();
        tokio::spawn(async move {
            let result = task.run().await;
            let _ = me.cast(PodMsg::StartFinished { slot: i, result });
        });
    }

    fn spawn_wait(&self, myself: &ActorRef<PodMsg>, slot: usize, id: String) {
        let runtime = self.ctx.runtime.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let mut attempts = 0;
            let status = loop {
                match runtime.wait_container(&id).await {
                    Ok(status) => break status,
                    Err(e) if attempts < 5 && !e.is_not_found() => {
                        attempts += 1;
                        debug!(container = %id, error = %e, "wait failed, retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(_) => {
                        break ExitStatus {
                            code: 137,
                            finished_at: Utc::now(),
                        };
                    }
                }
            };
            let _ = me.cast(PodMsg::ContainerExited {
                slot,
                container_id: id,
                status,
            });
        });
    }

    fn spawn_probe(
        &mut self,
        myself: &ActorRef<PodMsg>,
        slot: usize,
        kind: ProbeKind,
        spec: ProbeSpec,
        id: &str,
    ) {
        let target = ProbeTarget {
            netns: if host_network(&self.pod) {
                None
            } else {
                self.network.as_ref().map(|n| n.netns.clone())
            },
            runtime: self.ctx.runtime.clone(),
            container_id: id.to_string(),
        };
        let me = myself.clone();
        let ctx = self.ctx.clone();
        let container_id = id.to_string();
        let handle = probe::spawn_worker(kind, spec, target, move |report| {
            match &report {
                ProbeReport::AttemptFailed(_) => ctx.metrics.probe(kind, false),
                ProbeReport::Verdict(true) => ctx.metrics.probe(kind, true),
                ProbeReport::Verdict(false) => {}
            }
            let _ = me.cast(PodMsg::ProbeReported {
                slot,
                container_id: container_id.clone(),
                kind,
                report,
            });
        });
        self.workers[slot].push(handle);
    }

    /// Starts the probes of a freshly running instance (startup first; the
    /// others wait until it succeeds).
    fn start_probes(&mut self, myself: &ActorRef<PodMsg>, slot: usize, id: &str) {
        let probes = self.probes[slot].clone();
        if let Some(startup) = probes.startup {
            self.spawn_probe(myself, slot, ProbeKind::Startup, startup, id);
        } else {
            self.start_gated_probes(myself, slot, id);
        }
    }

    fn start_gated_probes(&mut self, myself: &ActorRef<PodMsg>, slot: usize, id: &str) {
        let probes = self.probes[slot].clone();
        if let Some(liveness) = probes.liveness {
            self.spawn_probe(myself, slot, ProbeKind::Liveness, liveness, id);
        }
        if let Some(readiness) = probes.readiness {
            self.spawn_probe(myself, slot, ProbeKind::Readiness, readiness, id);
        }
    }

    fn kill_for_probe(&mut self, slot: usize, id: &str, kind: ProbeKind) {
        let name = self.slots[slot].name().to_string();
        self.event(Event::normal(
            &self.key,
            Some(&name),
            "Killing",
            format!(
                "Container {name} failed {} probe, will be restarted",
                kind.label().to_lowercase()
            ),
        ));
        self.slots[slot].on_stop_requested();
        self.stop_workers(slot);
        let grace = self.slots[slot]
            .spec()
            .liveness_probe
            .as_ref()
            .and_then(|p| p.termination_grace_period_seconds)
            .map(|s| Duration::from_secs(s.max(0) as u64))
            .unwrap_or_else(|| spec::grace_period(&self.pod));
        let runtime = self.ctx.runtime.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            if let Err(e) = runtime.stop_container(&id, grace).await {
                warn!(container = %id, error = %e, "stopping container failed");
            }
        });
    }

    /// Stops every container within `grace`, then removes containers,
    /// sandbox and files, and says `TerminationFinished`.
    fn begin_termination(&mut self, myself: &ActorRef<PodMsg>, grace: Duration) {
        for i in 0..self.slots.len() {
            self.stop_workers(i);
        }
        let running: Vec<(String, String)> = self
            .slots
            .iter()
            .filter_map(|s| {
                s.running_id()
                    .map(|id| (s.name().to_string(), id.to_string()))
            })
            .collect();
        for (name, _) in &running {
            self.event(Event::normal(
                &self.key,
                Some(name),
                "Killing",
                format!("Stopping container {name}"),
            ));
        }
        let ctx = self.ctx.clone();
        let key = self.key.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let mut stops = tokio::task::JoinSet::new();
            for (_, id) in running {
                let runtime = ctx.runtime.clone();
                stops.spawn(async move { runtime.stop_container(&id, grace).await });
            }
            while let Some(joined) = stops.join_next().await {
                if let Ok(Err(e)) = joined
                    && !matches!(e, RuntimeError::NotRunning { .. })
                    && !e.is_not_found()
                {
                    warn!(pod = %key.ns_name(), error = %e, "stopping container failed");
                }
            }
            let filter = LabelFilter::from([(labels::POD_UID.to_string(), key.uid.clone())]);
            match ctx.runtime.list_containers(&filter).await {
                Ok(all) => {
                    for c in all {
                        if let Err(e) = ctx.runtime.remove_container(&c.id).await {
                            warn!(container = %c.id, error = %e, "removing container failed");
                        }
                    }
                }
                Err(e) => warn!(pod = %key.ns_name(), error = %e, "listing containers failed"),
            }
            if let Err(e) = ctx.network.teardown(&key).await {
                warn!(pod = %key.ns_name(), error = %e, "removing pod network failed");
            }
            let _ = tokio::fs::remove_dir_all(key.dir(&ctx.state_dir)).await;
            let _ = me.cast(PodMsg::TerminationFinished);
        });
    }

    /// Takes over containers a previous kubelet left behind.
    fn adopt(&mut self, myself: &ActorRef<PodMsg>, existing: Vec<ContainerInfo>) {
        let mut by_name: BTreeMap<String, Vec<ContainerInfo>> = BTreeMap::new();
        for c in existing {
            let name = c
                .labels
                .get(labels::CONTAINER_NAME)
                .cloned()
                .unwrap_or_default();
            by_name.entry(name).or_default().push(c);
        }
        for (name, mut instances) in by_name {
            let restart = |c: &ContainerInfo| {
                c.labels
                    .get(labels::RESTART_COUNT)
                    .and_then(|r| r.parse::<u32>().ok())
                    .unwrap_or(0)
            };
            instances.sort_by_key(restart);
            let Some(newest) = instances.pop() else {
                continue;
            };
            // Older instances are history only; their logs stay on disk.
            for old in instances {
                let runtime = self.ctx.runtime.clone();
                tokio::spawn(async move {
                    let _ = runtime.remove_container(&old.id).await;
                });
            }
            let Some(i) = self.slots.iter().position(|s| s.name() == name) else {
                let runtime = self.ctx.runtime.clone();
                tokio::spawn(async move {
                    let _ = runtime.remove_container(&newest.id).await;
                });
                continue;
            };
            let count = restart(&newest);
            let probes = self.probes[i].clone();
            match newest.state {
                ContainerState::Running { .. } => {
                    let started_at = newest.created_at.unwrap_or_else(Utc::now);
                    self.slots[i].adopt_running(
                        newest.id.clone(),
                        started_at,
                        count,
                        probes.readiness.is_some(),
                        probes.startup.is_some(),
                    );
                    info!(pod = %self.key.ns_name(), container = %name, id = %newest.id, "adopted running container");
                    self.spawn_wait(myself, i, newest.id.clone());
                    self.start_probes(myself, i, &newest.id);
                }
                ContainerState::Exited(status) => {
                    // Adopted as running, so its exit goes through the usual rules.
                    let started_at = newest.created_at.unwrap_or_else(Utc::now);
                    self.slots[i].adopt_running(newest.id.clone(), started_at, count, false, false);
                    self.on_exit(i, newest.id.clone(), status);
                }
                ContainerState::Created | ContainerState::Unknown => {
                    let runtime = self.ctx.runtime.clone();
                    tokio::spawn(async move {
                        let _ = runtime.remove_container(&newest.id).await;
                    });
                    self.slots[i].adopt_unusable(count);
                }
            }
        }
    }

    fn on_exit(&mut self, slot: usize, id: String, status: ExitStatus) {
        let started_at = self.slots[slot].running_since();
        self.stop_workers(slot);
        let termination = Termination {
            container_id: id,
            exit_code: status.code,
            reason: Termination::reason_for(status.code).into(),
            message: None,
            started_at,
            finished_at: status.finished_at,
        };
        let pod = self.key.display();
        let name = self.slots[slot].name().to_string();
        self.slots[slot].on_exited(
            termination,
            self.policy,
            &self.ctx.backoff,
            Instant::now(),
            &pod,
        );
        if self.slots[slot].crash_looping() {
            self.event(Event::warning(
                &self.key,
                Some(&name),
                "BackOff",
                format!("Back-off restarting failed container {name} in pod {pod}"),
            ));
        }
    }
}

/// Makes the pod's sandbox off the actor; the result comes back as
/// [`PodMsg::Prepared`].
fn spawn_prepare(
    myself: &ActorRef<PodMsg>,
    ctx: &Arc<NodeContext>,
    reporter: &Arc<dyn PodReporter>,
    pod: &Pod,
    key: &PodKey,
) {
    let task = prepare(ctx.clone(), reporter.clone(), pod.clone(), key.clone());
    let me = myself.clone();
    tokio::spawn(async move {
        let _ = me.cast(task.await);
    });
}

/// The node's resolv.conf as `--resolv-conf` names it (empty with `""`),
/// read as upstream reads it: at most 10 MiB, parsed each time a sandbox is
/// made, so an edited node file reaches new pods.
pub(crate) async fn node_resolver(node: &NodeDns) -> Result<Resolver, String> {
    let Some(path) = &node.resolv_conf else {
        return Ok(Resolver::default());
    };
    let open = |e: std::io::Error| format!("open {}: {e}", path.display());
    let file = tokio::fs::File::open(path).await.map_err(open)?;
    let mut text = String::new();
    file.take(MAX_RESOLV_CONF_BYTES)
        .read_to_string(&mut text)
        .await
        .map_err(|e| format!("read {}: {e}", path.display()))?;
    Resolver::parse(&text).map_err(|e| e.to_string())
}

/// Writes the pod's resolv.conf beside its hosts file and reports the
/// warnings forming it raised, as upstream's kubelet does on each sandbox.
async fn write_resolv_conf(
    ctx: &NodeContext,
    reporter: &dyn PodReporter,
    pod: &Pod,
    key: &PodKey,
    path: &std::path::Path,
) -> Result<(), String> {
    let host = node_resolver(&ctx.dns).await?;
    let formed = dns::pod_dns(&ctx.dns, &host, pod);
    for warning in formed.warnings {
        warn!(reason = warning.reason, message = %warning.message, "pod DNS");
        let mut event = Event::warning(key, None, warning.reason, warning.message);
        if warning.on_node {
            event.object = EventObject::Node(ctx.node_name.clone());
        }
        reporter.event(event);
    }
    tokio::fs::write(path, formed.resolver.render())
        .await
        .map_err(|e| format!("cannot write resolv.conf: {e}"))
}

async fn prepare(
    ctx: Arc<NodeContext>,
    reporter: Arc<dyn PodReporter>,
    pod: Pod,
    key: PodKey,
) -> PodMsg {
    let dir = key.dir(&ctx.state_dir);
    let network = async {
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // Before the network, as upstream forms the DNS configuration with
        // the sandbox's: a node file that cannot be read fails the sandbox.
        write_resolv_conf(&ctx, reporter.as_ref(), &pod, &key, &dir.join(RESOLV_CONF)).await?;
        let attachment = if host_network(&pod) {
            None
        } else {
            Some(ctx.network.setup(&key).await.map_err(|e| e.to_string())?)
        };
        let hosts = spec::hosts_file(&pod, attachment.as_ref().and_then(|a| a.pod_ip.as_deref()));
        tokio::fs::write(dir.join("etc-hosts"), hosts)
            .await
            .map_err(|e| format!("cannot write hosts file: {e}"))?;
        // A hostNetwork pod's IP is the node's, as upstream reports it.
        Ok(attachment.unwrap_or(NetworkAttachment {
            netns: PathBuf::new(),
            pod_ip: ctx.host_ip.clone(),
        }))
    }
    .await;
    let filter = LabelFilter::from([(labels::POD_UID.to_string(), key.uid.clone())]);
    let existing = ctx
        .runtime
        .list_containers(&filter)
        .await
        .unwrap_or_default();
    PodMsg::Prepared { network, existing }
}

impl Actor for PodActor {
    type Msg = PodMsg;
    type State = PodState;
    type Arguments = PodArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<PodMsg>,
        args: PodArgs,
    ) -> Result<PodState, ActorProcessingErr> {
        let PodArgs { pod, ctx, reporter } = args;
        let key = PodKey::of(&pod);
        let containers = pod
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        let probes = containers
            .iter()
            .map(|c| probes_of(c, &key, reporter.as_ref()))
            .collect();
        let slots: Vec<Slot> = containers.into_iter().map(Slot::new).collect();
        let workers = slots.iter().map(|_| Vec::new()).collect();
        spawn_prepare(&myself, &ctx, &reporter, &pod, &key);
        Ok(PodState {
            policy: spec::restart_policy(&pod),
            start_time: Utc::now(),
            pod,
            key,
            ctx,
            reporter,
            slots,
            probes,
            workers,
            network: None,
            lifecycle: Lifecycle::default(),
            left_behind: Vec::new(),
            last_status: None,
            wake_at: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<PodMsg>,
        msg: PodMsg,
        state: &mut PodState,
    ) -> Result<(), ActorProcessingErr> {
        let span = info_span!("pod", pod = %state.key.ns_name(), uid = %state.key.uid, node = %state.ctx.node_name);
        let _guard = span.enter();
        match msg {
            PodMsg::Reconcile => {}
            PodMsg::Prepared { network, existing } => state.on_prepared(&myself, network, existing),
            PodMsg::UpdateSpec(pod) => state.update_spec(*pod),
            PodMsg::StartFinished { slot, result } => {
                state.on_start_finished(&myself, slot, result)
            }
            PodMsg::ContainerExited {
                slot,
                container_id,
                status,
            } => {
                if state.slots[slot].running_id() == Some(container_id.as_str()) {
                    info!(container = %state.slots[slot].name(), code = status.code, "container exited");
                    state.on_exit(slot, container_id, status);
                }
            }
            PodMsg::ProbeReported {
                slot,
                container_id,
                kind,
                report,
            } => state.on_probe_report(&myself, slot, &container_id, kind, report),
            PodMsg::Terminate { grace } => {
                let grace = grace.unwrap_or_else(|| spec::grace_period(&state.pod));
                state.apply(&myself, PodEvent::DeletionRequested { grace });
            }
            PodMsg::TerminationFinished => {
                // Nothing is published after the pod is reported gone.
                state.apply(&myself, PodEvent::TerminationFinished);
                return Ok(());
            }
        }
        state.reconcile(&myself);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<PodMsg>,
        state: &mut PodState,
    ) -> Result<(), ActorProcessingErr> {
        for i in 0..state.workers.len() {
            state.stop_workers(i);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::reporter::{RecordingReporter, Reported};
    use crate::pod::sandbox::FakeNetwork;
    use crate::runtime::fake::FakeRuntime;

    /// Deleted before its sandbox is made, a pod waits for the sandbox and
    /// then removes it: no network, folder or container is left, and the
    /// last word is that the pod is gone.
    #[tokio::test]
    async fn a_pod_deleted_while_preparing_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = Arc::new(FakeRuntime::new());
        let network = Arc::new(FakeNetwork::default());
        let ctx = Arc::new(NodeContext::minimal(
            "n",
            dir.path(),
            runtime.clone(),
            network.clone(),
        ));
        let pod: Pod = serde_yaml::from_str(
            "metadata: {name: p, namespace: default, uid: u-1}\nspec:\n  containers: [{name: app, image: skiff.dev/webapp:v1}]\n",
        )
        .expect("yaml");
        let key = PodKey::of(&pod);
        let reporter = Arc::new(RecordingReporter::default());
        let args = PodArgs {
            pod,
            ctx,
            reporter: reporter.clone(),
        };
        let (actor, handle) = Actor::spawn(None, PodActor, args).await.expect("spawn");
        actor
            .cast(PodMsg::Terminate {
                grace: Some(Duration::ZERO),
            })
            .expect("cast");
        tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("the actor stops")
            .expect("cleanly");
        assert_eq!(network.live(), Vec::<String>::new());
        assert_eq!(runtime.container_ids(), Vec::<String>::new());
        assert!(!key.dir(dir.path()).exists());
        let reports = reporter.reports();
        assert_eq!(reports.last(), Some(&Reported::Gone("u-1".into())));
        assert_eq!(
            reports
                .iter()
                .filter(|r| matches!(r, Reported::Gone(_)))
                .count(),
            1
        );
    }

    /// Runs `yaml` on a node with `dns` until its containers exist; the
    /// runtime, the pod's folder and what was reported.
    async fn started(
        dns: NodeDns,
        yaml: &str,
        containers: usize,
    ) -> (Arc<FakeRuntime>, PodKey, tempfile::TempDir, Vec<Reported>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = Arc::new(FakeRuntime::new());
        runtime.add_image(skiff_images::ImageName::parse("skiff.dev/webapp:v1").expect("image"));
        let mut ctx = NodeContext::minimal(
            "n1",
            dir.path(),
            runtime.clone(),
            Arc::new(FakeNetwork::default()),
        );
        ctx.dns = dns;
        let pod: Pod = serde_yaml::from_str(yaml).expect("yaml");
        let key = PodKey::of(&pod);
        let reporter = Arc::new(RecordingReporter::default());
        let args = PodArgs {
            pod,
            ctx: Arc::new(ctx),
            reporter: reporter.clone(),
        };
        let (actor, handle) = Actor::spawn(None, PodActor, args).await.expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(10);
        while runtime.container_ids().len() < containers {
            assert!(Instant::now() < deadline, "{:#?}", reporter.reports());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        actor.stop(None);
        let _ = handle.await;
        (runtime, key, dir, reporter.reports())
    }

    fn resolv_mount(runtime: &FakeRuntime, id: &str) -> Option<crate::runtime::BindMount> {
        runtime
            .config_of(id)
            .expect("config")
            .mounts
            .into_iter()
            .find(|m| m.container_path == "/etc/resolv.conf")
    }

    /// Every container of a pod, hostNetwork or not, has the pod's
    /// resolv.conf at `/etc/resolv.conf`, read-only only with a read-only
    /// root filesystem; a volume at that path takes its place.
    #[tokio::test]
    async fn containers_get_the_pod_s_resolv_conf() {
        let dns = NodeDns {
            cluster_dns: vec!["10.96.0.10".parse().expect("ip")],
            ..NodeDns::default()
        };
        let (runtime, key, dir, _) = started(
            dns.clone(),
            r#"
metadata: {name: web, namespace: shop, uid: u-2}
spec:
  dnsConfig: {options: [{name: edns0}]}
  volumes: [{name: own, emptyDir: {}}]
  containers:
  - {name: app, image: skiff.dev/webapp:v1}
  - {name: ro, image: skiff.dev/webapp:v1, securityContext: {readOnlyRootFilesystem: true}}
  - name: own
    image: skiff.dev/webapp:v1
    volumeMounts: [{name: own, mountPath: /etc/resolv.conf}]
"#,
            3,
        )
        .await;
        let path = key.dir(dir.path()).join(RESOLV_CONF);
        assert_eq!(
            std::fs::read_to_string(&path).expect("resolv.conf"),
            "search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5 edns0\n"
        );
        let app = resolv_mount(&runtime, &key.container_id("app", 0)).expect("app mount");
        assert_eq!((app.host_path, app.read_only), (path.clone(), false));
        let ro = resolv_mount(&runtime, &key.container_id("ro", 0)).expect("ro mount");
        assert!(ro.read_only);
        let own = resolv_mount(&runtime, &key.container_id("own", 0)).expect("own mount");
        assert_ne!(own.host_path, path, "the volume is mounted there instead");

        let (runtime, key, dir, _) = started(
            dns,
            "metadata: {name: h, namespace: default, uid: u-3}\nspec:\n  hostNetwork: true\n  dnsPolicy: ClusterFirstWithHostNet\n  containers: [{name: app, image: skiff.dev/webapp:v1}]\n",
            1,
        )
        .await;
        let path = key.dir(dir.path()).join(RESOLV_CONF);
        assert_eq!(
            std::fs::read_to_string(&path).expect("resolv.conf"),
            "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
        let app = resolv_mount(&runtime, &key.container_id("app", 0)).expect("mount");
        assert_eq!(app.host_path, path);
    }

    /// Without cluster DNS a ClusterFirst pod runs on the node's settings,
    /// and the node and the pod each get upstream's warning.
    #[tokio::test]
    async fn missing_cluster_dns_is_a_warning_on_the_node_and_the_pod() {
        let (_, key, dir, reports) = started(
            NodeDns::default(),
            "metadata: {name: web, namespace: default, uid: u-4}\nspec:\n  containers: [{name: app, image: skiff.dev/webapp:v1}]\n",
            1,
        )
        .await;
        assert_eq!(
            std::fs::read_to_string(key.dir(dir.path()).join(RESOLV_CONF)).expect("file"),
            "search .\nnameserver 127.0.0.1\n"
        );
        let warnings: Vec<(EventObject, String)> = reports
            .iter()
            .filter_map(|r| match r {
                Reported::Event(e) if e.reason == "MissingClusterDNS" => {
                    Some((e.object.clone(), e.message.clone()))
                }
                _ => None,
            })
            .collect();
        let message = "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.";
        assert_eq!(
            warnings,
            [
                (EventObject::Node("n1".into()), message.to_string()),
                (
                    EventObject::Pod(key.clone()),
                    format!("pod: \"web_default(u-4)\". {message}")
                ),
            ]
        );
    }

    /// A node resolv.conf that cannot be read fails the sandbox, as
    /// upstream fails to form the pod's DNS configuration.
    #[tokio::test]
    async fn an_unreadable_node_file_fails_the_sandbox() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("no-resolv.conf");
        let mut ctx = NodeContext::minimal(
            "n1",
            dir.path(),
            Arc::new(FakeRuntime::new()),
            Arc::new(FakeNetwork::default()),
        );
        ctx.dns.resolv_conf = Some(missing.clone());
        let pod: Pod = serde_yaml::from_str(
            "metadata: {name: d, namespace: default, uid: u-5}\nspec: {dnsPolicy: Default, containers: [{name: app, image: skiff.dev/webapp:v1}]}",
        )
        .expect("yaml");
        let PodMsg::Prepared { network, .. } = prepare(
            Arc::new(ctx),
            Arc::new(RecordingReporter::default()),
            pod.clone(),
            PodKey::of(&pod),
        )
        .await
        else {
            panic!("not Prepared");
        };
        let error = network.expect_err("no node file");
        assert!(
            error.starts_with(&format!("open {}: ", missing.display())),
            "{error}"
        );
    }
}
