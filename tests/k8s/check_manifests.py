#!/usr/bin/env python3
"""Checks the Kubernetes manifests in deploy/k8s.

1. Schema: every document against the Kubernetes JSON schemas (kubernetes-validate, strict: an unknown field fails
   as a wrong type does), for the oldest Kubernetes the manifests support and the newest the validator knows.
2. Cluster sense: namespaces, selectors, Service ports, volumes and claims, resource quantities, the "restricted"
   Pod Security profile the namespace enforces, probes, the worker token copied from its Secret mode 600, and every
   Secret named in deploy/k8s/README.md (which says how to create it).
3. deploy/compose.yaml: the same images, commands, ports, environment names and values, mount paths, shared
   volumes, GPU count and PostgreSQL health check.
4. With --metadata-bin / --trainer-bin: every TUNEFORGE_* / HF_* variable and flag given to a service is one that
   its --help lists.

--self-test breaks the manifests in memory in a dozen ways and passes only when every break is reported.
Usage: check_manifests.py [--root REPO] [--manifests DIR] [--metadata-bin B] [--trainer-bin B] [--self-test]
"""
import argparse
import copy
import functools
import posixpath
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

# gRPC probes are GA from Kubernetes 1.27; 1.37 is the newest schema set kubernetes-validate 1.37.0 has.
K8S_VERSIONS = ["1.27", "1.37"]
NAMESPACE = "tuneforge"
# The Dockerfile's `useradd --system tuneforge` gets uid and gid 999 on Debian 12; the official postgres image's
# postgres user is 999 too.
SERVICE_UID = 999
WORKER_TOKEN_SECRET = "tuneforge-worker-token"
METADATA_PORT = 50051
TRAINER_PORT = 50061
# compose service -> (kind, name, container) in deploy/k8s. Every compose trainer-gpuN maps to one Deployment:
# the device plugin gives each of its replicas its own GPU.
COMPOSE_TO_K8S = {
    "postgres": ("StatefulSet", "postgres", "postgres"),
    "metadata": ("Deployment", "metadata", "metadata"),
    "trainer": ("Deployment", "trainer", "trainer"),
    "trainer-gpu*": ("Deployment", "trainer-gpu", "trainer"),
}
# Values compose writes in plain text that the cluster keeps in Secrets.
SECRET_IN_K8S = {"TUNEFORGE_DATABASE_URL", "POSTGRES_PASSWORD"}
# Compose keeps the worker token in the shared artifacts volume (the metadata service writes it); the cluster
# copies it from a Secret into a memory volume (checked by check_worker_token).
TOKEN_ENV = "TUNEFORGE_WORKER_TOKEN_FILE"
RESTRICTED_VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                           "projected", "secret"}
QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?$")
UNITS = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
         "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


class Manifests:
    """Every document of every *.yaml under a folder (recursively), looked up by kind and name."""

    def __init__(self, docs):
        self.docs = docs  # [(where, doc)]

    @staticmethod
    def load(folder: Path):
        docs = []
        for path in sorted(folder.rglob("*.yaml")) + sorted(folder.rglob("*.yml")):
            with open(path) as f:
                for i, doc in enumerate(yaml.safe_load_all(f)):
                    if doc is not None:
                        docs.append((f"{path.relative_to(folder)}#{i}", doc))
        return Manifests(docs)

    def of_kind(self, kind):
        return [(w, d) for w, d in self.docs if isinstance(d, dict) and d.get("kind") == kind]

    def get(self, kind, name):
        for _, d in self.of_kind(kind):
            if d.get("metadata", {}).get("name") == name:
                return d
        return None

    def workloads(self):
        """(where, doc, pod spec, pod labels) for every workload with a pod template."""
        out = []
        for kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            for where, d in self.of_kind(kind):
                template = (d.get("spec") or {}).get("template") or {}
                out.append((where, d, template.get("spec") or {}, (template.get("metadata") or {}).get("labels") or {}))
        return out


def name_of(doc):
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


def quantity(value):
    text = str(value)
    m = QUANTITY.match(text)
    if not m:
        return None
    number = float(m.group(1))
    suffix = m.group(3) or ""
    if suffix[:1] in ("e", "E"):
        return number * 10 ** int(suffix[1:])
    return number * UNITS[suffix]


