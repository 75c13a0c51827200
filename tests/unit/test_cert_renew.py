"""Certificate helpers and the cert_renew decisions against an in-memory backend (the ACME order is the integration
tests' business: tests/integration/test_cert_renew.py runs it against pebble)."""

from __future__ import annotations

import pytest

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import Backend, writes
from ansible_collections.ops.runbooks.plugins.module_utils._clients import acme as acmeclient
from ansible_collections.ops.runbooks.plugins.module_utils._clients import tls
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._procedures import cert_renew
from ansible_collections.ops.runbooks.plugins.module_utils._procedures._certificates import check_host_name
from tests.helpers.servers import HangingServer, closed_port, make_certificates


@pytest.mark.parametrize("value", ["www.example.com; rm -rf /", "$(reboot).example.com", "a b.example.com",
                                   "-bad.example.com", "", "x" * 64 + ".example.com", "*.*.example.com",
                                   "www.example.com\nupdate add evil"])
def test_host_names_with_anything_but_labels_are_refused(value):
    with pytest.raises(ParameterError, match=r"^domains\[0\]: "):
        check_host_name(value, "domains[0]", allow_wildcard=True)


def test_host_names_wildcards_and_addresses():
    assert check_host_name("*.lab.example", "d", allow_wildcard=True) == "*.lab.example"
    assert check_host_name("127.0.0.1", "h", allow_ip=True) == "127.0.0.1"
    with pytest.raises(ParameterError):
        check_host_name("*.lab.example", "d")
    with pytest.raises(ParameterError):
        check_host_name("127.0.0.1 ", "h", allow_ip=True)


def test_covers_follows_one_label_wildcards():
    names = ["www.lab.example", "*.api.lab.example"]
    assert tls.covers(names, "WWW.lab.example.")
    assert tls.covers(names, "v1.api.lab.example")
    assert not tls.covers(names, "api.lab.example")
    assert not tls.covers(names, "a.v1.api.lab.example")


def test_challenge_record_of_a_wildcard_is_its_base_name():
    assert acmeclient.challenge_record("*.lab.example") == "_acme-challenge.lab.example."
    assert acmeclient.challenge_record("www.lab.example") == "_acme-challenge.www.lab.example."


def test_chain_checks(tmp_path):
    files = make_certificates(tmp_path, 10)
    leaf, ca = (tls.load_pem_chain(open(files[k], "rb").read(), k)[0] for k in ("cert", "ca"))
    assert tls.chain_linked([leaf, ca]) == (True, None)
    linked, why = tls.chain_linked([ca, leaf])
    assert not linked and "is not issued by" in why
    assert tls.chain_trusted([leaf], files["ca"], "localhost") == (True, None)
    trusted, why = tls.chain_trusted([leaf], files["ca"], "other.example")
    assert not trusted and why
    with pytest.raises(RunbookError, match="holds no PEM certificate"):
        tls.load_pem_chain(b"nothing here", "content")
    assert tls.holds_private_key(open(files["key"]).read())


def test_reading_an_endpoint_is_bounded_by_its_timeout():
    hanging = HangingServer()
    try:
        with pytest.raises(RunbookError, match=r"TLS handshake with 127\.0\.0\.1:\d+ \(server name x\.test\) failed"):
            tls.fetch_chain("127.0.0.1", hanging.port, "x.test", 0.5)
    finally:
        hanging.close()
    with pytest.raises(RunbookError, match="check host, port and that it serves TLS"):
        tls.fetch_chain("127.0.0.1", closed_port(), "x.test", 2)


class Module:
    def __init__(self, tmp_path, check_mode=False, **params):
        key = make_certificates(tmp_path, 1)["key"]
        self.params = dict(
            platform="memory", platform_settings={}, verify=[], verify_timeout=5, certificate="site",
            domains=["www.lab.example"], renew_before_days=30, force=False, acme_directory="https://acme.test/dir",
            acme_ca_cert=None, acme_timeout=60, account_key_src=key, account_key_content=None, account_email=None,
            terms_agreed=True, key_type="ec256", challenge="dns-01", endpoint=None,
            dns=dict(provider="rfc2136", server="127.0.0.1", port=53, zone="lab.example", key_name=None,
                     key_secret=None, key_algorithm="hmac-sha256", timeout=5, ttl=60, propagation_timeout=10),
        )
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = True
        self.no_log_values = set()
        self.argument_spec = cert_renew.CertRenew.argument_spec().argument_spec


class MemoryBackend(Backend):
    platform = "memory"

    def __init__(self, chain, check_mode=False):
        super().__init__({}, check_mode)
        self.chain, self.previous, self.calls = chain, None, []

    def certificate_names(self):
        return ["site"]

    def read_certificate(self, name, previous=False):
        return self.previous if previous else self.chain

    @writes
    def deploy_certificate(self, name, chain_pem, key_pem):
        self.calls.append("deploy")
        self.previous, self.chain = self.chain, chain_pem.encode()

    @writes
    def restore_previous_certificate(self, name):
        self.calls.append("restore")
        self.chain = self.previous


@pytest.fixture()
def make(tmp_path, monkeypatch):
    def build(days_left, check_mode=False, issued_days=90, **params):
        chain = open(make_certificates(tmp_path / "old", days_left, names=("www.lab.example",))["cert"], "rb").read() \
            if days_left is not None else None
        backend = MemoryBackend(chain, check_mode)
        monkeypatch.setattr(cert_renew, "select_backend", lambda *a: backend)
        procedure = cert_renew.CertRenew(Module(tmp_path, check_mode, **params))
        new = open(make_certificates(tmp_path / "new", issued_days, names=("www.lab.example",))["cert"]).read()

        def order():  # what the ACME order yields; the real one runs in the integration tests
            procedure.new_chain, procedure.new_key_pem = new, "key"
            procedure.new_facts = tls.facts(tls.load_pem_chain(new, "new")[0])

        monkeypatch.setattr(procedure, "_order", order)
        return procedure, backend

    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    return build


def test_a_fresh_certificate_plans_nothing(make):
    procedure, backend = make(200)
    result = procedure.run()
    assert not result["changed"] and result["plan"] == [] and not result["renewed"] and backend.calls == []


def test_check_mode_plans_a_due_renewal_and_writes_nothing(make):
    procedure, backend = make(3, check_mode=True)
    result = procedure.run()
    assert result["changed"] and len(result["plan"]) == 2 and not result["renewed"]
    assert "expires in" in result["reasons"][0] and backend.calls == []


@pytest.mark.parametrize("days_left, reason", [(None, "no certificate site is deployed"), (3, "expires in")])
def test_missing_or_due_certificates_are_renewed(make, days_left, reason):
    procedure, backend = make(days_left)
    result = procedure.run()
    assert result["renewed"] and backend.calls == ["deploy"] and reason in result["reasons"][0]
    assert result["after"]["days_left"] > 80


def test_a_failed_verification_restores_the_previous_certificate(make):
    procedure, backend = make(3, verify=[{"type": "tcp", "host": "127.0.0.1", "port": 1}], verify_timeout=0.5)
    old = backend.chain
    with pytest.raises(RunbookError, match="verification failed") as failure:
        procedure.run()
    assert backend.calls == ["deploy", "restore"] and backend.chain == old
    assert failure.value.details["rolled_back"][0].startswith("restored the previous certificate of site")
