//! Pods' `/etc/resolv.conf` on a real kubelet and containerd: what each
//! `dnsPolicy` gives inside the container, hostNetwork included, read with
//! `cat` through exec.

use std::time::Duration;

use skiff_proto::node::v1 as pb;
use skiff_tests::TestEnv;
use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
use skiff_tests::kubelet::{TestKubelet, container_status, pod_yaml, wait_pod};

fn assignment(pod: &k8s_openapi::api::core::v1::Pod) -> pb::PodAssignment {
    pb::PodAssignment {
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
        resource_version: "1".into(),
        pod_json: serde_json::to_vec(pod).expect("pod json"),
    }
}

#[tokio::test]
async fn each_dns_policy_gives_its_resolv_conf_in_the_container() {
    let Some(env) = TestEnv::start("each_dns_policy_gives_its_resolv_conf_in_the_container").await
    else {
        return;
    };
    // The node's file is the test's own: nothing of the machine's leaks in.
    let node_file = env.dir().join("node-resolv.conf");
    std::fs::write(
        &node_file,
        "# node\nnameserver 192.0.2.53\nsearch lab.example.\noptions timeout:2\n",
    )
    .expect("node resolv.conf");
    let node_file = node_file.display().to_string();
    let kubelet = TestKubelet::start_with(
        &env,
        &format!("n{}dns", std::process::id()),
        &["--cluster-dns", "10.96.0.10", "--resolv-conf", &node_file],
    )
    .await;
    let mut client = kubelet.client().await;
    let sleeper = "image: busybox\n    command: [sleep, '3600']";
    let cases = [
        (
            format!(
                "metadata: {{name: dns-cluster-first, namespace: shop}}\nspec:\n  containers:\n  - name: main\n    {sleeper}\n"
            ),
            "search shop.svc.cluster.local svc.cluster.local cluster.local lab.example\nnameserver 10.96.0.10\noptions ndots:5\n",
        ),
        (
            format!(
                "metadata: {{name: dns-default}}\nspec:\n  dnsPolicy: Default\n  containers:\n  - name: main\n    {sleeper}\n"
            ),
            "search lab.example\nnameserver 192.0.2.53\noptions timeout:2\n",
        ),
        (
            // The textbook's sample-externaldns.yaml (busybox for nginx: offline images).
            format!(
                "metadata: {{name: sample-externaldns}}\nspec:\n  dnsPolicy: None\n  dnsConfig:\n    nameservers: [8.8.8.8, 8.8.4.4]\n    searches: [example.com]\n    options: [{{name: ndots, value: '5'}}]\n  containers:\n  - name: main\n    {sleeper}\n"
            ),
            "search example.com\nnameserver 8.8.8.8\nnameserver 8.8.4.4\noptions ndots:5\n",
        ),
        (
            format!(
                "metadata: {{name: dns-hostnet}}\nspec:\n  hostNetwork: true\n  dnsPolicy: ClusterFirstWithHostNet\n  containers:\n  - name: main\n    {sleeper}\n"
            ),
            "search default.svc.cluster.local svc.cluster.local cluster.local lab.example\nnameserver 10.96.0.10\noptions ndots:5\n",
        ),
        (
            format!(
                "metadata: {{name: dns-hostnet-cf}}\nspec:\n  hostNetwork: true\n  containers:\n  - name: main\n    {sleeper}\n"
            ),
            "search lab.example\nnameserver 192.0.2.53\noptions timeout:2\n",
        ),
    ];
    let pods: Vec<_> = cases.iter().map(|(yaml, _)| pod_yaml(yaml)).collect();
    for pod in &pods {
        client.assign_pod(assignment(pod)).await.expect("assign");
    }
    for (pod, (_, want)) in pods.iter().zip(&cases) {
        let name = pod.metadata.name.clone().expect("name");
        let running = wait_pod(&kubelet, &name, "running", Duration::from_secs(60), |p| {
            container_status(p, "main").is_some_and(|s| s.ready)
        })
        .await;
        let uid = running.metadata.uid.clone().expect("uid");
        assert_eq!(
            kubelet
                .exec(&uid, "main", &["cat", "/etc/resolv.conf"])
                .await,
            (0, want.to_string()),
            "{name}"
        );
    }
    drop(kubelet);
    env.shutdown().await;
}

