//! Scheduling throughput on its own, the way upstream's `scheduler_perf`
//! measures it: nodes and pods exist first, then the clock runs while the
//! scheduler binds, so the figure is not bounded by how fast a client can
//! create pods.
//!
//! Everything runs in this process from the control plane's library: the
//! SQLite store (a fresh file, the same `SqliteStore` the binary uses), the
//! HTTP API on loopback (pods are created through it, so they are the
//! objects a client's POST makes), and the scheduler actor with its
//! watches, cache and batched bind path (`Objects::bind_all`, the
//! `pods/binding` path), which also writes its `Scheduled` events.
//!
//! 1. 1,000 nodes are registered through the node registry's `Register`
//!    handler (the code a kubelet's gRPC call runs, called in-process), so
//!    each is the Node object a registered kubelet gets, Ready. No kubelet
//!    runs behind them: as in upstream's `scheduler_perf`, whose nodes are
//!    API objects only, the scheduler reads nothing but Node objects, and
//!    what kubelets would do after a bind is not scheduling (the end-to-end
//!    bench `scheduler_throughput` covers that with hollow kubelets).
//! 2. 10,000 pods are POSTed while the scheduler cannot bind them, and the
//!    clock starts when it can. Two ways (`SKIFF_BENCH_RELEASE`):
//!    - `start` (default): no scheduler runs while the pods are created;
//!      the clock starts as the scheduler actor is spawned, so it includes
//!      the scheduler's first listing of 10,000 pending pods, as after a
//!      scheduler restart.
//!    - `gates`: the scheduler runs and the pods carry a scheduling gate
//!      (upstream's `schedulingGates`), so its watch sees them but its
//!      queue holds none; the clock starts as the gates are removed, in
//!      store transactions of 1,000 pods back to back, and the scheduler
//!      learns of each pod from its watch. The clock then also runs while
//!      the store writes those 10,000 updates.
//! 3. The bench follows a store watch until every pod is bound. Reported:
//!    pods bound per second from the clock's start to the last bind, per
//!    one-second window (upstream's SchedulingThroughput), the process's
//!    CPU time meanwhile, and the spread over nodes.
//!
//! `SKIFF_BENCH_NODES_AS=hollow` puts hollow kubelets behind the nodes
//! instead (the "1,000 simulated nodes"): the whole control plane
//! runs in this process as `skiff-control-plane` runs it (NodeRegistry gRPC
//! server, supervisor with scheduler, node actors, node lifecycle and the
//! workload controllers), 1,000 kubelets on the fake runtime register and
//! heartbeat over real gRPC, and as pods are bound the node actors push
//! them to their kubelets, which "start" them and report status, all
//! while the clock runs. Gates hold the pods back (the scheduler runs from
//! the start).
//!
//! The hollow kubelets run on a tokio runtime of their own
//! (`SKIFF_BENCH_KUBELET_THREADS` worker threads, default 2, the same as
//! the control plane's), their state on tmpfs; the bench's watch runs on a
//! thread of its own. With hollow kubelets the bench also reports when the
//! last pod was reported Running.
//!
//! `SKIFF_BENCH_NODES` (default 1000) and `SKIFF_BENCH_PODS` (default
//! 10000) change the size. `cargo bench -p skiff-tests --bench
//! scheduler_perf`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skiff_control_plane::api::{self, ApiState};
use skiff_control_plane::controllers::node_lifecycle::LifecycleConfig;
use skiff_control_plane::controllers::scheduler::Scheduler;
use skiff_control_plane::controllers::supervisor::{Supervisor, SupervisorMsg};
use skiff_control_plane::nodes::liveness::Liveness;
use skiff_control_plane::nodes::registry::{Registry, RegistryConfig};
use skiff_control_plane::nodes::view::NodeView;
use skiff_control_plane::registry::objects::Objects;
use skiff_control_plane::store::sqlite::SqliteStore;
use skiff_control_plane::store::{Store, Write};
use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_registry_server::NodeRegistry;
use skiff_tests::control_plane::http_json;
use skiff_tests::hollow;

