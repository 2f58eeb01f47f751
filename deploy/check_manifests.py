"""Checks for deploy/check.sh that no off-the-shelf CLI does: the PodMonitor and PrometheusRule against the
prometheus-operator models, the rendered workload's hardening, the sharded overlay's wiring (its pod is
the base's, --shard-count equals the replicas, Services and the PodDisruptionBudget select its pods), the
PrometheusRule's groups as a plain rules file for promtool, and the Dockerfile's final stage and build
command."""

import sys

import dockerfile
import yaml
from cloudcoil.models.prometheus_operator.v1 import PodMonitor, PrometheusRule


def fail(msg):
    print(f"check_manifests: {msg}", file=sys.stderr)
    sys.exit(1)


def check_rendered(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    kinds = sorted(d["kind"] for d in docs)
    monitors = [d for d in docs if d["kind"] == "PodMonitor"]
    if len(monitors) != 1:
        fail(f"{path}: expected one PodMonitor, found {kinds}")
    PodMonitor.model_validate(monitors[0])
    (deploy,) = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    pod = deploy["spec"]["template"]["spec"]
    if not pod["securityContext"].get("runAsNonRoot"):
        fail(f"{path}: pod must run as non-root")
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        if sc.get("readOnlyRootFilesystem") is not True or sc.get("allowPrivilegeEscalation") is not False:
            fail(f"{path}: container {c['name']} must have a read-only root and no privilege escalation")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            fail(f"{path}: container {c['name']} must drop all capabilities")
        if "limits" not in c.get("resources", {}) or "requests" not in c.get("resources", {}):
            fail(f"{path}: container {c['name']} needs resource requests and limits")
    (agent,) = [c for c in pod["containers"] if c["name"] == "sgpolicy"]
    probes = {agent["livenessProbe"]["httpGet"]["path"], agent["readinessProbe"]["httpGet"]["path"]}
    if probes != {"/healthz", "/readyz"}:
        fail(f"{path}: probes must be /healthz and /readyz, got {probes}")
    print(f"ok -- {path}: {', '.join(kinds)}")


def check_dockerfile(path, build_command):
    cmds = dockerfile.parse_file(path)
    stages = [i for i, c in enumerate(cmds) if c.cmd.upper() == "FROM"]
    final = cmds[stages[-1]:]
    base = final[0].value[0]
    if not base.startswith("gcr.io/distroless/static"):
        fail(f"{path}: the final image should be distroless static, got {base}")
    users = [c.value[0] for c in final if c.cmd.upper() == "USER"]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        fail(f"{path}: the final stage must set a non-root USER")
    runs = " ".join(" ".join(c.value) for c in cmds if c.cmd.upper() == "RUN")
    if " ".join(build_command.split()) not in " ".join(runs.split()):
        fail(f"{path}: the image must build with exactly: {build_command}")
    print(f"ok -- {path}: final stage {base}, USER {users[-1]}, same build command as CI")


def load(path):
    return [d for d in yaml.safe_load_all(open(path)) if d]


def one(docs, kind, path):
    found = [d for d in docs if d["kind"] == kind]
    if len(found) != 1:
        fail(f"{path}: expected one {kind}, found {len(found)}")
    return found[0]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def check_sharded(path, base_path):
    """The sharded overlay: the StatefulSet runs the base Deployment's pod with only the shard and event
    flags, the events port and the token volume added."""
    docs = load(path)
    if any(d["kind"] == "Deployment" for d in docs):
        fail(f"{path}: the sharded overlay must not keep the base Deployment")
    sts = one(docs, "StatefulSet", path)
    base = one(load(base_path), "Deployment", base_path)
    pod, base_pod = sts["spec"]["template"]["spec"], base["spec"]["template"]["spec"]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    if labels != base["spec"]["template"]["metadata"]["labels"]:
        fail(f"{path}: the StatefulSet's pod labels differ from the base's")
    if not selects(sts["spec"]["selector"]["matchLabels"], labels):
        fail(f"{path}: the StatefulSet's selector does not select its pods")
    strip = lambda spec: {k: v for k, v in spec.items() if k not in ("containers", "volumes")}
    if strip(pod) != strip(base_pod):
        fail(f"{path}: the StatefulSet's pod spec differs from the base's outside containers and volumes")
    base_volumes = {v["name"]: v for v in base_pod["volumes"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    if {k: volumes.get(k) for k in base_volumes} != base_volumes or set(volumes) - set(base_volumes) != {"events-token"}:
        fail(f"{path}: volumes must be the base's plus events-token, got {sorted(volumes)}")
    containers = {c["name"]: c for c in pod["containers"]}
    base_containers = {c["name"]: c for c in base_pod["containers"]}
    if set(containers) != set(base_containers) or containers["git-sync"] != base_containers["git-sync"]:
        fail(f"{path}: the containers must be the base's, git-sync unchanged")
    agent, base_agent = containers["sgpolicy"], base_containers["sgpolicy"]
    added = ("args", "ports", "volumeMounts")
    if {k: v for k, v in agent.items() if k not in added} != {k: v for k, v in base_agent.items() if k not in added}:
        fail(f"{path}: the agent container differs from the base's beyond args, ports and mounts")
    args = agent["args"]
    if args[: len(base_agent["args"])] != base_agent["args"]:
        fail(f"{path}: the agent's args must start with the base's {base_agent['args']}")
    counts = [a.split("=", 1)[1] for a in args if a.startswith("--shard-count=")]
    if "--shard-from-hostname" not in args or counts != [str(sts["spec"]["replicas"])]:
        fail(f"{path}: needs --shard-from-hostname and --shard-count={sts['spec']['replicas']} (the replicas), got {args}")
    ports = {p["name"]: p["containerPort"] for p in agent["ports"]}
    events = [a for a in args if a.startswith("--events-addr=")]
    if events != [f"--events-addr=0.0.0.0:{ports.get('events')}"]:
        fail(f"{path}: --events-addr must listen on the events port {ports.get('events')}, got {events}")
    token = [a.split("=", 1)[1] for a in args if a.startswith("--events-token-file=")]
    mounts = [m["mountPath"] for m in agent["volumeMounts"] if m["name"] == "events-token"]
    if len(token) != 1 or len(mounts) != 1 or not token[0].startswith(mounts[0] + "/"):
        fail(f"{path}: --events-token-file must be in the events-token mount, got {token} and {mounts}")
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    headless = services.get(sts["spec"]["serviceName"])
    if not headless or headless["spec"].get("clusterIP") != "None":
        fail(f"{path}: serviceName {sts['spec']['serviceName']} must be a headless Service")
    receivers = [
        s for s in services.values()
        if s["spec"].get("clusterIP") != "None" and any(p.get("targetPort") == "events" for p in s["spec"]["ports"])
    ]
    if len(receivers) != 1:
        fail(f"{path}: one normal (not headless) Service must reach the events port")
    for s in services.values():
        if not selects(s["spec"]["selector"], labels):
            fail(f"{path}: Service {s['metadata']['name']} does not select the shards")
    pdb = one(docs, "PodDisruptionBudget", path)
    if not selects(pdb["spec"]["selector"]["matchLabels"], labels):
        fail(f"{path}: the PodDisruptionBudget does not select the shards")
    PrometheusRule.model_validate(one(docs, "PrometheusRule", path))
    print(f"ok -- {path}: StatefulSet of {sts['spec']['replicas']} runs the base pod, shard and event wiring")


def extract_rules(path, out):
    """The PrometheusRule's spec.groups as a Prometheus rules file."""
    rule = one(load(path), "PrometheusRule", path)
    PrometheusRule.model_validate(rule)
    with open(out, "w") as f:
        yaml.safe_dump({"groups": rule["spec"]["groups"]}, f, sort_keys=False)


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "rendered":
        for p in sys.argv[2:]:
            check_rendered(p)
    elif what == "sharded":
        check_sharded(sys.argv[2], sys.argv[3])
    elif what == "rules":
        extract_rules(sys.argv[2], sys.argv[3])
    elif what == "dockerfile":
        check_dockerfile(sys.argv[2], sys.argv[3])
    else:
        fail(f"unknown check {what}")
