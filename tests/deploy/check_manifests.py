#!/usr/bin/env python3
"""Checks the Kubernetes manifests in deploy/kubernetes.

Renders the kustomize base and every overlay with `kubectl kustomize`, parses
every document and asserts what the operator docs promise:

  * the sidecar is a native sidecar (initContainers, restartPolicy: Always), or,
    in the legacy variant, the first regular container with a preStop sleep;
  * liveness and readiness probes that the kubelet can reach (httpGet on a
    declared port that the config's metrics_listen binds on a non-loopback
    address, or grpc on a non-loopback `listen`);
  * resource requests and limits; the hardened securityContext;
  * terminationGracePeriodSeconds > drain_timeout (+ the preStop sleep), with
    drain_timeout parsed from the config.yaml embedded in the ConfigMap;
  * the dead-letter file and /tmp on mounted, writable emptyDir volumes;
  * the ServiceAccount's IRSA annotation; the PodMonitor scraping the sidecar's
    metrics port by name.

Usage: check_manifests.py [--repo DIR] [--kubectl PATH] [--selftest]
--selftest also breaks the rendered base in memory in several ways and fails
unless every breakage is reported.
Exit 0 when all checks pass, 1 with one line per problem otherwise.
"""

import argparse
import copy
import os
import re
import subprocess
import sys

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.stderr.write(
        "check_manifests.py needs PyYAML (python3-yaml or pip PyYAML)\n")
    sys.exit(2)

SIDECAR = "dynamo-batcher"
# The image has no shell: exec hooks and probes can only run these.
IMAGE_BINARIES = ("/usr/local/bin/dynamo-batcher", "/usr/local/bin/batchctl")
UID = 65532
CONFIG_DIR = "/etc/dynamo-batcher"
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0,
                "m": 60.0, "h": 3600.0}


def parse_duration(text):
    """Go-style duration ("20s", "1m30s", "500ms") to seconds, or None."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if not isinstance(text, str):
        return None
    s = text.strip()
    if not s or DURATION_PART.sub("", s) != "":
        return None
    return sum(float(v) * UNIT_SECONDS[u] for v, u in DURATION_PART.findall(s))


BYTE_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3,
              "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}
QUANTITY_UNITS = {"": 1, "k": 1000, "M": 1000**2, "G": 1000**3,
                  "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
# Service defaults (service/config/config.h) used when a key is absent.
DEFAULT_BUFFER_MAX_BYTES = 64 * 1024**2
DEFAULT_DEAD_LETTER_MAX_BYTES = 256 * 1024**2
DEFAULT_DEAD_LETTER_MAX_FILES = 3


def parse_bytes(text):
    """Config byte sizes: 1048576, "64KB", "256MiB" -> bytes, or None."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = re.match(r"^\s*(\d+)\s*([A-Za-z]*)\s*$", str(text))
    if not m or m.group(2).upper() not in BYTE_UNITS:
        return None
    return int(m.group(1)) * BYTE_UNITS[m.group(2).upper()]


def parse_quantity(text):
    """Kubernetes memory quantities: "256Mi", "1G", "1048576" -> bytes, or None."""
    m = re.match(r"^\s*(\d+(?:\.\d+)?)([A-Za-z]*)\s*$", str(text))
    if not m or m.group(2) not in QUANTITY_UNITS:
        return None
    return float(m.group(1)) * QUANTITY_UNITS[m.group(2)]


