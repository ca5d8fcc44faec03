//! Certificate rotation (upstream's kubelet `rotateCertificates` and
//! `serverTLSBootstrap`): at a jittered 70-90 % of the client
//! certificate's lifetime the kubelet makes a new key and asks the
//! control plane (`NodeBootstrap.Renew`, authenticated by its current
//! client certificate) for both certificates again. The new set is kept
//! through the identity journal and then presented from the next TLS
//! handshake on, toward the control plane and on the kubelet's own ports;
//! nothing restarts. A failure is logged, reported as a Warning event on
//! the node, and tried again with a doubling delay.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_bootstrap_client::NodeBootstrapClient;
use tokio::sync::watch;
use tracing::{info, warn};

use super::identity::{self, Credentials, Renewal};
use crate::events::{Event, EventObject};

/// First delay after a failed renewal.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest delay between attempts (upstream's certificate manager backs
/// off to about five minutes).
const RETRY_MAX: Duration = Duration::from_secs(300);

/// When to renew a certificate issued at `issued` and expiring at
/// `not_after`: after `0.7 + 0.2 * jitter` of its lifetime, `jitter` in
/// `[0, 1]`, so that nodes joined together do not all renew at once.
pub fn renewal_time(issued: SystemTime, not_after: SystemTime, jitter: f64) -> SystemTime {
    let lifetime = not_after.duration_since(issued).unwrap_or_default();
    issued + lifetime.mul_f64(0.7 + 0.2 * jitter.clamp(0.0, 1.0))
}

/// The delay after `failures` failed attempts in a row.
pub fn retry_delay(failures: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
        .min(RETRY_MAX)
}

/// A number in `[0, 1]` that differs between processes and calls.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Why a renewal failed.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// Keys, certificates or the files they are kept in.
    #[error(transparent)]
    Pki(#[from] skiff_pki::PkiError),
    /// The control plane could not be reached.
    #[error("cannot reach the control plane at {address}: {why}")]
    Unreachable {
        /// Its address.
        address: String,
        /// Why.
        why: String,
    },
    /// The control plane refused.
    #[error("the control plane refused to renew the node certificates: {0}")]
    Refused(String),
    /// The answer names another cluster CA than the one kept.
    #[error("the control plane answered with another cluster CA")]
    OtherCa,
}

/// What the rotation task needs.
pub struct Rotation {
    /// The kubelet's state folder (its `pki/`).
    pub state_dir: PathBuf,
    /// The control plane's node gRPC address.
    pub control_plane: String,
    /// The node.
    pub node_name: String,
    /// Toward the control plane, presenting `renewal.client`.
    pub client_tls: Arc<rustls::ClientConfig>,
    /// The certificates in use.
    pub renewal: Renewal,
}

impl Rotation {
    /// Renews once: a new key, both certificates for it, kept and put in
    /// use.
    pub async fn renew(&mut self) -> Result<(), RotationError> {
        let (key_pem, public_key_pem) = skiff_pki::ca::new_key_pair()?;
        let channel =
            skiff_proto::link::connect_tls(&self.control_plane, self.client_tls.clone(), None)
                .await
                .map_err(|e| RotationError::Unreachable {
                    address: self.control_plane.clone(),
                    why: format!("{e}: {:?}", std::error::Error::source(&e)),
                })?;
        let response = NodeBootstrapClient::new(channel)
            .renew(pb::RenewRequest {
                node_name: self.node_name.clone(),
                public_key_pem,
                serving_names: self.renewal.serving_names.clone(),
            })
            .await
            .map_err(|s| match s.code() {
                tonic::Code::Unavailable => RotationError::Unreachable {
                    address: self.control_plane.clone(),
                    why: s.message().to_string(),
                },
                _ => RotationError::Refused(s.message().to_string()),
            })?
            .into_inner();
        let kept = &self.renewal.creds;
        if skiff_pki::ca::hash_of_pem(&response.ca_cert_pem)?
            != skiff_pki::ca::hash_of_pem(&kept.ca_pem)?
        {
            return Err(RotationError::OtherCa);
        }
        let creds = Credentials {
            ca_pem: kept.ca_pem.clone(),
            key_pem,
            client_cert_pem: response.client_cert_pem,
            serving_cert_pem: response.serving_cert_pem,
            serving_ca_pem: response.kubelet_serving_ca_pem,
        };
        // Checked before anything changes: a pair that does not load
        // leaves the old one kept and in use.
        for cert in [&creds.client_cert_pem, &creds.serving_cert_pem] {
            skiff_pki::rotating::Rotating::new(cert, &creds.key_pem)?;
        }
        identity::save(&self.state_dir, &creds)?;
        self.renewal
            .client
            .set(&creds.client_cert_pem, &creds.key_pem)?;
        if let Some(serving) = &self.renewal.serving {
            serving.set(&creds.serving_cert_pem, &creds.key_pem)?;
        }
        self.renewal.creds = creds;
        Ok(())
    }

