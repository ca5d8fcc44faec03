//! Skiff's own CNI executor, after the CNI spec 1.0 and libcni's behaviour:
//! each plugin is a binary from the plugin directory, run with the command
//! and the attachment in its own environment (never the kubelet's: several
//! pods attach at once under tokio) and its network config on stdin; it
//! answers a result or an error as JSON on stdout.
//!
//! A conflist's ADD runs the plugins in order, each getting the previous
//! result as `prevResult`; DEL runs them in reverse. The ADD result is cached
//! on disk with the config it was made with, so DEL and CHECK work after a
//! kubelet restart or a config change, as libcni does.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;
use tracing::{debug, warn};

/// Where Debian's `containernetworking-plugins` puts the plugins.
pub const DEFAULT_PLUGIN_DIR: &str = "/usr/lib/cni";

/// The spec version Skiff speaks; every plugin of the Debian package
/// answers `VERSION` with 0.1.0 … 1.0.0.
pub const CNI_VERSION: &str = "1.0.0";

/// How long one plugin may run before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A CNI verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CniCommand {
    /// Attach.
    Add,
    /// Detach (must succeed when there is nothing to detach).
    Del,
    /// Verify an earlier ADD is still in place.
    Check,
}

impl CniCommand {
    /// The value of `CNI_COMMAND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
        }
    }
}

impl std::fmt::Display for CniCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is attached: one interface of one pod sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// `CNI_CONTAINERID`: unique per sandbox on this node.
    pub container_id: String,
    /// `CNI_NETNS`: the sandbox's namespace path; empty on a DEL whose
    /// namespace is already gone (plugins then only release what they hold).
    pub netns: PathBuf,
    /// `CNI_IFNAME`: the interface inside the namespace.
    pub ifname: String,
    /// The pod's namespace, name and UID (`K8S_POD_*` in `CNI_ARGS`).
    pub pod_namespace: String,
    /// See `pod_namespace`.
    pub pod_name: String,
    /// See `pod_namespace`.
    pub pod_uid: String,
}

impl Attachment {
    /// `CNI_ARGS`. `IgnoreUnknown=1` comes first because plugins that parse
    /// their args strictly (host-local among them) refuse the `K8S_POD_*`
    /// keys otherwise; upstream's runtimes send it the same way.
    pub fn cni_args(&self) -> String {
        format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_UID={}",
            self.pod_namespace, self.pod_name, self.pod_uid
        )
    }
}

/// A network configuration list (`.conflist`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfList {
    /// The spec version of every plugin config.
    pub cni_version: String,
    /// The network's name (host-local keys its reservations by it).
    pub name: String,
    /// Plugin configs in ADD order; each has a `type`.
    pub plugins: Vec<Map<String, Value>>,
}

impl ConfList {
    /// The config one plugin gets on stdin: its own object plus the list's
    /// `cniVersion` and `name`, and `prevResult` when there is one.
    pub fn plugin_config(
        &self,
        index: usize,
        prev: Option<&CniResult>,
    ) -> Result<(String, Vec<u8>), CniError> {
        let plugin = self.plugins.get(index).ok_or_else(|| CniError::BadConfig {
            detail: format!("no plugin {index} in {}", self.name),
        })?;
        let kind = plugin
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && !t.contains('/'))
            .ok_or_else(|| CniError::BadConfig {
                detail: format!("plugin {index} of {} has no valid type", self.name),
            })?
            .to_string();
        let mut config = plugin.clone();
        config.insert("cniVersion".into(), Value::from(self.cni_version.clone()));
        config.insert("name".into(), Value::from(self.name.clone()));
        if let Some(prev) = prev {
            let prev = serde_json::to_value(prev).map_err(|e| CniError::BadConfig {
                detail: format!("cannot encode prevResult: {e}"),
            })?;
            config.insert("prevResult".into(), prev);
        }
        let bytes = serde_json::to_vec(&config).map_err(|e| CniError::BadConfig {
            detail: e.to_string(),
        })?;
        Ok((kind, bytes))
    }
}

