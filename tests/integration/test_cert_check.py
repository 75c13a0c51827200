"""cert_check against real TLS servers (a local HTTPS server with a test CA, nginx of the Compose lab), PEM files and
the certificate the Compose platform stores."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from lab import compose
from tests.helpers.ansible import run_playbook
from tests.helpers.servers import HttpServer, closed_port, make_certificates

pytestmark = pytest.mark.integration


def fingerprint(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read()).fingerprint(hashes.SHA256()).hex(":")


@pytest.fixture()
def expiring_server(tmp_path):
    files = make_certificates(tmp_path, 5, names=("shop.test",))
    server = HttpServer(tls=(files["cert"], files["key"]))
    yield server, files
    server.close()


def test_endpoint_file_and_content_report_the_same_facts(expiring_server, tmp_path):
    server, files = expiring_server
    chain = tmp_path / "fullchain.pem"
    chain.write_bytes(open(files["cert"], "rb").read() + open(files["ca"], "rb").read())
    endpoint = {"host": "127.0.0.1", "port": server.port, "server_name": "shop.test"}
    run = run_playbook([
        {"name": "endpoint",
         "ops.runbooks.cert_check": dict(endpoint, ca_cert=files["ca"], names=["shop.test", "x.test"])},
        {"name": "file", "ops.runbooks.cert_check": {"path": str(chain), "ca_cert": files["ca"], "min_days": 3}},
        {"name": "content", "ops.runbooks.cert_check": {"content": open(files["cert"]).read()}},
        {"name": "failing", "ops.runbooks.cert_check": dict(endpoint, min_days=14, fail_on_expiring=True)},
        {"name": "check mode", "ops.runbooks.cert_check": endpoint, "check_mode": True},
    ])
    by_endpoint, by_file, by_content, failing, checked = run.results
    wanted = fingerprint(files["cert"])
    for res in (by_endpoint, by_file, by_content, checked):
        assert not res.failed and not res.changed and res["plan"] == [], res
        assert res["fingerprint_sha256"] == wanted and res["subject_alt_names"] == ["shop.test", "127.0.0.1"]
        assert 4 < res["days_left"] <= 5 and res["issuer"] == "CN=ops.runbooks test CA"
    assert by_endpoint["expiring"] and by_endpoint["source"] == f"endpoint 127.0.0.1:{server.port}"
    assert by_endpoint["chain_trusted"] is True and by_endpoint["missing_names"] == ["x.test"]
    assert not by_file["expiring"] and by_file["chain_linked"] and by_file["chain_trusted"]
    assert [c["subject"] for c in by_file["chain"]] == ["CN=ops.runbooks test CA"]
    assert by_content["chain_trusted"] is None and by_content["chain"] == []
    assert failing.failed and f"certificate of endpoint 127.0.0.1:{server.port} expires in" in failing["msg"]
    assert "less than min_days 14; renew it" in failing["msg"] and failing["fingerprint_sha256"] == wanted


def test_an_untrusted_chain_is_reported_not_hidden(expiring_server, tmp_path):
    server, _files = expiring_server
    (tmp_path / "other").mkdir()
    other_ca = make_certificates(tmp_path / "other", 90)["ca"]
    res = run_playbook([{"ops.runbooks.cert_check": {"host": "127.0.0.1", "port": server.port,
                                                     "server_name": "shop.test", "ca_cert": other_ca}}]).results[0]
    assert not res.failed and res["chain_trusted"] is False and res["chain_error"], res


def test_the_certificate_the_compose_platform_stores(compose_platform, compose_lab):
    res = run_playbook([{"ops.runbooks.cert_check": dict(compose_platform, certificate="site")}]).results[0]
    assert not res.failed, res
    assert res["fingerprint_sha256"] == fingerprint(compose_lab.dir / "nginx" / "tls" / "cert.pem")
    assert res["source"] == "compose certificate site" and compose.TLS_NAMES[0] in res["subject_alt_names"]


def test_bad_input_is_rejected_naming_the_parameter(compose_platform, tmp_path):
    key = open(make_certificates(tmp_path, 5)["key"]).read()
    cases = [
        ({}, "one of the following is required: host, path, content, certificate"),
        ({"host": "127.0.0.1", "path": "/etc/hostname"}, "mutually exclusive: host|path|content|certificate"),
        ({"host": "example.com; reboot"}, "host: 'example.com; reboot' is not"),
        ({"host": "127.0.0.1", "port": 0}, "port: must be between 1 and 65535"),
        ({"host": "127.0.0.1", "server_name": "a b"}, "server_name: 'a b' is not"),
        ({"host": "127.0.0.1", "timeout": 0}, "timeout: must be greater than zero"),
        ({"host": "127.0.0.1", "min_days": -1}, "min_days: must be zero or more"),
        ({"host": "127.0.0.1", "names": ["$(id)"]}, "names[0]: '$(id)' is not"),
        ({"path": "/nonexistent.pem"}, "path: '/nonexistent.pem' is not a file"),
        ({"content": key}, "content: holds a private key; give the certificate (chain) only"),
        ({"content": "hello"}, "content holds no PEM certificate"),
        ({"host": "127.0.0.1", "ca_cert": "/nonexistent/ca.pem"}, "ca_cert: '/nonexistent/ca.pem' is not a file"),
        (dict(compose_platform, certificate="nope"), "certificate: 'nope' is not in platform_settings.certificates"),
        ({"certificate": "site"}, "platform 'self_managed' cannot manage TLS certificates"),
        ({"host": "127.0.0.1", "port": closed_port()}, "TLS handshake with 127.0.0.1:"),
    ]
    results = run_playbook([{"ops.runbooks.cert_check": a} for a, _ in cases]).results
    wrong = [(needle, res.get("msg")) for (_a, needle), res in zip(cases, results, strict=True)
             if not res.failed or needle not in res["msg"]]
    assert wrong == []
    body = [line for line in key.splitlines() if not line.startswith("-----")]
    assert not any(line in str(res) for line in body for res in results)
