"""Kubernetes lab: a real control plane on loopback with fake nodes.

    python -m lab.k8s up     [--dir DIR]
    python -m lab.k8s down   [--dir DIR] [--purge]
    python -m lab.k8s status [--dir DIR]
    python -m lab.k8s env    [--dir DIR]      # export KUBECONFIG=...

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the upstream programs, built once per
machine from sources by ``lab.k8s_build`` (``up`` builds them first when the cache does not hold them yet).
kwok plays the kubelets: it keeps the nodes of ``NODES`` Ready and moves pods bound to them through their
life (Pending -> Running and Ready, Job pods -> Succeeded, deleted pods gone). Pods run no containers, so
there are no logs and no readiness probes to run; everything the API server, the controllers and the
scheduler do is real.

The certificates (a CA, the API server's serving certificate, one client certificate per component) and the
service-account signing key are generated at the first ``up`` and kept 0600 in the state directory; the
administrator's kubeconfig (``kubeconfig``, user in ``system:masters``) embeds them. Idempotent like the other
labs: ``up`` starts only what does not run and then waits (bounded) for ``/readyz`` and Ready nodes, ``down``
stops every process it started (the data stays unless ``--purge``).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lab import k8s_build
from lab._daemon import alive

DEFAULT_DIR = Path(os.environ.get("OPS_RUNBOOKS_LAB_DIR", "/tmp/ops-runbooks-lab")) / "k8s"
HOST = "127.0.0.1"
PORTS = {"etcd": 57379, "etcd-peer": 57380, "kube-apiserver": 57443, "kube-controller-manager": 57257,
         "kube-scheduler": 57259, "kwok": 57247}
# In start order; stopped in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
NODES = ("kwok-node-1", "kwok-node-2")
KUBELET_PORT = 57250
SERVICE_CIDR = "10.96.0.0/24"
POD_CIDR = "10.244.0.0/16"
NODE_ANNOTATION = "kwok.x-k8s.io/node"
# Client certificates: (file stem, common name, organisation). Every component is in system:masters: the lab
# tests runbooks, not the control plane's RBAC bootstrap.
CLIENTS = (("admin", "ops-runbooks-admin", "system:masters"),
           ("kube-controller-manager", "system:kube-controller-manager", "system:masters"),
           ("kube-scheduler", "system:kube-scheduler", "system:masters"),
           ("kwok", "kwok-controller", "system:masters"))


@dataclass
class K8sLab:
    base: str
    bin: str
    stages: str
    ports: dict = field(default_factory=lambda: dict(PORTS))
    nodes: list = field(default_factory=lambda: list(NODES))

    # -- files ------------------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return Path(self.base)

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{HOST}:{self.ports['kube-apiserver']}"

    def pidfile(self, component: str) -> Path:
        return self.dir / "run" / f"{component}.pid"

    def logfile(self, component: str) -> Path:
        return self.dir / "log" / f"{component}.log"

    def save(self) -> None:
        f = self.dir / "lab.json"
        f.write_text(json.dumps(asdict(self), indent=2))
        f.chmod(0o600)

    @classmethod
    def load(cls, base):
        f = Path(base) / "lab.json"
        return cls(**json.loads(f.read_text())) if f.exists() else None

    # -- processes --------------------------------------------------------------------------------
    def pid(self, component: str) -> int | None:
        try:
            pid = int(self.pidfile(component).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if alive(pid) else None

    def running(self) -> dict[str, bool]:
        return {c: self.pid(c) is not None for c in COMPONENTS}

    def argv(self, component: str) -> list[str]:
        d, p, b = self.dir, self.ports, Path(self.bin)
        pki = d / "pki"
        if component == "etcd":
            return [str(b / "etcd"), "--name", "lab", "--data-dir", str(d / "etcd"),
                    "--listen-client-urls", f"http://{HOST}:{p['etcd']}",
                    "--advertise-client-urls", f"http://{HOST}:{p['etcd']}",
                    "--listen-peer-urls", f"http://{HOST}:{p['etcd-peer']}",
                    "--initial-advertise-peer-urls", f"http://{HOST}:{p['etcd-peer']}",
                    "--initial-cluster", f"lab=http://{HOST}:{p['etcd-peer']}",
                    "--log-level", "warn",
                    # A throwaway lab on a shared disk: losing the last writes on a power cut does not matter.
                    "--unsafe-no-fsync", "--quota-backend-bytes", str(2 * 1024 ** 3)]
        if component == "kube-apiserver":
            return [str(b / "kube-apiserver"), f"--etcd-servers=http://{HOST}:{p['etcd']}",
                    f"--bind-address={HOST}", f"--advertise-address={HOST}", f"--secure-port={p['kube-apiserver']}",
                    f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
                    f"--client-ca-file={pki / 'ca.crt'}",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    "--service-account-issuer=https://kubernetes.default.svc",
                    f"--service-cluster-ip-range={SERVICE_CIDR}", "--authorization-mode=Node,RBAC",
                    "--allow-privileged=true", "--enable-priority-and-fairness=false", "--profiling=false",
                    "--event-ttl=2h", "--v=0"]
        kubeconfig = d / f"{component}.kubeconfig"
        if component == "kube-controller-manager":
            return [str(b / component), f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
                    f"--authorization-kubeconfig={kubeconfig}", f"--bind-address={HOST}",
                    f"--secure-port={p[component]}", f"--service-account-private-key-file={pki / 'sa.key'}",
                    f"--root-ca-file={pki / 'ca.crt'}", f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                    f"--cluster-signing-key-file={pki / 'ca.key'}", f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--leader-elect=false", "--use-service-account-credentials=false", "--profiling=false", "--v=0"]
        if component == "kube-scheduler":
            return [str(b / component), f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
                    f"--authorization-kubeconfig={kubeconfig}", f"--bind-address={HOST}",
                    f"--secure-port={p[component]}", "--leader-elect=false", "--profiling=false", "--v=0"]
        if component == "kwok":
            return [str(b / "kwok"), f"--kubeconfig={kubeconfig}", f"--config={self.stages}",
                    f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
                    f"--server-address={HOST}:{p['kwok']}", f"--cidr={POD_CIDR}", "--node-lease-duration-seconds=40",
                    # The nodes' kubelet address: nothing listens there, so a request for logs fails at once.
                    f"--node-ip={HOST}", f"--node-port={KUBELET_PORT}"]
        raise ValueError(component)

    def start(self, component: str) -> None:
        if self.pid(component) is not None:
            return
        self.logfile(component).parent.mkdir(parents=True, exist_ok=True)
        self.pidfile(component).parent.mkdir(parents=True, exist_ok=True)
        with open(self.logfile(component), "ab") as log:
            proc = subprocess.Popen(self.argv(component), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True, cwd=self.base)
        self.pidfile(component).write_text(f"{proc.pid}\n")

    def stop(self, component: str, timeout: float = 30) -> None:
        pid = self.pid(component)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
                while alive(pid) and time.monotonic() < deadline + 10:
                    time.sleep(0.1)
        self.pidfile(component).unlink(missing_ok=True)

    # -- API --------------------------------------------------------------------------------------
    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.dir / "pki" / "ca.crt"))
        ctx.load_cert_chain(str(self.dir / "pki" / "admin.crt"), str(self.dir / "pki" / "admin.key"))
        return ctx

    def api(self, method: str, path: str, body: dict | list | None = None, timeout: float = 10):
        """One request as the administrator; returns (status, decoded JSON or text). A PATCH with a dict is a
        JSON merge patch, with a list a JSON patch."""
        data = json.dumps(body).encode() if body is not None else None
        content_type = "application/json"
        if method == "PATCH":
            content_type = "application/json-patch+json" if isinstance(body, list) else "application/merge-patch+json"
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Content-Type": content_type, "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self._context(), timeout=timeout) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def ready(self) -> bool:
        try:
            return self.api("GET", "/readyz", timeout=3)[0] == 200
        except (OSError, ssl.SSLError):
            return False

    def ready_nodes(self) -> list[str]:
        status, nodes = self.api("GET", "/api/v1/nodes")
        if status != 200:
            return []
        return sorted(n["metadata"]["name"] for n in nodes["items"]
                      if any(c["type"] == "Ready" and c["status"] == "True"
                             for c in n.get("status", {}).get("conditions", [])))


# -- certificates -----------------------------------------------------------------------------------
def _pki(pki: Path) -> None:
    """CA, serving certificate, client certificates and the service-account key, unless already there."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if (pki / "ca.crt").exists():
        return
    pki.mkdir(parents=True, mode=0o700, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def write_key(name, key):
        path = pki / f"{name}.key"
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)

    def name(cn, org=None):
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("ops-runbooks-lab-ca")).issuer_name(name("ops-runbooks-lab-ca"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    write_key("ca", ca_key)
    (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def issue(stem, subject, usage, sans=None):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        write_key(stem, key)
        (pki / f"{stem}.crt").write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(
            serialization.Encoding.PEM))

    service_ip = next(ipaddress.ip_network(SERVICE_CIDR).hosts())
    issue("apiserver", name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH,
          [x509.DNSName(n) for n in ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                     "kubernetes.default.svc.cluster.local")]
          + [x509.IPAddress(ipaddress.ip_address(HOST)), x509.IPAddress(service_ip)])
    for stem, cn, org in CLIENTS:
        issue(stem, name(cn, org), ExtendedKeyUsageOID.CLIENT_AUTH)
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_key("sa", sa)
    (pki / "sa.pub").write_bytes(sa.public_key().public_bytes(serialization.Encoding.PEM,
                                                              serialization.PublicFormat.SubjectPublicKeyInfo))


def _kubeconfig(lab: K8sLab, stem: str, path: Path) -> None:
    pki = lab.dir / "pki"

    def b64(name):
        return base64.b64encode((pki / name).read_bytes()).decode()

    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "ops-runbooks-lab",
        "clusters": [{"name": "ops-runbooks-lab", "cluster": {"server": lab.server,
                                                              "certificate-authority-data": b64("ca.crt")}}],
        "users": [{"name": stem, "user": {"client-certificate-data": b64(f"{stem}.crt"),
                                          "client-key-data": b64(f"{stem}.key")}}],
        "contexts": [{"name": "ops-runbooks-lab", "context": {"cluster": "ops-runbooks-lab", "user": stem,
                                                              "namespace": "default"}}],
    }
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML: every kubeconfig reader takes it
    path.chmod(0o600)


