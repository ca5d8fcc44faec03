//! How a container's process is derived from its image and its Kubernetes
//! container spec: `command`/`args` against ENTRYPOINT/CMD, `$(VAR)`
//! expansion, environment merging, working directory and user. Pure logic,
//! shared by every runtime.

use super::types::ContainerConfig;

/// PATH containerd puts in when neither the image nor the pod sets one;
/// without it runc cannot resolve a bare `args[0]`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The parts of an image's configuration that shape the process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    /// ENTRYPOINT.
    pub entrypoint: Vec<String>,
    /// CMD.
    pub cmd: Vec<String>,
    /// ENV as `KEY=value`.
    pub env: Vec<String>,
    /// WORKDIR (may be empty).
    pub working_dir: String,
    /// USER (may be empty).
    pub user: String,
}

/// The process to start, fully resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedProcess {
    /// argv.
    pub args: Vec<String>,
    /// Environment as `KEY=value`.
    pub env: Vec<String>,
    /// Working directory (absolute).
    pub cwd: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Why a process cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    /// Neither the container nor the image names a program.
    #[error("no command specified")]
    NoCommand,
    /// `workingDir` must be absolute.
    #[error("working directory {0:?} is not absolute")]
    RelativeWorkingDir(String),
    /// The image's USER cannot be resolved without reading its files.
    #[error("image user {0:?} is not numeric (uid[:gid])")]
    UnsupportedUser(String),
    /// `runAsNonRoot` refuses the user the container would run as.
    #[error("{0}")]
    NonRoot(NonRootViolation),
}

/// Why `runAsNonRoot: true` refuses a container, as upstream's kubelet
/// decides before creating it (its words, without the pod suffix the
/// kubelet adds).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NonRootViolation {
    /// `runAsUser: 0` with `runAsNonRoot: true`.
    #[error("container's runAsUser breaks non-root policy")]
    RunAsUserRoot,
    /// The image's USER is empty or uid 0.
    #[error("container has runAsNonRoot and image will run as root")]
    ImageRunsAsRoot,
    /// The image's USER is a name: its uid is unknown without the image's
    /// passwd file, so it cannot be shown to be non-root.
    #[error(
        "container has runAsNonRoot and image has non-numeric user ({0}), cannot verify user is non-root"
    )]
    NonNumericUser(String),
}

/// Upstream's `runAsNonRoot` check: an explicit `runAsUser` decides;
/// otherwise the image's USER must be a numeric, non-zero uid (its user
/// part; an empty USER means root).
pub fn verify_non_root(run_as_user: Option<u32>, image_user: &str) -> Result<(), NonRootViolation> {
    if let Some(uid) = run_as_user {
        return if uid == 0 {
            Err(NonRootViolation::RunAsUserRoot)
        } else {
            Ok(())
        };
    }
    let user = image_user.split(':').next().unwrap_or_default();
    if user.is_empty() {
        return Err(NonRootViolation::ImageRunsAsRoot);
    }
    match user.parse::<i64>() {
        Ok(0) => Err(NonRootViolation::ImageRunsAsRoot),
        Ok(_) => Ok(()),
        Err(_) => Err(NonRootViolation::NonNumericUser(user.to_string())),
    }
}

