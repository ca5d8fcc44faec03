//! How the control plane dials kubelets: mutual TLS with its
//! kubelet-client certificate, the kubelet's serving certificate checked
//! against the kubelet-serving CA only (never the cluster CA: an API
//! server certificate is no kubelet's) and for naming the node dialled
//! (`system:node:<name>`), so an endpoint registered by one node never
//! passes for another's. Node actors, logs, exec and port-forward
//! all dial through [`connect`].

use std::sync::{Arc, OnceLock};

use tonic::transport::Channel;

use crate::auth::user::NODE_PREFIX;

/// Set once at start from the control plane's certificates; the node
/// actors, logs, exec and port-forward all dial with it.
static CLIENT_TLS: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

/// Why a kubelet could not be dialled.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// [`configure`] was not called.
    #[error("no client certificate for kubelets is configured")]
    NotConfigured,
    /// The connection or TLS handshake failed.
    #[error(transparent)]
    Connect(#[from] tonic::transport::Error),
}

/// Sets the TLS client configuration kubelets are dialled with.
pub fn configure(config: Arc<rustls::ClientConfig>) {
    let _ = CLIENT_TLS.set(config);
}

/// A channel to the kubelet of `node` at `address` (`host:port`).
pub async fn connect(node: &str, address: &str) -> Result<Channel, DialError> {
    let config = CLIENT_TLS.get().ok_or(DialError::NotConfigured)?.clone();
    Ok(
        skiff_proto::link::connect_tls(address, config, Some(format!("{NODE_PREFIX}{node}")))
            .await?,
    )
}
