//! The `skiff.node.v1.NodeBootstrap` service: a kubelet trades a bootstrap
//! token and its public key for its node certificates (upstream's kubelet
//! TLS bootstrap with kubeadm's token, in one call).
//!
//! Tokens are Secrets as upstream keeps them: `kube-system/
//! bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token` with
//! `token-id`, `token-secret`, `expiration` (RFC 3339, optional) and
//! `usage-bootstrap-authentication: "true"`; deleting the Secret revokes
//! the token. As upstream, a valid token may get a certificate for any
//! node name, also one already registered: the token is the cluster's
//! trust in whoever holds it. What a node certificate may then do is
//! limited to its own node ([`super::identity`]).
//!
//! `Renew` (upstream's kubelet certificate rotation, without CSR objects)
//! takes no token: the caller's current client certificate, verified and
//! unexpired at the TLS handshake, must name the node it renews, and the
//! new certificates pass the same checks as Join's. Both last
//! `--cluster-signing-duration`.
//!
//! The two certificates come from two CAs: the client certificate from
//! the cluster CA (the API and the node port know nodes by it), the
//! serving certificate from the kubelet-serving CA, which only the control
//! plane's client of kubelets trusts. A node names its serving
//! certificate's hosts itself, so a cluster-CA signature on it would let
//! any token holder pass for the API server to every API client. As
//! upstream's `kubernetes.io/kubelet-serving` signer requires of a CSR,
//! the serving certificate names `system:node:<name>` in `system:nodes`,
//! has at least one DNS name or IP address and no other kind of name, and
//! is for server auth (digital signature, key encipherment) only.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use skiff_pki::ca::{Ca, Request as CertRequest, Usage};
use skiff_pki::token::{BootstrapToken, SECRET_TYPE, TokenSecret, USAGE_AUTHENTICATION, keys};
use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_bootstrap_server::{NodeBootstrap, NodeBootstrapServer};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::auth::user::{NODE_PREFIX, NODES};
use crate::registry::objects::Objects;
use crate::store::StoreError;

/// Node certificates last a year unless `--cluster-signing-duration`
/// says otherwise (upstream's default for that flag, 8760h).
pub const NODE_CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// Where bootstrap tokens live.
pub const TOKEN_NAMESPACE: &str = skiff_pki::token::NAMESPACE;

/// Why a token is not accepted (logged; the caller learns only that it
/// was not).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// No Secret for the token's id.
    #[error("no bootstrap token Secret {0}")]
    Missing(String),
    /// The Secret is not a usable bootstrap token.
    #[error("Secret {name}: {why}")]
    Unusable {
        /// The Secret.
        name: String,
        /// Why.
        why: String,
    },
    /// The secret part differs.
    #[error("the token's secret does not match {0}")]
    Mismatch(String),
    /// Past `expiration`.
    #[error("bootstrap token {0} expired at {1}")]
    Expired(String, String),
}

/// Checks `token` against its stored Secret `secret` at `now`.
pub fn check(
    token: &BootstrapToken,
    secret: &Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), TokenError> {
    let name = token.secret_name();
    let unusable = |why: &str| TokenError::Unusable {
        name: name.clone(),
        why: why.into(),
    };
    if secret["type"] != SECRET_TYPE {
        return Err(unusable("not of type bootstrap.kubernetes.io/token"));
    }
    let field = |key: &str| -> Option<Vec<u8>> {
        let encoded = secret["data"][key].as_str()?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
    };
    if field(keys::TOKEN_ID).as_deref() != Some(token.id.as_bytes()) {
        return Err(unusable("its token-id is not the token's id"));
    }
    let usage = format!("{}{USAGE_AUTHENTICATION}", keys::USAGE_PREFIX);
    if field(&usage).as_deref() != Some(b"true".as_slice()) {
        return Err(unusable("usage-bootstrap-authentication is not \"true\""));
    }
    let Some(stored) = field(keys::TOKEN_SECRET) else {
        return Err(unusable("no token-secret"));
    };
    if !token.secret_matches(&stored) {
        return Err(TokenError::Mismatch(name));
    }
    if let Some(expiration) = field(keys::EXPIRATION) {
        let text = String::from_utf8_lossy(&expiration).to_string();
        let at = chrono::DateTime::parse_from_rfc3339(&text)
            .map_err(|_| unusable("expiration is not an RFC 3339 time"))?;
        if at <= now {
            return Err(TokenError::Expired(token.id.clone(), text));
        }
    }
    Ok(())
}

