//! The pod actor: one per pod UID. It owns the pod's sandbox, containers and
//! probe workers, and reconciles them toward the pod spec whenever something
//! changes (level-triggered: every handler ends in the same `reconcile`).
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
use skiff_images::ImageName;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, info_span, warn};

use super::container::{RestartPolicy, Slot, StartFailure, Step, Termination};
use super::sandbox::NetworkAttachment;
use super::spec::{self, Downward, PodKey};
use super::status::{PodFacts, pod_status};
use crate::images::{ImageUnavailable, Presence};
use crate::node::events::Event;
use crate::node::{NodeContext, NodeMsg};
use crate::probe::{self, ProbeKind, ProbeReport, ProbeSpec, ProbeTarget};
use crate::runtime::{
    BindMount, ContainerConfig, ContainerInfo, ContainerState, ExitStatus, LabelFilter,
    NetworkMode, PodRef, RuntimeError, labels,
};

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
    /// The node actor, told about status, events and the end.
    pub node: ActorRef<NodeMsg>,
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
    node: ActorRef<NodeMsg>,
    policy: RestartPolicy,
    slots: Vec<Slot>,
    probes: Vec<Probes>,
    workers: Vec<Vec<JoinHandle<()>>>,
    network: Option<NetworkAttachment>,
    network_error: Option<String>,
    prepared: bool,
    terminating: Option<Duration>,
    termination_started: bool,
    start_time: chrono::DateTime<Utc>,
    last_status: Option<PodStatus>,
    wake_at: Option<Instant>,
}

/// The pod actor (stateless; see [`PodState`]).
pub struct PodActor;

fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