/// Expands `$(VAR)` in `input` with `vars`, as Kubernetes does for
/// `command`, `args` and `env` values: `$$` escapes a `$`, and references to
/// unknown variables are left as written.
pub fn expand_vars(input: &str, vars: &[(String, String)]) -> String {
    let lookup = |name: &str| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match lookup(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Resolves the process of `config` over the image defaults `image`.
pub fn resolve(
    config: &ContainerConfig,
    image: &ImageDefaults,
) -> Result<ResolvedProcess, ProcessError> {
    // Env values may reference earlier entries (Kubernetes expands in order).
    let mut container_env: Vec<(String, String)> = Vec::with_capacity(config.env.len());
    for (key, value) in &config.env {
        let expanded = expand_vars(value, &container_env);
        container_env.push((key.clone(), expanded));
    }
    let expand_all = |list: &[String]| -> Vec<String> {
        list.iter()
            .map(|s| expand_vars(s, &container_env))
            .collect()
    };

    let args = match (config.command.is_empty(), config.args.is_empty()) {
        (true, true) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
        (true, false) => image
            .entrypoint
            .iter()
            .cloned()
            .chain(expand_all(&config.args))
            .collect(),
        (false, _) => expand_all(&config.command)
            .into_iter()
            .chain(expand_all(&config.args))
            .collect::<Vec<_>>(),
    };
    if args.is_empty() {
        return Err(ProcessError::NoCommand);
    }

    let mut env: Vec<String> = image.env.clone();
    for (key, value) in &container_env {
        let entry = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(existing) => *existing = entry,
            None => env.push(entry),
        }
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }

    let cwd = match &config.working_dir {
        Some(dir) if !dir.is_empty() => dir.clone(),
        _ if !image.working_dir.is_empty() => image.working_dir.clone(),
        _ => "/".to_string(),
    };
    if !cwd.starts_with('/') {
        return Err(ProcessError::RelativeWorkingDir(cwd));
    }

    if config.security.run_as_non_root {
        verify_non_root(config.user.map(|(uid, _)| uid), &image.user)
            .map_err(ProcessError::NonRoot)?;
    }
    let (uid, gid) = match config.user {
        Some(ids) => ids,
        None => {
            let (uid, gid) = parse_image_user(&image.user)?;
            (uid, config.security.run_as_group.unwrap_or(gid))
        }
    };
    Ok(ResolvedProcess {
        args,
        env,
        cwd,
        uid,
        gid,
    })
}

fn parse_image_user(user: &str) -> Result<(u32, u32), ProcessError> {
    let unsupported = || ProcessError::UnsupportedUser(user.to_string());
    match user.split_once(':') {
        _ if user.is_empty() || user == "root" || user == "0" => Ok((0, 0)),
        Some((u, g)) => {
            let uid = if u == "root" {
                0
            } else {
                u.parse().map_err(|_| unsupported())?
            };
            let gid = if g == "root" {
                0
            } else {
                g.parse().map_err(|_| unsupported())?
            };
            Ok((uid, gid))
        }
        None => {
            let uid: u32 = user.parse().map_err(|_| unsupported())?;
            Ok((uid, uid))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_images::ImageName;

    fn image() -> ImageDefaults {
        ImageDefaults {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["--default".into()],
            env: vec!["PATH=/bin".into(), "MODE=image".into()],
            working_dir: "/srv".into(),
            user: String::new(),
        }
    }

    fn config() -> ContainerConfig {
        ContainerConfig::new(
            "c1",
            ImageName::parse("busybox").expect("valid"),
            "/tmp/c1.log",
        )
    }

    #[test]
    fn image_entrypoint_and_cmd_run_when_nothing_is_overridden() {
        let p = resolve(&config(), &image()).expect("resolves");
        assert_eq!(p.args, ["/entry", "--default"]);
    }

    #[test]
    fn args_replace_cmd_but_keep_entrypoint() {
        let mut c = config();
        c.args = vec!["--flag".into()];
        assert_eq!(
            resolve(&c, &image()).expect("resolves").args,
            ["/entry", "--flag"]
        );
    }

    #[test]
    fn command_replaces_entrypoint_and_drops_image_cmd() {
        let mut c = config();
        c.command = vec!["sh".into(), "-c".into()];
        assert_eq!(resolve(&c, &image()).expect("resolves").args, ["sh", "-c"]);
        c.args = vec!["echo hi".into()];
        assert_eq!(
            resolve(&c, &image()).expect("resolves").args,
            ["sh", "-c", "echo hi"]
        );
    }

    #[test]
    fn no_program_anywhere_is_an_error() {
        let err = resolve(&config(), &ImageDefaults::default()).expect_err("nothing to run");
        assert_eq!(err, ProcessError::NoCommand);
        assert_eq!(err.to_string(), "no command specified");
    }

    #[test]
    fn env_is_merged_over_the_image_env_and_path_is_kept() {
        let mut c = config();
        c.env = vec![("MODE".into(), "pod".into()), ("EXTRA".into(), "1".into())];
        let p = resolve(&c, &image()).expect("resolves");
        assert_eq!(p.env, ["PATH=/bin", "MODE=pod", "EXTRA=1"]);
    }

    #[test]
    fn a_default_path_is_added_when_none_is_set() {
        let p = resolve(
            &config(),
            &ImageDefaults {
                cmd: vec!["x".into()],
                ..ImageDefaults::default()
            },
        )
        .expect("resolves");
        assert_eq!(p.env, [format!("PATH={DEFAULT_PATH}")]);
        assert_eq!(p.cwd, "/");
    }

    #[test]
    fn working_dir_overrides_image_workdir_and_must_be_absolute() {
        let mut c = config();
        assert_eq!(resolve(&c, &image()).expect("resolves").cwd, "/srv");
        c.working_dir = Some("/data".into());
        assert_eq!(resolve(&c, &image()).expect("resolves").cwd, "/data");
        c.working_dir = Some("data".into());
        assert!(matches!(
            resolve(&c, &image()),
            Err(ProcessError::RelativeWorkingDir(_))
        ));
    }

    #[test]
    fn variable_references_expand_like_kubernetes() {
        let vars = vec![("A".to_string(), "x".to_string())];
        assert_eq!(
            expand_vars("$(A)-$(B)-$$(A)-$A-$(", &vars),
            "x-$(B)-$(A)-$A-$("
        );
        let mut c = config();
        c.env = vec![
            ("GREETING".into(), "hi".into()),
            ("MSG".into(), "$(GREETING) there".into()),
        ];
        c.command = vec!["echo".into(), "$(MSG)".into()];
        let p = resolve(&c, &image()).expect("resolves");
        assert_eq!(p.args, ["echo", "hi there"]);
        assert!(p.env.contains(&"MSG=hi there".to_string()));
    }

    #[test]
    fn numeric_image_users_are_honoured_and_names_refused() {
        let mut img = image();
        img.user = "1000:2000".into();
        let p = resolve(&config(), &img).expect("resolves");
        assert_eq!((p.uid, p.gid), (1000, 2000));
        img.user = "nobody".into();
        assert!(matches!(
            resolve(&config(), &img),
            Err(ProcessError::UnsupportedUser(_))
        ));
        let mut c = config();
        c.user = Some((5, 6));
        assert_eq!(resolve(&c, &img).map(|p| (p.uid, p.gid)), Ok((5, 6)));
    }

    #[test]
    fn run_as_non_root_refuses_root_and_unverifiable_users() {
        let mut c = config();
        c.security.run_as_non_root = true;
        let err = resolve(&c, &image()).expect_err("image runs as root");
        assert_eq!(
            err.to_string(),
            "container has runAsNonRoot and image will run as root"
        );
        let mut img = image();
        img.user = "nobody".into();
        assert_eq!(
            resolve(&c, &img).expect_err("non-numeric").to_string(),
            "container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root"
        );
        img.user = "0:1000".into();
        assert_eq!(
            resolve(&c, &img),
            Err(ProcessError::NonRoot(NonRootViolation::ImageRunsAsRoot))
        );
        img.user = "1000:1000".into();
        assert_eq!(resolve(&c, &img).map(|p| p.uid), Ok(1000));
        c.user = Some((0, 0));
        assert_eq!(
            resolve(&c, &img).expect_err("explicit root").to_string(),
            "container's runAsUser breaks non-root policy"
        );
        c.user = Some((2000, 0));
        img.user = String::new();
        assert_eq!(resolve(&c, &img).map(|p| p.uid), Ok(2000));
    }

    #[test]
    fn run_as_group_alone_keeps_the_image_user() {
        let mut c = config();
        c.security.run_as_group = Some(3000);
        let mut img = image();
        img.user = "1000:1000".into();
        assert_eq!(resolve(&c, &img).map(|p| (p.uid, p.gid)), Ok((1000, 3000)));
    }
}
