#!/usr/bin/env bash
# Checks the Kubernetes manifests in deploy/k8s without a cluster or kubectl: every document parses
# and is well formed, and the manifests match the services — each container's variables are ones
# its service reads (<service>/src/config.rs, or the shared list of scripts/check-compose.sh), its
# ports and probes are the services' defaults, every ConfigMap/Secret reference resolves, every
# Service selects a workload, and kustomization.yaml lists every file. Exits 1 naming each problem.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "check-k8s: PyYAML is missing for $(command -v python3 || echo python3)." >&2
  echo "  install it: sudo apt-get install -y python3-yaml   (or: python3 -m pip install pyyaml)" >&2
  exit 1
fi

python3 - "${1:-deploy/k8s}" <<'PY'
import ast
import pathlib
import re
import sys

import yaml

K8S = pathlib.Path(sys.argv[1])
RUST_SERVICES = ["knowledge", "collector", "analyser", "executor", "gateway"]
SERVICES = RUST_SERVICES + ["dashboard"]
KINDS = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
}
WORKLOADS = {"Deployment", "StatefulSet"}
# The original gateway's name for its port, read only when PORT is unset (gateway/src/config.rs).
PORT_ALIASES = {"COLLECTOR_PORT": "PORT"}
# Where a service writes, unless a variable makes it unnecessary (checked against the mounts, as
# every container runs with a read-only root file system): the executor's deployed helpers live
# in STATE_DIR; the gateway keeps a generated token there when GATEWAY_TOKEN is not given;
# knowledge writes its key file when KNOWLEDGE_SECRET_KEY is not given.
WRITES = {
    "executor": [("STATE_DIR", None, None)],
    "gateway": [("STATE_DIR", None, "GATEWAY_TOKEN")],
    "knowledge": [("KNOWLEDGE_KEY_FILE", ".startupmonkey/knowledge.key", "KNOWLEDGE_SECRET_KEY")],
}
# Services whose replicas need their own id; the executor's must also survive rescheduling.
IDS = {"collector": "COLLECTOR_ID", "executor": "EXECUTOR_ID"}

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


# --- what the code says -------------------------------------------------------------------------

def read(path):
    try:
        return pathlib.Path(path).read_text()
    except OSError as error:
        print(f"check-k8s: cannot read {path}: {error}", file=sys.stderr)
        sys.exit(1)


compose_check = read("scripts/check-compose.sh")
match = re.search(r"^shared = (\{[^}]*\})", compose_check, re.M)
if not match:
    print("check-k8s: no `shared = {...}` list in scripts/check-compose.sh", file=sys.stderr)
    sys.exit(1)
SHARED = ast.literal_eval(match.group(1))

lifecycle_files = {}
for path in sorted(pathlib.Path("lifecycle/src").glob("*.rs")):
    text = path.read_text()
    for name in re.findall(r"pub struct (\w+)", text):
        lifecycle_files[name] = text

CONFIG = {}
for service in RUST_SERVICES:
    source = read(f"{service}/src/config.rs")
    # Variable names kept as constants (`pub const GRPC_PORT: &str = "GRPC_PORT";`, used as
    # `vars::GRPC_PORT`) read as the literals they stand for.
    constants = dict(re.findall(r'pub const (\w+): &str = "([A-Z][A-Z0-9_]*)";', source))
    source = re.sub(r"\bvars::(\w+)", lambda m: f'"{constants.get(m.group(1), m.group(1))}"', source)
    names = set(re.findall(r'"([A-Z][A-Z0-9_]*)"', source))
    # Settings read through a lifecycle type (`NatsSettings::from_env(env)`) count as read.
    for type_name in re.findall(r"(\w+)::from_env\(", source):
        if type_name in lifecycle_files:
            names |= set(re.findall(r'"([A-Z][A-Z0-9_]*)"', lifecycle_files[type_name]))
    ports = {name: int(default)
             for name, default in re.findall(r'env\.port\(\s*"([A-Z_]+)"\s*,\s*(\d+)\s*\)', source)}
    defaults = dict(re.findall(r'env\.string\(\s*"([A-Z_]+)"\s*,\s*"([^"]*)"\s*\)', source))
    if not ports:
        problem(f"{service}/src/config.rs", "no env.port(\"…\", default) found: cannot check ports")
    CONFIG[service] = {"vars": names, "ports": ports, "defaults": defaults}

