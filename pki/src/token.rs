//! Bootstrap tokens in upstream's form, `<id>.<secret>`: six and sixteen
//! characters of `[a-z0-9]`. The id is public (it names the Secret
//! `kube-system/bootstrap-token-<id>` that holds the token); the secret
//! is what a joining node proves it knows.
//!
//! [`TokenSecret`] is the Secret's content as upstream's kubeadm writes and
//! reads it (`token-id`, `token-secret`, `expiration`, `usage-bootstrap-*`,
//! `auth-extra-groups`, `description`), shared by the CLI that makes and
//! lists tokens and the control plane that checks them.

use std::collections::BTreeMap;
use std::fmt;

use crate::PkiError;

/// Length of a token's id.
pub const ID_LEN: usize = 6;
/// Length of a token's secret.
pub const SECRET_LEN: usize = 16;
/// Prefix of the Secret holding a token: `bootstrap-token-<id>`.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// The type of such a Secret.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The namespace such Secrets live in.
pub const NAMESPACE: &str = "kube-system";
/// A whole token, as upstream's error messages spell the pattern.
pub const PATTERN: &str = r"\A([a-z0-9]{6})\.([a-z0-9]{16})\z";
/// A token's id alone, likewise.
pub const ID_PATTERN: &str = r"\A([a-z0-9]{6})\z";

/// The keys of a bootstrap token Secret's data (upstream's names).
pub mod keys {
    /// The token's id.
    pub const TOKEN_ID: &str = "token-id";
    /// The token's secret.
    pub const TOKEN_SECRET: &str = "token-secret";
    /// When it stops being valid (RFC 3339, UTC); none: never.
    pub const EXPIRATION: &str = "expiration";
    /// Free text for people.
    pub const DESCRIPTION: &str = "description";
    /// Comma-separated groups the token authenticates as, besides
    /// `system:bootstrappers`.
    pub const EXTRA_GROUPS: &str = "auth-extra-groups";
    /// `usage-bootstrap-<usage>: "true"` enables a usage.
    pub const USAGE_PREFIX: &str = "usage-bootstrap-";
}

/// The usage that lets a token join a node (authenticate).
pub const USAGE_AUTHENTICATION: &str = "authentication";
/// The usage that signs the cluster-info ConfigMap (kubeadm's discovery).
pub const USAGE_SIGNING: &str = "signing";

/// A bootstrap token.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    /// The public part.
    pub id: String,
    /// The private part.
    pub secret: String,
}

impl fmt::Debug for BootstrapToken {
    // The secret stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({}.<redacted>)", self.id)
    }
}

impl fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

