"""app_restart, app_scale, traffic_switch and app_rollback on the Kubernetes lab (a real API server,
controller manager and scheduler; kwok nodes)."""

from __future__ import annotations

from tests.helpers.ansible import run_module, run_playbook
from tests.helpers.k8s import (
    call,
    deployment,
    dumps,
    k8s_platform,
    patch_template,
    pods,
    resource_versions,
    rolled_out,
    wait_for,
)

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def four_steps(module, args, lab, ns):
    """Check mode predicts a change and changes nothing; apply; check mode predicts nothing; apply is a no-op."""
    before = resource_versions(lab, ns)
    check1, apply1, check2, apply2 = run_playbook(
        [{module: args, "check_mode": True}, {module: args}, {module: args, "check_mode": True}, {module: args}]
    ).results
    assert not check1.failed and check1.changed and check1["plan"], dumps(check1)
    assert not apply1.failed and apply1.changed, dumps(apply1)
    assert not check2.failed and not check2.changed and check2["plan"] == [], dumps(check2)
    assert not apply2.failed and not apply2.changed and apply2["plan"] == [], dumps(apply2)
    return before, check1, apply1


def test_app_scale_four_steps(k8s_lab, k8s_namespace):
    ns = k8s_namespace
    args = dict(k8s_platform(k8s_lab, ns), service="app-green", replicas=3, wait_timeout=90)
    before, check, apply = four_steps("ops.runbooks.app_scale", args, k8s_lab, ns)
    assert check["replicas_before"] == 2 and check["replicas"] == 3
    assert apply["replicas"] == 3 and apply["healthy"] == 3, dumps(apply)
    assert deployment(k8s_lab, ns, "app-green")["spec"]["replicas"] == 3
    assert len(pods(k8s_lab, ns, "slot=green")) == 3
    # Scaling down keeps the count exact too.
    down = run_module("ops.runbooks.app_scale", dict(args, replicas=1))
    assert down.changed and down["replicas"] == 1 and down["healthy"] == 1, dumps(down)