fn probes_of(c: &Container, key: &PodKey, node: &ActorRef<NodeMsg>) -> Probes {
    let read = |p: &Option<k8s_openapi::api::core::v1::Probe>, kind: ProbeKind| {
        p.as_ref().and_then(|p| match ProbeSpec::from_k8s(p, c) {
            Ok(spec) => Some(spec),
            Err(e) => {
                let _ = node.cast(NodeMsg::Event(Box::new(Event::warning(
                    key,
                    Some(&c.name),
                    "Unhealthy",
                    format!("{} probe errored: {e}", kind.label()),
                ))));
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
        let _ = self.node.cast(NodeMsg::Event(Box::new(event)));
    }

    fn hosts_path(&self) -> PathBuf {
        self.key.dir(&self.ctx.state_dir).join("etc-hosts")
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
            let _ = self.node.cast(NodeMsg::PodStatus {
                uid: self.key.uid.clone(),
                status: Box::new(status),
            });
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
        let started = std::time::Instant::now();
        let now = Instant::now();
        if self.wake_at.is_some_and(|w| w <= now) {
            self.wake_at = None;
        }
        if self.terminating.is_some() {
            self.maybe_begin_termination(myself);
        } else if self.prepared && (self.network.is_some() || host_network(&self.pod)) {
            for i in 0..self.slots.len() {
                match self.slots[i].next_step(false, now) {
                    Step::Start => self.start_slot(myself, i),
                    Step::WaitUntil(at) => self.schedule_wake(myself, at),
                    Step::Idle => {}
                }
            }
        }
        self.publish_status();
        self.ctx.metrics.sync(started.elapsed());
    }

    fn start_slot(&mut self, myself: &ActorRef<PodMsg>, i: usize) {
        let slot = &mut self.slots[i];
        let instance = if slot.ever_started {
            slot.restart_count + 1
        } else {
            0
        };
        slot.on_start_requested();
        let task = StartTask {
            ctx: self.ctx.clone(),
            node: self.node.clone(),
            pod: self.pod.clone(),
            key: self.key.clone(),
            container: slot.spec.clone(),
            instance,
            network: self.network.clone(),
            hosts_path: self.hosts_path(),
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
        self.slots[slot].stopping = true;
        self.stop_workers(slot);
        let grace = self.slots[slot]
            .spec
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

    fn maybe_begin_termination(&mut self, myself: &ActorRef<PodMsg>) {
        if self.termination_started
            || self
                .slots
                .iter()
                .any(|s| s.current == super::container::Current::Starting)
        {
            return;
        }
        self.termination_started = true;
        let grace = self
            .terminating
            .unwrap_or_else(|| spec::grace_period(&self.pod));
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
                    let slot = &mut self.slots[i];
                    slot.ever_started = true;
                    slot.restart_count = count;
                    slot.current = super::container::Current::Running {
                        id: newest.id.clone(),
                        started_at: newest.created_at.unwrap_or_else(Utc::now),
                    };
                    self.on_exit(i, newest.id.clone(), status);
                }
                ContainerState::Created | ContainerState::Unknown => {
                    let runtime = self.ctx.runtime.clone();
                    tokio::spawn(async move {
                        let _ = runtime.remove_container(&newest.id).await;
                    });
                    let slot = &mut self.slots[i];
                    slot.ever_started = count > 0;
                    slot.restart_count = count.saturating_sub(1);
                }
            }
        }
    }

    fn on_exit(&mut self, slot: usize, id: String, status: ExitStatus) {
        let started_at = match &self.slots[slot].current {
            super::container::Current::Running { started_at, .. } => Some(*started_at),
            _ => None,
        };
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
        if self.slots[slot]
            .waiting
            .as_ref()
            .is_some_and(|w| w.reason == "CrashLoopBackOff")
        {
            self.event(Event::warning(
                &self.key,
                Some(&name),
                "BackOff",
                format!("Back-off restarting failed container {name} in pod {pod}"),
            ));
        }
    }
}

/// Everything needed to start one container instance, off the actor.
struct StartTask {
    ctx: Arc<NodeContext>,
    node: ActorRef<NodeMsg>,
    pod: Pod,
    key: PodKey,
    container: Container,
    instance: u32,
    network: Option<NetworkAttachment>,
    hosts_path: PathBuf,
}

impl StartTask {
    fn event(&self, event: Event) {
        let _ = self.node.cast(NodeMsg::Event(Box::new(event)));
    }

    async fn run(self) -> Result<(String, chrono::DateTime<Utc>), StartFailure> {
        let name = self.container.name.clone();
        let image_text = self.container.image.clone().unwrap_or_default();
        let image =
            ImageName::parse(&image_text).map_err(|e| StartFailure::Create(e.to_string()))?;
        let policy = spec::pull_policy(&self.container, &image);

        match self.ctx.images.ensure(&image, policy).await {
            Ok(Presence::AlreadyPresent) => self.event(Event::normal(
                &self.key,
                Some(&name),
                "Pulled",
                format!("Container image \"{image_text}\" already present on machine"),
            )),
            Ok(Presence::Imported { took, archive }) => {
                self.event(Event::normal(&self.key, Some(&name), "Pulling", format!("Pulling image \"{image_text}\"")));
                self.event(Event::normal(
                    &self.key,
                    Some(&name),
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image_text}\" in {} (imported from {})",
                        super::container::go_duration(took),
                        archive.display()
                    ),
                ));
            }
            Ok(Presence::UsedOffline) => self.event(Event::warning(
                &self.key,
                Some(&name),
                "Pulled",
                format!(
                    "Image \"{image_text}\" has pull policy Always but no registry is configured and no archive provides it: using the copy already present on the node"
                ),
            )),
            Err(e @ ImageUnavailable::NeverPull(_)) => {
                let m = e.to_string();
                self.event(Event::warning(&self.key, Some(&name), "ErrImageNeverPull", m.clone()));
                return Err(StartFailure::ImageNeverPull(m));
            }
            Err(e) => {
                let m = format!("Failed to pull image \"{image_text}\": {e}");
                self.event(Event::warning(&self.key, Some(&name), "Failed", m.clone()));
                return Err(StartFailure::ImagePull(m));
            }
        }

        let id = self.key.container_id(&name, self.instance);
        let pod_dir = self.key.dir(&self.ctx.state_dir);
        let mut config = ContainerConfig::new(
            id.clone(),
            image,
            self.key.log_path(&self.ctx.state_dir, &name, self.instance),
        );
        config.pod = PodRef {
            uid: self.key.uid.clone(),
            namespace: self.key.namespace.clone(),
            name: self.key.name.clone(),
        };
        config.name = name.clone();
        config.restart_count = self.instance;
        config.command = self.container.command.clone().unwrap_or_default();
        config.args = self.container.args.clone().unwrap_or_default();
        let downward = Downward {
            node_name: self.ctx.node_name.clone(),
            host_ip: self.ctx.host_ip.clone(),
            pod_ip: self.network.as_ref().and_then(|n| n.pod_ip.clone()),
        };
        config.env = spec::environment(&self.pod, &self.container, &downward);
        config.working_dir = self.container.working_dir.clone().filter(|d| !d.is_empty());
        config.hostname = Some(spec::hostname(&self.pod));
        let security =
            |f: fn(&k8s_openapi::api::core::v1::SecurityContext) -> Option<i64>,
             p: fn(&k8s_openapi::api::core::v1::PodSecurityContext) -> Option<i64>| {
                self.container
                    .security_context
                    .as_ref()
                    .and_then(f)
                    .or_else(|| {
                        self.pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.security_context.as_ref())
                            .and_then(p)
                    })
            };
        let uid = security(|c| c.run_as_user, |p| p.run_as_user);
        let gid = security(|c| c.run_as_group, |p| p.run_as_group);
        if let Some(uid) = uid {
            config.user = Some((uid as u32, gid.unwrap_or(0) as u32));
        }
        if host_network(&self.pod) {
            config.network = super::sandbox::host_network();
        } else {
            let Some(network) = &self.network else {
                return Err(StartFailure::Create("pod network is not ready".into()));
            };
            config.network = NetworkMode::Join(network.netns.clone());
            config.mounts.push(BindMount {
                host_path: self.hosts_path.clone(),
                container_path: "/etc/hosts".into(),
                read_only: false,
            });
        }
        let volumes = super::volumes::mounts_for(
            &self.pod,
            &self.container,
            &pod_dir,
            &self.ctx.state_dir.join("volumes"),
        )
        .map_err(|m| {
            self.event(Event::warning(
                &self.key,
                Some(&name),
                "Failed",
                format!("Error: {m}"),
            ));
            StartFailure::Create(m)
        })?;
        config.mounts.extend(volumes);

        // A previous life may have left an instance with this id half-made.
        let _ = self.ctx.runtime.remove_container(&id).await;
        if let Err(e) = self.ctx.runtime.create_container(&config).await {
            let m = format!("Error: {e}");
            self.event(Event::warning(&self.key, Some(&name), "Failed", m.clone()));
            return Err(StartFailure::Create(m));
        }
        self.event(Event::normal(
            &self.key,
            Some(&name),
            "Created",
            format!("Created container {name}"),
        ));
        if let Err(e) = self.ctx.runtime.start_container(&id).await {
            let m = format!("Error: failed to start container \"{name}\": {e}");
            self.event(Event::warning(&self.key, Some(&name), "Failed", m.clone()));
            let _ = self.ctx.runtime.remove_container(&id).await;
            return Err(StartFailure::Run(m));
        }
        self.ctx.metrics.container_started();
        self.event(Event::normal(
            &self.key,
            Some(&name),
            "Started",
            format!("Started container {name}"),
        ));
        Ok((id, Utc::now()))
    }
}

