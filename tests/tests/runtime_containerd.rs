//! The containerd runtime against a real, private containerd.

use std::time::{Duration, Instant};

use skiff_images::ImageName;
use skiff_images::layer::LayerBuilder;
use skiff_images::layout::{RunConfig, write_image_layout};
use skiff_kubelet::logs::cri;
use skiff_kubelet::runtime::conformance::{self, Behaviour, Fixture};
use skiff_kubelet::runtime::{
    BindMount, ContainerConfig, ContainerRuntime, ContainerState, LabelFilter, NetworkMode,
    RuntimeError, labels,
};
use skiff_tests::{TestEnv, TestNetns, eventually, free_port, http};

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

async fn run_to_exit(
    env: &TestEnv,
    config: &skiff_kubelet::runtime::ContainerConfig,
) -> (i32, String) {
    env.runtime.create_container(config).await.expect("create");
    env.runtime
        .start_container(&config.id)
        .await
        .expect("start");
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        env.runtime.wait_container(&config.id),
    )
    .await
    .expect("container exits in time")
    .expect("wait");
    // The logger flushes every line as it reads it; removal (task delete)
    // waits for it to drain, so the log is complete afterwards.
    env.runtime
        .remove_container(&config.id)
        .await
        .expect("remove");
    let log = std::fs::read(&config.log_path).unwrap_or_default();
    (
        status.code,
        String::from_utf8_lossy(&cri::plain_text(&log)).into_owned(),
    )
}

/// `sh -c 'echo hi; exit 3'` exits 3 and `hi` lands in the CRI log, stdout
/// and stderr tagged apart.
#[tokio::test]
async fn exit_code_and_output_reach_the_cri_log() {
    let Some(env) = TestEnv::start("exit_code_and_output_reach_the_cri_log").await else {
        return;
    };
    let busybox = env.import("busybox").await;
    let mut c = env.config("exit3", &busybox);
    c.command = sh("echo hi; echo oops >&2; exit 3");
    env.runtime.create_container(&c).await.expect("create");
    env.runtime.start_container("exit3").await.expect("start");
    let status = env.runtime.wait_container("exit3").await.expect("wait");
    assert_eq!(status.code, 3);
    let info = env.runtime.container_info("exit3").await.expect("info");
    assert!(
        matches!(info.state, ContainerState::Exited(s) if s.code == 3),
        "{:?}",
        info.state
    );
    env.runtime.remove_container("exit3").await.expect("remove");

    let raw = std::fs::read_to_string(&c.log_path).expect("log file exists");
    let records: Vec<cri::Record> = raw
        .lines()
        .filter_map(|l| cri::parse_record(l.as_bytes()))
        .collect();
    assert_eq!(
        records.len(),
        raw.lines().count(),
        "every line is a CRI record: {raw}"
    );
    assert!(
        records
            .iter()
            .any(|r| r.stream == cri::Stream::Stdout && r.content == b"hi" && !r.partial),
        "{raw}"
    );
    assert!(
        records
            .iter()
            .any(|r| r.stream == cri::Stream::Stderr && r.content == b"oops"),
        "{raw}"
    );
    env.shutdown().await;
}

/// Builds `skiff.dev/test/echo:v1`: ENTRYPOINT `echo entry`, CMD
/// `cmd-default`, an image env and WORKDIR `/tmp`.
fn echo_image(dir: &std::path::Path) -> std::path::PathBuf {
    let base = skiff_images::catalog::busybox_layer(std::path::Path::new("/bin/busybox"))
        .expect("busybox layer");
    let mut top = LayerBuilder::new();
    top.dir("srv", 0o755).expect("dir");
    let top = top.finish().expect("layer");
    let run = RunConfig {
        entrypoint: vec!["echo".into(), "entry".into()],
        cmd: vec!["cmd-default".into()],
        env: vec![
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin".into(),
            "FROM_IMAGE=image".into(),
            "OVERRIDE=image".into(),
        ],
        working_dir: "/srv".into(),
        exposed_ports: vec![],
    };
    let path = dir.join("echo.tar");
    let name = ImageName::parse("skiff.dev/test/echo:v1").expect("valid");
    write_image_layout(&name, &run, &[base, top], &path).expect("write image");
    path
}

