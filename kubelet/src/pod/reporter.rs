//! Where a pod actor's news goes. The pod knows nothing of the node agent:
//! it tells a [`PodReporter`] that its status changed, that something worth
//! an Event happened, or that it is gone, and whoever spawned it decides what
//! that means (the node agent forwards it to watchers; tests record it).

use std::sync::Mutex;

use k8s_openapi::api::core::v1::PodStatus;

use crate::events::Event;

/// A pod actor's outbox. Calls never block and never fail: a reporter whose
/// receiver is gone drops what it is told.
pub trait PodReporter: Send + Sync + 'static {
    /// The pod's status is now `status` (only called when it changed).
    fn status_changed(&self, uid: &str, status: PodStatus);
    /// Something happened that deserves a Kubernetes Event.
    fn event(&self, event: Event);
    /// Containers, sandbox and files of the pod are removed; the actor stops.
    fn gone(&self, uid: &str);
}

/// One report, as [`RecordingReporter`] keeps it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reported {
    /// [`PodReporter::status_changed`].
    Status(String, Box<PodStatus>),
    /// [`PodReporter::event`].
    Event(Box<Event>),
    /// [`PodReporter::gone`].
    Gone(String),
}

/// A reporter that keeps everything it is told, for tests.
#[derive(Debug, Default)]
pub struct RecordingReporter {
    reports: Mutex<Vec<Reported>>,
}

impl RecordingReporter {
    /// Everything reported so far, in order.
    pub fn reports(&self) -> Vec<Reported> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Reported>> {
        // A panicking test thread must not hide the reports from the others.
        self.reports.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PodReporter for RecordingReporter {
    fn status_changed(&self, uid: &str, status: PodStatus) {
        self.lock()
            .push(Reported::Status(uid.to_string(), Box::new(status)));
    }

    fn event(&self, event: Event) {
        self.lock().push(Reported::Event(Box::new(event)));
    }

    fn gone(&self, uid: &str) {
        self.lock().push(Reported::Gone(uid.to_string()));
    }
}
