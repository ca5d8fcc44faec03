//! RBAC with the real kubectl: bearer-token users (`--token-auth-file`)
//! get what their bindings give them and upstream's 403 for the rest;
//! `kubectl create role|rolebinding|clusterrolebinding`, `auth can-i`
//! (also `--as` and `--list`), `auth whoami`, and escalation prevention.

use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: web, image: skiff.dev/webapp:v1}]
"#;

const DEPLOY: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: skiff.dev/webapp:v1}]
"#;

/// The users of the token file: token, name, uid, groups.
const USERS: [(&str, &str, &str, &[&str]); 2] = [
    ("viewer-token", "viewer", "uid-viewer", &[]),
    ("jane-token", "jane", "uid-jane", &["devs"]),
];

/// Runs `kubectl --token=<token>` with a kubeconfig that trusts the
/// cluster's CA and holds no credentials of its own (the admin's client
/// certificate would authenticate first, as upstream's).
fn as_user(cp: &TestControlPlane, token: &str, args: &[&str]) -> std::process::Output {
    let kubeconfig = cp.scratch().join("token-kubeconfig");
    if !kubeconfig.exists() {
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: https://{}\n    certificate-authority: {}\ncontexts:\n- name: skiff\n  context: {{cluster: skiff, user: someone, namespace: default}}\ncurrent-context: skiff\nusers:\n- name: someone\n  user: {{}}\n",
            cp.address,
            cp.data_dir().join("pki/ca.crt").display()
        );
        std::fs::write(&kubeconfig, config).expect("token kubeconfig");
    }
    let flag = format!("--token={token}");
    let mut all = vec![flag.as_str()];
    all.extend_from_slice(args);
    cp.kubectl_command(&all)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("run kubectl")
}

