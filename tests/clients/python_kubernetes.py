"""The official Python client (`kubernetes`) against Skiff."""

import datetime
import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    SERVED,
    TRAILING_SLASH_PATHS,
    Checks,
    check_served_table,
    eventually,
    expect,
    http_get_over,
    pod_ready,
    sleeper_pod,
    talker_pod,
)
from kubernetes import client, config, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402
from kubernetes.stream import portforward, stream  # noqa: E402

NS = "py-kubernetes"

config.load_kube_config()
api = client.ApiClient()
core = client.CoreV1Api(api)
apps = client.AppsV1Api(api)
checks = Checks("kubernetes (Python)")


def raw(method, path, body=None, content_type=None, query=None):
    """A request through the client's own REST layer; the decoded JSON."""
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    method_, url, headers, body, *_ = api.param_serialize(
        method, path, query_params=query or [], header_params=headers, body=body
    )
    resp = api.call_api(method_, url, header_params=headers, body=body)
    resp.read()
    if not 200 <= resp.status < 300:
        raise ApiException(http_resp=resp)
    return json.loads(resp.data)


def discovery():
    version = client.VersionApi(api).get_code()  # GET /version/
    expect(version.git_version, f"no gitVersion: {version}")
    core_versions = client.CoreApi(api).get_api_versions()  # GET /api/
    expect("v1" in core_versions.versions, core_versions)
    groups = client.ApisApi(api).get_api_versions()  # GET /apis/
    names = {g.name for g in groups.groups}
    expect({"apps", "batch"} <= names, names)
    core_resources = core.get_api_resources()  # GET /api/v1/
    expect("pods" in {r.name for r in core_resources.resources}, core_resources)
    app_resources = apps.get_api_resources()  # GET /apis/apps/v1/
    expect("deployments" in {r.name for r in app_resources.resources}, app_resources)
    for path in TRAILING_SLASH_PATHS:
        doc = raw("GET", path)
        expect(isinstance(doc, dict) and doc, f"{path}: {doc}")


def setup_namespace_and_pods():
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    for manifest in [
        talker_pod(NS),
        sleeper_pod(NS, "victim", {"app": "victim"}),
        sleeper_pod(NS, "guarded", {"app": "guarded"}),
    ]:
        core.create_namespaced_pod(NS, manifest)
    for name in ["talker", "victim", "guarded"]:
        eventually(
            f"pod {name} ready",
            lambda name=name: pod_ready(raw("GET", f"/api/v1/namespaces/{NS}/pods/{name}")),
            timeout=90,
        )


