# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of the k8s ``platform_settings`` and of Kubernetes names, without the ``kubernetes`` package.

Kept apart from ``client`` so that validating input (the k8s probe of every ``verify`` option, bad-input checks)
does not pay for importing the Kubernetes client.
"""

from __future__ import annotations

import os
import re

from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_SETTINGS = ("kubeconfig", "context", "namespace", "deployments", "slots", "traffic", "request_timeout",
             "secret_store")


def dns_label(value, param):
    """A Kubernetes object name of the DNS-1123 label kind (namespaces, Deployments, Services)."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ParameterError(param, f"{value!r} is not a Kubernetes name: lower-case letters, digits and '-', "
                                    "at most 63 characters, starting and ending with a letter or digit")
    return value


def k8s_settings(settings):
    """Check the k8s ``platform_settings`` before anything is touched; returns them with defaults."""
    s = dict(settings or {})
    unknown = sorted(set(s) - set(_SETTINGS))
    if unknown:
        raise ParameterError(f"platform_settings.{unknown[0]}", f"not a setting of platform k8s, which takes "
                                                                f"{', '.join(_SETTINGS)}")
    kubeconfig = os.path.expanduser(s.get("kubeconfig") or os.environ.get("KUBECONFIG") or "~/.kube/config")
    if not os.path.isfile(kubeconfig):
        raise ParameterError("platform_settings.kubeconfig", f"{kubeconfig!r} is not a file; give the path of a "
                                                             "kubeconfig (see inventories/aks for AKS)")
    s["kubeconfig"] = kubeconfig
    if s.get("context") is not None and (not isinstance(s["context"], str) or not s["context"]):
        raise ParameterError("platform_settings.context", "give the name of a context of the kubeconfig")
    s["namespace"] = dns_label(s.get("namespace") or "default", "platform_settings.namespace")
    deployments = s.get("deployments") or {}
    if not isinstance(deployments, dict):
        raise ParameterError("platform_settings.deployments", "a mapping {service: Deployment name}")
    for service, name in deployments.items():
        dns_label(name, f"platform_settings.deployments.{service}")
    s["deployments"] = deployments
    traffic = dict(s.get("traffic") or {})
    if traffic.get("service") is not None:
        dns_label(traffic["service"], "platform_settings.traffic.service")
    traffic.setdefault("slot_label", "slot")
    if not isinstance(traffic["slot_label"], str) or not traffic["slot_label"]:
        raise ParameterError("platform_settings.traffic.slot_label", "give the pod label that names the slot")
    s["traffic"] = traffic
    timeout = s.get("request_timeout", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ParameterError("platform_settings.request_timeout", f"seconds, greater than zero, got {timeout!r}")
    s["request_timeout"] = timeout
    return s


def label_value(value, param):
    if not isinstance(value, str) or not _LABEL_VALUE.match(value):
        raise ParameterError(param, f"{value!r} is not a valid Kubernetes label value")
    return value