/// `command`/`args` override ENTRYPOINT/CMD exactly as in Kubernetes; env
/// is merged over the image's; `workingDir` overrides WORKDIR.
#[tokio::test]
async fn command_args_env_and_working_dir_follow_kubernetes() {
    let Some(env) = TestEnv::start("command_args_env_and_working_dir_follow_kubernetes").await
    else {
        return;
    };
    let archive = echo_image(env.dir());
    let names = env
        .runtime
        .import_image(&archive)
        .await
        .expect("import test image");
    let image = ImageName::parse("skiff.dev/test/echo:v1").expect("valid");
    assert_eq!(names, std::slice::from_ref(&image));

    let cases: [(&str, Vec<&str>, Vec<&str>, &str); 4] = [
        ("neither", vec![], vec![], "entry cmd-default"),
        ("args-only", vec![], vec!["a1", "a2"], "entry a1 a2"),
        ("command-only", vec!["echo", "cmd"], vec![], "cmd"),
        ("both", vec!["echo", "cmd"], vec!["a3"], "cmd a3"),
    ];
    for (id, command, args, expected) in cases {
        let mut c = env.config(id, &image);
        c.command = command.into_iter().map(String::from).collect();
        c.args = args.into_iter().map(String::from).collect();
        let (code, out) = run_to_exit(&env, &c).await;
        assert_eq!(code, 0, "{id}");
        assert_eq!(out, format!("{expected}\n"), "{id}");
    }

    let mut c = env.config("env", &image);
    c.command = sh("echo $FROM_IMAGE $OVERRIDE $ADDED $EXPANDED; pwd");
    c.env = vec![
        ("OVERRIDE".into(), "pod".into()),
        ("ADDED".into(), "added".into()),
        ("EXPANDED".into(), "$(ADDED)-x".into()),
    ];
    let (_, out) = run_to_exit(&env, &c).await;
    assert_eq!(out, "image pod added added-x\n/srv\n");

    let mut c = env.config("workdir", &image);
    c.command = vec!["pwd".into()];
    c.working_dir = Some("/etc".into());
    let (_, out) = run_to_exit(&env, &c).await;
    assert_eq!(out, "/etc\n");
    env.shutdown().await;
}

/// A process that handles SIGTERM exits with its own code (143) at once; one
/// that ignores it is SIGKILLed after the grace period (137).
#[tokio::test]
async fn sigterm_handled_gives_143_and_ignored_gives_137_after_grace() {
    let Some(env) =
        TestEnv::start("sigterm_handled_gives_143_and_ignored_gives_137_after_grace").await
    else {
        return;
    };
    let busybox = env.import("busybox").await;
    let mut polite = env.config("polite", &busybox);
    polite.command =
        sh("trap 'echo got-TERM; exit 143' TERM; echo ready; while :; do sleep 1 & wait $!; done");
    let mut stubborn = env.config("stubborn", &busybox);
    stubborn.command = vec!["sleep".into(), "1000".into()];
    for c in [&polite, &stubborn] {
        env.runtime.create_container(c).await.expect("create");
        env.runtime.start_container(&c.id).await.expect("start");
    }
    // The trap must be installed before the signal arrives.
    eventually(
        "polite container ready",
        Duration::from_secs(10),
        || async {
            let log = std::fs::read(&polite.log_path).unwrap_or_default();
            String::from_utf8_lossy(&cri::plain_text(&log))
                .contains("ready")
                .then_some(())
        },
    )
    .await;

    let started = Instant::now();
    let status = env
        .runtime
        .stop_container("polite", Duration::from_secs(20))
        .await
        .expect("stop");
    assert_eq!(status.code, 143);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );

    let grace = Duration::from_secs(2);
    let started = Instant::now();
    let status = env
        .runtime
        .stop_container("stubborn", grace)
        .await
        .expect("stop");
    assert_eq!(status.code, 137);
    assert!(
        started.elapsed() >= grace,
        "killed before the grace period: {:?}",
        started.elapsed()
    );

    env.runtime
        .remove_container("polite")
        .await
        .expect("remove");
    let log = std::fs::read(&polite.log_path).expect("log");
    assert!(String::from_utf8_lossy(&cri::plain_text(&log)).contains("got-TERM"));
    env.shutdown().await;
}

