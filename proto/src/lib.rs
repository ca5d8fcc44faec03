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
    use super::node::v1::{AssignPod, Desired, PodSet, desired};
    use prost::Message;

    #[test]
    fn full_pod_set_round_trips_through_the_wire_format() {
        let msg = Desired {
            change: Some(desired::Change::PodSet(PodSet {
                full: true,
                pods: vec![AssignPod {
                    pod_uid: "uid-1".into(),
                    resource_version: "42".into(),
                    pod_json: br#"{"kind":"Pod"}"#.to_vec(),
                }],
            })),
        };
        let bytes = msg.encode_to_vec();
        let decoded = Desired::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(decoded, msg);
    }
}