def containers(pod, init=True):
    return list(pod.get("containers") or []) + (list(pod.get("initContainers") or []) if init else [])


def env_map(container):
    return {e.get("name"): e for e in container.get("env") or []}


def is_tuneforge_image(image):
    return str(image).split("/")[-1].split(":")[0] == "tuneforge"


# ---- 1. schema ----------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def strict_validator(kind, api_version, version):
    """kubernetes_validate.validate() stops at the first error; this is its validator, to report every error."""
    def minor(v):
        return tuple(int(x) for x in kv_utils.major_minor(v).split("."))
    resolved = [v for v in kv_utils.all_versions() if minor(v) <= minor(version)][-1]
    folder = f"kubernetes-json-schema/v{resolved}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kv_utils.schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        return None, kv_utils.major_minor(resolved)
    definitions = kv_utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry), kv_utils.major_minor(resolved)


def check_schema(m, errors):
    for where, doc in m.docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            errors.append(f"{where}: not a Kubernetes object (no kind / apiVersion)")
            continue
        for version in K8S_VERSIONS:
            validator, resolved = strict_validator(doc["kind"], doc["apiVersion"], version)
            if validator is None:
                errors.append(f"{where}: {name_of(doc)}: no schema for {doc['kind']} {doc['apiVersion']} in "
                              f"Kubernetes {resolved}")
                break
            found = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))
            for e in found:
                path = ".".join(str(p) for p in e.path) or "(top)"
                errors.append(f"{where}: {name_of(doc)}: Kubernetes {resolved} schema (strict): {path}: {e.message}")
            if found:
                break


# ---- 2. cluster sense ---------------------------------------------------------------------------------------------

