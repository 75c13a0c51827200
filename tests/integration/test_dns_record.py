"""dns_record against the real BIND lab server (RFC 2136 updates signed with TSIG)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import dns.message
import dns.query
import dns.rdataset
import dns.tsigkeyring
import dns.update
import pytest

from lab import dns as dnslab
from tests.helpers.ansible import four_steps, run_module, run_playbook
from tests.helpers.servers import closed_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def dns_lab():
    """The shared authoritative server for lab.example. (started when not running)."""
    return dnslab.up(Path(os.environ.get("OPS_RUNBOOKS_LAB_DIR", "/tmp/ops-runbooks-lab")) / "dns")


@pytest.fixture(scope="session")
def dns_params(dns_lab):
    return {"zone": dns_lab.zone, "server": dns_lab.host, "port": dns_lab.port, "key_name": dns_lab.key_name,
            "key_secret": dns_lab.key_secret}


def _name():
    return f"t-{uuid.uuid4().hex[:8]}"


def _answer(lab, record, rdtype="A"):
    """(sorted values, ttl) as the server answers now; ([], None) when absent."""
    query = dns.message.make_query(f"{record}.{lab.zone}", rdtype)
    response = dns.query.tcp(query, lab.host, port=lab.port, timeout=5)
    for rrset in response.answer:
        if dns.rdatatype.to_text(rrset.rdtype) == rdtype:
            return sorted(r.to_text() for r in rrset), rrset.ttl
    return [], None


def _seed(lab, record, rdtype, ttl, *values):
    keyring = dns.tsigkeyring.from_text({lab.key_name: (lab.key_algorithm, lab.key_secret)})
    update = dns.update.UpdateMessage(lab.zone, keyring=keyring, keyname=lab.key_name)
    update.replace(record, ttl, rdtype, *values)
    assert dns.query.tcp(update, lab.host, port=lab.port, timeout=5).rcode() == 0


def test_four_steps_change_a_record(dns_lab, dns_params):
    record = _name()
    _seed(dns_lab, record, "A", 300, "10.0.0.1")
    serial = dns_lab.serial()
    # The authoritative server doubles as the resolver to check, so the resolver path runs for real.
    args = dict(dns_params, record=record, values=["10.0.0.2"], ttl=60,
                verify_resolver=[f"{dns_lab.host}:{dns_lab.port}"], verify_timeout="20s")
    check1, apply1, check2, apply2 = four_steps("dns_record", args)

    assert not check1.failed, check1
    assert check1.changed and check1["before"] == {"values": ["10.0.0.1"], "ttl": 300}
    assert check1["after"] == {"values": ["10.0.0.2"], "ttl": 60}
    assert check1["update"] == [f"prereq yxrrset {record}.lab.example. A 10.0.0.1",
                                f"update delete {record}.lab.example. A",
                                f"update add {record}.lab.example. 60 A 10.0.0.2"]
    assert check1["serial"] == serial and check1["verify_seconds"] is None
    assert apply1.changed and apply1["after"] == {"values": ["10.0.0.2"], "ttl": 60}, apply1
    assert apply1["serial"] > serial and apply1["verify_seconds"] is not None
    assert apply1["diff"]["before"]["values"] == ["10.0.0.1"]
    assert not check2.changed and check2["update"] == []
    assert not apply2.changed and apply2["serial"] == apply1["serial"]
    assert _answer(dns_lab, record) == (["10.0.0.2"], 60)
    assert all(dns_lab.key_secret not in str(r) for r in (check1, apply1, check2, apply2))


def test_ttl_alone_is_a_change_and_absent(dns_lab, dns_params):
    record = _name()
    _seed(dns_lab, record, "A", 300, "10.0.0.1", "10.0.0.2")
    base = dict(dns_params, record=f"{record}.{dns_lab.zone}")
    run = run_playbook([
        {"ops.runbooks.dns_record": dict(base, values=["10.0.0.2", "10.0.0.1"], ttl=300)},
        {"ops.runbooks.dns_record": dict(base, values=["10.0.0.1", "10.0.0.2"], ttl=120)},
        {"ops.runbooks.dns_record": dict(base, state="absent", values=["10.0.0.1"])},
        {"ops.runbooks.dns_record": dict(base, state="absent")},
        {"ops.runbooks.dns_record": dict(base, state="absent")},
    ])
    same, ttl, one_value, whole, again = run.results
    assert not same.changed and not same.failed, same
    assert ttl.changed and ttl["after"] == {"values": ["10.0.0.1", "10.0.0.2"], "ttl": 120}, ttl
    assert one_value.changed and one_value["after"] == {"values": ["10.0.0.2"], "ttl": 120}, one_value
    assert whole.changed and whole["after"] == {"values": [], "ttl": None}, whole
    assert not again.changed and not again.failed, again
    assert _answer(dns_lab, record) == ([], None)


def test_cname_and_txt(dns_lab, dns_params):
    cname, txt = _name(), _name()
    cname_args = dict(dns_params, record=cname, type="CNAME", values=["target"])
    txt_args = dict(dns_params, record=txt, type="TXT", values=['v=spf1 "quoted" -all', "second"], ttl=30)
    run = run_playbook([{"ops.runbooks.dns_record": a} for a in (cname_args, txt_args, cname_args, txt_args)])
    cname1, txt1, cname2, txt2 = run.results
    assert cname1.changed and cname1["after"]["values"] == ["target.lab.example."], cname1
    assert txt1.changed and txt1["after"]["values"] == ['"second"', '"v=spf1 \\"quoted\\" -all"'], txt1
    assert not cname2.changed and not txt2.changed, (cname2, txt2)
    assert _answer(dns_lab, cname, "CNAME") == (["target.lab.example."], 300)
    assert _answer(dns_lab, txt, "TXT") == (['"second"', '"v=spf1 \\"quoted\\" -all"'], 30)


def test_refused_keys_change_nothing(dns_lab, dns_params):
    record = _name()
    _seed(dns_lab, record, "A", 300, "10.0.0.1")
    serial = dns_lab.serial()
    args = dict(dns_params, record=record, values=["10.0.0.9"])
    wrong_secret = dict(args, key_secret="c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=")
    unknown_key = dict(wrong_secret, key_name="nobody")
    not_allowed = dict(args, key_name=dns_lab.readonly_key_name, key_secret=dns_lab.readonly_key_secret)
    unsigned = {k: v for k, v in args.items() if not k.startswith("key_")}
    run = run_playbook([{"ops.runbooks.dns_record": a} for a in (wrong_secret, unknown_key, not_allowed, unsigned)])
    bad_sig, bad_key, refused, no_key = run.results
    for res in run.results:
        assert res.failed and "lab.example." in res["msg"] and "Fix:" in res["msg"], res
    assert dns_lab.key_name in bad_sig["msg"] and "key_secret or key_algorithm" in bad_sig["msg"], bad_sig
    assert bad_key["key_name"] == "nobody" and "does not know TSIG key 'nobody'" in bad_key["msg"], bad_key
    assert "REFUSED" in refused["msg"] and dns_lab.readonly_key_name in refused["msg"], refused
    assert "unsigned update" in no_key["msg"], no_key
    assert _answer(dns_lab, record) == (["10.0.0.1"], 300)
    assert dns_lab.serial() == serial
    assert dns_lab.key_secret not in run.stdout and dns_lab.readonly_key_secret not in run.stdout


def test_check_mode_leaves_zone_alone(dns_lab, dns_params):
    record = _name()
    _seed(dns_lab, record, "A", 300, "10.0.0.1")
    before = (_answer(dns_lab, record), dns_lab.serial())
    tasks = [{"ops.runbooks.dns_record": dict(dns_params, record=record, values=["10.0.0.3"])},
             {"ops.runbooks.dns_record": dict(dns_params, record=record, state="absent")},
             {"ops.runbooks.dns_record": dict(dns_params, record=_name(), type="TXT", values=["new"])}]
    change, delete, create = run_playbook(tasks, check=True, diff=True).results
    assert change.changed and change["diff"]["after"] == {"values": ["10.0.0.3"], "ttl": 300}, change
    assert delete.changed and delete["update"] == [f"prereq yxrrset {record}.lab.example. A 10.0.0.1",
                                                   f"update delete {record}.lab.example. A"], delete
    assert create.changed and create["update"][0].startswith("prereq nxrrset"), create
    assert (_answer(dns_lab, record), dns_lab.serial()) == before


def test_failed_verification_rolls_back(dns_lab, dns_params):
    record = _name()
    _seed(dns_lab, record, "A", 300, "10.0.0.1")
    res = run_module("dns_record", dict(dns_params, record=record, values=["10.0.0.4"], verify_timeout=1,
                                        verify_resolver=[f"127.0.0.1:{closed_port()}"]))
    assert res.failed and "timed out" in res["msg"] and "did not answer" in res["msg"], res
    assert res["rolled_back"] == [f"restored {record}.lab.example. A to ['10.0.0.1'] ttl 300"], res
    assert _answer(dns_lab, record) == (["10.0.0.1"], 300)


def test_failed_verify_probe_rolls_back(dns_lab, dns_params):
    # The record is served, but the shared verify probes (here: the service behind the name) fail.
    record = _name()
    _seed(dns_lab, record, "A", 300, "10.0.0.1")
    res = run_module("dns_record", dict(dns_params, record=record, values=["10.0.0.5"], verify_timeout=1,
                                        verify=[{"type": "tcp", "host": "127.0.0.1", "port": closed_port()}]))
    assert res.failed and "verification failed" in res["msg"], res
    assert res["verification"]["healthy"] is False
    assert res["rolled_back"] == [f"restored {record}.lab.example. A to ['10.0.0.1'] ttl 300"], res
    assert _answer(dns_lab, record) == (["10.0.0.1"], 300)


def test_bad_input_sends_nothing(dns_lab, dns_params):
    victim = _name()
    serial = dns_lab.serial()
    bad = [
        (dict(dns_params, record=victim, values=["10.0.0.300"]), "values[0]"),
        (dict(dns_params, record=victim, values=["10.0.0.1", "fe80::1"]), "values[1]"),
        (dict(dns_params, record=victim, type="SPF", values=["x"]), "type"),
        (dict(dns_params, record="www.example.org.", values=["10.0.0.1"]), "record"),
        (dict(dns_params, record=f"{victim}.lab.example", values=["10.0.0.1"]), "record"),
        (dict(dns_params, record=f"{victim}; rm -rf /", values=["10.0.0.1"]), "record"),
        (dict(dns_params, record=victim, values=["10.0.0.1"], ttl=-5), "ttl"),
        (dict({k: v for k, v in dns_params.items() if k != "key_secret"}, record=victim, values=["10.0.0.1"]),
         "key_name, key_secret"),
        (dict(dns_params, record=victim, values=["10.0.0.1"], key_secret="not base64!"), "key_secret"),
        (dict(dns_params, record=victim, values=["10.0.0.1"], key_algorithm="hmac-sha999"), "key_algorithm"),
        (dict(dns_params, record=victim, type="CNAME", values=["a", "b"]), "values"),
        (dict(dns_params, record=victim), "values"),
        (dict(dns_params, record=victim, values=["10.0.0.1"], verify_resolver=["resolver.example"]),
         "verify_resolver[0]"),
        (dict(dns_params, record=victim, values=["10.0.0.1"], verify_timeout="soon"), "verify_timeout"),
    ]
    run = run_playbook([{"ops.runbooks.dns_record": args} for args, _ in bad])
    for (args, needle), res in zip(bad, run.results, strict=True):
        assert res.failed, (args, res)
        assert needle in res["msg"], (needle, res["msg"])
    assert dns_lab.serial() == serial
    assert _answer(dns_lab, victim) == ([], None)
    assert dns_lab.key_secret not in run.stdout
