//! `skiff token create|list|delete` (kubeadm's `token` commands): a token
//! made after the server started joins a `skiff agent` whose node turns
//! Ready; tokens are listed with kubeadm's columns and TTLs; expired ones
//! are deleted by the token cleaner, one without expiration stays;
//! deleted and expired tokens join no more; malformed
//! arguments get kubeadm's words.

use std::process::Command;
use std::time::{Duration, Instant};

use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
use skiff_tests::server::{SkiffServer, running_under, start_agent, terminate};
use skiff_tests::{e2e_enabled, free_port, workspace_binary};

/// Runs `skiff args` with no `$KUBECONFIG`: success, stdout, stderr.
fn skiff<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> (bool, String, String) {
    let out = Command::new(workspace_binary("skiff"))
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run skiff");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn skiff_ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let (ok, out, err) = skiff(args);
    assert!(ok, "skiff {args:?} failed: {out}{err}");
    out
}

fn skiff_err<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let (ok, out, err) = skiff(args);
    assert!(!ok, "skiff {args:?} should fail: {out}");
    err
}

/// The `skiff token list` row of `token`, split on runs of 2+ spaces (a
/// description may hold single ones).
fn row(list: &str, token: &str) -> Option<Vec<String>> {
    let line = list.lines().find(|l| l.starts_with(token))?;
    Some(
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

fn seconds_until(rfc3339: &str) -> i64 {
    let at = chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("EXPIRES {rfc3339:?}: {e}"));
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds()
}

#[tokio::test]
async fn tokens_are_created_listed_deleted_and_expire_as_kubeadms() {
    if !kubectl_enabled("tokens_are_created_listed_deleted_and_expire_as_kubeadms")
        || !e2e_enabled("tokens_are_created_listed_deleted_and_expire_as_kubeadms")
    {
        return;
    }
    let cp = TestControlPlane::start().await;
    let data_dir = cp.data_dir().display().to_string();
    let kubeconfig = cp.data_dir().join("kubeconfig").display().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let by_dir = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| a.to_string())
            .chain(["--data-dir".to_string(), data_dir.clone()])
            .collect()
    };

    // The token alone on stdout; it joins.
    let out = skiff_ok(&by_dir(&["token", "create"]));
    assert_eq!(out.lines().count(), 1, "{out:?}");
    let token = out.trim().to_string();
    let parsed = skiff_pki::token::BootstrapToken::parse(&token).expect("a token");
    let (joined, log) = cp.try_join(dir.path(), "fresh", &token);
    assert!(joined, "{log}");

    // A given token that never expires, through --kubeconfig.
    let given = "abcdef.0123456789abcdef";
    let out = skiff_ok(&[
        "token",
        "create",
        given,
        "--ttl",
        "0",
        "--description",
        "lab machines",
        "--kubeconfig",
        &kubeconfig,
    ]);
    assert_eq!(out, format!("{given}\n"));

    let list = skiff_ok(&by_dir(&["token", "list"]));
    let header: Vec<&str> = list
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "TOKEN",
            "TTL",
            "EXPIRES",
            "USAGES",
            "DESCRIPTION",
            "EXTRA",
            "GROUPS"
        ],
        "{list}"
    );
    let fresh = row(&list, &token).unwrap_or_else(|| panic!("{token} not listed:\n{list}"));
    assert_eq!(fresh.len(), 6, "{list}");
    assert_eq!(fresh[1], "23h", "{list}");
    let left = seconds_until(&fresh[2]);
    assert!(
        (86_300..=86_400).contains(&left),
        "expires in {left} s: {list}"
    );
    assert_eq!(fresh[3..], ["authentication,signing", "<none>", "<none>"]);
    let forever = row(&list, given).unwrap_or_else(|| panic!("{given} not listed:\n{list}"));
    assert_eq!(
        forever[1..],
        [
            "<forever>",
            "<never>",
            "authentication,signing",
            "lab machines",
            "<none>"
        ],
        "{list}"
    );
    // The Secret is kubeadm's, as kubectl sees it.
    let secret = cp.kubectl_ok(&[
        "get",
        "secret",
        "-n",
        "kube-system",
        "bootstrap-token-abcdef",
        "-o",
        "jsonpath={.type} {.data.usage-bootstrap-signing} {.data.expiration}",
    ]);
    assert_eq!(
        secret.trim(),
        "bootstrap.kubernetes.io/token dHJ1ZQ==",
        "{secret}"
    );

    // Given again, the token is replaced (kubeadm updates it): now 1h.
    skiff_ok(&by_dir(&[
        "token",
        "create",
        given,
        "--ttl",
        "1h",
        "--description",
        "until noon",
    ]));
    let list = skiff_ok(&by_dir(&["token", "list"]));
    let replaced = row(&list, given).expect("still listed");
    assert_eq!(replaced[1], "59m", "{list}");
    assert_eq!(replaced[4], "until noon", "{list}");

    // Delete by id and by whole token; they join no more.
    let out = skiff_ok(&by_dir(&["token", "delete", "abcdef", &token]));
    assert_eq!(
        out,
        format!(
            "bootstrap token \"abcdef\" deleted\nbootstrap token \"{}\" deleted\n",
            parsed.id
        )
    );
    let list = skiff_ok(&by_dir(&["token", "list"]));
    assert!(
        row(&list, given).is_none() && row(&list, &token).is_none(),
        "{list}"
    );
    let (joined, log) = cp.try_join(dir.path(), "deleted", &token);
    assert!(!joined && log.contains("refused to join"), "{log}");
    let err = skiff_err(&by_dir(&["token", "delete", "abcdef"]));
    assert!(
        err.contains("failed to delete bootstrap token \"abcdef\"") && err.contains("not found"),
        "{err}"
    );

    // An expiring token is listed until it expires; then the token
    // cleaner deletes it (as kube-controller-manager's) and it is refused.
    let forever = "zzzzzz.0123456789abcdef";
    cp.create_bootstrap_token(forever, None);
    let short = skiff_ok(&by_dir(&["token", "create", "--ttl", "3s"]))
        .trim()
        .to_string();
    let list = skiff_ok(&by_dir(&["token", "list"]));
    let expiring = row(&list, &short).unwrap_or_else(|| panic!("{short} not listed:\n{list}"));
    let expires_in = seconds_until(&expiring[2]);
    assert!((0..=3).contains(&expires_in), "{list}");
    let made = Instant::now();
    loop {
        let list = skiff_ok(&by_dir(&["token", "list"]));
        if row(&list, &short).is_none() {
            // Not before it expired.
            assert!(made.elapsed() >= Duration::from_secs(2), "{list}");
            break;
        }
        assert!(
            made.elapsed() < Duration::from_secs(8),
            "{short} still listed 5 s after expiring:\n{list}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let list = skiff_ok(&by_dir(&["token", "list"]));
    assert!(
        row(&list, forever).is_some(),
        "a token without expiration stays:\n{list}"
    );
    let (joined, log) = cp.try_join(dir.path(), "expired", &short);
    assert!(!joined && log.contains("refused to join"), "{log}");

    // The join line: the server and CA of the kubeconfig.
    let line = skiff_ok(&by_dir(&["token", "create", "--print-join-command"]));
    let words: Vec<&str> = line.split_whitespace().collect();
    let ca = std::fs::read_to_string(cp.data_dir().join("pki/ca.crt")).expect("ca.crt");
    let hash = skiff_pki::ca::hash_of_pem(&ca).expect("hash");
    let server = format!("https://{}", cp.address);
    assert_eq!(words.len(), 10, "{line}");
    assert_eq!(
        [words[..5].to_vec(), words[6..].to_vec()].concat(),
        [
            "skiff",
            "agent",
            "--server",
            &server,
            "--token",
            "--ca-cert-hash",
            &hash,
            "--data-dir",
            "/var/lib/skiff/agent"
        ],
        "{line}"
    );
    let (joined, log) = cp.try_join(dir.path(), "printed", words[5]);
    assert!(joined, "{log}");

    // Malformed arguments: kubeadm's words, nothing made.
    let err = skiff_err(&by_dir(&["token", "create", "NOT-A-TOKEN"]));
    assert!(
        err.contains(
            r#"the bootstrap token "NOT-A-TOKEN" was not of the form "\\A([a-z0-9]{6})\\.([a-z0-9]{16})\\z""#
        ),
        "{err}"
    );
    let err = skiff_err(&by_dir(&["token", "delete", "abc.def"]));
    assert!(
        err.contains(
            r#"given token didn't match pattern "\\A([a-z0-9]{6})\\.([a-z0-9]{16})\\z" or "\\A([a-z0-9]{6})\\z""#
        ),
        "{err}"
    );
    let err = skiff_err(&by_dir(&["token", "delete"]));
    assert!(err.contains("missing argument"), "{err}");
    let err = skiff_err(&by_dir(&["token", "create", "--ttl", "1d"]));
    assert!(err.contains("unknown unit \"d\""), "{err}");
    let err = skiff_err(&["token", "list"]);
    assert!(err.contains("pass --data-dir DIR"), "{err}");
    let list = skiff_ok(&by_dir(&["token", "list"]));
    assert!(!list.contains("NOT-A-TOKEN"), "{list}");
}

#[test]
fn a_token_made_after_the_server_started_joins_an_agent() {
    if !kubectl_enabled("a_token_made_after_the_server_started_joins_an_agent")
        || !e2e_enabled("a_token_made_after_the_server_started_joins_an_agent")
    {
        return;
    }
    let temp = tempfile::Builder::new()
        .prefix("skiff-token-")
        .tempdir()
        .expect("tempdir");
    let server = SkiffServer::start(&temp.path().join("server"));
    let data_dir = server.dir.display().to_string();
    let line = skiff_ok(&[
        "token",
        "create",
        "--print-join-command",
        "--ttl",
        "2h",
        "--description",
        "the next day",
        "--data-dir",
        &data_dir,
    ]);
    let line = line.trim();
    // The same line `skiff server` prints, but for the new token.
    let token = |l: &str| {
        let words: Vec<String> = l.split_whitespace().map(str::to_string).collect();
        let at = words.iter().position(|w| w == "--token").expect("--token");
        let mut rest = words.clone();
        let token = rest.remove(at + 1);
        (token, rest)
    };
    let (new_token, new_rest) = token(line);
    let (first_token, first_rest) = token(&server.agent_line);
    assert_eq!(new_rest, first_rest, "{line}\n{}", server.agent_line);
    assert_ne!(new_token, first_token);

    let node = format!("later{}", std::process::id());
    let agent_dir = temp.path().join("agent");
    let kubelet_port = free_port().to_string();
    let mut agent = start_agent(
        line,
        &agent_dir,
        &[
            "--node-name",
            &node,
            "--pod-network",
            "none",
            "--kubelet-port",
            &kubelet_port,
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let nodes = server.kubectl(&["get", "nodes"]);
        if nodes.contains(&node) && nodes.contains(" Ready ") {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(agent_dir.join(format!("logs/{node}.log")))
                .unwrap_or_default();
            panic!("the agent's node is not Ready: {nodes}\nkubelet log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let list = skiff_ok(&["token", "list", "--data-dir", &data_dir]);
    let listed = row(&list, &new_token).unwrap_or_else(|| panic!("not listed:\n{list}"));
    assert_eq!(listed[1], "1h", "{list}");
    assert_eq!(listed[4], "the next day", "{list}");
    // `skiff server`'s own token is there too, with its description.
    let first = row(&list, &first_token).unwrap_or_else(|| panic!("not listed:\n{list}"));
    assert_eq!(first[1], "23h", "{list}");
    assert_eq!(first[4], "skiff server", "{list}");

    terminate(&mut agent);
    server.stop();
    let left = running_under(temp.path());
    assert!(left.is_empty(), "left running: {left:?}");
}

#[tokio::test]
async fn the_token_cleaner_deletes_expired_bootstrap_token_secrets_only() {
    if !kubectl_enabled("the_token_cleaner_deletes_expired_bootstrap_token_secrets_only") {
        return;
    }
    let cp = TestControlPlane::start().await;
    let expiring = "exp3ss.0123456789abcdef";
    let forever = "foreve.0123456789abcdef";
    let at = (chrono::Utc::now() + chrono::Duration::seconds(3))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    cp.create_bootstrap_token(expiring, Some(&at));
    cp.create_bootstrap_token(forever, None);
    let exists = |id: &str| {
        let out = cp.kubectl(&[
            "get",
            "secret",
            "-n",
            "kube-system",
            &format!("bootstrap-token-{id}"),
            "-o",
            "name",
        ]);
        out.status.success()
    };
    assert!(exists("exp3ss") && exists("foreve"));
    let made = Instant::now();
    while exists("exp3ss") {
        assert!(
            made.elapsed() < Duration::from_secs(8),
            "the token that expired at {at} is still there"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        seconds_until(&at) <= 0,
        "deleted before its expiration {at}"
    );
    assert!(exists("foreve"), "a token without expiration stays");
}
