//! Signing, as upstream's `csrsigning` controller: an approved request
//! with no certificate yet, for a signer Skiff holds (the cluster CA for
//! `kube-apiserver-client` and `kube-apiserver-client-kubelet`, the
//! kubelet-serving CA for `kubelet-serving`), gets `status.certificate`,
//! or a `Failed` condition (`SignerValidationFailure`) when it does not
//! fit the signer's rules. Requests for other signers stay pending: some
//! other signer may handle them.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use skiff_pki::ca::{self, Ca, Usage};
use skiff_pki::csr::Csr;
use tracing::{info, warn};

use super::{
    CsrName, KUBE_APISERVER_CLIENT, KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING,
    kubelet_client_errors, usages,
};
use crate::controllers::runtime::{self, Reconciler, Trigger};
use crate::registry::kinds::{self, certificates as csrs};
use crate::registry::objects::Objects;
use crate::store::{Event, StoreError};

// The flag's syntax and default live with the certificates, where the
// `skiff` command reads them too.
pub use skiff_pki::signing::{DEFAULT_DURATION, parse_duration};

/// Where the signing keys are and the longest certificate they sign.
#[derive(Debug, Clone)]
pub struct SigningConfig {
    /// The PKI folder (cluster CA, kubelet-serving CA).
    pub pki_dir: PathBuf,
    /// `--cluster-signing-duration`.
    pub duration: Duration,
}

static CONFIG: OnceLock<SigningConfig> = OnceLock::new();

/// Sets the signing configuration (once, at start; none: no signing).
pub fn configure(config: SigningConfig) {
    let _ = CONFIG.set(config);
}

/// The configuration set at start.
pub fn config() -> Option<&'static SigningConfig> {
    CONFIG.get()
}

/// The CAs that sign.
pub struct Keys {
    cluster: Ca,
    kubelet_serving: Ca,
    duration: Duration,
}

impl Keys {
    /// Loads both CAs from `config`.
    pub fn load(config: &SigningConfig) -> Result<Self, skiff_pki::PkiError> {
        Ok(Self::new(
            Ca::load_as(&config.pki_dir, ca::CLUSTER)?,
            Ca::load_as(&config.pki_dir, ca::KUBELET_SERVING)?,
            config.duration,
        ))
    }

    /// From CAs at hand (tests).
    pub fn new(cluster: Ca, kubelet_serving: Ca, duration: Duration) -> Self {
        Self {
            cluster,
            kubelet_serving,
            duration,
        }
    }
}

/// The reconciler.
pub struct Signer {
    objects: Objects,
    keys: Option<Keys>,
}

impl Signer {
    /// Signs with `keys` (none: a control plane without CAs signs nothing).
    pub fn new(objects: Objects, keys: Option<Keys>) -> Self {
        Self { objects, keys }
    }

    /// With the keys of [`config`], if set and readable.
    pub fn configured(objects: Objects) -> Self {
        let keys = config().and_then(|c| match Keys::load(c) {
            Ok(keys) => Some(keys),
            Err(e) => {
                warn!(error = %e, "CSR signing disabled: the CAs do not load");
                None
            }
        });
        Self::new(objects, keys)
    }
}

/// What the signer decides for a request.
#[derive(Debug)]
enum Decision {
    /// Not this signer's (or not approved, or done): nothing.
    Skip,
    /// Does not fit the signer: the Failed condition's message.
    Fail(String),
    /// Sign with this usage, for this long.
    Sign(Usage, Duration),
}

/// Upstream's `validAPIServerClientUsages`.
fn client_usage_errors(usages: &[&str]) -> Option<String> {
    for u in usages {
        if !["digital signature", "key encipherment", "client auth"].contains(u) {
            return Some(format!("invalid usage for client certificate: {u}"));
        }
    }
    (!usages.contains(&"client auth"))
        .then(|| "missing required usage for client certificate: client auth".to_string())
}

/// Upstream's `ValidateKubeletServingCSR`.
fn kubelet_serving_errors(csr: &Csr, usages: &[&str]) -> Option<String> {
    if csr.organizations != [crate::auth::user::NODES] {
        return Some("subject organization is not system:nodes".into());
    }
    if !csr.common_name.starts_with(crate::auth::user::NODE_PREFIX) {
        return Some("subject common name does not begin with system:node:".into());
    }
    if csr.alt_names.is_empty() {
        return Some("DNS or IP subjectAltName is required".into());
    }
    let allowed = ["digital signature", "key encipherment", "server auth"];
    if !usages.contains(&"server auth") || usages.iter().any(|u| !allowed.contains(u)) {
        return Some(format!("usages did not match [{}]", allowed.join(" ")));
    }
    None
}