/// The allocator the `skiff-control-plane` and `skiff-kubelet` binaries
/// use, since both run in this process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const GATE: &str = "skiff.dev/bench-hold";

/// Gates removed per store transaction: pods are let loose in batches, as
/// from a client, and the scheduler starts on the first batch while the
/// next ones are written. (Kept at the size the first runs used, when one
/// transaction of 10,000 overflowed the store's live-event ring of 4,096.)
const UNGATE_BATCH: usize = 1000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User plus system CPU time of this process.
fn cpu_time() -> Duration {
    let mut usage = libc::rusage {
        ru_utime: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        ru_stime: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        ru_maxrss: 0,
        ru_ixrss: 0,
        ru_idrss: 0,
        ru_isrss: 0,
        ru_minflt: 0,
        ru_majflt: 0,
        ru_nswap: 0,
        ru_inblock: 0,
        ru_oublock: 0,
        ru_msgsnd: 0,
        ru_msgrcv: 0,
        ru_nsignals: 0,
        ru_nvcsw: 0,
        ru_nivcsw: 0,
    };
    // SAFETY: getrusage only writes the struct passed.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// What a kubelet reports at registration; capacity as upstream's
/// `scheduler_perf` default node template (4 cpu, 32Gi, 110 pods).
fn node_status(name: &str, heartbeat_ms: i64) -> pb::NodeStatus {
    let quantity = pb::Quantity {
        cpu: "4".into(),
        memory: "32Gi".into(),
        pods: 110,
    };
    pb::NodeStatus {
        capacity: Some(quantity.clone()),
        allocatable: Some(quantity),
        conditions: vec![pb::NodeCondition {
            r#type: "Ready".into(),
            status: "True".into(),
            reason: "KubeletReady".into(),
            message: "kubelet is posting ready status".into(),
        }],
        addresses: vec![pb::NodeAddress {
            r#type: "Hostname".into(),
            address: name.into(),
        }],
        heartbeat_time_ms: heartbeat_ms,
        node_info: None,
    }
}

fn pod(name: &str, gated: bool) -> String {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "skiff.dev/webapp:v1",
                "imagePullPolicy": "IfNotPresent",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}],
        },
    });
    if gated {
        pod["spec"]["schedulingGates"] = json!([{"name": GATE}]);
    }
    pod.to_string()
}