def _node(name: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {NODE_ANNOTATION: "fake"},
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64", "type": "kwok"}},
        "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                   "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"}},
    }


APP_NAMESPACE = "ops-runbooks-lab"
APP_IMAGE = "ops-runbooks/app:1"


def app_objects(namespace: str = APP_NAMESPACE, replicas: int = 2, image: str = APP_IMAGE) -> list[tuple[str, dict]]:
    """The lab application as the Compose lab has it: blue and green slots (one Deployment each, pods labelled
    ``slot``) behind one Service that selects the blue slot, a ConfigMap and a Secret. ``(collection path, body)``
    in creation order."""
    def deployment(slot):
        labels = {"app": "app", "slot": slot}
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": f"app-{slot}", "namespace": namespace, "labels": labels},
                "spec": {"replicas": replicas, "revisionHistoryLimit": 10, "selector": {"matchLabels": labels},
                         "strategy": {"type": "RollingUpdate",
                                      "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                         "template": {"metadata": {"labels": labels}, "spec": {
                             "containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8000}],
                                             "env": [{"name": "APP_SLOT", "value": slot},
                                                     {"name": "APP_DB_PASSWORD", "valueFrom": {"secretKeyRef": {
                                                         "name": "app-secrets", "key": "db-password"}}}],
                                             "envFrom": [{"configMapRef": {"name": "app-config"}}],
                                             "readinessProbe": {"httpGet": {"path": "/health/ready",
                                                                            "port": 8000}}}]}}}}

    return [
        ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        (f"/api/v1/namespaces/{namespace}/configmaps",
         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config"},
          "data": {"APP_LOG_LEVEL": "info", "APP_GREETING": "hello"}}),
        (f"/api/v1/namespaces/{namespace}/secrets",
         {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-secrets"}, "type": "Opaque",
          "stringData": {"db-password": secrets.token_urlsafe(18), "api-token": secrets.token_urlsafe(24)}}),
        (f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment("blue")),
        (f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment("green")),
        (f"/api/v1/namespaces/{namespace}/services",
         {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app"},
          "spec": {"selector": {"app": "app", "slot": "blue"}, "ports": [{"port": 80, "targetPort": 8000}]}}),
    ]


