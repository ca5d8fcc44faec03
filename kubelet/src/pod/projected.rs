//! Projected volumes (what ServiceAccount admission gives every pod):
//! a `serviceAccountToken` bound to the pod, items of a `configMap`
//! (`kube-root-ca.crt`) and `downwardAPI` fields, written as files in the
//! pod's `volumes/<name>` folder the way upstream's AtomicWriter writes
//! them: the files go into a fresh hidden folder, the `..data` symlink is
//! swapped to it in one rename, and each visible name is a symlink through
//! `..data`, so a reader never sees half a refresh.
//!
//! Tokens and ConfigMaps come from the control plane ([`PodSources`], over
//! the node gRPC link). A token is written again at 80 % of its lifetime
//! (at most every 24 h), as upstream's kubelet token manager does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Volume, VolumeProjection};
use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_registry_client::NodeRegistryClient;

/// The symlink to the current contents.
const DATA: &str = "..data";
/// Upstream's refresh point and cap.
const REFRESH_FRACTION: f64 = 0.8;
const REFRESH_CAP: Duration = Duration::from_secs(24 * 3600);
/// A failed refresh is tried again after this long.
const RETRY: Duration = Duration::from_secs(10);

/// The control plane's answers a pod's projected volumes need.
#[async_trait::async_trait]
pub trait PodSources: Send + Sync {
    /// A token bound to `pod`, and its expiry (Unix seconds).
    async fn token(
        &self,
        pod: &PodRef,
        audiences: Vec<String>,
        expiration_seconds: i64,
    ) -> Result<(String, i64), String>;

    /// The `data` of ConfigMap `name` in the pod's namespace.
    async fn config_map(
        &self,
        pod: &PodRef,
        name: &str,
    ) -> Result<BTreeMap<String, String>, String>;
}

/// The pod a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
}

impl PodRef {
    fn of(pod: &Pod) -> Self {
        let m = &pod.metadata;
        Self {
            namespace: m.namespace.clone().unwrap_or_else(|| "default".into()),
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
        }
    }
}

/// [`PodSources`] over the control plane's `NodeRegistry` service, as the
/// node its certificate names (the control plane answers only for pods
/// bound to that node).
pub struct GrpcPodSources {
    address: String,
    node_name: String,
    tls: std::sync::Arc<rustls::ClientConfig>,
    /// One channel for every pod's requests: a new mutual-TLS connection
    /// per token cost each pod start a handshake (tonic's channel
    /// reconnects by itself when the control plane comes back).
    channel: tokio::sync::Mutex<Option<tonic::transport::Channel>>,
}

impl GrpcPodSources {
    /// Asks the control plane at `control_plane` (`host:port` or a URL)
    /// as node `node_name`, with the node's mutual-TLS configuration.
    pub fn new(
        control_plane: &str,
        node_name: &str,
        tls: std::sync::Arc<rustls::ClientConfig>,
    ) -> Self {
        Self {
            address: control_plane.to_string(),
            node_name: node_name.to_string(),
            tls,
            channel: tokio::sync::Mutex::new(None),
        }
    }

    async fn client(&self) -> Result<NodeRegistryClient<tonic::transport::Channel>, String> {
        let mut slot = self.channel.lock().await;
        if let Some(channel) = slot.as_ref() {
            return Ok(NodeRegistryClient::new(channel.clone()));
        }
        let channel = skiff_proto::link::connect_tls(&self.address, self.tls.clone(), None)
            .await
            .map_err(|e| format!("cannot reach the control plane: {e}"))?;
        *slot = Some(channel.clone());
        Ok(NodeRegistryClient::new(channel))
    }
}

#[async_trait::async_trait]
impl PodSources for GrpcPodSources {
    async fn token(
        &self,
        pod: &PodRef,
        audiences: Vec<String>,
        expiration_seconds: i64,
    ) -> Result<(String, i64), String> {
        let answer = self
            .client()
            .await?
            .request_pod_token(pb::PodTokenRequest {
                node_name: self.node_name.clone(),
                pod_uid: pod.uid.clone(),
                audiences,
                expiration_seconds,
                namespace: pod.namespace.clone(),
                pod_name: pod.name.clone(),
            })
            .await
            .map_err(|s| s.message().to_string())?
            .into_inner();
        Ok((answer.token, answer.expiration_unix))
    }

