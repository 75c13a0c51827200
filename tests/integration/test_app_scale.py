"""app_scale against the Compose lab: four steps from 1 to 2 replicas of app_green and back; rollback; bad input."""

from __future__ import annotations

import docker
import pytest

from tests.helpers.ansible import dumps, four_steps, run_playbook

pytestmark = pytest.mark.integration


def green(compose_lab):
    """{name: (id, state, health)} of app_green's containers, read from Docker directly."""
    client = docker.from_env()
    try:
        found = client.containers.list(all=True, filters={"label": [
            f"com.docker.compose.project={compose_lab.project}", "com.docker.compose.service=app_green"]})
        return {c.name: (c.id, c.attrs["State"]["Status"], (c.attrs["State"].get("Health") or {}).get("Status"))
                for c in found}
    finally:
        client.close()


@pytest.fixture()
def restore_green(compose_lab, compose_platform):
    """Puts app_green back to its replica count when the test ends, whatever happened."""
    count = len(green(compose_lab))
    yield count
    compose_lab.compose("up", "--detach", "--no-deps", "--no-recreate", "--wait", "--wait-timeout", "120",
                        "--scale", f"app_green={count}", "app_green", timeout=180)


def test_four_steps_up_and_back(compose_lab, compose_platform, restore_green):
    assert restore_green == 1, "the lab runs one app_green replica"
    args = dict(compose_platform, service="app_green", wait_timeout=120)
    first = green(compose_lab)
    check, apply, check2, apply2 = four_steps("app_scale", dict(args, replicas=2))
    assert check.changed and check["plan"] == ["scale app_green from 1 to 2 replicas"], dumps(check)
    assert check["replicas_before"] == 1 and check["replicas"] == 2
    assert check["diff"] == {"before": {"replicas": 1, "running": 1, "healthy": 1},
                             "after": {"replicas": 2, "running": 2, "healthy": 2}}, dumps(check)
    assert apply.changed and apply["replicas"] == 2 and apply["healthy"] == 2, dumps(apply)
    assert not check2.changed and check2["plan"] == [], dumps(check2)
    assert not apply2.changed, dumps(apply2)
    scaled = green(compose_lab)
    assert len(scaled) == 2, scaled
    assert all(state == "running" and health == "healthy" for _id, state, health in scaled.values()), scaled
    # The replica that ran was kept, not recreated.
    assert {v[0] for v in first.values()} <= {v[0] for v in scaled.values()}, (first, scaled)

    check, apply, check2, apply2 = four_steps("app_scale", dict(args, replicas=1))
    assert check.changed and check["plan"] == ["scale app_green from 2 to 1 replicas"], dumps(check)
    assert apply.changed and apply["replicas"] == 1, dumps(apply)
    assert not check2.changed and not apply2.changed, dumps([check2, apply2])
    assert len(green(compose_lab)) == 1


def test_check_mode_changes_nothing(compose_lab, compose_platform, restore_green):
    before = green(compose_lab)
    results = run_playbook([{"ops.runbooks.app_scale": dict(compose_platform, service="app_green", replicas=n),
                             "check_mode": True} for n in (0, 3)]).results
    assert [r["plan"] for r in results] == [[f"scale app_green from {restore_green} to {n} replicas"]
                                            for n in (0, 3)], dumps(results)
    assert green(compose_lab) == before


def test_not_healthy_in_time_scales_back(compose_lab, compose_platform, restore_green):
    # A verify probe that cannot pass (more healthy replicas than asked for) makes the new count fail its proof.
    settings = compose_platform["platform_settings"]
    result = run_playbook([{"ops.runbooks.app_scale": dict(
        compose_platform, service="app_green", replicas=restore_green + 1, verify_timeout=3,
        verify=[{"type": "compose", "service": "app_green", "platform_settings": settings,
                 "min_healthy": restore_green + 5, "retry_delay": 1}])}]).results[0]
    assert result.failed and "verification failed" in result["msg"], dumps(result)
    assert result["rolled_back"] == [f"scaled app_green back to {restore_green} replicas"], dumps(result)
    assert len(green(compose_lab)) == restore_green


def test_bad_input_names_the_parameter(compose_lab, compose_platform):
    before = green(compose_lab)
    cases = [
        (dict(compose_platform, replicas=2), "service"),
        (dict(compose_platform, service="app_green"), "replicas"),
        (dict(compose_platform, service="no_such_service", replicas=1), "service"),
        (dict(compose_platform, service="app_green", replicas=-1), "replicas"),
        (dict(compose_platform, service="app_green", replicas="two"), "replicas"),
        (dict(compose_platform, service="app_green", replicas=2, wait_timeout=-3), "wait_timeout"),
        (dict(compose_platform, service="app_green", replicas=2, platform="nomad"), "platform"),
    ]
    results = run_playbook([{"ops.runbooks.app_scale": args} for args, _ in cases]).results
    for (_args, param), result in zip(cases, results, strict=True):
        assert result.failed, (param, dumps(result))
        assert param in result["msg"], (param, result["msg"])
    assert green(compose_lab) == before
