"""docs/fleet/kubernetes/*.yaml: every document is valid against Kubernetes' own schemas
(strict: an unknown or misspelled field fails), websockify accepts the container's
arguments, and the pieces point at each other: the probes at /readyz and /healthz on the
port --metrics names, the Services at the pods, --token-source at the Redis Service.
docs/fleet/haproxy.cfg, which the integration tests run with its health check left out,
is checked here whole by `haproxy -c`."""
from __future__ import annotations

import copy
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from websockify.cli import command
from websockify.config import Config, build_config
from websockify.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "docs" / "fleet" / "kubernetes").glob("*.yaml"))
HAPROXY_CFG = ROOT / "docs" / "fleet" / "haproxy.cfg"
# The oldest Kubernetes the manifests are written for (preStop's `sleep` is on by default
# since 1.30), and the newest the bundled schemas know.
VERSIONS = ("1.30", kubernetes_validate.latest_version())


def documents() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
            for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(kind: str, name: str) -> dict[str, Any]:
    found = [doc for _, doc in documents() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"one {kind} {name} in docs/fleet/kubernetes, not {len(found)}"
    return found[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def websockify_config(args: list[str]) -> Config:
    """The Config websockify would run with these arguments: click parses them, build_config checks them."""
    ctx = command.make_context("websockify", list(args))
    return build_config(**ctx.params)


def port_number(port: int | str, owner: dict[str, Any]) -> int:
    """A probe's or a Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in owner["ports"] if p.get("name") == port]
    assert len(named) == 1, f"no container port named {port!r}"
    return named[0]


def test_there_are_manifests_to_check():
    present = {(doc["kind"], doc["metadata"]["name"]) for _, doc in documents()}
    assert {("Deployment", "websockify"), ("Service", "websockify"), ("Deployment", "redis"),
            ("Service", "redis")} <= present, present


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name,doc", documents(), ids=[name for name, _ in documents()])
def test_every_document_is_valid_kubernetes(name, doc, version):
    kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("breakage", ["misspelled field", "wrong type", "unknown kind of probe"])
def test_a_broken_manifest_fails_validation(breakage):
    """The check bites: each of these mistakes in the websockify Deployment is refused."""
    broken = copy.deepcopy(find("Deployment", "websockify"))
    spec = container(broken)
    if breakage == "misspelled field":
        spec["readynessProbe"] = spec.pop("readinessProbe")
    elif breakage == "wrong type":
        broken["spec"]["replicas"] = "three"
    else:
        spec["livenessProbe"]["httpsGet"] = spec["livenessProbe"].pop("httpGet")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)


def test_websockify_accepts_the_container_arguments():
    args = container(find("Deployment", "websockify"))["args"]
    config = websockify_config(args)
    assert config.proxy_protocol and config.token_plugin == "TokenRedis"
    assert config.metrics is not None and config.metrics.host == "0.0.0.0"  # the kubelet probes from outside
    mistaken = [arg.replace(":9100", ":ninety") for arg in args]
    with pytest.raises(ConfigError, match="--metrics"):  # and a mistake in them would be refused
        websockify_config(mistaken)


def test_the_probes_ask_the_port_metrics_listens_on():
    spec = container(find("Deployment", "websockify"))
    config = websockify_config(spec["args"])
    assert config.metrics is not None
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = spec[probe]["httpGet"]
        assert get["path"] == path, probe
        assert port_number(get["port"], spec) == config.metrics.port, probe
    assert config.listen is not None
    assert port_number("websocket", spec) == config.listen.port
    # The cloud balancer's own health check asks the same.
    annotations = find("Service", "websockify")["metadata"]["annotations"]
    prefix = "service.beta.kubernetes.io/aws-load-balancer-healthcheck-"
    assert annotations[prefix + "path"] == "/readyz"
    assert annotations[prefix + "port"] == str(config.metrics.port)


def test_shutdown_fits_in_the_grace_period():
    """preStop's sleep, then SIGTERM: sessions closed within the close timeout, before the SIGKILL."""
    pod = find("Deployment", "websockify")["spec"]["template"]["spec"]
    config = websockify_config(container(find("Deployment", "websockify"))["args"])
    pre_stop = container(find("Deployment", "websockify"))["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + config.close_timeout_s + 5  # 5 s to spare


def test_the_services_reach_their_pods_and_websockify_reaches_redis():
    for name, port_name in (("websockify", "websocket"), ("redis", "redis")):
        deployment, service = find("Deployment", name), find("Service", name)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert service["spec"]["selector"].items() <= labels.items(), name
        targets = {port["targetPort"] for port in service["spec"]["ports"]}
        assert targets == {port_name}, name
        port_number(port_name, container(deployment))  # a port of that name exists
    config = websockify_config(container(find("Deployment", "websockify"))["args"])
    assert config.token_source is not None
    source = urllib.parse.urlsplit(config.token_source)
    redis = find("Service", "redis")
    assert source.scheme == "redis" and source.hostname == redis["metadata"]["name"]
    assert source.port in {port["port"] for port in redis["spec"]["ports"]}
    assert "namespace=" in source.query  # docs/fleet.md's SET fleet:TOKEN works


def test_the_haproxy_example_is_valid_with_its_health_check():
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    result = subprocess.run([haproxy, "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    text = HAPROXY_CFG.read_text()
    assert "option httpchk GET /readyz" in text and "check port 9100" in text
    assert "--metrics 0.0.0.0:9100" in text