    async fn config_map(
        &self,
        pod: &PodRef,
        name: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        let answer = self
            .client()
            .await?
            .get_pod_config_map(pb::PodConfigMapRequest {
                node_name: self.node_name.clone(),
                pod_uid: pod.uid.clone(),
                name: name.to_string(),
                namespace: pod.namespace.clone(),
                pod_name: pod.name.clone(),
            })
            .await
            .map_err(|s| s.message().to_string())?
            .into_inner();
        Ok(answer.data.into_iter().collect())
    }
}

/// The pods whose projected volumes are kept fresh, by pod folder.
#[derive(Default)]
pub struct Refreshers {
    running: Mutex<BTreeMap<PathBuf, tokio::task::JoinHandle<()>>>,
}

impl Refreshers {
    fn start(&self, dir: PathBuf, task: impl FnOnce() -> tokio::task::JoinHandle<()>) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.retain(|_, t| !t.is_finished());
        running.entry(dir).or_insert_with(task);
    }

    fn is_running(&self, dir: &Path) -> bool {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.get(dir).is_some_and(|t| !t.is_finished())
    }
}

/// What the control plane answered for one projection.
enum Fetched {
    Token(String, i64),
    ConfigMap(Result<BTreeMap<String, String>, String>),
    Local,
}

/// Asks the control plane for what `source` needs. The asks of one volume
/// run together: the token and `kube-root-ca.crt` are two round trips that
/// would otherwise delay every container start one after the other.
async fn fetch(
    sources: &dyn PodSources,
    pod_ref: &PodRef,
    source: &VolumeProjection,
) -> Result<Fetched, String> {
    if let Some(t) = &source.service_account_token {
        let audiences = t
            .audience
            .clone()
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        let asked = t.expiration_seconds.unwrap_or(3600);
        let (token, expires) = sources.token(pod_ref, audiences, asked).await?;
        return Ok(Fetched::Token(token, expires));
    }
    if let Some(cm) = &source.config_map {
        return Ok(Fetched::ConfigMap(
            sources.config_map(pod_ref, &cm.name).await,
        ));
    }
    Ok(Fetched::Local)
}

/// The files of one projected volume, by path, and when its token (if it
/// has one) expires.
async fn contents(
    sources: &dyn PodSources,
    pod: &Pod,
    volume: &Volume,
) -> Result<(BTreeMap<String, Vec<u8>>, Option<(i64, i64)>), String> {
    let pod_ref = PodRef::of(pod);
    let mut files = BTreeMap::new();
    let mut token_life = None;
    let projected = volume.projected.as_ref().ok_or("not a projected volume")?;
    let list: &[VolumeProjection] = projected.sources.as_deref().unwrap_or_default();
    for source in list {
        if source.secret.is_some() || source.cluster_trust_bundle.is_some() {
            return Err(format!(
                "volume {:?}: only serviceAccountToken, configMap and downwardAPI projections are supported",
                volume.name
            ));
        }
    }
    let fetched =
        futures_util::future::join_all(list.iter().map(|s| fetch(sources, &pod_ref, s))).await;
    for (source, fetched) in list.iter().zip(fetched) {
        match fetched? {
            Fetched::Token(token, expires) => {
                if let Some(t) = &source.service_account_token {
                    files.insert(t.path.clone(), token.into_bytes());
                    token_life = Some((chrono::Utc::now().timestamp(), expires));
                }
            }
            Fetched::ConfigMap(answer) => {
                if let Some(cm) = &source.config_map {
                    let data = match answer {
                        Ok(data) => data,
                        Err(_) if cm.optional == Some(true) => BTreeMap::new(),
                        Err(e) => return Err(format!("configmap {:?}: {e}", cm.name)),
                    };
                    match &cm.items {
                        Some(items) => {
                            for item in items {
                                let value = data.get(&item.key).ok_or_else(|| {
                                    format!("configmap {:?} has no key {:?}", cm.name, item.key)
                                })?;
                                files.insert(item.path.clone(), value.clone().into_bytes());
                            }
                        }
                        None => files.extend(data.into_iter().map(|(k, v)| (k, v.into_bytes()))),
                    }
                }
            }
            Fetched::Local => {}
        }
        if let Some(downward) = &source.downward_api {
            for item in downward.items.iter().flatten() {
                let field = item.field_ref.as_ref().map(|f| f.field_path.as_str());
                let value = match field {
                    Some("metadata.namespace") => pod_ref.namespace.clone(),
                    Some("metadata.name") => pod_ref.name.clone(),
                    Some("metadata.uid") => pod_ref.uid.clone(),
                    other => return Err(format!("downwardAPI field {other:?} is not supported")),
                };
                files.insert(item.path.clone(), value.into_bytes());
            }
        }
    }
    Ok((files, token_life))
}