/// A CNI 1.0 result. Fields Skiff does not read (routes, dns, anything a
/// plugin adds) are kept as they came, so the result passes on unchanged as
/// the next plugin's `prevResult`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    /// The version the plugin answered in.
    pub cni_version: String,
    /// Interfaces the plugins made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<CniInterface>,
    /// Addresses given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<CniIp>,
    /// Everything else.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One interface of a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CniInterface {
    /// Its name.
    pub name: String,
    /// Its namespace path; absent for interfaces on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// The rest (`mac`, ...).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One address of a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CniIp {
    /// `a.b.c.d/len`.
    pub address: String,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// The rest (`gateway`, ...).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl CniResult {
    /// The pod's IPv4 address: the first non-loopback one on `ifname` inside
    /// the sandbox (a loopback plugin's 127.0.0.1 is never the pod IP), or
    /// failing that the first non-loopback one at all.
    pub fn pod_ipv4(&self, ifname: &str) -> Option<std::net::Ipv4Addr> {
        let v4 = |ip: &CniIp| {
            ip.address
                .parse::<ipnet::Ipv4Net>()
                .ok()
                .map(|n| n.addr())
                .filter(|a| !a.is_loopback())
        };
        let on_ifname = |ip: &CniIp| {
            ip.interface
                .and_then(|i| self.interfaces.get(i))
                .is_some_and(|i| i.name == ifname && i.sandbox.is_some())
        };
        self.ips
            .iter()
            .filter(|ip| on_ifname(ip))
            .find_map(v4)
            .or_else(|| self.ips.iter().find_map(v4))
    }
}

/// The error a plugin answers on stdout when it fails.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PluginError {
    /// The spec's error code (1–99 reserved, 100+ plugin-specific).
    pub code: u32,
    /// A short message.
    pub msg: String,
    /// More detail, when given.
    #[serde(default)]
    pub details: String,
}

impl PluginError {
    /// Parses a plugin's error answer; `None` when the output is not one.
    pub fn parse(output: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(output).ok()
    }

    /// The spec's name for the code, when it is a well-known one.
    pub fn code_name(&self) -> &'static str {
        match self.code {
            1 => "incompatible CNI version",
            2 => "unsupported field in network configuration",
            3 => "container unknown or does not exist",
            4 => "invalid necessary environment variables",
            5 => "I/O failure",
            6 => "failed to decode content",
            7 => "invalid network config",
            11 => "try again later",
            100.. => "plugin-specific error",
            _ => "reserved error code",
        }
    }
}

/// Why running CNI failed.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// No plugin binary of that type in the plugin directories.
    #[error("CNI plugin `{plugin}` not found in {dirs}")]
    PluginNotFound {
        /// The plugin type.
        plugin: String,
        /// The directories searched.
        dirs: String,
    },
    /// The network config is unusable.
    #[error("bad CNI network config: {detail}")]
    BadConfig {
        /// What is wrong.
        detail: String,
    },
    /// The plugin could not be started or talked to.
    #[error("cannot run CNI plugin {}: {source}", path.display())]
    Spawn {
        /// The plugin binary.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The plugin ran longer than the timeout and was killed.
    #[error("CNI plugin `{plugin}` {command} timed out after {after:?}")]
    Timeout {
        /// The plugin type.
        plugin: String,
        /// The verb.
        command: CniCommand,
        /// The timeout.
        after: Duration,
    },
    /// The plugin answered an error.
    #[error("CNI plugin `{plugin}` {command} failed: code {} ({}): {}{}", .error.code, .error.code_name(), .error.msg, details(&.error.details))]
    Plugin {
        /// The plugin type.
        plugin: String,
        /// The verb.
        command: CniCommand,
        /// What it said.
        error: PluginError,
    },
    /// The plugin failed without a readable error.
    #[error("CNI plugin `{plugin}` {command} exited with {status}: {output}")]
    Exited {
        /// The plugin type.
        plugin: String,
        /// The verb.
        command: CniCommand,
        /// The exit status.
        status: String,
        /// Its stderr (or stdout), trimmed.
        output: String,
    },
    /// The plugin succeeded but its result does not parse.
    #[error("CNI plugin `{plugin}` {command} answered an unreadable result: {source}")]
    BadResult {
        /// The plugin type.
        plugin: String,
        /// The verb.
        command: CniCommand,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// CHECK needs the ADD result, and there is none cached.
    #[error("no cached CNI result for {container_id}/{ifname}")]
    NotCached {
        /// The attachment's container ID.
        container_id: String,
        /// Its interface.
        ifname: String,
    },
    /// The result cache could not be read or written.
    #[error("CNI result cache {}: {source}", path.display())]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn details(d: &str) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!(" ({d})")
    }
}

