//! `kubectl port-forward` (the WebSocket-tunnelled SPDY of kubectl 1.31+
//! and plain SPDY), `pods/proxy` and `services/proxy` through the control
//! plane to the webapp in a real container on a real `skiff-kubelet`.

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use skiff_tests::TestEnv;
use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
use skiff_tests::kubelet::{TestKubelet, container_status, wait_pod};

/// `GET /` on a local port, retried while kubectl starts listening.
fn get_through(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })();
        match attempt {
            Ok(text) if text.contains("webapp") => return text,
            other if Instant::now() > deadline => panic!("no answer on {port}: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn port_forward_and_proxies_reach_the_webapp() {
    if !kubectl_enabled("port_forward_and_proxies_reach_the_webapp") {
        return;
    }
    let Some(env) = TestEnv::start("port_forward_and_proxies_reach_the_webapp").await else {
        return;
    };
    let node = format!("pf{}x", std::process::id());
    let cp = TestControlPlane::start().await;
    let kubelet = TestKubelet::start_for(&env, &node, &cp).await;
    let pod_yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web, labels: {{app: web}}}}\nspec:\n  nodeName: {node}\n  automountServiceAccountToken: false\n  containers:\n  - name: web\n    image: skiff.dev/webapp:v1\n    imagePullPolicy: IfNotPresent\n    ports: [{{name: http, containerPort: 8080}}]\n"
    );
    kubelet.run_stored_pod(&cp, &node, "web", &pod_yaml).await;
    wait_pod(&kubelet, "web", "running", Duration::from_secs(30), |p| {
        container_status(p, "web").is_some_and(|s| s.ready)
    })
    .await;

    // kubectl's default: SPDY tunnelled through a WebSocket.
    let forward = cp
        .kubectl_command(&["port-forward", "pod/web", "18080:8080"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("port-forward");
    let text = get_through(18080);
    stop(forward);
    assert!(text.contains("webapp v1 on web"), "{text}");

    // The plain SPDY upgrade of older kubectl.
    let forward = cp
        .kubectl_command(&["port-forward", "pod/web", "18081:8080"])
        .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("port-forward");
    let text = get_through(18081);
    stop(forward);
    assert!(text.contains("webapp v1 on web"), "{text}");

    let body = cp.kubectl_ok(&["get", "--raw", "/api/v1/namespaces/default/pods/web/proxy/"]);
    assert!(body.contains("webapp v1 on web"), "{body}");
    let body = cp.kubectl_ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods/web:http/proxy/",
    ]);
    assert!(body.contains("webapp v1 on web"), "{body}");

    let svc_yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n";
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("svc.yaml", svc_yaml)]);
    let body = cp.kubectl_ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/web/proxy/",
    ]);
    assert!(body.contains("webapp v1 on web"), "{body}");
    let body = cp.kubectl_ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/web:80/proxy/",
    ]);
    assert!(body.contains("webapp v1 on web"), "{body}");

    let err = cp.kubectl_err(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods/web:9999/proxy/",
    ]);
    assert!(
        err.contains("error trying to reach service") && err.contains("error forwarding port 9999"),
        "{err}"
    );
    let err = cp.kubectl_err(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/web:81/proxy/",
    ]);
    assert!(
        err.contains("no service port 81 found for service"),
        "{err}"
    );

    drop(kubelet);
    env.shutdown().await;
}