/// A file name a volume may hold: relative, without `..` (upstream's
/// AtomicWriter refuses the same).
fn safe_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.starts_with("..")
        && path.split('/').all(|c| !c.is_empty() && c != "..")
}

/// Writes `files` into `dir` atomically, as upstream's AtomicWriter: a
/// new `..<stamp>` folder, `..data` swapped to it by a rename, visible
/// names as symlinks through `..data`, the previous folder removed.
pub fn write_atomic(
    dir: &Path,
    files: &BTreeMap<String, Vec<u8>>,
    mode: u32,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for path in files.keys() {
        if !safe_path(path) {
            return Err(std::io::Error::other(format!("invalid file name {path:?}")));
        }
    }
    std::fs::create_dir_all(dir)?;
    let previous = std::fs::read_link(dir.join(DATA)).ok();
    let stamp = format!("..{}", chrono::Utc::now().format("%Y_%m_%d_%H_%M_%S.%f"));
    let fresh = dir.join(&stamp);
    std::fs::create_dir(&fresh)?;
    for (path, bytes) in files {
        let file = fresh.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, bytes)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))?;
    }
    let staged = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&staged);
    std::os::unix::fs::symlink(&stamp, &staged)?;
    std::fs::rename(&staged, dir.join(DATA))?;
    for path in files.keys() {
        // Only the first component is linked (`a/b` through `a`).
        let top = path.split('/').next().unwrap_or(path);
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA).join(top), &link)?;
        }
    }
    if let Some(previous) = previous.filter(|p| p.as_os_str() != stamp.as_str()) {
        let _ = std::fs::remove_dir_all(dir.join(previous));
    }
    Ok(())
}

/// When to write a token again: at 80 % of its lifetime, at most 24 h.
pub fn refresh_after(issued: i64, expires: i64) -> Duration {
    let life = (expires - issued).max(0) as f64;
    Duration::from_secs_f64(life * REFRESH_FRACTION).min(REFRESH_CAP)
}

/// Writes every projected volume of `pod` under `pod_dir/volumes` and
/// returns when its soonest token needs writing again.
async fn write_all(
    sources: &dyn PodSources,
    pod: &Pod,
    pod_dir: &Path,
) -> Result<Option<Duration>, String> {
    let mut soonest: Option<Duration> = None;
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let Some(projected) = &volume.projected else {
            continue;
        };
        let (files, token_life) = contents(sources, pod, volume).await.map_err(|e| {
            format!(
                "MountVolume.SetUp failed for volume {:?} : {e}",
                volume.name
            )
        })?;
        let mode = projected.default_mode.unwrap_or(0o644) as u32;
        write_atomic(&pod_dir.join("volumes").join(&volume.name), &files, mode)
            .map_err(|e| format!("writing volume {:?}: {e}", volume.name))?;
        if let Some((issued, expires)) = token_life {
            let after = refresh_after(issued, expires);
            soonest = Some(soonest.map_or(after, |s| s.min(after)));
        }
    }
    Ok(soonest)
}

