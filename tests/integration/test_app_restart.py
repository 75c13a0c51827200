"""app_restart against the Compose lab: a rolling restart under load drops no request; check mode; bad input."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import docker
import pytest

from tests.helpers.ansible import dumps, run_module, run_playbook

pytestmark = pytest.mark.integration

PUBLIC = "http://127.0.0.1:58080"
MIN_REQUESTS = 200


def blue_replicas(compose_lab):
    """{name: (id, StartedAt)} of app_blue's containers, read from Docker directly (not through the backend)."""
    client = docker.from_env()
    try:
        found = client.containers.list(all=True, filters={"label": [
            f"com.docker.compose.project={compose_lab.project}", "com.docker.compose.service=app_blue"]})
        return {c.name: (c.id, c.attrs["State"]["StartedAt"]) for c in found}
    finally:
        client.close()


class Client(threading.Thread):
    """Sends requests through nginx one after another until stopped, reads and writes, and counts every answer
    that is not the expected one (status, or a connection error) as a failure."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.requests, self.failures, self.hosts = 0, [], set()

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(PUBLIC + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read())

    def run(self):
        while not self.stop.is_set():
            self.requests += 1
            try:
                if self.requests % 5:
                    status, body = self.call("GET", "/version")
                    self.hosts.add((body.get("slot"), body.get("hostname")))
                else:
                    status, body = self.call("POST", "/items", {"n": self.requests})
                if status not in (200, 201):
                    self.failures.append((self.requests, status, body))
            except (urllib.error.URLError, OSError, ValueError) as exc:
                self.failures.append((self.requests, type(exc).__name__, str(exc)))


def test_rolling_restart_under_load_drops_no_request(compose_lab, compose_platform):
    before = blue_replicas(compose_lab)
    assert len(before) == 2, before
    client = Client()
    client.start()
    try:
        result = run_module("app_restart", dict(compose_platform, service="app_blue", replica_timeout=120, verify=[
            {"type": "compose", "service": "app_blue", "platform_settings": compose_platform["platform_settings"],
             "min_healthy": 2}]))
    finally:
        client.stop.set()
        client.join(30)
    assert not result.failed and result.changed, dumps(result)
    after = blue_replicas(compose_lab)
    # Restarted in place, one after the other: same containers, each started again.
    assert set(after) == set(before)
    assert all(after[n][0] == before[n][0] and after[n][1] != before[n][1] for n in before), (before, after)
    assert [r["name"] for r in result["restarted"]] == sorted(before)
    assert all(r["healthy_after_seconds"] >= r["restart_seconds"] > 0 for r in result["restarted"])
    assert result["verification"]["healthy"], dumps(result["verification"])
    assert client.failures == [], client.failures[:10]
    assert client.requests >= MIN_REQUESTS, client.requests
    # The requests went through the service being restarted, both of its replicas.
    blue_hosts = {id_[:12] for id_, _ in before.values()}
    assert blue_hosts <= {host for slot, host in client.hosts if slot == "blue"}, client.hosts


def test_check_mode_names_the_replicas_and_restarts_nothing(compose_lab, compose_platform):
    before = blue_replicas(compose_lab)
    result = run_module("app_restart", dict(compose_platform, service="app_blue"), check=True, diff=True)
    assert not result.failed and result.changed, dumps(result)
    assert result["would_restart"] == sorted(before) and result["restarted"] == []
    assert result["plan"] == [f"restart {n} ({before[n][0][:12]})" for n in sorted(before)]
    assert blue_replicas(compose_lab) == before


def test_bad_input_names_the_parameter(compose_lab, compose_platform):
    before = blue_replicas(compose_lab)
    module = "ops.runbooks.app_restart"
    cases = [
        ({k: v for k, v in compose_platform.items()}, "service"),
        (dict(compose_platform, service="no_such_service"), "service"),
        (dict(compose_platform, service="app_blue", replica_timeout=-1), "replica_timeout"),
        (dict(compose_platform, service="app_blue", replica_timeout="soon"), "replica_timeout"),
        (dict(compose_platform, service="app_blue", stop_timeout=-5), "stop_timeout"),
        (dict(compose_platform, service="app_blue", verify_timeout=-1), "verify_timeout"),
        (dict(compose_platform, service="app_blue", platform="kubernetes"), "platform"),
        (dict(compose_platform, service="app_blue", platform_settings={"project_name": "x"}),
         "platform_settings.project_dir"),
        (dict(compose_platform, service="app_blue", verify=[{"type": "compose", "service": "app_blue",
                                                             "platform_settings": {}}]),
         "verify[0].platform_settings.project_name"),
        (dict(compose_platform, service="app_blue", verify=[dict(
            type="compose", service="app_blue", min_healthy=0,
            platform_settings=compose_platform["platform_settings"])]),
         "verify[0].min_healthy"),
    ]
    results = run_playbook([{module: args} for args, _ in cases]).results
    for (_args, param), result in zip(cases, results, strict=True):
        assert result.failed, (param, dumps(result))
        assert param in result["msg"], (param, result["msg"])
    assert blue_replicas(compose_lab) == before
