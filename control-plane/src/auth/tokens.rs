//! ServiceAccount tokens: JWTs shaped as upstream's bound tokens (the
//! TokenRequest API's), signed ES256 with one key the control plane makes
//! at first start in its pki folder (`sa.key`, as kubeadm names it).
//!
//! The codec signs and checks what a token itself says (signature,
//! issuer, time, audience); whether the ServiceAccount and the bound pod
//! still exist is the authenticator's business
//! ([`crate::auth::authn::service_account`]).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest;

/// The signing key's file in the pki folder.
pub const KEY_FILE: &str = "sa.key";

/// The `alg` of every token.
const ALGORITHM: &str = "ES256";

/// The DER prefix of a P-256 public key's SubjectPublicKeyInfo, before
/// its 65-byte uncompressed point: what the key id is a hash of.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Why a key could not be made or read, or a token signed or accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key file could not be read or written.
    #[error("service account key {path}: {why}")]
    KeyFile {
        /// The file.
        path: String,
        /// What went wrong.
        why: String,
    },
    /// Signing failed (the key is unusable).
    #[error("signing a token: {0}")]
    Sign(String),
    /// The token is not a well-formed JWT of ours.
    #[error("malformed token")]
    Malformed,
    /// The signature does not verify with the key.
    #[error("invalid signature")]
    Signature,
    /// Another issuer's token.
    #[error("token issuer {0:?} is not this cluster's")]
    Issuer(String),
    /// Past its expiry, or not valid yet.
    #[error("token is expired or not yet valid")]
    Expired,
    /// None of the token's audiences is accepted.
    #[error("token audiences {0:?} are invalid for the target audiences")]
    Audience(Vec<String>),
}

/// A name and uid: how the `kubernetes.io` claim names objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ObjectClaim {
    /// The object's name.
    pub name: String,
    /// The object's uid.
    pub uid: String,
}

/// The private `kubernetes.io` claim, as upstream's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KubernetesClaims {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub serviceaccount: ObjectClaim,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectClaim>,
    /// The Secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectClaim>,
    /// The node the bound pod runs on (or the node it is bound to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectClaim>,
}

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who may accept it.
    pub aud: Vec<String>,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// The cluster's issuer URL.
    pub iss: String,
    /// Unique id of this token.
    pub jti: String,
    /// Not valid before, Unix seconds.
    pub nbf: i64,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// Upstream's private claim.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

/// The cluster's issuer URL for a DNS domain, as upstream's default
/// (`https://kubernetes.default.svc.<domain>`).
pub fn issuer_for(domain: &str) -> String {
    format!("https://kubernetes.default.svc.{domain}")
}

/// Signs and verifies the cluster's ServiceAccount tokens.
pub struct TokenSigner {
    key: EcdsaKeyPair,
    key_id: String,
    issuer: String,
    /// What the API itself accepts (upstream's `--api-audiences`, by
    /// default the issuer).
    api_audiences: Vec<String>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("key_id", &self.key_id)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

fn key_error(path: &Path, why: impl ToString) -> TokenError {
    TokenError::KeyFile {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// `-----BEGIN PRIVATE KEY-----` PEM of a PKCS#8 document.
fn pkcs8_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

fn pkcs8_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| l.trim() != "-----BEGIN PRIVATE KEY-----")
        .skip(1)
        .take_while(|l| l.trim() != "-----END PRIVATE KEY-----")
        .map(str::trim)
        .collect();
    STANDARD.decode(body).ok()
}

impl TokenSigner {
    /// The key of `pki_dir/sa.key`, made (0600) if there is none: tokens
    /// stay valid across restarts.
    pub fn load_or_create(pki_dir: &Path, issuer: &str) -> Result<Self, TokenError> {
        let path = pki_dir.join(KEY_FILE);
        let der = match std::fs::read_to_string(&path) {
            Ok(pem) => pkcs8_der(&pem).ok_or_else(|| key_error(&path, "not a PKCS#8 PEM key"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let doc = EcdsaKeyPair::generate_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &SystemRandom::new(),
                )
                .map_err(|e| key_error(&path, e))?;
                std::fs::create_dir_all(pki_dir).map_err(|e| key_error(&path, e))?;
                skiff_pki::ca::write_atomic(&path, &pkcs8_pem(doc.as_ref()), 0o600)
                    .map_err(|e| key_error(&path, e))?;
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(key_error(&path, e)),
        };
        Self::from_pkcs8(&der, issuer).map_err(|e| key_error(&path, e))
    }

    /// A signer over a PKCS#8 P-256 key.
    pub fn from_pkcs8(der: &[u8], issuer: &str) -> Result<Self, TokenError> {
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &SystemRandom::new())
                .map_err(|e| TokenError::Sign(e.to_string()))?;
        // Upstream's key id: the SHA-256 of the public key's DER, base64url.
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(key.public_key().as_ref());
        let key_id = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&spki));
        Ok(Self {
            key,
            key_id,
            issuer: issuer.to_string(),
            api_audiences: vec![issuer.to_string()],
        })
    }

    /// A signer with a fresh key (tests).
    pub fn generate(issuer: &str) -> Result<Self, TokenError> {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|e| TokenError::Sign(e.to_string()))?;
        Self::from_pkcs8(doc.as_ref(), issuer)
    }

    /// The issuer URL tokens carry.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audiences the API accepts, and a TokenRequest without any gets.
    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    /// A signed compact JWT of `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let header = json!({"alg": ALGORITHM, "kid": self.key_id});
        let input = format!("{}.{}", base64_json(&header)?, base64_json(claims)?);
        let signature = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|e| TokenError::Sign(e.to_string()))?;
        Ok(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }

    /// The claims of `token` if it is ours, in time at `now` (Unix
    /// seconds) and for one of `audiences`.
    pub fn verify(
        &self,
        token: &str,
        now: i64,
        audiences: &[String],
    ) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Malformed);
        let header: Value =
            serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
        if header["alg"] != ALGORITHM {
            return Err(TokenError::Malformed);
        }
        let signed = &token[..token.len() - signature.len() - 1];
        signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref())
            .verify(signed.as_bytes(), &decode(signature)?)
            .map_err(|_| TokenError::Signature)?;
        let claims: Claims =
            serde_json::from_slice(&decode(payload)?).map_err(|_| TokenError::Malformed)?;
        if claims.iss != self.issuer {
            return Err(TokenError::Issuer(claims.iss));
        }
        // Upstream allows a minute of clock skew before nbf (and iat).
        if now >= claims.exp || now + 60 < claims.nbf {
            return Err(TokenError::Expired);
        }
        if !claims.aud.iter().any(|a| audiences.contains(a)) {
            return Err(TokenError::Audience(claims.aud));
        }
        Ok(claims)
    }

    /// The public key as a JSON Web Key Set (`/openid/v1/jwks`).
    pub fn jwks(&self) -> Value {
        // The uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = self.key.public_key().as_ref();
        json!({"keys": [{
            "use": "sig",
            "kty": "EC",
            "kid": self.key_id,
            "crv": "P-256",
            "alg": ALGORITHM,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]})
    }

    /// The OpenID discovery document (`/.well-known/openid-configuration`).
    pub fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/openid/v1/jwks", self.issuer),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
        })
    }
}

