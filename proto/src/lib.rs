//! Skiff's own gRPC contracts.
//!
//! Generated code is confined to versioned modules (`node::v1`) so a future
//! `v2` can live next to it while nodes upgrade. `tonic` and `prost` are
//! re-exported so every crate uses the same versions as the generated code.

pub use prost;
pub use tonic;

/// The node <-> control plane contract (`skiff.node.v1`).
pub mod node {
    /// Version 1 of the contract.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic)] // generated code
        tonic::include_proto!("skiff.node.v1");
    }

    /// A pod pushed to a node carries, in this annotation of its
    /// `pod_json`, the node-local volumes its `persistentVolumeClaim`
    /// volumes are bound to: a JSON object from the pod's volume name to
    /// the volume's handle, the name of its directory under the node's
    /// `<state-dir>/volumes/`. The control plane resolves claim → volume
    /// and sets it on what it sends; it is never stored in the API.
    pub const LOCAL_VOLUMES_ANNOTATION: &str = "node.skiff.io/local-volumes";
}

/// How either side dials the other. Nodes and the control plane talk over
/// long-lived streams (heartbeats, pod reports); on a partition those streams
/// go silent rather than fail, and a reconnect stuck in TCP's SYN back-off
/// can take minutes. HTTP/2 pings notice a dead peer within seconds and a
/// short connect timeout keeps retries quick, so a healed node returns at once.
pub mod link;

#[cfg(test)]
mod tests {
    use super::node::v1::{NodeReport, PodAssignment, PodSet, node_report};
    use prost::Message;

    #[test]
    fn pod_sets_and_reports_round_trip_through_the_wire_format() {
        let set = PodSet {
            pods: vec![PodAssignment {
                pod_uid: "uid-1".into(),
                resource_version: "42".into(),
                pod_json: br#"{"kind":"Pod"}"#.to_vec(),
            }],
        };
        let decoded = PodSet::decode(set.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(decoded, set);
        let report = NodeReport {
            report: Some(node_report::Report::Synced(true)),
        };
        let decoded = NodeReport::decode(report.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(decoded, report);
    }
}
