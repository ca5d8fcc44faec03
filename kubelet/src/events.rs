//! Kubernetes Events the node produces (Pulled, Created, Started, Killing,
//! Unhealthy, BackOff, Failed, ...).

use chrono::{DateTime, Utc};

use crate::pod::PodKey;

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventObject {
    /// A pod (with the container in `field_path`).
    Pod(PodKey),
    /// The node itself (e.g. a static manifest that cannot be parsed).
    Node(String),
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Involved object.
    pub object: EventObject,
    /// `spec.containers{name}` for container events.
    pub field_path: Option<String>,
    /// Warning (true) or Normal.
    pub warning: bool,
    /// `Pulled`, `Unhealthy`, ...
    pub reason: String,
    /// Human-readable message, worded as upstream.
    pub message: String,
    /// When it happened.
    pub time: DateTime<Utc>,
}

impl Event {
    /// A Normal event about a pod's container.
    pub fn normal(
        pod: &PodKey,
        container: Option<&str>,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self::new(pod, container, false, reason, message)
    }

    /// A Warning event about a pod's container.
    pub fn warning(
        pod: &PodKey,
        container: Option<&str>,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self::new(pod, container, true, reason, message)
    }

    fn new(
        pod: &PodKey,
        container: Option<&str>,
        warning: bool,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            object: EventObject::Pod(pod.clone()),
            field_path: container.map(|c| format!("spec.containers{{{c}}}")),
            warning,
            reason: reason.to_string(),
            message: message.into(),
            time: Utc::now(),
        }
    }

    /// `Normal` or `Warning`.
    pub fn type_(&self) -> &'static str {
        if self.warning { "Warning" } else { "Normal" }
    }
}