/// exec returns stdout, stderr and the exit code; a hung command is killed
/// at its timeout; a stopped container cannot exec.
#[tokio::test]
async fn exec_returns_output_and_exit_code() {
    let Some(env) = TestEnv::start("exec_returns_output_and_exit_code").await else {
        return;
    };
    let busybox = env.import("busybox").await;
    let mut c = env.config("sleeper", &busybox);
    c.command = vec!["sleep".into(), "1000".into()];
    c.env = vec![("GREETING".into(), "from-env".into())];
    env.runtime.create_container(&c).await.expect("create");
    env.runtime.start_container("sleeper").await.expect("start");

    let out = env
        .runtime
        .exec(
            "sleeper",
            &sh("echo out $GREETING; echo err >&2; exit 4"),
            Duration::from_secs(10),
        )
        .await
        .expect("exec");
    assert_eq!(out.exit_code, 4);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out from-env\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

    let ok = env
        .runtime
        .exec(
            "sleeper",
            &["cat".into(), "/etc/passwd".into()],
            Duration::from_secs(10),
        )
        .await
        .expect("exec");
    assert_eq!(ok.exit_code, 0);
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("root:x:0:0"));

    let started = Instant::now();
    let err = env
        .runtime
        .exec(
            "sleeper",
            &["sleep".into(), "60".into()],
            Duration::from_secs(1),
        )
        .await
        .expect_err("times out");
    assert!(matches!(err, RuntimeError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));

    env.runtime
        .stop_container("sleeper", Duration::from_secs(1))
        .await
        .expect("stop");
    let err = env
        .runtime
        .exec("sleeper", &["true".into()], Duration::from_secs(5))
        .await
        .expect_err("container is stopped");
    assert!(
        matches!(
            err,
            RuntimeError::NotRunning { .. } | RuntimeError::Rpc { .. }
        ),
        "{err}"
    );
    env.shutdown().await;
}

/// The webapp image serves `/` and `/health` on the host network, and
/// `POST /fail` turns its health red.
#[tokio::test]
async fn webapp_answers_health_over_the_host_network() {
    let Some(env) = TestEnv::start("webapp_answers_health_over_the_host_network").await else {
        return;
    };
    let webapp = env.import("skiff.dev/webapp:v1").await;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut c = env.config("web", &webapp);
    c.network = NetworkMode::Host;
    c.hostname = Some("web-1".into());
    c.env = vec![("PORT".into(), port.to_string())];
    env.runtime.create_container(&c).await.expect("create");
    env.runtime.start_container("web").await.expect("start");

    let (status, body) = eventually("webapp answers", Duration::from_secs(15), || async {
        http("GET", &addr, "/health").ok()
    })
    .await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (_, body) = http("GET", &addr, "/").expect("GET /");
    assert_eq!(body, "webapp v1 on web-1\n");
    assert_eq!(http("POST", &addr, "/fail").expect("POST /fail").0, 200);
    assert_eq!(http("GET", &addr, "/health").expect("GET /health").0, 500);

    // The webapp handles SIGTERM: a clean exit, not a kill.
    let status = env
        .runtime
        .stop_container("web", Duration::from_secs(10))
        .await
        .expect("stop");
    assert_eq!(status.code, 0);
    env.runtime.remove_container("web").await.expect("remove");
    let log = String::from_utf8_lossy(&cri::plain_text(&std::fs::read(&c.log_path).expect("log")))
        .into_owned();
    assert!(log.contains("GET /health 200"), "{log}");
    env.shutdown().await;
}