/// A bootstrap token Secret as upstream writes it, valid until
/// `expiration` (none: forever), for joining nodes.
pub fn token_secret(
    token: &BootstrapToken,
    expiration: Option<chrono::DateTime<chrono::Utc>>,
    description: &str,
) -> Value {
    let content = TokenSecret {
        token: token.clone(),
        expiration: expiration.map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        usages: vec![USAGE_AUTHENTICATION.into()],
        groups: Vec::new(),
        description: description.into(),
    };
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": token.secret_name(), "namespace": TOKEN_NAMESPACE},
        "type": SECRET_TYPE,
        "stringData": content.string_data(),
    })
}

/// Whether `name` is a valid node name (a DNS subdomain, as upstream
/// validates Node names).
fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Most names a serving certificate is issued for. A kubelet asks for its
/// node name and an address or two; the bound keeps a token holder from
/// having the CA sign a certificate of any size.
pub const MAX_SERVING_NAMES: usize = 32;

/// Whether `name` may be a subject alternative name of a node's serving
/// certificate: an IP address or a DNS subdomain as node names are.
/// Wildcards are refused: upstream's kubelet-serving certificates wait for
/// an approver, Skiff signs at once, so it signs only names that name one
/// host.
fn valid_serving_name(name: &str) -> bool {
    name.parse::<std::net::IpAddr>().is_ok() || valid_node_name(name)
}

/// The API server's own names, which no node's serving certificate may
/// carry (defence in depth: the kubelet-serving CA already keeps such a
/// certificate from passing for the API server).
#[derive(Debug, Clone, Default)]
pub struct ApiNames {
    /// `kubernetes`, `kubernetes.default`, `kubernetes.default.svc`,
    /// `kubernetes.default.svc.<cluster domain>` and the `kubernetes`
    /// Service's ClusterIP.
    pub reserved: Vec<String>,
    /// The address the API is advertised at. A node joining from that
    /// very address (a kubelet on the control plane's machine, as on
    /// kubeadm's control-plane node) is that host and may name it; any
    /// other may not.
    pub advertised: Option<std::net::IpAddr>,
}

impl ApiNames {
    /// The names of an API server in `domain` whose `kubernetes` Service
    /// has `service_ip`, advertised at `advertised`.
    pub fn new(
        domain: &str,
        service_ip: std::net::IpAddr,
        advertised: Option<std::net::IpAddr>,
    ) -> Self {
        Self {
            reserved: vec![
                "kubernetes".into(),
                "kubernetes.default".into(),
                "kubernetes.default.svc".into(),
                format!("kubernetes.default.svc.{domain}"),
                service_ip.to_string(),
            ],
            advertised,
        }
    }

    /// Whether a node joining from `remote` may not name `name`.
    fn refuses(&self, name: &str, remote: Option<std::net::IpAddr>) -> bool {
        let ip = name.parse::<std::net::IpAddr>().ok();
        // Compared as addresses: `::ffff:10.96.0.1` or `0:0::1` are the
        // same host as their canonical spelling.
        let canonical = |ip: std::net::IpAddr| ip.to_canonical();
        let reserved =
            self.reserved
                .iter()
                .any(|r| match (ip, r.parse::<std::net::IpAddr>().ok()) {
                    (Some(a), Some(b)) => canonical(a) == canonical(b),
                    (None, None) => r == name,
                    _ => false,
                });
        let advertised = match (ip, self.advertised) {
            (Some(a), Some(b)) => {
                canonical(a) == canonical(b) && remote.map(canonical) != Some(canonical(b))
            }
            _ => false,
        };
        reserved || advertised
    }
}

