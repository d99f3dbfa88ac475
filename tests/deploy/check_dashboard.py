#!/usr/bin/env python3
"""Lints the Grafana dashboard and the alert rules against the metric contract.

  check_dashboard.py dashboard [--repo DIR] [--promtool PATH] [--selftest]
  check_dashboard.py alerts    [--repo DIR]

dashboard: deploy/grafana/dynamo-batcher.json must be valid Grafana JSON
(schemaVersion >= 36, unique panel ids, panels inside the 24-column grid and
not overlapping, every panel on the ${datasource} variable, the `table`
variable from label_values(dynamo_batcher_ops_received_total, table)); every
expr may use only the metric names of the contract below, counters and
histogram series only inside rate()/increase(), histogram_quantile only over
_bucket series grouped by le, and each metric family must appear somewhere.
With promtool, every expr is also parsed as PromQL (`promtool check rules`).

alerts: deploy/prometheus/alerts.yaml may use only contract metric names plus
`up`, dynamo_batcher_queue_budget_bytes (the budget gauge the service
exports for DynamoBatcherQueueNearBudget) and dynamo_batcher_config_reload_success
(for DynamoBatcherConfigReloadFailed).

The metric list is kept here on purpose (CI does not depend on anything
outside the repository); it mirrors the "Metrics" section of the design.
"""

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

COUNTERS = {
    "dynamo_batcher_ops_received_total": {"table", "op"},
    "dynamo_batcher_ops_coalesced_total": {"table"},
    "dynamo_batcher_ops_rejected_total": {"table", "reason"},
    "dynamo_batcher_ops_written_total": {"table", "op"},
    "dynamo_batcher_ops_failed_total": {"table", "reason"},
    "dynamo_batcher_batches_sent_total": {"table"},
    "dynamo_batcher_unprocessed_items_total": {"table"},
    "dynamo_batcher_throttle_events_total": {"table", "error"},
    "dynamo_batcher_retries_total": {"table"},
    "dynamo_batcher_dead_lettered_total": {"table"},
    "dynamo_batcher_consumed_wcu_total": {"table"},
    "dynamo_batcher_http_errors_total": {"class"},
}
HISTOGRAMS = {
    "dynamo_batcher_batch_size": {"table"},
    "dynamo_batcher_batch_write_seconds": {"table"},
    "dynamo_batcher_op_latency_seconds": {"table"},
    "dynamo_batcher_backoff_seconds": {"table"},
}
GAUGES = {
    "dynamo_batcher_queue_items": {"table"},
    "dynamo_batcher_queue_bytes": {"table"},
    "dynamo_batcher_inflight_requests": set(),
    "dynamo_batcher_send_rate_limit": {"table"},
    "dynamo_batcher_active_streams": set(),
}
ALERT_EXTRA = {"up", "dynamo_batcher_queue_budget_bytes", "dynamo_batcher_config_reload_success"}

SERIES = dict(COUNTERS)
SERIES.update(GAUGES)
for h, labels in HISTOGRAMS.items():
    SERIES[h + "_bucket"] = labels | {"le"}
    SERIES[h + "_sum"] = labels
    SERIES[h + "_count"] = labels
RATE_ONLY = set(COUNTERS) | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
FAMILIES = set(COUNTERS) | set(HISTOGRAMS) | set(GAUGES)
METRIC_TOKEN = re.compile(r"(?<![\w:$])(dynamo_batcher_[a-zA-Z0-9_:]*)")
TABLE_FILTER = 'table=~"$table"'


def family(series):
    for suffix in ("_bucket", "_sum", "_count"):
        if series.endswith(suffix) and series[: -len(suffix)] in HISTOGRAMS:
            return series[: -len(suffix)]
    return series


def panels_of(dashboard):
    for p in dashboard.get("panels") or []:
        yield p
        for q in p.get("panels") or []:   # collapsed rows keep their panels inside
            yield q


