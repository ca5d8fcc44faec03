//! gRPC plumbing: one channel, the service clients Skiff uses, and requests
//! that carry containerd's namespace (and lease) metadata.

use containerd_client::services::v1::{
    containers_client::ContainersClient, content_client::ContentClient, diff_client::DiffClient,
    images_client::ImagesClient, leases_client::LeasesClient, namespaces_client::NamespacesClient,
    snapshots::snapshots_client::SnapshotsClient, tasks_client::TasksClient,
    version_client::VersionClient,
};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::runtime::{Result, RuntimeError};

/// Metadata key selecting the containerd namespace of a request.
const NAMESPACE_HEADER: &str = "containerd-namespace";
/// Metadata key attaching a request's new resources to a lease (GC protection).
const LEASE_HEADER: &str = "containerd-lease";

/// Cheap to clone: every client shares the one HTTP/2 channel.
#[derive(Clone)]
pub(crate) struct Services {
    namespace: MetadataValue<tonic::metadata::Ascii>,
    pub containers: ContainersClient<Channel>,
    pub content: ContentClient<Channel>,
    pub diff: DiffClient<Channel>,
    pub images: ImagesClient<Channel>,
    pub leases: LeasesClient<Channel>,
    pub namespaces: NamespacesClient<Channel>,
    pub snapshots: SnapshotsClient<Channel>,
    pub tasks: TasksClient<Channel>,
    pub version: VersionClient<Channel>,
}

impl Services {
    pub fn new(channel: Channel, namespace: &str) -> Result<Self> {
        let namespace = namespace.parse().map_err(|_| RuntimeError::InvalidConfig {
            container: String::new(),
            reason: format!("containerd namespace {namespace:?} is not valid metadata"),
        })?;
        // Image import streams whole layers; the default 4 MiB limit is too small.
        const MAX_MESSAGE: usize = 64 * 1024 * 1024;
        Ok(Self {
            namespace,
            containers: ContainersClient::new(channel.clone()),
            content: ContentClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            diff: DiffClient::new(channel.clone()),
            images: ImagesClient::new(channel.clone()),
            leases: LeasesClient::new(channel.clone()),
            namespaces: NamespacesClient::new(channel.clone()),
            snapshots: SnapshotsClient::new(channel.clone()),
            tasks: TasksClient::new(channel.clone()),
            version: VersionClient::new(channel),
        })
    }

    /// A request in Skiff's containerd namespace.
    pub fn req<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        r.metadata_mut()
            .insert(NAMESPACE_HEADER, self.namespace.clone());
        r
    }

    /// A request whose new resources belong to `lease` until referenced.
    pub fn leased<T>(&self, message: T, lease: &str) -> tonic::Request<T> {
        let mut r = self.req(message);
        if let Ok(value) = lease.parse() {
            r.metadata_mut().insert(LEASE_HEADER, value);
        }
        r
    }
}

/// Treats `NotFound` as success (for idempotent cleanup).
pub(crate) fn ignore_not_found<T>(
    r: std::result::Result<T, tonic::Status>,
) -> std::result::Result<(), tonic::Status> {
    match r {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
        Err(s) => Err(s),
    }
}
