//! Starting one container instance, off the actor: make the image present,
//! build the runtime configuration from the pod, create and start. Each
//! step reports its Event as upstream words it; a failure says which
//! `StartFailure` the container's slot turns it into.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use k8s_openapi::api::core::v1::{Container, Pod};
use skiff_images::ImageName;

use super::container::{StartFailure, go_duration};
use super::reporter::PodReporter;
use super::sandbox::NetworkAttachment;
use super::spec::{self, Downward, PodKey, host_network};
use crate::context::NodeContext;
use crate::events::Event;
use crate::images::{ImageUnavailable, Presence};
use crate::runtime::{BindMount, ContainerConfig, NetworkMode, PodRef, RuntimeError};
use crate::services::env::service_environment;

/// Where a container finds its resolver configuration.
const RESOLV_CONF_PATH: &str = "/etc/resolv.conf";

/// Everything needed to start one container instance, off the actor.
pub(super) struct StartTask {
    pub(super) ctx: Arc<NodeContext>,
    pub(super) reporter: Arc<dyn PodReporter>,
    pub(super) pod: Pod,
    pub(super) key: PodKey,
    pub(super) container: Container,
    pub(super) instance: u32,
    pub(super) network: Option<NetworkAttachment>,
    pub(super) hosts_path: PathBuf,
    pub(super) resolv_path: PathBuf,
}

impl StartTask {
    fn event(&self, event: Event) {
        self.reporter.event(event);
    }

    /// Starts the instance; its id and start time, or why it did not start.
    pub(super) async fn run(self) -> Result<(String, chrono::DateTime<Utc>), StartFailure> {
        let name = self.container.name.clone();
        let image = self.ensure_image().await?;
        let pod_dir = self.key.dir(&self.ctx.state_dir);
        if let Err(m) = super::projected::prepare(
            self.ctx.pod_sources.as_ref(),
            &self.ctx.projected,
            &self.pod,
            &pod_dir,
        )
        .await
        {
            self.event(Event::warning(&self.key, None, "FailedMount", m.clone()));
            return Err(StartFailure::Create(m));
        }
        let config = self.config(image)?;
        let id = config.id.clone();

        // A previous life may have left an instance with this id half-made.
        let _ = self.ctx.runtime.remove_container(&id).await;
        if let Err(e) = self.ctx.runtime.create_container(&config).await {
            if let RuntimeError::NonRoot { violation, .. } = &e {
                // Upstream's kubelet makes this check before it asks the
                // runtime, and words it with the pod and container.
                return Err(self.config_error(format!(
                    "{violation} (pod: {:?}, container: {name})",
                    self.key.display()
                )));
            }
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

    /// The container's configuration cannot be honoured: upstream's
    /// `Failed` event and `CreateContainerConfigError`.
    fn config_error(&self, message: String) -> StartFailure {
        let name = &self.container.name;
        self.event(Event::warning(
            &self.key,
            Some(name),
            "Failed",
            format!("Error: {message}"),
        ));
        StartFailure::Config(message)
    }

    /// Makes the container's image present as its pull policy says.
    async fn ensure_image(&self) -> Result<ImageName, StartFailure> {
        let name = &self.container.name;
        let image_text = self.container.image.clone().unwrap_or_default();
        let image =
            ImageName::parse(&image_text).map_err(|e| StartFailure::Create(e.to_string()))?;
        let policy = spec::pull_policy(&self.container, &image);

        match self.ctx.images.ensure(&image, policy).await {
            Ok(Presence::AlreadyPresent) => self.event(Event::normal(
                &self.key,
                Some(name),
                "Pulled",
                format!("Container image \"{image_text}\" already present on machine"),
            )),
            Ok(Presence::Imported { took, archive }) => {
                self.event(Event::normal(&self.key, Some(name), "Pulling", format!("Pulling image \"{image_text}\"")));
                self.event(Event::normal(
                    &self.key,
                    Some(name),
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image_text}\" in {} (imported from {})",
                        go_duration(took),
                        archive.display()
                    ),
                ));
            }
            Ok(Presence::UsedOffline) => self.event(Event::warning(
                &self.key,
                Some(name),
                "Pulled",
                format!(
                    "Image \"{image_text}\" has pull policy Always but no registry is configured and no archive provides it: using the copy already present on the node"
                ),
            )),
            Err(e @ ImageUnavailable::NeverPull(_)) => {
                let m = e.to_string();
                self.event(Event::warning(&self.key, Some(name), "ErrImageNeverPull", m.clone()));
                return Err(StartFailure::ImageNeverPull(m));
            }
            Err(e) => {
                let m = format!("Failed to pull image \"{image_text}\": {e}");
                self.event(Event::warning(&self.key, Some(name), "Failed", m.clone()));
                return Err(StartFailure::ImagePull(m));
            }
        }
        Ok(image)
    }

    /// The runtime configuration of this instance.
    fn config(&self, image: ImageName) -> Result<ContainerConfig, StartFailure> {
        let name = self.container.name.clone();
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
        let hostname = if host_network(&self.pod) {
            // Upstream's hostNetwork pods share the node's UTS namespace;
            // a Skiff node's name is its hostname (several share a machine).
            self.ctx.node_name.clone()
        } else {
            spec::hostname(&self.pod)
        };
        config.env = self.environment(&downward, &hostname);
        config.working_dir = self.container.working_dir.clone().filter(|d| !d.is_empty());
        config.hostname = Some(hostname);
        let (user, security) = super::security::effective(
            &self.pod,
            &self.container,
            self.ctx.seccomp_default,
            &self.ctx.state_dir,
        )
        .map_err(|e| self.config_error(e.to_string()))?;
        config.user = user;
        config.security = security;
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
        // The pod's resolv.conf, hostNetwork or not, unless a volume takes
        // its place; writable unless the root filesystem is read-only, as
        // containerd's CRI mounts its sandbox copy.
        if !volumes.iter().any(|m| m.container_path == RESOLV_CONF_PATH) {
            let read_only = self
                .container
                .security_context
                .as_ref()
                .and_then(|s| s.read_only_root_filesystem)
                .unwrap_or(false);
            config.mounts.push(BindMount {
                host_path: self.resolv_path.clone(),
                container_path: RESOLV_CONF_PATH.into(),
                read_only,
            });
        }
        config.mounts.extend(volumes);
        Ok(config)
    }
}

impl StartTask {
    /// The container's environment: `HOSTNAME` as containerd's CRI sets
    /// it, then the service variables (upstream's kubelet), then the
    /// container's own `env`, which wins over both and may refer to them.
    fn environment(&self, downward: &Downward, hostname: &str) -> Vec<(String, String)> {
        let own = spec::environment(&self.pod, &self.container, downward);
        let links = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .unwrap_or(true);
        let namespace = self.key.namespace.as_str();
        let services = service_environment(&self.ctx.services.borrow(), namespace, links);
        let mut env: Vec<(String, String)> =
            std::iter::once(("HOSTNAME".to_string(), hostname.to_string()))
                .chain(services)
                .filter(|(name, _)| !own.iter().any(|(n, _)| n == name))
                .collect();
        env.extend(own);
        env
    }
}