/// The base64url of `value`'s JSON: one part of a compact JWT.
fn base64_json<T: Serialize>(value: &T) -> Result<String, TokenError> {
    let bytes = serde_json::to_vec(value).map_err(|e| TokenError::Sign(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

    fn claims(now: i64) -> Claims {
        Claims {
            aud: vec![ISSUER.into()],
            exp: now + 3600,
            iat: now,
            iss: ISSUER.into(),
            jti: "j1".into(),
            nbf: now,
            sub: "system:serviceaccount:lab:robot".into(),
            kubernetes: KubernetesClaims {
                namespace: "lab".into(),
                serviceaccount: ObjectClaim {
                    name: "robot".into(),
                    uid: "u1".into(),
                },
                pod: Some(ObjectClaim {
                    name: "p".into(),
                    uid: "u2".into(),
                }),
                ..KubernetesClaims::default()
            },
        }
    }

    #[test]
    fn a_signed_token_verifies_with_upstreams_claim_names() {
        let signer = TokenSigner::generate(ISSUER).expect("key");
        let token = signer.sign(&claims(1_000)).expect("sign");
        let payload: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).expect("payload"))
                .expect("base64"),
        )
        .expect("json");
        assert_eq!(payload["kubernetes.io"]["serviceaccount"]["name"], "robot");
        assert_eq!(payload["kubernetes.io"]["pod"]["uid"], "u2");
        assert!(payload["kubernetes.io"].get("secret").is_none());
        let back = signer
            .verify(&token, 1_500, signer.api_audiences())
            .expect("valid");
        assert_eq!(back, claims(1_000));
    }

    #[test]
    fn tampered_foreign_expired_and_other_audience_tokens_are_refused() {
        let signer = TokenSigner::generate(ISSUER).expect("key");
        let aud = signer.api_audiences().to_vec();
        let token = signer.sign(&claims(1_000)).expect("sign");
        // Another key's signature.
        let other = TokenSigner::generate(ISSUER).expect("key");
        assert!(matches!(
            other.verify(&token, 1_500, &aud),
            Err(TokenError::Signature)
        ));
        // A changed payload under the old signature.
        let mut forged = claims(1_000);
        forged.sub = "system:serviceaccount:kube-system:admin".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert!(matches!(
            signer.verify(&tampered, 1_500, &aud),
            Err(TokenError::Signature)
        ));
        assert!(matches!(
            signer.verify(&token, 1_000 + 3600, &aud),
            Err(TokenError::Expired)
        ));
        assert!(matches!(
            signer.verify(&token, 1_000 - 61, &aud),
            Err(TokenError::Expired)
        ));
        assert!(matches!(
            signer.verify(&token, 1_500, &["vault".to_string()]),
            Err(TokenError::Audience(_))
        ));
        assert!(matches!(
            signer.verify("a.b", 1_500, &aud),
            Err(TokenError::Malformed)
        ));
        let foreign = TokenSigner::from_pkcs8(&[], "x").map(|_| ());
        assert!(foreign.is_err());
    }

    #[test]
    fn the_key_is_made_once_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let first = TokenSigner::load_or_create(dir.path(), ISSUER).expect("made");
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let token = first.sign(&claims(1_000)).expect("sign");
        let again = TokenSigner::load_or_create(dir.path(), ISSUER).expect("read");
        assert!(again.verify(&token, 1_500, again.api_audiences()).is_ok());
        assert_eq!(first.jwks(), again.jwks());
        assert_eq!(
            first.jwks()["keys"][0]["kid"].as_str().map(str::len),
            Some(43)
        );
    }
}
