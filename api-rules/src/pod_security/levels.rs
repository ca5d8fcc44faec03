//! Levels, versions and a namespace's policy, read from its labels as
//! upstream's `PolicyToEvaluate` reads them: invalid values are reported
//! (and refused on namespace writes) but evaluation fails closed for
//! enforce and open for audit and warn.

use std::collections::BTreeMap;
use std::fmt;

/// The label prefix of every Pod Security label.
pub const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

/// Newest policy version Skiff knows: the Kubernetes minor it serves
/// (`latest` means this; newer `v1.N` labels evaluate as this).
pub const LATEST_MINOR: u32 = 35;

/// A Pod Security Standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Everything is allowed.
    Privileged,
    /// Known privilege escalations are refused.
    Baseline,
    /// Hardening best practice.
    Restricted,
}

impl Level {
    /// Parses a label value.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "privileged" => Ok(Self::Privileged),
            "baseline" => Ok(Self::Baseline),
            "restricted" => Ok(Self::Restricted),
            _ => Err("must be one of privileged, baseline, restricted".to_string()),
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Privileged => "privileged",
            Self::Baseline => "baseline",
            Self::Restricted => "restricted",
        }
    }
}

/// A policy version: `latest` or `v1.N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// The newest checks.
    Latest,
    /// The checks as of Kubernetes 1.N.
    V1(u32),
}

impl Version {
    /// Parses a label value (`latest`, `v1.0`, `v1.25`; no leading zeros).
    pub fn parse(value: &str) -> Result<Self, String> {
        const MESSAGE: &str = "must be \"latest\" or \"v1.x\"";
        if value == "latest" {
            return Ok(Self::Latest);
        }
        let minor = value.strip_prefix("v1.").ok_or(MESSAGE)?;
        let well_formed = !minor.is_empty()
            && minor.bytes().all(|b| b.is_ascii_digit())
            && (minor == "0" || !minor.starts_with('0'));
        if !well_formed {
            return Err(MESSAGE.to_string());
        }
        minor.parse().map(Self::V1).map_err(|_| MESSAGE.to_string())
    }

    /// The Kubernetes minor whose checks apply (newer ones evaluate as the
    /// latest known).
    pub fn minor(self) -> u32 {
        match self {
            Self::Latest => LATEST_MINOR,
            Self::V1(m) => m.min(LATEST_MINOR),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str("latest"),
            Self::V1(m) => write!(f, "v1.{m}"),
        }
    }
}

/// A level at a version, shown as `baseline:latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LevelVersion {
    /// The standard.
    pub level: Level,
    /// Its version.
    pub version: Version,
}

impl LevelVersion {
    const PRIVILEGED: Self = Self {
        level: Level::Privileged,
        version: Version::Latest,
    };
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

/// What a namespace asks for in each mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Pods that violate it are refused.
    pub enforce: LevelVersion,
    /// Violations are recorded in the audit log.
    pub audit: LevelVersion,
    /// Violations are returned as warnings.
    pub warn: LevelVersion,
}

impl Default for Policy {
    /// Upstream's default configuration: privileged in every mode,
    /// nothing exempt.
    fn default() -> Self {
        Self {
            enforce: LevelVersion::PRIVILEGED,
            audit: LevelVersion::PRIVILEGED,
            warn: LevelVersion::PRIVILEGED,
        }
    }
}

impl Policy {
    /// Whether no mode checks anything.
    pub fn fully_privileged(&self) -> bool {
        [self.enforce, self.audit, self.warn]
            .iter()
            .all(|lv| lv.level == Level::Privileged)
    }

