"""Checks deploy/grafana/*.json the way Grafana would read it, for deploy/check.sh.

`check DASHBOARD SRC_DIR`: the schemaVersion is present and recent, panel ids are unique (rows and
nested panels included), every panel and query takes its datasource from the `datasource` template
variable (never a hard-coded uid, which would break on any other Grafana), and every metric a query
names is one sgpolicy registers in SRC_DIR (found by the `register("sgpolicy_…"` calls, plus the
suffixes the exposition adds) or one announced below.

`rules DASHBOARD OUT`: writes every query as one recording rule of a rules file, with Grafana's
variables replaced by values, so `promtool check rules OUT` judges each query's PromQL syntax."""

import json
import pathlib
import re
import sys

# Grafana 10.4 writes 39; anything older than 36 predates datasource references by uid.
MIN_SCHEMA_VERSION = 36
# Metrics a panel may name before their code lands (each with the issue that adds it).
ANNOUNCED = {
    "sgpolicy_isolation_groups",  # isolation issue: {status} = isolated | not-isolated | unknown
}
# What the OpenMetrics exposition appends to a registered name (counter, histogram).
SUFFIXES = ("", "_total", "_created", "_bucket", "_sum", "_count")
# Values for Grafana's variables when the queries are checked as plain PromQL.
VARIABLES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1d", "resync_interval": "3600"}
DATASOURCE = "${datasource}"


def fail(msg):
    print(f"check_dashboard: {msg}", file=sys.stderr)
    sys.exit(1)


def all_panels(dash):
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", [])


def queries(dash):
    for p in all_panels(dash):
        for t in p.get("targets", []):
            yield p, t


def registered(src):
    names = set(ANNOUNCED)
    for f in pathlib.Path(src).rglob("*.rs"):
        names.update(re.findall(r'register\(\s*"(sgpolicy_[a-z0-9_]+)"', f.read_text()))
    if not names - ANNOUNCED:
        fail(f"no register(\"sgpolicy_…\") call found under {src}")
    return {n + s for n in names for s in SUFFIXES}


def check(path, src):
    dash = json.load(open(path))
    version = dash.get("schemaVersion")
    if not isinstance(version, int) or version < MIN_SCHEMA_VERSION:
        fail(f"{path}: schemaVersion {version!r}, expected at least {MIN_SCHEMA_VERSION}")
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        fail(f"{path}: needs a `datasource` template variable of type datasource over prometheus")
    ids = [p.get("id") for p in all_panels(dash)]
    dupes = sorted({i for i in ids if ids.count(i) > 1 or i is None}, key=str)
    if dupes:
        fail(f"{path}: panel ids must be unique and present, repeated or missing: {dupes}")
    known = registered(src)
    n = 0
    for p in all_panels(dash):
        if p.get("type") == "row":
            continue
        if (p.get("datasource") or {}).get("uid") != DATASOURCE:
            fail(f"{path}: panel {p['id']} ({p.get('title')}) must use the datasource variable, has {p.get('datasource')}")
        if not p.get("targets"):
            fail(f"{path}: panel {p['id']} ({p.get('title')}) has no query")
    for p, t in queries(dash):
        n += 1
        if (t.get("datasource") or {}).get("uid") != DATASOURCE:
            fail(f"{path}: a query of panel {p['id']} must use the datasource variable, has {t.get('datasource')}")
        for name in re.findall(r"\b(sgpolicy_[a-z0-9_]+)", t["expr"]):
            if name not in known:
                fail(f"{path}: panel {p['id']} ({p.get('title')}) queries {name}, which sgpolicy does not export")
        for var in re.findall(r"\$\{?(\w+)", t["expr"]):
            if var not in VARIABLES or (not var.startswith("__") and var not in variables):
                fail(f"{path}: panel {p['id']} uses ${var}, which is neither Grafana's nor the dashboard's")
    print(f"ok -- {path}: schemaVersion {version}, {len(ids)} panels with unique ids, {n} queries on ${{datasource}} naming exported metrics")


def rules(path, out):
    dash = json.load(open(path))
    lines = ["groups:", "  - name: dashboard-queries", "    rules:"]
    for i, (p, t) in enumerate(queries(dash)):
        expr = re.sub(r"\$\{?(\w+)\}?", lambda m: VARIABLES.get(m.group(1), m.group(0)), t["expr"])
        lines.append(f"      - record: dashboard:panel{p['id']}:{t['refId']}")
        lines.append(f"        expr: {json.dumps(expr)}")
    pathlib.Path(out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    {"check": check, "rules": rules}[sys.argv[1]](*sys.argv[2:])
