#!/usr/bin/env bash
# Validates docker-compose.yml without a Docker engine (Debian's docker-compose v1 `config -q`),
# then checks that it matches the bare-metal path: every environment variable given to one of our
# services is one that service reads, and the published ports are the services' defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

docker-compose -f docker-compose.yml config -q
docker-compose -f docker-compose.yml config | python3 -c '
import re, sys, yaml, pathlib

compose = yaml.safe_load(sys.stdin)
shared = {"BIND_ADDRESS", "LOG_FORMAT", "RUST_LOG", "STATE_DIR"}
ports = {"gateway": "3001", "executor": "8084", "dashboard": "3000"}
problems = []
for name, service in compose["services"].items():
    env = service.get("environment") or {}
    if name in {"knowledge", "analyser", "executor", "collector", "gateway"}:
        source = pathlib.Path(name, "src", "config.rs").read_text()
        # Settings read through a lifecycle type (`NatsSettings::from_env(env)`) count as read.
        for type_name in re.findall(r"(\w+)::from_env\(", source):
            for path in pathlib.Path("lifecycle/src").glob("*.rs"):
                text = path.read_text()
                if re.search(rf"\b(struct|enum) {type_name}\b", text):
                    source += text
        for key in env:
            if key not in shared and f"\"{key}\"" not in source:
                problems.append(f"{name}: {key} is not read by {name}/src/config.rs")
    if name == "dashboard":
        proxy = pathlib.Path("dashboard/app/api/[...path]/route.ts").read_text()
        for key in env:
            if f"process.env.{key}" not in proxy:
                problems.append(f"dashboard: {key} is not read by the dashboard")
    for published in service.get("ports") or []:
        text = str(published.get("published", "")) + ":" + str(published.get("target", "")) if isinstance(published, dict) else str(published)
        host, _, container = text.partition(":")
        if name in ports and (host != ports[name] or container != ports[name]):
            problems.append(f"{name}: port {text} differs from the bare-metal {ports[name]}")
if problems:
    print("docker-compose.yml does not match the services:", *problems, sep="\n  ")
    sys.exit(1)
print("docker-compose.yml: valid, and its variables and ports match the services")
'
