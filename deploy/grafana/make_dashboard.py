#!/usr/bin/env python3
"""Generates deploy/grafana/dynamo-batcher.json (the Grafana dashboard).

Edit the panels here, then run:
    python3 deploy/grafana/make_dashboard.py            # rewrite the JSON
    python3 deploy/grafana/make_dashboard.py --check    # exit 1 if out of date
The ctest deploy.dashboard_up_to_date runs --check.
"""

import json
import os
import sys

DS = {"type": "prometheus", "uid": "${datasource}"}
T = 'table=~"$table"'          # table filter from the template variable
RI = "$__rate_interval"


def rate(metric, by="table", filt=T, fn="rate"):
    sel = f"{{{filt}}}" if filt else ""
    return f"sum by ({by}) ({fn}({metric}{sel}[{RI}]))" if by else \
        f"sum({fn}({metric}{sel}[{RI}]))"


def quantile(q, hist, by="table"):
    return (f"histogram_quantile({q}, sum by ({by}, le) "
            f"(rate({hist}_bucket{{{T}}}[{RI}])))")


def mean(hist, by="table"):
    return (f"sum by ({by}) (rate({hist}_sum{{{T}}}[{RI}]))\n  /\n"
            f"sum by ({by}) (rate({hist}_count{{{T}}}[{RI}]))")


class Layout:
    def __init__(self):
        self.panels = []
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.row_h = 0

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def row(self, title):
        if self.x:
            self.y += self.row_h
            self.x = 0
        self.panels.append({"type": "row", "id": self._id(), "title": title,
                            "collapsed": False, "panels": [],
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}})
        self.y += 1
        self.row_h = 0

    def add(self, panel, w, h):
        if self.x + w > 24:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        self.panels.append(panel)


def targets(queries):
    out = []
    for i, (expr, legend) in enumerate(queries):
        out.append({"refId": chr(ord("A") + i), "datasource": DS, "expr": expr,
                    "legendFormat": legend, "range": True, "editorMode": "code"})
    return out


def timeseries(title, description, queries, unit, stack=False, min0=True):
    defaults = {
        "unit": unit,
        "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                   "showPoints": "never", "spanNulls": False,
                   "stacking": {"mode": "normal" if stack else "none", "group": "A"}},
    }
    if min0:
        defaults["min"] = 0
    return {
        "type": "timeseries", "title": title, "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom",
                               "showLegend": True, "calcs": ["mean", "max", "lastNotNull"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": targets(queries),
    }


def stat(title, description, expr, unit, thresholds=None):
    steps = [{"color": "green", "value": None}]
    for value, color in thresholds or []:
        steps.append({"color": color, "value": value})
    return {
        "type": "stat", "title": title, "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps},
                                     "color": {"mode": "thresholds"}},
                        "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area", "justifyMode": "auto",
                    "orientation": "auto", "textMode": "auto"},
        "targets": targets([(expr, "")]),
    }