def check_expr(expr, where, errs, allowed_extra=frozenset()):
    used = set()
    for m in METRIC_TOKEN.finditer(expr):
        name = m.group(1)
        if name in allowed_extra:
            continue
        if name not in SERIES:
            errs.append(f"{where}: unknown metric '{name}' (not in the design's list)")
            continue
        used.add(family(name))
        before = expr[: m.start()]
        if name in RATE_ONLY and not re.search(r"\b(rate|irate|increase)\(\s*$", before):
            errs.append(f"{where}: counter/histogram series '{name}' used outside rate()/increase()")
        if name in GAUGES and re.search(r"\b(rate|irate|increase)\(\s*$", before):
            errs.append(f"{where}: gauge '{name}' inside rate()/increase()")
        # A selector on a table-labelled metric must follow the $table variable.
        if "table" in SERIES[name] and "$table" in expr_variables_marker(where):
            sel = re.match(r"\{([^}]*)\}", expr[m.end():])
            if not sel or TABLE_FILTER not in sel.group(1):
                errs.append(f"{where}: '{name}' is not filtered by {TABLE_FILTER}")
        # Labels used in selectors must exist on the metric.
        sel = re.match(r"\{([^}]*)\}", expr[m.end():])
        if sel:
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", sel.group(1)):
                if label not in SERIES[name] and label not in (
                        "job", "instance", "namespace", "pod", "container"):
                    errs.append(f"{where}: '{name}' has no label '{label}'")
    for m in re.finditer(r"histogram_quantile\(", expr):
        inner = expr[m.end():]
        first = METRIC_TOKEN.search(inner)
        if not first or not first.group(1).endswith("_bucket"):
            errs.append(f"{where}: histogram_quantile not over a _bucket series")
        if not re.search(r"by\s*\([^)]*\ble\b", inner):
            errs.append(f"{where}: histogram_quantile must aggregate by (..., le)")
    return used


def expr_variables_marker(where):
    # Dashboard exprs carry the $table variable; alert exprs do not.
    return "$table" if where.startswith("panel") else ""


def lint_dashboard(d):
    errs = []
    if not isinstance(d, dict):
        return ["dashboard is not a JSON object"], set()
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
        errs.append(f"schemaVersion {d.get('schemaVersion')} < 36")
    for key in ("uid", "title"):
        if not d.get(key):
            errs.append(f"dashboard has no {key}")
    variables = {v.get("name"): v for v in (d.get("templating") or {}).get("list") or []}
    ds = variables.get("datasource") or {}
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errs.append("templating needs a 'datasource' variable of type datasource, query prometheus")
    tv = variables.get("table") or {}
    q = tv.get("query")
    q = q.get("query") if isinstance(q, dict) else q
    if tv.get("type") != "query" or q != "label_values(dynamo_batcher_ops_received_total, table)":
        errs.append("templating needs a 'table' query variable: "
                    "label_values(dynamo_batcher_ops_received_total, table)")
    if (tv.get("datasource") or {}).get("uid") != "${datasource}":
        errs.append("the 'table' variable must use ${datasource}")

    ids, rects, used = set(), [], set()
    panels = list(panels_of(d))
    if not panels:
        errs.append("dashboard has no panels")
    for p in panels:
        pid = p.get("id")
        title = p.get("title", "?")
        where = f"panel {pid} '{title}'"
        if pid in ids:
            errs.append(f"{where}: duplicate id")
        ids.add(pid)
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in ("h", "w", "x", "y")):
            errs.append(f"{where}: gridPos needs integer h, w, x, y")
            continue
        if g["x"] < 0 or g["w"] < 1 or g["x"] + g["w"] > 24:
            errs.append(f"{where}: gridPos outside the 24-column grid")
        for other, og in rects:
            if (g["x"] < og["x"] + og["w"] and og["x"] < g["x"] + g["w"] and
                    g["y"] < og["y"] + og["h"] and og["y"] < g["y"] + g["h"]):
                errs.append(f"{where}: overlaps panel '{other}'")
        rects.append((title, g))
        if p.get("type") == "row":
            continue
        if (p.get("datasource") or {}).get("uid") != "${datasource}":
            errs.append(f"{where}: datasource must be ${{datasource}}")
        targets = p.get("targets") or []
        if not targets:
            errs.append(f"{where}: no targets")
        for t in targets:
            expr = t.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                errs.append(f"{where}: target {t.get('refId')} has no expr")
                continue
            if (t.get("datasource") or {}).get("uid") not in (None, "${datasource}"):
                errs.append(f"{where}: target datasource must be ${{datasource}}")
            used |= check_expr(expr, where, errs)
    missing = FAMILIES - used
    if missing:
        errs.append(f"metric families shown on no panel: {', '.join(sorted(missing))}")
    return errs, used


def promql_syntax(exprs, promtool):
    """Parses each expr with promtool (Grafana variables replaced)."""
    rules = []
    for i, (where, expr) in enumerate(exprs):
        e = (expr.replace("$__rate_interval", "1m").replace("$__range", "1h")
             .replace("$__interval", "1m").replace("$table", ".*"))
        rules.append({"record": f"dashboard:expr_{i}", "expr": e})
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "dashboard_rules.json")   # JSON is valid YAML
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
        proc = subprocess.run([promtool, "check", "rules", path], capture_output=True,
                              text=True, timeout=60, check=False)
    if proc.returncode != 0:
        return [f"promtool could not parse dashboard exprs:\n{proc.stdout}{proc.stderr}"]
    return []