/// Makes `pod`'s projected volumes present before a container starts,
/// and keeps their tokens fresh while the pod's folder exists.
pub async fn prepare(
    sources: Option<&Arc<dyn PodSources>>,
    refreshers: &Refreshers,
    pod: &Pod,
    pod_dir: &Path,
) -> Result<(), String> {
    let has_projected = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .any(|v| v.projected.is_some());
    if !has_projected || refreshers.is_running(pod_dir) {
        return Ok(());
    }
    let sources = sources
        .ok_or("projected volumes need the control plane, and this node has none")?
        .clone();
    let first = write_all(sources.as_ref(), pod, pod_dir).await?;
    let (pod, dir) = (pod.clone(), pod_dir.to_path_buf());
    refreshers.start(pod_dir.to_path_buf(), move || {
        tokio::spawn(async move {
            let mut wait = first;
            while let Some(delay) = wait {
                tokio::time::sleep(delay).await;
                if !dir.exists() {
                    return;
                }
                wait = match write_all(sources.as_ref(), &pod, &dir).await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(pod = ?pod.metadata.name, error = %e, "refreshing projected volumes");
                        Some(RETRY)
                    }
                };
            }
        })
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;

    #[async_trait::async_trait]
    impl PodSources for Fake {
        async fn token(
            &self,
            pod: &PodRef,
            audiences: Vec<String>,
            expiration_seconds: i64,
        ) -> Result<(String, i64), String> {
            assert!(audiences.is_empty());
            Ok((
                format!("token-of-{}", pod.uid),
                chrono::Utc::now().timestamp() + expiration_seconds,
            ))
        }

        async fn config_map(
            &self,
            _: &PodRef,
            name: &str,
        ) -> Result<BTreeMap<String, String>, String> {
            match name {
                "kube-root-ca.crt" => Ok([("ca.crt".to_string(), "PEM".to_string())].into()),
                other => Err(format!("configmap \"{other}\" not found")),
            }
        }
    }

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "lab", "uid": "u1"},
            "spec": {"containers": [{"name": "c"}], "volumes": [{"name": "kube-api-access-abcde",
                "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace",
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}]}
        }))
        .expect("pod")
    }

    /// Answers only once both asks are in flight, so asking one after the
    /// other never finishes.
    struct BothAtOnce(tokio::sync::Barrier);

    #[async_trait::async_trait]
    impl PodSources for BothAtOnce {
        async fn token(
            &self,
            pod: &PodRef,
            audiences: Vec<String>,
            expiration_seconds: i64,
        ) -> Result<(String, i64), String> {
            self.0.wait().await;
            Fake.token(pod, audiences, expiration_seconds).await
        }

        async fn config_map(
            &self,
            pod: &PodRef,
            name: &str,
        ) -> Result<BTreeMap<String, String>, String> {
            self.0.wait().await;
            Fake.config_map(pod, name).await
        }
    }

    #[tokio::test]
    async fn the_token_and_the_config_map_are_asked_for_together() {
        let pod = pod();
        let volume = &pod
            .spec
            .as_ref()
            .expect("spec")
            .volumes
            .as_ref()
            .expect("volumes")[0];
        let sources = BothAtOnce(tokio::sync::Barrier::new(2));
        let (files, _) =
            tokio::time::timeout(Duration::from_secs(5), contents(&sources, &pod, volume))
                .await
                .expect("both asks were in flight at once")
                .expect("contents");
        assert_eq!(files.len(), 3);
    }

    #[tokio::test]
    async fn the_service_account_volume_lands_as_three_files_through_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sources: Arc<dyn PodSources> = Arc::new(Fake);
        let refreshers = Refreshers::default();
        prepare(Some(&sources), &refreshers, &pod(), dir.path())
            .await
            .expect("prepared");
        let volume = dir.path().join("volumes/kube-api-access-abcde");
        let read = |f: &str| std::fs::read_to_string(volume.join(f)).expect(f);
        assert_eq!(read("token"), "token-of-u1");
        assert_eq!(read("ca.crt"), "PEM");
        assert_eq!(read("namespace"), "lab");
        assert_eq!(
            std::fs::read_link(volume.join("token")).expect("link"),
            Path::new("..data/token")
        );
        assert!(refreshers.is_running(dir.path()));
        // Written again: one timestamped folder remains.
        write_all(&Fake, &pod(), dir.path()).await.expect("again");
        let hidden = std::fs::read_dir(&volume)
            .expect("dir")
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.starts_with("..") && n != DATA
            })
            .count();
        assert_eq!(hidden, 1);
        assert_eq!(read("token"), "token-of-u1");
    }

    #[tokio::test]
    async fn a_missing_config_map_or_control_plane_fails_the_mount() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = pod();
        if let Some(v) = p.spec.as_mut().and_then(|s| s.volumes.as_mut()) {
            v[0].projected
                .as_mut()
                .expect("projected")
                .sources
                .as_mut()
                .expect("s")[1]
                .config_map
                .as_mut()
                .expect("cm")
                .name = "gone".into();
        }
        let sources: Arc<dyn PodSources> = Arc::new(Fake);
        let e = prepare(Some(&sources), &Refreshers::default(), &p, dir.path())
            .await
            .expect_err("refused");
        assert!(e.contains("configmap \"gone\""), "{e}");
        assert!(
            prepare(None, &Refreshers::default(), &pod(), dir.path())
                .await
                .is_err()
        );
    }

    #[test]
    fn tokens_are_refreshed_at_four_fifths_of_their_life_or_a_day() {
        assert_eq!(refresh_after(0, 3600), Duration::from_secs(2880));
        assert_eq!(refresh_after(0, 365 * 24 * 3600), REFRESH_CAP);
        assert!(!safe_path("../x") && !safe_path("/etc") && !safe_path("a/../b"));
        assert!(safe_path("token") && safe_path("a/b"));
    }
}
