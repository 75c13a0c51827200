"""The k8s platform and k8s_state_backup: bad input is refused before the cluster is contacted, naming the
parameter; and the pure pieces (manifest cleaning, revision ids, rollout status, encryption)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s import state
from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s.settings import k8s_settings
from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s.workloads import rollout_status, template_id
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes import parse_targets
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.k8s_state_backup import decrypt, encrypt
from tests.helpers.ansible import run_playbook
from tests.helpers.servers import closed_port


@pytest.fixture()
def kubeconfig(tmp_path):
    """A kubeconfig whose server nothing listens on: any contact with it would fail differently."""
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{closed_port()}",
                                                "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return str(path)


@pytest.mark.parametrize("settings, param", [
    ({"namespace": "Bad_Namespace"}, "platform_settings.namespace"),
    ({"kubeconfig": "/nonexistent/kubeconfig"}, "platform_settings.kubeconfig"),
    ({"namespce": "shop"}, "platform_settings.namespce"),
    ({"request_timeout": 0}, "platform_settings.request_timeout"),
    ({"deployments": {"api": "API_v2"}}, "platform_settings.deployments.api"),
    ({"traffic": {"service": "app", "slot_label": ""}}, "platform_settings.traffic.slot_label"),
    ({"context": ""}, "platform_settings.context"),
])
def test_platform_settings_refused(kubeconfig, settings, param):
    with pytest.raises(ParameterError) as err:
        k8s_settings(dict({"kubeconfig": kubeconfig}, **settings))
    assert err.value.param == param


def test_platform_settings_defaults(kubeconfig):
    s = k8s_settings({"kubeconfig": kubeconfig})
    assert s["namespace"] == "default" and s["traffic"]["slot_label"] == "slot" and s["request_timeout"] == 30


def test_k8s_probe_names_its_field(kubeconfig):
    with pytest.raises(ParameterError) as err:
        parse_targets([{"type": "k8s", "service": "api", "platform_settings": {"kubeconfig": kubeconfig,
                                                                                "namespace": "NO"}}], "verify")
    assert err.value.param == "verify[0].platform_settings.namespace"
    with pytest.raises(ParameterError) as err:
        parse_targets([{"type": "k8s", "service": "api", "platform_settings": {"kubeconfig": kubeconfig},
                        "min_healthy": 0}], "targets")
    assert err.value.param == "targets[0].min_healthy"


def test_bad_input_of_the_modules_names_the_parameter(kubeconfig, tmp_path):
    """Through real ansible-playbook; the kubeconfig's server is closed, so each message shows the input was
    refused before any API call."""
    platform = {"platform": "k8s", "platform_settings": {"kubeconfig": kubeconfig, "namespace": "shop",
                                                         "slots": {"blue": "app-blue", "green": "app-green"}}}
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        ("ops.runbooks.k8s_state_backup", {"dest": str(tmp_path), "namespace": "Shop!",
                                           "platform_settings": {"kubeconfig": kubeconfig}}, "namespace"),
        ("ops.runbooks.k8s_state_backup", {"dest": str(tmp_path), "kinds": ["Deployment", "Secret"],
                                           "platform_settings": {"kubeconfig": kubeconfig}}, "kinds[1]"),
        ("ops.runbooks.k8s_state_backup", {"dest": str(tmp_path), "secrets": "encrypted",
                                           "platform_settings": {"kubeconfig": kubeconfig}},
         "encryption_passphrase"),
        ("ops.runbooks.k8s_state_backup", {"dest": str(tmp_path), "secrets": "encrypted",
                                           "encryption_passphrase": "short",
                                           "platform_settings": {"kubeconfig": kubeconfig}},
         "encryption_passphrase"),
        ("ops.runbooks.k8s_state_backup", {"dest": str(tmp_path), "encryption_passphrase": "long enough passphrase",
                                           "platform_settings": {"kubeconfig": kubeconfig}},
         "encryption_passphrase"),
        ("ops.runbooks.k8s_state_backup", {"dest": str(a_file), "platform_settings": {"kubeconfig": kubeconfig}},
         "dest"),
        ("ops.runbooks.k8s_state_backup", {"dest": str(tmp_path), "secrets": "all",
                                           "platform_settings": {"kubeconfig": kubeconfig}}, "secrets"),
        ("ops.runbooks.app_scale", dict(platform, service="api", autoscaling={"min_replicas": 3, "max_replicas": 2}),
         "autoscaling.max_replicas"),
        ("ops.runbooks.app_scale", dict(platform, service="api", autoscaling={
            "min_replicas": 1, "max_replicas": 2, "target_cpu_utilization": 0}), "autoscaling.target_cpu_utilization"),
        ("ops.runbooks.app_scale", dict(platform, service="api", replicas=2,
                                        autoscaling={"min_replicas": 1, "max_replicas": 2}), "autoscaling"),
        ("ops.runbooks.app_scale", dict(platform, service="api", replicas=-1), "replicas"),
        ("ops.runbooks.app_restart", dict(platform, service="api", platform_settings=dict(
            platform["platform_settings"], namespace="Not_A_Namespace")), "platform_settings.namespace"),
        ("ops.runbooks.traffic_switch", dict(platform, to="green"), "platform_settings.traffic.service"),
        ("ops.runbooks.traffic_switch", dict(platform, to="purple", platform_settings=dict(
            platform["platform_settings"], traffic={"service": "app"})), "to"),
        ("ops.runbooks.app_rollback", dict(platform, service="api", to_revision="3"), "to_revision"),
        ("ops.runbooks.cleanup", dict(platform, keep_images=-1), "keep_images"),
        ("ops.runbooks.evidence_collect", dict(platform, dest=str(tmp_path), since="yesterday"), "since"),
        ("ops.runbooks.health_check", {"targets": [{"type": "k8s", "service": "api", "platform_settings": {
            "kubeconfig": "/nonexistent"}}]}, "targets[0].platform_settings.kubeconfig"),
    ]
    run = run_playbook([{module: args} for module, args, _param in cases])
    for (module, args, param), result in zip(cases, run.results, strict=True):
        assert result.failed, (module, args, result)
        assert param in result["msg"], (module, param, result["msg"])
        assert "did not answer" not in result["msg"] and "Connection refused" not in result["msg"], result["msg"]


def test_clean_drops_what_the_cluster_fills_in():
    service = {"metadata": {"name": "app", "namespace": "shop", "uid": "u", "resourceVersion": "7",
                            "creationTimestamp": "t", "managedFields": [{}],
                            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
               "spec": {"clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"], "selector": {"slot": "blue"}},
               "status": {"loadBalancer": {}}}
    clean = state.clean("Service", "v1", service)
    assert clean == {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app", "namespace": "shop"},
                     "spec": {"selector": {"slot": "blue"}}}
    assert service["metadata"]["uid"] == "u", "the input must not be changed"


def test_revision_id_ignores_the_controller_label():
    template = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "a", "image": "a:1"}]}}
    labelled = {"metadata": {"labels": {"app": "a", "pod-template-hash": "5d8f"}},
                "spec": {"containers": [{"name": "a", "image": "a:1"}]}}
    other = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "a", "image": "a:2"}]}}
    assert template_id(template) == template_id(labelled) != template_id(other)
    assert len(template_id(template)) == 12 and int(template_id(template), 16) >= 0


@pytest.mark.parametrize("status, complete, words", [
    ({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}, True, "rolled out"),
    ({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}, False, "generation"),
    ({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}, False, "old replicas"),
    ({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 2}, False, "new replicas"),
    ({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}, False, "available"),
    ({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2, "conditions": [
        {"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "too slow"}]}, False, "deadline"),
])
def test_rollout_status(status, complete, words):
    deployment = {"metadata": {"name": "api", "generation": 2}, "spec": {"replicas": 2}, "status": status}
    done, message = rollout_status(deployment)
    assert done is complete and words in message


def test_encryption_round_trip_and_wrong_passphrase():
    from cryptography.exceptions import InvalidTag

    sealed = encrypt(b'{"password": "hunter2-value"}', "a long passphrase")
    assert b"hunter2" not in sealed
    assert decrypt(sealed, "a long passphrase") == b'{"password": "hunter2-value"}'
    with pytest.raises(InvalidTag):
        decrypt(sealed, "another passphrase")
