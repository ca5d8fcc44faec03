//! Pod phase and conditions, derived from container statuses exactly as the
//! upstream kubelet derives them (`getPhase`, `GeneratePodReadyCondition`).

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodIP, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::restart_policy::RestartPolicy;

/// A Kubernetes `Time` (k8s-openapi uses jiff) from a chrono time.
pub fn k8s_time(t: DateTime<Utc>) -> Time {
    let ts = k8s_openapi::jiff::Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    Time(ts)
}

/// Pod phase from its containers' statuses (upstream `getPhase`).
pub fn phase(statuses: &[ContainerStatus], policy: RestartPolicy) -> &'static str {
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.waiting.is_some() {
            // A container waiting to restart has run before: it counts as stopped.
            match s.last_state.as_ref().and_then(|l| l.terminated.as_ref()) {
                Some(last) => {
                    stopped += 1;
                    if last.exit_code == 0 {
                        succeeded += 1;
                    }
                }
                None => waiting += 1,
            }
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        if policy == RestartPolicy::Always {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == RestartPolicy::Never {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn condition(kind: &str, ok: bool, reason: Option<&str>, since: DateTime<Utc>) -> PodCondition {
    PodCondition {
        type_: kind.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: if ok { None } else { reason.map(String::from) },
        last_transition_time: Some(k8s_time(since)),
        last_probe_time: None,
        ..PodCondition::default()
    }
}

/// Inputs to a pod's status besides its containers.
#[derive(Debug, Clone)]
pub struct PodFacts {
    /// `restartPolicy`.
    pub policy: RestartPolicy,
    /// When the kubelet accepted the pod.
    pub start_time: DateTime<Utc>,
    /// The sandbox (network namespace, hosts file) exists.
    pub sandbox_ready: bool,
    /// Pod IP, when the pod network gives one.
    pub pod_ip: Option<String>,
    /// Node address.
    pub host_ip: Option<String>,
    /// Earlier conditions, to keep their transition times.
    pub previous: Option<PodStatus>,
}

/// Keeps a condition's `lastTransitionTime` while its status is unchanged.
fn keep_transition_time(mut c: PodCondition, previous: &Option<PodStatus>) -> PodCondition {
    if let Some(old) = previous
        .as_ref()
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|o| o.type_ == c.type_))
        && old.status == c.status
    {
        c.last_transition_time = old.last_transition_time.clone();
    }
    c
}

/// The whole `PodStatus`.
pub fn pod_status(containers: Vec<ContainerStatus>, facts: &PodFacts) -> PodStatus {
    let now = Utc::now();
    let phase = phase(&containers, facts.policy);
    let all_ready = !containers.is_empty() && containers.iter().all(|c| c.ready);
    let not_ready: Vec<&str> = containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let terminal = phase == "Succeeded" || phase == "Failed";
    let mut conditions = vec![
        condition(
            "PodReadyToStartContainers",
            facts.sandbox_ready && !terminal,
            None,
            now,
        ),
        condition("Initialized", true, None, now),
        condition(
            "Ready",
            all_ready,
            Some(if terminal {
                "PodCompleted"
            } else {
                "ContainersNotReady"
            }),
            now,
        ),
        condition(
            "ContainersReady",
            all_ready,
            Some(if terminal {
                "PodCompleted"
            } else {
                "ContainersNotReady"
            }),
            now,
        ),
        condition("PodScheduled", true, None, now),
    ];
    for c in &mut conditions {
        if (c.type_ == "Ready" || c.type_ == "ContainersReady") && c.status == "False" && !terminal
        {
            c.message = Some(format!(
                "containers with unready status: [{}]",
                not_ready.join(" ")
            ));
        }
    }
    let conditions = conditions
        .into_iter()
        .map(|c| keep_transition_time(c, &facts.previous))
        .collect();
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        container_statuses: Some(containers),
        start_time: Some(k8s_time(facts.start_time)),
        pod_ip: facts.pod_ip.clone(),
        pod_ips: facts.pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        host_ip: facts.host_ip.clone(),
        qos_class: Some("BestEffort".into()),
        ..PodStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    };

    fn status(state: ContainerState, last_exit: Option<i32>) -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            state: Some(state),
            last_state: Some(ContainerState {
                terminated: last_exit.map(|code| ContainerStateTerminated {
                    exit_code: code,
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }
    }

    fn running() -> ContainerState {
        ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..ContainerState::default()
        }
    }

    fn terminated(code: i32) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        }
    }

    fn waiting(reason: &str) -> ContainerState {
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message: None,
            }),
            ..ContainerState::default()
        }
    }

    #[test]
    fn phases_follow_upstream_get_phase() {
        use RestartPolicy::*;
        assert_eq!(
            phase(&[status(waiting("ContainerCreating"), None)], Always),
            "Pending"
        );
        assert_eq!(phase(&[status(running(), None)], Never), "Running");
        assert_eq!(phase(&[status(terminated(0), None)], Never), "Succeeded");
        assert_eq!(phase(&[status(terminated(1), None)], Never), "Failed");
        assert_eq!(
            phase(&[status(terminated(0), None)], OnFailure),
            "Succeeded"
        );
        assert_eq!(
            phase(&[status(waiting("CrashLoopBackOff"), Some(1))], OnFailure),
            "Running"
        );
        assert_eq!(
            phase(&[status(waiting("CrashLoopBackOff"), Some(1))], Always),
            "Running"
        );
        assert_eq!(
            phase(&[status(waiting("CrashLoopBackOff"), Some(0))], Always),
            "Running"
        );
        assert_eq!(
            phase(
                &[status(running(), None), status(terminated(1), None)],
                Never
            ),
            "Running"
        );
        assert_eq!(
            phase(
                &[status(terminated(0), None), status(terminated(1), None)],
                Never
            ),
            "Failed"
        );
    }

    #[test]
    fn ready_needs_every_container_ready() {
        let facts = PodFacts {
            policy: RestartPolicy::Always,
            start_time: Utc::now(),
            sandbox_ready: true,
            pod_ip: None,
            host_ip: None,
            previous: None,
        };
        let mut a = status(running(), None);
        a.ready = true;
        let b = status(waiting("CrashLoopBackOff"), Some(1));
        let st = pod_status(vec![a.clone(), b], &facts);
        let ready = st
            .conditions
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready").cloned())
            .expect("Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [c]")
        );
        let st = pod_status(vec![a], &facts);
        let ready = st
            .conditions
            .and_then(|cs| cs.into_iter().find(|c| c.type_ == "Ready"))
            .expect("Ready");
        assert_eq!(ready.status, "True");
    }
}
