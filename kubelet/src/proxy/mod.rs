//! The service proxy (kube-proxy's role, nftables mode): keeps an nftables
//! table of this node's network namespace equal to the Services and
//! endpoints it is told about.
//!
//! - [`model`]: the input (`ServicePort`, `Endpoint`, `ProxyConfig`).
//! - [`rules`]: the table's objects, computed with no I/O.
//! - [`sync`]: full and incremental transactions, `nft -j -f -`, conntrack.
//! - [`feed`]: the node's Services and EndpointSlices turned into the
//!   model, told to the actor Service by Service.
//! - this module: [`ServiceProxy`], an actor that coalesces bursts of
//!   changes (kube-proxy's `minSyncPeriod`) into one sync.
//!
//! ```no_run
//! # async fn demo() -> Result<(), skiff_kubelet::proxy::ProxyError> {
//! use std::net::Ipv4Addr;
//! use skiff_kubelet::proxy::*;
//! let proxy = ServiceProxy::spawn(ProxyConfig::new("node-1")).await?;
//! let mut web = ServicePort::cluster_ip(
//!     ServicePortName::new("default", "web", "http", Protocol::Tcp),
//!     Ipv4Addr::new(10, 96, 0, 10), 80);
//! web.endpoints.push(Endpoint::ready(Ipv4Addr::new(10, 244, 1, 5), 8080, Some("node-1")));
//! proxy.service_changed("default", "web", vec![web])?;
//! proxy.sync_now().await?; // or let the debounce apply it
//! proxy.cleanup().await?;  // node stops: the table goes
//! # Ok(()) }
//! ```

pub mod feed;
pub mod model;
pub mod rules;
pub mod sync;

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

pub use model::{
    DEFAULT_AFFINITY_TIMEOUT_SECONDS, Endpoint, Protocol, ProxyConfig, ServicePort, ServicePortName,
};
pub use sync::{Executor, NftExecutor, ProxyError, Result, SyncReport, Syncer};

