"""Helm (helm-python-sdk: Helm's Go SDK as a library) against Skiff: the
`helm create` chart installed, upgraded, rolled back and uninstalled, with
the webapp image Skiff builds locally."""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helm_python as helm  # noqa: E402
from harness import Checks, eventually, expect  # noqa: E402
from kubernetes import client, config  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

config.load_kube_config()
core = client.CoreV1Api()
apps = client.AppsV1Api()
checks = Checks("helm")
NS = "default"
work = tempfile.mkdtemp(prefix="helm-chart-")
chart_dir = os.path.join(work, "demo")


def values(tag):
    # No registry: the webapp listens on 8080; the chart probes `/` on it.
    return {
        "image": {"repository": "skiff.dev/webapp", "tag": tag, "pullPolicy": "IfNotPresent"},
        "service": {"port": 8080},
    }


def deployment_image():
    return apps.read_namespaced_deployment("demo", NS).spec.template.spec.containers[0].image


def ready_with(image):
    d = apps.read_namespaced_deployment("demo", NS)
    s = d.status
    return (
        d.spec.template.spec.containers[0].image == image
        and s is not None
        and s.ready_replicas == 1
        and s.updated_replicas == 1
        and (s.replicas or 0) == 1
    )


def create_chart():
    with helm.Chart.create("demo", work) as chart:
        expect(chart.name == "demo", chart.name)
    expect(os.path.isfile(os.path.join(chart_dir, "templates", "deployment.yaml")), os.listdir(chart_dir))


def install():
    with helm.Config(namespace=NS) as cfg:
        release = cfg.install(chart_dir, "demo", values("v1"), wait="watcher", timeout=120)
    expect((release["revision"], release["status"]) == (1, "deployed"), release)
    eventually("the v1 Deployment ready", lambda: ready_with("skiff.dev/webapp:v1"), timeout=60)
    core.read_namespaced_service("demo", NS)
    core.read_namespaced_service_account("demo", NS)
    secrets = core.list_namespaced_secret(NS, label_selector="owner=helm,name=demo").items
    expect(len(secrets) == 1, [s.metadata.name for s in secrets])


def upgrade():
    with helm.Config(namespace=NS) as cfg:
        cfg.upgrade(chart_dir, "demo", values("v2"), wait="watcher", timeout=120)
        history = cfg.history("demo")
    expect([h["revision"] for h in history] == [1, 2], history)
    eventually("the v2 Deployment ready", lambda: ready_with("skiff.dev/webapp:v2"), timeout=60)


def rollback():
    with helm.Config(namespace=NS) as cfg:
        cfg.rollback("demo", version=1, wait="watcher", timeout=120)
        history = cfg.history("demo")
        status = cfg.status("demo")
    expect([(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "superseded"), (3, "deployed")], history)
    expect((status["revision"], status["status"]) == (3, "deployed"), status)
    eventually("the v1 Deployment back", lambda: ready_with("skiff.dev/webapp:v1"), timeout=60)


def uninstall():
    with helm.Config(namespace=NS) as cfg:
        cfg.uninstall("demo", wait="watcher", timeout=120)
        left = [r["name"] for r in cfg.list()]
    expect("demo" not in left, left)

    def gone():
        for read in (apps.read_namespaced_deployment, core.read_namespaced_service, core.read_namespaced_service_account):
            try:
                read("demo", NS)
                return False
            except ApiException as e:
                if e.status != 404:
                    raise
        return not core.list_namespaced_secret(NS, label_selector="owner=helm,name=demo").items

    eventually("the release's objects gone", gone, timeout=60)


checks.run("helm create", create_chart)
checks.run("helm install (wait)", install, limit=150)
checks.run("helm upgrade (wait)", upgrade, limit=150)
checks.run("helm rollback (wait)", rollback, limit=150)
checks.run("helm uninstall (wait)", uninstall, limit=150)
checks.finish()
