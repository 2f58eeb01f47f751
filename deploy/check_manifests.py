"""Checks for deploy/check.sh that no off-the-shelf CLI does: the PodMonitor against the prometheus-operator
models, the rendered Deployment's hardening, and the Dockerfile's final stage and build command."""

import sys

import dockerfile
import yaml
from cloudcoil.models.prometheus_operator.v1 import PodMonitor


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
    (deploy,) = [d for d in docs if d["kind"] == "Deployment"]
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


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "rendered":
        for p in sys.argv[2:]:
            check_rendered(p)
    elif what == "dockerfile":
        check_dockerfile(sys.argv[2], sys.argv[3])
    else:
        fail(f"unknown check {what}")
