# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Documents the options added by module_utils._common.argspec.verify_argspec() (DOCUMENTATION) and the
# targets of health_check (TARGETS). Both list the fields of module_utils._common._probes.probe_options();
# the two lists are the same but for retries and retry_delay (tests/unit/test_probes.py checks it), and
# are written out twice because ansible-test wants every documentation string as a literal.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  verify:
    description:
      - Probes that prove the change worked, run concurrently right after it. Nothing is probed in check mode
        or when nothing changed.
      - A failed probe is checked again every C(retry_delay) until it passes or O(verify_timeout) runs out.
      - When a probe still fails, the module fails with every probe's result in C(verification) and undoes the
        change where it can.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Name of the target in results and messages.
          - Defaults to the URL for V(http), otherwise the type and address, such as C(tcp db.example.com:5432).
        type: str
      type:
        description:
          - What to check. Required. Each type takes the fields marked with its name below and rejects others.
          - V(http) - an HTTP or HTTPS URL answers with one of the expected statuses and, optionally, a body that
            matches a pattern.
          - V(tcp) - a port accepts connections.
          - V(postgres) - a PostgreSQL server accepts the login and, optionally, a query returns true.
          - V(redis) - a Redis server accepts the credentials and answers PING.
          - V(tls) - a TLS server completes the handshake and its certificate is valid for at least C(min_days)
            more days; its subject, issuer, names and expiry are returned.
          - V(compose) - at least C(min_healthy) replicas of a Compose service run and pass their health check.
          - V(k8s) - a Kubernetes Deployment is Available and at least C(min_healthy) of its pods are Ready.
          - V(command) - a program run on the managed host without a shell exits with C(rc) and, optionally,
            prints output that matches C(stdout_regex).
        type: str
      retries:
        description:
          - How many times to check again after a failed check (any type).
          - Without it, a failed probe is checked again until O(verify_timeout) runs out.
        type: int
      retry_delay:
        description:
          - Seconds (or a duration such as V(500ms), V(2s)) between a failed check and the next (any type).
          - Defaults to 1 second.
        type: raw
      max_latency:
        description:
          - Seconds (or a duration such as V(250ms)) a check may take; a slower answer is a failure (any type).
        type: raw
      url:
        description:
          - Type V(http), required. The URL to request. A password in it (C(https://user:password@host/)) is
            hidden in results and in the task output.
        type: str
      method:
        description:
          - Type V(http). The request method. Defaults to V(GET).
        type: str
      status_code:
        description:
          - Type V(http). The statuses that count as healthy. Defaults to V([200]). Redirects are not followed.
        type: list
        elements: int
      body_regex:
        description:
          - Type V(http). A Python regular expression that must match somewhere in the first 64 KiB of the body.
        type: str
      headers:
        description:
          - Type V(http). Request headers. Values of headers whose name contains C(auth), C(token), C(key),
            C(secret), C(cookie) or C(password) are hidden in the task output.
        type: dict
      validate_certs:
        description:
          - Types V(http) and V(tls). Verify the server certificate and its name. Defaults to V(true).
        type: bool
      ca_cert:
        description:
          - Types V(http), V(tls) and V(postgres). File of trusted certificate authorities (PEM) used to verify the
            server certificate, instead of the system's.
        type: path
      host:
        description:
          - Types V(tcp), V(redis) and V(tls), required. Host name or address of the server.
          - Type V(postgres). Same as C(login_host).
        type: str
      port:
        description:
          - Types V(tcp) (required), V(redis) (defaults to V(6379)) and V(tls) (defaults to V(443)). The port.
          - Type V(postgres). Same as C(login_port).
        type: int
      username:
        description:
          - Type V(redis). ACL user to authenticate as; without it, C(password) authenticates the default user.
        type: str
      password:
        description:
          - Type V(redis). The password. Never returned or logged.
        type: str
      server_name:
        description:
          - Type V(tls). Name sent in the handshake (SNI) and checked against the certificate. Defaults to C(host).
        type: str
      min_days:
        description:
          - Type V(tls). Fail when the certificate expires in fewer days than this. Defaults to V(14).
        type: int
      login_host:
        description:
          - Type V(postgres). Host running the database server. Empty (the default) means the local Unix socket.
        type: str
      login_port:
        description:
          - Type V(postgres). Database port. Defaults to V(5432).
        type: int
      login_user:
        description:
          - Type V(postgres). The role to connect as. Defaults to V(postgres).
        type: str
      login_password:
        description:
          - Type V(postgres). The password of C(login_user). Never returned or logged.
        type: str
      login_unix_socket:
        description:
          - Type V(postgres). Directory of the Unix socket; wins over C(login_host) when set.
        type: str
      db:
        description:
          - Type V(postgres). Database to connect to. Defaults to V(postgres).
        type: str
      ssl_mode:
        description:
          - Type V(postgres). libpq SSL mode. Defaults to V(prefer).
        type: str
        choices: [allow, disable, prefer, require, verify-ca, verify-full]
      ssl_cert:
        description:
          - Type V(postgres). Client certificate file.
        type: path
      ssl_key:
        description:
          - Type V(postgres). Private key of C(ssl_cert).
        type: path
      connect_timeout:
        description:
          - Type V(postgres). Seconds to wait for a connection. Defaults to V(10).
        type: int
      query:
        description:
          - Type V(postgres). A query whose first column of the first row must be V(true), for example
            C(SELECT NOT pg_is_in_recovery()). It runs in a read-only transaction that is rolled back.
        type: str
      service:
        description:
          - Type V(compose), required. The Compose service whose replicas are checked, such as V(app_blue).
          - Type V(k8s), required. The Deployment (or a service name mapped to one by C(platform_settings.deployments)).
        type: str
      platform_settings:
        description:
          - Type V(compose), required. The Compose project, as the C(platform_settings) option of the modules
            takes it (C(project_name) and C(project_dir) required; C(docker_host), C(files), C(env_file)).
          - Type V(k8s), required. The cluster and namespace, as the C(platform_settings) option of the modules takes
            them for V(k8s) (C(kubeconfig), C(context), C(namespace), C(deployments)).
        type: dict
      min_healthy:
        description:
          - Type V(compose). How many replicas must run and be healthy (replicas without a health check count when
            they run). Defaults to V(1).
          - Type V(k8s). How many pods of the Deployment must be Running and Ready. Defaults to V(1).
        type: int
      argv:
        description:
          - Type V(command), required. The program and its arguments, such as V([systemctl, is-active, nginx]).
            No shell is involved, so no quoting, pipes or variables; the program must exist on the managed host.
        type: list
        elements: str
      rc:
        description:
          - Type V(command). The exit code that counts as healthy. Defaults to V(0).
        type: int
      stdout_regex:
        description:
          - Type V(command). A Python regular expression that must match somewhere in the first 64 KiB of the
            standard output.
        type: str
      timeout:
        description:
          - Type V(command). Seconds (or a duration such as V(10s)) one run may take before it is killed and counts
            as failed. Defaults to V(30).
        type: raw
  verify_timeout:
    description:
      - Seconds (or a duration such as V(90s), V(5min)) all the probes of O(verify) may take together.
    type: raw
    default: 60
"""

    TARGETS = r"""
options:
  targets:
    description:
      - The targets to check, all at once (at most O(concurrency) at a time).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - Name of the target in results and messages.
          - Defaults to the URL for V(http), otherwise the type and address, such as C(tcp db.example.com:5432).
        type: str
      type:
        description:
          - What to check. Required. Each type takes the fields marked with its name below and rejects others.
          - V(http) - an HTTP or HTTPS URL answers with one of the expected statuses and, optionally, a body that
            matches a pattern.
          - V(tcp) - a port accepts connections.
          - V(postgres) - a PostgreSQL server accepts the login and, optionally, a query returns true.
          - V(redis) - a Redis server accepts the credentials and answers PING.
          - V(tls) - a TLS server completes the handshake and its certificate is valid for at least C(min_days)
            more days; its subject, issuer, names and expiry are returned.
          - V(compose) - at least C(min_healthy) replicas of a Compose service run and pass their health check.
          - V(k8s) - a Kubernetes Deployment is Available and at least C(min_healthy) of its pods are Ready.
          - V(command) - a program run on the managed host without a shell exits with C(rc) and, optionally,
            prints output that matches C(stdout_regex).
        type: str
      retries:
        description:
          - How many times to check again after a failed check (any type).
          - Defaults to O(retries).
        type: int
      retry_delay:
        description:
          - Seconds (or a duration such as V(500ms), V(2s)) between a failed check and the next (any type).
          - Defaults to O(retry_delay).
        type: raw
      max_latency:
        description:
          - Seconds (or a duration such as V(250ms)) a check may take; a slower answer is a failure (any type).
        type: raw
      url:
        description:
          - Type V(http), required. The URL to request. A password in it (C(https://user:password@host/)) is
            hidden in results and in the task output.
        type: str
      method:
        description:
          - Type V(http). The request method. Defaults to V(GET).
        type: str
      status_code:
        description:
          - Type V(http). The statuses that count as healthy. Defaults to V([200]). Redirects are not followed.
        type: list
        elements: int
      body_regex:
        description:
          - Type V(http). A Python regular expression that must match somewhere in the first 64 KiB of the body.
        type: str
      headers:
        description:
          - Type V(http). Request headers. Values of headers whose name contains C(auth), C(token), C(key),
            C(secret), C(cookie) or C(password) are hidden in the task output.
        type: dict
      validate_certs:
        description:
          - Types V(http) and V(tls). Verify the server certificate and its name. Defaults to V(true).
        type: bool
      ca_cert:
        description:
          - Types V(http), V(tls) and V(postgres). File of trusted certificate authorities (PEM) used to verify the
            server certificate, instead of the system's.
        type: path
      host:
        description:
          - Types V(tcp), V(redis) and V(tls), required. Host name or address of the server.
          - Type V(postgres). Same as C(login_host).
        type: str
      port:
        description:
          - Types V(tcp) (required), V(redis) (defaults to V(6379)) and V(tls) (defaults to V(443)). The port.
          - Type V(postgres). Same as C(login_port).
        type: int
      username:
        description:
          - Type V(redis). ACL user to authenticate as; without it, C(password) authenticates the default user.
        type: str
      password:
        description:
          - Type V(redis). The password. Never returned or logged.
        type: str
      server_name:
        description:
          - Type V(tls). Name sent in the handshake (SNI) and checked against the certificate. Defaults to C(host).
        type: str
      min_days:
        description:
          - Type V(tls). Fail when the certificate expires in fewer days than this. Defaults to V(14).
        type: int
      login_host:
        description:
          - Type V(postgres). Host running the database server. Empty (the default) means the local Unix socket.
        type: str
      login_port:
        description:
          - Type V(postgres). Database port. Defaults to V(5432).
        type: int
      login_user:
        description:
          - Type V(postgres). The role to connect as. Defaults to V(postgres).
        type: str
      login_password:
        description:
          - Type V(postgres). The password of C(login_user). Never returned or logged.
        type: str
      login_unix_socket:
        description:
          - Type V(postgres). Directory of the Unix socket; wins over C(login_host) when set.
        type: str
      db:
        description:
          - Type V(postgres). Database to connect to. Defaults to V(postgres).
        type: str
      ssl_mode:
        description:
          - Type V(postgres). libpq SSL mode. Defaults to V(prefer).
        type: str
        choices: [allow, disable, prefer, require, verify-ca, verify-full]
      ssl_cert:
        description:
          - Type V(postgres). Client certificate file.
        type: path
      ssl_key:
        description:
          - Type V(postgres). Private key of C(ssl_cert).
        type: path
      connect_timeout:
        description:
          - Type V(postgres). Seconds to wait for a connection. Defaults to V(10).
        type: int
      query:
        description:
          - Type V(postgres). A query whose first column of the first row must be V(true), for example
            C(SELECT NOT pg_is_in_recovery()). It runs in a read-only transaction that is rolled back.
        type: str
      service:
        description:
          - Type V(compose), required. The Compose service whose replicas are checked, such as V(app_blue).
          - Type V(k8s), required. The Deployment (or a service name mapped to one by C(platform_settings.deployments)).
        type: str
      platform_settings:
        description:
          - Type V(compose), required. The Compose project, as the C(platform_settings) option of the modules
            takes it (C(project_name) and C(project_dir) required; C(docker_host), C(files), C(env_file)).
          - Type V(k8s), required. The cluster and namespace, as the C(platform_settings) option of the modules takes
            them for V(k8s) (C(kubeconfig), C(context), C(namespace), C(deployments)).
        type: dict
      min_healthy:
        description:
          - Type V(compose). How many replicas must run and be healthy (replicas without a health check count when
            they run). Defaults to V(1).
          - Type V(k8s). How many pods of the Deployment must be Running and Ready. Defaults to V(1).
        type: int
      argv:
        description:
          - Type V(command), required. The program and its arguments, such as V([systemctl, is-active, nginx]).
            No shell is involved, so no quoting, pipes or variables; the program must exist on the managed host.
        type: list
        elements: str
      rc:
        description:
          - Type V(command). The exit code that counts as healthy. Defaults to V(0).
        type: int
      stdout_regex:
        description:
          - Type V(command). A Python regular expression that must match somewhere in the first 64 KiB of the
            standard output.
        type: str
      timeout:
        description:
          - Type V(command). Seconds (or a duration such as V(10s)) one run may take before it is killed and counts
            as failed. Defaults to V(30).
        type: raw
"""