fn decide(obj: &Value, csr: &Csr, longest: Duration) -> Decision {
    let done = csrs::certificate(obj).is_some()
        || csrs::has_condition(obj, csrs::FAILED)
        || csrs::has_condition(obj, csrs::DENIED);
    if done || !csrs::has_condition(obj, csrs::APPROVED) {
        return Decision::Skip;
    }
    let usages = usages(obj);
    let signer = obj
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let refused = match signer {
        KUBE_APISERVER_CLIENT => client_usage_errors(&usages),
        KUBE_APISERVER_CLIENT_KUBELET => kubelet_client_errors(csr, &usages),
        KUBELET_SERVING => kubelet_serving_errors(csr, &usages),
        _ => return Decision::Skip,
    };
    if let Some(why) = refused {
        return Decision::Fail(why);
    }
    let asked = obj
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_u64)
        .map(Duration::from_secs)
        .unwrap_or(longest);
    let usage = if signer == KUBELET_SERVING {
        Usage::Server {
            names: csr.alt_names.clone(),
        }
    } else {
        Usage::Client
    };
    Decision::Sign(usage, asked.min(longest))
}

impl Reconciler for Signer {
    type Key = CsrName;
    type Change = Infallible;
    type Error = StoreError;
    const NAME: &'static str = "csrsigning";

    fn watches(&self) -> Result<Vec<String>, StoreError> {
        Ok(vec![kinds::CERTIFICATESIGNINGREQUESTS.prefix()])
    }

    fn decode(_: usize, event: Option<&Event>) -> Option<Trigger<CsrName, Infallible>> {
        super::decode(event)
    }

    async fn list(&mut self) -> Result<Vec<CsrName>, StoreError> {
        super::names(&self.objects).await
    }

