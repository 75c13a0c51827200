# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Kubernetes API (through the ``kubernetes`` Python client) for one namespace.

The only place the k8s backend talks to the API server; its capability mixins go through ``K8sClient``, which
returns plain dicts (the API's JSON) and turns every API error into a RunbookError naming the operation.
"""

from __future__ import annotations

import os
import re
import traceback

from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError

try:
    import kubernetes.client
    import kubernetes.config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError:
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()

    class ApiException(Exception):
        status = None

    class ConfigException(Exception):
        pass

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


class K8sClient:
    def __init__(self, settings):
        self.settings = k8s_settings(settings)
        self.namespace = self.settings["namespace"]
        self._api = None

    @property
    def api(self):
        if not HAS_KUBERNETES:
            raise RunbookError("the k8s platform needs the Python package 'kubernetes' on the host that runs the "
                               "module (pip install kubernetes)", exception=KUBERNETES_IMPORT_ERROR)
        if self._api is None:
            try:
                self._api = kubernetes.config.new_client_from_config(config_file=self.settings["kubeconfig"],
                                                                     context=self.settings.get("context"))
            except (ConfigException, OSError, ValueError, TypeError) as exc:
                raise RunbookError(f"loading the kubeconfig {self.settings['kubeconfig']} failed: {exc}; check "
                                   "platform_settings.kubeconfig and platform_settings.context") from None
        return self._api

    def close(self):
        if self._api is not None:
            self._api.close()
            self._api = None

    def apis(self, name):
        """A typed API group client: ``apis('CoreV1Api')``."""
        return getattr(kubernetes.client, name)(self.api)

    def call(self, what, group, method, *args, missing_ok=False, **kwargs):
        """``group.method(*args)`` as plain JSON data; RunbookError naming ``what`` on failure.

        With ``missing_ok`` a 404 returns None.
        """
        kwargs.setdefault("_request_timeout", self.settings["request_timeout"])
        if method.startswith("patch_") and args:
            # A list is a JSON patch; a dict a JSON merge patch (null removes a key), never a strategic one.
            kwargs.setdefault("_content_type", "application/json-patch+json" if isinstance(args[-1], list)
                              else "application/merge-patch+json")
        try:
            found = getattr(self.apis(group), method)(*args, **kwargs)
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return None
            raise RunbookError(f"{what} failed: {_api_reason(exc)}", status=exc.status) from None
        except (OSError, ValueError) as exc:  # urllib3 errors are OSErrors: the API server did not answer
            raise RunbookError(f"{what} failed: the API server did not answer ({exc}); check the kubeconfig's "
                               "server and the network") from None
        return self.api.sanitize_for_serialization(found) if found is not None else None

    def deployment_name(self, service):
        return self.settings["deployments"].get(service, service)

    def deployment(self, service):
        name = self.deployment_name(service)
        found = self.call(f"reading Deployment {self.namespace}/{name}", "AppsV1Api", "read_namespaced_deployment",
                          name, self.namespace, missing_ok=True)
        if found is None:
            raise RunbookError(f"namespace {self.namespace} has no Deployment {name!r}; check service (and "
                               "platform_settings.deployments / namespace)", parameter="service")
        return found

    def pods(self, selector=None, field_selector=None):
        kwargs = {"label_selector": selector} if selector else {}
        if field_selector:
            kwargs["field_selector"] = field_selector
        return self.call(f"listing pods in {self.namespace}", "CoreV1Api", "list_namespaced_pod", self.namespace,
                         **kwargs)["items"]


def selector_string(selector):
    """A Deployment's ``matchLabels`` (and simple ``matchExpressions``) as a label selector string."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        values = ",".join(expr.get("values") or [])
        op = expr["operator"]
        if op == "In":
            parts.append(f"{expr['key']} in ({values})")
        elif op == "NotIn":
            parts.append(f"{expr['key']} notin ({values})")
        elif op == "Exists":
            parts.append(expr["key"])
        elif op == "DoesNotExist":
            parts.append(f"!{expr['key']}")
    return ",".join(parts)


def _api_reason(exc):
    import json

    try:
        body = json.loads(exc.body or "{}")
        message = body.get("message")
    except ValueError:
        message = None
    text = message or exc.reason or str(exc)
    hint = {401: "; the credentials of the kubeconfig were refused",
            403: "; the kubeconfig's user lacks the RBAC permission"}.get(exc.status, "")
    return f"{exc.status} {text}{hint}"