/// Importing the same archive twice gives the same image and adds nothing.
#[tokio::test]
async fn importing_the_same_image_twice_is_idempotent() {
    let Some(env) = TestEnv::start("importing_the_same_image_twice_is_idempotent").await else {
        return;
    };
    let busybox = ImageName::parse("busybox").expect("valid");
    assert!(!env.runtime.image_present(&busybox).await.expect("present?"));
    env.import("busybox").await;
    let images = env.ctr_ids(&["images", "ls"]);
    let content = env.ctr_ids(&["content", "ls"]);
    let snapshots = env.ctr_ids(&["snapshots", "ls"]);
    let first_image = env.ctr(&["images", "ls"]);
    env.import("busybox").await;
    assert_eq!(env.ctr_ids(&["images", "ls"]), images);
    assert_eq!(env.ctr_ids(&["content", "ls"]), content);
    assert_eq!(env.ctr_ids(&["snapshots", "ls"]), snapshots);
    assert_eq!(env.ctr(&["images", "ls"]), first_image);
    assert_eq!(images, ["docker.io/library/busybox:latest"]);
    assert!(env.runtime.image_present(&busybox).await.expect("present?"));
    // `ctr` agrees the import is complete and unpacked.
    let check = env.ctr(&["images", "check"]);
    assert!(
        check.contains("complete") && check.contains("true"),
        "{check}"
    );

    // The webapp shares busybox's base layer: one more layer snapshot, not two.
    env.import("skiff.dev/webapp:v2").await;
    assert_eq!(env.ctr_ids(&["snapshots", "ls"]).len(), snapshots.len() + 1);
    env.shutdown().await;
}

