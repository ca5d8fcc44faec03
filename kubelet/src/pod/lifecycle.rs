//! The pod's own life, apart from its containers' (those are [`Slot`]s):
//! the sandbox is made, containers run, deletion stops them within a grace
//! period, and the pod is gone. Pure like `Slot`: [`Lifecycle::on`] takes what
//! happened and returns what to do, and the actor performs it.
//!
//! [`Slot`]: super::container::Slot

use std::time::Duration;

/// Where a pod is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// The sandbox (pod folder, network) is being made; nothing starts yet.
    /// A deletion asked meanwhile waits for it, so what is being made is
    /// removed too.
    Preparing {
        /// The grace period of a deletion asked while preparing.
        deletion: Option<Duration>,
        /// Containers a previous kubelet left were already taken over (this
        /// is a retry after a failed sandbox).
        adopted: bool,
    },
    /// The sandbox is ready: containers run as their restart policy says.
    Running,
    /// The sandbox could not be made: no container can start. The next
    /// reconcile tries again, as upstream's kubelet retries a sandbox on
    /// every sync (the pod network may not be ready yet).
    SandboxFailed,
    /// Deletion was asked. Stopping begins once no container start is in
    /// flight, so no instance escapes it.
    Terminating {
        /// Time each container gets between SIGTERM and SIGKILL.
        grace: Duration,
        /// Containers are being stopped and the sandbox removed.
        started: bool,
    },
    /// Containers, sandbox and files are gone.
    Terminated,
}

/// What happened to the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodEvent {
    /// Making the sandbox ended, or failed with this message.
    Prepared {
        /// `Err` says why there is no sandbox.
        sandbox: Result<(), String>,
    },
    /// Time to look at desired and observed state.
    Reconcile {
        /// Some container start (image, create, start) has not finished.
        starts_in_flight: bool,
    },
    /// The pod is to be deleted with this grace period.
    DeletionRequested {
        /// Time each container gets between SIGTERM and SIGKILL.
        grace: Duration,
    },
    /// Containers, sandbox and files are removed.
    TerminationFinished,
}

/// What the actor does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Take over the containers a previous kubelet left for this pod.
    AdoptExisting,
    /// Report that the sandbox could not be made (and look again later).
    ReportSandboxFailure(String),
    /// Make the sandbox again.
    PrepareSandbox,
    /// Start or restart containers as their slots say.
    SyncContainers,
    /// Stop every container within `grace`, then remove containers, sandbox
    /// and files.
    BeginTermination {
        /// Time each container gets between SIGTERM and SIGKILL.
        grace: Duration,
    },
    /// Tell the owner the pod is gone, and stop.
    Finish,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::Preparing {
            deletion: None,
            adopted: false,
        }
    }
}

impl Lifecycle {
    /// Applies `event` and returns what to do, in order.
    pub fn on(&mut self, event: PodEvent) -> Vec<Effect> {
        match event {
            PodEvent::Prepared { sandbox } => self.on_prepared(sandbox),
            PodEvent::Reconcile { starts_in_flight } => self.on_reconcile(starts_in_flight),
            PodEvent::DeletionRequested { grace } => {
                self.on_deletion(grace);
                Vec::new()
            }
            PodEvent::TerminationFinished => match self {
                Self::Terminating { started: true, .. } => {
                    *self = Self::Terminated;
                    vec![Effect::Finish]
                }
                _ => Vec::new(),
            },
        }
    }

    /// Deletion was asked: new instances are unwanted and probe verdicts no
    /// longer count.
    pub fn deleting(&self) -> bool {
        matches!(
            self,
            Self::Preparing {
                deletion: Some(_),
                ..
            } | Self::Terminating { .. }
                | Self::Terminated
        )
    }

