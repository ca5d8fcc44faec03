//! ServiceAccounts on `skiff up` (real containerd, real kubectl): every
//! namespace's `default` account and `kube-root-ca.crt`; `kubectl create
//! token` gives a token the API takes as the account (and a wrong one is
//! 401); a pod gets the projected token, CA and namespace at upstream's
//! path, and from inside it an HTTPS GET of the API through the
//! `kubernetes` Service with them is 403 with upstream's message until a
//! RoleBinding lets the account view, then 200; pods naming a missing
//! account are refused, and opting out mounts nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_tests::cluster::SkiffUp;
use skiff_tests::control_plane::kubectl_enabled;
use skiff_tests::e2e_enabled;

const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const SA_USER: &str = "system:serviceaccount:default:default";

const PODS: &str = "apiVersion: v1
kind: Pod
metadata: {name: api-client}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: 'skiff.dev/webapp:v1'}]
---
apiVersion: v1
kind: Pod
metadata: {name: quiet}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: busybox, command: [sleep, '3600']}]
";

const GHOST: &str = "apiVersion: v1
kind: Pod
metadata: {name: haunted}
spec:
  serviceAccountName: ghost
  containers: [{name: c, image: busybox}]
";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

/// kubectl as the bearer of `token` alone: a kubeconfig without the
/// admin's certificate (which would otherwise win).
fn as_token(cluster: &SkiffUp, token: &str, args: &[&str]) -> (bool, String) {
    let kubeconfig = std::fs::read_to_string(cluster.dir().join("kubeconfig")).expect("kubeconfig");
    let server = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server:"))
        .map(|s| s.trim().trim_matches('"').to_string())
        .expect("server");
    let empty = write(
        cluster.dir(),
        "empty-kubeconfig",
        "apiVersion: v1\nkind: Config\n",
    );
    let ca = cluster.dir().join("pki/ca.crt").display().to_string();
    let mut all = vec![
        "--kubeconfig",
        &empty,
        "--server",
        &server,
        "--certificate-authority",
        &ca,
        "--token",
        token,
    ];
    all.extend_from_slice(args);
    cluster.kubectl(&all)
}

fn exec(cluster: &SkiffUp, pod: &str, cmd: &[&str]) -> (bool, String) {
    let mut args = vec!["exec", pod, "--"];
    args.extend_from_slice(cmd);
    cluster.kubectl(&args)
}

/// The status code and body `webapp api-get` printed.
fn api_get(cluster: &SkiffUp, path: &str) -> (String, String) {
    let (ok, out) = exec(
        cluster,
        "api-client",
        &["/usr/local/bin/webapp", "api-get", path],
    );
    assert!(ok, "api-get failed: {out}");
    let (code, body) = out.split_once('\n').unwrap_or((&out, ""));
    (code.trim().to_string(), body.to_string())
}

