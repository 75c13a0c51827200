"""cert_renew and the cert_renewal role against real servers: nginx of the Compose lab (TLS on 127.0.0.1:55443),
pebble (lab.acme) issuing after real dns-01 validation against the DNS lab's BIND server.

The lab is shared: every test puts nginx's certificate files back as it found them and reloads nginx."""

from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from lab import acme as acmelab
from lab import compose
from lab import dns as dnslab
from tests.helpers.ansible import run_module, run_playbook
from tests.helpers.fixtures import ROOT
from tests.helpers.servers import HttpServer, closed_port, make_certificates

pytestmark = pytest.mark.integration

TLS_PORT = compose.PORTS["NGINX_TLS_PORT"]
NAME = compose.TLS_NAMES[0]


@pytest.fixture(scope="session")
def acme_lab():
    return acmelab.up()


@pytest.fixture(scope="session")
def dns_lab():
    return dnslab.up()


def served_fingerprint(port=TLS_PORT, server_name=NAME):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()).hex(":")


def file_fingerprint(path):
    return x509.load_pem_x509_certificate(Path(path).read_bytes()).fingerprint(hashes.SHA256()).hex(":")


def reload_nginx(lab):
    lab.compose("exec", "-T", "nginx", "nginx", "-s", "reload")


class TlsFiles:
    """nginx's certificate files in the lab, saved at the start of a test and put back at its end."""

    def __init__(self, lab):
        self.lab = lab
        self.dir = lab.dir / "nginx" / "tls"
        self.names = ("cert.pem", "key.pem", "cert.pem.previous", "key.pem.previous")
        self.saved = {n: (self.dir / n).read_bytes() if (self.dir / n).exists() else None for n in self.names}

    @property
    def cert(self):
        return self.dir / "cert.pem"

    @property
    def key(self):
        return self.dir / "key.pem"

    def contents(self):
        return {n: (self.dir / n).read_bytes() if (self.dir / n).exists() else None for n in self.names}

    def install_self_signed(self, days):
        """A self-signed certificate for the lab's name with ``days`` left, served after a reload; its fingerprint."""
        compose.write_self_signed(self.dir, days=days)
        reload_nginx(self.lab)
        wanted = file_fingerprint(self.cert)
        wait_for(lambda: served_fingerprint() == wanted, 30, "nginx to serve the installed certificate")
        return wanted

    def restore(self):
        for name, data in self.saved.items():
            path = self.dir / name
            if data is None:
                path.unlink(missing_ok=True)
            elif not path.exists() or path.read_bytes() != data:
                tmp = path.with_name(f".{name}.restore")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if "key" in name else 0o644)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
        reload_nginx(self.lab)
        # The reload is asynchronous: the next test must not see the certificate this one left.
        wanted = file_fingerprint(self.cert)
        wait_for(lambda: served_fingerprint() == wanted, 30, "nginx to serve the restored certificate")


def wait_for(predicate, timeout, what):
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{what}: not true within {timeout}s"
        time.sleep(0.2)


@pytest.fixture()
def tls_files(compose_lab):
    files = TlsFiles(compose_lab)
    yield files
    files.restore()


@pytest.fixture()
def args(compose_platform, acme_lab, dns_lab):
    return dict(
        compose_platform,
        certificate="site",
        domains=[NAME],
        renew_before_days=30,
        acme_directory=acme_lab.directory_url,
        acme_ca_cert=str(acme_lab.ca_file),
        account_key_src=str(acme_lab.account_key_file),
        terms_agreed=True,
        dns={"server": dns_lab.host, "port": dns_lab.port, "zone": "lab.example", "key_name": dns_lab.key_name,
             "key_secret": dns_lab.key_secret},
        endpoint={"host": "127.0.0.1", "port": TLS_PORT, "server_name": NAME},
        verify_timeout=30,
    )


def https_get(path="/_nginx/health"):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(f"https://127.0.0.1:{TLS_PORT}{path}", headers={"Host": NAME})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:
        return None, str(exc).encode()


