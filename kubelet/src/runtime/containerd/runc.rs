//! runc runtime options (`containerd.runc.v1.Options`). containerd-client
//! does not ship this message, so the fields Skiff sets are declared here;
//! the tag numbers are the upstream ones.

use prost_types::Any;

/// The runc v2 shim's runtime name.
pub const RUNTIME_NAME: &str = "io.containerd.runc.v2";

/// Type URL containerd's registry resolves (the bare proto name).
const TYPE_URL: &str = "containerd.runc.v1.Options";

/// A subset of `containerd.runc.v1.Options`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RuncOptions {
    /// Where runc keeps its state. The default, `/run/containerd/runc/<ns>`,
    /// is shared by every containerd on the host; a private one avoids
    /// collisions between Skiff instances.
    #[prost(string, tag = "7")]
    pub root: String,
    /// Use systemd to manage cgroups.
    #[prost(bool, tag = "9")]
    pub systemd_cgroup: bool,
}

impl RuncOptions {
    /// Packs the options as the `Any` that `Container.runtime.options` takes.
    pub fn to_any(&self) -> Any {
        Any {
            type_url: TYPE_URL.to_string(),
            value: prost::Message::encode_to_vec(self),
        }
    }
}