dockerfile = read("deploy/docker/Dockerfile")
runtime = dockerfile.split("\nFROM ")[-1]
IMAGE_ENV = dict(re.findall(r"([A-Z_]+)=(\S+)", " ".join(re.findall(r"^ENV (.*)$", runtime, re.M))))
workdirs = re.findall(r"^WORKDIR (\S+)", runtime, re.M)
IMAGE_WORKDIR = workdirs[-1] if workdirs else "/"

dashboard_proxy = read("dashboard/app/api/[...path]/route.ts")
dashboard_ports = re.findall(r'"-p",\s*"(\d+)"', read("dashboard/Dockerfile"))
DASHBOARD_PORT = int(dashboard_ports[-1]) if dashboard_ports else 3000

# --- the manifests ------------------------------------------------------------------------------

if not K8S.is_dir():
    print(f"check-k8s: {K8S} is not a directory", file=sys.stderr)
    sys.exit(1)

files = sorted(p for p in K8S.iterdir() if p.suffix in (".yaml", ".yml"))
docs = []  # (file name, index, document)
unparsed = []
for path in files:
    text = path.read_text()
    try:
        loaded = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        unparsed.append(f"{path.name}: is not valid YAML: {error}")
        continue
    if not text.startswith("#"):
        problem(path.name, "does not start with a comment line saying what it is")
    for index, doc in enumerate(loaded):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            unparsed.append(f"{path.name}#{index + 1}: is not a mapping")
            continue
        docs.append((path.name, index + 1, doc))
if unparsed:  # the rest would only repeat what a file that does not parse hides
    print(f"{K8S} cannot be checked:", *unparsed, sep="\n  ")
    sys.exit(1)


def label(file, index, doc):
    name = (doc.get("metadata") or {}).get("name", "?")
    return f"{file}#{index} {doc.get('kind', '?')}/{name}"


objects = {}
kustomizations = []
for file, index, doc in docs:
    where = label(file, index, doc)
    kind = doc.get("kind")
    for field in ("apiVersion", "kind"):
        if not doc.get(field):
            problem(where, f"has no {field}")
    if kind not in KINDS:
        problem(where, f"kind {kind!r} is not one this check knows ({', '.join(KINDS)})")
        continue
    if doc.get("apiVersion") != KINDS[kind]:
        problem(where, f"apiVersion {doc.get('apiVersion')!r}, expected {KINDS[kind]!r}")
    if kind == "Kustomization":
        kustomizations.append((file, doc))
        continue
    metadata = doc.get("metadata") or {}
    if not metadata.get("name"):
        problem(where, "has no metadata.name")
        continue
    key = (kind, metadata["name"])
    if key in objects:
        problem(where, f"a second {kind} named {metadata['name']!r} (first in {objects[key][0]})")
    objects[key] = (file, doc)


def of_kind(kind):
    return {name: doc for (k, name), (_, doc) in objects.items() if k == kind}


namespaces = of_kind("Namespace")
if len(namespaces) != 1:
    problem(str(K8S), f"expected exactly one Namespace, found {len(namespaces)}")
NAMESPACE = next(iter(namespaces), None)
for (kind, name), (file, doc) in objects.items():
    if kind != "Namespace" and doc["metadata"].get("namespace") != NAMESPACE:
        problem(f"{file} {kind}/{name}",
                f"metadata.namespace is {doc['metadata'].get('namespace')!r}, expected {NAMESPACE!r}")

# kustomization.yaml lists every file, and only files that exist.
if len(kustomizations) != 1 or kustomizations[0][0] != "kustomization.yaml":
    problem(str(K8S), "expected one Kustomization, in kustomization.yaml")