/// Runs plugin binaries.
#[derive(Debug, Clone)]
pub struct CniExecutor {
    plugin_dirs: Vec<PathBuf>,
    timeout: Duration,
    node_netns: Option<PathBuf>,
}

impl Default for CniExecutor {
    fn default() -> Self {
        Self::new(vec![PathBuf::from(DEFAULT_PLUGIN_DIR)])
    }
}

impl CniExecutor {
    /// Plugins from `plugin_dirs` (searched in order, and passed on as
    /// `CNI_PATH` so plugins that delegate, like bridge to host-local, find
    /// theirs), run in the current network namespace.
    pub fn new(plugin_dirs: Vec<PathBuf>) -> Self {
        Self {
            plugin_dirs,
            timeout: DEFAULT_TIMEOUT,
            node_netns: None,
        }
    }

    /// Kills a plugin that runs longer than `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs the plugins inside the namespace at `netns` instead of the
    /// current one (the node side of a veth lands where the plugin runs).
    pub fn in_node_netns(mut self, netns: Option<PathBuf>) -> Self {
        self.node_netns = netns;
        self
    }

    /// The environment one plugin run gets, besides `PATH`.
    pub fn environment(&self, command: CniCommand, att: &Attachment) -> Vec<(String, String)> {
        let cni_path = std::env::join_paths(&self.plugin_dirs)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        vec![
            ("CNI_COMMAND".into(), command.as_str().into()),
            ("CNI_CONTAINERID".into(), att.container_id.clone()),
            ("CNI_NETNS".into(), att.netns.to_string_lossy().into_owned()),
            ("CNI_IFNAME".into(), att.ifname.clone()),
            ("CNI_ARGS".into(), att.cni_args()),
            ("CNI_PATH".into(), cni_path),
        ]
    }

