"""app_rollback against the Compose lab's green slot (public traffic stays on blue).

A second revision is made the way a deploy would: the app image under another tag with another APP_GREEN_REVISION
in .env, then `docker compose up`. The lab is shared: the fixture puts .env, green's containers and the revision
history back as it found them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
import urllib.request
import uuid

import pytest

from tests.helpers.ansible import four_steps, run_module, run_playbook

pytestmark = pytest.mark.integration

SERVICE = "app_green"
VARS = ["APP_GREEN_IMAGE", "APP_GREEN_REVISION"]


def green_version(lab):
    with urllib.request.urlopen(lab.url("GREEN_PORT") + "/version", timeout=5) as resp:
        return json.loads(resp.read())["revision"]


def green_ids(lab):
    return sorted(lab.compose("ps", "--quiet", SERVICE).stdout.split())


def kept(lab, ids):
    """No container of ``ids`` was recreated or removed (others may add replicas to the shared lab meanwhile)."""
    return set(ids) <= set(green_ids(lab))


def green_env(lab):
    # Only green's own variables: the shared lab's `up` may rewrite the rest of .env at any time.
    return {k: lab.env().get(k) for k in VARS}


def set_env(lab, **values):
    """Set ``values`` in .env in place, leaving every other line alone."""
    path = lab.dir / ".env"
    lines = [f"{key}={values[key]}" if (key := line.split("=", 1)[0]) in values else line
             for line in path.read_text().splitlines()]
    tmp = path.with_name(".env.test")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)


def deploy_green(lab, revision):
    """`docker compose up` for green, keeping its replica count; waits until it serves ``revision``."""
    count = len(green_ids(lab)) or 1
    lab.compose("up", "--detach", "--no-deps", "--wait", "--wait-timeout", "120", "--scale", f"{SERVICE}={count}",
                SERVICE, timeout=180)
    deadline = time.monotonic() + 60
    while green_version(lab) != revision:
        assert time.monotonic() < deadline, f"green does not serve {revision}"
        time.sleep(0.3)


def docker(*args):
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture()
def green(compose_lab):
    """Green's .env values, containers and revision history, restored after the test; yields test tag names."""
    env = green_env(compose_lab)
    history = compose_lab.dir / ".runbooks" / "revisions" / f"{SERVICE}.json"
    saved_history = history.read_bytes() if history.exists() else None
    original = green_version(compose_lab)
    tags = []
    yield original, tags
    if saved_history is None:
        history.unlink(missing_ok=True)
        for directory in (history.parent, history.parent.parent):  # the module made them: leave none behind
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
    else:
        history.write_bytes(saved_history)
    try:
        set_env(compose_lab, **env)
        if green_version(compose_lab) != original:
            deploy_green(compose_lab, original)
    finally:
        for tag in tags:
            subprocess.run(["docker", "rmi", tag], capture_output=True)


@pytest.fixture()
def args(compose_platform):
    settings = dict(compose_platform["platform_settings"], revision_vars={SERVICE: VARS})
    return dict(compose_platform, platform_settings=settings, service=SERVICE)