/// The node a stored pod names, read from its JSON without decoding the
/// whole object (the bench must not compete with the scheduler for CPU).
fn node_of(value: &[u8]) -> Option<&str> {
    const FIELD: &str = "\"nodeName\":\"";
    // std's substring search is vectorised; a byte-window scan of every
    // event cost the bench a tenth of the CPU it measures.
    let text = std::str::from_utf8(value).ok()?;
    let rest = &text[text.find(FIELD)? + FIELD.len()..];
    Some(&rest[..rest.find('"')?]).filter(|n| !n.is_empty())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG")
                .unwrap_or_else(|_| "error,skiff_control_plane::controllers=info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let nodes = env_or("SKIFF_BENCH_NODES", 1000);
    let pods = env_or("SKIFF_BENCH_PODS", 10_000);
    let dir = tempfile::Builder::new()
        .prefix("skiff-sched-perf-")
        .tempdir()
        .expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("store.sqlite")).expect("store"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let addr = listener.local_addr().expect("address").to_string();
    let mut state = ApiState::new(store.clone(), addr.clone());
    // Served in-process on loopback to this benchmark alone: no TLS, and
    // requests without credentials are the admin.
    state.authenticator = Arc::new(skiff_control_plane::auth::authn::Authenticator {
        unauthenticated: skiff_control_plane::auth::authn::Unauthenticated::Admin,
        ..Default::default()
    });
    let state = Arc::new(state);
    api::handlers::bootstrap(&state).await.expect("bootstrap");
    tokio::spawn(async move {
        let _ = axum::serve(listener, api::router(state)).await;
    });
    let objects = Objects::new(store.clone());

    let hollow = match std::env::var("SKIFF_BENCH_NODES_AS").as_deref() {
        Ok("hollow") => true,
        Ok("objects") | Err(_) => false,
        Ok(other) => panic!("SKIFF_BENCH_NODES_AS={other}: objects or hollow"),
    };
    let gated = match std::env::var("SKIFF_BENCH_RELEASE").as_deref() {
        Ok("gates") => true,
        // Behind hollow nodes the whole control plane runs, its scheduler
        // with it: only gates can hold the pods back.
        Ok("start") | Err(_) => hollow,
        Ok(other) => panic!("SKIFF_BENCH_RELEASE={other}: start or gates"),
    };
    // Hollow kubelets keep their state (pod directories, checkpoints) in
    // memory when the machine has a tmpfs, as kubemark's hollow nodes touch
    // no disk: otherwise ext4's inode allocation for 10,000 pod directories
    // is a sixth of the run's CPU, and it is not the scheduler's.
    let shm = Path::new("/dev/shm");
    let hollow_dir = tempfile::Builder::new()
        .prefix("skiff-sched-perf-hollow-")
        .tempdir_in(if shm.is_dir() { shm } else { dir.path() })
        .expect("temp dir");
    let mut kubelets = Vec::new();
    // The hollow kubelets run on a runtime of their own, as kubelets run in
    // processes of their own: in the control plane's runtime their 1,000
    // nodes' tasks would queue in front of its actors, which no real
    // cluster does. They still share the machine's 2 cores.
    let kubelet_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::env::var("SKIFF_BENCH_KUBELET_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2),
        )
        .thread_name("hollow-kubelets")
        .enable_all()
        .build()
        .expect("kubelets' runtime");
    let mut scheduler = None;
    let mut supervisor = None;
    let t = Instant::now();
    if hollow {
        assert!(gated, "hollow nodes need SKIFF_BENCH_RELEASE=gates");
        supervisor = Some(start_control_plane(&objects, store.clone(), hollow_dir.path()).await);
        let grpc = supervisor
            .as_ref()
            .map(|(_, _, grpc)| grpc.clone())
            .unwrap_or_default();
        hollow::raise_fd_limit();
        for i in 0..nodes {
            let name = format!("hollow-{i:04}");
            let dir = hollow_dir.path().to_path_buf();
            let grpc = grpc.clone();
            let pki = hollow_dir.path().join("pki");
            let node = kubelet_rt.spawn(async move { hollow::node(name, &dir, &grpc, &pki).await });
            kubelets.push(node.await.expect("hollow node starts"));
        }
        wait_ready(&store, nodes).await;
        // Let the node actors connect to their kubelets before pods come.
        tokio::time::sleep(Duration::from_secs(5)).await;
    } else {
        let registry = Registry::new(
            objects.clone(),
            Arc::new(Liveness::new()),
            Arc::new(NodeView::default()),
            RegistryConfig::default(),
        );
        let now_ms = chrono_now_ms();
        for i in 0..nodes {
            let name = format!("hollow-{i:04}");
            let mut request = tonic::Request::new(pb::RegisterRequest {
                node_name: name.clone(),
                labels: HashMap::from([("skiff.dev/hollow".into(), "true".into())]),
                status: Some(node_status(&name, now_ms)),
                agent_endpoint: format!("127.0.0.1:{}", 20_000 + i),
            });
            // As the node's certificate would name it on the wire.
            request
                .extensions_mut()
                .insert(skiff_proto::link::PeerInfo {
                    remote: None,
                    user: Some(skiff_pki::identity::Subject {
                        name: format!("system:node:{name}"),
                        groups: vec!["system:nodes".into()],
                    }),
                });
            registry.register(request).await.expect("register");
        }
        if gated {
            scheduler = Some(
                ractor::Actor::spawn(None, Scheduler, objects.clone())
                    .await
                    .expect("scheduler starts"),
            );
        }
    }
    let registered = t.elapsed();
    let t = Instant::now();
    let clients = 8;
    let creators: Vec<_> = (0..clients)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                for i in (c..pods).step_by(clients) {
                    let (status, body) = http_json(
                        "POST",
                        &addr,
                        "/api/v1/namespaces/default/pods",
                        &pod(&format!("bench-{i:05}"), gated),
                    )
                    .expect("create");
                    assert_eq!(status, 201, "{body}");
                }
            })
        })
        .collect();
    for c in creators {
        c.join().expect("creator");
    }
    let created = t.elapsed();
    eprintln!("{pods} pods stored; the scheduler is let loose in 2 s");
    // With gates, the scheduler's watch must have caught up with the
    // creates (seen every pod, gated) before the clock starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let pods_rt = skiff_control_plane::registry::kinds::PODS;
    let listing = store.list(&pods_rt.prefix()).await.expect("list pods");
    assert_eq!(listing.items.len(), pods, "every pod stored");
    let mut writes = Vec::with_capacity(pods);
    for kv in listing.items.iter().filter(|_| gated) {
        let mut pod: Value = serde_json::from_slice(&kv.value).expect("pod");
        if let Some(spec) = pod["spec"].as_object_mut() {
            spec.remove("schedulingGates");
        }
        writes.push(Write::Update {
            key: kv.key.clone(),
            expected: kv.revision,
            value: serde_json::to_vec(&pod).expect("encode"),
        });
    }
    let bound_before = listing
        .items
        .iter()
        .filter(|kv| node_of(&kv.value).is_some())
        .count();
    assert_eq!(bound_before, 0, "no pod bound before the clock starts");
    // Followed on a thread and runtime of its own: the watch must be
    // drained while the gates are being removed, or it falls behind and
    // closes, and each bind is timed when it is committed, not when a busy
    // runtime gets round to the follower.
    let follow_store = store.clone();
    let prefix = pods_rt.prefix();
    let from = listing.revision;
    let (started, start_at) = std::sync::mpsc::channel::<Instant>();
    let (watching, watch_ready) = std::sync::mpsc::channel::<()>();
    let (all_bound, bound_seen) = std::sync::mpsc::channel::<()>();
    let handover = Handover {
        watching,
        start_at,
        all_bound,
    };
    let follower = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("follower's runtime");
        rt.block_on(follow(follow_store, prefix, from, pods, hollow, handover))
    });
    watch_ready.recv().expect("the follower watches");
    let cpu_before = cpu_time();
    let start = Instant::now();
    started.send(start).expect("the follower runs");

    for batch in writes.chunks(UNGATE_BATCH) {
        store
            .write_all(batch.to_vec())
            .await
            .expect("remove the gates");
    }
    if scheduler.is_none() && !hollow {
        scheduler = Some(
            ractor::Actor::spawn(None, Scheduler, objects.clone())
                .await
                .expect("scheduler starts"),
        );
    }
    let released = start.elapsed();
    bound_seen.recv().expect("the follower reports");
    let cpu = cpu_time().saturating_sub(cpu_before);
    let writes_during = store
        .revision()
        .await
        .expect("revision")
        .saturating_sub(from);
    let Followed {
        bound,
        relists,
        all_running,
    } = follower.join().expect("follower");
    assert_eq!(bound.len(), pods, "every pod bound within 5 minutes");
    let mut times: Vec<Duration> = bound.values().map(|(t, _)| *t).collect();
    times.sort();
    let all_bound = times[times.len() - 1];
    let first = times[0];
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for (_, node) in bound.values() {
        *per_node.entry(node).or_default() += 1;
    }
    let most = per_node.values().copied().max().unwrap_or(0);
    let least = if per_node.len() < nodes {
        0
    } else {
        per_node.values().copied().min().unwrap_or(0)
    };
    let mut windows = vec![0usize; all_bound.as_secs() as usize + 1];
    for t in &times {
        windows[t.as_secs() as usize] += 1;
    }
    let full: Vec<usize> = windows[..windows.len().saturating_sub(1)].to_vec();
    windows.sort();

    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if hollow {
        println!(
            "{nodes} hollow kubelets (fake runtime, real gRPC) registered and Ready in {:.1} s; \
             the whole control plane runs (supervisor: scheduler, node actors, lifecycle, controllers)",
            registered.as_secs_f64()
        );
    } else {
        println!(
            "{nodes} nodes registered (Register handler, in-process) in {:.1} s",
            registered.as_secs_f64()
        );
    }
    let how = if gated {
        format!("gates removed ({UNGATE_BATCH} per transaction)")
    } else {
        "scheduler started".to_string()
    };
    println!(
        "{pods} {} pods created through the API ({clients} clients) in {:.2} s ({:.0} creates/s)",
        if gated { "gated" } else { "pending" },
        created.as_secs_f64(),
        pods as f64 / created.as_secs_f64()
    );
    println!(
        "{how} in {:.0} ms; first bind after {:.0} ms",
        released.as_secs_f64() * 1000.0,
        first.as_secs_f64() * 1000.0
    );
    println!(
        "{how} → all bound: {:.2} s = **{:.0} pods/s**",
        all_bound.as_secs_f64(),
        pods as f64 / all_bound.as_secs_f64()
    );
    println!(
        "bound per second: median {} / max {} (whole seconds: {:?})",
        windows[windows.len() / 2],
        windows[windows.len() - 1],
        full
    );
    println!("bench watch re-listed {relists} times (fell behind the store's events)");
    println!(
        "store writes from the clock's start to the last bind: {writes_during} ({:.1} per pod)",
        writes_during as f64 / pods as f64
    );
    if hollow {
        match all_running {
            Some(t) => println!(
                "every pod reported Running by its hollow kubelet {:.2} s after the clock's start",
                t.as_secs_f64()
            ),
            None => println!("not every pod was reported Running within 5 minutes"),
        }
    }
    println!(
        "CPU of the process while binding: {:.2} s ({:.2} cores)",
        cpu.as_secs_f64(),
        cpu.as_secs_f64() / all_bound.as_secs_f64()
    );
    println!(
        "spread: {} nodes used, pods per node min {least} / max {most}",
        per_node.len()
    );
    let fair = pods.div_ceil(nodes);
    assert!(
        most <= fair + 1,
        "pods not spread: a node got {most}, fair share {fair}"
    );
    if let Some((scheduler, task)) = scheduler {
        scheduler.stop(None);
        let _ = task.await;
    }
    if let Some((supervisor, task, _)) = supervisor {
        supervisor.stop(None);
        let _ = task.await;
    }
    drop(kubelets);
    kubelet_rt.shutdown_background();
}