def test_four_steps_renew_a_certificate_near_expiry_without_dropping_requests(tls_files, args, acme_lab):
    old = tls_files.install_self_signed(days=3)
    before_files = tls_files.contents()

    check1 = run_module("cert_renew", args, check=True, diff=True)
    assert not check1.failed, check1
    assert check1.changed and not check1["renewed"] and check1["plan"], check1
    assert "because it expires in" in check1["plan"][0] and "within renew_before_days 30" in check1["plan"][0]
    assert check1["before"]["fingerprint_sha256"] == old and check1["acme_account"] is None
    assert tls_files.contents() == before_files and served_fingerprint() == old

    failures, answered, stop = [], [], threading.Event()

    def client():  # HTTPS traffic throughout the renewal: nginx's reload must not drop any of it
        while not stop.is_set():
            status, body = https_get()
            (answered if status == 200 else failures).append((status, body[:200]))

    worker = threading.Thread(target=client)
    worker.start()
    try:
        apply1, check2, apply2 = run_playbook([
            {"name": "apply 1", "ops.runbooks.cert_renew": args},
            {"name": "check 2", "ops.runbooks.cert_renew": args, "check_mode": True},
            {"name": "apply 2", "ops.runbooks.cert_renew": args},
        ], diff=True).results
    finally:
        stop.set()
        worker.join()

    assert apply1.changed and apply1["renewed"], apply1
    new = apply1["after"]["fingerprint_sha256"]
    assert new != old and apply1["served_fingerprint"] == new == served_fingerprint()
    assert file_fingerprint(tls_files.cert) == new
    assert apply1["previous_fingerprint"] == old == file_fingerprint(tls_files.dir / "cert.pem.previous")
    assert apply1["after"]["issuer"].startswith("CN=Pebble Intermediate CA")
    assert apply1["after"]["subject_alt_names"] == [NAME] and apply1["after"]["days_left"] > 30
    assert re.fullmatch(r"[0-9a-f]+", apply1["after"]["serial_number"])
    assert apply1["acme_account"].startswith(f"https://127.0.0.1:{acme_lab.port}/")
    assert apply1["verify_seconds"] is not None
    assert apply1["diff"]["before"]["certificate"]["fingerprint_sha256"] == old
    assert tls_files.key.stat().st_mode & 0o777 == 0o600
    assert (tls_files.dir / "key.pem.previous").stat().st_mode & 0o777 == 0o600
    assert (tls_files.dir / "key.pem.previous").read_bytes() == before_files["key.pem"]
    assert not check2.changed and check2["plan"] == [] and check2["reasons"] == [], check2
    assert not apply2.changed and apply2["after"]["fingerprint_sha256"] == new, apply2
    assert failures == [] and answered, failures[:5]

    # The chain nginx now serves leads to pebble's root and covers the name.
    checked = run_module("cert_check", {"host": "127.0.0.1", "port": TLS_PORT, "server_name": NAME,
                                        "ca_cert": str(acme_lab.issuer_root_file), "names": [NAME]})
    assert checked["fingerprint_sha256"] == new and checked["chain_linked"] and checked["chain_trusted"], checked
    assert len(checked["chain"]) >= 1 and checked["missing_names"] == [] and not checked["expiring"]


def test_a_fresh_certificate_is_left_alone(tls_files, args):
    fresh = tls_files.install_self_signed(days=200)
    before_files = tls_files.contents()
    run = run_playbook([
        {"name": "fresh", "ops.runbooks.cert_renew": args},
        {"name": "a name it lacks", "ops.runbooks.cert_renew": dict(args, domains=[NAME, "api.lab.example"]),
         "check_mode": True},
        {"name": "forced", "ops.runbooks.cert_renew": dict(args, force=True), "check_mode": True},
    ]).results
    kept, lacking, forced = run
    assert not kept.failed and not kept.changed and not kept["renewed"], kept
    assert kept["plan"] == [] and kept["acme_account"] is None and kept["after"]["fingerprint_sha256"] == fresh
    assert lacking.changed and lacking["reasons"] == ["it does not cover api.lab.example"], lacking
    assert forced.changed and forced["reasons"] == ["force=true"], forced
    assert tls_files.contents() == before_files and served_fingerprint() == fresh