/// After removal nothing is left: no task, container record, snapshot,
/// runc state or exec FIFO; removing twice is fine.
#[tokio::test]
async fn nothing_is_left_in_containerd_after_removal() {
    let Some(env) = TestEnv::start("nothing_is_left_in_containerd_after_removal").await else {
        return;
    };
    let busybox = env.import("busybox").await;
    let image_snapshots = env.ctr_ids(&["snapshots", "ls"]);

    let mut exited = env.config("exited", &busybox);
    exited.command = vec!["true".into()];
    let mut running = env.config("running", &busybox);
    running.command = vec!["sleep".into(), "1000".into()];
    let created = env.config("created-only", &busybox);
    for c in [&exited, &running, &created] {
        env.runtime.create_container(c).await.expect("create");
    }
    env.runtime.start_container("exited").await.expect("start");
    env.runtime.start_container("running").await.expect("start");
    env.runtime.wait_container("exited").await.expect("wait");
    env.runtime
        .exec("running", &["true".into()], Duration::from_secs(10))
        .await
        .expect("exec");
    assert_eq!(env.ctr_ids(&["containers", "ls"]).len(), 3);

    // Remove kills a running container itself.
    for id in ["exited", "running", "created-only"] {
        env.runtime.remove_container(id).await.expect("remove");
    }
    env.runtime
        .remove_container("running")
        .await
        .expect("second removal is a no-op");
    env.runtime
        .remove_container("never-existed")
        .await
        .expect("unknown id is a no-op");

    assert!(env.ctr_ids(&["containers", "ls"]).is_empty());
    assert!(env.ctr_ids(&["tasks", "ls"]).is_empty());
    assert_eq!(env.ctr_ids(&["snapshots", "ls"]), image_snapshots);
    let runc_state: Vec<_> = std::fs::read_dir(env.runc_root().join(&env.namespace))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(runc_state.is_empty(), "runc state left: {runc_state:?}");
    let exec_dir = env.dir().join("kubelet").join("exec");
    let fifos: Vec<_> = std::fs::read_dir(&exec_dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(fifos.is_empty(), "exec fifos left: {fifos:?}");
    assert!(
        matches!(
            env.runtime.container_info("running").await,
            Err(RuntimeError::NotFound { .. })
        ),
        "container record is gone"
    );
    env.shutdown().await;
}

/// A new runtime connection (a restarted kubelet) finds running containers
/// by their labels, and their output kept reaching the log meanwhile.
#[tokio::test]
async fn a_restarted_kubelet_finds_its_containers_and_logs_kept_flowing() {
    let Some(env) =
        TestEnv::start("a_restarted_kubelet_finds_its_containers_and_logs_kept_flowing").await
    else {
        return;
    };
    let busybox = env.import("busybox").await;
    let mut ticker = env.config("ticker", &busybox);
    ticker.pod.uid = "pod-uid-1".into();
    ticker.name = "tick".into();
    ticker.restart_count = 2;
    ticker.command = sh("i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done");
    let mut other = env.config("other", &busybox);
    other.pod.uid = "pod-uid-2".into();
    other.command = vec!["sleep".into(), "1000".into()];
    for c in [&ticker, &other] {
        env.runtime.create_container(c).await.expect("create");
        env.runtime.start_container(&c.id).await.expect("start");
    }

    let ticks = |path: &std::path::Path| {
        let text = cri::plain_text(&std::fs::read(path).unwrap_or_default());
        String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| l.starts_with("tick "))
            .count()
    };
    eventually("first ticks", Duration::from_secs(10), || async {
        (ticks(&ticker.log_path) > 0).then_some(())
    })
    .await;

    // The kubelet goes away: its runtime connection is dropped.
    let before = ticks(&ticker.log_path);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let restarted = env.reconnect().await;
    assert!(
        ticks(&ticker.log_path) > before,
        "output stopped while nobody was connected"
    );

    let filter = LabelFilter::from([(labels::POD_UID.to_string(), "pod-uid-1".to_string())]);
    let found = restarted.list_containers(&filter).await.expect("list");
    assert_eq!(found.len(), 1, "{found:?}");
    let info = &found[0];
    assert_eq!(info.id, "ticker");
    assert!(
        matches!(info.state, ContainerState::Running { pid } if pid > 0),
        "{:?}",
        info.state
    );
    assert_eq!(info.labels[labels::CONTAINER_NAME], "tick");
    assert_eq!(info.labels[labels::POD_NAMESPACE], "default");
    assert_eq!(info.labels[labels::POD_NAME], "pod-ticker");
    assert_eq!(info.labels[labels::RESTART_COUNT], "2");
    assert_eq!(
        info.labels[labels::LOG_PATH],
        ticker.log_path.display().to_string()
    );
    assert_eq!(
        restarted
            .list_containers(&LabelFilter::new())
            .await
            .expect("list")
            .len(),
        2
    );

    restarted.remove_container("ticker").await.expect("remove");
    let lines = String::from_utf8_lossy(&cri::plain_text(
        &std::fs::read(&ticker.log_path).expect("log"),
    ))
    .into_owned();
    // No gaps: every tick from 0 to the last one is there, in order.
    let numbers: Vec<u64> = lines
        .lines()
        .filter_map(|l| l.strip_prefix("tick ").and_then(|n| n.parse().ok()))
        .collect();
    assert!(numbers.len() > 5);
    assert!(
        numbers.iter().enumerate().all(|(i, n)| *n == i as u64),
        "gap in {numbers:?}"
    );
    env.shutdown().await;
}