    /// The binary of plugin type `kind`.
    pub fn find_plugin(&self, kind: &str) -> Result<PathBuf, CniError> {
        self.plugin_dirs
            .iter()
            .map(|d| d.join(kind))
            .find(|p| p.is_file())
            .ok_or_else(|| CniError::PluginNotFound {
                plugin: kind.to_string(),
                dirs: self
                    .plugin_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":"),
            })
    }

    /// Runs one plugin; returns its stdout when it succeeded.
    pub async fn invoke(
        &self,
        command: CniCommand,
        att: &Attachment,
        kind: &str,
        config: &[u8],
    ) -> Result<Vec<u8>, CniError> {
        let path = self.find_plugin(kind)?;
        let spawn_err = |source| CniError::Spawn {
            path: path.clone(),
            source,
        };
        let mut child = crate::network::node_command(&path, self.node_netns.as_deref())
            .map_err(spawn_err)?
            // Only PATH from the kubelet: a stray CNI_* variable in its own
            // environment must never reach a plugin.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.environment(command, att))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_err)?;
        let started = Instant::now();
        let stdin = child.stdin.take();
        let run = async move {
            if let Some(mut stdin) = stdin {
                match stdin.write_all(config).await {
                    // A plugin that fails before reading its config closes
                    // stdin; its own answer says more than EPIPE.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                    r => r?,
                }
                // Closing stdin is the end of the config for the plugin.
                drop(stdin);
            }
            child.wait_with_output().await
        };
        // On timeout the future (and with it the child) is dropped: killed.
        let out = tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| CniError::Timeout {
                plugin: kind.to_string(),
                command,
                after: self.timeout,
            })?
            .map_err(spawn_err)?;
        debug!(plugin = kind, %command, took = ?started.elapsed(), status = %out.status, "CNI plugin ran");
        if out.status.success() {
            return Ok(out.stdout);
        }
        Err(match PluginError::parse(&out.stdout) {
            Some(error) => CniError::Plugin {
                plugin: kind.to_string(),
                command,
                error,
            },
            None => {
                let text = if out.stderr.iter().all(u8::is_ascii_whitespace) {
                    &out.stdout
                } else {
                    &out.stderr
                };
                CniError::Exited {
                    plugin: kind.to_string(),
                    command,
                    status: out.status.to_string(),
                    output: String::from_utf8_lossy(text).trim().to_string(),
                }
            }
        })
    }

    /// ADD over a conflist: plugins in order, each with the previous result.
    /// On failure the plugins are DELeted again (in reverse, best effort) so
    /// no address stays reserved for an attachment that never came up.
    pub async fn add_list(&self, list: &ConfList, att: &Attachment) -> Result<CniResult, CniError> {
        let mut prev: Option<CniResult> = None;
        for index in 0..list.plugins.len() {
            let (kind, config) = list.plugin_config(index, prev.as_ref())?;
            let step = async {
                let out = self.invoke(CniCommand::Add, att, &kind, &config).await?;
                parse_result(&kind, CniCommand::Add, &out)
            };
            match step.await {
                Ok(result) => prev = Some(result),
                Err(e) => {
                    if let Err(del) = self.del_list(list, att, prev.as_ref()).await {
                        warn!(error = %del, "undoing a failed CNI ADD failed");
                    }
                    return Err(e);
                }
            }
        }
        prev.ok_or_else(|| CniError::BadConfig {
            detail: format!("network {} has no plugins", list.name),
        })
    }

    /// DEL over a conflist: plugins in reverse, each with the cached result
    /// (if any) as `prevResult`. Every plugin runs even after one fails, so
    /// one broken step cannot keep the others' resources; the first error
    /// is returned.
    pub async fn del_list(
        &self,
        list: &ConfList,
        att: &Attachment,
        prev: Option<&CniResult>,
    ) -> Result<(), CniError> {
        let mut first_err = None;
        for index in (0..list.plugins.len()).rev() {
            let (kind, config) = list.plugin_config(index, prev)?;
            if let Err(e) = self.invoke(CniCommand::Del, att, &kind, &config).await {
                warn!(plugin = %kind, error = %e, "CNI DEL failed");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// CHECK over a conflist: plugins in order, each with the ADD result.
    pub async fn check_list(
        &self,
        list: &ConfList,
        att: &Attachment,
        prev: &CniResult,
    ) -> Result<(), CniError> {
        for index in 0..list.plugins.len() {
            let (kind, config) = list.plugin_config(index, Some(prev))?;
            self.invoke(CniCommand::Check, att, &kind, &config).await?;
        }
        Ok(())
    }
}

/// Parses a plugin's success answer.
pub fn parse_result(kind: &str, command: CniCommand, out: &[u8]) -> Result<CniResult, CniError> {
    serde_json::from_slice(out).map_err(|source| CniError::BadResult {
        plugin: kind.to_string(),
        command,
        source,
    })
}

/// What the cache keeps of one ADD: the result and the config it was made
/// with (DEL must use that config, not whatever the node's is now).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedAttachment {
    /// Format marker.
    pub kind: String,
    /// `CNI_CONTAINERID` of the ADD.
    pub container_id: String,
    /// `CNI_IFNAME` of the ADD.
    pub if_name: String,
    /// The conflist the ADD ran.
    pub config: ConfList,
    /// The final result.
    pub result: CniResult,
}

const CACHE_KIND: &str = "skiffCniCacheV1";

/// ADD results on disk: `<dir>/<network>-<containerid>-<ifname>.json`.
#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
}

impl ResultCache {
    /// A cache in `dir` (made on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The file of one attachment.
    pub fn path(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.dir
            .join(format!("{network}-{container_id}-{ifname}.json"))
    }