def status_on_create():
    pod = raw("POST", f"/api/v1/namespaces/{NS}/pods", body=sleeper_pod(NS, "fresh", {"app": "fresh"}))
    expect((pod.get("status") or {}).get("phase") == "Pending", f"created pod's status: {pod.get('status')}")
    deployment = raw(
        "POST",
        f"/apis/apps/v1/namespaces/{NS}/deployments",
        body={
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "fresh"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "fresh-d"}},
                "template": {
                    "metadata": {"labels": {"app": "fresh-d"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        },
    )
    expect("status" in deployment, f"created Deployment has no status: {sorted(deployment)}")
    sts = raw(
        "POST",
        f"/apis/apps/v1/namespaces/{NS}/statefulsets",
        body={
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "fresh"},
            "spec": {
                "replicas": 0,
                "serviceName": "fresh",
                "selector": {"matchLabels": {"app": "fresh-s"}},
                "template": {
                    "metadata": {"labels": {"app": "fresh-s"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        },
    )
    expect((sts.get("status") or {}).get("replicas") == 0, f"created StatefulSet's status: {sts.get('status')}")
    core.delete_namespaced_pod("fresh", NS, grace_period_seconds=0)


def typed_lists():
    methods = {
        ("", "pods"): core.list_pod_for_all_namespaces,
        ("", "services"): core.list_service_for_all_namespaces,
        ("", "endpoints"): core.list_endpoints_for_all_namespaces,
        ("", "nodes"): core.list_node,
        ("", "namespaces"): core.list_namespace,
        ("", "events"): core.list_event_for_all_namespaces,
        ("", "replicationcontrollers"): core.list_replication_controller_for_all_namespaces,
        ("", "persistentvolumes"): core.list_persistent_volume,
        ("", "persistentvolumeclaims"): core.list_persistent_volume_claim_for_all_namespaces,
        ("", "configmaps"): core.list_config_map_for_all_namespaces,
        ("", "secrets"): core.list_secret_for_all_namespaces,
        ("", "serviceaccounts"): core.list_service_account_for_all_namespaces,
        ("apps", "deployments"): apps.list_deployment_for_all_namespaces,
        ("apps", "replicasets"): apps.list_replica_set_for_all_namespaces,
        ("apps", "daemonsets"): apps.list_daemon_set_for_all_namespaces,
        ("apps", "statefulsets"): apps.list_stateful_set_for_all_namespaces,
        ("apps", "controllerrevisions"): apps.list_controller_revision_for_all_namespaces,
        ("batch", "jobs"): client.BatchV1Api(api).list_job_for_all_namespaces,
        ("batch", "cronjobs"): client.BatchV1Api(api).list_cron_job_for_all_namespaces,
        ("storage.k8s.io", "storageclasses"): client.StorageV1Api(api).list_storage_class,
        ("discovery.k8s.io", "endpointslices"): client.DiscoveryV1Api(api).list_endpoint_slice_for_all_namespaces,
        ("coordination.k8s.io", "leases"): client.CoordinationV1Api(api).list_lease_for_all_namespaces,
        ("events.k8s.io", "events"): client.EventsV1Api(api).list_event_for_all_namespaces,
        ("policy", "poddisruptionbudgets"): client.PolicyV1Api(api).list_pod_disruption_budget_for_all_namespaces,
        ("rbac.authorization.k8s.io", "roles"): client.RbacAuthorizationV1Api(api).list_role_for_all_namespaces,
        ("rbac.authorization.k8s.io", "clusterroles"): client.RbacAuthorizationV1Api(api).list_cluster_role,
        ("rbac.authorization.k8s.io", "rolebindings"): client.RbacAuthorizationV1Api(api).list_role_binding_for_all_namespaces,
        ("rbac.authorization.k8s.io", "clusterrolebindings"): client.RbacAuthorizationV1Api(api).list_cluster_role_binding,
        ("certificates.k8s.io", "certificatesigningrequests"): client.CertificatesV1Api(api).list_certificate_signing_request,
    }
    expect(set(methods) == set(SERVED), "table out of step with harness.SERVED")
    failures = []
    for key, method in methods.items():
        try:
            items = method().items
            if key in {("", "nodes"), ("", "namespaces"), ("", "pods")}:
                expect(items, f"{key[1]}: empty list")
        except Exception as e:  # noqa: BLE001 - every kind is tried
            failures.append(f"{key[0] or 'core'}/{key[1]}: {type(e).__name__}: {str(e)[:300]}")
    try:
        check_served_table(lambda path: raw("GET", path))
    except AssertionError as e:
        failures.append(str(e))
    expect(not failures, "typed lists failed:\n  " + "\n  ".join(failures))
    node = core.list_node().items[0]
    info = node.status.node_info
    for field in ["boot_id", "machine_id", "system_uuid", "kube_proxy_version", "kubelet_version"]:
        expect(getattr(info, field) is not None, f"nodeInfo.{field} missing")


def crud():
    cms = core
    cm = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="settings", labels={"app": "shop"}),
        data={"mode": "fast"},
    )
    created = cms.create_namespaced_config_map(NS, cm)
    expect(created.metadata.uid and created.metadata.resource_version, created.metadata)
    got = cms.read_namespaced_config_map("settings", NS)
    expect(got.data == {"mode": "fast"}, got.data)
    listed = cms.list_namespaced_config_map(NS, label_selector="app=shop").items
    expect([c.metadata.name for c in listed] == ["settings"], listed)
    others = [c.metadata.name for c in cms.list_namespaced_config_map(NS, label_selector="app!=shop").items]
    expect("settings" not in others, f"selector ignored: {others}")
    # A dict body is sent as a strategic merge patch.
    patched = cms.patch_namespaced_config_map("settings", NS, {"data": {"size": "big"}})
    expect(patched.data == {"mode": "fast", "size": "big"}, patched.data)
    json_patched = cms.patch_namespaced_config_map(
        "settings", NS, [{"op": "replace", "path": "/data/mode", "value": "slow"}]
    )
    expect(json_patched.data["mode"] == "slow", json_patched.data)
    got.data = {"only": "this"}
    try:
        cms.replace_namespaced_config_map("settings", NS, got)
        raise AssertionError("a replace with a stale resourceVersion succeeded")
    except ApiException as e:
        expect(e.status == 409, f"stale replace: {e.status} {e.body}")
    cms.delete_namespaced_config_map("settings", NS)
    try:
        cms.read_namespaced_config_map("settings", NS)
        raise AssertionError("deleted ConfigMap still readable")
    except ApiException as e:
        expect(e.status == 404, e)
        body = json.loads(e.body)
        expect(body.get("kind") == "Status" and body.get("reason") == "NotFound", body)


def watch_and_resume():
    rv = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, {"metadata": {"name": "watched"}, "data": {"n": "1"}})
    w = watch.Watch()
    first = None
    for event in w.stream(core.list_namespaced_config_map, NS, resource_version=rv, timeout_seconds=15):
        if event["object"].metadata.name == "watched":
            first = event
            w.stop()
    expect(first is not None, "no event for the created ConfigMap")
    expect(first["type"] == "ADDED", first["type"])
    seen = first["object"].metadata.resource_version
    core.patch_namespaced_config_map("watched", NS, {"data": {"n": "2"}})
    core.delete_namespaced_config_map("watched", NS)
    resumed = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, NS, resource_version=seen, timeout_seconds=15):
        if event["object"].metadata.name == "watched":
            resumed.append((event["type"], (event["object"].data or {}).get("n")))
            if event["type"] == "DELETED":
                w.stop()
    expect(resumed == [("MODIFIED", "2"), ("DELETED", "2")], f"resumed watch saw {resumed}")