fn valid_part(part: &str, len: usize) -> bool {
    part.len() == len
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl BootstrapToken {
    /// Parses `<id>.<secret>`.
    pub fn parse(text: &str) -> Result<Self, PkiError> {
        let invalid = || PkiError::BootstrapToken(text.to_string());
        let (id, secret) = text.trim().split_once('.').ok_or_else(invalid)?;
        if !valid_part(id, ID_LEN) || !valid_part(secret, SECRET_LEN) {
            return Err(invalid());
        }
        Ok(Self {
            id: id.into(),
            secret: secret.into(),
        })
    }

    /// Whether `id` is a token id (`[a-z0-9]{6}`).
    pub fn valid_id(id: &str) -> bool {
        valid_part(id, ID_LEN)
    }

    /// A new random token (from the kernel's random source).
    pub fn generate() -> Result<Self, PkiError> {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let path = "/dev/urandom";
        let io = |source| PkiError::Io {
            path: path.into(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut chars = String::with_capacity(ID_LEN + SECRET_LEN);
        while chars.len() < ID_LEN + SECRET_LEN {
            let mut bytes = [0u8; 64];
            std::io::Read::read_exact(&mut file, &mut bytes).map_err(io)?;
            // Bytes from 252 (= 7 * 36) up would bias the alphabet.
            chars.extend(
                bytes
                    .iter()
                    .filter(|b| **b < 252)
                    .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char),
            );
        }
        Ok(Self {
            id: chars[..ID_LEN].into(),
            secret: chars[ID_LEN..ID_LEN + SECRET_LEN].into(),
        })
    }

    /// The name of the Secret holding this token.
    pub fn secret_name(&self) -> String {
        format!("{SECRET_PREFIX}{}", self.id)
    }

    /// Whether `secret` is this token's secret, compared in constant time.
    pub fn secret_matches(&self, secret: &[u8]) -> bool {
        let mine = self.secret.as_bytes();
        mine.len() == secret.len()
            && mine
                .iter()
                .zip(secret)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// A bootstrap token Secret's content, as upstream's kubeadm writes and
/// reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSecret {
    /// The token.
    pub token: BootstrapToken,
    /// RFC 3339; `None`: the token never expires.
    pub expiration: Option<String>,
    /// `authentication`, `signing`, ... (sorted when read).
    pub usages: Vec<String>,
    /// Extra groups.
    pub groups: Vec<String>,
    /// Free text; empty: none.
    pub description: String,
}

impl TokenSecret {
    /// The Secret's data, unencoded (for `stringData`): the optional
    /// fields only when set, as kubeadm writes them.
    pub fn string_data(&self) -> BTreeMap<String, String> {
        let mut data = BTreeMap::new();
        data.insert(keys::TOKEN_ID.into(), self.token.id.clone());
        data.insert(keys::TOKEN_SECRET.into(), self.token.secret.clone());
        if let Some(at) = &self.expiration {
            data.insert(keys::EXPIRATION.into(), at.clone());
        }
        if !self.description.is_empty() {
            data.insert(keys::DESCRIPTION.into(), self.description.clone());
        }
        for usage in &self.usages {
            data.insert(format!("{}{usage}", keys::USAGE_PREFIX), "true".into());
        }
        if !self.groups.is_empty() {
            data.insert(keys::EXTRA_GROUPS.into(), self.groups.join(","));
        }
        data
    }

    /// Reads the decoded `data` of the Secret `name`; refuses, in
    /// upstream's words, a Secret that holds no usable token.
    pub fn from_data(name: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Self, PkiError> {
        let text = |key: &str| {
            data.get(key)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let bad = |why: String| PkiError::invalid(format!("Secret {NAMESPACE}/{name}"), why);
        let id = text(keys::TOKEN_ID);
        if id.is_empty() {
            return Err(bad("bootstrap Token Secret has no token-id data".into()));
        }
        if name != format!("{SECRET_PREFIX}{id}") {
            return Err(bad(format!(
                "bootstrap token name is not of the form '{SECRET_PREFIX}(token-id)'. Actual: {name:?}. Expected: \"{SECRET_PREFIX}{id}\""
            )));
        }
        let secret = text(keys::TOKEN_SECRET);
        if secret.is_empty() {
            return Err(bad("bootstrap Token Secret has no token-secret data".into()));
        }
        let token = BootstrapToken::parse(&format!("{id}.{secret}")).map_err(|e| {
            bad(format!(
                "bootstrap Token Secret is invalid and couldn't be parsed: {e}"
            ))
        })?;
        let expiration = Some(text(keys::EXPIRATION)).filter(|e| !e.is_empty());
        let mut usages: Vec<String> = data
            .iter()
            .filter(|(_, v)| v.as_slice() == b"true")
            .filter_map(|(k, _)| k.strip_prefix(keys::USAGE_PREFIX))
            .map(str::to_string)
            .collect();
        usages.sort();
        let groups = text(keys::EXTRA_GROUPS)
            .split(',')
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect();
        Ok(Self {
            token,
            expiration,
            usages,
            groups,
            description: text(keys::DESCRIPTION),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_tokens_only() {
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").expect("valid");
        assert_eq!(t.id, "abcdef");
        assert_eq!(t.secret_name(), "bootstrap-token-abcdef");
        assert_eq!(t.to_string(), "abcdef.0123456789abcdef");
        for bad in [
            "",
            "abcdef",
            "abcdef.",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdeff",
            "abc-ef.0123456789abcdef",
            "abcdef:0123456789abcdef",
        ] {
            assert!(BootstrapToken::parse(bad).is_err(), "{bad:?} accepted");
        }
        // kubeadm's words, its pattern quoted as Go's %q quotes it.
        assert_eq!(
            BootstrapToken::parse("abc").expect_err("short").to_string(),
            r#"the bootstrap token "abc" was not of the form "\\A([a-z0-9]{6})\\.([a-z0-9]{16})\\z""#
        );
        assert!(BootstrapToken::valid_id("abcdef"));
        assert!(!BootstrapToken::valid_id("abcde"));
        assert!(!BootstrapToken::valid_id("abcdef.0123456789abcdef"));
    }

    #[test]
    fn token_secrets_round_trip_in_kubeadms_form() {
        let written = TokenSecret {
            token: BootstrapToken::parse("abcdef.0123456789abcdef").expect("token"),
            expiration: Some("2030-01-02T03:04:05Z".into()),
            usages: vec![USAGE_AUTHENTICATION.into(), USAGE_SIGNING.into()],
            groups: vec![
                "system:bootstrappers:a".into(),
                "system:bootstrappers:b".into(),
            ],
            description: "lab".into(),
        };
        let data = written.string_data();
        assert_eq!(data["token-id"], "abcdef");
        assert_eq!(data["token-secret"], "0123456789abcdef");
        assert_eq!(data["expiration"], "2030-01-02T03:04:05Z");
        assert_eq!(data["usage-bootstrap-authentication"], "true");
        assert_eq!(data["usage-bootstrap-signing"], "true");
        assert_eq!(
            data["auth-extra-groups"],
            "system:bootstrappers:a,system:bootstrappers:b"
        );
        let bytes: BTreeMap<String, Vec<u8>> =
            data.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
        let read = TokenSecret::from_data("bootstrap-token-abcdef", &bytes).expect("reads");
        assert_eq!(read, written);

        // Optional fields stay out when unset; a usage not "true" is off.
        let bare = TokenSecret {
            expiration: None,
            usages: Vec::new(),
            groups: Vec::new(),
            description: String::new(),
            ..written
        };
        let data = bare.string_data();
        assert_eq!(data.len(), 2, "{data:?}");
        let mut bytes: BTreeMap<String, Vec<u8>> =
            data.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
        bytes.insert("usage-bootstrap-signing".into(), b"yes".to_vec());
        assert_eq!(
            TokenSecret::from_data("bootstrap-token-abcdef", &bytes).expect("reads"),
            bare
        );
    }

    #[test]
    fn secrets_without_a_usable_token_are_refused() {
        let data = |pairs: &[(&str, &str)]| -> BTreeMap<String, Vec<u8>> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect()
        };
        let err = |name: &str, pairs: &[(&str, &str)]| {
            TokenSecret::from_data(name, &data(pairs))
                .expect_err("refused")
                .to_string()
        };
        assert!(err("bootstrap-token-abcdef", &[]).contains("no token-id data"));
        assert!(
            err("bootstrap-token-other1", &[("token-id", "abcdef")])
                .contains("Expected: \"bootstrap-token-abcdef\"")
        );
        assert!(
            err("bootstrap-token-abcdef", &[("token-id", "abcdef")])
                .contains("no token-secret data")
        );
        assert!(
            err(
                "bootstrap-token-abcdef",
                &[("token-id", "abcdef"), ("token-secret", "SHORT")]
            )
            .contains("couldn't be parsed")
        );
    }

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = BootstrapToken::generate().expect("a");
        let b = BootstrapToken::generate().expect("b");
        assert_eq!(BootstrapToken::parse(&a.to_string()).expect("parses"), a);
        assert_ne!(a, b);
    }

    #[test]
    fn secrets_compare_exactly() {
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").expect("valid");
        assert!(t.secret_matches(b"0123456789abcdef"));
        assert!(!t.secret_matches(b"0123456789abcdee"));
        assert!(!t.secret_matches(b"0123456789abcde"));
        assert!(!format!("{t:?}").contains("0123456789"));
    }
}