fn text(out: &std::process::Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// Polls `kubectl --token` until `check` accepts (success, stdout,
/// stderr): grants reach the authorizer through a store watch.
fn eventually_as(
    cp: &TestControlPlane,
    token: &str,
    args: &[&str],
    check: impl Fn(&(bool, String, String)) -> bool,
) -> (bool, String, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = text(&as_user(cp, token, args));
        if check(&out) {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kubectl --token={token} {args:?}: {out:?}\n{}",
            cp.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A `view` user reads but cannot write (upstream's 403 as kubectl
/// prints it); a Role and RoleBinding let them; `auth can-i`, `whoami`,
/// an unknown token (401), and no escalation through roles or bindings.
#[tokio::test]
async fn rbac_grants_what_bindings_give_and_forbids_the_rest() {
    if !kubectl_enabled("rbac_grants_what_bindings_give_and_forbids_the_rest") {
        return;
    }
    let tokens = tempfile::tempdir().expect("temp dir");
    let token_file = tokens.path().join("tokens.csv");
    let lines: Vec<String> = USERS
        .iter()
        .map(|(token, name, uid, groups)| {
            format!("{token},{name},{uid},\"{}\"\n", groups.join(","))
        })
        .collect();
    std::fs::write(&token_file, lines.concat()).expect("token file");
    let cp = TestControlPlane::start_with(&[
        "--token-auth-file",
        token_file.to_str().expect("utf-8 path"),
    ])
    .await;

    // The defaults are there, aggregated as upstream.
    let roles = cp.kubectl_ok(&["get", "clusterroles"]);
    assert!(roles.starts_with("NAME"), "{roles}");
    assert!(
        roles
            .lines()
            .next()
            .is_some_and(|l| l.contains("CREATED AT")),
        "{roles}"
    );
    for role in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
    ] {
        assert!(
            roles.lines().any(|l| l.starts_with(&format!("{role} "))),
            "{role}: {roles}"
        );
    }
    cp.eventually(
        &[
            "get",
            "clusterrole",
            "view",
            "-o",
            "jsonpath={.rules[*].resources}",
        ],
        "view to aggregate system:aggregate-to-view",
        |out| out.contains("pods/log") && out.contains("deployments"),
    );
    let described = cp.kubectl_ok(&["describe", "clusterrole", "view"]);
    assert!(described.contains("PolicyRule:"), "{described}");
    assert!(described.contains("pods/log"), "{described}");

    let pod = cp.manifest("pod.yaml", POD);
    cp.kubectl_ok(&["apply", "-f", &pod]);

    // Before any binding the viewer may discover, not read.
    let (ok, _, err) = text(&as_user(&cp, "viewer-token", &["get", "pods"]));
    assert!(!ok);
    assert_eq!(
        err,
        "Error from server (Forbidden): pods is forbidden: User \"viewer\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );

    assert_eq!(
        cp.kubectl_ok(&[
            "create",
            "clusterrolebinding",
            "viewer-view",
            "--clusterrole=view",
            "--user=viewer"
        ])
        .trim(),
        "clusterrolebinding.rbac.authorization.k8s.io/viewer-view created"
    );
    let wide = cp.kubectl_ok(&["get", "clusterrolebinding", "viewer-view", "-o", "wide"]);
    let header: Vec<&str> = wide
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    );
    assert!(wide.contains("ClusterRole/view"), "{wide}");

    let (_, pods, _) = eventually_as(&cp, "viewer-token", &["get", "pods"], |o| o.0);
    assert!(pods.lines().any(|l| l.starts_with("web ")), "{pods}");
    assert_eq!(
        text(&as_user(
            &cp,
            "viewer-token",
            &["get", "pod", "web", "-o", "name"]
        ))
        .1,
        "pod/web"
    );
    let (ok, _, err) = text(&as_user(
        &cp,
        "viewer-token",
        &["create", "deployment", "web", "--image=skiff.dev/webapp:v1"],
    ));
    assert!(!ok);
    // kubectl's generator commands put their own prefix before the
    // server's message; a manifest's create shows the Status as it is.
    let forbidden = "deployments.apps is forbidden: User \"viewer\" cannot create resource \"deployments\" in API group \"apps\" in the namespace \"default\"";
    assert_eq!(
        err,
        format!("error: failed to create deployment: {forbidden}")
    );
    let deploy = cp.manifest("deploy.yaml", DEPLOY);
    let (ok, _, err) = text(&as_user(&cp, "viewer-token", &["apply", "-f", &deploy]));
    assert!(!ok);
    assert_eq!(
        err,
        format!("Error from server (Forbidden): error when creating \"{deploy}\": {forbidden}")
    );
    let (ok, _, err) = text(&as_user(&cp, "viewer-token", &["delete", "pod", "web"]));
    assert!(!ok);
    assert_eq!(
        err,
        "Error from server (Forbidden): pods \"web\" is forbidden: User \"viewer\" cannot delete resource \"pods\" in API group \"\" in the namespace \"default\""
    );

    // Pod streams are authorized as their subresources.
    let (ok, _, err) = text(&as_user(&cp, "viewer-token", &["exec", "web", "--", "ls"]));
    assert!(!ok);
    // (kubectl tries a WebSocket GET, then falls back to SPDY's POST.)
    assert_eq!(
        err,
        "error: unable to upgrade connection: pods \"web\" is forbidden: User \"viewer\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"default\""
    );

    // can-i: yes (exit 0) and no (exit 1), for oneself and --as.
    let (ok, out, _) = text(&as_user(
        &cp,
        "viewer-token",
        &["auth", "can-i", "list", "pods"],
    ));
    assert!(ok && out == "yes", "{out}");
    let (ok, out, _) = text(&as_user(
        &cp,
        "viewer-token",
        &["auth", "can-i", "create", "deployments.apps"],
    ));
    assert!(!ok && out == "no", "{out}");
    assert_eq!(
        cp.kubectl_ok(&["auth", "can-i", "watch", "pods", "--as=viewer"])
            .trim(),
        "yes"
    );
    let (ok, out, _) = text(&cp.kubectl(&["auth", "can-i", "delete", "pods", "--as=viewer"]));
    assert!(!ok && out == "no", "{out}");
    assert_eq!(
        cp.kubectl_ok(&["auth", "can-i", "delete", "nodes"]).trim(),
        "yes"
    );
    // Impersonation itself needs `impersonate`.
    let (ok, _, err) = text(&as_user(&cp, "viewer-token", &["get", "pods", "--as=jane"]));
    assert!(!ok);
    assert_eq!(
        err,
        "Error from server (Forbidden): users \"jane\" is forbidden: User \"viewer\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    );
    let list = text(&as_user(&cp, "viewer-token", &["auth", "can-i", "--list"])).1;
    assert!(list.starts_with("Resources"), "{list}");
    assert!(
        list.lines()
            .any(|l| l.starts_with("pods ") && l.contains("[get list watch]")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("selfsubjectaccessreviews.authorization.k8s.io")),
        "{list}"
    );

    // A Role and a RoleBinding let the viewer create deployments here only.
    assert_eq!(
        cp.kubectl_ok(&[
            "create",
            "role",
            "deployer",
            "--verb=create,get,list",
            "--resource=deployments.apps"
        ])
        .trim(),
        "role.rbac.authorization.k8s.io/deployer created"
    );
    assert_eq!(
        cp.kubectl_ok(&[
            "create",
            "rolebinding",
            "viewer-deployer",
            "--role=deployer",
            "--user=viewer"
        ])
        .trim(),
        "rolebinding.rbac.authorization.k8s.io/viewer-deployer created"
    );
    let roles = cp.kubectl_ok(&["get", "roles"]);
    assert!(roles.lines().any(|l| l.starts_with("deployer ")), "{roles}");
    let bindings = cp.kubectl_ok(&["get", "rolebindings", "-o", "wide"]);
    assert!(
        bindings.lines().any(|l| l.starts_with("viewer-deployer")
            && l.contains("Role/deployer")
            && l.contains("viewer")),
        "{bindings}"
    );
    let (_, out, _) = eventually_as(
        &cp,
        "viewer-token",
        &["create", "deployment", "web", "--image=skiff.dev/webapp:v1"],
        |o| o.0,
    );
    assert_eq!(out, "deployment.apps/web created");
    assert_eq!(
        text(&as_user(
            &cp,
            "viewer-token",
            &["auth", "can-i", "create", "deployments.apps"]
        ))
        .1,
        "yes"
    );
    let (ok, _, err) = text(&as_user(
        &cp,
        "viewer-token",
        &[
            "create",
            "deployment",
            "web",
            "--image=skiff.dev/webapp:v1",
            "-n",
            "kube-system",
        ],
    ));
    assert!(!ok);
    assert!(err.contains("in the namespace \"kube-system\""), "{err}");
    // roleRef is immutable.
    let err = cp.kubectl_err(&[
        "patch",
        "rolebinding",
        "viewer-deployer",
        "--type=merge",
        "-p",
        r#"{"roleRef":{"name":"other"}}"#,
    ]);
    assert!(err.contains("cannot change roleRef"), "{err}");

    // A user without bindings, and a token nobody has.
    let (ok, _, err) = text(&as_user(&cp, "jane-token", &["get", "deployments"]));
    assert!(!ok);
    assert_eq!(
        err,
        "Error from server (Forbidden): deployments.apps is forbidden: User \"jane\" cannot list resource \"deployments\" in API group \"apps\" in the namespace \"default\""
    );
    let (ok, _, err) = text(&as_user(&cp, "no-such-token", &["get", "pods"]));
    assert!(!ok);
    // Discovery is cached by now, so the 401 is the list's own.
    assert_eq!(
        err,
        "error: You must be logged in to the server (Unauthorized)"
    );

    // whoami.
    let who = text(&as_user(&cp, "jane-token", &["auth", "whoami"])).1;
    let rows: Vec<Vec<&str>> = who
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["ATTRIBUTE", "VALUE"], "{who}");
    assert_eq!(rows[1], ["Username", "jane"], "{who}");
    assert!(who.contains("[devs system:authenticated]"), "{who}");

    // Escalation: jane administers `default` (admin through a RoleBinding)
    // but cannot grant what she does not hold.
    cp.kubectl_ok(&[
        "create",
        "rolebinding",
        "jane-admin",
        "--clusterrole=admin",
        "--user=jane",
    ]);
    eventually_as(
        &cp,
        "jane-token",
        &[
            "create",
            "role",
            "pod-reader",
            "--verb=get",
            "--resource=pods",
        ],
        |o| o.0,
    );
    let (ok, _, err) = text(&as_user(
        &cp,
        "jane-token",
        &[
            "create",
            "role",
            "node-reader",
            "--verb=get",
            "--resource=nodes",
        ],
    ));
    assert!(!ok);
    assert_eq!(
        err,
        "Error from server (Forbidden): roles.rbac.authorization.k8s.io \"node-reader\" is forbidden: user \"jane\" (groups=[\"devs\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}"
    );
    let (ok, _, err) = text(&as_user(
        &cp,
        "jane-token",
        &[
            "create",
            "rolebinding",
            "jane-root",
            "--clusterrole=cluster-admin",
            "--user=jane",
        ],
    ));
    assert!(!ok);
    assert!(
        err.contains("is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    let (ok, out, _) = text(&as_user(
        &cp,
        "jane-token",
        &[
            "create",
            "rolebinding",
            "jane-reader",
            "--role=pod-reader",
            "--user=viewer",
        ],
    ));
    assert!(ok, "{out}");
}