    /// The policy of a namespace with `labels`, and the label errors
    /// (`metadata.labels[pod-security.kubernetes.io/enforce]: Invalid
    /// value: "x": must be one of privileged, baseline, restricted`). An
    /// invalid enforce level enforces `restricted`; invalid audit and warn
    /// levels check nothing; an invalid version means `latest`. Without a
    /// warn label, warn follows a stricter enforce level (and its version
    /// unless warn has its own), so `kubectl apply` warns before enforce
    /// refuses.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> (Self, Vec<String>) {
        let mut p = Self::default();
        let mut errors = Vec::new();
        let label = |mode: &str| format!("{LABEL_PREFIX}{mode}");
        let mut report = |mode: &str, value: &str, message: String| {
            errors.push(format!(
                "metadata.labels[{LABEL_PREFIX}{mode}]: Invalid value: \"{value}\": {message}"
            ));
        };
        let mut has_enforce_level = false;
        if let Some(v) = labels.get(&label("enforce")) {
            match Level::parse(v) {
                Ok(l) => {
                    p.enforce.level = l;
                    has_enforce_level = true;
                }
                Err(m) => {
                    p.enforce.level = Level::Restricted;
                    report("enforce", v, m);
                }
            }
        }
        for (mode, slot) in [
            ("enforce-version", &mut p.enforce.version),
            ("audit-version", &mut p.audit.version),
            ("warn-version", &mut p.warn.version),
        ] {
            if let Some(v) = labels.get(&label(mode)) {
                *slot = Version::parse(v).unwrap_or_else(|m| {
                    report(mode, v, m);
                    Version::Latest
                });
            }
        }
        for (mode, slot) in [("audit", &mut p.audit.level), ("warn", &mut p.warn.level)] {
            if let Some(v) = labels.get(&label(mode)) {
                *slot = Level::parse(v).unwrap_or_else(|m| {
                    report(mode, v, m);
                    Level::Privileged
                });
            }
        }
        // Errors in label order, as upstream reports enforce, then audit,
        // then warn, each level before its version.
        errors.sort_by_key(|e| {
            [
                "enforce]",
                "enforce-version]",
                "audit]",
                "audit-version]",
                "warn]",
                "warn-version]",
            ]
            .iter()
            .position(|m| e.contains(&format!("{LABEL_PREFIX}{m}")))
        });
        let has_warn_level = labels.contains_key(&label("warn"));
        let has_warn_version = labels.contains_key(&label("warn-version"));
        if !has_warn_level && has_enforce_level && p.enforce.level > p.warn.level {
            p.warn.level = p.enforce.level;
            if !has_warn_version {
                p.warn.version = p.enforce.version;
            }
        }
        (p, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("{LABEL_PREFIX}{k}"), v.to_string()))
            .collect()
    }

    #[test]
    fn versions_parse_as_upstream() {
        assert_eq!(Version::parse("latest"), Ok(Version::Latest));
        assert_eq!(Version::parse("v1.0"), Ok(Version::V1(0)));
        assert_eq!(Version::parse("v1.25"), Ok(Version::V1(25)));
        for bad in ["v1.05", "v2.1", "1.25", "v1.", "v1.x", ""] {
            assert_eq!(
                Version::parse(bad),
                Err("must be \"latest\" or \"v1.x\"".into()),
                "{bad}"
            );
        }
        assert_eq!(Version::V1(99).minor(), LATEST_MINOR);
        assert_eq!(
            LevelVersion {
                level: Level::Baseline,
                version: Version::V1(30)
            }
            .to_string(),
            "baseline:v1.30"
        );
    }

    #[test]
    fn no_labels_is_fully_privileged() {
        let (p, errors) = Policy::from_labels(&BTreeMap::new());
        assert!(p.fully_privileged() && errors.is_empty());
    }

    #[test]
    fn warn_follows_a_stricter_enforce() {
        let (p, _) = Policy::from_labels(&labels(&[
            ("enforce", "baseline"),
            ("enforce-version", "v1.30"),
        ]));
        assert_eq!(p.warn.to_string(), "baseline:v1.30");
        assert_eq!(p.audit.level, Level::Privileged);
        let (p, _) =
            Policy::from_labels(&labels(&[("enforce", "baseline"), ("warn", "privileged")]));
        assert_eq!(p.warn.level, Level::Privileged, "an explicit warn stays");
    }

    #[test]
    fn invalid_values_fail_closed_for_enforce_and_open_otherwise() {
        let (p, errors) = Policy::from_labels(&labels(&[
            ("enforce", "strict"),
            ("warn", "loud"),
            ("audit-version", "v2"),
        ]));
        assert_eq!(p.enforce.level, Level::Restricted);
        assert_eq!(p.warn.level, Level::Privileged);
        assert_eq!(
            errors,
            [
                "metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted",
                "metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: \"v2\": must be \"latest\" or \"v1.x\"",
                "metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: \"loud\": must be one of privileged, baseline, restricted",
            ]
        );
    }
}