def build():
    L = Layout()

    L.row("Overview")
    L.add(stat("Ops received / s", "All tables selected, all pods.",
               rate("dynamo_batcher_ops_received_total", by=None), "ops"), 4, 4)
    L.add(stat("Ops written / s", "Accepted by DynamoDB.",
               rate("dynamo_batcher_ops_written_total", by=None), "ops"), 4, 4)
    L.add(stat("Throttled calls", "Throttle events per BatchWriteItem call.",
               f"{rate('dynamo_batcher_throttle_events_total', by=None)}\n  /\n"
               f"{rate('dynamo_batcher_batches_sent_total', by=None)}",
               "percentunit", [(0.01, "yellow"), (0.1, "red")]), 4, 4)
    L.add(stat("Op latency p99", "Arrival to result.",
               f"histogram_quantile(0.99, sum by (le) (rate(dynamo_batcher_op_latency_seconds_bucket{{{T}}}[{RI}])))",
               "s", [(0.25, "yellow"), (1, "red")]), 4, 4)
    L.add(stat("Dead-lettered (time range)", "Writes that FAILED and went to the dead-letter file.",
               f"sum(increase(dynamo_batcher_dead_lettered_total{{{T}}}[$__range]))",
               "short", [(1, "red")]), 4, 4)
    L.add(stat("Active streams (all pods)", "Open Write streams, all pods.",
               "sum(dynamo_batcher_active_streams)", "short"), 4, 4)

    L.row("Throughput")
    L.add(timeseries(
        "Ops received vs written", "Per table: ops arriving from clients (by table) and ops DynamoDB accepted.",
        [(rate("dynamo_batcher_ops_received_total"), "received {{table}}"),
         (rate("dynamo_batcher_ops_written_total"), "written {{table}}")], "ops"), 12, 8)
    L.add(timeseries(
        "Coalescing ratio", "Share of received ops replaced by a later op on the same key before being sent.",
        [(f"{rate('dynamo_batcher_ops_coalesced_total')}\n  /\n{rate('dynamo_batcher_ops_received_total')}",
          "{{table}}")], "percentunit"), 12, 8)
    L.add(timeseries(
        "Rejected and failed by reason", "REJECTED: invalid input. FAILED: refused by DynamoDB for good or retries exhausted.",
        [(rate("dynamo_batcher_ops_rejected_total", by="table, reason"), "rejected {{table}} {{reason}}"),
         (rate("dynamo_batcher_ops_failed_total", by="table, reason"), "failed {{table}} {{reason}}")],
        "ops"), 12, 8)
    L.add(timeseries(
        "Consumed WCU", "Write capacity units consumed per second (ReturnConsumedCapacity TOTAL).",
        [(rate("dynamo_batcher_consumed_wcu_total"), "{{table}}")], "short"), 12, 8)

    L.row("Batches and DynamoDB calls")
    L.add(timeseries(
        "BatchWriteItem calls / s", "Calls sent per table.",
        [(rate("dynamo_batcher_batches_sent_total"), "{{table}}")], "reqps"), 8, 8)
    L.add(timeseries(
        "Batch size (items per call)", "Quantiles from the histogram, and the exact mean = rate(sum) / rate(count).",
        [(quantile(0.5, "dynamo_batcher_batch_size"), "p50 {{table}}"),
         (quantile(0.99, "dynamo_batcher_batch_size"), "p99 {{table}}"),
         (mean("dynamo_batcher_batch_size"), "mean {{table}}")], "short"), 8, 8)
    L.add(timeseries(
        "BatchWriteItem latency", "Duration of one call.",
        [(quantile(0.5, "dynamo_batcher_batch_write_seconds"), "p50 {{table}}"),
         (quantile(0.99, "dynamo_batcher_batch_write_seconds"), "p99 {{table}}")], "s"), 8, 8)
    L.add(timeseries(
        "Throttle events by table and error", "error=UnprocessedItems counts 200 answers with unprocessed items.",
        [(rate("dynamo_batcher_throttle_events_total", by="table, error"), "{{table}} {{error}}")],
        "short"), 8, 8)
    L.add(timeseries(
        "Unprocessed ratio", "Items returned in UnprocessedItems per item sent (items sent = rate of batch_size_sum).",
        [(f"{rate('dynamo_batcher_unprocessed_items_total')}\n  /\n{rate('dynamo_batcher_batch_size_sum')}",
          "{{table}}")], "percentunit"), 8, 8)
    L.add(timeseries(
        "Adaptive send rate", "Current per-table send rate limit (items/s), per pod; drops on throttling.",
        [(f"dynamo_batcher_send_rate_limit{{{T}}}", "{{table}} {{pod}}{{instance}}")], "short"), 8, 8)
    L.add(timeseries(
        "Retries", "Items or calls retried.",
        [(rate("dynamo_batcher_retries_total"), "{{table}}")], "short"), 8, 8)
    L.add(timeseries(
        "Backoff delay", "Delay chosen before a retry (capped exponential, full jitter).",
        [(quantile(0.5, "dynamo_batcher_backoff_seconds"), "p50 {{table}}"),
         (quantile(0.99, "dynamo_batcher_backoff_seconds"), "p99 {{table}}")], "s"), 8, 8)
    L.add(timeseries(
        "HTTP errors by class", "Transport-level errors talking to DynamoDB (timeouts, connection, 5xx, ...).",
        [(rate("dynamo_batcher_http_errors_total", by="class", filt=""), "{{class}}")], "short"), 8, 8)

    L.row("Queues, latency and clients")
    L.add(timeseries(
        "Queue depth (items)", "Buffered ops waiting for a batch or a retry.",
        [(f"sum by (table) (dynamo_batcher_queue_items{{{T}}})", "{{table}}")], "short"), 8, 8)
    L.add(timeseries(
        "Queue bytes", "Buffered bytes; bounded by the per-table and total budgets (backpressure).",
        [(f"sum by (table) (dynamo_batcher_queue_bytes{{{T}}})", "{{table}}")], "bytes"), 8, 8)
    L.add(timeseries(
        "Dead-lettered", "Writes appended to the dead-letter file.",
        [(rate("dynamo_batcher_dead_lettered_total", fn="increase"), "{{table}}")], "short"), 8, 8)
    L.add(timeseries(
        "Op latency (arrival to result)", "From the op's arrival to its result on the stream.",
        [(quantile(0.5, "dynamo_batcher_op_latency_seconds"), "p50 {{table}}"),
         (quantile(0.99, "dynamo_batcher_op_latency_seconds"), "p99 {{table}}")], "s"), 8, 8)
    L.add(timeseries(
        "Active streams", "Open Write streams per pod.",
        [("sum by (pod, instance) (dynamo_batcher_active_streams)", "{{pod}}{{instance}}")], "short"), 8, 8)
    L.add(timeseries(
        "In-flight requests", "BatchWriteItem calls in flight per pod.",
        [("sum by (pod, instance) (dynamo_batcher_inflight_requests)", "{{pod}}{{instance}}")], "short"), 8, 8)

    return {
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "description": "dynamo-batcher sidecar: throughput, coalescing, DynamoDB calls, throttling, queues, latency.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": [],
        "panels": L.panels,
        "refresh": "30s",
        "schemaVersion": 38,
        "tags": ["dynamo-batcher", "dynamodb"],
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource",
             "query": "prometheus", "current": {}, "hide": 0, "includeAll": False,
             "multi": False, "options": [], "refresh": 1, "regex": "", "skipUrlSync": False},
            {"name": "table", "label": "Table", "type": "query", "datasource": DS,
             "definition": "label_values(dynamo_batcher_ops_received_total, table)",
             "query": {"query": "label_values(dynamo_batcher_ops_received_total, table)",
                       "refId": "PrometheusVariableQueryEditor-VariableQuery"},
             "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
             "hide": 0, "includeAll": True, "allValue": ".*", "multi": True,
             "options": [], "refresh": 2, "regex": "", "skipUrlSync": False, "sort": 1},
        ]},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": "dynamo-batcher",
        "uid": "dynamo-batcher",
        "version": 1,
        "weekStart": "",
    }


def main():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dynamo-batcher.json")
    text = json.dumps(build(), indent=2, sort_keys=False) + "\n"
    if "--check" in sys.argv[1:]:
        try:
            with open(path, encoding="utf-8") as f:
                current = f.read()
        except OSError as e:
            print(f"FAIL: cannot read {path}: {e}", file=sys.stderr)
            return 1
        if current != text:
            print(f"FAIL: {path} is out of date; run python3 {sys.argv[0]}", file=sys.stderr)
            return 1
        print(f"OK: {os.path.basename(path)} matches the generator")
        return 0
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
