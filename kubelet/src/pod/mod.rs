//! Pods on the node: one [`actor::PodActor`] per pod UID owns the pod's
//! sandbox and containers and drives them with a level-triggered reconcile.
//!
//! - [`spec`]: from the Kubernetes Pod to runtime settings and paths.
//! - [`container`]: one container across restarts, as a pure state machine.
//! - [`lifecycle`]: the pod itself (preparing, running, terminating), also pure.
//! - [`status`]: pod phase and conditions, as upstream derives them.
//! - [`backoff`]: CrashLoopBackOff and image back-off.
//! - [`dns`]: the pod's resolv.conf, by `dnsPolicy` and `dnsConfig`.
//! - [`sandbox`]: the network namespace a pod's containers share.
//! - [`security`]: a container's effective securityContext (pod and container merged).
//! - `start`: starting one container instance (image, configuration, create, start).
//! - [`volumes`]: emptyDir, hostPath, claim and projected volumes as bind mounts.
//! - [`projected`]: projected volumes' files (ServiceAccount token, CA, namespace).
//! - [`reporter`]: how the pod tells its owner about status, events and its end.
//! - [`actor`]: the pod actor tying these together.

pub mod actor;
pub mod backoff;
pub mod container;
pub mod dns;
pub mod lifecycle;
pub mod projected;
pub mod reporter;
pub mod restart_policy;
pub mod sandbox;
pub mod security;
pub mod spec;
mod start;
pub mod status;
pub mod volumes;

pub use actor::{PodActor, PodArgs, PodMsg};
pub use reporter::PodReporter;
pub use spec::PodKey;