/// The service implementation.
pub struct Bootstrap {
    objects: Objects,
    /// Signs the client certificate.
    ca: Arc<Ca>,
    /// Signs the serving certificate.
    serving_ca: Arc<Ca>,
    api_names: ApiNames,
    /// How long the certificates it signs last.
    validity: Duration,
}

impl Bootstrap {
    /// Joins nodes against tokens in `objects`: client certificates from
    /// the cluster `ca`, serving certificates from `serving_ca` (the
    /// kubelet-serving CA) never naming one of `api_names`.
    /// Certificates last `validity` (`--cluster-signing-duration`).
    pub fn server(
        objects: Objects,
        ca: Arc<Ca>,
        serving_ca: Arc<Ca>,
        api_names: ApiNames,
        validity: Duration,
    ) -> NodeBootstrapServer<Self> {
        NodeBootstrapServer::new(Self {
            objects,
            ca,
            serving_ca,
            api_names,
            validity,
        })
    }

    async fn authenticate(&self, token: &BootstrapToken) -> Result<(), TokenError> {
        let rt = crate::registry::kinds::SECRETS;
        let name = token.secret_name();
        let secret = match self.objects.get(rt, Some(TOKEN_NAMESPACE), &name).await {
            Ok(secret) => secret,
            Err(StoreError::NotFound(_)) => return Err(TokenError::Missing(name)),
            Err(e) => {
                return Err(TokenError::Unusable {
                    name,
                    why: e.to_string(),
                });
            }
        };
        check(token, &secret, chrono::Utc::now())
    }
}