def exec_with_stdin():
    # write_stdin with a str sends a WebSocket text frame.
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        "talker",
        NS,
        container="shell",
        command=["sh", "-c", "read line; echo got:$line | tr a-z A-Z"],
        stdin=True,
        stdout=True,
        stderr=True,
        tty=False,
        _preload_content=False,
    )
    resp.write_stdin("hello through stdin\n")
    out = ""
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=20)
    while resp.is_open() and datetime.datetime.now() < deadline:
        resp.update(timeout=1)
        out += resp.read_stdout()
    resp.close()
    expect("GOT:HELLO THROUGH STDIN" in out, f"stdout: {out!r}")

    resp = stream(
        core.connect_get_namespaced_pod_exec,
        "talker",
        NS,
        container="shell",
        command=["sh", "-c", "echo out; echo err >&2; exit 3"],
        stdin=False,
        stdout=True,
        stderr=True,
        tty=False,
        _preload_content=False,
    )
    resp.run_forever(timeout=20)
    expect(resp.read_stdout() == "out\n", "stdout")
    expect(resp.read_stderr() == "err\n", "stderr")
    expect(resp.returncode == 3, f"exit code {resp.returncode}")

    out = stream(
        core.connect_get_namespaced_pod_exec,
        "talker",
        NS,
        container="shell",
        command=["hostname"],
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
    )
    expect(out.strip() == "talker", f"hostname: {out!r}")


def logs():
    text = core.read_namespaced_pod_log("talker", NS, container="shell")
    expect("hello from the pod" in text and "to stderr" in text, text)
    tail = core.read_namespaced_pod_log("talker", NS, container="shell", tail_lines=1)
    expect(tail.count("\n") == 1, f"tail_lines=1 gave {tail!r}")
    try:
        core.read_namespaced_pod_log("talker", NS, container="nope")
        raise AssertionError("logs of an unknown container")
    except ApiException as e:
        expect(e.status == 400, e)


def port_forward():
    pf = portforward(core.connect_get_namespaced_pod_portforward, "talker", NS, ports="8080")
    sock = pf.socket(8080)
    sock.setblocking(True)
    sock.settimeout(20)
    answer = http_get_over(sock.sendall, lambda: sock.recv(4096))
    sock.close()
    expect("webapp v1 on talker" in answer, f"answer: {answer!r}")
    expect(pf.error(8080) is None, pf.error(8080))
    pf.close()