/// Containers joining the same network namespace share `localhost`; a
/// private namespace does not see them.
#[tokio::test]
async fn containers_joining_a_network_namespace_share_localhost() {
    let Some(env) = TestEnv::start("containers_joining_a_network_namespace_share_localhost").await
    else {
        return;
    };
    let busybox = env.import("busybox").await;
    let netns = TestNetns::create("skiff-test");
    let path = netns.path();

    std::fs::create_dir_all(env.dir().join("www")).expect("www");
    std::fs::write(env.dir().join("www/index.html"), "shared-localhost\n").expect("index");
    let mut server = env.config("server", &busybox);
    server.network = NetworkMode::Join(path.clone());
    server.command = vec![
        "httpd".into(),
        "-f".into(),
        "-p".into(),
        "8081".into(),
        "-h".into(),
        "/www".into(),
    ];
    server.mounts.push(BindMount {
        host_path: env.dir().join("www"),
        container_path: "/www".into(),
        read_only: true,
    });
    env.runtime.create_container(&server).await.expect("create");
    env.runtime.start_container("server").await.expect("start");

    let mut client = env.config("client", &busybox);
    client.network = NetworkMode::Join(path.clone());
    client.command = sh(
        "for i in $(seq 50); do wget -qO- http://127.0.0.1:8081/ && exit 0; sleep 0.1; done; exit 1",
    );
    let (code, out) = run_to_exit(&env, &client).await;
    assert_eq!((code, out.as_str()), (0, "shared-localhost\n"));

    let mut outsider = env.config("outsider", &busybox);
    outsider.network = NetworkMode::Private;
    outsider.command = sh("wget -qO- -T 2 http://127.0.0.1:8081/ || echo unreachable");
    let (_, out) = run_to_exit(&env, &outsider).await;
    assert!(out.contains("unreachable"), "{out}");

    env.runtime
        .remove_container("server")
        .await
        .expect("remove");
    drop(netns);
    env.shutdown().await;
}

/// Creating from an image that was never imported fails with a clear error
/// and leaves nothing behind.
#[tokio::test]
async fn a_missing_image_is_reported_as_not_present() {
    let Some(env) = TestEnv::start("a_missing_image_is_reported_as_not_present").await else {
        return;
    };
    let c = env.config(
        "ghost",
        &ImageName::parse("skiff.dev/nothing:v1").expect("valid"),
    );
    let err = env
        .runtime
        .create_container(&c)
        .await
        .expect_err("no such image");
    assert!(matches!(err, RuntimeError::ImageNotPresent { .. }), "{err}");
    assert_eq!(err.to_string(), "image skiff.dev/nothing:v1 is not present");
    assert!(env.ctr_ids(&["containers", "ls"]).is_empty());
    assert!(env.ctr_ids(&["snapshots", "ls"]).is_empty());
    env.shutdown().await;
}

/// The conformance suite's behaviours as busybox `sh` scripts.
struct Busybox<'a> {
    env: &'a TestEnv,
    image: ImageName,
}

impl Fixture for Busybox<'_> {
    fn config(&self, id: &str, pod_uid: &str, behaviour: Behaviour) -> ContainerConfig {
        let mut c = self.env.config(id, &self.image);
        c.pod.uid = pod_uid.into();
        c.command = match behaviour {
            Behaviour::Exit {
                stdout,
                stderr,
                code,
            } => sh(&format!("echo {stdout}; echo {stderr} >&2; exit {code}")),
            Behaviour::UntilTerm => {
                sh("trap 'exit 143' TERM; echo ready; while :; do sleep 1 & wait $!; done")
            }
            // As pid 1 without a handler, SIGTERM does nothing to it.
            Behaviour::IgnoresTerm => vec!["sleep".into(), "1000".into()],
        };
        c
    }
}

/// containerd does what the `ContainerRuntime` trait promises, as checked by
/// the same suite the fake runtime passes.
#[tokio::test]
async fn containerd_passes_the_runtime_conformance_suite() {
    let Some(env) = TestEnv::start("containerd_passes_the_runtime_conformance_suite").await else {
        return;
    };
    let image = env.import("busybox").await;
    let fixture = Busybox { env: &env, image };
    conformance::run_all(&env.runtime, &fixture).await;
    env.shutdown().await;
}
