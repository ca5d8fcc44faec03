"""lightkube (typed models) against Skiff."""

import datetime
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import SERVED, Checks, eventually, expect, pod_ready, sleeper_pod, talker_pod  # noqa: E402
from lightkube import ApiError, Client, codecs  # noqa: E402
from lightkube.models.core_v1 import ObjectReference  # noqa: E402
from lightkube.models.meta_v1 import ObjectMeta  # noqa: E402
from lightkube.resources import (  # noqa: E402
    apps_v1,
    batch_v1,
    certificates_v1,
    coordination_v1,
    core_v1,
    discovery_v1,
    events_v1,
    policy_v1,
    rbac_authorization_v1,
    storage_v1,
)
from lightkube.resources.core_v1 import ConfigMap, Namespace, Node, Pod  # noqa: E402

NS = "py-lightkube"
client = Client(field_manager="lightkube-test")
checks = Checks("lightkube")


def pods():
    client.create(Namespace(metadata=ObjectMeta(name=NS)))
    for manifest in [talker_pod(NS), sleeper_pod(NS, "victim", {"app": "victim"})]:
        client.create(codecs.from_dict(manifest))
    for name in ["talker", "victim"]:
        eventually(f"pod {name} ready", lambda name=name: pod_ready(client.get(Pod, name, namespace=NS).to_dict()), timeout=90)


def status_on_create():
    pod = client.create(codecs.from_dict(sleeper_pod(NS, "fresh", {"app": "fresh"})))
    expect(pod.status is not None and pod.status.phase == "Pending", f"created pod's status: {pod.status}")
    client.delete(Pod, "fresh", namespace=NS, grace_period=0)


def typed_lists():
    kinds = {
        ("", "pods"): core_v1.Pod,
        ("", "services"): core_v1.Service,
        ("", "endpoints"): core_v1.Endpoints,
        ("", "nodes"): core_v1.Node,
        ("", "namespaces"): core_v1.Namespace,
        ("", "events"): core_v1.Event,
        ("", "replicationcontrollers"): core_v1.ReplicationController,
        ("", "persistentvolumes"): core_v1.PersistentVolume,
        ("", "persistentvolumeclaims"): core_v1.PersistentVolumeClaim,
        ("", "configmaps"): core_v1.ConfigMap,
        ("", "secrets"): core_v1.Secret,
        ("", "serviceaccounts"): core_v1.ServiceAccount,
        ("apps", "deployments"): apps_v1.Deployment,
        ("apps", "replicasets"): apps_v1.ReplicaSet,
        ("apps", "daemonsets"): apps_v1.DaemonSet,
        ("apps", "statefulsets"): apps_v1.StatefulSet,
        ("apps", "controllerrevisions"): apps_v1.ControllerRevision,
        ("batch", "jobs"): batch_v1.Job,
        ("batch", "cronjobs"): batch_v1.CronJob,
        ("storage.k8s.io", "storageclasses"): storage_v1.StorageClass,
        ("discovery.k8s.io", "endpointslices"): discovery_v1.EndpointSlice,
        ("coordination.k8s.io", "leases"): coordination_v1.Lease,
        ("events.k8s.io", "events"): events_v1.Event,
        ("policy", "poddisruptionbudgets"): policy_v1.PodDisruptionBudget,
        ("rbac.authorization.k8s.io", "roles"): rbac_authorization_v1.Role,
        ("rbac.authorization.k8s.io", "clusterroles"): rbac_authorization_v1.ClusterRole,
        ("rbac.authorization.k8s.io", "rolebindings"): rbac_authorization_v1.RoleBinding,
        ("rbac.authorization.k8s.io", "clusterrolebindings"): rbac_authorization_v1.ClusterRoleBinding,
        ("certificates.k8s.io", "certificatesigningrequests"): certificates_v1.CertificateSigningRequest,
    }
    expect(set(kinds) == set(SERVED), "table out of step with harness.SERVED")
    failures = []
    for (group, plural), kind in kinds.items():
        try:
            items = list(client.list(kind, namespace="*") if "Namespaced" in str(kind.__mro__) else client.list(kind))
            if plural in {"nodes", "namespaces", "pods"}:
                expect(items, f"{plural}: empty list")
        except Exception as e:  # noqa: BLE001 - every kind is tried
            failures.append(f"{group or 'core'}/{plural}: {type(e).__name__}: {str(e)[:300]}")
    expect(not failures, "typed lists failed:\n  " + "\n  ".join(failures))
    info = list(client.list(Node))[0].status.nodeInfo
    # systemUUID is "" where the machine has no DMI table (upstream's
    # kubelet sends "" there too); the typed model needs it present.
    expect(info.bootID and info.machineID and info.systemUUID is not None, info)