def selftest(d):
    """Breaking the dashboard must be reported."""
    def first_target(x):
        return [p for p in panels_of(x) if p.get("targets")][0]["targets"][0]
    mutations = {
        "unknown metric": lambda x: first_target(x).__setitem__(
            "expr", 'sum(rate(dynamo_batcher_ops_recieved_total{table=~"$table"}[5m]))'),
        "bare counter": lambda x: first_target(x).__setitem__(
            "expr", 'sum(dynamo_batcher_ops_received_total{table=~"$table"})'),
        "rate of gauge": lambda x: first_target(x).__setitem__(
            "expr", 'sum(rate(dynamo_batcher_queue_items{table=~"$table"}[5m]))'),
        "no table filter": lambda x: first_target(x).__setitem__(
            "expr", "sum(rate(dynamo_batcher_ops_received_total[5m]))"),
        "quantile without le": lambda x: first_target(x).__setitem__(
            "expr", 'histogram_quantile(0.9, sum by (table) (rate(dynamo_batcher_batch_size_bucket{table=~"$table"}[5m])))'),
        "fixed datasource": lambda x: [p for p in panels_of(x) if p.get("targets")][0].__setitem__(
            "datasource", {"type": "prometheus", "uid": "abc"}),
        "duplicate id": lambda x: x["panels"][2].__setitem__("id", x["panels"][1]["id"]),
        "overlap": lambda x: x["panels"][2].__setitem__("gridPos", dict(x["panels"][1]["gridPos"])),
        "family dropped": lambda x: [p for p in x["panels"] if p.get("title") == "In-flight requests"][0]
        .__setitem__("targets", [{"refId": "A", "expr": "sum(dynamo_batcher_active_streams)"}]),
    }
    base, _ = lint_dashboard(d)
    if base:
        return ["selftest: the unmodified dashboard already fails"], 0
    problems = []
    for name, mutate in mutations.items():
        broken = copy.deepcopy(d)
        mutate(broken)
        if not lint_dashboard(broken)[0]:
            problems.append(f"selftest: mutation '{name}' was not detected")
    return problems, len(mutations)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="dashboard / alert metric-name lint")
    ap.add_argument("what", choices=["dashboard", "alerts"])
    ap.add_argument("--repo", default=os.path.normpath(os.path.join(here, "..", "..")))
    ap.add_argument("--promtool", default=shutil.which("promtool"))
    ap.add_argument("--selftest", action="store_true")
    a = ap.parse_args()

    errs = []
    if a.what == "dashboard":
        path = os.path.join(a.repo, "deploy", "grafana", "dynamo-batcher.json")
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (OSError, ValueError) as e:
            print(f"FAIL: {path}: {e}", file=sys.stderr)
            return 1
        errs, used = lint_dashboard(d)
        exprs = [(f"panel {p.get('id')}", t["expr"]) for p in panels_of(d)
                 for t in p.get("targets") or [] if isinstance(t.get("expr"), str)]
        if a.promtool and not errs:
            errs += promql_syntax(exprs, a.promtool)
        elif not a.promtool:
            print("note: promtool not found, PromQL syntax not checked")
        if a.selftest:
            problems, n = selftest(d)
            errs += problems
            print(f"selftest: {n} mutations")
        summary = f"{len(exprs)} exprs, {len(used)} metric families"
    else:
        try:
            import yaml
        except ImportError:
            print("FAIL: PyYAML is needed for the alerts check", file=sys.stderr)
            return 2
        path = os.path.join(a.repo, "deploy", "prometheus", "alerts.yaml")
        try:
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as e:
            print(f"FAIL: {path}: {e}", file=sys.stderr)
            return 1
        n = 0
        for g in (doc or {}).get("groups") or []:
            for r in g.get("rules") or []:
                n += 1
                where = f"rule {r.get('alert') or r.get('record')}"
                check_expr(str(r.get("expr", "")), where, errs, ALERT_EXTRA)
                ann = r.get("annotations") or {}
                for key in ("summary", "description", "runbook"):
                    if r.get("alert") and not ann.get(key):
                        errs.append(f"{where}: annotation '{key}' missing")
        summary = f"{n} rules"
    if errs:
        for e in errs:
            print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print(f"OK: {os.path.relpath(path, a.repo)}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