#[test]
fn pods_call_the_api_with_their_service_account_as_rbac_allows() {
    let test = "pods_call_the_api_with_their_service_account_as_rbac_allows";
    if !kubectl_enabled(test) || !e2e_enabled(test) {
        return;
    }
    let temp = tempfile::Builder::new()
        .prefix("skiff-sa-")
        .tempdir()
        .expect("tempdir");
    let cluster = SkiffUp::start(1, temp.path());
    let ca = std::fs::read_to_string(cluster.dir().join("pki/ca.crt")).expect("ca.crt");

    // Every namespace's account and CA, a new namespace's too.
    cluster.kubectl_ok(&["create", "namespace", "lab"]);
    for ns in ["default", "kube-system", "lab"] {
        cluster.eventually(
            &["get", "sa", "default", "-n", ns],
            "default account",
            |o| o.contains("default"),
        );
        let published = cluster.eventually(
            &["get", "cm", "kube-root-ca.crt", "-n", ns, "-o", "json"],
            "kube-root-ca.crt",
            |o| o.contains("ca.crt"),
        );
        let cm: Value = serde_json::from_str(&published).expect("json");
        assert_eq!(cm["data"]["ca.crt"].as_str(), Some(ca.as_str()), "{ns}");
    }
    // A deleted default account comes back.
    cluster.kubectl_ok(&["delete", "sa", "default", "-n", "lab"]);
    cluster.eventually(
        &["get", "sa", "default", "-n", "lab"],
        "default again",
        |o| o.contains("default"),
    );

    // kubectl create token: a token the API takes as the account.
    let token = cluster
        .kubectl_ok(&["create", "token", "default"])
        .trim()
        .to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let (ok, who) = as_token(
        &cluster,
        &token,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert!(ok && who.trim() == SA_USER, "{who}");
    let (ok, refused) = as_token(&cluster, "not-a-token", &["get", "pods"]);
    assert!(!ok && refused.contains("Unauthorized"), "{refused}");
    let (ok, short) = cluster.kubectl(&["create", "token", "default", "--duration", "5m"]);
    assert!(
        !ok && short.contains("may not specify a duration less than 10 minutes"),
        "{short}"
    );

    // A pod naming a missing account is refused as upstream refuses it.
    let ghost = write(cluster.dir(), "ghost.yaml", GHOST);
    let (ok, out) = cluster.kubectl(&["apply", "-f", &ghost]);
    assert!(
        !ok && out.contains(
            "error looking up service account default/ghost: serviceaccount \"ghost\" not found"
        ),
        "{out}"
    );

    let pods = write(cluster.dir(), "pods.yaml", PODS);
    cluster.kubectl_ok(&["apply", "-f", &pods]);
    cluster.eventually(&["get", "pods"], "both pods Running", |o| {
        o.lines().skip(1).filter(|l| l.contains("Running")).count() == 2
    });
    let quiet: Value =
        serde_json::from_str(&cluster.kubectl_ok(&["get", "pod", "quiet", "-o", "json"]))
            .expect("json");
    assert!(quiet["spec"].get("volumes").is_none(), "{quiet}");
    let client: Value =
        serde_json::from_str(&cluster.kubectl_ok(&["get", "pod", "api-client", "-o", "json"]))
            .expect("json");
    let volume = client["spec"]["volumes"][0]["name"]
        .as_str()
        .unwrap_or_default();
    assert!(volume.starts_with("kube-api-access-"), "{client}");

    // The mounted files, read-only.
    let read = |file: &str| {
        let (ok, out) = exec(&cluster, "api-client", &["cat", &format!("{MOUNT}/{file}")]);
        assert!(ok, "{file}: {out}");
        out
    };
    assert_eq!(read("namespace"), "default");
    assert_eq!(read("ca.crt"), ca);
    let pod_token = read("token");
    let (ok, out) = exec(&cluster, "api-client", &["touch", &format!("{MOUNT}/x")]);
    assert!(!ok, "the volume is read-only: {out}");
    let (ok, whoami) = as_token(&cluster, &pod_token, &["auth", "whoami", "-o", "json"]);
    assert!(ok, "{whoami}");
    let whoami: Value = serde_json::from_str(&whoami).expect("json");
    assert_eq!(whoami["status"]["userInfo"]["username"], SA_USER);
    assert_eq!(
        whoami["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"][0],
        "api-client"
    );

    // From inside the pod, through the kubernetes Service: 403, then 200.
    let path = "/api/v1/namespaces/default/pods";
    let (code, body) = api_get(&cluster, path);
    assert_eq!(code, "403", "{body}");
    assert!(
        body.contains(
            "pods is forbidden: User \\\"system:serviceaccount:default:default\\\" cannot list resource \\\"pods\\\" in API group \\\"\\\" in the namespace \\\"default\\\""
        ),
        "{body}"
    );
    cluster.kubectl_ok(&[
        "create",
        "rolebinding",
        "sa-view",
        "--clusterrole=view",
        "--serviceaccount=default:default",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = api_get(&cluster, path);
        if code == "200" {
            assert!(body.contains("\"api-client\""), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "still {code}: {body}");
        std::thread::sleep(Duration::from_millis(300));
    }
}