    /// The cached ADD of an attachment, if any.
    pub async fn load(
        &self,
        network: &str,
        att: &Attachment,
    ) -> Result<Option<CachedAttachment>, CniError> {
        let path = self.path(network, &att.container_id, &att.ifname);
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CniError::Cache { path, source }),
        };
        match serde_json::from_slice::<CachedAttachment>(&bytes) {
            Ok(c) if c.kind == CACHE_KIND => Ok(Some(c)),
            // A torn or foreign file is no result: treated as absent, so DEL
            // still runs with the current config and the file is replaced.
            _ => {
                warn!(path = %path.display(), "ignoring unreadable CNI result cache");
                Ok(None)
            }
        }
    }

    /// Writes an attachment's ADD atomically (temp file, fsync, rename), so a
    /// kubelet killed mid-write leaves the old file or the new, never half.
    pub async fn store(
        &self,
        att: &Attachment,
        config: &ConfList,
        result: &CniResult,
    ) -> Result<PathBuf, CniError> {
        let path = self.path(&config.name, &att.container_id, &att.ifname);
        let entry = CachedAttachment {
            kind: CACHE_KIND.into(),
            container_id: att.container_id.clone(),
            if_name: att.ifname.clone(),
            config: config.clone(),
            result: result.clone(),
        };
        let cache_err = |source| CniError::Cache {
            path: path.clone(),
            source,
        };
        let bytes =
            serde_json::to_vec_pretty(&entry).map_err(|e| cache_err(std::io::Error::other(e)))?;
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(cache_err)?;
        let tmp = path.with_extension("json.tmp");
        let write = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            file.write_all(&bytes).await?;
            file.sync_all().await?;
            tokio::fs::rename(&tmp, &path).await
        };
        if let Err(e) = write.await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(cache_err(e));
        }
        Ok(path)
    }

    /// Forgets an attachment; forgetting one that is not cached succeeds.
    pub async fn remove(&self, network: &str, att: &Attachment) -> Result<(), CniError> {
        let path = self.path(network, &att.container_id, &att.ifname);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CniError::Cache { path, source }),
        }
    }
}

/// The executor and the cache together: what a pod network calls.
#[derive(Debug, Clone)]
pub struct Cni {
    /// Runs the plugins.
    pub executor: CniExecutor,
    /// Keeps the ADD results.
    pub cache: ResultCache,
}

impl Cni {
    /// ADD, then cache the result. If the result cannot be cached the
    /// attachment is undone: an uncached attachment could not be DELeted
    /// with its own config later.
    pub async fn add(&self, list: &ConfList, att: &Attachment) -> Result<CniResult, CniError> {
        let result = self.executor.add_list(list, att).await?;
        if let Err(e) = self.cache.store(att, list, &result).await {
            if let Err(del) = self.executor.del_list(list, att, Some(&result)).await {
                warn!(error = %del, "undoing an uncacheable CNI ADD failed");
            }
            return Err(e);
        }
        Ok(result)
    }

    /// CHECK the cached ADD of `att` (of network `network`).
    pub async fn check(&self, network: &str, att: &Attachment) -> Result<CniResult, CniError> {
        let cached = self
            .cache
            .load(network, att)
            .await?
            .ok_or_else(|| CniError::NotCached {
                container_id: att.container_id.clone(),
                ifname: att.ifname.clone(),
            })?;
        self.executor
            .check_list(&cached.config, att, &cached.result)
            .await?;
        Ok(cached.result)
    }