def server_side_apply():
    def apply(manager, value, force=False):
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "applied", "namespace": NS},
            "data": {"key": value},
        }
        return core.patch_namespaced_config_map(
            "applied",
            NS,
            body,
            field_manager=manager,
            force=force,
            _content_type="application/apply-patch+yaml",
        )

    first = apply("py-first", "1")
    expect(first.data == {"key": "1"}, first.data)
    managers = {(m.manager, m.operation) for m in first.metadata.managed_fields or []}
    expect(("py-first", "Apply") in managers, managers)
    try:
        apply("py-second", "2")
        raise AssertionError("a conflicting apply succeeded")
    except ApiException as e:
        expect(e.status == 409, f"{e.status} {e.body}")
        expect(json.loads(e.body).get("reason") == "Conflict", e.body)
    forced = apply("py-second", "2", force=True)
    expect(forced.data == {"key": "2"}, forced.data)


def events():
    now = datetime.datetime.now(datetime.timezone.utc)
    regarding = client.V1ObjectReference(kind="Pod", name="talker", namespace=NS, api_version="v1")
    core.create_namespaced_event(
        NS,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="talker.core"),
            involved_object=regarding,
            reason="Tested",
            message="from core/v1",
            type="Normal",
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component="py-test"),
        ),
    )
    events_v1 = client.EventsV1Api(api)
    created = events_v1.create_namespaced_event(
        NS,
        client.EventsV1Event(
            metadata=client.V1ObjectMeta(name="talker.events"),
            event_time=now,
            reporting_controller="skiff.dev/py-test",
            reporting_instance="py-test-1",
            action="Testing",
            reason="Tested",
            regarding=regarding,
            note="from events.k8s.io/v1",
            type="Normal",
        ),
    )
    expect(created.note == "from events.k8s.io/v1", created)
    listed = {e.metadata.name: e for e in events_v1.list_namespaced_event(NS).items}
    expect("talker.events" in listed and "talker.core" in listed, sorted(listed))
    expect(listed["talker.core"].note == "from core/v1", listed["talker.core"])
    # One store behind both APIs, as upstream: core/v1 sees the new event.
    core_view = {e.metadata.name: e for e in core.list_namespaced_event(NS).items}
    expect("talker.events" in core_view, sorted(core_view))
    expect(core_view["talker.events"].message == "from events.k8s.io/v1", core_view["talker.events"])


def eviction():
    policy = client.PolicyV1Api(api)
    policy.create_namespaced_pod_disruption_budget(
        NS,
        client.V1PodDisruptionBudget(
            metadata=client.V1ObjectMeta(name="guard"),
            spec=client.V1PodDisruptionBudgetSpec(
                min_available=1,
                selector=client.V1LabelSelector(match_labels={"app": "guarded"}),
            ),
        ),
    )
    eventually(
        "the budget's status",
        lambda: (s := policy.read_namespaced_pod_disruption_budget("guard", NS).status)
        and s.current_healthy == 1
        and s.disruptions_allowed == 0,
        timeout=30,
    )

    def evict(name):
        return core.create_namespaced_pod_eviction(
            name, NS, client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=NS))
        )

    try:
        evict("guarded")
        raise AssertionError("evicted a pod its budget protects")
    except ApiException as e:
        expect(e.status == 429, f"{e.status} {e.body}")
        body = json.loads(e.body)
        expect("disruption budget" in body.get("message", ""), body)
    expect(core.read_namespaced_pod("guarded", NS).metadata.deletion_timestamp is None, "guarded pod deleted")
    evict("victim")

    def gone_or_terminating():
        try:
            return core.read_namespaced_pod("victim", NS).metadata.deletion_timestamp is not None
        except ApiException as e:
            return e.status == 404

    eventually("the evicted pod to go", gone_or_terminating, timeout=30)


checks.run("discovery (trailing-slash paths)", discovery)
checks.run("namespace and pods", setup_namespace_and_pods, limit=100)
checks.run("status on create", status_on_create)
checks.run("typed lists of every kind", typed_lists)
checks.run("create/get/list/patch/replace/delete", crud)
checks.run("watch and resume from a resourceVersion", watch_and_resume)
checks.run("exec with stdin", exec_with_stdin, limit=30)
checks.run("logs", logs)
checks.run("port-forward", port_forward)
checks.run("server-side apply", server_side_apply)
checks.run("events (core/v1 and events.k8s.io/v1)", events)
checks.run("eviction (policy/v1)", eviction)
checks.finish()