else:
    _, kustomization = kustomizations[0]
    listed = kustomization.get("resources") or []
    present = {p.name for p in files} - {"kustomization.yaml"}
    for name in sorted(present - set(listed)):
        problem("kustomization.yaml", f"does not list {name} under resources")
    for name in listed:
        if name not in present:
            problem("kustomization.yaml", f"lists {name}, which is not a manifest in {K8S}")
    if len(listed) != len(set(listed)):
        problem("kustomization.yaml", "lists a file twice")
    if kustomization.get("namespace") != NAMESPACE:
        problem("kustomization.yaml", f"namespace is {kustomization.get('namespace')!r}, expected {NAMESPACE!r}")

configmaps = {name: {k: str(v) for k, v in (doc.get("data") or {}).items()}
              for name, doc in of_kind("ConfigMap").items()}
secrets = {name: set((doc.get("data") or {})) | set((doc.get("stringData") or {}))
           for name, doc in of_kind("Secret").items()}
used_keys = set()  # ("ConfigMap"|"Secret", name, key)
services = of_kind("Service")
workloads = {name: doc for (k, name), (_, doc) in objects.items() if k in WORKLOADS}


def subset(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def template_labels(doc):
    return ((doc.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}


# --- workloads ----------------------------------------------------------------------------------

def resolve_env(where, container):
    """Name -> resolved value (str, or a marker for secrets and pod fields), checking references."""
    values = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            name = source["configMapRef"].get("name")
            if name not in configmaps:
                problem(where, f"envFrom configMapRef {name!r}: no such ConfigMap")
                continue
            for key, value in configmaps[name].items():
                used_keys.add(("ConfigMap", name, key))
                values[key] = value
        elif "secretRef" in source:
            name = source["secretRef"].get("name")
            if name not in secrets:
                problem(where, f"envFrom secretRef {name!r}: no such Secret")
                continue
            for key in secrets[name]:
                used_keys.add(("Secret", name, key))
                values[key] = "<secret>"
    seen = set()
    for item in container.get("env") or []:
        name = item.get("name")
        if not name:
            problem(where, "an env entry has no name")
            continue
        if name in seen:
            problem(where, f"env {name} is given twice")
        seen.add(name)
        if "value" in item:
            value = str(item["value"])
            for ref in re.findall(r"\$\((\w+)\)", value):
                if ref not in values:
                    problem(where, f"env {name} refers to $({ref}), which is not defined before it")
            values[name] = value
            continue
        source = item.get("valueFrom") or {}
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            if ref.get("name") not in configmaps:
                problem(where, f"env {name}: configMapKeyRef names ConfigMap {ref.get('name')!r}, which is not in {K8S}")
            elif ref.get("key") not in configmaps[ref["name"]]:
                problem(where, f"env {name}: ConfigMap {ref['name']} has no key {ref.get('key')!r}")
            else:
                used_keys.add(("ConfigMap", ref["name"], ref["key"]))
                values[name] = configmaps[ref["name"]][ref["key"]]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            if ref.get("name") not in secrets:
                problem(where, f"env {name}: secretKeyRef names Secret {ref.get('name')!r}, which is not in {K8S}")
            elif ref.get("key") not in secrets[ref["name"]]:
                problem(where, f"env {name}: Secret {ref['name']} has no key {ref.get('key')!r}")
            else:
                used_keys.add(("Secret", ref["name"], ref["key"]))
                values[name] = "<secret>"
        elif "fieldRef" in source:
            values[name] = f"<{source['fieldRef'].get('fieldPath')}>"
        elif "resourceFieldRef" in source:
            values[name] = "<resource>"
        else:
            problem(where, f"env {name} has neither value nor a known valueFrom")
    return values


def port_number(where, container, port):
    """A probe's or Service's port (number or name) as the container's port number."""
    declared = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
    if isinstance(port, int):
        return port
    if port in declared:
        return declared[port]
    problem(where, f"port {port!r} is not a named port of container {container.get('name')}")
    return None


def check_probe(where, container, kind, path, port):
    probe = container.get(kind)
    if not probe:
        problem(where, f"has no {kind}")
        return
    get = probe.get("httpGet")
    if path is not None:
        if not get:
            problem(where, f"{kind} must be an httpGet of {path}")
            return
        if get.get("path") != path:
            problem(where, f"{kind} asks {get.get('path')!r}, expected {path!r}")
    action = get or probe.get("tcpSocket")
    if action is None:
        if "exec" not in probe:
            problem(where, f"{kind} has no httpGet, tcpSocket or exec")
        return
    number = port_number(where, container, action.get("port"))
    if number is not None and port is not None and number != port:
        problem(where, f"{kind} uses port {number}, but the service listens for it on {port}")


def mounted_writable(container, path):
    for mount in container.get("volumeMounts") or []:
        base = mount.get("mountPath", "").rstrip("/")
        if not mount.get("readOnly") and base and (path == base or path.startswith(base + "/")):
            return True
    return False


found_services = set()
for name, doc in workloads.items():
    kind = doc["kind"]
    where = f"{objects[(kind, name)][0]} {kind}/{name}"
    spec = doc.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    if not selector:
        problem(where, "has no spec.selector.matchLabels")
    elif not subset(selector, template_labels(doc)):
        problem(where, f"selector {selector} does not match the template's labels {template_labels(doc)}")
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 1:
        problem(where, f"replicas {replicas!r} is not a positive number")
    if kind == "StatefulSet":
        governing = services.get(spec.get("serviceName"))
        if governing is None:
            problem(where, f"serviceName {spec.get('serviceName')!r} is not a Service in {K8S}")
        elif (governing.get("spec") or {}).get("clusterIP") != "None":
            problem(where, f"serviceName {spec.get('serviceName')!r} should be a headless Service (clusterIP: None)")
    pod = (spec.get("template") or {}).get("spec") or {}
    if pod.get("enableServiceLinks") is not False:
        problem(where, "set enableServiceLinks: false (Kubernetes would inject <SERVICE>_PORT=tcp://… "
                       "variables; the gateway reads COLLECTOR_PORT as its port)")
    if pod.get("automountServiceAccountToken") is not False:
        problem(where, "set automountServiceAccountToken: false (nothing here calls the Kubernetes API)")
    pod_security = pod.get("securityContext") or {}
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    claims = {(c.get("metadata") or {}).get("name") for c in spec.get("volumeClaimTemplates") or []}
    for volume_name, volume in volumes.items():
        if "configMap" in volume and volume["configMap"].get("name") not in configmaps:
            problem(where, f"volume {volume_name} names ConfigMap {volume['configMap'].get('name')!r}, which is not in {K8S}")
        if "secret" in volume and volume["secret"].get("secretName") not in secrets:
            problem(where, f"volume {volume_name} names Secret {volume['secret'].get('secretName')!r}, which is not in {K8S}")
        for source, kind_name in (("configMap", "ConfigMap"), ("secret", "Secret")):
            if source in volume:
                ref = volume[source].get("name") or volume[source].get("secretName")
                keys = configmaps.get(ref, {}) if kind_name == "ConfigMap" else secrets.get(ref, set())
                for key in keys:
                    used_keys.add((kind_name, ref, key))
    containers = pod.get("containers") or []
    if not containers:
        problem(where, "has no containers")
    for container in containers:
        cname = container.get("name", "?")
        cwhere = f"{where} container {cname}"
        if not container.get("image"):
            problem(cwhere, "has no image")
        security = container.get("securityContext") or {}
        if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
            problem(cwhere, "is not runAsNonRoot")
        if (security.get("runAsUser", pod_security.get("runAsUser")) or 0) == 0:
            problem(cwhere, "has no non-zero runAsUser (runAsNonRoot needs a numeric user)")
        if security.get("allowPrivilegeEscalation") is not False:
            problem(cwhere, "set securityContext.allowPrivilegeEscalation: false")
        if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
            problem(cwhere, "set securityContext.capabilities.drop: [ALL]")
        if security.get("readOnlyRootFilesystem") is not True:
            problem(cwhere, "set securityContext.readOnlyRootFilesystem: true (mount a volume where it writes)")
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if not (resources.get(section) or {}).get(resource):
                    problem(cwhere, f"has no resources.{section}.{resource}")
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") not in volumes and mount.get("name") not in claims:
                problem(cwhere, f"mounts {mount.get('name')!r}, which is neither a volume nor a volumeClaimTemplate")
        port_names = [p.get("name") for p in container.get("ports") or [] if p.get("name")]
        if len(port_names) != len(set(port_names)):
            problem(cwhere, "has two ports with the same name")
        env = resolve_env(cwhere, container)
        for field in ("command", "args"):
            for arg in container.get(field) or []:
                for ref in re.findall(r"\$\((\w+)\)", str(arg)):
                    if ref not in env:
                        problem(cwhere, f"{field} refers to $({ref}), which is not in its env")
        if cname not in SERVICES:
            # NATS, Redis: probed somehow, on ports they declare.
            for kind_name in ("livenessProbe", "readinessProbe"):
                check_probe(cwhere, container, kind_name, None, None)
            continue
        # One of ours: the workload carries the service's name, and so does the image.
        found_services.add(cname)
        if name != cname:
            problem(cwhere, f"the {cname} container belongs in a workload named {cname}")
        image = str(container.get("image", ""))
        repository = image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]
        if repository != f"startupmonkey-{cname}":
            problem(cwhere, f"image {image!r}: expected startupmonkey-{cname}[:tag], as `docker compose -p startupmonkey build` names it")
        declared = {p.get("containerPort") for p in container.get("ports") or []}

        if cname == "dashboard":
            for var in env:
                if f"process.env.{var}" not in dashboard_proxy:
                    problem(cwhere, f"{var} is not read by the dashboard (dashboard/app/api/[...path]/route.ts)")
            if declared != {DASHBOARD_PORT}:
                problem(cwhere, f"container ports {sorted(declared)}, expected [{DASHBOARD_PORT}] (dashboard/Dockerfile)")
            for kind_name in ("livenessProbe", "readinessProbe"):
                check_probe(cwhere, container, kind_name, None, DASHBOARD_PORT)
            continue

        config = CONFIG[cname]
        for var in env:
            if var not in SHARED and var not in config["vars"]:
                problem(cwhere, f"{var} is not read by {cname}/src/config.rs (nor in the shared list of scripts/check-compose.sh)")
        if (env.get("BIND_ADDRESS") or IMAGE_ENV.get("BIND_ADDRESS")) not in ("0.0.0.0", "::"):
            problem(cwhere, "BIND_ADDRESS must be 0.0.0.0 (or ::) in a pod: the default, 127.0.0.1, is unreachable for probes and Services")
        # The ports the service will listen on: its config.rs defaults, unless env overrides them.
        listening = {}
        for var, default in config["ports"].items():
            alias = PORT_ALIASES.get(var)
            if alias in config["ports"] and alias in env:
                continue  # PORT wins over the original's name
            value = env.get(var, default)
            try:
                listening[var] = int(value)
            except ValueError:
                problem(cwhere, f"{var}={value!r} is not a port number")
        expected = set(listening.values())
        if declared != expected:
            problem(cwhere, f"container ports {sorted(p for p in declared if p is not None)} differ from the ports "
                            f"{cname} listens on {sorted(expected)} ({', '.join(f'{k}={v}' for k, v in sorted(listening.items()))})")
        health = listening.get("HEALTH_PORT")
        if health is None and len(expected) == 1:
            health = next(iter(expected))  # the gateway serves /health and /ready on its one port
        if health is None:
            problem(cwhere, "cannot tell which port serves /health")
        check_probe(cwhere, container, "livenessProbe", "/health", health)
        check_probe(cwhere, container, "readinessProbe", "/ready", health)
        for var, default, unless in WRITES.get(cname, []):
            if unless and unless in env:
                continue
            path = env.get(var) or IMAGE_ENV.get(var) or config["defaults"].get(var) or default
            if path is None:
                problem(cwhere, f"cannot tell where {var} points")
                continue
            target = path if path.startswith("/") else f"{IMAGE_WORKDIR.rstrip('/')}/{path}"
            directory = target if var == "STATE_DIR" else target.rsplit("/", 1)[0]
            if not mounted_writable(container, directory):
                reason = f" (or give {unless})" if unless else ""
                problem(cwhere, f"writes {var} ({directory}) but no writable volume is mounted there{reason}")
        id_var = IDS.get(cname)
        if id_var and replicas > 1:
            item = next((e for e in container.get("env") or [] if e.get("name") == id_var), None)
            field = ((item or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
            if field != "metadata.name":
                problem(cwhere, f"{replicas} replicas need distinct ids: set {id_var} from the pod name (fieldRef metadata.name)")
            elif cname == "executor" and kind != "StatefulSet":
                problem(cwhere, "EXECUTOR_ID must survive restarts (an executor closes the actions its id left executing): "
                                "run the executor as a StatefulSet, whose pod names are stable")

for service in SERVICES:
    if service not in found_services:
        problem(str(K8S), f"no workload runs the {service} container")

# --- Services, network policies, addresses, unused keys -----------------------------------------

for name, doc in services.items():
    where = f"{objects[('Service', name)][0]} Service/{name}"
    spec = doc.get("spec") or {}
    selector = spec.get("selector") or {}
    selected = [w for w in workloads.values() if subset(selector, template_labels(w))]
    if not selected:
        problem(where, f"selector {selector} selects no Deployment or StatefulSet")
    ports = spec.get("ports") or []
    if not ports:
        problem(where, "has no ports")
    for port in ports:
        target = port.get("targetPort", port.get("port"))
        for workload in selected:
            containers = workload["spec"]["template"]["spec"].get("containers") or []
            numbers = {p.get("containerPort") for c in containers for p in c.get("ports") or []}
            names = {p.get("name") for c in containers for p in c.get("ports") or []}
            if target not in numbers and target not in names:
                problem(where, f"port {port.get('name', port.get('port'))} targets {target!r}, "
                               f"not a container port of {workload['kind']}/{workload['metadata']['name']}")

for name, doc in of_kind("NetworkPolicy").items():
    where = f"{objects[('NetworkPolicy', name)][0]} NetworkPolicy/{name}"
    spec = doc.get("spec") or {}
    selectors = [(spec.get("podSelector") or {}).get("matchLabels") or {}]
    for rule in spec.get("ingress") or []:
        for peer in rule.get("from") or []:
            if "podSelector" in peer:
                selectors.append((peer["podSelector"] or {}).get("matchLabels") or {})
    for selector in selectors:
        if not any(subset(selector, template_labels(w)) for w in workloads.values()):
            problem(where, f"podSelector {selector} selects no Deployment or StatefulSet")

# host:port in the settings must name a port of that Service.
service_ports = {name: {p.get("port") for p in (doc.get("spec") or {}).get("ports") or []}
                 for name, doc in services.items()}
settings = [(f"ConfigMap/{cm} {key}", value) for cm, data in configmaps.items() for key, value in data.items()]
for name, doc in workloads.items():
    for container in doc["spec"]["template"]["spec"].get("containers") or []:
        for item in container.get("env") or []:
            if "value" in item:
                settings.append((f"{doc['kind']}/{name} env {item['name']}", str(item["value"])))
for where, value in settings:
    for host, port in re.findall(r"(?:^|//|@)([a-z0-9][-a-z0-9.]*):(\d+)", value):
        short = host.split(".")[0]
        if short in service_ports and int(port) not in service_ports[short]:
            problem(where, f"{value!r}: Service {short} has no port {port} (it has {sorted(service_ports[short])})")

for cm, data in configmaps.items():
    for key in data:
        if ("ConfigMap", cm, key) not in used_keys:
            problem(f"ConfigMap/{cm}", f"key {key} is used by no container: remove it or use it")
for secret, keys in secrets.items():
    for key in keys:
        if ("Secret", secret, key) not in used_keys:
            problem(f"Secret/{secret}", f"key {key} is used by no container: remove it or use it")

if problems:
    print(f"{K8S} does not match the services ({len(problems)} problem{'s' if len(problems) > 1 else ''}):",
          *problems, sep="\n  ")
    sys.exit(1)
print(f"{K8S}: {len(files)} files, {len(docs)} objects; valid, and their variables, ports, probes and references match the services")
PY