    async fn reconcile(&mut self, key: &CsrName) -> Result<runtime::Action, StoreError> {
        let Some(keys) = &self.keys else {
            return Ok(runtime::Action::await_change());
        };
        let rt = kinds::CERTIFICATESIGNINGREQUESTS;
        let Some(obj) = self.objects.find(rt, None, &key.0).await? else {
            return Ok(runtime::Action::await_change());
        };
        // Stored requests passed validation; one that does not parse now is
        // nothing a signer can act on.
        let Some(csr) = csrs::request_pem(&obj).and_then(|p| skiff_pki::csr::parse(&p).ok()) else {
            return Ok(runtime::Action::await_change());
        };
        let now = crate::registry::meta::now();
        let change: Box<dyn Fn(&mut Value) + Send + Sync> = match decide(&obj, &csr, keys.duration)
        {
            Decision::Skip => return Ok(runtime::Action::await_change()),
            Decision::Fail(message) => {
                info!(csr = %key.0, %message, "request does not fit its signer");
                Box::new(move |c: &mut Value| {
                    let condition = json!({
                        "type": csrs::FAILED, "status": "True",
                        "reason": "SignerValidationFailure", "message": message,
                        "lastUpdateTime": now, "lastTransitionTime": now,
                    });
                    match c["status"]["conditions"].as_array_mut() {
                        Some(list) => list.push(condition),
                        None => c["status"]["conditions"] = json!([condition]),
                    }
                })
            }
            Decision::Sign(usage, valid_for) => {
                let ca = match usage {
                    Usage::Server { .. } => &keys.kubelet_serving,
                    Usage::Client => &keys.cluster,
                };
                let pem = match ca.sign_csr(&csr, usage, valid_for) {
                    Ok(pem) => pem,
                    Err(e) => {
                        warn!(csr = %key.0, error = %e, "signing failed");
                        return Ok(runtime::Action::requeue(Duration::from_secs(10)));
                    }
                };
                let encoded = base64::engine::general_purpose::STANDARD.encode(pem);
                info!(csr = %key.0, "signed");
                Box::new(move |c: &mut Value| c["status"]["certificate"] = json!(encoded))
            }
        };
        self.objects
            .update(rt, None, &key.0, |c| {
                // Someone else finished it in between.
                if csrs::certificate(c).is_some() || csrs::has_condition(c, csrs::FAILED) {
                    return false;
                }
                change(c);
                true
            })
            .await?;
        Ok(runtime::Action::await_change())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn csr_object(signer: &str, cn: &str, org: &[&str], usages: &[&str], secs: i64) -> Value {
        let (_, pem) = skiff_pki::csr::new_request(cn, org).expect("csr");
        json!({
            "metadata": {"name": "john"},
            "spec": {
                "request": base64::engine::general_purpose::STANDARD.encode(pem),
                "signerName": signer, "usages": usages, "expirationSeconds": secs,
                "username": "kubernetes-admin",
            },
            "status": {"conditions": [{"type": "Approved", "status": "True"}]},
        })
    }

    fn keys(dir: &Path) -> Keys {
        Keys::new(
            Ca::load_or_create_as(dir, ca::CLUSTER).expect("ca"),
            Ca::load_or_create_as(dir, ca::KUBELET_SERVING).expect("serving ca"),
            Duration::from_secs(3600),
        )
    }

    async fn signed(obj: Value) -> Value {
        let dir = tempfile::tempdir().expect("dir");
        let objects = Objects::in_memory();
        let rt = kinds::CERTIFICATESIGNINGREQUESTS;
        objects.create(rt, obj).await.expect("create");
        let mut signer = Signer::new(objects.clone(), Some(keys(dir.path())));
        signer
            .reconcile(&CsrName("john".into()))
            .await
            .expect("reconcile");
        objects.get(rt, None, "john").await.expect("get")
    }

    #[tokio::test]
    async fn an_approved_client_request_is_signed_for_the_shorter_duration() {
        let obj = csr_object(
            KUBE_APISERVER_CLIENT,
            "john",
            &["devs"],
            &["client auth"],
            86400,
        );
        let stored = signed(obj).await;
        let pem = base64::engine::general_purpose::STANDARD
            .decode(csrs::certificate(&stored).expect("issued"))
            .expect("base64");
        let certs = skiff_pki::pem::certificates(std::str::from_utf8(&pem).expect("utf8"), "cert")
            .expect("pem");
        let not_after = skiff_pki::identity::not_after(&certs[0]).expect("validity");
        let lifetime = not_after - time_now();
        assert!(
            lifetime <= 3600 && lifetime > 3500,
            "capped by the flag: {lifetime}"
        );
        let identity = skiff_pki::identity::subject(&certs[0]).expect("subject");
        assert_eq!(identity.name, "john");
        assert_eq!(identity.groups, vec!["devs".to_string()]);
    }

    #[tokio::test]
    async fn a_certificate_ends_with_its_ca_at_the_latest() {
        let dir = tempfile::tempdir().expect("dir");
        let ten_minutes = Duration::from_secs(600);
        let cluster = Ca::create_as(dir.path(), ca::CLUSTER, ten_minutes).expect("ca");
        let ca_end = cluster.not_after().unix_timestamp();
        let serving = Ca::load_or_create_as(dir.path(), ca::KUBELET_SERVING).expect("ca");
        // The flag and the request both ask for more than the CA has left.
        let keys = Keys::new(cluster, serving, DEFAULT_DURATION);
        let objects = Objects::in_memory();
        let rt = kinds::CERTIFICATESIGNINGREQUESTS;
        let obj = csr_object(
            KUBE_APISERVER_CLIENT,
            "john",
            &["devs"],
            &["client auth"],
            86400,
        );
        objects.create(rt, obj).await.expect("create");
        let mut signer = Signer::new(objects.clone(), Some(keys));
        signer
            .reconcile(&CsrName("john".into()))
            .await
            .expect("reconcile");
        let stored = objects.get(rt, None, "john").await.expect("get");
        let pem = base64::engine::general_purpose::STANDARD
            .decode(csrs::certificate(&stored).expect("issued"))
            .expect("base64");
        let certs = skiff_pki::pem::certificates(std::str::from_utf8(&pem).expect("utf8"), "cert")
            .expect("pem");
        assert_eq!(
            skiff_pki::identity::not_after(&certs[0]).expect("validity"),
            ca_end
        );
    }

    fn time_now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn requests_that_do_not_fit_fail_and_unknown_signers_wait() {
        let bad_usage = csr_object(KUBE_APISERVER_CLIENT, "john", &[], &["server auth"], 3600);
        let stored = signed(bad_usage).await;
        assert!(csrs::has_condition(&stored, csrs::FAILED));
        assert!(csrs::certificate(&stored).is_none());
        let not_a_node = csr_object(
            KUBE_APISERVER_CLIENT_KUBELET,
            "john",
            &["system:nodes"],
            &["digital signature", "client auth"],
            3600,
        );
        let stored = signed(not_a_node).await;
        let message = stored["status"]["conditions"][1]["message"].clone();
        assert_eq!(
            message,
            "subject common name does not begin with system:node:"
        );
        let other = csr_object("example.com/mine", "john", &[], &["client auth"], 3600);
        let stored = signed(other).await;
        assert!(!csrs::has_condition(&stored, csrs::FAILED));
        assert!(csrs::certificate(&stored).is_none());
    }
}