    /// DEL with the cached config and result; without a cache, with
    /// `current` and no `prevResult` (plugins must tolerate that), or not at
    /// all when there is no config either (nothing can have been added).
    /// The cache goes only once DEL succeeded, so a failed DEL can be
    /// retried with what the ADD made.
    pub async fn del(
        &self,
        network: &str,
        current: Option<&ConfList>,
        att: &Attachment,
    ) -> Result<(), CniError> {
        let cached = self.cache.load(network, att).await?;
        let (list, prev) = match (&cached, current) {
            (Some(c), _) => (&c.config, Some(&c.result)),
            (None, Some(list)) => (list, None),
            (None, None) => return Ok(()),
        };
        self.executor.del_list(list, att, prev).await?;
        self.cache.remove(network, att).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att() -> Attachment {
        Attachment {
            container_id: "0c8f5a1e-uid".into(),
            netns: PathBuf::from("/run/netns/skiff-node1-0c8f5a1e"),
            ifname: "eth0".into(),
            pod_namespace: "default".into(),
            pod_name: "web-1".into(),
            pod_uid: "0c8f5a1e-uid".into(),
        }
    }

    fn list() -> ConfList {
        serde_json::from_value(serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "skiff",
            "plugins": [{"type": "loopback"}, {"type": "bridge", "bridge": "cni0"}]
        }))
        .expect("json")
    }

    const BRIDGE_RESULT: &str = r#"{
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "cni0", "mac": "aa:bb:cc:dd:ee:01"},
            {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:02"},
            {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": "/run/netns/p"}
        ],
        "ips": [{"interface": 2, "address": "10.244.1.5/24", "gateway": "10.244.1.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {}
    }"#;

    #[test]
    fn the_environment_carries_the_attachment_and_the_plugin_path() {
        let exec = CniExecutor::new(vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()]);
        let env = exec.environment(CniCommand::Del, &att());
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CNI_COMMAND"), Some("DEL"));
        assert_eq!(get("CNI_CONTAINERID"), Some("0c8f5a1e-uid"));
        assert_eq!(get("CNI_NETNS"), Some("/run/netns/skiff-node1-0c8f5a1e"));
        assert_eq!(get("CNI_IFNAME"), Some("eth0"));
        assert_eq!(
            get("CNI_ARGS"),
            Some(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1;K8S_POD_UID=0c8f5a1e-uid"
            )
        );
        assert_eq!(get("CNI_PATH"), Some("/usr/lib/cni:/opt/cni/bin"));
        assert_eq!(env.len(), 6);
    }

    #[test]
    fn a_plugin_config_gets_version_name_and_prev_result() {
        let (kind, bytes) = list().plugin_config(1, None).expect("valid");
        assert_eq!(kind, "bridge");
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["name"], "skiff");
        assert_eq!(v["bridge"], "cni0");
        assert!(v.get("prevResult").is_none());

        let prev = parse_result("bridge", CniCommand::Add, BRIDGE_RESULT.as_bytes())
            .expect("result parses");
        let (_, bytes) = list().plugin_config(0, Some(&prev)).expect("valid");
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["type"], "loopback");
        assert_eq!(v["prevResult"]["ips"][0]["address"], "10.244.1.5/24");
        // Fields Skiff does not model pass on untouched.
        assert_eq!(v["prevResult"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(v["prevResult"]["interfaces"][0]["mac"], "aa:bb:cc:dd:ee:01");
        assert_eq!(v["prevResult"]["ips"][0]["gateway"], "10.244.1.1");
    }

    #[test]
    fn a_plugin_without_a_usable_type_is_a_config_error() {
        let mut bad = list();
        bad.plugins[1].remove("type");
        assert!(matches!(
            bad.plugin_config(1, None),
            Err(CniError::BadConfig { .. })
        ));
        bad.plugins[1].insert("type".into(), Value::from("../../bin/sh"));
        assert!(bad.plugin_config(1, None).is_err());
        assert!(list().plugin_config(5, None).is_err());
    }

    #[test]
    fn the_pod_ip_is_the_sandbox_interfaces_ipv4() {
        let r = parse_result("bridge", CniCommand::Add, BRIDGE_RESULT.as_bytes())
            .expect("result parses");
        assert_eq!(
            r.pod_ipv4("eth0"),
            Some("10.244.1.5".parse().expect("address"))
        );
        // A loopback plugin's answer has no pod IP.
        let lo: CniResult = serde_json::from_str(
            r#"{"cniVersion":"1.0.0","interfaces":[{"name":"lo","mac":"00:00:00:00:00:00","sandbox":"/run/netns/p"}],
                "ips":[{"interface":0,"address":"127.0.0.1/8"},{"interface":0,"address":"::1/128"}],"dns":{}}"#,
        ).expect("json");
        assert_eq!(lo.pod_ipv4("eth0"), None);
        // IPv6 first, then IPv4 without an interface index.
        let mixed: CniResult = serde_json::from_str(
            r#"{"cniVersion":"1.0.0","ips":[{"address":"fd00::5/64"},{"address":"10.1.2.3/16"}]}"#,
        )
        .expect("json");
        assert_eq!(
            mixed.pod_ipv4("eth0"),
            Some("10.1.2.3".parse().expect("address"))
        );
    }

    #[test]
    fn a_bad_result_is_a_typed_error() {
        let err = parse_result("bridge", CniCommand::Add, b"not json").expect_err("must fail");
        assert!(matches!(
            err,
            CniError::BadResult {
                command: CniCommand::Add,
                ..
            }
        ));
        assert!(parse_result("bridge", CniCommand::Add, br#"{"ips":[]}"#).is_err());
    }

    #[test]
    fn plugin_errors_parse_with_code_msg_and_details() {
        let e = PluginError::parse(
            br#"{"cniVersion":"1.0.0","code":7,"msg":"invalid config","details":"no subnet"}"#,
        )
        .expect("valid");
        assert_eq!(
            e,
            PluginError {
                code: 7,
                msg: "invalid config".into(),
                details: "no subnet".into()
            }
        );
        assert_eq!(e.code_name(), "invalid network config");
        let err = CniError::Plugin {
            plugin: "bridge".into(),
            command: CniCommand::Add,
            error: e,
        };
        assert_eq!(
            err.to_string(),
            "CNI plugin `bridge` ADD failed: code 7 (invalid network config): invalid config (no subnet)"
        );
        let no_details = PluginError::parse(br#"{"code":999,"msg":"x"}"#).expect("valid");
        assert_eq!(no_details.details, "");
        assert_eq!(no_details.code_name(), "plugin-specific error");
        assert_eq!(PluginError::parse(b"panic: runtime error"), None);
        assert_eq!(
            PluginError::parse(br#"{"cniVersion":"1.0.0","ips":[]}"#),
            None
        );
    }

    #[test]
    fn a_missing_plugin_names_the_directories() {
        let exec = CniExecutor::new(vec!["/nonexistent/a".into(), "/nonexistent/b".into()]);
        let err = exec.find_plugin("bridge").expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "CNI plugin `bridge` not found in /nonexistent/a:/nonexistent/b"
        );
    }

    #[tokio::test]
    async fn the_cache_round_trips_and_removing_twice_succeeds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = ResultCache::new(dir.path().join("results"));
        let result = parse_result("bridge", CniCommand::Add, BRIDGE_RESULT.as_bytes())
            .expect("result parses");
        assert_eq!(cache.load("skiff", &att()).await.expect("step"), None);
        let path = cache.store(&att(), &list(), &result).await.expect("step");
        assert_eq!(
            path,
            dir.path().join("results/skiff-0c8f5a1e-uid-eth0.json")
        );
        let back = cache
            .load("skiff", &att())
            .await
            .expect("step")
            .expect("valid");
        assert_eq!(back.result, result);
        assert_eq!(back.config, list());
        // No temp file stays behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("results"))
            .expect("fs")
            .map(|e| e.expect("valid").file_name())
            .collect();
        assert_eq!(names.len(), 1);
        cache.remove("skiff", &att()).await.expect("step");
        cache.remove("skiff", &att()).await.expect("step");
        assert_eq!(cache.load("skiff", &att()).await.expect("step"), None);
        // A torn file reads as no cache.
        std::fs::write(&path, b"{\"kind\":").expect("fs");
        assert_eq!(cache.load("skiff", &att()).await.expect("step"), None);
    }

    /// A fake plugin (a shell script) shows what the executor hands over
    /// and how it reads failures, without root or real plugins.
    #[tokio::test]
    async fn a_plugin_gets_its_env_and_stdin_and_errors_are_typed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let script = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("fs");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("fs");
        };
        // Echoes a result built from its environment and its stdin's size.
        script(
            "echo",
            r#"n=$(cat | wc -c); printf '{"cniVersion":"1.0.0","ips":[{"address":"10.9.9.9/24"}],"env":"%s %s %s","stdin":%s}' "$CNI_COMMAND" "$CNI_IFNAME" "$HOME" "$n""#,
        );
        script(
            "fail",
            r#"cat >/dev/null; echo '{"code":11,"msg":"busy","details":"later"}'; exit 1"#,
        );
        script("crash", "cat >/dev/null; echo boom >&2; exit 2");
        script("slow", "sleep 5");
        // Fails without reading its config (stdin closed early).
        script("early", r#"echo '{"code":4,"msg":"no CNI_NETNS"}'; exit 1"#);
        let exec = CniExecutor::new(vec![dir.path().to_path_buf()])
            .with_timeout(Duration::from_millis(300));
        let out = exec
            .invoke(CniCommand::Add, &att(), "echo", b"{\"x\":1}")
            .await
            .expect("step");
        let r = parse_result("echo", CniCommand::Add, &out).expect("result parses");
        // HOME is not passed on: only PATH and the CNI variables.
        assert_eq!(r.rest["env"], "ADD eth0 ");
        assert_eq!(r.rest["stdin"], 7);
        let err = exec
            .invoke(CniCommand::Del, &att(), "fail", b"{}")
            .await
            .expect_err("must fail");
        assert!(
            matches!(&err, CniError::Plugin { error, command: CniCommand::Del, .. } if error.code == 11 && error.details == "later"),
            "{err}"
        );
        let err = exec
            .invoke(CniCommand::Add, &att(), "crash", b"{}")
            .await
            .expect_err("must fail");
        assert!(
            matches!(&err, CniError::Exited { output, .. } if output == "boom"),
            "{err}"
        );
        let big = vec![b' '; 1 << 20];
        let err = exec
            .invoke(CniCommand::Add, &att(), "early", &big)
            .await
            .expect_err("must fail");
        assert!(
            matches!(&err, CniError::Plugin { error, .. } if error.code == 4),
            "{err}"
        );
        let err = exec
            .invoke(CniCommand::Check, &att(), "slow", b"{}")
            .await
            .expect_err("must fail");
        assert!(matches!(err, CniError::Timeout { .. }), "{err}");
    }

    /// ADD runs in order, each plugin seeing the previous result; a failing
    /// step DELs what came before; DEL runs in reverse.
    #[tokio::test]
    async fn conflist_order_and_undo_on_failure() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        let script = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(
                &p,
                format!(
                    "#!/bin/sh\nin=$(cat)\necho \"{name} $CNI_COMMAND $(echo \"$in\" | grep -c prevResult)\" >> {}\n{body}\n",
                    log.display()
                ),
            )
            .expect("valid");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("fs");
        };
        let ok = r#"[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}'; exit 0"#;
        script("one", ok);
        script("two", ok);
        script(
            "bad",
            r#"[ "$CNI_COMMAND" = ADD ] && { echo '{"code":7,"msg":"no"}'; exit 1; }; exit 0"#,
        );
        let exec = CniExecutor::new(vec![dir.path().to_path_buf()]);
        let conf = |types: &[&str]| ConfList {
            cni_version: CNI_VERSION.into(),
            name: "t".into(),
            plugins: types
                .iter()
                .map(|t| {
                    let mut m = Map::new();
                    m.insert("type".into(), Value::from(*t));
                    m
                })
                .collect(),
        };
        let result = exec
            .add_list(&conf(&["one", "two"]), &att())
            .await
            .expect("step");
        exec.del_list(&conf(&["one", "two"]), &att(), Some(&result))
            .await
            .expect("step");
        assert!(exec.add_list(&conf(&["one", "bad"]), &att()).await.is_err());
        let lines = std::fs::read_to_string(&log).expect("fs");
        assert_eq!(
            lines.lines().collect::<Vec<_>>(),
            [
                "one ADD 0",
                "two ADD 1",
                "two DEL 1",
                "one DEL 1",
                "one ADD 0",
                "bad ADD 1",
                "bad DEL 1",
                "one DEL 1",
            ]
        );
    }
}