def test_a_failed_verification_rolls_back_to_the_previous_certificate(tls_files, args, tmp_path):
    old = tls_files.install_self_signed(days=3)
    before_files = tls_files.contents()
    # Another TLS server stands in for an endpoint that never serves the new certificate.
    certs = make_certificates(tmp_path, 90, names=(NAME,))
    other = HttpServer(tls=(certs["cert"], certs["key"]))
    try:
        run = run_playbook([
            {"name": "endpoint never serves it", "ops.runbooks.cert_renew": dict(
                args, endpoint={"host": "127.0.0.1", "port": other.port, "server_name": NAME}, verify_timeout=2)},
            {"name": "a verify probe fails", "ops.runbooks.cert_renew": dict(
                args, verify=[{"type": "tcp", "host": "127.0.0.1", "port": closed_port()}], verify_timeout=2)},
        ]).results
    finally:
        other.close()
    for res in run:
        assert res.failed, res
        assert res["rolled_back"] == [f"restored the previous certificate of site ({old}) and reloaded the server"]
        assert "deploy it as site" in " ".join(res["applied"]), res
    fingerprint_failure, probe_failure = run
    assert "to serve the new certificate" in fingerprint_failure["msg"], fingerprint_failure["msg"]
    assert "verification failed" in probe_failure["msg"], probe_failure["msg"]
    wait_for(lambda: served_fingerprint() == old, 30, "nginx to serve the previous certificate again")
    now = tls_files.contents()
    assert now["cert.pem"] == before_files["cert.pem"] and now["key.pem"] == before_files["key.pem"]
    assert tls_files.key.stat().st_mode & 0o777 == 0o600


def test_bad_input_is_rejected_before_anything_changes(tls_files, args, dns_lab):
    before = tls_files.contents(), served_fingerprint()
    dns = args["dns"]
    cases = [
        (dict(args, domains=["www.lab.example; rm -rf /"]), "domains[0]: 'www.lab.example; rm -rf /' is not"),
        (dict(args, domains=["$(reboot).lab.example"]), "domains[0]"),
        (dict(args, domains=["www.other.example"]), "domains[0]: 'www.other.example' is outside dns.zone"),
        (dict(args, domains=[NAME, NAME]), "domains[1]: 'www.lab.example' is listed twice"),
        (dict(args, domains=[]), "domains: give at least one name"),
        (dict(args, certificate="../../etc/passwd"), "certificate: '../../etc/passwd' is not in platform_settings"),
        (dict(args, acme_directory="http://127.0.0.1:55400/dir"), "acme_directory: 'http://127.0.0.1:55400/dir' is "
                                                                   "not an https:// URL"),
        (dict(args, acme_directory="https://127.0.0.1/dir; curl x"), "acme_directory"),
        (dict(args, acme_ca_cert="/nonexistent/ca.pem"), "acme_ca_cert: '/nonexistent/ca.pem' is not a file"),
        (dict(args, renew_before_days=-1), "renew_before_days: must be zero or more"),
        (dict(args, acme_timeout="soon"), "acme_timeout: 'soon' is not a duration"),
        (dict(args, verify_timeout="soon"), "verify_timeout: 'soon' is not a duration"),
        (dict(args, account_key_src="/nonexistent/account.key"), "account_key_src: cannot read the ACME account key"),
        ({**{k: v for k, v in args.items() if k != "account_key_src"}, "account_key_content": "not a key"},
         "account_key_content: not an unencrypted PEM private key"),
        (dict(args, account_key_content="pasted-key"), "mutually exclusive: account_key_src|account_key_content"),
        (dict(args, account_email="ops@example.com; rm -rf /"), "account_email"),
        (dict(args, key_type="dsa1024"), "key_type"),
        (dict(args, challenge="http-01"), "challenge"),
        ({k: v for k, v in args.items() if k != "dns"}, "missing required arguments: dns"),
        (dict(args, dns=dict(dns, server="ns1;reboot")), "dns.server: 'ns1;reboot' is not"),
        (dict(args, dns=dict(dns, zone="lab example")), "dns.zone: 'lab example' is not"),
        (dict(args, dns=dict(dns, port=70000)), "dns.port: must be between 1 and 65535"),
        (dict(args, dns={k: v for k, v in dns.items() if k != "key_secret"}),
         "required together: key_name, key_secret found in dns"),
        (dict(args, endpoint={"host": "127.0.0.1", "port": 0}), "endpoint.port: must be between 1 and 65535"),
        (dict(args, endpoint={"host": "127.0.0.1 -o ProxyCommand=x"}), "endpoint.host"),
        (dict(args, verify=[{"type": "tcp", "host": "127.0.0.1"}]), "verify[0].port: required for type tcp"),
        (dict(args, platform="kubernetes"), "platform"),
    ]
    results = run_playbook([{"ops.runbooks.cert_renew": a} for a, _ in cases]).results
    wrong = [(needle, res.get("msg")) for (_a, needle), res in zip(cases, results, strict=True)
             if not res.failed or needle not in res["msg"]]
    assert wrong == []
    assert all(dns_lab.key_secret not in str(res) for res in results)
    assert (tls_files.contents(), served_fingerprint()) == before


