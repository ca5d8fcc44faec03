"""What every client script shares: named checks that run on after a
failure (so one server gap does not hide the others), a poll helper, and
the pods the scripts drive.

A script prints `PASS <check>` or `FAIL <check>: <why>` with the traceback
for each check and exits 1 if any failed. The Rust test
(tests/tests/python_clients.rs) runs it with KUBECONFIG set and shows its
output.
"""

import signal
import sys
import time
import traceback

# The images Skiff builds locally (images/); nothing is pulled.
WEBAPP = "skiff.dev/webapp:v1"
BUSYBOX = "busybox"


class Checks:
    def __init__(self, client):
        self.client = client
        self.passed = []
        self.failed = []

    def run(self, name, fn, *args, limit=60):
        """Runs one check (at most `limit` seconds: a client that hangs on a
        server gap fails the check instead of the whole run); records and
        prints its outcome; returns its value (None when it failed)."""
        start = time.monotonic()

        def timed_out(_sig, _frame):
            raise TimeoutError(f"no result after {limit}s")

        signal.signal(signal.SIGALRM, timed_out)
        signal.alarm(limit)
        try:
            value = fn(*args)
        except BaseException as e:  # noqa: BLE001 - every failure is reported
            if isinstance(e, KeyboardInterrupt):
                raise
            self.failed.append(name)
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(file=sys.stdout)
            sys.stdout.flush()
            return None
        finally:
            signal.alarm(0)
        self.passed.append(name)
        print(f"PASS {name} ({time.monotonic() - start:.1f}s)", flush=True)
        return value

    def finish(self):
        total = len(self.passed) + len(self.failed)
        print(
            f"{self.client}: {len(self.passed)} of {total} checks passed"
            + (f"; failed: {', '.join(self.failed)}" if self.failed else ""),
            flush=True,
        )
        sys.exit(1 if self.failed else 0)


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def eventually(what, fn, timeout=60.0, interval=0.25):
    """Polls `fn` until it returns a truthy value; fails after `timeout`
    seconds with the last value or error."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
            last = value
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = f"{type(e).__name__}: {e}"
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last}")


def talker_pod(namespace):
    """A pod with the webapp (port 8080, for port-forward) and a shell
    (exec, logs)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "talker", "namespace": namespace, "labels": {"app": "talker"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "web",
                    "image": WEBAPP,
                    "ports": [{"containerPort": 8080}],
                },
                {
                    "name": "shell",
                    "image": BUSYBOX,
                    "command": [
                        "sh",
                        "-c",
                        "echo hello from the pod; echo to stderr >&2; sleep 3600",
                    ],
                },
            ],
        },
    }


def sleeper_pod(namespace, name, labels):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": BUSYBOX, "command": ["sleep", "3600"]}],
        },
    }


def pod_ready(pod):
    """`pod` as a dict: Running with every container ready."""
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    return (
        status.get("phase") == "Running"
        and statuses
        and all(s.get("ready") for s in statuses)
    )


def http_get_over(sock_send, sock_recv):
    """An HTTP/1.0 GET / over a connected byte stream; returns the raw answer."""
    sock_send(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
    data = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        chunk = sock_recv()
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace")


# The trailing-slash discovery paths clients send (the Python client and
# kr8s use some of them).
TRAILING_SLASH_PATHS = ["/version/", "/api/", "/apis/", "/api/v1/", "/apis/apps/v1/"]

# Every resource Skiff serves, by (group, plural): a typed list of each must
# decode. A served resource missing here fails the discovery cross-check, so a
# new kind gets a typed list too.
SERVED = [
    ("", "pods"),
    ("", "services"),
    ("", "endpoints"),
    ("", "nodes"),
    ("", "namespaces"),
    ("", "events"),
    ("", "replicationcontrollers"),
    ("", "persistentvolumes"),
    ("", "persistentvolumeclaims"),
    ("", "configmaps"),
    ("", "secrets"),
    ("", "serviceaccounts"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "daemonsets"),
    ("apps", "statefulsets"),
    ("apps", "controllerrevisions"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    ("storage.k8s.io", "storageclasses"),
    ("discovery.k8s.io", "endpointslices"),
    ("coordination.k8s.io", "leases"),
    ("events.k8s.io", "events"),
    ("policy", "poddisruptionbudgets"),
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "clusterroles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ("certificates.k8s.io", "certificatesigningrequests"),
]


def served_from_discovery(get_json):
    """(group, plural) of every listable top-level resource discovery
    announces; `get_json(path)` fetches a discovery document."""
    served = set()
    for r in get_json("/api/v1")["resources"]:
        if "/" not in r["name"] and "list" in r.get("verbs", []):
            served.add(("", r["name"]))
    for g in get_json("/apis")["groups"]:
        gv = g["preferredVersion"]["groupVersion"]
        for r in get_json(f"/apis/{gv}")["resources"]:
            if "/" not in r["name"] and "list" in r.get("verbs", []):
                served.add((g["name"], r["name"]))
    return served


def check_served_table(get_json):
    served = served_from_discovery(get_json)
    untested = served - set(SERVED)
    expect(not untested, f"served but without a typed-list check: {sorted(untested)}")
    missing = set(SERVED) - served
    expect(not missing, f"not in discovery: {sorted(missing)}")