def deploy_app(lab: K8sLab, namespace: str = APP_NAMESPACE, timeout: float = 120) -> None:
    """Create what of the lab application is missing, and wait until both slots are rolled out."""
    for path, body in app_objects(namespace):
        status, answer = lab.api("POST", path, body)
        if status not in (201, 409):
            raise SystemExit(f"k8s lab: creating {body['kind']} {body['metadata']['name']} failed ({status}): {answer}")

    def rolled_out():
        for slot in ("blue", "green"):
            status, d = lab.api("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/app-{slot}")
            if status != 200 or (d.get("status") or {}).get("availableReplicas", 0) < d["spec"]["replicas"]:
                return False
        return True

    _wait(f"the lab application in namespace {namespace}", rolled_out, timeout, lab, "kube-controller-manager")


def _wait(what: str, predicate, timeout: float, lab: K8sLab, component: str) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise SystemExit(f"k8s lab: {what} not within {timeout:g}s; see {lab.logfile(component)}")
        for c in COMPONENTS:
            if lab.pidfile(c).exists() and lab.pid(c) is None:
                tail = lab.logfile(c).read_text(errors="replace")[-3000:] if lab.logfile(c).exists() else ""
                raise SystemExit(f"k8s lab: {c} exited while waiting for {what}; last log lines:\n{tail}")
        time.sleep(0.2)
    return time.monotonic() - started


