# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Kubernetes API (through the ``kubernetes`` Python client) for one namespace.

The only place the k8s backend talks to the API server; its capability mixins go through ``K8sClient``, which
returns plain dicts (the API's JSON) and turns every API error into a RunbookError naming the operation.
"""

from __future__ import annotations

import traceback

from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s.settings import k8s_settings
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError

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