def test_roll_back_after_a_deploy(compose_lab, green, args):
    original, tags = green
    history = compose_lab.dir / ".runbooks" / "revisions" / f"{SERVICE}.json"

    first = run_module("app_rollback", dict(args, steps_back=0))
    assert not first.changed and first["plan"] == [], first
    r0 = first["revision"]
    assert r0["config"] == {"APP_GREEN_IMAGE": compose_lab.env()["APP_GREEN_IMAGE"], "APP_GREEN_REVISION": original}
    assert first["revisions"][0]["id"] == r0["id"] and first["revisions"][0]["recorded_at"]
    assert stat.S_IMODE(history.stat().st_mode) == 0o600

    # A deploy happens: the same image under a new tag, with a new revision value.
    new = f"rb-{uuid.uuid4().hex[:8]}"
    tag = f"{r0['image'].rsplit(':', 1)[0]}:{new}"
    docker("tag", r0["image"], tag)
    tags.append(tag)
    set_env(compose_lab, APP_GREEN_IMAGE=tag, APP_GREEN_REVISION=new)
    deploy_green(compose_lab, new)

    # Check mode predicts the way back and touches nothing, not even the history.
    snapshot, ids = (green_env(compose_lab), history.read_bytes()), green_ids(compose_lab)
    predicted = run_module("app_rollback", args, check=True, diff=True)
    assert predicted.changed and predicted["revision"]["id"] == r0["id"] and not predicted["recorded"], predicted
    assert predicted["diff"]["before"]["revision"]["config"]["APP_GREEN_REVISION"] == new
    assert f"deploy revision {r0['id']} of {SERVICE}" in predicted["plan"][0]
    assert (green_env(compose_lab), history.read_bytes()) == snapshot and kept(compose_lab, ids)
    assert green_version(compose_lab) == new

    # Four steps back to the first revision, proven on green's own port.
    probe = {"type": "http", "url": compose_lab.url("GREEN_PORT") + "/version",
             "body_regex": f'"revision": "{original}"'}
    check1, apply1, check2, apply2 = four_steps("app_rollback", dict(args, to_revision=r0["id"], verify=[probe],
                                                                     verify_timeout=30))
    assert check1.changed and check1["revision"]["id"] == r0["id"], check1
    assert apply1.changed and apply1["revision"]["id"] == r0["id"] and apply1["recorded"], apply1
    assert apply1["verification"]["healthy"]
    r1 = apply1["previous_revision"]
    assert r1["config"] == {"APP_GREEN_IMAGE": tag, "APP_GREEN_REVISION": new}
    assert not check2.changed and not apply2.changed, (check2, apply2)
    assert green_version(compose_lab) == original
    assert green_env(compose_lab) == r0["config"]
    assert [r["id"] for r in apply2["revisions"][:3]] == [r0["id"], r1["id"], r0["id"]]

    # A deploy that fails verification is undone: green serves the first revision again.
    never = dict(probe, body_regex="no such revision")
    failed = run_module("app_rollback", dict(args, to_revision=r1["id"], verify=[never], verify_timeout=3,
                                            wait_timeout=60))
    assert failed.failed and "verification failed" in failed["msg"], failed
    assert failed["msg"].endswith(f"{SERVICE} is back on revision {r0['id']}"), failed["msg"]
    assert green_version(compose_lab) == original and green_env(compose_lab) == r0["config"]

    # Its image gone, the second revision cannot come back: refused before anything changes.
    docker("rmi", tag)
    snapshot, ids = green_env(compose_lab), green_ids(compose_lab)
    gone = run_playbook([{"ops.runbooks.app_rollback": dict(args, to_revision=r1["id"])},
                         {"ops.runbooks.app_rollback": dict(args, steps_back=1), "check_mode": True}]).results
    for res in gone:
        assert res.failed and f"needs image {tag}, which is not on this host any more" in res["msg"], res
    assert green_env(compose_lab) == snapshot and kept(compose_lab, ids)
    assert green_version(compose_lab) == original


def test_bad_input_is_rejected_before_anything_changes(compose_lab, compose_platform, args):
    before, ids = green_env(compose_lab), green_ids(compose_lab)
    cases = [
        ({k: v for k, v in args.items() if k != "service"}, "missing required arguments: service"),
        (dict(args, service="app_green; docker rm -f x"), "service: 'app_green; docker rm -f x' is not a service"),
        (dict(args, to_revision="0123456789ab", steps_back=1), "mutually exclusive: to_revision|steps_back"),
        (dict(args, to_revision="HEAD~1"), "to_revision: 'HEAD~1' is not a revision id"),
        (dict(args, steps_back=-1), "steps_back: must be zero or more"),
        (dict(args, wait_timeout="soon"), "wait_timeout: 'soon' is not a duration"),
        (dict(args, verify=[{"type": "http", "url": "nope"}]), "verify[0].url"),
        (dict(compose_platform, service=SERVICE), "platform_settings.revision_vars: no env file variables are named"),
    ]
    tasks = [{"ops.runbooks.app_rollback": a} for a, _ in cases]
    # An unknown revision is only known after reading the history: check mode, so nothing is recorded either.
    tasks.append({"ops.runbooks.app_rollback": dict(args, to_revision="0123456789ab"), "check_mode": True})
    cases.append((None, "to_revision 0123456789ab is not a recorded revision of app_green"))
    for (_a, needle), res in zip(cases, run_playbook(tasks).results, strict=True):
        assert res.failed and needle in res["msg"], (needle, res.get("msg"))
    assert green_env(compose_lab) == before and kept(compose_lab, ids)