    fn on_prepared(&mut self, sandbox: Result<(), String>) -> Vec<Effect> {
        let Self::Preparing { deletion, adopted } = *self else {
            return Vec::new();
        };
        if let Some(grace) = deletion {
            // Whatever a previous kubelet left goes with the rest.
            *self = Self::Terminating {
                grace,
                started: false,
            };
            return match sandbox {
                Ok(()) => Vec::new(),
                Err(e) => vec![Effect::ReportSandboxFailure(e)],
            };
        }
        let adopt = (!adopted).then_some(Effect::AdoptExisting);
        match sandbox {
            Ok(()) => {
                *self = Self::Running;
                adopt.into_iter().collect()
            }
            Err(e) => {
                *self = Self::SandboxFailed;
                std::iter::once(Effect::ReportSandboxFailure(e))
                    .chain(adopt)
                    .collect()
            }
        }
    }

    fn on_reconcile(&mut self, starts_in_flight: bool) -> Vec<Effect> {
        match self {
            Self::Running => vec![Effect::SyncContainers],
            Self::SandboxFailed => {
                *self = Self::Preparing {
                    deletion: None,
                    adopted: true,
                };
                vec![Effect::PrepareSandbox]
            }
            Self::Terminating { grace, started } if !*started && !starts_in_flight => {
                *started = true;
                vec![Effect::BeginTermination { grace: *grace }]
            }
            _ => Vec::new(),
        }
    }

