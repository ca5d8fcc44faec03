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
}

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
