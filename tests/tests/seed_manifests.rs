//! The manifests of the study notes (`tests/fixtures/seeds`), applied with
//! the real `kubectl` against `skiff-control-plane`.
//!
//! Every `*.yaml` directly in the folder is one valid object: it must be
//! created, shown by `get` and `describe`, and re-applying it must change
//! nothing. Every file in `invalid/` starts with `# expect: <text>`: applying
//! it must fail with that text in stderr (upstream's wording).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/seeds");

/// At least this many valid fixtures must exist, so the test cannot pass
/// vacuously (30 at the time of writing).
const MIN_VALID: usize = 25;

/// The `*.yaml` files directly in `dir`. They are sorted by name without the
/// extension, so `x.yaml` comes before `x-2.yaml`.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort_by_key(|p| p.with_extension(""));
    files
}

/// `kind` and `metadata.name` of the single object in `file`.
fn kind_and_name(file: &Path) -> (String, String) {
    let text = std::fs::read_to_string(file).expect("read fixture");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not one YAML document: {e}", file.display()));
    let field = |v: &serde_yaml::Value| v.as_str().map(str::to_string);
    let kind = field(&doc["kind"]);
    let name = field(&doc["metadata"]["name"]);
    match (kind, name) {
        (Some(kind), Some(name)) => (kind, name),
        _ => panic!("{}: no kind or metadata.name", file.display()),
    }
}

/// The text after `# expect:` on the first line of `file`.
fn expected_error(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("read fixture");
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect:"))
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| panic!("{}: first line is not `# expect: ...`", file.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Applies one valid fixture and checks `get`, `describe` and a second
/// apply. Returns what went wrong.
fn check_valid(cp: &TestControlPlane, file: &str, kind: &str, name: &str) -> Result<(), String> {
    let out = cp.kubectl(&["apply", "-f", file]);
    let applied = text(&out.stdout);
    if !out.status.success() {
        return Err(format!("apply failed: {applied}{}", text(&out.stderr)));
    }
    let out = cp.kubectl(&["get", kind, name, "-o", "name"]);
    let shown = text(&out.stdout).trim().to_string();
    if !out.status.success() || !shown.ends_with(&format!("/{name}")) {
        return Err(format!("get -o name: {shown:?} {}", text(&out.stderr)));
    }
    if applied.trim() != format!("{shown} created") {
        return Err(format!(
            "apply printed {applied:?}, not \"{shown} created\""
        ));
    }
    let out = cp.kubectl(&["describe", kind, name]);
    let described = text(&out.stdout);
    if !out.status.success() || !described.contains(name) {
        return Err(format!("describe failed: {described}{}", text(&out.stderr)));
    }
    let generation = || {
        text(
            &cp.kubectl(&["get", kind, name, "-o", "jsonpath={.metadata.generation}"])
                .stdout,
        )
    };
    let before = generation();
    let out = cp.kubectl(&["apply", "-f", file]);
    let again = text(&out.stdout);
    // Upstream, too, reports a StatefulSet with volumeClaimTemplates as
    // "configured" on every apply: the server defaults the templates
    // (apiVersion, kind, volumeMode, status) and kubectl replaces that
    // atomic list (kubernetes/kubernetes#66450). Nothing changes, though.
    let claim_templates =
        std::fs::read_to_string(file).is_ok_and(|f| f.contains("volumeClaimTemplates"));
    if claim_templates
        && out.status.success()
        && again.trim() == format!("{shown} configured")
        && generation() == before
    {
        return Ok(());
    }
    if !out.status.success() || again.trim() != format!("{shown} unchanged") {
        return Err(format!(
            "second apply is not \"{shown} unchanged\": {again}{}",
            text(&out.stderr)
        ));
    }
    Ok(())
}

/// Applies one invalid fixture: it must fail with `expected` in stderr and
/// store nothing.
fn check_invalid(
    cp: &TestControlPlane,
    file: &str,
    kind: &str,
    name: &str,
    expected: &str,
) -> Result<(), String> {
    let out = cp.kubectl(&["apply", "-f", file]);
    let stderr = text(&out.stderr);
    if out.status.success() {
        return Err(format!("apply succeeded: {}", text(&out.stdout)));
    }
    if !stderr.contains(expected) {
        return Err(format!("stderr lacks {expected:?}: {stderr}"));
    }
    let out = cp.kubectl(&["get", kind, name, "-o", "name"]);
    if out.status.success() {
        return Err(format!(
            "the rejected object was stored: {}",
            text(&out.stdout)
        ));
    }
    Ok(())
}

/// Every seed fixture: valid ones are created, shown, described and
/// re-applied unchanged; invalid ones get their upstream error.
#[tokio::test]
async fn seed_manifests_apply_with_kubectl() {
    if !kubectl_enabled("seed_manifests_apply_with_kubectl") {
        return;
    }
    let dir = Path::new(FIXTURES);
    let valid = yaml_files(dir);
    let invalid = yaml_files(&dir.join("invalid"));
    assert!(
        valid.len() >= MIN_VALID,
        "only {} valid fixtures in {FIXTURES}",
        valid.len()
    );
    assert!(!invalid.is_empty(), "no fixtures in {FIXTURES}/invalid");

    let cp = TestControlPlane::start().await;
    let mut failures = Vec::new();
    // Fixtures such as `job-mypi.yaml` and `job-mypi-2.yaml` are different
    // manifests for one kind and name, not updates of each other: delete the
    // earlier object first so each one is created on its own.
    let mut seen = HashSet::new();
    for path in &valid {
        let (kind, name) = kind_and_name(path);
        let file = path.display().to_string();
        if !seen.insert((kind.clone(), name.clone())) {
            let out = cp.kubectl(&["delete", &kind, &name]);
            if !out.status.success() {
                failures.push(format!(
                    "{file}: deleting the earlier {kind} {name} failed: {}",
                    text(&out.stderr)
                ));
                continue;
            }
        }
        if let Err(e) = check_valid(&cp, &file, &kind, &name) {
            failures.push(format!("{file}: {e}"));
        }
    }
    for path in &invalid {
        let (kind, name) = kind_and_name(path);
        let expected = expected_error(path);
        let file = path.display().to_string();
        if let Err(e) = check_invalid(&cp, &file, &kind, &name, &expected) {
            failures.push(format!("{file}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}\ncontrol plane log:\n{}",
        failures.len(),
        valid.len() + invalid.len(),
        failures.join("\n"),
        cp.log()
    );
}
