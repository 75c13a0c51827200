"""dns_record's procedure against an in-memory provider: planning, check mode, rollback and input checks."""

from __future__ import annotations

import types

import pytest

from ansible_collections.ops.runbooks.plugins.module_utils._clients import dns as dnsclient
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._procedures import dns_record
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.dns_record import DnsRecord

SECRET = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="


class MemoryProvider:
    """One zone in a dict; counts writes so tests can prove check mode sent none."""

    name = "memory"
    zone_data = {}
    writes = []

    def __init__(self, params, zone):
        self.zone = zone

    def read(self, name, rdtype):
        return self.zone_data.get((name, rdtype))

    def serial(self):
        return 1 + len(self.writes)

    def replace(self, name, rdtype, before, after):
        assert dnsclient.same_rrset(self.read(name, rdtype), before)
        self.writes.append((name, rdtype, after))
        if after:
            self.zone_data[(name, rdtype)] = after
        else:
            self.zone_data.pop((name, rdtype), None)

    describe = staticmethod(dnsclient.Rfc2136Provider.describe)


@pytest.fixture(autouse=True)
def memory(monkeypatch):
    MemoryProvider.zone_data = {}
    MemoryProvider.writes = []
    monkeypatch.setitem(dnsclient.PROVIDERS, "memory", MemoryProvider)
    return MemoryProvider


def procedure(check_mode=False, **params):
    spec = DnsRecord.argument_spec().argument_spec
    values = {name: option.get("default") for name, option in spec.items()}
    values.update(provider="memory", zone="example.com", server="192.0.2.53", key_name="k", key_secret=SECRET)
    values.update(params)
    return DnsRecord(types.SimpleNamespace(params=values, check_mode=check_mode, _diff=True))


def seed(record, rdtype, ttl, *values):
    zone = dnsclient.parse_name("example.com")
    MemoryProvider.zone_data[(dnsclient.parse_name(record, zone), rdtype)] = dnsclient.make_rdataset(
        rdtype, ttl, list(values), zone)


def test_check_mode_plans_and_writes_nothing(memory):
    seed("www", "A", 300, "192.0.2.1")
    result = procedure(check_mode=True, record="www", values=["192.0.2.2"], ttl=60).run()
    assert result["changed"] and result["diff"]["after"] == {"values": ["192.0.2.2"], "ttl": 60}
    assert result["update"][-1] == "update add www.example.com. 60 A 192.0.2.2"
    assert memory.writes == []


def test_same_values_any_order_is_no_change(memory):
    seed("www", "A", 300, "192.0.2.1", "192.0.2.2")
    result = procedure(record="www.example.com.", values=["192.0.2.2", "192.0.2.1"], ttl=300).run()
    assert not result["changed"] and result["update"] == [] and memory.writes == []


def test_absent_with_values_keeps_the_rest(memory):
    seed("www", "A", 120, "192.0.2.1", "192.0.2.2")
    result = procedure(record="www", state="absent", values=["192.0.2.1"]).run()
    assert result["after"] == {"values": ["192.0.2.2"], "ttl": 120}


def test_failed_verification_restores_the_old_rrset(memory, monkeypatch):
    seed("www", "A", 300, "192.0.2.1")

    def silent(*args):
        raise RunbookError("resolver 192.0.2.99:53 did not answer")

    monkeypatch.setattr(dnsclient, "query_resolver", silent)
    with pytest.raises(RunbookError) as err:
        procedure(record="www", values=["192.0.2.2"], verify_resolver=["192.0.2.99"], verify_timeout=0).run()
    assert "did not answer" in err.value.msg
    assert err.value.details["rolled_back"] == ["restored www.example.com. A to ['192.0.2.1'] ttl 300"]
    assert dnsclient.rrset_text(memory.zone_data[(dnsclient.parse_name("www.example.com."), "A")])["values"] == [
        "192.0.2.1"]


@pytest.mark.parametrize("record,expected", [("@", "example.com."), ("www", "www.example.com."),
                                             ("*.dev", "*.dev.example.com."), ("_acme-challenge.www",
                                                                               "_acme-challenge.www.example.com.")])
def test_record_names(record, expected):
    p = procedure(record=record, values=["192.0.2.1"])
    p.validate()
    assert p.name.to_text() == expected


@pytest.mark.parametrize("params,param", [
    (dict(record="www.example.org.", values=["192.0.2.1"]), "record"),
    (dict(record="www.example.com", values=["192.0.2.1"]), "record"),
    (dict(record="a b", values=["192.0.2.1"]), "record"),
    (dict(record="www", values=["192.0.2.1", "2001:db8::1"]), "values[1]"),
    (dict(record="www", type="MX", values=["mail.example.com."]), "values[0]"),
    (dict(record="www", values=["192.0.2.1"], ttl=2**31), "ttl"),
    (dict(record="www", values=["192.0.2.1"], verify_resolver=["10.0.0.1:99999"]), "verify_resolver[0]"),
    (dict(record="www", values=["192.0.2.1"], zone="exa..mple"), "zone"),
])
def test_bad_input_names_the_parameter(params, param, memory):
    with pytest.raises(ParameterError) as err:
        procedure(**params).run()
    assert err.value.param == param
    assert memory.writes == []


def test_txt_values_are_quoted_and_split():
    assert dns_record._txt('say "hi"') == '"say \\"hi\\""'
    assert dns_record._txt('"already" "quoted"') == '"already" "quoted"'
    assert dns_record._txt("x" * 300) == f'"{"x" * 255}" "{"x" * 45}"'


def test_resolver_addresses():
    assert dns_record._resolver("10.0.0.2", "r") == ("10.0.0.2", 53)
    assert dns_record._resolver("10.0.0.2:5353", "r") == ("10.0.0.2", 5353)
    assert dns_record._resolver("[2001:db8::53]:54", "r") == ("2001:db8::53", 54)
    assert dns_record._resolver("::1", "r") == ("::1", 53)