def _pem_body_lines(path):
    """The base64 lines of a PEM private key: any of them in an output is a leak."""
    lines = Path(path).read_text().splitlines()
    return [line for line in lines if line and not line.startswith("-----") and len(line) >= 16]


def test_renewal_playbook_at_vvv_leaks_no_key_material(tls_files, compose_lab, acme_lab, tmp_path):
    tls_files.install_self_signed(days=3)
    log = tmp_path / "ansible.log"
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOG_PATH=str(log), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"))
    run = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-vvv", "-i",
                          str(ROOT / "inventories" / "lab" / "hosts.yml"),
                          str(ROOT / "playbooks" / "renew-certificates.yml")],
                         capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-5000:]
    new = file_fingerprint(tls_files.cert)
    assert f"site: renewed {new}" in output and served_fingerprint() == new  # the run did renew and report it

    nginx_logs = compose_lab.compose("logs", "--no-color", "nginx").stdout
    haystacks = {"ansible-playbook output": output, "ansible log": log.read_text(), "nginx logs": nginx_logs,
                 "pebble log": acme_lab.logfile.read_text(errors="replace")}
    secrets = {"new private key": _pem_body_lines(tls_files.key),
               "replaced private key": _pem_body_lines(tls_files.dir / "key.pem.previous"),
               "ACME account key": _pem_body_lines(acme_lab.account_key_file)}
    assert all(secrets.values())
    hits = [(what, where) for what, lines in secrets.items() for where, text in haystacks.items()
            if any(line in text for line in lines)]
    assert hits == []
    assert "PRIVATE KEY" not in output


def test_failures_before_the_deployment_change_nothing(tls_files, args, dns_lab):
    old = tls_files.install_self_signed(days=3)
    before_files = tls_files.contents()
    record = "_acme-challenge.www.lab.example."
    run = run_playbook([
        {"name": "terms not agreed", "ops.runbooks.cert_renew": dict(args, terms_agreed=False)},
        {"name": "a key the DNS server refuses", "ops.runbooks.cert_renew": dict(
            args, dns=dict(args["dns"], key_name=dns_lab.readonly_key_name, key_secret=dns_lab.readonly_key_secret))},
    ]).results
    terms, refused = run
    assert terms.failed and "asks to agree to its terms of service" in terms["msg"] and "terms_agreed=true" in \
        terms["msg"], terms
    assert refused.failed and "refused by" in refused["msg"] and dns_lab.readonly_key_name in refused["msg"], refused
    for res in run:
        assert res["applied"] == [] and res["rolled_back"] == [], res
        assert dns_lab.readonly_key_secret not in str(res)
    assert tls_files.contents() == before_files and served_fingerprint() == old
    answer = dns.query.tcp(dns.message.make_query(record, "TXT"), dns_lab.host, port=dns_lab.port, timeout=5)
    assert answer.answer == [], f"{record} left behind: {answer.answer}"