def check_objects(m, readme_text, errors):
    if m.get("Namespace", NAMESPACE) is None:
        errors.append(f"no Namespace {NAMESPACE}")
    claims = {(d.get("metadata") or {}).get("name") for _, d in m.of_kind("PersistentVolumeClaim")}
    for where, d in m.docs:
        if isinstance(d, dict) and d.get("kind") not in ("Namespace",) and \
                (d.get("metadata") or {}).get("namespace") != NAMESPACE:
            errors.append(f"{where}: {name_of(d)} is not in namespace {NAMESPACE}")
    for where, d in m.of_kind("PersistentVolumeClaim"):
        check_quantity(where, name_of(d), "spec.resources.requests.storage",
                       ((d.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage"), errors)

    pods = m.workloads()
    for where, d, pod, labels in pods:
        spec = d.get("spec") or {}
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            errors.append(f"{where}: {name_of(d)}: selector {selector} does not match its pod labels {labels}")
        own_claims = {(t.get("metadata") or {}).get("name") for t in spec.get("volumeClaimTemplates") or []}
        check_pod(where, name_of(d), pod, claims, own_claims, readme_text, errors)

    for where, svc in m.of_kind("Service"):
        selector = (svc.get("spec") or {}).get("selector") or {}
        selected = [pod for _, _, pod, labels in pods if selector and all(labels.get(k) == v for k, v in selector.items())]
        if not selected:
            errors.append(f"{where}: {name_of(svc)}: its selector {selector} matches no pod template")
            continue
        for port in (svc.get("spec") or {}).get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            for pod in selected:
                cports = [p for c in containers(pod, init=False) for p in c.get("ports") or []]
                if not any(target in (p.get("name"), p.get("containerPort")) for p in cports):
                    errors.append(f"{where}: {name_of(svc)}: targetPort {target} is no container port of its pods")


def check_quantity(where, what, field, value, errors):
    if value is None or quantity(value) is None:
        errors.append(f"{where}: {what}: {field}: '{value}' is not a Kubernetes quantity")


def check_pod(where, name, pod, claims, own_claims, readme_text, errors):
    sc = pod.get("securityContext") or {}
    if sc.get("runAsNonRoot") is not True:
        errors.append(f"{where}: {name}: securityContext.runAsNonRoot must be true (restricted profile)")
    if sc.get("runAsUser") in (None, 0):
        errors.append(f"{where}: {name}: securityContext.runAsUser must be a non-root uid")
    if (sc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        errors.append(f"{where}: {name}: securityContext.seccompProfile.type must be RuntimeDefault (restricted profile)")
    images = [c.get("image", "") for c in containers(pod)]
    if any(is_tuneforge_image(i) for i in images):
        for field in ("runAsUser", "runAsGroup", "fsGroup"):
            if sc.get(field) != SERVICE_UID:
                errors.append(f"{where}: {name}: securityContext.{field} must be {SERVICE_UID}, the image's tuneforge user")
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    for vname, v in volumes.items():
        kinds = set(v) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            errors.append(f"{where}: {name}: volume {vname} is of a type the restricted profile forbids: {sorted(kinds)}")
        pvc = v.get("persistentVolumeClaim")
        if pvc and pvc.get("claimName") not in claims:
            errors.append(f"{where}: {name}: volume {vname} claims {pvc.get('claimName')}, which no manifest defines")
        secret = (v.get("secret") or {}).get("secretName")
        if secret and secret not in readme_text:
            errors.append(f"{where}: {name}: Secret {secret} is not described in deploy/k8s/README.md")
        if "emptyDir" in v and (v["emptyDir"] or {}).get("sizeLimit") is not None:
            check_quantity(where, name, f"volumes.{vname}.emptyDir.sizeLimit", v["emptyDir"]["sizeLimit"], errors)
    for c in containers(pod):
        cname = f"{name} container {c.get('name')}"
        csc = c.get("securityContext") or {}
        if csc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{where}: {cname}: securityContext.allowPrivilegeEscalation must be false")
        if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
            errors.append(f"{where}: {cname}: securityContext.capabilities.drop must hold ALL")
        if csc.get("privileged") or csc.get("runAsUser") == 0:
            errors.append(f"{where}: {cname}: must not run privileged or as root")
        resources = c.get("resources") or {}
        for part in ("requests", "limits"):
            for res in ("cpu", "memory"):
                value = (resources.get(part) or {}).get(res)
                check_quantity(where, cname, f"resources.{part}.{res}", value, errors)
        for res, value in (resources.get("limits") or {}).items():
            request = (resources.get("requests") or {}).get(res)
            if request is not None and quantity(request) is not None and quantity(value) is not None \
                    and quantity(request) > quantity(value):
                errors.append(f"{where}: {cname}: requests.{res} {request} is above limits.{res} {value}")
        for mount in c.get("volumeMounts") or []:
            if mount.get("name") not in volumes and mount.get("name") not in own_claims:
                errors.append(f"{where}: {cname}: mounts volume {mount.get('name')}, which the pod does not define")
        for e in c.get("env") or []:
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref and ref.get("name") not in readme_text:
                errors.append(f"{where}: {cname}: Secret {ref.get('name')} is not described in deploy/k8s/README.md")
    for c in containers(pod, init=False):
        check_probes(where, name, c, errors)
        if is_tuneforge_image(c.get("image", "")):
            check_worker_token(where, name, pod, c, volumes, errors)


def command_of(c):
    return list(c.get("command") or []) + list(c.get("args") or [])


def check_probes(where, name, c, errors):
    cmd = command_of(c)
    binary = posixpath.basename(cmd[0]) if cmd else ""
    cname = f"{name} container {c.get('name')}"
    ports = {p.get("containerPort") for p in c.get("ports") or []}
    if binary == "tuneforge-metadata":
        port = int(env_map(c).get("TUNEFORGE_PORT", {}).get("value", METADATA_PORT))
        if port not in ports:
            errors.append(f"{where}: {cname}: TUNEFORGE_PORT {port} is not a containerPort")
        for probe in ("readinessProbe", "livenessProbe"):
            grpc = (c.get(probe) or {}).get("grpc")
            if not grpc or grpc.get("port") != port:
                errors.append(f"{where}: {cname}: {probe} must be a gRPC probe (grpc.health.v1) on port {port}")
    elif binary == "tuneforge-trainer":
        port = int(env_map(c).get("TUNEFORGE_TRAINER_PORT", {}).get("value", TRAINER_PORT))
        if port not in ports:
            errors.append(f"{where}: {cname}: the trainer's port {port} is not a containerPort")
        for probe in ("readinessProbe", "livenessProbe"):
            # The trainer serves no grpc.health.v1: a gRPC probe would always fail.
            tcp = (c.get(probe) or {}).get("tcpSocket")
            if not tcp or tcp.get("port") != port:
                errors.append(f"{where}: {cname}: {probe} must be a tcpSocket probe on port {port} "
                              "(the trainer has no grpc.health.v1 service)")
    elif not c.get("readinessProbe"):
        errors.append(f"{where}: {cname}: no readinessProbe")


def check_worker_token(where, name, pod, c, volumes, errors):
    """The services accept only a token file that group and others cannot read, which a Secret volume cannot give a
    non-root user: an init container copies the Secret's file mode 600 into an emptyDir at TUNEFORGE_WORKER_TOKEN_FILE."""
    cname = f"{name} container {c.get('name')}"
    path = env_map(c).get(TOKEN_ENV, {}).get("value")
    if not path:
        errors.append(f"{where}: {cname}: {TOKEN_ENV} is not set")
        return
    directory = posixpath.dirname(path)
    mount = next((mt for mt in c.get("volumeMounts") or [] if mt.get("mountPath") == directory), None)
    if mount is None or "emptyDir" not in volumes.get(mount.get("name"), {}):
        errors.append(f"{where}: {cname}: {TOKEN_ENV} {path} must lie in an emptyDir mounted at {directory}")
        return
    for init in pod.get("initContainers") or []:
        mounts = {mt.get("name"): mt.get("mountPath") for mt in init.get("volumeMounts") or []}
        secret_mounts = [mounts[v] for v in mounts
                         if (volumes.get(v, {}).get("secret") or {}).get("secretName") == WORKER_TOKEN_SECRET]
        cmd = command_of(init)
        if mounts.get(mount.get("name")) == directory and secret_mounts and path in cmd and \
                any(a in ("600", "0600", "400", "0400") for a in cmd) and \
                any(a.startswith(secret_mounts[0] + "/") for a in cmd):
            return
    errors.append(f"{where}: {cname}: no init container copies the Secret {WORKER_TOKEN_SECRET} to {path} "
                  "with mode 600 (e.g. install -m 600 SECRET_FILE " + path + ")")


# ---- 3. deploy/compose.yaml ---------------------------------------------------------------------------------------

def k8s_target(m, compose_name):
    for pattern, (kind, name, container) in COMPOSE_TO_K8S.items():
        if pattern == compose_name or (pattern.endswith("*") and re.fullmatch(re.escape(pattern[:-1]) + r"\d*",
                                                                             compose_name)):
            doc = m.get(kind, name)
            if doc is None:
                return None, None, f"{kind}/{name}"
            pod = doc["spec"]["template"]["spec"]
            c = next((c for c in pod.get("containers") or [] if c.get("name") == container), None)
            return doc, c, f"{kind}/{name} container {container}"
    return None, None, None


def compose_env(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return env


def compose_mounts(service):
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out.append((v.get("source"), v.get("target")))
        else:
            parts = str(v).split(":")
            out.append((parts[0], parts[1]) if len(parts) > 1 else (None, parts[0]))
    return out


def pod_mount_claims(doc, c):
    """mountPath -> claim name (or volume name for other kinds) in the container."""
    pod = doc["spec"]["template"]["spec"]
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    templates = {(t.get("metadata") or {}).get("name") for t in doc["spec"].get("volumeClaimTemplates") or []}
    out = {}
    for mt in c.get("volumeMounts") or []:
        v = volumes.get(mt.get("name"), {})
        if "persistentVolumeClaim" in v:
            out[mt.get("mountPath")] = v["persistentVolumeClaim"].get("claimName")
        elif mt.get("name") in templates:
            out[mt.get("mountPath")] = "template:" + mt.get("name")
        else:
            out[mt.get("mountPath")] = "volume:" + str(mt.get("name"))
    return out


def service_for(m, host, port, errors, context):
    svc = m.get("Service", host)
    if svc is None:
        errors.append(f"compose {context}: reaches {host}:{port}, but deploy/k8s has no Service {host}")
        return
    if not any(p.get("port") == port for p in (svc.get("spec") or {}).get("ports") or []):
        errors.append(f"compose {context}: reaches {host}:{port}, but Service/{host} has no port {port}")


def check_compose(m, compose, errors):
    services = compose.get("services") or {}
    shared = {}  # compose volume source -> [(compose service, target)]
    for sname, service in services.items():
        doc, c, what = k8s_target(m, sname)
        if what is None:
            errors.append(f"compose service {sname} has no counterpart in deploy/k8s (COMPOSE_TO_K8S in {__file__})")
            continue
        if c is None:
            errors.append(f"compose service {sname}: deploy/k8s has no {what}")
            continue
        ctx = f"service {sname} vs {what}"
        if service.get("image") != c.get("image"):
            errors.append(f"compose {ctx}: image {service.get('image')} in compose, {c.get('image')} in deploy/k8s")
        if service.get("command") is not None and list(service["command"]) != command_of(c):
            errors.append(f"compose {ctx}: command {service['command']} in compose, {command_of(c)} in deploy/k8s")
        kenv = env_map(c)
        for key, value in compose_env(service).items():
            e = kenv.get(key)
            if e is None:
                errors.append(f"compose {ctx}: {key} is set in compose but not in deploy/k8s")
                continue
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if key == TOKEN_ENV:
                continue  # from a Secret in the cluster: check_worker_token
            if value is not None and "${" in str(value):
                # Taken from the operator's environment in compose (HF_TOKEN): an optional Secret in the cluster.
                if not ref or ref.get("optional") is not True:
                    errors.append(f"compose {ctx}: {key} comes from the environment in compose; in deploy/k8s it "
                                  "must come from a Secret with optional: true")
            elif key in SECRET_IN_K8S:
                if not ref:
                    errors.append(f"compose {ctx}: {key} holds a password: deploy/k8s must take it from a Secret")
            elif str(e.get("value")) != str(value):
                errors.append(f"compose {ctx}: {key}={value} in compose, {e.get('value')} in deploy/k8s")
        claims = pod_mount_claims(doc, c)
        for source, target in compose_mounts(service):
            if target not in claims:
                errors.append(f"compose {ctx}: compose mounts {target}, deploy/k8s does not")
            elif source is not None:
                shared.setdefault(source, []).append((sname, target, claims[target]))
        for port in service.get("ports") or []:
            container_port = int(str(port).split(":")[-1].split("/")[0])
            if container_port not in {p.get("containerPort") for p in c.get("ports") or []}:
                errors.append(f"compose {ctx}: compose publishes port {container_port}, not a containerPort in deploy/k8s")
            selecting = [s for _, s in m.of_kind("Service")
                         if all(doc["spec"]["template"]["metadata"]["labels"].get(k) == v
                                for k, v in ((s.get("spec") or {}).get("selector") or {}).items())
                         and any(p.get("port") == container_port for p in s["spec"].get("ports") or [])]
            if not selecting:
                errors.append(f"compose {ctx}: compose publishes port {container_port}; no Service in deploy/k8s "
                              "exposes it for these pods")
        cmd = list(service.get("command") or [])
        if "--metadata" in cmd:
            host, port = cmd[cmd.index("--metadata") + 1].rsplit(":", 1)
            service_for(m, host, int(port), errors, ctx)
        url = compose_env(service).get("TUNEFORGE_DATABASE_URL")
        if url:
            hostport = re.match(r"postgres(?:ql)?://[^@]*@([^/:]+):(\d+)/", url)
            if hostport and m.get("StatefulSet", hostport.group(1)) is not None:
                service_for(m, hostport.group(1), int(hostport.group(2)), errors, ctx)
        gpus = [d.get("count") for d in ((((service.get("deploy") or {}).get("resources") or {})
                                          .get("reservations") or {}).get("devices") or [])
                if "gpu" in (d.get("capabilities") or [])]
        limits = (c.get("resources") or {}).get("limits") or {}
        if gpus and str(limits.get("nvidia.com/gpu")) != str(gpus[0]):
            errors.append(f"compose {ctx}: compose reserves {gpus[0]} GPU, deploy/k8s limits nvidia.com/gpu to "
                          f"{limits.get('nvidia.com/gpu')}")
        if not gpus and "nvidia.com/gpu" in limits:
            errors.append(f"compose {ctx}: compose reserves no GPU, deploy/k8s asks for nvidia.com/gpu")
        test = (service.get("healthcheck") or {}).get("test")
        if test and test[0] == "CMD":
            probe = ((c.get("readinessProbe") or {}).get("exec") or {}).get("command")
            if probe != test[1:]:
                errors.append(f"compose {ctx}: compose's health check is {test[1:]}, deploy/k8s's readiness {probe}")
    for source, uses in shared.items():
        if len({s for s, _, _ in uses}) < 2:
            continue
        found = {claim for _, _, claim in uses}
        if len(found) != 1 or not next(iter(found)).startswith("tuneforge-"):
            errors.append(f"compose volume {source} is shared by {sorted({s for s, _, _ in uses})}; in deploy/k8s "
                          f"they must mount one PersistentVolumeClaim there, not {sorted(found)}")
            continue
        claim = m.get("PersistentVolumeClaim", next(iter(found)))
        if claim is not None and "ReadWriteMany" not in (claim.get("spec") or {}).get("accessModes", []):
            errors.append(f"{name_of(claim)} is shared by several pods: it must be ReadWriteMany")


# ---- 4. the binaries' own flags -----------------------------------------------------------------------------------

def check_binaries(m, helps, errors):
    for where, d, pod, _ in m.workloads():
        for c in containers(pod, init=False):
            cmd = command_of(c)
            binary = posixpath.basename(cmd[0]) if cmd else ""
            if binary not in helps:
                continue
            text = helps[binary]
            for key in env_map(c):
                if re.match(r"^(TUNEFORGE|HF)_", key) and key not in text:
                    errors.append(f"{where}: {name_of(d)}: {binary} --help does not know {key}")
            for arg in cmd[1:]:
                flag = arg.split("=", 1)[0]
                if flag.startswith("--") and not re.search(re.escape(flag) + r"\b", text):
                    errors.append(f"{where}: {name_of(d)}: {binary} --help does not know {flag}")


def run_checks(m, compose, readme_text, helps):
    errors = []
    check_schema(m, errors)
    check_objects(m, readme_text, errors)
    check_compose(m, compose, errors)
    check_binaries(m, helps, errors)
    return errors


# ---- --self-test --------------------------------------------------------------------------------------------------

def self_test(m, compose, readme_text, helps):
    def pod(d):
        return d["spec"]["template"]["spec"]

    def container(kind, name, index=0):
        return lambda ms: pod(ms.get(kind, name))["containers"][index]

    meta = container("Deployment", "metadata")
    cpu = container("Deployment", "trainer")
    gpu = container("Deployment", "trainer-gpu")
    breaks = [
        ("a port of the wrong type (string)", "schema",
         lambda ms: meta(ms)["ports"][0].__setitem__("containerPort", "fifty-fifty-one")),
        ("an unknown field (spec.replica)", "schema",
         lambda ms: ms.get("Deployment", "trainer")["spec"].__setitem__("replica", 2)),
        ("an unknown field deep in a probe", "schema",
         lambda ms: meta(ms)["readinessProbe"]["grpc"].__setitem__("serviceName", "x")),
        ("replicas as a string", "schema",
         lambda ms: ms.get("Deployment", "metadata")["spec"].__setitem__("replicas", "1")),
        ("a memory limit that is no quantity", "quantity", lambda ms: cpu(ms)["resources"]["limits"].__setitem__(
            "memory", "16GB")),
        ("a Service port moved off 50051", "Service/metadata has no port 50051",
         lambda ms: ms.get("Service", "metadata")["spec"]["ports"][0].__setitem__("port", 50052)),
        ("HF_HOME differing from compose", "HF_HOME",
         lambda ms: next(e for e in cpu(ms)["env"] if e["name"] == "HF_HOME").__setitem__("value", "/cache")),
        ("the GPU limit removed", "nvidia.com/gpu",
         lambda ms: gpu(ms)["resources"]["limits"].pop("nvidia.com/gpu")),
        ("the artifacts volume on another claim for the trainers", "shared",
         lambda ms: next(v for v in pod(ms.get("Deployment", "trainer"))["volumes"] if v["name"] == "artifacts")
         ["persistentVolumeClaim"].__setitem__("claimName", "tuneforge-data")),
        ("the token copied readable by others", "mode 600",
         lambda ms: pod(ms.get("Deployment", "metadata"))["initContainers"][0].__setitem__(
             "command", ["install", "-m", "644", "/etc/tuneforge/secret/worker-token", "/run/tuneforge/worker-token"])),
        ("a gRPC liveness probe on the trainer", "tcpSocket",
         lambda ms: gpu(ms).__setitem__("livenessProbe", {"grpc": {"port": 50061}})),
        ("running as root", "runAsUser",
         lambda ms: pod(ms.get("Deployment", "trainer"))["securityContext"].__setitem__("runAsUser", 0)),
        ("privilege escalation allowed", "allowPrivilegeEscalation",
         lambda ms: meta(ms)["securityContext"].__setitem__("allowPrivilegeEscalation", True)),
        ("a claim no manifest defines", "no manifest defines",
         lambda ms: next(v for v in pod(ms.get("Deployment", "metadata"))["volumes"] if v["name"] == "data")
         ["persistentVolumeClaim"].__setitem__("claimName", "tuneforge-dta")),
        ("a variable the trainer does not read", "--help does not know" if helps else "HF_HOME is set in compose",
         lambda ms: next(e for e in cpu(ms)["env"] if e["name"] == "HF_HOME").__setitem__("name", "TUNEFORGE_HF_HOME")),
    ]
    passed = failed = 0
    for title, expect, mutate in breaks:
        broken = Manifests(copy.deepcopy(m.docs))
        mutate(broken)
        errors = run_checks(broken, compose, readme_text, helps)
        hit = [e for e in errors if expect in e]
        if hit:
            passed += 1
            print(f"ok: {title}: rejected: {hit[0]}")
        else:
            failed += 1
            print(f"FAILED: {title}: not reported (expected an error containing '{expect}'); errors: {errors}")
    print(f"{passed} passed, {failed} failed")
    return failed == 0


def main():
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=here.parent.parent, help="the repository")
    parser.add_argument("--manifests", type=Path, help="default: ROOT/deploy/k8s")
    parser.add_argument("--compose", type=Path, help="default: ROOT/deploy/compose.yaml")
    parser.add_argument("--metadata-bin", help="tuneforge-metadata, to check variables and flags against --help")
    parser.add_argument("--trainer-bin", help="tuneforge-trainer, likewise")
    parser.add_argument("--self-test", action="store_true", help="break the manifests and expect every break found")
    args = parser.parse_args()
    folder = args.manifests or args.root / "deploy" / "k8s"
    compose_path = args.compose or args.root / "deploy" / "compose.yaml"
    m = Manifests.load(folder)
    if not m.docs:
        print(f"no manifests under {folder}")
        return 1
    with open(compose_path) as f:
        compose = yaml.safe_load(f)
    readme = folder / "README.md"
    readme_text = readme.read_text() if readme.exists() else ""
    helps = {}
    for binary in (args.metadata_bin, args.trainer_bin):
        if binary:
            out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                print(f"{binary} --help failed ({out.returncode}): {out.stderr.strip()}")
                return 1
            helps[posixpath.basename(binary)] = out.stdout + out.stderr
    if args.self_test:
        return 0 if self_test(m, compose, readme_text, helps) else 1

    errors = run_checks(m, compose, readme_text, helps)
    kinds = sorted({name_of(d) for _, d in m.docs})
    print(f"kubernetes-validate {kubernetes_validate.__version__}, strict schemas of Kubernetes "
          f"{' and '.join(K8S_VERSIONS)}; {len(m.docs)} objects under {folder}: {', '.join(kinds)}")
    print(f"compared with {compose_path}" + (f"; variables and flags with {', '.join(sorted(helps))} --help"
                                             if helps else ""))
    for e in errors:
        print(f"ERROR {e}")
    print("OK" if not errors else f"{len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