#[tonic::async_trait]
impl NodeBootstrap for Bootstrap {
    async fn join(
        &self,
        request: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinResponse>, Status> {
        let remote = skiff_proto::link::PeerInfo::of(&request).remote;
        let r = request.into_inner();
        // Upstream's bootstrap authenticator answers every bad token the
        // same way; the reason goes to the log only.
        let token = BootstrapToken::parse(&r.token)
            .map_err(|_| Status::unauthenticated("Unauthorized: invalid bootstrap token"))?;
        if let Err(e) = self.authenticate(&token).await {
            // Debug-quoted: the name is the caller's and not checked yet.
            warn!(?remote, node = ?r.node_name, error = %e, "join refused");
            return Err(Status::unauthenticated(
                "Unauthorized: invalid bootstrap token",
            ));
        }
        let from = remote.map(|a| a.ip());
        let response = self.issue(&r.node_name, r.serving_names, &r.public_key_pem, from)?;
        let existing = self
            .objects
            .find(crate::registry::kinds::NODES, None, &r.node_name)
            .await
            .ok()
            .flatten()
            .is_some();
        // As upstream: a token may (re)issue any node's certificate; the
        // log says when it replaced a registered node's.
        info!(node = %r.node_name, token = %token.id, ?remote, existing, "node joined with a bootstrap token");
        Ok(Response::new(response))
    }

    async fn renew(
        &self,
        request: Request<pb::RenewRequest>,
    ) -> Result<Response<pb::JoinResponse>, Status> {
        let peer = skiff_proto::link::PeerInfo::of(&request);
        // The TLS layer has verified the certificate against the cluster CA
        // and refused an expired one; what is left is whose it is.
        let actor = super::identity::node_of(&peer)?;
        let r = request.into_inner();
        if let Err(refused) = super::identity::may_modify(&actor, &r.node_name) {
            warn!(remote = ?peer.remote, %actor, node = ?r.node_name, "renewal refused: another node's certificate");
            return Err(refused);
        }
        let response = self.issue(
            &r.node_name,
            r.serving_names,
            &r.public_key_pem,
            peer.remote.map(|a| a.ip()),
        )?;
        info!(node = %r.node_name, remote = ?peer.remote, "node certificates renewed");
        Ok(Response::new(response))
    }
}

impl Bootstrap {
    /// Signs node `node`'s client and serving certificates for
    /// `public_key_pem`, the serving one naming `serving_names` (and the
    /// node) after the checks Join and Renew share; `from` is the caller's
    /// address.
    fn issue(
        &self,
        node: &str,
        serving_names: Vec<String>,
        public_key_pem: &str,
        from: Option<std::net::IpAddr>,
    ) -> Result<pb::JoinResponse, Status> {
        if !valid_node_name(node) {
            return Err(Status::invalid_argument(format!(
                "invalid node name {node:?}: a lowercase RFC 1123 subdomain is required"
            )));
        }
        let mut names: Vec<String> = serving_names
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect();
        if names.len() > MAX_SERVING_NAMES {
            return Err(Status::invalid_argument(format!(
                "too many serving names: {}, at most {MAX_SERVING_NAMES}",
                names.len()
            )));
        }
        if let Some(bad) = names.iter().find(|n| !valid_serving_name(n)) {
            return Err(Status::invalid_argument(format!(
                "invalid serving name {bad:?}: an IP address or a lowercase RFC 1123 subdomain is required"
            )));
        }
        if !names.iter().any(|n| n == node) {
            names.push(node.to_string());
        }
        if let Some(bad) = names.iter().find(|n| self.api_names.refuses(n, from)) {
            warn!(?from, %node, name = %bad, "refused: an API server name");
            return Err(Status::invalid_argument(format!(
                "invalid serving name {bad:?}: a name of the API server cannot be a node's"
            )));
        }
        let user = format!("{NODE_PREFIX}{node}");
        let sign = |ca: &Ca, usage: Usage| {
            ca.sign_public_key_pem(
                &CertRequest {
                    common_name: user.clone(),
                    organization: Some(NODES.into()),
                    usage,
                    valid_for: self.validity,
                },
                public_key_pem,
            )
            .map_err(|e| match e {
                // Nothing the caller sent is wrong: the cluster's CA ran out.
                skiff_pki::PkiError::SignerExpired(_)
                | skiff_pki::PkiError::SignerExpiredBeforeNow(_) => {
                    warn!(%node, error = %e, "cannot sign node certificates");
                    Status::failed_precondition(e.to_string())
                }
                e => Status::invalid_argument(e.to_string()),
            })
        };
        let client_cert_pem = sign(&self.ca, Usage::Client)?;
        let serving_cert_pem = sign(&self.serving_ca, Usage::Server { names })?;
        Ok(pb::JoinResponse {
            client_cert_pem,
            serving_cert_pem,
            ca_cert_pem: self.ca.cert_pem().to_string(),
            kubelet_serving_ca_pem: self.serving_ca.cert_pem().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(token: &BootstrapToken, expiration: Option<chrono::DateTime<chrono::Utc>>) -> Value {
        // As the API stores it: stringData folded into base64 data.
        let mut secret = token_secret(token, expiration, "test");
        let mut data = serde_json::Map::new();
        for (k, v) in secret["stringData"]
            .as_object()
            .cloned()
            .unwrap_or_default()
        {
            let text = v.as_str().unwrap_or_default().to_string();
            data.insert(
                k,
                base64::engine::general_purpose::STANDARD
                    .encode(text)
                    .into(),
            );
        }
        secret["data"] = Value::Object(data);
        secret.as_object_mut().map(|o| o.remove("stringData"));
        secret
    }

    #[test]
    fn a_matching_unexpired_token_is_accepted() {
        let now = chrono::Utc::now();
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
        assert_eq!(check(&token, &stored(&token, None), now), Ok(()));
        let later = now + chrono::Duration::hours(1);
        assert_eq!(check(&token, &stored(&token, Some(later)), now), Ok(()));
    }

    #[test]
    fn expired_wrong_or_unusable_tokens_are_refused() {
        let now = chrono::Utc::now();
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
        let past = now - chrono::Duration::seconds(1);
        assert!(matches!(
            check(&token, &stored(&token, Some(past)), now),
            Err(TokenError::Expired(..))
        ));
        let other = BootstrapToken::parse("abcdef.0123456789abcdee").expect("token");
        assert!(matches!(
            check(&other, &stored(&token, None), now),
            Err(TokenError::Mismatch(_))
        ));
        let mut opaque = stored(&token, None);
        opaque["type"] = "Opaque".into();
        assert!(matches!(
            check(&token, &opaque, now),
            Err(TokenError::Unusable { .. })
        ));
        let mut no_usage = stored(&token, None);
        no_usage["data"]
            .as_object_mut()
            .map(|d| d.remove("usage-bootstrap-authentication"));
        assert!(matches!(
            check(&token, &no_usage, now),
            Err(TokenError::Unusable { .. })
        ));
    }

    /// A bootstrap service over a fresh CA and a store holding `token`.
    async fn service(token: &BootstrapToken) -> (Bootstrap, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Arc::new(Ca::load_or_create(dir.path()).expect("CA"));
        let serving_ca = Arc::new(
            Ca::load_or_create_as(dir.path(), skiff_pki::ca::KUBELET_SERVING).expect("CA"),
        );
        let objects = Objects::in_memory();
        objects
            .create(crate::registry::kinds::SECRETS, stored(token, None))
            .await
            .expect("token secret");
        let api_names = ApiNames::new(
            "cluster.local",
            "10.96.0.1".parse().expect("ip"),
            Some("192.168.56.10".parse().expect("ip")),
        );
        (
            Bootstrap {
                objects,
                ca,
                serving_ca,
                api_names,
                validity: NODE_CERT_VALIDITY,
            },
            dir,
        )
    }

    fn join_request(token: &str, node: &str, key: &str, names: &[&str]) -> pb::JoinRequest {
        pb::JoinRequest {
            token: token.into(),
            node_name: node.into(),
            public_key_pem: key.into(),
            serving_names: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    fn renew_request(
        caller: Option<(&str, &[&str])>,
        node: &str,
        key: &str,
        names: &[&str],
    ) -> Request<pb::RenewRequest> {
        let mut request = Request::new(pb::RenewRequest {
            node_name: node.into(),
            public_key_pem: key.into(),
            serving_names: names.iter().map(|n| n.to_string()).collect(),
        });
        request
            .extensions_mut()
            .insert(skiff_proto::link::PeerInfo {
                remote: Some("10.0.0.7:40000".parse().expect("address")),
                user: caller.map(|(name, groups)| skiff_pki::identity::Subject {
                    name: name.into(),
                    groups: groups.iter().map(|g| g.to_string()).collect(),
                }),
            });
        request
    }

    #[tokio::test]
    async fn a_node_renews_only_its_own_certificates() {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
        let (mut service, _dir) = service(&token).await;
        service.validity = Duration::from_secs(90);
        let (_, key) = skiff_pki::ca::new_key_pair().expect("key");
        let n1 = Some(("system:node:n1", &[NODES][..]));
        let renewed = service
            .renew(renew_request(n1, "n1", &key, &["10.0.0.7"]))
            .await
            .expect("renewed")
            .into_inner();
        let client = skiff_pki::pem::certificates(&renewed.client_cert_pem, "client")
            .expect("a certificate");
        let subject = skiff_pki::identity::subject(&client[0]).expect("subject");
        assert_eq!(subject.name, "system:node:n1");
        // Signed for the configured duration: good for a minute, not for two.
        let verify = skiff_pki::identity::verify;
        assert!(
            verify(
                &renewed.ca_cert_pem,
                &renewed.client_cert_pem,
                Duration::from_secs(60)
            )
            .is_ok()
        );
        assert!(
            verify(
                &renewed.ca_cert_pem,
                &renewed.client_cert_pem,
                Duration::from_secs(120)
            )
            .is_err()
        );
        assert!(
            verify(
                &renewed.kubelet_serving_ca_pem,
                &renewed.serving_cert_pem,
                Duration::from_secs(60)
            )
            .is_ok()
        );
        // Another node's certificates: refused in upstream's words.
        let e = service
            .renew(renew_request(n1, "n2", &key, &[]))
            .await
            .expect_err("foreign");
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(
            e.message()
                .contains("node \"n1\" is not allowed to modify node \"n2\""),
            "{e:?}"
        );
        // No certificate (a token is not enough), or not a node's.
        let e = service
            .renew(renew_request(None, "n1", &key, &[]))
            .await
            .expect_err("anonymous");
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let e = service
            .renew(renew_request(
                Some(("admin", &["system:masters"][..])),
                "n1",
                &key,
                &[],
            ))
            .await
            .expect_err("not a node");
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        // Join's rules for serving names hold.
        let e = service
            .renew(renew_request(
                n1,
                "n1",
                &key,
                &["10.0.0.7", "kubernetes.default"],
            ))
            .await
            .expect_err("API name");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let e = service
            .renew(renew_request(n1, "n1", "not a key", &[]))
            .await
            .expect_err("bad key");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }

    #[tokio::test]
    async fn node_certificates_end_with_their_ca_at_the_latest() {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
        let (mut service, dir) = service(&token).await;
        // CAs that end in ten minutes, under the default year of validity.
        let ten_minutes = Duration::from_secs(600);
        service.ca =
            Arc::new(Ca::create_as(dir.path(), skiff_pki::ca::CLUSTER, ten_minutes).expect("CA"));
        service.serving_ca = Arc::new(
            Ca::create_as(dir.path(), skiff_pki::ca::KUBELET_SERVING, ten_minutes).expect("CA"),
        );
        assert_eq!(service.validity, NODE_CERT_VALIDITY);
        let ends = |pem: &str| {
            let der = skiff_pki::pem::certificates(pem, "cert")
                .expect("pem")
                .remove(0);
            skiff_pki::identity::not_after(&der).expect("not after")
        };
        let ca_end = service.ca.not_after().unix_timestamp();
        let serving_ca_end = service.serving_ca.not_after().unix_timestamp();
        let (_, key) = skiff_pki::ca::new_key_pair().expect("key");
        let joined = service
            .join(Request::new(join_request(
                &token.to_string(),
                "n1",
                &key,
                &["10.0.0.7"],
            )))
            .await
            .expect("joined")
            .into_inner();
        assert_eq!(ends(&joined.client_cert_pem), ca_end);
        assert_eq!(ends(&joined.serving_cert_pem), serving_ca_end);
        let n1 = Some(("system:node:n1", &[NODES][..]));
        let renewed = service
            .renew(renew_request(n1, "n1", &key, &["10.0.0.7"]))
            .await
            .expect("renewed")
            .into_inner();
        assert_eq!(ends(&renewed.client_cert_pem), ca_end);
        assert_eq!(ends(&renewed.serving_cert_pem), serving_ca_end);
    }

    #[tokio::test]
    async fn serving_names_are_hosts_and_bounded() {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
        let (service, _dir) = service(&token).await;
        let (_, key) = skiff_pki::ca::new_key_pair().expect("key");
        let join = |names: &[&str]| {
            service.join(Request::new(join_request(
                &token.to_string(),
                "n1",
                &key,
                names,
            )))
        };
        assert!(join(&["n1", "10.0.0.7", "::1", "n1.lab"]).await.is_ok());
        for bad in [
            vec!["*.example.com"],
            vec!["*"],
            vec!["a b"],
            vec!["Upper"],
            vec!["x@y"],
        ] {
            let e = join(&bad).await.expect_err("refused");
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad:?}: {e:?}");
        }
        let many: Vec<String> = (0..=MAX_SERVING_NAMES).map(|i| format!("n{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = join(&many).await.expect_err("too many");
        assert!(e.message().contains("too many serving names"), "{e:?}");
    }

    #[tokio::test]
    async fn the_serving_certificate_comes_from_the_kubelet_serving_ca() {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
        let (service, _dir) = service(&token).await;
        let (_, key) = skiff_pki::ca::new_key_pair().expect("key");
        let response = service
            .join(Request::new(join_request(
                &token.to_string(),
                "n1",
                &key,
                &["127.0.0.1"],
            )))
            .await
            .expect("joined")
            .into_inner();
        let day = Duration::from_secs(24 * 3600);
        let verify = skiff_pki::identity::verify;
        assert!(verify(&response.ca_cert_pem, &response.client_cert_pem, day).is_ok());
        assert!(
            verify(
                &response.kubelet_serving_ca_pem,
                &response.serving_cert_pem,
                day
            )
            .is_ok()
        );
        assert!(verify(&response.ca_cert_pem, &response.serving_cert_pem, day).is_err());
        assert!(
            verify(
                &response.kubelet_serving_ca_pem,
                &response.client_cert_pem,
                day
            )
            .is_err()
        );
        let serving = skiff_pki::pem::certificates(&response.serving_cert_pem, "serving")
            .expect("a certificate");
        let subject = skiff_pki::identity::subject(&serving[0]).expect("subject");
        assert_eq!(subject.name, "system:node:n1");
        assert_eq!(subject.groups, vec!["system:nodes".to_string()]);
    }

    #[tokio::test]
    async fn the_api_servers_names_are_refused_as_serving_names() {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
        let (service, _dir) = service(&token).await;
        let (_, key) = skiff_pki::ca::new_key_pair().expect("key");
        let join = |names: &[&str], from: &str| {
            let mut request = Request::new(join_request(&token.to_string(), "n1", &key, names));
            request
                .extensions_mut()
                .insert(skiff_proto::link::PeerInfo {
                    remote: Some(from.parse().expect("address")),
                    user: None,
                });
            service.join(request)
        };
        let remote = "10.0.0.7:40000";
        for api in [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "10.96.0.1",
            "::ffff:10.96.0.1",
            "192.168.56.10",
        ] {
            let e = join(&["10.0.0.7", api], remote).await.expect_err(api);
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{api}");
            assert!(e.message().contains("a name of the API server"), "{e:?}");
        }
        // A node named like the API is refused too: its name is a
        // serving name.
        let e = service
            .join(Request::new(join_request(
                &token.to_string(),
                "kubernetes.default",
                &key,
                &[],
            )))
            .await
            .expect_err("refused");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        // Other names, loopback and the cluster domain's other hosts pass;
        // the advertised address passes for a node joining from it (the
        // control plane's own machine).
        join(&["10.0.0.7", "127.0.0.1", "kubernetes.lab"], remote)
            .await
            .expect("ordinary names");
        join(&["192.168.56.10"], "192.168.56.10:40000")
            .await
            .expect("the control plane's machine");
    }

    #[tokio::test]
    async fn join_answers_every_hostile_request_with_a_typed_refusal() {
        use crate::auth::fuzz_tests::{Rng, mutate};
        let valid = "abcdef.0123456789abcdef";
        let token = BootstrapToken::parse(valid).expect("token");
        let (service, _dir) = service(&token).await;
        let (private, key) = skiff_pki::ca::new_key_pair().expect("key");
        let tokens = [
            valid,
            "abcdef.0123456789abcdee",
            "abcdeg.0123456789abcdef",
            "ABCDEF.0123456789ABCDEF",
            "",
            " abcdef.0123456789abcdef ",
            "abcdef.0123456789abcdef.x",
        ];
        let nodes = ["n1", "", "N1", "-n", "a..b", "n1\n\u{1b}[31mfake log", "é"];
        let long_name = "a".repeat(300);
        let names = [
            "n1",
            "",
            "*",
            "*.lab",
            "10.0.0.1",
            "::1",
            "1.2.3.4.5",
            "a_b",
            "é",
            &long_name,
        ];
        let keys = [
            key.as_str(),
            private.as_str(),
            "",
            "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        ];
        let mut rng = Rng::new(0x5eed_b007_0000_0001);
        let pool = b"abcdef0123456789.-ABC \n=+/";
        let mut joined = 0;
        for i in 0..crate::auth::fuzz_tests::ROUNDS / 10 {
            let mut t = rng.pick(&tokens).to_string();
            if rng.below(3) == 0 {
                t = String::from_utf8_lossy(&mutate(&mut rng, t.as_bytes(), pool)).into_owned();
            }
            let mut k = rng.pick(&keys).to_string();
            if rng.below(4) == 0 {
                k = String::from_utf8_lossy(&mutate(&mut rng, k.as_bytes(), pool)).into_owned();
            }
            let node = rng.pick(&nodes);
            let n = rng.below(4);
            let serving: Vec<&str> = (0..n).map(|_| rng.pick(&names)).collect();
            let request = join_request(&t, node, &k, &serving);
            let answer = service.join(Request::new(request.clone())).await;
            let authentic = BootstrapToken::parse(&t).is_ok_and(|p| p == token);
            match answer {
                Ok(response) => {
                    assert!(authentic, "#{i} {t:?} joined");
                    let cert =
                        skiff_pki::pem::certificates(&response.get_ref().client_cert_pem, "client")
                            .expect("a certificate");
                    let subject = skiff_pki::identity::subject(&cert[0]).expect("subject");
                    assert_eq!(subject.name, format!("system:node:{node}"), "#{i}");
                    assert!(valid_node_name(node), "#{i} {node:?}");
                    joined += 1;
                }
                Err(status) if !authentic => {
                    assert_eq!(status.code(), tonic::Code::Unauthenticated, "#{i} {t:?}");
                    assert_eq!(status.message(), "Unauthorized: invalid bootstrap token");
                }
                Err(status) => {
                    assert_eq!(
                        status.code(),
                        tonic::Code::InvalidArgument,
                        "#{i} {request:?}"
                    )
                }
            }
        }
        // The seeds reach the signing path, not only the token check.
        assert!(joined > 0, "no request joined");
    }

    #[test]
    fn hostile_token_texts_and_secrets_never_panic() {
        use crate::auth::fuzz_tests::{Rng, json_value, mutate};
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
        let good = stored(
            &token,
            Some(chrono::Utc::now() + chrono::Duration::hours(1)),
        );
        let keys = [
            "type",
            "data",
            "token-id",
            "token-secret",
            "expiration",
            "usage-bootstrap-authentication",
            "YWJjZGVm",
            "dHJ1ZQ==",
            "MDEyMzQ1Njc4OWFiY2RlZg==",
            "bootstrap.kubernetes.io/token",
        ];
        let mut rng = Rng::new(0x5eed_b007_0000_0002);
        let now = chrono::Utc::now();
        for i in 0..crate::auth::fuzz_tests::ROUNDS {
            let text = mutate(
                &mut rng,
                b"abcdef.0123456789abcdef",
                b"abcdef.0123\xc3\xa9 ",
            );
            if let Ok(parsed) = BootstrapToken::parse(&String::from_utf8_lossy(&text)) {
                assert_eq!((parsed.id.len(), parsed.secret.len()), (6, 16), "#{i}");
            }
            let mut secret = good.clone();
            if rng.below(2) == 0 {
                secret = json_value(&mut rng, &keys, 4);
            } else {
                let key = rng.pick(&keys);
                secret["data"][key] = json_value(&mut rng, &keys, 1);
            }
            if check(&token, &secret, now).is_ok() {
                assert_eq!(secret["type"], SECRET_TYPE, "#{i} {secret}");
            }
        }
    }

    #[test]
    fn node_names_are_dns_subdomains() {
        for ok in ["node1", "a.b-c", "n"] {
            assert!(valid_node_name(ok), "{ok}");
        }
        for bad in ["", "Node1", "-a", "a..b", "a/b", "a_b"] {
            assert!(!valid_node_name(bad), "{bad}");
        }
    }
}
