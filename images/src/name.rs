//! Image references, normalised the way containerd and Docker do it:
//! `busybox` is `docker.io/library/busybox:latest`.

use std::fmt;
use std::str::FromStr;

/// Registry assumed when a reference names none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Tag assumed when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason}")]
pub struct InvalidImageName {
    /// The string as given.
    pub reference: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A fully qualified image reference (`domain/path[:tag][@digest]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageName {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageName {
    /// Parses and normalises a reference as a user would type it.
    pub fn parse(reference: &str) -> Result<Self, InvalidImageName> {
        let invalid = |reason| InvalidImageName {
            reference: reference.to_string(),
            reason,
        };
        let s = reference.trim();
        if s.is_empty() {
            return Err(invalid("empty reference"));
        }
        if s.chars().any(char::is_whitespace) {
            return Err(invalid("references cannot contain whitespace"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => {
                if !digest.contains(':') {
                    return Err(invalid("digest must look like sha256:<hex>"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (s, None),
        };
        // A ':' after the last '/' separates the tag; one before it is a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let split = last_slash + i;
                (&rest[..split], Some(rest[split + 1..].to_string()))
            }
            None => (rest, None),
        };
        if let Some(tag) = &tag
            && (tag.is_empty() || tag.len() > 128)
        {
            return Err(invalid("tag must be 1 to 128 characters"));
        }
        if name.is_empty() || name.starts_with('/') || name.ends_with('/') || name.contains("//") {
            return Err(invalid("repository name has an empty path component"));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid("repository names must be lowercase"));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            _ => tag,
        };
        Ok(Self {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// Registry host, e.g. `docker.io` or `skiff.dev`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Repository path inside the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if the reference has one (`latest` is filled in when neither
    /// tag nor digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if pinned by digest.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `domain/path` without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// True when the reference is the `latest` tag (explicitly or by default),
    /// which makes Kubernetes default `imagePullPolicy` to `Always`.
    pub fn is_latest(&self) -> bool {
        self.digest.is_none() && self.tag.as_deref() == Some(DEFAULT_TAG)
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageName {
    type Err = InvalidImageName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        ImageName::parse(s).expect("valid").to_string()
    }

    #[test]
    fn short_names_normalise_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("nginx/nginx"), "docker.io/nginx/nginx:latest");
        assert_eq!(
            norm("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn registries_with_dots_ports_or_localhost_are_kept() {
        assert_eq!(norm("skiff.dev/webapp:v1"), "skiff.dev/webapp:v1");
        assert_eq!(norm("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(norm("localhost/app:v2"), "localhost/app:v2");
    }

    #[test]
    fn digests_are_kept_and_suppress_the_default_tag() {
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let n = ImageName::parse(&format!("busybox@{d}")).expect("valid");
        assert_eq!(n.tag(), None);
        assert_eq!(n.digest(), Some(d));
        assert!(!n.is_latest());
    }

    #[test]
    fn latest_detection_follows_kubernetes_pull_policy_rules() {
        assert!(ImageName::parse("busybox").expect("valid").is_latest());
        assert!(
            !ImageName::parse("skiff.dev/webapp:v1")
                .expect("valid")
                .is_latest()
        );
    }

    #[test]
    fn bad_references_are_rejected_with_a_reason() {
        for bad in [
            "",
            "Busybox",
            "busy box",
            "app:",
            "/app",
            "a//b",
            "app@nodigest",
        ] {
            assert!(ImageName::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