def crud():
    cm = ConfigMap(metadata=ObjectMeta(name="settings", labels={"app": "shop"}), data={"mode": "fast"})
    created = client.create(cm, namespace=NS)
    expect(created.metadata.uid, created.metadata)
    expect(client.get(ConfigMap, "settings", namespace=NS).data == {"mode": "fast"}, "get")
    found = [c.metadata.name for c in client.list(ConfigMap, namespace=NS, labels={"app": "shop"})]
    expect(found == ["settings"], found)
    patched = client.patch(ConfigMap, "settings", {"data": {"size": "big"}}, namespace=NS)
    expect(patched.data == {"mode": "fast", "size": "big"}, patched.data)
    client.delete(ConfigMap, "settings", namespace=NS)
    try:
        client.get(ConfigMap, "settings", namespace=NS)
        raise AssertionError("deleted ConfigMap still readable")
    except ApiError as e:
        expect(e.status.code == 404 and e.status.reason == "NotFound", e.status)


def watch_and_resume():
    created = client.create(ConfigMap(metadata=ObjectMeta(name="watched"), data={"n": "1"}), namespace=NS)
    client.patch(ConfigMap, "watched", {"data": {"n": "2"}}, namespace=NS)
    client.delete(ConfigMap, "watched", namespace=NS)
    seen = []
    for kind, obj in client.watch(ConfigMap, namespace=NS, resource_version=created.metadata.resourceVersion):
        if obj.metadata.name == "watched":
            seen.append((kind, obj.data["n"]))
            if kind == "DELETED":
                break
    expect(seen == [("MODIFIED", "2"), ("DELETED", "2")], seen)


def exec_with_stdin():
    out = client.exec("talker", namespace=NS, container="shell", command=["sh", "-c", "read line; echo got:$line | tr a-z A-Z"], stdin="hello through stdin\n", stdout=True, stderr=True, timeout=20)
    expect("GOT:HELLO THROUGH STDIN" in out.stdout, out)
    out = client.exec("talker", namespace=NS, container="shell", command=["sh", "-c", "echo out; echo err >&2; exit 3"], stdout=True, stderr=True, timeout=20)
    expect((out.stdout, out.stderr, out.exit_code) == ("out\n", "err\n", 3), out)


def logs():
    lines = list(client.log("talker", namespace=NS, container="shell"))
    expect("hello from the pod\n" in lines and "to stderr\n" in lines, lines)
    expect(len(list(client.log("talker", namespace=NS, container="shell", tail_lines=1))) == 1, "tail_lines")


def server_side_apply():
    body = ConfigMap(apiVersion="v1", kind="ConfigMap", metadata=ObjectMeta(name="applied", namespace=NS), data={"key": "1"})
    first = client.apply(body)
    expect(first.data == {"key": "1"}, first.data)
    managers = {(m.manager, m.operation) for m in first.metadata.managedFields or []}
    expect(("lightkube-test", "Apply") in managers, managers)
    body.data = {"key": "2"}
    try:
        client.apply(body, field_manager="other")
        raise AssertionError("a conflicting apply succeeded")
    except ApiError as e:
        expect(e.status.code == 409, e.status)
    expect(client.apply(body, field_manager="other", force=True).data == {"key": "2"}, "forced apply")


def events():
    now = datetime.datetime.now(datetime.timezone.utc)
    client.create(
        events_v1.Event(
            metadata=ObjectMeta(name="talker.lk", namespace=NS),
            eventTime=now,
            reportingController="skiff.dev/lightkube-test",
            reportingInstance="lk-1",
            action="Testing",
            reason="Tested",
            regarding=ObjectReference(kind="Pod", name="talker", namespace=NS, apiVersion="v1"),
            note="from lightkube",
            type="Normal",
        )
    )
    names = [e.metadata.name for e in client.list(events_v1.Event, namespace=NS)]
    expect("talker.lk" in names, names)


def eviction():
    client.create(Pod.Eviction(metadata=ObjectMeta(name="victim", namespace=NS)), name="victim", namespace=NS)

    def gone():
        try:
            return client.get(Pod, "victim", namespace=NS).metadata.deletionTimestamp is not None
        except ApiError as e:
            return e.status.code == 404

    eventually("the evicted pod to go", gone, timeout=30)


checks.run("namespace and pods", pods, limit=100)
checks.run("status on create", status_on_create)
checks.run("typed lists of every kind", typed_lists)
checks.run("create/get/list/patch/delete", crud)
checks.run("watch and resume from a resourceVersion", watch_and_resume, limit=20)
checks.run("exec with stdin", exec_with_stdin, limit=30)
checks.run("logs", logs)
checks.run("server-side apply", server_side_apply)
checks.run("events (events.k8s.io/v1)", events)
checks.run("eviction (policy/v1)", eviction)
checks.finish()
