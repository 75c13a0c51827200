"""Probes and the verify mechanism against real local servers started here (HTTP, HTTPS/TLS, hanging, closed)."""

from __future__ import annotations

import asyncio
import importlib
import json

import pytest
import yaml

from ansible_collections.ops.runbooks.plugins.module_utils._common import _probes as probes
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.base import Probe
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step
from tests.helpers.servers import HangingServer, HttpServer, closed_port, make_certificates


@pytest.fixture(scope="module")
def http():
    server = HttpServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA and a certificate for localhost / 127.0.0.1 that expires in 3 days."""
    return make_certificates(tmp_path_factory.mktemp("tls"), days_left=3)


@pytest.fixture(scope="module")
def https(certs):
    server = HttpServer(tls=(certs["cert"], certs["key"]))
    yield server
    server.close()


@pytest.fixture()
def hanging():
    server = HangingServer()
    yield server
    server.close()


def check(targets, timeout=10, concurrency=10, retries=0, retry_delay=0.05):
    report = probes.check_targets(probes.parse_targets(targets, "targets", retries, retry_delay), timeout, concurrency)
    return report, {t["name"]: t for t in report["targets"]}


def test_http_status_body_and_headers(http):
    report, by_name = check([
        {"name": "ready", "type": "http", "url": http.url("/ok"), "body_regex": r"status:\s+ready"},
        {"name": "wrong body", "type": "http", "url": http.url("/ok"), "body_regex": "degraded"},
        {"name": "503", "type": "http", "url": http.url("/status/503")},
        {"name": "503 expected", "type": "http", "url": http.url("/status/503"), "status_code": [200, 503]},
        {"name": "header sent", "type": "http", "url": http.url("/header/X-Check/yes"), "headers": {"X-Check": "yes"}},
        {"name": "head", "type": "http", "method": "head", "url": http.url("/ok")},
    ])
    assert {n for n, t in by_name.items() if t["ok"]} == {"ready", "503 expected", "header sent", "head"}
    assert by_name["wrong body"]["reason"] == "check" and "degraded" in by_name["wrong body"]["error"]
    assert by_name["503"]["reason"] == "check" and by_name["503"]["detail"]["status"] == 503
    assert "503" in by_name["503"]["error"] and "[200]" in by_name["503"]["error"]
    assert by_name["ready"]["detail"] == {"status": 200, "http_version": "HTTP/1.1"}
    assert report["counts"] == {"total": 6, "ok": 4, "failed": 2, "timed_out": 0}
    assert report["failed_targets"] == ["wrong body", "503"] and not report["healthy"]


def test_every_type_reports_a_closed_port_as_an_error():
    port = closed_port()
    report, by_name = check([
        {"type": "http", "url": f"http://127.0.0.1:{port}/"},
        {"type": "tcp", "host": "127.0.0.1", "port": port},
        {"type": "postgres", "host": "127.0.0.1", "port": port, "login_user": "x", "connect_timeout": 2},
        {"type": "redis", "host": "127.0.0.1", "port": port},
        {"type": "tls", "host": "127.0.0.1", "port": port},
    ])
    assert [(t["type"], t["ok"], t["reason"]) for t in report["targets"]] == [
        (kind, False, "error") for kind in ("http", "tcp", "postgres", "redis", "tls")]
    assert all("refused" in t["error"].lower() or "111" in t["error"] for t in report["targets"]), report
    assert by_name[f"tcp 127.0.0.1:{port}"]["attempts"] == 1


def test_tcp_open_port(http):
    _, by_name = check([{"name": "web", "type": "tcp", "host": "127.0.0.1", "port": http.port}])
    assert by_name["web"]["ok"] and by_name["web"]["detail"] == {"peer": "127.0.0.1"}


def test_retries_per_target(http):
    _, by_name = check([
        {"name": "third time lucky", "type": "http", "url": http.url("/flaky/a/3"), "retries": 2},
        {"name": "gives up", "type": "http", "url": http.url("/flaky/b/3"), "retries": 1},
        {"name": "module default", "type": "http", "url": http.url("/flaky/c/2")},
    ], retries=1)
    assert by_name["third time lucky"]["ok"] and by_name["third time lucky"]["attempts"] == 3
    assert not by_name["gives up"]["ok"] and by_name["gives up"]["attempts"] == 2
    assert "503" in by_name["gives up"]["error"]
    assert by_name["module default"]["ok"] and by_name["module default"]["attempts"] == 2


def test_without_retries_count_a_target_is_retried_until_it_passes(http):
    _, by_name = check([{"name": "slow starter", "type": "http", "url": http.url("/flaky/d/5")}], retries=None)
    assert by_name["slow starter"]["ok"] and by_name["slow starter"]["attempts"] == 5


def test_max_latency(http):
    _, by_name = check([
        {"name": "slow", "type": "http", "url": http.url("/slow/2"), "max_latency": "100ms"},
        {"name": "quick enough", "type": "http", "url": http.url("/ok"), "max_latency": 5},
    ])
    assert by_name["slow"]["reason"] == "check" and "max_latency" in by_name["slow"]["error"]
    assert by_name["quick enough"]["ok"]


def test_overall_timeout_cancels_hanging_targets_and_keeps_the_others(http, hanging):
    report, by_name = check([
        {"name": "hangs (http)", "type": "http", "url": f"http://127.0.0.1:{hanging.port}/"},
        {"name": "hangs (tls)", "type": "tls", "host": "127.0.0.1", "port": hanging.port},
        {"name": "hangs (redis)", "type": "redis", "host": "127.0.0.1", "port": hanging.port},
        {"name": "fine", "type": "http", "url": http.url("/ok")},
        {"name": "fails fast", "type": "http", "url": http.url("/status/500")},
    ], timeout=2)
    for name in ("hangs (http)", "hangs (tls)", "hangs (redis)"):
        assert by_name[name]["reason"] == "timeout", by_name[name]
        assert "overall timeout of 2" in by_name[name]["error"]
        assert by_name[name]["latency_ms"] is None
    assert by_name["fine"]["ok"]
    assert by_name["fails fast"]["reason"] == "check"
    assert report["counts"]["timed_out"] == 3 and report["counts"]["failed"] == 4


def test_timeout_reports_the_last_failure_of_a_retried_target(http):
    _, by_name = check([{"name": "never", "type": "http", "url": http.url("/status/503")}],
                       timeout=1, retries=None, retry_delay=0.05)
    never = by_name["never"]
    assert never["reason"] == "timeout" and never["attempts"] > 1
    assert "last attempt: status 503" in never["error"]


def test_concurrency_limit():
    server = HttpServer()
    try:
        report, _ = check([{"type": "http", "url": server.url(f"/slow/0.2?n={i}")} for i in range(12)], concurrency=3)
    finally:
        server.close()
    assert report["healthy"]
    assert server.max_in_flight == 3, "concurrency=3 must run 3 checks at once, never more"


class Sleepy(Probe):
    """A target type made for the runner tests: it counts how many of its checks run at once."""

    type = "sleepy"
    options = dict(host=dict(type="str"), port=dict(type="int"), password=dict(type="str", no_log=True))
    running = peak = 0

    async def check(self):
        Sleepy.running += 1
        Sleepy.peak = max(Sleepy.peak, Sleepy.running)
        try:
            await asyncio.sleep(0.05)
        finally:
            Sleepy.running -= 1
        if self.fields["password"]:
            # as a careless client library might: the secret in its error message
            raise ConnectionError(f"login refused for password {self.fields['password']}")
        return {}


def test_concurrency_limit_applies_to_every_type():
    report = probes.check_targets([Sleepy({"host": "h", "port": i}, f"t[{i}]") for i in range(1, 11)], 10, 4)
    assert report["healthy"] and Sleepy.peak == 4


def test_secret_in_a_library_error_is_masked():
    report = probes.check_targets([Sleepy({"host": "h", "port": 1, "password": "hunter2"}, "t[0]", 0)], 10, 1)
    assert report["targets"][0]["error"] == "ConnectionError: login refused for password ********"


def test_tls_certificate_near_expiry(https, certs):
    common = {"type": "tls", "host": "127.0.0.1", "port": https.port, "ca_cert": certs["ca"]}
    _, by_name = check([
        dict(common, name="expiring", server_name="localhost"),
        dict(common, name="enough days", min_days=2),
        dict(common, name="unknown CA", ca_cert=None),
        dict(common, name="not validated", ca_cert=None, validate_certs=False, min_days=0),
        dict(common, name="wrong name", server_name="db.example.com", min_days=0),
    ])
    expiring = by_name["expiring"]
    assert expiring["reason"] == "check" and "min_days 14" in expiring["error"]
    assert 2.9 < expiring["detail"]["days_left"] <= 3
    assert expiring["detail"]["subject"] == "CN=localhost"
    assert expiring["detail"]["issuer"] == "CN=ops.runbooks test CA"
    assert expiring["detail"]["subject_alt_names"] == ["localhost", "127.0.0.1"]
    assert expiring["detail"]["server_name"] == "localhost"
    assert by_name["enough days"]["ok"] and by_name["not validated"]["ok"]
    assert by_name["unknown CA"]["reason"] == "error" and "certificate verify failed" in by_name["unknown CA"]["error"]
    assert by_name["wrong name"]["reason"] == "error" and "db.example.com" in by_name["wrong name"]["error"]


def test_https_with_a_private_ca(https, certs):
    _, by_name = check([
        {"name": "trusted", "type": "http", "url": https.url("/ok", host="localhost"), "ca_cert": certs["ca"]},
        {"name": "untrusted", "type": "http", "url": https.url("/ok", host="localhost")},
    ])
    assert by_name["trusted"]["ok"]
    assert by_name["untrusted"]["reason"] == "error" and "CERTIFICATE_VERIFY_FAILED" in by_name["untrusted"]["error"]


def test_no_secret_in_results(http):
    port = closed_port()
    secrets = ["url-pass-1", "url-token-2", "bearer-3", "redis-pass-4", "pg-pass-5"]
    targets = [
        {"type": "http", "url": http.url("/status/401").replace("://", "://user:url-pass-1@")},
        {"type": "http", "url": f"http://url-token-2@127.0.0.1:{port}/"},
        {"type": "http", "url": http.url("/ok"), "headers": {"Authorization": "Bearer bearer-3", "X-Trace": "t1"}},
        {"type": "redis", "host": "127.0.0.1", "port": port, "password": "redis-pass-4"},
        {"type": "postgres", "host": "127.0.0.1", "port": port, "login_password": "pg-pass-5"},
    ]
    report, _ = check(targets)
    text = json.dumps(report)
    assert not [s for s in secrets if s in text]
    assert report["targets"][0]["address"].startswith("http://********@127.0.0.1")

    class Module:
        no_log_values = set()

    probes.hide_secrets(Module, probes.parse_targets(targets, "targets"))
    assert Module.no_log_values == {"url-pass-1", "url-token-2", "Bearer bearer-3", "redis-pass-4", "pg-pass-5"}


@pytest.mark.parametrize("targets,param", [
    ([{"type": "ftp", "host": "x"}], "targets[0].type"),
    ([{"host": "x", "port": 1}], "targets[0].type"),
    ([{"type": "tcp", "host": "x", "port": 1}, {"type": "http"}], "targets[1].url"),
    ([{"type": "http", "url": "http://x/", "body_regex": "(unclosed"}], "targets[0].body_regex"),
    ([{"type": "tcp", "host": "x", "port": 70000}], "targets[0].port"),
    ([{"type": "tcp", "host": "x"}], "targets[0].port"),
    ([{"type": "tcp", "host": "x", "port": 5, "retries": -1}], "targets[0].retries"),
    ([{"type": "tcp", "host": "x", "port": 5, "retry_delay": "soon"}], "targets[0].retry_delay"),
    ([{"type": "tcp", "host": "x", "port": 5, "max_latency": 0}], "targets[0].max_latency"),
    ([{"type": "tcp", "host": "x", "port": 5, "url": "http://x/"}], "targets[0].url"),
    ([{"type": "http", "url": "ftp://x/"}], "targets[0].url"),
    ([{"type": "http", "url": "http://x:99999/"}], "targets[0].url"),
    ([{"type": "http", "url": "http://x/", "status_code": [200, 42]}], "targets[0].status_code[1]"),
    ([{"type": "http", "url": "http://x/", "method": "GE T"}], "targets[0].method"),
    ([{"type": "http", "url": "http://x/", "ca_cert": "/nonexistent/ca.pem"}], "targets[0].ca_cert"),
    ([{"type": "tls", "host": "x", "min_days": -1}], "targets[0].min_days"),
    ([{"type": "redis", "port": 6379}], "targets[0].host"),
    ([{"type": "postgres", "host": "a", "login_host": "b"}], "targets[0].host"),
    ([{"type": "postgres", "login_port": 0}], "targets[0].login_port"),
])
def test_bad_target_names_the_field(targets, param):
    with pytest.raises(ParameterError) as err:
        probes.parse_targets(targets, "targets")
    assert err.value.param == param
    assert err.value.msg.startswith(f"{param}: ")


def test_verification_fails_with_every_probe_result(http):
    verification = probes.Verification({
        "verify": [{"name": "app", "type": "http", "url": http.url("/ok")},
                   {"name": "api", "type": "http", "url": http.url("/status/502"), "retry_delay": "50ms"}],
        "verify_timeout": 2,
    })
    with pytest.raises(RunbookError) as err:
        verification.run()
    assert "verification failed" in err.value.msg and "api (" in err.value.msg and "app (" not in err.value.msg
    report = err.value.details["verification"]
    assert [t["ok"] for t in report["targets"]] == [True, False]
    # Without a retries count, a verify probe is retried until verify_timeout.
    assert report["targets"][1]["reason"] == "timeout" and report["targets"][1]["attempts"] > 1


def test_run_verification(http):
    assert probes.run_verification([], 10) is None
    report = probes.run_verification([{"type": "http", "url": http.url("/flaky/e/2")}], "5s")
    assert report["healthy"] and report["targets"][0]["attempts"] == 2
    with pytest.raises(ParameterError, match=r"^verify_timeout:"):
        probes.run_verification([{"type": "http", "url": http.url()}], "later")


class FakeModule:
    def __init__(self, **params):
        self.params = params
        self.check_mode = False
        self._diff = False
        self.no_log_values = set()


class Deploy(Procedure):
    """A procedure that changes a value, proves it with ``verify``, and restores it when the proof fails."""

    def __init__(self, module, store):
        super().__init__(module)
        self.store = store

    def validate(self):
        # Procedure.run() runs these after the change, as for every module taking ``verify``.
        self.verify_probes = probes.Verification(self.params, self.module)

    def observe(self):
        return {"version": self.store["version"]}

    def plan(self, before):
        target = self.params["version"]
        return [] if before["version"] == target else [Step(f"deploy {target}", lambda: self.store.update(
            version=target))]

    def rollback(self, before, applied, error):
        self.store["version"] = before["version"]
        return [f"restored {before['version']}"]


def test_failed_verification_rolls_the_change_back(http):
    store = {"version": "v1"}
    verify = [{"name": "ready", "type": "http", "url": http.url("/status/503"), "retries": 2, "retry_delay": 0}]
    with pytest.raises(RunbookError) as err:
        Deploy(FakeModule(version="v2", verify=verify, verify_timeout=5), store).run()
    assert store["version"] == "v1"
    assert err.value.details["rolled_back"] == ["restored v1"]
    assert err.value.details["verification"]["targets"][0]["attempts"] == 3
    verify = [{"name": "ready", "type": "http", "url": http.url("/ok")}]
    assert Deploy(FakeModule(version="v2", verify=verify, verify_timeout=5), store).run()["changed"]
    assert store["version"] == "v2"


def test_bad_verify_probe_fails_before_the_change(http):
    store = {"version": "v1"}
    requests = http.requests
    verify = [{"type": "http", "url": http.url()}, {"type": "http", "url": http.url(), "body_regex": "[z-a]"}]
    with pytest.raises(ParameterError, match=r"^verify\[1\]\.body_regex:"):
        Deploy(FakeModule(version="v2", verify=verify, verify_timeout=5), store).run()
    assert store["version"] == "v1" and http.requests == requests


def _fields(fragment_yaml, option):
    return yaml.safe_load(fragment_yaml)["options"][option]["suboptions"]


def test_fragment_documents_every_probe_field_as_specified():
    doc = importlib.import_module("ansible_collections.ops.runbooks.plugins.doc_fragments.verify").ModuleDocFragment
    spec = probes.probe_options()
    verify, targets = _fields(doc.DOCUMENTATION, "verify"), _fields(doc.TARGETS, "targets")
    # The two copies differ only where retries work differently (until verify_timeout / the module's retries).
    assert {k: v for k, v in verify.items() if k not in ("retries", "retry_delay")} == {
        k: v for k, v in targets.items() if k not in ("retries", "retry_delay")}
    for fields in (verify, targets):
        assert set(fields) == set(spec)
        for name, option in spec.items():
            assert fields[name]["type"] == option["type"], name
            assert fields[name].get("elements") == option.get("elements"), name
            assert fields[name].get("choices") == option.get("choices"), name
            assert "default" not in fields[name] and "default" not in option, name
        for kind in probes.PROBE_TYPES:
            assert f"V({kind})" in " ".join(fields["type"]["description"]), kind
    assert spec["password"]["no_log"] and spec["login_password"]["no_log"]