    /// The first deletion's grace period wins; asking again changes nothing.
    fn on_deletion(&mut self, grace: Duration) {
        match self {
            Self::Preparing {
                deletion: None,
                adopted,
            } => {
                *self = Self::Preparing {
                    deletion: Some(grace),
                    adopted: *adopted,
                }
            }
            Self::Running | Self::SandboxFailed => {
                *self = Self::Terminating {
                    grace,
                    started: false,
                }
            }
            Self::Preparing {
                deletion: Some(_), ..
            }
            | Self::Terminating { .. }
            | Self::Terminated => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: PodEvent = PodEvent::Reconcile {
        starts_in_flight: false,
    };
    const BUSY: PodEvent = PodEvent::Reconcile {
        starts_in_flight: true,
    };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn delete(s: u64) -> PodEvent {
        PodEvent::DeletionRequested { grace: secs(s) }
    }

    fn prepared(sandbox: Result<(), &str>) -> PodEvent {
        PodEvent::Prepared {
            sandbox: sandbox.map_err(String::from),
        }
    }

    fn running() -> Lifecycle {
        let mut pod = Lifecycle::default();
        pod.on(prepared(Ok(())));
        pod
    }

    #[test]
    fn containers_run_once_the_sandbox_is_ready() {
        let mut pod = Lifecycle::default();
        assert_eq!(pod.on(IDLE), [], "nothing starts while preparing");
        assert_eq!(pod.on(prepared(Ok(()))), [Effect::AdoptExisting]);
        assert_eq!(pod, Lifecycle::Running);
        assert_eq!(pod.on(IDLE), [Effect::SyncContainers]);
        assert_eq!(pod.on(BUSY), [Effect::SyncContainers]);
        assert!(!pod.deleting());
    }

    #[test]
    fn deletion_while_preparing_waits_for_the_sandbox_then_removes_it() {
        let mut pod = Lifecycle::default();
        assert_eq!(pod.on(delete(5)), []);
        assert!(pod.deleting());
        assert_eq!(pod.on(IDLE), [], "the sandbox is still being made");
        assert_eq!(
            pod.on(prepared(Ok(()))),
            [],
            "nothing is adopted or started"
        );
        assert_eq!(pod.on(IDLE), [Effect::BeginTermination { grace: secs(5) }]);
        assert_eq!(pod.on(PodEvent::TerminationFinished), [Effect::Finish]);
        assert_eq!(pod, Lifecycle::Terminated);
    }

    #[test]
    fn the_grace_period_asked_is_the_one_used_once_starts_have_finished() {
        let mut pod = running();
        assert_eq!(pod.on(delete(7)), []);
        assert_eq!(pod.on(BUSY), [], "a start in flight is waited for");
        assert_eq!(pod.on(IDLE), [Effect::BeginTermination { grace: secs(7) }]);
        assert_eq!(
            pod,
            Lifecycle::Terminating {
                grace: secs(7),
                started: true
            }
        );
    }

    #[test]
    fn a_sandbox_failure_is_reported_and_nothing_starts() {
        let mut pod = Lifecycle::default();
        assert_eq!(
            pod.on(prepared(Err("no address left"))),
            [
                Effect::ReportSandboxFailure("no address left".into()),
                Effect::AdoptExisting
            ]
        );
        assert_eq!(pod, Lifecycle::SandboxFailed);
        // The next look tries again; what was adopted is not adopted twice.
        assert_eq!(pod.on(IDLE), [Effect::PrepareSandbox]);
        assert_eq!(pod.on(IDLE), [], "nothing starts while retrying");
        assert_eq!(
            pod.on(prepared(Err("still none"))),
            [Effect::ReportSandboxFailure("still none".into())]
        );
        assert_eq!(pod.on(IDLE), [Effect::PrepareSandbox]);
        assert_eq!(pod.on(prepared(Ok(()))), []);
        assert_eq!(pod, Lifecycle::Running);
        assert_eq!(pod.on(IDLE), [Effect::SyncContainers]);

        let mut failed = Lifecycle::default();
        failed.on(prepared(Err("no address left")));
        failed.on(delete(3));
        assert_eq!(
            failed.on(IDLE),
            [Effect::BeginTermination { grace: secs(3) }]
        );
        // A deletion during a retry waits for it, then removes everything.
        let mut retrying = Lifecycle::default();
        retrying.on(prepared(Err("no address left")));
        retrying.on(IDLE);
        retrying.on(delete(2));
        assert_eq!(retrying.on(IDLE), []);
        assert_eq!(retrying.on(prepared(Ok(()))), []);
        assert_eq!(
            retrying.on(IDLE),
            [Effect::BeginTermination { grace: secs(2) }]
        );

        let mut deleted = Lifecycle::default();
        deleted.on(delete(1));
        assert_eq!(
            deleted.on(prepared(Err("no address left"))),
            [Effect::ReportSandboxFailure("no address left".into())]
        );
        assert_eq!(
            deleted.on(IDLE),
            [Effect::BeginTermination { grace: secs(1) }]
        );
    }

    #[test]
    fn terminating_twice_is_idempotent() {
        let mut pod = running();
        pod.on(delete(30));
        assert_eq!(pod.on(delete(1)), [], "the first grace period wins");
        assert_eq!(pod.on(IDLE), [Effect::BeginTermination { grace: secs(30) }]);
        assert_eq!(pod.on(delete(0)), []);
        assert_eq!(pod.on(IDLE), [], "termination begins once");
        assert_eq!(pod.on(PodEvent::TerminationFinished), [Effect::Finish]);
        assert_eq!(pod.on(delete(0)), []);
        assert_eq!(pod.on(IDLE), []);
        assert_eq!(pod.on(PodEvent::TerminationFinished), [], "finishes once");
        assert_eq!(pod, Lifecycle::Terminated);

        let mut early = Lifecycle::default();
        for grace in [4, 9] {
            early.on(delete(grace));
        }
        early.on(prepared(Ok(())));
        let effects = early.on(IDLE);
        assert_eq!(
            effects,
            [Effect::BeginTermination { grace: secs(4) }],
            "the first grace period wins while preparing too"
        );
    }

    #[test]
    fn a_late_or_repeated_preparation_changes_nothing() {
        let mut pod = running();
        assert_eq!(pod.on(prepared(Err("again"))), []);
        assert_eq!(pod, Lifecycle::Running);
        assert_eq!(
            pod.on(PodEvent::TerminationFinished),
            [],
            "only a started termination finishes"
        );
        assert_eq!(pod, Lifecycle::Running);
    }
}