async fn prepare(ctx: Arc<NodeContext>, pod: Pod, key: PodKey) -> PodMsg {
    let dir = key.dir(&ctx.state_dir);
    let network = async {
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let attachment = if host_network(&pod) {
            None
        } else {
            Some(ctx.network.setup(&key).await.map_err(|e| e.to_string())?)
        };
        let hosts = spec::hosts_file(&pod, attachment.as_ref().and_then(|a| a.pod_ip.as_deref()));
        tokio::fs::write(dir.join("etc-hosts"), hosts)
            .await
            .map_err(|e| format!("cannot write hosts file: {e}"))?;
        Ok(attachment.unwrap_or(NetworkAttachment {
            netns: PathBuf::new(),
            pod_ip: None,
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
        let PodArgs { pod, ctx, node } = args;
        let key = PodKey::of(&pod);
        let containers = pod
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        let probes = containers
            .iter()
            .map(|c| probes_of(c, &key, &node))
            .collect();
        let slots: Vec<Slot> = containers.into_iter().map(Slot::new).collect();
        let workers = slots.iter().map(|_| Vec::new()).collect();
        let task = prepare(ctx.clone(), pod.clone(), key.clone());
        let me = myself.clone();
        tokio::spawn(async move {
            let _ = me.cast(task.await);
        });
        Ok(PodState {
            policy: spec::restart_policy(&pod),
            start_time: Utc::now(),
            pod,
            key,
            ctx,
            node,
            slots,
            probes,
            workers,
            network: None,
            network_error: None,
            prepared: false,
            terminating: None,
            termination_started: false,
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
            PodMsg::Prepared { network, existing } => {
                state.prepared = true;
                match network {
                    Ok(n) => {
                        if !host_network(&state.pod) {
                            state.network = Some(n);
                        }
                    }
                    Err(e) => {
                        state.event(Event::warning(
                            &state.key,
                            None,
                            "FailedCreatePodSandBox",
                            format!("Failed to create pod sandbox: {e}"),
                        ));
                        state.network_error = Some(e);
                        myself.send_after(Duration::from_secs(5), || PodMsg::Reconcile);
                    }
                }
                state.adopt(&myself, existing);
            }
            PodMsg::UpdateSpec(pod) => {
                let new_containers = pod
                    .spec
                    .as_ref()
                    .map(|s| s.containers.clone())
                    .unwrap_or_default();
                for i in 0..state.slots.len() {
                    let Some(new) = new_containers
                        .iter()
                        .find(|c| c.name == state.slots[i].name())
                    else {
                        continue;
                    };
                    if new.image != state.slots[i].spec.image {
                        state.slots[i].spec = new.clone();
                        if let Some(id) = state.slots[i].running_id().map(String::from) {
                            let name = new.name.clone();
                            state.event(Event::normal(
                                &state.key,
                                Some(&name),
                                "Killing",
                                format!("Container {name} definition changed, will be restarted"),
                            ));
                            state.slots[i].stopping = true;
                            state.stop_workers(i);
                            let runtime = state.ctx.runtime.clone();
                            let grace = spec::grace_period(&pod);
                            tokio::spawn(async move {
                                let _ = runtime.stop_container(&id, grace).await;
                            });
                        }
                    }
                }
                state.pod = *pod;
            }
            PodMsg::StartFinished { slot, result } => match result {
                Ok((id, started_at)) => {
                    if state.terminating.is_some() {
                        // Too late: the pod is going away. Make sure this one goes too.
                        let runtime = state.ctx.runtime.clone();
                        let grace = Duration::from_secs(1);
                        tokio::spawn(async move {
                            let _ = runtime.stop_container(&id, grace).await;
                            let _ = runtime.remove_container(&id).await;
                        });
                        state.slots[slot].current = super::container::Current::Idle;
                    } else {
                        let probes = state.probes[slot].clone();
                        state.slots[slot].on_started(
                            id.clone(),
                            started_at,
                            probes.readiness.is_some(),
                            probes.startup.is_some(),
                        );
                        state.spawn_wait(&myself, slot, id.clone());
                        state.start_probes(&myself, slot, &id);
                        // Keep only the newest dead instance (for restart counts after a kubelet restart).
                        if let Some(old) = state.slots[slot]
                            .previous
                            .as_ref()
                            .map(|t| t.container_id.clone())
                        {
                            let runtime = state.ctx.runtime.clone();
                            tokio::spawn(async move {
                                let _ = runtime.remove_container(&old).await;
                            });
                        }
                    }
                }
                Err(failure) => {
                    let pod = state.key.display();
                    state.slots[slot].on_start_failed(
                        failure,
                        state.policy,
                        &state.ctx.backoff,
                        Instant::now(),
                        &pod,
                    );
                }
            },
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
            } => {
                if state.slots[slot].running_id() == Some(container_id.as_str())
                    && state.terminating.is_none()
                {
                    let name = state.slots[slot].name().to_string();
                    match report {
                        ProbeReport::AttemptFailed(message) => state.event(Event::warning(
                            &state.key,
                            Some(&name),
                            "Unhealthy",
                            format!("{} probe failed: {message}", kind.label()),
                        )),
                        ProbeReport::Verdict(ok) => match (kind, ok) {
                            (ProbeKind::Readiness, ok) => {
                                state.slots[slot].ready = ok && state.slots[slot].started
                            }
                            (ProbeKind::Startup, true) => {
                                state.slots[slot].started = true;
                                state.slots[slot].ready = state.probes[slot].readiness.is_none();
                                state.start_gated_probes(&myself, slot, &container_id);
                            }
                            (ProbeKind::Liveness, true) => {}
                            (ProbeKind::Liveness | ProbeKind::Startup, false) => {
                                state.kill_for_probe(slot, &container_id, kind)
                            }
                        },
                    }
                }
            }
            PodMsg::Terminate { grace } => {
                if state.terminating.is_none() {
                    state.terminating =
                        Some(grace.unwrap_or_else(|| spec::grace_period(&state.pod)));
                }
            }
            PodMsg::TerminationFinished => {
                let _ = state.node.cast(NodeMsg::PodGone {
                    uid: state.key.uid.clone(),
                });
                myself.stop(None);
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