    /// When the certificates in use are due.
    fn due(&self) -> SystemTime {
        match skiff_pki::rotating::lifetime(&self.renewal.creds.client_cert_pem) {
            Ok((issued, not_after)) => renewal_time(issued, not_after, jitter()),
            // Unreadable (cannot be: it was loaded): renew now.
            Err(_) => SystemTime::now(),
        }
    }

    /// Renews whenever due until `stopped`; failures are reported through
    /// `events`.
    pub fn spawn(
        mut self,
        events: impl Fn(Event) + Send + 'static,
        mut stopped: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let wait = if failures == 0 {
                    let due = self.due();
                    info!(node = %self.node_name, in_seconds = due.duration_since(SystemTime::now()).unwrap_or_default().as_secs(), "node certificate renewal scheduled");
                    due.duration_since(SystemTime::now()).unwrap_or_default()
                } else {
                    retry_delay(failures)
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopped.wait_for(|s| *s) => return,
                }
                match self.renew().await {
                    Ok(()) => {
                        failures = 0;
                        let serial =
                            skiff_pki::rotating::serial(&self.renewal.creds.client_cert_pem)
                                .unwrap_or_default();
                        info!(node = %self.node_name, %serial, "node certificates renewed");
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let retry = retry_delay(failures);
                        warn!(node = %self.node_name, error = %e, retry_in = ?retry, "renewing the node certificates failed");
                        events(Event {
                            object: EventObject::Node(self.node_name.clone()),
                            field_path: None,
                            warning: true,
                            reason: "FailedCertificateRotation".into(),
                            message: format!("renewing the node certificates failed: {e}"),
                            time: chrono::Utc::now(),
                        });
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_falls_between_70_and_90_percent_of_the_lifetime() {
        let issued = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let not_after = issued + Duration::from_secs(1000);
        let at = |j| {
            renewal_time(issued, not_after, j)
                .duration_since(issued)
                .expect("after issue")
                .as_secs()
        };
        assert_eq!(at(0.0), 700);
        assert_eq!(at(0.5), 800);
        assert_eq!(at(1.0), 900);
        // Out-of-range jitter is clamped; an inverted span renews now.
        assert_eq!(at(-3.0), 700);
        assert_eq!(at(7.0), 900);
        assert_eq!(renewal_time(not_after, issued, 0.5), not_after);
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..=1.0).contains(&j), "{j}");
        }
        let spread: std::collections::BTreeSet<u64> =
            (0..20).map(|_| (jitter() * 1000.0) as u64).collect();
        assert!(spread.len() > 1, "jitter does not vary");
    }

    #[test]
    fn retries_back_off_to_a_bound() {
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(2), Duration::from_secs(2));
        assert_eq!(retry_delay(4), Duration::from_secs(8));
        assert_eq!(retry_delay(20), RETRY_MAX);
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
    }
}