def test_app_scale_autoscaler_four_steps(k8s_lab, k8s_namespace):
    ns = k8s_namespace
    hpa = f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/app-blue"
    args = dict(k8s_platform(k8s_lab, ns), service="app-blue", wait_timeout=120,
                autoscaling={"min_replicas": 3, "max_replicas": 5, "target_cpu_utilization": 60})
    check = run_module("ops.runbooks.app_scale", args, check=True)
    assert check.changed and check["autoscaling_before"] is None, dumps(check)
    assert k8s_lab.api("GET", hpa)[0] == 404, "check mode created the autoscaler"
    _before, _check, apply = four_steps("ops.runbooks.app_scale", args, k8s_lab, ns)
    found = call(k8s_lab, "GET", hpa)["spec"]
    assert (found["minReplicas"], found["maxReplicas"]) == (3, 5), found
    assert found["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    # The autoscaler (the real HPA controller) raised the Deployment to its minimum; the module waited for it.
    assert apply["replicas"] == 3 and apply["healthy"] == 3, dumps(apply)


def test_app_restart_replaces_every_pod_by_a_rollout(k8s_lab, k8s_namespace):
    ns = k8s_namespace
    args = dict(k8s_platform(k8s_lab, ns), service="app-blue", replica_timeout=60)
    old, green = pods(k8s_lab, ns, "slot=blue"), pods(k8s_lab, ns, "slot=green")
    before = resource_versions(k8s_lab, ns)
    check = run_module("ops.runbooks.app_restart", args, check=True)
    assert check.changed and sorted(check["would_restart"]) == old and check["restarted"] == [], dumps(check)
    assert resource_versions(k8s_lab, ns) == before, "check mode changed something"

    result = run_module("ops.runbooks.app_restart", args)
    assert not result.failed and result.changed, dumps(result)
    restarted = result["restarted"][0]
    assert sorted(restarted["replaced"]) == old
    new = pods(k8s_lab, ns, "slot=blue")
    assert len(new) == 2 and not set(new) & set(old), (old, new)
    assert sorted(restarted["replicas"]) == new
    d = rolled_out(k8s_lab, ns, "app-blue")
    assert d and RESTARTED_AT in d["spec"]["template"]["metadata"]["annotations"]
    assert pods(k8s_lab, ns, "slot=green") == green, "the other slot was left alone"


def test_restart_that_never_becomes_ready_is_rolled_back(k8s_lab, k8s_namespace):
    """A quota leaves no room for the surge pod, so the rollout cannot progress: the restart is undone and the
    Deployment is back on its previous revision with its old pods."""
    ns = k8s_namespace
    call(k8s_lab, "POST", f"/api/v1/namespaces/{ns}/resourcequotas",
         {"metadata": {"name": "no-room"}, "spec": {"hard": {"pods": "4"}}})
    wait_for(lambda: (call(k8s_lab, "GET", f"/api/v1/namespaces/{ns}/resourcequotas/no-room").get("status") or {})
             .get("used", {}).get("pods") == "4", what="the quota controller to count the pods")
    old = pods(k8s_lab, ns, "slot=blue")
    result = run_module("ops.runbooks.app_restart", dict(k8s_platform(k8s_lab, ns), service="app-blue",
                                                         replica_timeout=5))
    assert result.failed, dumps(result)
    assert "did not complete" in result["msg"] and "the restart was undone" in result["msg"], result["msg"]
    assert result["rolled_back"], dumps(result)
    d = wait_for(lambda: rolled_out(k8s_lab, ns, "app-blue"), what="app-blue back on its revision")
    assert RESTARTED_AT not in (d["spec"]["template"]["metadata"].get("annotations") or {})
    assert pods(k8s_lab, ns, "slot=blue") == old


def test_traffic_switch_four_steps_and_endpoints(k8s_lab, k8s_namespace):
    ns = k8s_namespace
    args = dict(k8s_platform(k8s_lab, ns), to="green", verify_timeout=60)
    _before, check, apply = four_steps("ops.runbooks.traffic_switch", args, k8s_lab, ns)
    assert check["active_slot"] == "green" and check["previous_slot"] == "blue"
    selector = call(k8s_lab, "GET", f"/api/v1/namespaces/{ns}/services/app")["spec"]["selector"]
    assert selector == {"app": "app", "slot": "green"}
    green = pods(k8s_lab, ns, "slot=green")
    assert sorted(e["pod"] for e in apply["routing"]["endpoints"]) == green, dumps(apply)


def test_traffic_switch_back_when_the_endpoints_do_not_serve(k8s_lab, k8s_namespace):
    ns = k8s_namespace
    call(k8s_lab, "PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/app-green", {"spec": {"replicas": 0}})
    wait_for(lambda: not pods(k8s_lab, ns, "slot=green"), what="app-green to have no pod")
    refused = run_module("ops.runbooks.traffic_switch", dict(k8s_platform(k8s_lab, ns), to="green"))
    assert refused.failed and "refused" in refused["msg"], dumps(refused)
    forced = run_module("ops.runbooks.traffic_switch", dict(k8s_platform(k8s_lab, ns), to="green", force=True,
                                                            verify_timeout=5))
    assert forced.failed and "does not serve slot green" in forced["msg"] and "switched back" in forced["msg"], \
        dumps(forced)
    selector = call(k8s_lab, "GET", f"/api/v1/namespaces/{ns}/services/app")["spec"]["selector"]
    assert selector["slot"] == "blue"


def test_app_rollback_four_steps(k8s_lab, k8s_namespace):
    ns = k8s_namespace
    platform = k8s_platform(k8s_lab, ns)
    history = run_module("ops.runbooks.app_rollback", dict(platform, service="app-blue", steps_back=0))
    assert not history.failed and not history.changed, dumps(history)
    first = history["revision"]
    patch_template(k8s_lab, ns, "app-blue", {"spec": {"containers": [{"name": "app", "image": "ops-runbooks/app:2"}]}})
    wait_for(lambda: rolled_out(k8s_lab, ns, "app-blue"), what="app-blue on app:2")

    args = dict(platform, service="app-blue", to_revision=first["id"], wait_timeout=90)
    _before, check, apply = four_steps("ops.runbooks.app_rollback", args, k8s_lab, ns)
    assert check["previous_revision"]["image"] == "ops-runbooks/app:2"
    assert check["target_revision"]["id"] == first["id"]
    assert apply["revision"]["id"] == first["id"] and apply["revision"]["image"] == "ops-runbooks/app:1"
    d = rolled_out(k8s_lab, ns, "app-blue")
    assert d and d["spec"]["template"]["spec"]["containers"][0]["image"] == "ops-runbooks/app:1"
    # The previous revision is one step back, recorded by Kubernetes itself.
    back = run_module("ops.runbooks.app_rollback", dict(platform, service="app-blue", steps_back=1), check=True)
    assert back.changed and back["target_revision"]["image"] == "ops-runbooks/app:2", dumps(back)


def test_rollout_that_never_becomes_ready_is_rolled_back_to_the_previous_revision(k8s_lab, k8s_namespace):
    ns = k8s_namespace
    platform = k8s_platform(k8s_lab, ns)
    # A revision whose pods no node can take (a node selector no kwok node matches).
    patch_template(k8s_lab, ns, "app-blue", {"spec": {"containers": [{"name": "app", "image": "ops-runbooks/app:2"}],
                                                      "nodeSelector": {"ops-runbooks/missing": "yes"}}})
    wait_for(lambda: len(call(k8s_lab, "GET", f"/apis/apps/v1/namespaces/{ns}/replicasets?labelSelector=slot%3Dblue")
                          ["items"]) == 2, what="the stuck revision's ReplicaSet")
    stuck = run_module("ops.runbooks.app_rollback", dict(platform, service="app-blue", steps_back=0))
    bad = stuck["revision"]
    # Back to the good template: the Deployment controller reuses the first ReplicaSet.
    patch_template(k8s_lab, ns, "app-blue", {"spec": {"containers": [{"name": "app", "image": "ops-runbooks/app:1"}],
                                                      "nodeSelector": None}})
    good = wait_for(lambda: rolled_out(k8s_lab, ns, "app-blue"), what="app-blue back on app:1")
    old_pods = pods(k8s_lab, ns, "slot=blue")

    result = run_module("ops.runbooks.app_rollback", dict(platform, service="app-blue", to_revision=bad["id"],
                                                          wait_timeout=8))
    assert result.failed, dumps(result)
    assert "timed out" in result["msg"] and "is back on revision" in result["msg"], result["msg"]
    assert result["rolled_back"], dumps(result)
    d = wait_for(lambda: rolled_out(k8s_lab, ns, "app-blue"), what="app-blue on its previous revision")
    assert d["spec"]["template"] == good["spec"]["template"]
    assert pods(k8s_lab, ns, "slot=blue") == old_pods, "the pods that served were kept throughout"
