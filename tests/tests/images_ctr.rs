//! The tarballs of `skiff-images build` are what `ctr images import`
//! accepts, and the imported images run under plain `ctr`.

use std::process::Command;

use skiff_kubelet::runtime::ContainerRuntime;
use skiff_tests::{TestEnv, free_port, http, workspace_binary};

/// Runs the real `skiff-images` binary, imports its output with `ctr`, and
/// runs busybox and the webapp with `ctr run`.
#[tokio::test]
async fn skiff_images_tarballs_import_and_run_with_ctr() {
    let Some(env) = TestEnv::start("skiff_images_tarballs_import_and_run_with_ctr").await else {
        return;
    };
    let out_dir = env.dir().join("built");
    let listed = Command::new(workspace_binary("skiff-images"))
        .arg("list")
        .output()
        .expect("run skiff-images list");
    assert!(listed.status.success());
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    for name in [
        "docker.io/library/busybox:latest",
        "skiff.dev/webapp:v1",
        "skiff.dev/webapp:v2",
    ] {
        assert!(listed.contains(name), "{listed}");
    }

    let built = Command::new(workspace_binary("skiff-images"))
        .args(["build", "--out"])
        .arg(&out_dir)
        .output()
        .expect("run skiff-images build");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let progress = String::from_utf8_lossy(&built.stderr).into_owned();
    assert!(progress.contains("[3/3]"), "progress is shown: {progress}");

    for file in ["busybox-latest.tar", "webapp-v1.tar", "webapp-v2.tar"] {
        let path = out_dir.join(file);
        let out = env.ctr(&["images", "import", &path.display().to_string()]);
        assert!(out.contains("unpacking"), "{out}");
    }
    let images = env.ctr_ids(&["images", "ls"]);
    assert_eq!(
        images,
        [
            "docker.io/library/busybox:latest",
            "skiff.dev/webapp:v1",
            "skiff.dev/webapp:v2"
        ]
    );

    let out = env.ctr(&[
        "run",
        "--rm",
        "docker.io/library/busybox:latest",
        "ctr-busybox",
        "sh",
        "-c",
        "echo from-ctr; for a in sh sleep echo cat ls date wget nc httpd true false env hostname id pwd; do command -v $a >/dev/null || echo missing $a; done",
    ]);
    assert_eq!(out.trim(), "from-ctr", "every required applet exists");

    let port = free_port();
    env.ctr(&[
        "run",
        "-d",
        "--net-host",
        "--env",
        &format!("PORT={port}"),
        "skiff.dev/webapp:v2",
        "ctr-webapp",
    ]);
    let addr = format!("127.0.0.1:{port}");
    let mut answer = None;
    for _ in 0..100 {
        if let Ok(r) = http("GET", &addr, "/") {
            answer = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, body) = answer.expect("webapp answers under ctr");
    assert_eq!(status, 200);
    assert!(body.starts_with("webapp v2 on "), "{body}");
    // Removal works by id for containers Skiff did not create, too.
    env.runtime
        .remove_container("ctr-webapp")
        .await
        .expect("remove");
    assert!(env.ctr_ids(&["containers", "ls"]).is_empty());
    env.shutdown().await;
}