def render(kubectl, path):
    proc = subprocess.run([kubectl, "kustomize", path], capture_output=True,
                          text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed:\n{proc.stderr}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def host_port(addr):
    """'0.0.0.0:9464' -> ('0.0.0.0', 9464); '[::]:9464' -> ('::', 9464)."""
    if not isinstance(addr, str) or addr.startswith("unix:"):
        return None, None
    m = re.match(r"^\[?([^\]]*)\]?:(\d+)$", addr.strip())
    if not m:
        return None, None
    return m.group(1), int(m.group(2))


def is_loopback(host):
    return host in ("localhost", "::1") or host.startswith("127.")


def env_value(container, name):
    for e in container.get("env") or []:
        if e.get("name") == name:
            return e.get("value")
    return None


def find(docs, kind, name=None):
    return [d for d in docs if d.get("kind") == kind and
            (name is None or d.get("metadata", {}).get("name") == name)]


def prestop_sleep_seconds(container):
    pre = (container.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in pre:  # native sleep action (K8s >= 1.30)
        return float(pre["sleep"].get("seconds", 0))
    cmd = (pre.get("exec") or {}).get("command") or []
    if cmd and os.path.basename(str(cmd[0])) == "sleep" and len(cmd) == 2:
        return parse_duration(str(cmd[1]) + ("" if str(cmd[1])[-1:].isalpha() else "s"))
    joined = " ".join(str(c) for c in cmd)
    m = re.search(r"\bsleep\s+(\d+)", joined)
    return float(m.group(1)) if m else None


def check_config(cfg, errs, where):
    def need(cond, msg):
        if not cond:
            errs.append(f"{where}: config.yaml: {msg}")
    need(isinstance(cfg, dict), "not a mapping")
    if not isinstance(cfg, dict):
        return
    for key in ("listen", "metrics_listen", "dynamodb", "tables", "batching",
                "drain_timeout", "dead_letter"):
        need(key in cfg, f"missing key '{key}'")
    need(isinstance((cfg.get("dynamodb") or {}).get("region"), str),
         "dynamodb.region missing")
    tables = cfg.get("tables") or []
    need(isinstance(tables, list) and tables, "tables must be a non-empty list")
    for i, t in enumerate(tables if isinstance(tables, list) else []):
        pk = (t or {}).get("partition_key") or {}
        need(isinstance((t or {}).get("name"), str), f"tables[{i}].name missing")
        need(pk.get("type") in ("S", "N", "B") and pk.get("name"),
             f"tables[{i}].partition_key needs name and type S|N|B")
        sk = (t or {}).get("sort_key")
        if sk is not None:
            need(sk.get("type") in ("S", "N", "B") and sk.get("name"),
                 f"tables[{i}].sort_key needs name and type S|N|B")
    batching = cfg.get("batching") or {}
    need(parse_duration(batching.get("linger")) is not None,
         "batching.linger is not a duration")
    mi = batching.get("max_items")
    need(isinstance(mi, int) and 1 <= mi <= 25, "batching.max_items must be 1..25")
    need(parse_duration(cfg.get("drain_timeout")) is not None,
         "drain_timeout is not a duration")
    need(isinstance((cfg.get("dead_letter") or {}).get("path"), str),
         "dead_letter.path missing")


def check_pod(docs, pod, variant, need, errs, where):
    """Checks the sidecar in one pod spec; returns (ports, metrics port), or
    None when the sidecar is missing or its config cannot be read."""
    init = pod.get("initContainers") or []
    main = pod.get("containers") or []
    psc = pod.get("securityContext") or {}

    in_init = [c for c in init if c.get("name") == SIDECAR]
    in_main = [c for c in main if c.get("name") == SIDECAR]
    if variant == "native":
        if not need(len(in_init) == 1 and not in_main,
                    f"native sidecar: '{SIDECAR}' must be in initContainers only"):
            return None
        side = in_init[0]
        need(side.get("restartPolicy") == "Always",
             "native sidecar needs restartPolicy: Always")
        need(any(c.get("name") != SIDECAR for c in main),
             "no application container next to the sidecar")
    else:
        if not need(len(in_main) == 1 and not in_init,
                    f"legacy sidecar: '{SIDECAR}' must be a regular container"):
            return None
        side = in_main[0]
        need("restartPolicy" not in side,
             "legacy sidecar: regular containers must not set restartPolicy")
        need(main[0].get("name") == SIDECAR,
             "legacy sidecar must be the first container (started first)")
        need(len(main) >= 2, "no application container next to the sidecar")

    # Image pinned to a tag or digest.
    for c in init + main:
        image = str(c.get("image", ""))
        need(("@sha256:" in image) or
             (":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")),
             f"container {c.get('name')}: image '{image}' has no pinned tag")

    # --- config from the ConfigMap mounted at /etc/dynamo-batcher ------------
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    mounts = side.get("volumeMounts") or []
    cfg = None
    cfg_mount = [m for m in mounts if m.get("mountPath", "").rstrip("/") == CONFIG_DIR]
    args = side.get("args") or []
    if "--config" in args:
        i = args.index("--config")
        need(i + 1 < len(args) and args[i + 1] == CONFIG_DIR + "/config.yaml",
             f"--config should point at {CONFIG_DIR}/config.yaml")
    if need(len(cfg_mount) == 1, f"no volume mounted at {CONFIG_DIR}"):
        vol = volumes.get(cfg_mount[0].get("name")) or {}
        cm_name = (vol.get("configMap") or {}).get("name")
        cms = find(docs, "ConfigMap", cm_name) if cm_name else []
        if need(len(cms) == 1, f"ConfigMap '{cm_name}' for {CONFIG_DIR} not in the render"):
            text = (cms[0].get("data") or {}).get("config.yaml")
            if need(isinstance(text, str), f"ConfigMap {cm_name} has no config.yaml key"):
                try:
                    cfg = yaml.safe_load(text)
                except yaml.YAMLError as e:
                    errs.append(f"{where}: config.yaml does not parse: {e}")
    if cfg is None:
        return None
    check_config(cfg, errs, where)
    if not isinstance(cfg, dict):
        return None

    # Env overrides that are present must agree with the file.
    region_env = env_value(side, "DYNAMO_BATCHER_REGION")
    if region_env is not None:
        need(region_env == (cfg.get("dynamodb") or {}).get("region"),
             f"DYNAMO_BATCHER_REGION={region_env} disagrees with dynamodb.region "
             f"{(cfg.get('dynamodb') or {}).get('region')} in config.yaml")
    listen = env_value(side, "DYNAMO_BATCHER_LISTEN") or cfg.get("listen")
    metrics_listen = env_value(side, "DYNAMO_BATCHER_METRICS_LISTEN") or cfg.get("metrics_listen")
    g_host, g_port = host_port(listen)
    m_host, m_port = host_port(metrics_listen)

    # --- probes ----------------------------------------------------------------
    ports = {p.get("name"): p.get("containerPort") for p in side.get("ports") or []}

    def probe_ok(kind, want_path):
        probe = side.get(kind)
        if not need(isinstance(probe, dict), f"sidecar has no {kind}"):
            return
        if "httpGet" in probe:
            hg = probe["httpGet"]
            port = hg.get("port")
            number = ports.get(port) if isinstance(port, str) else port
            need(number is not None, f"{kind}: port '{port}' is not a declared container port")
            need(number == m_port,
                 f"{kind}: httpGet port {number} is not metrics_listen's port {m_port}")
            need(m_host is not None and not is_loopback(m_host),
                 f"{kind}: metrics_listen {metrics_listen} is loopback-only; the "
                 "kubelet probes the pod IP")
            need(hg.get("path") == want_path, f"{kind}: path should be {want_path}")
        elif "grpc" in probe:
            need(probe["grpc"].get("port") == g_port,
                 f"{kind}: grpc port is not listen's port {g_port}")
            need(g_host is not None and not is_loopback(g_host),
                 f"{kind}: grpc probe but listen {listen} is loopback-only")
        else:
            errs.append(f"{where}: {kind} must be httpGet or grpc")

    probe_ok("livenessProbe", "/healthz")
    probe_ok("readinessProbe", "/readyz")

    # --- resources -------------------------------------------------------------
    res = side.get("resources") or {}
    for section in ("requests", "limits"):
        need("memory" in (res.get(section) or {}), f"sidecar resources.{section}.memory missing")
    need("cpu" in (res.get("requests") or {}), "sidecar resources.requests.cpu missing")

    # --- securityContext ---------------------------------------------------------
    sc = side.get("securityContext") or {}

    def eff(key):
        return sc.get(key, psc.get(key))
    need(eff("runAsNonRoot") is True, "securityContext.runAsNonRoot must be true")
    need(eff("runAsUser") == UID, f"securityContext.runAsUser must be {UID}")
    need(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem must be true")
    need(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation must be false")
    need("ALL" in ((sc.get("capabilities") or {}).get("drop") or []),
         "capabilities.drop must contain ALL")
    need((eff("seccompProfile") or {}).get("type") == "RuntimeDefault",
         "seccompProfile.type must be RuntimeDefault")

    # --- writable emptyDir volumes: dead-letter dir and /tmp -------------------
    def writable_emptydir_for(path):
        best = None
        for m in mounts:
            mp = m.get("mountPath", "").rstrip("/") or "/"
            if path == mp or path.startswith(mp + "/"):
                if best is None or len(mp) > len(best.get("mountPath", "")):
                    best = m
        if best is None:
            return False
        vol = volumes.get(best.get("name")) or {}
        return "emptyDir" in vol and not best.get("readOnly", False)
    dl_path = (cfg.get("dead_letter") or {}).get("path")
    if isinstance(dl_path, str):
        need(writable_emptydir_for(dl_path),
             f"dead_letter.path {dl_path} is not on a writable emptyDir volume mount")
        need(dl_path.startswith("/var/lib/dynamo-batcher/"),
             "dead_letter.path should be under /var/lib/dynamo-batcher")
    need(writable_emptydir_for("/tmp"), "/tmp is not a writable emptyDir (read-only root fs)")

    # --- memory and disk budgets ------------------------------------------------
    mem_limit = parse_quantity((res.get("limits") or {}).get("memory", ""))
    buf = parse_bytes((cfg.get("buffer") or {}).get("max_bytes", DEFAULT_BUFFER_MAX_BYTES))
    if need(buf is not None, "buffer.max_bytes is not a byte size") and mem_limit:
        need(buf <= mem_limit / 2,
             f"buffer.max_bytes ({buf / 1024**2:g}MiB) must be at most half the memory "
             f"limit ({mem_limit / 1024**2:g}Mi): buffered writes live in memory")
    dl_cfg = cfg.get("dead_letter") or {}
    dl_max = parse_bytes(dl_cfg.get("max_bytes", DEFAULT_DEAD_LETTER_MAX_BYTES))
    dl_files = dl_cfg.get("max_files", DEFAULT_DEAD_LETTER_MAX_FILES)
    dl_mount = [m for m in mounts if isinstance(dl_path, str) and
                dl_path.startswith(m.get("mountPath", "").rstrip("/") + "/")]
    dl_vol = (volumes.get(dl_mount[0].get("name")) or {}) if dl_mount else {}
    size_limit = parse_quantity((dl_vol.get("emptyDir") or {}).get("sizeLimit", "")) \
        if isinstance(dl_vol.get("emptyDir"), dict) else None
    if size_limit and need(dl_max is not None and isinstance(dl_files, int),
                           "dead_letter.max_bytes/max_files invalid"):
        need(dl_max * dl_files <= size_limit,
             f"dead-letter files (max_files {dl_files} x max_bytes {dl_max / 1024**2:g}MiB) "
             f"exceed the emptyDir sizeLimit ({size_limit / 1024**2:g}Mi): the pod would be evicted")

    # --- exec hooks/probes: only what the shell-less image contains ----------------
    execs = [((side.get("lifecycle") or {}).get(h) or {}).get("exec")
             for h in ("postStart", "preStop")]
    execs += [(side.get(p) or {}).get("exec")
              for p in ("startupProbe", "livenessProbe", "readinessProbe")]
    for e in execs:
        if isinstance(e, dict):
            cmd = e.get("command") or []
            need(cmd and cmd[0] in IMAGE_BINARIES,
                 f"exec {cmd[:2]} runs something the image does not have (no shell; "
                 f"only {', '.join(IMAGE_BINARIES)})")

    # --- grace period ------------------------------------------------------------
    drain = parse_duration(cfg.get("drain_timeout")) or 0.0
    grace = pod.get("terminationGracePeriodSeconds")
    sleep = 0.0
    if variant == "legacy":
        sleep = prestop_sleep_seconds(side)
        need(sleep is not None and sleep > 0, "legacy sidecar needs a preStop sleep")
        sleep = sleep or 0.0
        need(((side.get("lifecycle") or {}).get("postStart")) is not None,
             "legacy sidecar should hold the app with a postStart readiness wait")
    if need(isinstance(grace, int), "terminationGracePeriodSeconds not set"):
        need(grace > drain + sleep,
             f"terminationGracePeriodSeconds {grace} must exceed drain_timeout "
             f"{drain:g}s" + (f" + preStop sleep {sleep:g}s" if sleep else ""))
    return ports, m_port


def check_render(docs, variant, where):
    """Returns a list of problems with one rendered kustomization."""
    errs = []

    def need(cond, msg):
        if not cond:
            errs.append(f"{where}: {msg}")
        return cond

    for d in docs:
        need(isinstance(d, dict) and d.get("apiVersion") and d.get("kind")
             and (d.get("metadata") or {}).get("name"),
             f"document without apiVersion/kind/metadata.name: {str(d)[:80]}")

    deployments = find(docs, "Deployment")
    if not need(len(deployments) == 1, f"expected 1 Deployment, found {len(deployments)}"):
        return errs
    dep = deployments[0]
    pod = ((dep.get("spec") or {}).get("template") or {}).get("spec") or {}
    pod_labels = ((dep["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
    found = check_pod(docs, pod, variant, need, errs, where)
    if found is None:
        return errs
    ports, m_port = found

    # --- ServiceAccount (IRSA) -------------------------------------------------
    sa_name = pod.get("serviceAccountName")
    sas = find(docs, "ServiceAccount", sa_name) if sa_name else []
    if need(len(sas) == 1, f"serviceAccountName '{sa_name}' has no ServiceAccount in the render"):
        arn = ((sas[0].get("metadata") or {}).get("annotations") or {}).get(
            "eks.amazonaws.com/role-arn")
        need(isinstance(arn, str) and ROLE_ARN.match(arn),
             f"ServiceAccount {sa_name}: eks.amazonaws.com/role-arn missing or not a role ARN: {arn}")

    # --- PodMonitor -------------------------------------------------------------
    pms = find(docs, "PodMonitor")
    if need(len(pms) == 1, f"expected 1 PodMonitor, found {len(pms)}"):
        pm = pms[0]
        need(pm.get("apiVersion") == "monitoring.coreos.com/v1",
             "PodMonitor apiVersion must be monitoring.coreos.com/v1")
        spec = pm.get("spec") or {}
        sel = (spec.get("selector") or {}).get("matchLabels") or {}
        need(sel and all(pod_labels.get(k) == v for k, v in sel.items()),
             f"PodMonitor selector {sel} does not match the pod labels {pod_labels}")
        eps = spec.get("podMetricsEndpoints") or []
        need(eps and all(e.get("port") in ports for e in eps),
             f"PodMonitor endpoints {[e.get('port') for e in eps]} are not sidecar "
             f"port names {sorted(ports)}")
        need(all(ports.get(e.get("port")) == m_port for e in eps),
             "PodMonitor port is not the metrics_listen port")
        need(all(e.get("path", "/metrics") == "/metrics" for e in eps),
             "PodMonitor path must be /metrics")
        pm_ns = (pm.get("metadata") or {}).get("namespace")
        dep_ns = (dep.get("metadata") or {}).get("namespace")
        need(pm_ns == dep_ns, "PodMonitor and Deployment are in different namespaces")
    return errs


WORKLOAD_KINDS = ("Deployment", "StatefulSet")
COMPONENT_LABEL = "dynamo-batcher.io/sidecar"


def workloads(docs):
    return {(d["kind"], d["metadata"]["name"]): d for d in docs
            if isinstance(d, dict) and d.get("kind") in WORKLOAD_KINDS}


def pod_spec(workload):
    return ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}


def check_component_render(docs, app_docs, selected, variant, where):
    """The sample app with a component applied: every selected workload
    (Deployment or StatefulSet) carries a sidecar that passes check_pod, and
    keeps all of its own containers, init containers and volumes unchanged and
    in their order; the other workloads are exactly as the app wrote them."""
    errs = []

    def need(cond, msg):
        if not cond:
            errs.append(f"{where}: {msg}")
        return cond

    got, orig = workloads(docs), workloads(app_docs)
    need(set(got) == set(orig), f"workloads {sorted(got)} differ from the app's {sorted(orig)}")
    for key, before in sorted(orig.items()):
        after = got.get(key)
        if after is None:
            continue
        name = f"{key[0]}/{key[1]}"
        if key not in selected:
            need(after == before, f"{name} is not selected but was changed")
            continue
        need(after["metadata"].get("labels", {}).get(COMPONENT_LABEL) == "enabled",
             f"{name}: selected, but not labelled {COMPONENT_LABEL}=enabled")
        need(after["spec"].get("selector") == before["spec"].get("selector"),
             f"{name}: spec.selector changed (immutable on a live workload)")
        pod_after, pod_before = pod_spec(after), pod_spec(before)
        for field in ("containers", "initContainers", "volumes"):
            mine = [c for c in pod_after.get(field) or [] if c.get("name") != SIDECAR and
                    not str(c.get("name", "")).startswith("dynamo-batcher-")]
            need(mine == (pod_before.get(field) or []),
                 f"{name}: the workload's own {field} were changed or reordered")
        port_names = [p.get("name") for c in (pod_after.get("containers") or []) +
                      (pod_after.get("initContainers") or [])
                      for p in c.get("ports") or [] if p.get("name")]
        need(len(port_names) == len(set(port_names)),
             f"{name}: duplicate container port names {port_names}")
        check_pod(docs, pod_after, variant,
                  lambda cond, msg, n=name: need(cond, f"{n}: {msg}"), errs, where)
    return errs


def check_components(kubectl, repo):
    """Renders tests/deploy/sample-app with both components; returns
    (problems, number of renders)."""
    sample = os.path.join(repo, "tests", "deploy", "sample-app")
    comps = os.path.join(repo, "deploy", "kubernetes", "components")
    errs = []
    for comp in ("dynamo-batcher-sidecar", "dynamo-batcher-sidecar-legacy"):
        if not os.path.exists(os.path.join(comps, comp, "kustomization.yaml")):
            errs.append(f"missing component deploy/kubernetes/components/{comp}")
    try:
        app = render(kubectl, os.path.join(sample, "app"))
    except (RuntimeError, OSError, subprocess.TimeoutExpired, yaml.YAMLError) as e:
        return errs + [f"sample-app/app: {e}"], 0
    selected = {("Deployment", "web"), ("StatefulSet", "ledger")}
    n = 0
    for variant, where in (("native", "sample-app/native"), ("legacy", "sample-app/legacy")):
        try:
            docs = render(kubectl, os.path.join(sample, where.split("/")[1]))
        except (RuntimeError, OSError, subprocess.TimeoutExpired, yaml.YAMLError) as e:
            errs.append(f"{where}: {e}")
            continue
        n += 1
        problems = check_component_render(docs, app, selected, variant, where)
        print(f"{'ok  ' if not problems else 'FAIL'} {where} ({variant} component, "
              f"{len(docs)} documents)")
        errs.extend(problems)
        if variant == "native" and not problems:
            # Breakages the check must catch.
            def side(d, wl=("StatefulSet", "ledger")):
                return pod_spec(workloads(d)[wl])["initContainers"][0]
            mutations = {
                "no restartPolicy": lambda d: side(d).pop("restartPolicy"),
                "own init container dropped": lambda d: pod_spec(
                    workloads(d)[("StatefulSet", "ledger")])["initContainers"].pop(),
                "unselected workload changed": lambda d: workloads(d)[
                    ("Deployment", "worker")]["spec"].__setitem__("replicas", 5),
                "probe on loopback port": lambda d: side(d)["readinessProbe"][
                    "httpGet"].__setitem__("port", 50051),
            }
            for mname, mutate in mutations.items():
                broken = copy.deepcopy(docs)
                mutate(broken)
                if not check_component_render(broken, app, selected, variant, where):
                    errs.append(f"selftest: component mutation '{mname}' was not detected")
            print(f"{'ok  ' if not errs else 'FAIL'} selftest component ({len(mutations)} mutations)")
    return errs, n


def selftest_legacy(docs):
    """Legacy variant: breaking the shutdown ordering must be reported."""
    def pod(d):
        return find(d, "Deployment")[0]["spec"]["template"]["spec"]

    def side(d):
        return pod(d)["containers"][0]

    mutations = {
        "no preStop": lambda d: side(d)["lifecycle"].pop("preStop"),
        "grace <= sleep + drain": lambda d: pod(d).__setitem__(
            "terminationGracePeriodSeconds", 35),
        "sidecar not first": lambda d: pod(d)["containers"].reverse(),
        "restartPolicy kept": lambda d: side(d).__setitem__("restartPolicy", "Always"),
    }
    if check_render(docs, "legacy", "selftest"):
        return ["selftest: the unmodified legacy overlay already fails"], 0
    problems = []
    for name, mutate in mutations.items():
        broken = copy.deepcopy(docs)
        mutate(broken)
        if not check_render(broken, "legacy", "selftest"):
            problems.append(f"selftest: legacy mutation '{name}' was not detected")
    return problems, len(mutations)


def selftest(docs):
    """Each mutation must make check_render report something."""
    def pod(d):
        return find(d, "Deployment")[0]["spec"]["template"]["spec"]

    def side(d):
        return [c for c in pod(d)["initContainers"] if c["name"] == SIDECAR][0]

    def cfg_set(d, key, value):
        cm = find(d, "ConfigMap")[0]
        cfg = yaml.safe_load(cm["data"]["config.yaml"])
        cfg[key] = value
        cm["data"]["config.yaml"] = yaml.safe_dump(cfg)

    mutations = {
        "no restartPolicy": lambda d: side(d).pop("restartPolicy"),
        "grace <= drain": lambda d: pod(d).__setitem__("terminationGracePeriodSeconds", 20),
        "drain_timeout longer": lambda d: cfg_set(d, "drain_timeout", "1m"),
        "loopback metrics": lambda d: cfg_set(d, "metrics_listen", "127.0.0.1:9464"),
        "no liveness": lambda d: side(d).pop("livenessProbe"),
        "no limits": lambda d: side(d)["resources"].pop("limits"),
        "root fs writable": lambda d: side(d)["securityContext"].__setitem__(
            "readOnlyRootFilesystem", False),
        "caps kept": lambda d: side(d)["securityContext"].pop("capabilities"),
        "no emptyDir": lambda d: [v.pop("emptyDir") for v in pod(d)["volumes"]
                                  if "emptyDir" in v],
        "no role arn": lambda d: find(d, "ServiceAccount")[0]["metadata"].pop("annotations"),
        "podmonitor port": lambda d: find(d, "PodMonitor")[0]["spec"][
            "podMetricsEndpoints"][0].__setitem__("port", "http"),
        "latest tag": lambda d: side(d).__setitem__("image", "dynamo-batcher:latest"),
        "buffer > memory": lambda d: cfg_set(d, "buffer", {"max_bytes": "1GiB"}),
        "dead letters > emptyDir": lambda d: cfg_set(d, "dead_letter", {
            "path": "/var/lib/dynamo-batcher/dead-letter.jsonl", "max_bytes": "256MiB"}),
    }
    baseline = set(check_render(docs, "native", "selftest"))
    if baseline:
        return [f"selftest: the unmodified base already fails ({len(baseline)} problems)"], 0
    problems = []
    for name, mutate in mutations.items():
        broken = copy.deepcopy(docs)
        mutate(broken)
        if not set(check_render(broken, "native", "selftest")) - baseline:
            problems.append(f"selftest: mutation '{name}' was not detected")
    return problems, len(mutations)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", default=os.path.normpath(os.path.join(here, "..", "..")))
    ap.add_argument("--kubectl", default="kubectl")
    ap.add_argument("--selftest", action="store_true")
    a = ap.parse_args()

    root = os.path.join(a.repo, "deploy", "kubernetes")
    targets = [("base", os.path.join(root, "base"), "native")]
    overlays = os.path.join(root, "overlays")
    for name in sorted(os.listdir(overlays)) if os.path.isdir(overlays) else []:
        if os.path.exists(os.path.join(overlays, name, "kustomization.yaml")):
            targets.append((f"overlays/{name}", os.path.join(overlays, name),
                            "legacy" if "legacy" in name else "native"))
    errors = []
    names = {t[0] for t in targets}
    for required in ("overlays/example", "overlays/legacy-sidecar"):
        if required not in names:
            errors.append(f"missing kustomization {required}")

    rendered = {}
    for name, path, variant in targets:
        try:
            docs = render(a.kubectl, path)
        except (RuntimeError, OSError, subprocess.TimeoutExpired, yaml.YAMLError) as e:
            errors.append(f"{name}: {e}")
            continue
        rendered[name] = docs
        errs = check_render(docs, variant, name)
        errors.extend(errs)
        print(f"{'ok  ' if not errs else 'FAIL'} {name} ({variant}, {len(docs)} documents)")

    ex = rendered.get("overlays/example")
    if ex:
        ns = [d for d in ex if d.get("kind") == "Namespace"]
        namespaced = [d for d in ex if d.get("kind") != "Namespace"]
        if not ns or any(d["metadata"].get("namespace") != ns[0]["metadata"]["name"]
                         for d in namespaced):
            errors.append("overlays/example: every object must be in the overlay's namespace")
        base_arn = find(rendered.get("base", []), "ServiceAccount")
        ex_arn = find(ex, "ServiceAccount")
        if base_arn and ex_arn and base_arn[0]["metadata"]["annotations"].get(
                "eks.amazonaws.com/role-arn") == ex_arn[0]["metadata"]["annotations"].get(
                "eks.amazonaws.com/role-arn"):
            errors.append("overlays/example: role ARN not patched")

    if a.selftest and "base" in rendered:
        problems, n = selftest(rendered["base"])
        errors.extend(problems)
        print(f"{'ok  ' if not problems else 'FAIL'} selftest ({n} mutations)")
    if a.selftest and "overlays/legacy-sidecar" in rendered:
        problems, n = selftest_legacy(rendered["overlays/legacy-sidecar"])
        errors.extend(problems)
        print(f"{'ok  ' if not problems else 'FAIL'} selftest legacy ({n} mutations)")

    problems, n = check_components(a.kubectl, a.repo)
    errors.extend(problems)

    if errors:
        for e in errors:
            print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print(f"OK: {len(targets)} kustomizations and {n} component renders checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