/// Through the whole spine, a kubelet without `--cluster-dns` and with
/// `--resolv-conf ""`: a ClusterFirst pod gets upstream's fallback (the
/// loopback resolver, the root domain) and `MissingClusterDNS` warnings
/// show on the Node and on the pod.
#[tokio::test]
async fn without_cluster_dns_pods_fall_back_with_warnings_in_kubectl() {
    let test = "without_cluster_dns_pods_fall_back_with_warnings_in_kubectl";
    if !kubectl_enabled(test) {
        return;
    }
    let Some(env) = TestEnv::start(test).await else {
        return;
    };
    let cp = TestControlPlane::start().await;
    let node = format!("n{}nodns", std::process::id());
    let kubelet = TestKubelet::start_with(
        &env,
        &node,
        &["--control-plane", &cp.grpc, "--resolv-conf", ""],
    )
    .await;
    cp.eventually(&["get", "nodes"], "the node to be Ready", |o| {
        o.contains(&node) && o.contains(" Ready ")
    });
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: no-dns}\nspec:\n  containers: [{name: main, image: busybox, command: [sleep, '3600']}]\n";
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("pod.yaml", pod)]);
    cp.eventually(&["get", "pod", "no-dns"], "the pod to run", |o| {
        o.contains("Running")
    });
    assert_eq!(
        cp.kubectl_ok(&["exec", "no-dns", "--", "cat", "/etc/resolv.conf"]),
        "search .\nnameserver 127.0.0.1\n"
    );
    let message = "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.";
    let pod_events = cp.eventually(&["describe", "pod", "no-dns"], "the pod's warning", |o| {
        o.contains("MissingClusterDNS")
    });
    assert!(
        pod_events.contains("pod: \"no-dns_default("),
        "{pod_events}"
    );
    let node_events = cp.eventually(
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=Node,reason=MissingClusterDNS",
            "-o",
            "jsonpath={range .items[*]}{.involvedObject.name}|{.type}|{.message}{\"\\n\"}{end}",
        ],
        "the node's warning",
        |o| o.contains(&node),
    );
    assert!(
        node_events.contains(&format!("{node}|Warning|{message}")),
        "{node_events}"
    );
    drop(kubelet);
    env.shutdown().await;
}

/// A node resolv.conf whose search line pods would get cut is reported
/// on the Node (upstream's `CheckLimitsForResolvConf`), and pods get the
/// cut line with a `DNSConfigForming` warning.
#[tokio::test]
async fn an_oversized_node_search_line_is_reported_on_the_node() {
    let test = "an_oversized_node_search_line_is_reported_on_the_node";
    if !kubectl_enabled(test) {
        return;
    }
    let Some(env) = TestEnv::start(test).await else {
        return;
    };
    let node_file = env.dir().join("big-resolv.conf");
    let domains: Vec<String> = (0..30).map(|i| format!("d{i}.example")).collect();
    std::fs::write(
        &node_file,
        format!("nameserver 192.0.2.53\nsearch {}\n", domains.join(" ")),
    )
    .expect("node resolv.conf");
    let node_file = node_file.display().to_string();
    let cp = TestControlPlane::start().await;
    let node = format!("n{}big", std::process::id());
    let kubelet = TestKubelet::start_with(
        &env,
        &node,
        &[
            "--control-plane",
            &cp.grpc,
            "--cluster-dns",
            "10.96.0.10",
            "--resolv-conf",
            &node_file,
        ],
    )
    .await;
    let events = cp.eventually(
        &[
            "get",
            "events",
            "-o",
            "jsonpath={range .items[*]}{.involvedObject.kind}/{.involvedObject.name}|{.reason}|{.message}{\"\\n\"}{end}",
        ],
        "the node's warning",
        |o| o.contains("CheckLimitsForResolvConf"),
    );
    assert!(
        events.contains(&format!("Node/{node}|CheckLimitsForResolvConf|Resolv.conf file '{node_file}' contains search line consisting of more than 29 domains!")),
        "{events}"
    );
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: cut, namespace: default}\nspec:\n  containers: [{name: main, image: busybox, command: [sleep, '3600']}]\n";
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("pod.yaml", pod)]);
    cp.eventually(&["get", "pod", "cut"], "the pod to run", |o| {
        o.contains("Running")
    });
    let kept: Vec<&str> = [
        "default.svc.cluster.local",
        "svc.cluster.local",
        "cluster.local",
    ]
    .into_iter()
    .chain(domains.iter().take(29).map(String::as_str))
    .collect();
    assert_eq!(
        cp.kubectl_ok(&["exec", "cut", "--", "cat", "/etc/resolv.conf"]),
        format!(
            "search {}\nnameserver 10.96.0.10\noptions ndots:5\n",
            kept.join(" ")
        )
    );
    let describe = cp.eventually(&["describe", "pod", "cut"], "DNSConfigForming", |o| {
        o.contains("DNSConfigForming")
    });
    assert!(
        describe.contains("Search Line limits were exceeded, some search paths have been omitted, the applied search line is: default.svc.cluster.local"),
        "{describe}"
    );
    drop(kubelet);
    env.shutdown().await;
}
