"""traffic_switch against the Compose lab: nginx in front of the blue and green slots.

The lab is shared: every test puts the active slot (and green's containers) back as it found them."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request

import pytest

from lab import compose
from tests.helpers.ansible import run_module, run_playbook

pytestmark = pytest.mark.integration

PUBLIC = compose.Deployment(compose.DEFAULT_DIR).url("NGINX_PORT")
GREEN = compose.Deployment(compose.DEFAULT_DIR).url("GREEN_PORT")


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:
        return None, str(exc).encode()


def public_slot():
    status, body = get(PUBLIC + "/version")
    return json.loads(body)["slot"] if status == 200 else None


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not true within {timeout}s"
        time.sleep(0.2)


def uri(url):
    return {"ansible.builtin.uri": {"url": url, "return_content": True}}


@pytest.fixture()
def slot_file(compose_lab):
    """The active slot file; put back (and nginx reloaded) after the test if the test left it changed."""
    path = compose_lab.dir / "nginx" / "active_slot.conf"
    original, mode = path.read_bytes(), path.stat().st_mode
    assert b"set $active_slot app_blue;" in original, "these tests start from traffic on blue"
    yield path
    if path.read_bytes() != original:
        tmp = path.with_name(".active_slot.conf.restore")
        tmp.write_bytes(original)
        os.chmod(tmp, mode & 0o7777)
        os.replace(tmp, path)
        compose_lab.compose("exec", "-T", "nginx", "nginx", "-s", "reload")
    wait_for(lambda: public_slot() == "blue", 30, "public traffic back on blue")


@pytest.fixture()
def args(compose_platform):
    return dict(compose_platform, to="green")


def test_four_steps_switch_to_green_without_dropping_requests(slot_file, args):
    mode = slot_file.stat().st_mode
    failures, answered, stop = [], [], threading.Event()

    def client():  # public traffic throughout the switches: a reload must not drop any of it
        while not stop.is_set():
            status, body = get(PUBLIC + "/health/ready")
            (answered if status == 200 else failures).append((status, body[:200]))

    worker = threading.Thread(target=client)
    worker.start()
    try:
        green = dict(args, public_url=PUBLIC, verify_timeout=30)
        run = run_playbook([
            {"name": "check 1", "ops.runbooks.traffic_switch": green, "check_mode": True},
            {"name": "still blue", **uri(PUBLIC + "/version")},
            {"name": "apply 1", "ops.runbooks.traffic_switch": green},
            {"name": "now green", **uri(PUBLIC + "/version")},
            {"name": "check 2", "ops.runbooks.traffic_switch": green, "check_mode": True},
            {"name": "apply 2", "ops.runbooks.traffic_switch": green},
            {"name": "back", "ops.runbooks.traffic_switch": dict(args, to="blue", public_url=PUBLIC)},
            {"name": "blue again", **uri(PUBLIC + "/version")},
        ], diff=True)
    finally:
        stop.set()
        worker.join()
    check1, still_blue, apply1, now_green, check2, apply2, back, blue_again = run.results

    assert check1.changed and check1["active_slot"] == "green" and check1["previous_slot"] == "blue", check1
    assert "from blue (app_blue) to green (app_green)" in check1["plan"][0]
    assert check1["diff"] == {"before": {"active_slot": "blue", "service": "app_blue"},
                              "after": {"active_slot": "green", "service": "app_green"}}
    assert still_blue["json"]["slot"] == "blue"
    assert apply1.changed and apply1["active_slot"] == "green", apply1
    assert apply1["verification"]["healthy"] and len(apply1["verification"]["targets"]) == 2
    assert now_green["json"]["slot"] == "green"
    assert not check2.changed and check2["plan"] == [] and not apply2.changed, (check2, apply2)
    assert back.changed and blue_again["json"]["slot"] == "blue", back
    assert failures == [] and answered, failures[:5]
    assert slot_file.stat().st_mode == mode
    assert b"set $active_slot app_blue;" in slot_file.read_bytes()


@pytest.fixture()
def green_stopped(compose_lab):
    """Green's containers stopped (a broken slot); started again and waited healthy after the test."""
    compose_lab.compose("stop", "app_green")
    yield
    compose_lab.compose("start", "app_green")
    wait_for(lambda: green_healthy(compose_lab), 90, "green's containers healthy again")


def green_healthy(compose_lab):
    green = [c for c in compose_lab.containers() if c["Service"] == "app_green"]
    return green and all(c["State"] == "running" and c["Health"] == "healthy" for c in green)


def test_broken_green_is_refused_and_a_forced_switch_comes_back_to_blue(slot_file, green_stopped, args):
    before = slot_file.read_bytes()
    run = run_playbook([
        {"ops.runbooks.traffic_switch": args},
        {"ops.runbooks.traffic_switch": dict(args, force=True, public_url=PUBLIC, verify_timeout=3)},
        uri(PUBLIC + "/version"),
    ])
    refused, forced, answer = run.results

    assert refused.failed and "switching traffic to green refused: app_green is not serving" in refused["msg"]
    assert "traffic stays on blue" in refused["msg"] and "force=true" in refused["msg"], refused
    assert forced.failed and "verification failed" in forced["msg"], forced
    assert forced["msg"].endswith("switched back: traffic is back on blue"), forced["msg"]
    assert forced["rolled_back"] == ["switched public traffic back to blue (app_blue)"]
    assert forced["verification"]["healthy"] is False
    assert answer["json"]["slot"] == "blue"
    assert slot_file.read_bytes() == before


def test_check_mode_changes_neither_the_file_nor_nginx(slot_file, args):
    before = slot_file.read_bytes(), slot_file.stat().st_ino, public_slot()
    res = run_module("traffic_switch", dict(args, public_url=PUBLIC), check=True)
    assert res.changed and res["active_slot"] == "green" and res["plan"], res
    assert "verification" not in res
    assert (slot_file.read_bytes(), slot_file.stat().st_ino, public_slot()) == before == (before[0], before[1], "blue")


def test_bad_input_is_rejected_before_anything_changes(slot_file, compose_platform, args):
    before = slot_file.read_bytes()
    no_slots = dict(compose_platform, platform_settings={k: v for k, v in compose_platform["platform_settings"].items()
                                                         if k != "slots"}, to="green")
    cases = [
        ({k: v for k, v in args.items() if k != "to"}, "missing required arguments: to"),
        (dict(args, to="purple"), "to: 'purple' is not a slot of platform_settings.slots; choose one of blue, green"),
        (dict(args, to="green; nginx -s stop"), "to: 'green; nginx -s stop' is not a slot"),
        (dict(args, force="maybe"), "force"),
        (dict(args, verify_timeout="soon"), "verify_timeout: 'soon' is not a duration"),
        (dict(args, health_path="health"), "health_path: 'health' must be a path starting with '/'"),
        (dict(args, public_url="ftp://example.com"), "public_url[0].url: 'ftp://example.com/health/ready' is not"),
        (no_slots, "platform_settings.slots: needs at least two slots"),
        (dict(args, platform="kubernetes"), "platform"),
    ]
    run = run_playbook([{"ops.runbooks.traffic_switch": a} for a, _ in cases])
    for (_a, needle), res in zip(cases, run.results, strict=True):
        assert res.failed and needle in res["msg"], (needle, res.get("msg"))
    assert slot_file.read_bytes() == before and public_slot() == "blue"
