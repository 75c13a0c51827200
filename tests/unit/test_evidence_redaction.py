"""Redaction and the evidence bundle, through the evidence_collect procedure with an in-memory backend."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
from datetime import UTC, datetime

import pytest

from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import Backend
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.redact import Redactor, env_secrets
from ansible_collections.ops.runbooks.plugins.module_utils._procedures import evidence_collect
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.evidence_collect import (
    EvidenceCollect,
    parse_since,
)

FILE_SECRET = "file-secret-Zq81"  # what a secrets/ file holds
NO_LOG = "pg-password-Kd27"  # a no_log option's value
EXTRA = "api-token-Wm55"  # given in `redact`
QUIRKY = 'p"w/\u00f6-Xr90'  # needs escaping in JSON and in URLs


class FakeBackend(Backend):
    platform = "fake"

    def __init__(self, sources):
        super().__init__()
        self.sources = sources

    def collect_evidence(self, since, services=None, deploy_history=True):
        return list(self.sources)

    def known_secrets(self):
        return [FILE_SECRET + "\n", QUIRKY]


class FakeModule:
    def __init__(self, check_mode=False, **params):
        self.params = dict(since="1h", services=None, postgres=None, deploy_history=True, redact=[EXTRA],
                           platform="fake", platform_settings={}, **params)
        self.check_mode = check_mode
        self._diff = False
        self.no_log_values = {NO_LOG, EXTRA}


def _broken():
    raise RunbookError(f"container gone (while using {NO_LOG})")


def _chunked(*chunks):
    # How a backend reads a log: in chunks, joined before anyone redacts it.
    return lambda: b"".join(chunks)


SOURCES = [
    ("logs/app.log", _chunked(b"login ok\npassword=", FILE_SECRET[:7].encode(), FILE_SECRET[7:].encode(),
                              b"\nauth ", NO_LOG[:3].encode(), NO_LOG[3:].encode(), b" token " + EXTRA.encode())),
    ("containers/app.json", lambda: json.dumps({"Args": [QUIRKY], "Url": "https://u:p%22w%2F%C3%B6-Xr90@h/"}).encode()),
    ("logs/gone.log", _broken),
]


def collect(tmp_path, monkeypatch, check_mode=False, sources=SOURCES):
    monkeypatch.setattr(evidence_collect, "select_backend", lambda *args: FakeBackend(sources))
    return EvidenceCollect(FakeModule(check_mode, dest=str(tmp_path / "bundles"))).run()


def test_bundle_is_redacted_hashed_and_private(tmp_path, monkeypatch):
    result = collect(tmp_path, monkeypatch)
    path = result["path"]
    assert result["changed"] and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == result["sha256"]
    assert open(result["sha256_file"]).read() == f"{result['sha256']}  {os.path.basename(path)}\n"
    assert stat.S_IMODE(os.stat(result["sha256_file"]).st_mode) == 0o600
    with tarfile.open(path) as tar:
        contents = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers()}
    manifest = json.loads(contents.pop("manifest.json"))
    assert set(contents) == {"logs/app.log", "containers/app.json"}
    for entry in manifest["files"]:
        assert hashlib.sha256(contents[entry["path"]]).hexdigest() == entry["sha256"]
    assert manifest["files"] == result["files"]
    log = contents["logs/app.log"]
    # The file secret arrived split over two chunks, the no_log value too: both are caught.
    assert log == b"login ok\npassword=[REDACTED]\nauth [REDACTED] token [REDACTED]"
    assert {e["path"]: e["redacted"] for e in manifest["files"]} == {"logs/app.log": 3, "containers/app.json": 2}
    everything = b"".join(contents.values()) + json.dumps(result).encode() + json.dumps(manifest).encode()
    for secret in (FILE_SECRET, NO_LOG, EXTRA, QUIRKY, "p%22w%2F%C3%B6", json.dumps(QUIRKY)[1:-1]):
        assert secret.encode() not in everything, secret
    # An unreadable source is noted, with its message redacted too, and the rest is still collected.
    assert manifest["missing"] == {"logs/gone.log": "container gone (while using [REDACTED])"}
    assert result["missing"] == manifest["missing"]


def test_check_mode_lists_and_writes_nothing(tmp_path, monkeypatch):
    result = collect(tmp_path, monkeypatch, check_mode=True)
    assert result["changed"]
    assert result["files"] == [{"path": p} for p, _read in SOURCES]
    assert not (tmp_path / "bundles").exists()


def test_redactor_prefers_the_longest_secret_and_counts():
    redact = Redactor(["abc", "abcdef", "", None, "  "])
    assert redact("xxabcdefyy abc") == (b"xx[REDACTED]yy [REDACTED]", 2)
    assert Redactor([])(b"nothing") == (b"nothing", 0)


def test_env_secrets_by_name_and_in_urls():
    env = {"DB_PASSWORD": "s1", "API_TOKEN": "s2", "Secret_Key": "s3", "DATABASE_PASSWORD_FILE": "/run/secrets/x",
           "DATABASE_URL": "postgresql://app:s4@db/app", "REDIS_URL": "redis://redis:6379/0", "PORT": "8080",
           "UNSET_PASSWORD": None}
    assert sorted(env_secrets(env)) == ["s1", "s2", "s3", "s4"]


NOW = datetime(2024, 5, 1, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize("value,expected", [
    ("30min", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
    ("3600", datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),
    ("2024-05-01T11:00:00Z", datetime(2024, 5, 1, 11, 0, tzinfo=UTC)),
    ("2024-05-01T13:00:00+02:00", datetime(2024, 5, 1, 11, 0, tzinfo=UTC)),
    ("2024-05-01 11:00", datetime(2024, 5, 1, 11, 0, tzinfo=UTC)),  # no offset: UTC
])
def test_since(value, expected):
    assert parse_since(value, now=NOW) == expected


@pytest.mark.parametrize("value", ["yesterday", "-5min", "2024-05-02T00:00:00Z", "2024-13-01"])
def test_bad_since_names_the_parameter(value):
    with pytest.raises(ParameterError, match="^since:"):
        parse_since(value, now=NOW)


def test_image_names_and_creation_order():
    from types import SimpleNamespace

    from ansible_collections.ops.runbooks.plugins.module_utils._backends._compose import housekeeping

    assert housekeeping.repository_of("ops-runbooks/lab-app:2cd3") == "ops-runbooks/lab-app"
    assert housekeeping.repository_of("registry:5000/team/app:v1") == "registry:5000/team/app"
    assert housekeeping.repository_of("registry:5000/team/app") == "registry:5000/team/app"
    assert housekeeping.repository_of("app@sha256:" + "a" * 64) == "app"
    assert housekeeping.repository_of("sha256:" + "a" * 64) is None
    # Docker trims trailing zeros of the nanoseconds: .87 is earlier than .870000001, later than .8.
    stamps = ["2024-05-01T10:00:00.870000001Z", "2024-05-01T10:00:00.87Z", "2024-05-01T10:00:00.8Z",
              "2024-05-01T09:59:59Z"]
    images = [SimpleNamespace(attrs={"Created": s}) for s in stamps]
    assert sorted(images, key=housekeeping._created, reverse=True) == images