/// The control plane's node side as `skiff-control-plane` runs it: the
/// NodeRegistry gRPC server on loopback and the supervisor with every
/// controller, with its certificates under `dir/pki` (mutual TLS both
/// ways, as there). Returns the supervisor, its task and the gRPC address.
async fn start_control_plane(
    objects: &Objects,
    store: Arc<dyn Store>,
    dir: &std::path::Path,
) -> (
    ractor::ActorRef<SupervisorMsg>,
    tokio::task::JoinHandle<()>,
    String,
) {
    let liveness = Arc::new(Liveness::new());
    let view = NodeView::start(store);
    let registry = Registry::server(
        objects.clone(),
        liveness.clone(),
        view.clone(),
        RegistryConfig::default(),
    );
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let address = grpc.local_addr().expect("address").to_string();
    let certificates = skiff_control_plane::auth::certificates::prepare(
        &dir.join("pki"),
        vec!["127.0.0.1".into()],
    )
    .expect("certificates");
    skiff_control_plane::nodes::kubelet_client::configure(certificates.kubelet_client_tls);
    tokio::spawn(
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(skiff_proto::link::PING_INTERVAL))
            .http2_keepalive_timeout(Some(skiff_proto::link::PING_TIMEOUT))
            .add_service(registry)
            .serve_with_incoming(skiff_proto::link::tls_incoming_stream(
                grpc,
                certificates.node_tls,
            )),
    );
    let (supervisor, task) = ractor::Actor::spawn(
        None,
        Supervisor,
        (
            objects.clone(),
            // Upstream's grace and eviction: a node whose heartbeat is late
            // under load must not lose its pods mid-run.
            LifecycleConfig {
                grace: Duration::from_secs(50),
                eviction: Duration::from_secs(300),
            },
            liveness,
            view,
            skiff_control_plane::controllers::job::Backoff::default(),
        ),
    )
    .await
    .expect("supervisor starts");
    (supervisor, task, address)
}