def up(base: Path = DEFAULT_DIR, timeout: float = 180) -> K8sLab:
    """Start what does not run (building the binaries first if needed) and wait until the API is ready and
    every node is Ready."""
    base = Path(base)
    bin_dir = k8s_build.build()
    stages = k8s_build.kwok_stages()
    lab = K8sLab.load(base)
    if lab is None:
        if base.exists():
            shutil.rmtree(base)
        base.mkdir(parents=True, mode=0o700)
        lab = K8sLab(base=str(base), bin=str(bin_dir), stages=str(stages))
    else:
        # The cache key may have moved (new pins): run what the current pins built.
        lab.bin, lab.stages = str(bin_dir), str(stages)
    _pki(lab.dir / "pki")
    _kubeconfig(lab, "admin", lab.kubeconfig)
    for stem, _cn, _org in CLIENTS[1:]:
        _kubeconfig(lab, stem, lab.dir / f"{stem}.kubeconfig")
    lab.save()
    lab.start("etcd")
    lab.start("kube-apiserver")
    _wait("kube-apiserver /readyz", lab.ready, timeout, lab, "kube-apiserver")
    for component in COMPONENTS[2:]:
        lab.start(component)
    for node in lab.nodes:
        status, body = lab.api("POST", "/api/v1/nodes", _node(node))
        if status not in (201, 409):
            raise SystemExit(f"k8s lab: creating node {node} failed ({status}): {body}")
    _wait(f"nodes {', '.join(lab.nodes)} Ready", lambda: lab.ready_nodes() == sorted(lab.nodes), timeout, lab, "kwok")
    # Pods need the namespace's default service account, made by the controller manager.
    _wait("the default service account", lambda: lab.api("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0]
          == 200, timeout, lab, "kube-controller-manager")
    deploy_app(lab, timeout=timeout)
    return lab


def down(base: Path = DEFAULT_DIR, purge: bool = False) -> None:
    lab = K8sLab.load(base)
    if lab is not None:
        for component in reversed(COMPONENTS):
            lab.stop(component)
    if purge and Path(base).exists():
        shutil.rmtree(base)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.k8s")
    ap.add_argument("action", choices=["up", "down", "status", "env"])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--timeout", type=float, default=180, help="with up: seconds to wait for readiness")
    ap.add_argument("--purge", action="store_true", help="with down: delete the directory too")
    args = ap.parse_args(argv)
    lab = K8sLab.load(args.dir)
    if args.action == "up":
        started = time.monotonic()
        lab = up(args.dir, args.timeout)
        print(f"kubernetes {k8s_build.KUBERNETES_VERSION} at {lab.server}, nodes {', '.join(lab.ready_nodes())} "
              f"Ready after {time.monotonic() - started:.1f}s; KUBECONFIG={lab.kubeconfig}")
    elif args.action == "down":
        down(args.dir, args.purge)
    elif args.action == "status":
        if lab is None:
            print("not created")
            return 1
        states = lab.running()
        print(" ".join(f"{c}: {'running' if on else 'stopped'}" for c, on in states.items()))
        if not all(states.values()):
            return 1
    elif args.action == "env":
        if lab is None:
            return 1
        print(f"export KUBECONFIG={lab.kubeconfig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
