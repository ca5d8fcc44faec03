//! Bootstrap tokens in upstream's form, `<id>.<secret>`: six and sixteen
//! characters of `[a-z0-9]`. The id is public (it names the Secret
//! `kube-system/bootstrap-token-<id>` that holds the token); the secret
//! is what a joining node proves it knows.

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
        let invalid = || {
            PkiError::invalid(
                "bootstrap token",
                "the token must be of the form \"[a-z0-9]{6}.[a-z0-9]{16}\"",
            )
        };
        let (id, secret) = text.trim().split_once('.').ok_or_else(invalid)?;
        if !valid_part(id, ID_LEN) || !valid_part(secret, SECRET_LEN) {
            return Err(invalid());
        }
        Ok(Self {
            id: id.into(),
            secret: secret.into(),
        })
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