/// Waits until `nodes` Node objects are stored with Ready=True.
async fn wait_ready(store: &Arc<dyn Store>, nodes: usize) {
    let rt = skiff_control_plane::registry::kinds::NODES;
    let t = Instant::now();
    loop {
        let listing = store.list(&rt.prefix()).await.expect("list nodes");
        let ready = listing
            .items
            .iter()
            .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
            .filter(|n| {
                n["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .count();
        if ready == nodes {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "{ready}/{nodes} nodes Ready after 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What the follower saw: per pod the time its bind was seen since the
/// clock started and its node, its re-lists, and when the last pod was
/// reported Running (if it waited for that).
struct Followed {
    bound: HashMap<String, (Duration, String)>,
    relists: usize,
    all_running: Option<Duration>,
}

/// How the follower and the bench hand over: the watch is open, the
/// clock started, every pod is bound.
struct Handover {
    watching: std::sync::mpsc::Sender<()>,
    start_at: std::sync::mpsc::Receiver<Instant>,
    all_bound: std::sync::mpsc::Sender<()>,
}

/// Whether a stored pod's phase is Running (a substring search, as
/// [`node_of`]).
fn running(value: &[u8]) -> bool {
    std::str::from_utf8(value).is_ok_and(|t| t.contains("\"phase\":\"Running\""))
}

/// Follows the pods from revision `from` until every one of `pods` is
/// bound (and, with `until_running`, reported Running by its kubelet).
async fn follow(
    store: Arc<dyn Store>,
    prefix: String,
    from: u64,
    pods: usize,
    until_running: bool,
    handover: Handover,
) -> Followed {
    let follow_store = store;
    let mut events = follow_store.watch(&prefix, from).await.expect("watch");
    handover.watching.send(()).expect("the bench waits");
    let start = handover.start_at.recv().expect("the clock starts");
    let mut bound: HashMap<String, (Duration, String)> = HashMap::with_capacity(pods);
    let mut up = std::collections::HashSet::with_capacity(pods);
    let mut all_running = None;
    let mut relists = 0;
    let deadline = Duration::from_secs(300);
    let mut told = false;
    while (bound.len() < pods || (until_running && up.len() < pods)) && start.elapsed() < deadline {
        match tokio::time::timeout(deadline.saturating_sub(start.elapsed()), events.recv()).await {
            Ok(Some(event)) => {
                if let Some(node) = node_of(&event.value)
                    && !bound.contains_key(&event.key)
                {
                    bound.insert(event.key.clone(), (start.elapsed(), node.to_string()));
                }
                if until_running && running(&event.value) && up.insert(event.key.clone()) {
                    all_running = Some(start.elapsed());
                }
            }
            // Fell behind the store's live events: re-list (binds
            // found so get the time of the listing, later than they
            // happened) and watch again.
            Ok(None) => {
                relists += 1;
                let listing = follow_store.list(&prefix).await.expect("re-list");
                let seen = start.elapsed();
                for kv in &listing.items {
                    if let Some(node) = node_of(&kv.value)
                        && !bound.contains_key(&kv.key)
                    {
                        bound.insert(kv.key.clone(), (seen, node.to_string()));
                    }
                    if until_running && running(&kv.value) && up.insert(kv.key.clone()) {
                        all_running = Some(seen);
                    }
                }
                events = follow_store
                    .watch(&prefix, listing.revision)
                    .await
                    .expect("watch again");
            }
            Err(_) => break,
        }
        if !told && bound.len() == pods {
            told = true;
            let _ = handover.all_bound.send(());
        }
    }
    if !told {
        let _ = handover.all_bound.send(());
    }
    Followed {
        bound,
        relists,
        all_running: all_running.filter(|_| up.len() == pods),
    }
}