/// How long callers wait for the actor to answer (a full sync of thousands
/// of services takes seconds).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Messages of the [`ServiceProxy`] actor.
pub enum ProxyMsg {
    /// Service `namespace/name` now has exactly these ports (with their
    /// endpoints); ports it no longer lists go.
    ServiceChanged {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Every port of the Service.
        ports: Vec<ServicePort>,
    },
    /// Service `namespace/name` is gone.
    ServiceRemoved {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The complete set of Service ports (after a (re)connect to the control
    /// plane); anything not listed goes.
    Snapshot(Vec<ServicePort>),
    /// Rewrite the whole table at the next sync (someone may have touched it).
    Resync,
    /// Sync now, without waiting for the debounce, and answer.
    SyncNow(RpcReplyPort<Result<SyncReport>>),
    /// Delete the table and stop (the node stops).
    Cleanup(RpcReplyPort<Result<()>>),
    /// Internal: the debounce (or retry) timer fired.
    SyncDue,
}

/// The service proxy actor; `E` runs nft (the real [`NftExecutor`] or a
/// test fake).
pub struct ServiceProxy<E: Executor = NftExecutor>(PhantomData<fn() -> E>);

/// State of a running [`ServiceProxy`].
pub struct ProxyState<E: Executor> {
    /// The Service ports to program, by key.
    desired: BTreeMap<ServicePortName, ServicePort>,
    syncer: Syncer<E>,
    min_sync_period: Duration,
    retry_period: Duration,
    /// A `SyncDue` is on its way: further changes ride on it (this is the
    /// debounce).
    sync_scheduled: bool,
    /// When the last sync started: syncs are at least `min_sync_period`
    /// apart, but a change after a quiet spell is applied at once, as
    /// kube-proxy's bounded-frequency runner does (a trailing-only
    /// debounce added its whole period to every lone change).
    last_sync: Option<Instant>,
    /// `desired` (or the table) differs from what was last applied.
    dirty: bool,
}

impl ServiceProxy<NftExecutor> {
    /// Starts the proxy with the real nft. Nothing is written until the
    /// first change, snapshot or [`ProxyHandle::sync_now`].
    pub async fn spawn(config: ProxyConfig) -> Result<ProxyHandle> {
        let exec = NftExecutor {
            netns: config.netns.clone(),
        };
        Self::spawn_with(config, exec).await
    }
}

impl<E: Executor> ServiceProxy<E> {
    /// Starts the proxy with another executor.
    pub async fn spawn_with(config: ProxyConfig, exec: E) -> Result<ProxyHandle> {
        let (actor, _) = Actor::spawn(None, ServiceProxy::<E>(PhantomData), (config, exec))
            .await
            .map_err(|e| ProxyError::Actor(e.to_string()))?;
        Ok(ProxyHandle { actor })
    }
}

impl<E: Executor> ProxyState<E> {
    fn changed(&mut self, myself: &ActorRef<ProxyMsg>) {
        self.dirty = true;
        let wait = self.last_sync.map_or(Duration::ZERO, |t| {
            self.min_sync_period.saturating_sub(t.elapsed())
        });
        self.schedule(myself, wait);
    }

    fn schedule(&mut self, myself: &ActorRef<ProxyMsg>, after: Duration) {
        if self.sync_scheduled {
            return;
        }
        self.sync_scheduled = true;
        if after.is_zero() {
            // Queued behind the messages already waiting, so a burst that
            // arrived together still lands in one transaction.
            if myself.send_message(ProxyMsg::SyncDue).is_err() {
                self.sync_scheduled = false;
            }
        } else {
            myself.send_after(after, || ProxyMsg::SyncDue);
        }
    }

    async fn sync(&mut self, myself: &ActorRef<ProxyMsg>) -> Result<SyncReport> {
        self.last_sync = Some(Instant::now());
        let result = self.syncer.sync(&self.desired).await;
        match &result {
            Ok(_) => self.dirty = false,
            Err(e) => {
                // Logged once here; the next attempt is a full rewrite.
                tracing::warn!(error = %e, retry_in = ?self.retry_period, "service proxy sync failed");
                self.dirty = true;
                self.schedule(myself, self.retry_period);
            }
        }
        result
    }
}

impl<E: Executor> Actor for ServiceProxy<E> {
    type Msg = ProxyMsg;
    type State = ProxyState<E>;
    type Arguments = (ProxyConfig, E);

    async fn pre_start(
        &self,
        _myself: ActorRef<ProxyMsg>,
        (config, exec): (ProxyConfig, E),
    ) -> Result<ProxyState<E>, ActorProcessingErr> {
        Ok(ProxyState {
            desired: BTreeMap::new(),
            min_sync_period: config.min_sync_period,
            retry_period: config.retry_period,
            syncer: Syncer::with_executor(config, exec),
            sync_scheduled: false,
            last_sync: None,
            dirty: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ProxyMsg>,
        msg: ProxyMsg,
        state: &mut ProxyState<E>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ProxyMsg::ServiceChanged {
                namespace,
                name,
                ports,
            } => {
                state.desired.retain(|k, _| !k.is_of(&namespace, &name));
                for port in ports
                    .into_iter()
                    .filter(|p| p.name.is_of(&namespace, &name))
                {
                    state.desired.insert(port.name.clone(), port);
                }
                state.changed(&myself);
            }
            ProxyMsg::ServiceRemoved { namespace, name } => {
                state.desired.retain(|k, _| !k.is_of(&namespace, &name));
                state.changed(&myself);
            }
            ProxyMsg::Snapshot(ports) => {
                state.desired = ports.into_iter().map(|p| (p.name.clone(), p)).collect();
                state.changed(&myself);
            }
            ProxyMsg::Resync => {
                state.syncer.invalidate();
                state.changed(&myself);
            }
            ProxyMsg::SyncNow(reply) => {
                let result = state.sync(&myself).await;
                let _ = reply.send(result);
            }
            ProxyMsg::SyncDue => {
                state.sync_scheduled = false;
                if state.dirty {
                    let _ = state.sync(&myself).await;
                }
            }
            ProxyMsg::Cleanup(reply) => {
                let result = state.syncer.cleanup().await;
                let _ = reply.send(result);
                myself.stop(Some("cleaned up".into()));
            }
        }
        Ok(())
    }
}

/// A cheap, cloneable handle to a running [`ServiceProxy`].
#[derive(Clone)]
pub struct ProxyHandle {
    actor: ActorRef<ProxyMsg>,
}

impl ProxyHandle {
    /// The actor (to link it under a supervisor).
    pub fn actor(&self) -> &ActorRef<ProxyMsg> {
        &self.actor
    }

    fn send(&self, msg: ProxyMsg) -> Result<()> {
        self.actor
            .cast(msg)
            .map_err(|e| ProxyError::Actor(e.to_string()))
    }

    /// See [`ProxyMsg::ServiceChanged`].
    pub fn service_changed(
        &self,
        namespace: &str,
        name: &str,
        ports: Vec<ServicePort>,
    ) -> Result<()> {
        self.send(ProxyMsg::ServiceChanged {
            namespace: namespace.into(),
            name: name.into(),
            ports,
        })
    }

    /// See [`ProxyMsg::ServiceRemoved`].
    pub fn service_removed(&self, namespace: &str, name: &str) -> Result<()> {
        self.send(ProxyMsg::ServiceRemoved {
            namespace: namespace.into(),
            name: name.into(),
        })
    }

    /// See [`ProxyMsg::Snapshot`].
    pub fn snapshot(&self, ports: Vec<ServicePort>) -> Result<()> {
        self.send(ProxyMsg::Snapshot(ports))
    }

    /// See [`ProxyMsg::Resync`].
    pub fn resync(&self) -> Result<()> {
        self.send(ProxyMsg::Resync)
    }

    /// Applies pending changes now and reports what was done.
    pub async fn sync_now(&self) -> Result<SyncReport> {
        self.call(ProxyMsg::SyncNow).await?
    }

    /// Deletes the table and stops the actor.
    pub async fn cleanup(&self) -> Result<()> {
        self.call(ProxyMsg::Cleanup).await?
    }

    async fn call<T: Send + 'static>(
        &self,
        msg: impl FnOnce(RpcReplyPort<T>) -> ProxyMsg,
    ) -> Result<T> {
        match self
            .actor
            .call(msg, Some(CALL_TIMEOUT))
            .await
            .map_err(|e| ProxyError::Actor(e.to_string()))?
        {
            ractor::rpc::CallResult::Success(v) => Ok(v),
            ractor::rpc::CallResult::Timeout => Err(ProxyError::Actor("timed out".into())),
            ractor::rpc::CallResult::SenderError => Err(ProxyError::Actor("no reply".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::sync::tests::FakeExecutor;
    use super::*;

    fn web(endpoints: u8) -> ServicePort {
        let mut svc = ServicePort::cluster_ip(
            ServicePortName::new("default", "web", "http", Protocol::Tcp),
            Ipv4Addr::new(10, 96, 0, 10),
            80,
        );
        for i in 0..endpoints {
            svc.endpoints.push(Endpoint::ready(
                Ipv4Addr::new(10, 244, 1, 10 + i),
                8080,
                None,
            ));
        }
        svc
    }

    #[tokio::test]
    async fn a_burst_of_changes_is_applied_in_one_transaction() {
        let exec = FakeExecutor::default();
        let mut config = ProxyConfig::new("n");
        config.min_sync_period = Duration::from_millis(50);
        let proxy = ServiceProxy::spawn_with(config, exec.clone())
            .await
            .expect("spawn");
        for i in 0..30 {
            proxy
                .service_changed("default", "web", vec![web(i % 3 + 1)])
                .expect("send");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let applied = exec.applied.lock().expect("lock").clone();
        assert_eq!(applied.len(), 1, "one full sync for the burst");
        // The last state (30 % 3 → 3 endpoints... i = 29 → 29 % 3 + 1 = 3).
        assert!(applied[0].contains(r#""mod":3"#));
        proxy.service_removed("default", "web").expect("send");
        let report = proxy.sync_now().await.expect("sync");
        assert!(!report.full && report.services_changed == 1, "{report:?}");
        proxy.cleanup().await.expect("cleanup");
    }

    #[tokio::test]
    async fn a_lone_change_is_applied_at_once_and_the_next_waits_its_period() {
        let exec = FakeExecutor::default();
        let mut config = ProxyConfig::new("n");
        config.min_sync_period = Duration::from_millis(400);
        let proxy = ServiceProxy::spawn_with(config, exec.clone())
            .await
            .expect("spawn");
        let applied = || exec.applied.lock().expect("lock").len();
        proxy
            .service_changed("default", "web", vec![web(1)])
            .expect("send");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            applied(),
            1,
            "a change after a quiet spell waits for nothing"
        );
        proxy
            .service_changed("default", "web", vec![web(2)])
            .expect("send");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(applied(), 1, "syncs are min_sync_period apart");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(applied(), 2, "the held change follows after the period");
        proxy.cleanup().await.expect("cleanup");
    }
}
